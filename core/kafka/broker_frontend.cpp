#include "core/kafka/broker_frontend.hpp"

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <cstdio>
#include <map>
#include <set>
#include <thread>
#include <unordered_map>

#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/kafka/kafka_wire.hpp"

namespace kws {

namespace {

using asio::ip::tcp;

// Kafka frames are at most this large here; a bigger size prefix means the
// peer is not speaking Kafka, and the connection is dropped.
constexpr uint32_t kMaxFrame = 256u << 20;

// See cap_join_group_session_timeout: a consumer group that a member left
// rejoins after about this long instead of 45 s. Kafka's own minimum.
constexpr int32_t kMaxSessionTimeoutMs = 6000;

struct Shared;

// One client connection and its connection to the mock broker behind it.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket client, asio::io_context& io, Shared& shared, tcp::endpoint backend, size_t backend_index)
      : client_(std::move(client)), broker_(io), shared_(shared), backend_(backend), backend_index_(backend_index) {}

  void start() {
    auto self = shared_from_this();
    broker_.async_connect(backend_, [self](const asio::error_code& ec) {
      if (ec) return self->close();
      asio::error_code ignored;
      self->client_.set_option(tcp::no_delay(true), ignored);
      self->broker_.set_option(tcp::no_delay(true), ignored);
      self->read_frame(true);
      self->read_frame(false);
    });
  }

 private:
  struct Direction {
    std::array<unsigned char, 4> size{};
    std::string frame;
    std::string out;
  };
  struct Pending {
    int16_t api_key;
    int16_t client_version;
    int16_t broker_version;
    std::vector<wire::TopicError> missing;
  };

  // upstream: client -> broker (requests); downstream: broker -> client.
  void read_frame(bool upstream) {
    auto self = shared_from_this();
    tcp::socket& from = upstream ? client_ : broker_;
    Direction& d = upstream ? up_ : down_;
    asio::async_read(from, asio::buffer(d.size), [self, upstream, &from, &d](const asio::error_code& ec, size_t) {
      if (ec) return self->close();
      uint32_t n = (uint32_t(d.size[0]) << 24) | (uint32_t(d.size[1]) << 16) | (uint32_t(d.size[2]) << 8) | d.size[3];
      if (n > kMaxFrame) return self->close();
      d.frame.resize(n);
      asio::async_read(from, asio::buffer(d.frame), [self, upstream, &d](const asio::error_code& ec2, size_t) {
        if (ec2) return self->close();
        if (upstream) {
          // The mock trusts its clients; a request it would choke on ends
          // the connection here instead of reaching it.
          if (!self->on_request(d.frame)) return self->close();
        } else {
          self->on_response(d.frame);
        }
        self->write_frame(upstream);
      });
    });
  }

  void write_frame(bool upstream) {
    auto self = shared_from_this();
    tcp::socket& to = upstream ? broker_ : client_;
    Direction& d = upstream ? up_ : down_;
    const std::string& payload = d.out.empty() ? d.frame : d.out;
    uint32_t n = static_cast<uint32_t>(payload.size());
    d.size = {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
              static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
    std::array<asio::const_buffer, 2> buffers = {asio::buffer(d.size), asio::buffer(payload)};
    asio::async_write(to, buffers, [self, upstream, &d](const asio::error_code& ec, size_t) {
      if (ec) return self->close();
      d.out.clear();
      self->read_frame(upstream);
    });
  }

  // Returns false when the request is malformed and the connection must end.
  bool on_request(const std::string& frame);
  void on_response(const std::string& frame);

  void close() {
    asio::error_code ignored;
    client_.close(ignored);
    broker_.close(ignored);
  }

  tcp::socket client_;
  tcp::socket broker_;
  Shared& shared_;
  tcp::endpoint backend_;
  size_t backend_index_;
  Direction up_;
  Direction down_;
  std::unordered_map<int32_t, Pending> pending_;
};

}  // namespace

namespace {
struct Shared {
  FrontendConfig config;
  std::string advertised_host;
  std::vector<uint16_t> ports;  // front-end port per backend
  std::set<std::string> known_topics;
  std::map<std::string, std::string> groups;  // id -> protocol type, from JoinGroup/OffsetCommit

