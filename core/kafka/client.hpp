#pragma once
// Creating librdkafka handles from KafkaSettings, and the checks every
// command makes before it trusts a connection.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/config.hpp"
#include "core/kafka/context.hpp"

namespace kws {

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using KafkaHandle = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// Errors librdkafka reports asynchronously through error_cb, kept so that a
// failed request can say why (e.g. "Failed to resolve 'nohost:9092'").
class ClientEvents {
 public:
  void record(rd_kafka_resp_err_t err, const std::string& reason);
  // The most recent error, "" if none.
  std::string last_error() const;
  bool saw(rd_kafka_resp_err_t err) const;
  // The latest reason reported with `err`, "" if it was never reported.
  std::string reason_for(rd_kafka_resp_err_t err) const;
  // True once for each report of `err` since the last call.
  bool take(rd_kafka_resp_err_t err);
  bool fatal() const;
  // The code reported with last_error().
  rd_kafka_resp_err_t last_code() const;

  // The object that owns the handle, for callbacks that share librdkafka's
  // one opaque pointer with error_cb (e.g. the rebalance callback).
  void* owner = nullptr;
  // Where librdkafka's own log lines go (with -v); set by create_client.
  // Atomic: librdkafka's threads read it, and an abandoned handle's sink is
  // cleared while they may still run.
  std::atomic<LogSink*> log{nullptr};

 private:
  mutable std::mutex mutex_;
  std::string last_;
  rd_kafka_resp_err_t last_code_ = RD_KAFKA_RESP_ERR_NO_ERROR;
  std::vector<std::pair<rd_kafka_resp_err_t, std::string>> seen_;
  std::vector<rd_kafka_resp_err_t> untaken_;
  bool fatal_ = false;
};

struct ClientOptions {
  rd_kafka_type_t type = RD_KAFKA_PRODUCER;
  // kws's own defaults for this kind of client; the user's settings override them.
  std::vector<std::pair<std::string, std::string>> defaults;
  // Settings kws needs to work at all; applied after the user's.
  std::vector<std::pair<std::string, std::string>> required;
};

// Creates a handle; `events` must outlive it. Throws a usage kws::Error naming
// where a bad property came from (-X, the config file, ...). With
// context.verbosity > 0 librdkafka's log lines go to context.log.
KafkaHandle create_client(const KafkaSettings& settings, const ClientOptions& options,
                          const KafkaContext& context, ClientEvents& events, rd_kafka_conf_t* extra_conf = nullptr);

// Applies one property, throwing a usage error that names its origin.
void set_property(rd_kafka_conf_t* conf, const std::string& key, const std::string& value,
                  const std::string& origin);

// Waits until a broker answers a metadata request. Fails fast when a broker
// name cannot be resolved and otherwise after `timeout`, with a message
// naming the brokers and the last transport error. The handle's main queue
// must not yet be redirected to the consumer queue.
void wait_for_brokers(rd_kafka_t* rk, const std::string& brokers, ClientEvents& events,
                      const KafkaContext& context);

// librdkafka reconnects forever, and a frozen broker (its sockets open, its
// process stopped) refuses nothing: requests just go unanswered. A
// long-running command calls check() regularly (every few hundred ms at
// most). It asks the cluster for metadata now and then (at once after
// librdkafka reports every broker down or a request timed out), and once no
// broker has answered for longer than `limit`, returns why.
class ConnectionWatch {
 public:
  ConnectionWatch(rd_kafka_t* rk, ClientEvents& events, std::string brokers, std::chrono::milliseconds limit);
  std::optional<std::string> check();
  // True once check() returned a reason.
  bool lost() const { return lost_; }

 private:
  rd_kafka_t* rk_;
  ClientEvents& events_;
  std::string brokers_;
  std::chrono::milliseconds limit_;
  std::chrono::milliseconds probe_every_;
  std::chrono::steady_clock::time_point last_answer_;
  std::chrono::steady_clock::time_point last_probe_;
  bool refused_ = false;    // every broker reported down since the last answer
  bool timed_out_ = false;  // a request timed out since the last answer
  bool lost_ = false;
};

// wait_for_brokers, then a ConnectionWatch over the same handle with the
// context's timeout: what every long-running client does after creation.
std::unique_ptr<ConnectionWatch> connect_and_watch(rd_kafka_t* rk, const std::string& brokers, ClientEvents& events,
                                                   const KafkaContext& context);

}  // namespace kws
