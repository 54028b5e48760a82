#include "core/kafka/client.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/kafka/properties.hpp"
#include "core/util/error.hpp"

namespace kws {

void ClientEvents::record(rd_kafka_resp_err_t err, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  last_ = reason;
  last_code_ = err;
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

rd_kafka_resp_err_t ClientEvents::last_code() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_code_;
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
  LogSink* log = events ? events->log.load() : nullptr;
  if (!log) return;
  log->write(LogLevel::debug, "librdkafka " + std::to_string(level) + " " + fac + ": " + buf);
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

namespace {
// The user's settings, in the one way every kws command applies them.
void apply_settings(rd_kafka_conf_t* conf, const KafkaSettings& settings) {
  for (const auto& e : settings.entries()) set_property(conf, e.key, e.value, e.origin);
}
}  // namespace

void check_kafka_properties(const KafkaSettings& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  try {
    apply_settings(conf, settings);
  } catch (...) {
    rd_kafka_conf_destroy(conf);
    throw;
  }
  rd_kafka_conf_destroy(conf);
}

KafkaHandle create_client(const KafkaSettings& settings, const ClientOptions& options,
                          const KafkaContext& context, ClientEvents& events, rd_kafka_conf_t* extra_conf) {
  events.log = context.log;
  rd_kafka_conf_t* conf = extra_conf ? extra_conf : rd_kafka_conf_new();
  try {
    // A frozen broker keeps its connections open, and librdkafka waits
    // socket.timeout.ms (60 s by default) for each unanswered request before
    // it even reconnects; --timeout bounds that wait too.
    set_property(conf, "socket.timeout.ms", std::to_string(context.timeout.count()), "--timeout");
    // librdkafka batches by itself; with Nagle on as well, a small request
    // sent while the previous one is unacknowledged waits for the broker's
    // delayed ACK (40 ms on Linux). Kafka's Java clients always turn it off.
    set_property(conf, "socket.nagle.disable", "true", "kws default");
    for (const auto& [k, v] : options.defaults) set_property(conf, k, v, "kws default");
    apply_settings(conf, settings);
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

namespace {

std::string seconds_text(std::chrono::milliseconds ms) {
  char seconds[32];
  snprintf(seconds, sizeof seconds, "%g", ms.count() / 1000.0);
  return seconds;
}

}  // namespace

ConnectionWatch::ConnectionWatch(rd_kafka_t* rk, ClientEvents& events, std::string brokers,
                                 std::chrono::milliseconds limit)
    : rk_(rk),
      events_(events),
      brokers_(std::move(brokers)),
      limit_(limit),
      // Often enough that a silent cluster is noticed within a fraction of
      // the limit; one small request a second at most when all is well.
      probe_every_(std::clamp(limit / 4, std::chrono::milliseconds(100), std::chrono::milliseconds(1000))),
      last_answer_(std::chrono::steady_clock::now()),
      last_probe_(last_answer_) {}

std::optional<std::string> ConnectionWatch::check() {
  auto now = std::chrono::steady_clock::now();
  // Taken on every call, so that an old report cannot trigger a probe later.
  const bool all_down = events_.take(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN);
  const bool timed_out = events_.take(RD_KAFKA_RESP_ERR__TIMED_OUT);
  refused_ = refused_ || all_down;
  timed_out_ = timed_out_ || timed_out;
  const auto since_probe = now - last_probe_;
  if (since_probe < probe_every_ && !((all_down || timed_out) && since_probe >= std::chrono::milliseconds(100))) {
    return std::nullopt;
  }
  last_probe_ = now;
  const struct rd_kafka_metadata* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk_, 0, nullptr, &md, static_cast<int>(probe_every_.count()));
  if (md) rd_kafka_metadata_destroy(md);
  now = std::chrono::steady_clock::now();
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    last_answer_ = now;
    refused_ = timed_out_ = false;
    return std::nullopt;
  }
  if (now - last_answer_ <= limit_) return std::nullopt;
  lost_ = true;
  // A connection that was up and went quiet is a stopped or hung broker;
  // librdkafka's own words for it blame the broker's version ("broker
  // version < 0.10"), so say what happened instead.
  if (timed_out_ || !refused_) {
    return "Kafka at " + brokers_ + " stopped answering for more than " + seconds_text(limit_) +
           " s (--timeout)";
  }
  return "lost the connection to Kafka at " + brokers_ + " for more than " + seconds_text(limit_) +
         " s (--timeout): " + events_.last_error();
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
  throw Error("cannot reach Kafka at " + brokers + " within " + seconds_text(timeout) + " s: " + why +
              " (check -b, KWS_BROKERS or bootstrap.servers; is the broker running?)");
}

std::unique_ptr<ConnectionWatch> connect_and_watch(rd_kafka_t* rk, const std::string& brokers, ClientEvents& events,
                                                   const KafkaContext& context) {
  wait_for_brokers(rk, brokers, events, context);
  return std::make_unique<ConnectionWatch>(rk, events, brokers, context.timeout);
}

}  // namespace kws
