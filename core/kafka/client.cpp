#include "core/kafka/client.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "core/util/error.hpp"

namespace kws {

void ClientEvents::record(rd_kafka_resp_err_t err, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_ = reason;
  if (err == RD_KAFKA_RESP_ERR__FATAL) fatal_ = true;
  if (std::find(untaken_.begin(), untaken_.end(), err) == untaken_.end()) untaken_.push_back(err);
  for (auto& [code, why] : seen_) {
    if (code == err) {
      why = reason;
      return;
    }
  }
  seen_.emplace_back(err, reason);
}

bool ClientEvents::take(rd_kafka_resp_err_t err) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find(untaken_.begin(), untaken_.end(), err);
  if (it == untaken_.end()) return false;
  untaken_.erase(it);
  return true;
}

std::string ClientEvents::reason_for(rd_kafka_resp_err_t err) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [code, why] : seen_) {
    if (code == err) return why;
  }
  return "";
}

std::string ClientEvents::last_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_;
}

bool ClientEvents::saw(rd_kafka_resp_err_t err) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(seen_.begin(), seen_.end(), [err](const auto& e) { return e.first == err; });
}

bool ClientEvents::fatal() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return fatal_;
}

namespace {

void on_error(rd_kafka_t*, int err, const char* reason, void* opaque) {
  static_cast<ClientEvents*>(opaque)->record(static_cast<rd_kafka_resp_err_t>(err), reason);
}

void on_log_verbose(const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
  auto* events = static_cast<ClientEvents*>(rd_kafka_opaque(rk));
  if (!events || !events->log) return;
  events->log->write(LogLevel::debug, "librdkafka " + std::to_string(level) + " " + fac + ": " + buf);
}

// Without -v, librdkafka's own log lines would repeat what error_cb already
// tells us, in a format users cannot act on.
void on_log_quiet(const rd_kafka_t*, int, const char*, const char*) {}

}  // namespace

void set_property(rd_kafka_conf_t* conf, const std::string& key, const std::string& value,
                  const std::string& origin) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    throw usage_error(origin + ": " + key + "=" + value + ": " + errstr);
  }
}

KafkaHandle create_client(const KafkaSettings& settings, const ClientOptions& options,
                          const KafkaContext& context, ClientEvents& events, rd_kafka_conf_t* extra_conf) {
  events.log = context.log;
  rd_kafka_conf_t* conf = extra_conf ? extra_conf : rd_kafka_conf_new();
  try {
    for (const auto& [k, v] : options.defaults) set_property(conf, k, v, "kws default");
    for (const auto& e : settings.entries()) set_property(conf, e.key, e.value, e.origin);
    for (const auto& [k, v] : options.required) set_property(conf, k, v, "kws");
  } catch (...) {
    rd_kafka_conf_destroy(conf);
    throw;
  }
  rd_kafka_conf_set_error_cb(conf, on_error);
  rd_kafka_conf_set_opaque(conf, &events);
  rd_kafka_conf_set_log_cb(conf, context.verbosity > 0 && context.log ? on_log_verbose : on_log_quiet);

  char errstr[512];
  rd_kafka_t* rk = rd_kafka_new(options.type, conf, errstr, sizeof errstr);
  if (!rk) {
    // rd_kafka_new only takes ownership of conf on success.
    rd_kafka_conf_destroy(conf);
    throw usage_error(std::string("cannot create Kafka client: ") + errstr);
  }
  return KafkaHandle(rk);
}

std::optional<std::string> ConnectionWatch::check() {
  auto now = std::chrono::steady_clock::now();
  const bool down = down_since_ != std::chrono::steady_clock::time_point{};
  if (!down) {
    if (!events_.take(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN)) return std::nullopt;
    down_since_ = now;
  }
  if (now - last_probe_ < std::chrono::milliseconds(500)) return std::nullopt;
  last_probe_ = now;
  const struct rd_kafka_metadata* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, nullptr, &md, 100);
  if (md) rd_kafka_metadata_destroy(md);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    down_since_ = {};
    return std::nullopt;
  }
  if (now - down_since_ > limit_) {
    char seconds[32];
    snprintf(seconds, sizeof seconds, "%g", limit_.count() / 1000.0);
    return "lost the connection to Kafka at " + brokers_ + " for more than " + seconds +
           " s (--timeout): " + events_.last_error();
  }
  return std::nullopt;
}

void wait_for_brokers(rd_kafka_t* rk, const std::string& brokers, ClientEvents& events,
                      const KafkaContext& context) {
  const auto timeout = context.timeout;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  while (true) {
    const struct rd_kafka_metadata* md = nullptr;
    err = rd_kafka_metadata(rk, 0, nullptr, &md, 200);
    if (md) rd_kafka_metadata_destroy(md);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
    rd_kafka_poll(rk, 0);  // serves error_cb
    if (context.stopping()) throw Error("interrupted while connecting to Kafka at " + brokers, exit_interrupted);
    if (events.saw(RD_KAFKA_RESP_ERR__RESOLVE)) {
      throw Error("cannot reach Kafka at " + brokers + ": " + events.reason_for(RD_KAFKA_RESP_ERR__RESOLVE));
    }
    if (events.fatal() || std::chrono::steady_clock::now() >= deadline) break;
  }
  std::string why = events.last_error();
  if (why.empty()) why = rd_kafka_err2str(err);
  char seconds[32];
  snprintf(seconds, sizeof seconds, "%g", timeout.count() / 1000.0);
  throw Error("cannot reach Kafka at " + brokers + " within " + seconds + " s: " + why +
              " (check -b, KWS_BROKERS or bootstrap.servers; is the broker running?)");
}

std::unique_ptr<ConnectionWatch> connect_and_watch(rd_kafka_t* rk, const std::string& brokers, ClientEvents& events,
                                                   const KafkaContext& context) {
  wait_for_brokers(rk, brokers, events, context);
  return std::make_unique<ConnectionWatch>(rk, events, brokers, context.timeout);
}

}  // namespace kws