  std::optional<std::pair<std::string, int32_t>> map(const std::string& host, int32_t port) const {
    for (size_t i = 0; i < config.backends.size(); ++i) {
      if (config.backends[i].port == port && (config.backends[i].host == host || host == "localhost")) {
        return std::make_pair(advertised_host, static_cast<int32_t>(ports[i]));
      }
    }
    return std::nullopt;
  }
};
}  // namespace

bool Connection::on_request(const std::string& frame) {
  auto header = wire::parse_request_header(frame);
  if (!header) return false;
  const int16_t key = header->api_key;
  const int16_t version = header->api_version;
  if (key == wire::kListOffsets) {
    if (auto rewritten = wire::rewrite_list_offsets_request(*header, frame)) up_.out = std::move(*rewritten);
    return true;
  }
  if (key == wire::kJoinGroup || key == wire::kOffsetCommit) {
    if (auto mention = wire::parse_group_mention(*header, frame)) {
      auto& type = shared_.groups[mention->group];
      if (!mention->protocol_type.empty()) type = mention->protocol_type;
    }
  }
  if (key == wire::kJoinGroup) {
    // The mock crashes on JoinGroup requests without protocols.
    if (!wire::join_group_is_well_formed(*header, frame)) return false;
    if (auto rewritten = wire::cap_join_group_session_timeout(*header, frame, kMaxSessionTimeoutMs)) {
      up_.out = std::move(*rewritten);
    }
    return true;
  }
  if (key == wire::kListGroups && version <= 2) {
    // Answered here from the groups seen; the mock has no ListGroups.
    up_.out = wire::encode_placeholder_request(frame, *header);
    pending_[header->correlation_id] = {key, version, 0, {}};
    return true;
  }
  if ((key == wire::kFindCoordinator || key == wire::kApiVersions) && version <= 2) {
    pending_[header->correlation_id] = {key, version, version, {}};
    return true;
  }
  if (key != wire::kMetadata || version > 4) return true;
  // Forwarding a Metadata request the front end cannot read would let the
  // mock auto-create (or choke on) whatever it names.
  auto request = wire::parse_metadata_request(*header, frame);
  if (!request) return false;

  std::vector<wire::TopicError> missing;
  std::optional<std::vector<std::string>> forwarded = request->topics;
  if (request->topics) {
    forwarded->clear();
    for (const auto& topic : *request->topics) {
      if (shared_.known_topics.count(topic)) {
        forwarded->push_back(topic);
      } else if (!is_valid_topic_name(topic)) {
        missing.push_back({topic, wire::kInvalidTopic});
      } else if (shared_.config.auto_create && request->allow_auto_create) {
        try {
          shared_.config.create_topic(topic);
          shared_.known_topics.insert(topic);
          forwarded->push_back(topic);
        } catch (const Error& e) {
          fprintf(stderr, "kws: broker: %s\n", e.what());
          missing.push_back({topic, wire::kUnknownTopicOrPartition});
        }
      } else {
        missing.push_back({topic, wire::kUnknownTopicOrPartition});
      }
    }
  }
  int16_t broker_version = std::min<int16_t>(version, 2);
  // An empty v0 list would mean "all topics"; ask for all and filter nothing
  // rather than let the mock create what the client named.
  if (broker_version == 0 && forwarded && forwarded->empty()) forwarded = std::nullopt;
  if (broker_version != version || !missing.empty()) {
    up_.out = wire::encode_metadata_request(frame, *header, broker_version, forwarded);
  }
  pending_[header->correlation_id] = {key, version, broker_version, std::move(missing)};
  return true;
}

void Connection::on_response(const std::string& frame) {
  if (frame.size() < 4) return;
  int32_t correlation_id = static_cast<int32_t>((uint32_t(static_cast<unsigned char>(frame[0])) << 24) |
                                                (uint32_t(static_cast<unsigned char>(frame[1])) << 16) |
                                                (uint32_t(static_cast<unsigned char>(frame[2])) << 8) |
                                                uint32_t(static_cast<unsigned char>(frame[3])));
  auto it = pending_.find(correlation_id);
  if (it == pending_.end()) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  auto map = [this](const std::string& host, int32_t port) { return shared_.map(host, port); };
  std::optional<std::string> rewritten;
  switch (p.api_key) {
    case wire::kMetadata:
      rewritten = wire::rewrite_metadata_response(frame, p.broker_version, p.client_version, map, p.missing);
      break;
    case wire::kFindCoordinator:
      rewritten = wire::rewrite_find_coordinator_response(frame, p.client_version, map);
      break;
    case wire::kApiVersions:
      rewritten = wire::rewrite_api_versions_response(frame, p.client_version);
      break;
    case wire::kListGroups: {
      // A cluster lists each group once: the front end of broker 1 answers
      // for all of them, the others have none.
      std::vector<std::pair<std::string, std::string>> groups;
      if (backend_index_ == 0) groups.assign(shared_.groups.begin(), shared_.groups.end());
      rewritten = wire::encode_list_groups_response(correlation_id, p.client_version, groups);
      break;
    }
    default:
      break;
  }
  if (rewritten) down_.out = std::move(*rewritten);
}

struct BrokerFrontend::Impl {
  asio::io_context io;
  Shared shared;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  std::thread thread;

  void accept(size_t index) {
    acceptors[index]->async_accept([this, index](const asio::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        const auto& b = shared.config.backends[index];
        tcp::endpoint backend(asio::ip::make_address(b.host), b.port);
        std::make_shared<Connection>(std::move(socket), io, shared, backend, index)->start();
      }
      accept(index);
    });
  }
};

BrokerFrontend::BrokerFrontend(FrontendConfig config) : impl_(std::make_unique<Impl>()) {
  Shared& shared = impl_->shared;
  shared.config = std::move(config);
  shared.known_topics.insert(shared.config.existing_topics.begin(), shared.config.existing_topics.end());

  asio::error_code ec;
  auto address = asio::ip::make_address(shared.config.listen_host, ec);
  if (ec) throw usage_error("bad listen address '" + shared.config.listen_host + "': " + ec.message());
  shared.advertised_host = address.is_unspecified() ? "127.0.0.1" : shared.config.listen_host;

  for (size_t i = 0; i < shared.config.backends.size(); ++i) {
    uint16_t port = i == 0 ? shared.config.first_port : 0;
    auto acceptor = std::make_unique<tcp::acceptor>(impl_->io);
    tcp::endpoint endpoint(address, port);
    acceptor->open(endpoint.protocol(), ec);
    if (!ec) acceptor->set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor->bind(endpoint, ec);
    if (!ec) acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      throw Error("cannot listen on " + shared.config.listen_host + ":" + std::to_string(port) + ": " + ec.message());
    }
    shared.ports.push_back(acceptor->local_endpoint().port());
    impl_->acceptors.push_back(std::move(acceptor));
  }
  for (size_t i = 0; i < impl_->acceptors.size(); ++i) impl_->accept(i);
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

BrokerFrontend::~BrokerFrontend() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::string BrokerFrontend::bootstrap_servers() const {
  std::string out;
  const auto& host = impl_->shared.advertised_host;
  for (auto port : impl_->shared.ports) {
    if (!out.empty()) out += ',';
    out += (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  }
  return out;
}

}  // namespace kws
