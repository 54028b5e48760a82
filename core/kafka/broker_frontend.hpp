#pragma once
// The embedded broker's front door. librdkafka 2.0's mock cluster binds
// random ports, creates every topic a Metadata request names (with 4
// partitions), and only speaks Metadata v0-v2, in which a client cannot say
// "do not create". The front end listens where the user asked (9092 by
// default), relays every Kafka frame to the mock broker behind it, and:
//  - advertises its own addresses in Metadata and FindCoordinator responses,
//    so clients keep talking through it;
//  - advertises Metadata v4, whose requests say whether the client wants a
//    missing topic auto-created (consumers do not; producers do);
//  - decides auto-creation itself: it creates the topic with the configured
//    partition count, or answers UNKNOWN_TOPIC_OR_PARTITION, as a real broker
//    with auto.create.topics.enable would;
//  - turns offset-for-timestamp lookups, which the mock cannot answer, into
//    earliest-offset lookups, and caps consumer session timeouts at 6 s,
//    which is how long the mock then makes a rejoining group wait;
//  - answers ListGroups, which the mock lacks, from the groups it has seen
//    join or commit;
//  - answers CreateTopics, which the mock lacks, by creating on the mock, and
//    DeleteTopics with TOPIC_DELETION_DISABLED: the mock cannot delete;
//  - answers itself, with the error a real broker gives, the group requests
//    the mock would crash on (null group or member ids, members of one group
//    that share no assignment protocol);
//  - bounds what one client can cost (see the limits below and
//    docs/SECURITY.md): request size, requests in flight, topics created or
//    named per request, connections open at once.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/util/log.hpp"

namespace kws {

struct FrontendConfig {
  std::string listen_host = "127.0.0.1";
  uint16_t first_port = 9092;  // broker 1's port; others take free ports. 0: any
  // Appended to the error when broker 1's address cannot be bound: how to
  // ask for another one.
  std::string listen_hint;
  struct Backend {
    std::string host;
    uint16_t port;
  };
  std::vector<Backend> backends;  // the mock brokers, in node order
  bool auto_create = true;
  // Creates a topic on the mock (partitions or replication 0: the broker's
  // defaults); called on the front end's topic thread, for a Metadata request
  // that names a missing topic or a CreateTopics request. Returns false when
  // the topic was already there; throws kws::Error on failure.
  std::function<bool(const std::string& topic, int partitions, int replication)> create_topic;
  std::vector<std::string> existing_topics;  // created before the front end started
  // Connections relayed at once; beyond it new ones wait in the kernel's
  // backlog. 0: as many as the descriptor limit allows (three descriptors each).
  uint64_t max_connections = 0;
  // Where the front end reports what it refused or could not do (required).
  LogSink* log = nullptr;
};

// Limits the front end enforces (documented in `kws broker --help`).
inline constexpr uint32_t kMaxRequestBytes = 100u << 20;   // Kafka's socket.request.max.bytes
inline constexpr int kMaxRequestsInFlight = 5;              // per connection, then it is muted
inline constexpr size_t kMaxTopicsCreatedPerRequest = 100;  // the rest: THROTTLING_QUOTA_EXCEEDED
inline constexpr size_t kMaxTopicsPerMetadataRequest = 10000;  // distinct names; more closes the connection
inline constexpr int32_t kMaxPartitionsPerCreatedTopic = 10000;  // by CreateTopics; more is INVALID_PARTITIONS

class BrokerFrontend {
 public:
  // Binds every listener at once; throws kws::Error when one cannot bind.
  explicit BrokerFrontend(FrontendConfig config);
  ~BrokerFrontend();
  BrokerFrontend(const BrokerFrontend&) = delete;
  BrokerFrontend& operator=(const BrokerFrontend&) = delete;

  // "host:port,host:port": the front end's addresses, one per mock broker.
  std::string bootstrap_servers() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kws
