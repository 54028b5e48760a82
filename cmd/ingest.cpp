// kws ingest: keep a ws/wss feed (or stdin) flowing into a Kafka topic.
#include "cmd/ingest.hpp"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>

#include "core/ingest/runner.hpp"
#include "core/ingest/session.hpp"
#include "core/ingest/stdin_feed.hpp"
#include "core/ingest/units.hpp"
#include "core/kafka/producer.hpp"
#include "core/util/error.hpp"
#include "core/util/input.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"
#include "core/util/text_endpoint.hpp"
#include "core/ws/client.hpp"
#include "core/util/text.hpp"

namespace kws::cmd {

const CommandDoc ingest_doc{
    "ingest",
    "Pipe a WebSocket feed (or stdin) into a Kafka topic, for days",
    "[OPTIONS] URL TOPIC",
    "Connects to URL (ws:// or wss://; - reads standard input, one message per line) and produces "
    "every message to TOPIC, text and binary frames alike. The Kafka side is that of kws send: "
    "-b -X -F, an idempotent acks=all producer, -H NAME=VALUE headers, -p, -k.\n\n"
    "After every (re)connect kws sends the --subscribe messages in order (and the lines of "
    "--subscribe-file); with --await-reply it waits for a message containing PATTERN before it "
    "counts the connection as confirmed. A lost or failed connection is retried with exponential "
    "backoff and full jitter (--backoff-initial, --backoff-max, --backoff-multiplier); a "
    "connection that stayed confirmed for 5 s (a healthy one) resets the backoff and the retry count. "
    "--max-retries N gives up after N failed attempts in a row and exits 1; the default is to "
    "retry forever. Until the feed has had a healthy connection, an attempt that fails for a "
    "reason waiting will not fix ends kws at once with exit 1, saying so: the host name does not "
    "resolve, the feed answers the upgrade with an HTTP 4xx (but 408 and 429), its certificate "
    "does not verify, wss:// meets a plain port or ws:// a TLS port, or the answer is not HTTP at "
    "all. --retry-permanent retries those too; after a healthy connection everything is retried, "
    "since a feed that worked may come back.\n\n"
    "Liveness: WebSocket pings every --ping-interval, and a reconnect when no pong arrives within "
    "--pong-timeout; --stale-after D reconnects when no message arrived for D; --heartbeat MSG is "
    "sent every --heartbeat-interval for feeds that want an application ping, and messages "
    "containing --heartbeat-reply are taken as its answer (not produced). For feeds that ping in "
    "their own protocol, messages containing --answer-ping are answered with --answer-with and not "
    "produced. None of these exit: they reconnect.\n\n"
    "Records: the value is the message, the timestamp its receive time. Every record carries the "
    "headers kws-source (the URL without user, password or query; - for stdin), kws-received-ms (receive time, "
    "ms since the epoch) and kws-connection (1 for the first connection, counting up on every "
    "reconnect), unless --no-source-headers. The first record of every reconnected connection also "
    "carries kws-downtime-ms, the time between losing the previous connection and opening this one, "
    "so consumers can tell a quiet feed from an outage. With --markers record, kws also produces a "
    "marker record when a connection opens: header kws-marker (connected or reconnected), the "
    "headers above, and the value {\"kws_marker\":...,\"connection\":N,\"downtime_ms\":D}. Binary "
    "frames carry kws-frame: binary. --key-field /json/pointer keys each record by that field of the "
    "message (a message without it gets a null key and is counted); --filter /pointer=value keeps "
    "only matching messages (repeatable, all must match; strings compare without quotes, other "
    "values as compact JSON; an expression that reads like another syntax, such as /a==b, "
    "/a!=b, /a>=1, /a=\"b\" or blanks around =, is refused rather than matching nothing); "
    "--seq-field /pointer counts the sequence numbers the feed skipped. "
    "A binary frame whose bytes are JSON is treated like text.\n\n"
    "Buffering: messages wait in a bounded buffer (--buffer-messages, --buffer-bytes) while Kafka is "
    "slow or away. The two bound all that kws holds between the feed and Kafka: a quarter of each "
    "goes to the producer's queue (librdkafka's queue.buffering.max.messages and "
    "queue.buffering.max.kbytes, which keep what was handed over until Kafka confirms it), the rest "
    "to kws's own buffer; a queue size given with -X stands, and then the buffer keeps the whole "
    "bound. Memory use is about 10 MiB, plus the bytes held, plus some 260 bytes per message held "
    "(docs/BENCHMARKS.md). --when-full block (the default) stops reading the socket so TCP pushes back on the "
    "feed and nothing is lost; drop-oldest and drop-newest drop instead, and every drop is counted. "
    "A message over --max-message-size is lost and counted as dropped; on a WebSocket it also ends "
    "the connection, on standard input reading goes on with the next line. "
    "The buffer may briefly hold more than its limits: what the socket had already read when it "
    "filled (block), and one batch on its way to the producer (a quarter of --buffer-messages, at "
    "most 4096). When every broker stays unreachable for longer than --timeout kws warns and keeps "
    "holding; it does not exit.\n\n"
    "On SIGINT or SIGTERM, at the end of input, or when --count or --duration is reached, kws stops "
    "reading, closes the connection (code 1001), flushes everything buffered to Kafka, prints a "
    "summary line on stderr and exits. On a terminal a status line shows the connection, counts, "
    "buffer fill and the age of the last message. --tee also writes every message to stdout; "
    "--dry-run connects, subscribes and prints the first --count (default 10) messages without "
    "producing; with --key-field or --filter each line starts with what a real run would do, "
    "pass (then key=\"KEY\" as JSON, or key=null when the message lacks the field) or filtered "
    "(and why), and a tab before the message.\n\n"
    "The summary line counts feed messages (lines of standard input), each once. received: every "
    "message read, up to the one that reached --count (what the feed sends after it is left "
    "unread); it is the sum of the next six. produced: confirmed by Kafka (with --dry-run, shown: "
    "printed instead). filtered: left out by --filter. dropped: lost inside kws, the sum of "
    "dropped_oldest and dropped_newest (a full buffer under --when-full) and oversize (over "
    "--max-message-size). failed: refused by Kafka, failed, or still unconfirmed when kws had to "
    "give up. heartbeat_replies: answers to --heartbeat; pings_answered: the feed's own pings "
    "(--answer-ping); neither is produced. Then: connections, opened in all; key_missing, "
    "messages kept that lacked the --key-field (their key is null); heartbeats_sent; with --markers "
    "record, markers and markers_failed, the marker records delivered and not; with --seq-field, "
    "seq_gaps (jumps within a connection), seq_skipped (numbers missing within connections), "
    "seq_out_of_order and seq_skipped_across_reconnects. In parentheses: why the run ended.\n\n"
    "The flags that tune reconnects, liveness and buffering (--backoff-*, --max-retries, "
    "--ping-interval, --pong-timeout, --stale-after, --heartbeat-interval, --await-timeout, "
    "--buffer-*, --when-full, --max-message-size) are kws settings: each can also come from its "
    "KWS_INGEST_ variable or a kws.ingest. line in the config file (see SETTINGS); the flag beats "
    "the variable, which beats the file.\n\n"
    "The bearer token (--bearer, --bearer-file, or the environment variable KWS_INGEST_BEARER, which "
    "keeps it out of ps) is sent as 'Authorization: Bearer TOKEN'.",
    {{"kws ingest wss://stream.example.com/ws trades --subscribe '{\"op\":\"subscribe\",\"channel\":\"trades\"}' "
      "--key-field /symbol",
      "keep a ticker flowing into 'trades', keyed by symbol"},
     {"kws ingest wss://feed.example/ws iot --heartbeat '{\"op\":\"ping\"}' --heartbeat-interval 15s "
      "--heartbeat-reply '\"pong\"' --stale-after 60s",
      "a feed that wants an application ping"},
     {"kws ingest --dry-run wss://feed.example/ws x --subscribe hello", "look at the first 10 messages"},
     {"tail -F app.log | kws ingest - logs", "stdin as the source"}},
    "0 after the end of input, --count or --duration, when every message read was delivered. 1 "
    "when any message or marker record was dropped or not delivered, when --max-retries was "
    "exhausted, or when the feed failed for a reason waiting will not fix before its first "
    "healthy connection (the message says why). After SIGINT or SIGTERM, 130 or 143 even when messages were lost: the "
    "summary line says how many."};

CLI::App* register_ingest(CLI::App& parent, IngestOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, ingest_doc);
  app->add_option("url", o.url, "ws:// or wss:// URL of the feed, or - for stdin")->required()->type_name("URL");
  app->add_option("topic", o.topic, "Topic to produce to")->required()->type_name("TOPIC");

  const char* feed = "Feed";
  app->add_option("--subscribe", o.subscribe, "Message sent after every (re)connect (repeatable, in order)")
      ->type_name("MSG")
      ->allow_extra_args(false)
      ->group(feed);
  app->add_option("--subscribe-file", o.subscribe_file, "File whose lines are sent after every (re)connect")
      ->type_name("FILE")
      ->group(feed);
  app->add_option("--await-reply", o.await_reply, "Count a connection as confirmed once a message contains PATTERN")
      ->type_name("PATTERN")
      ->group(feed);
  add_setting_flag(app, "--await-timeout", "ingest.await_timeout", o.settings,
                   "Reconnect when the awaited reply does not come within D")
      ->group(feed);
  app->add_option("--bearer", o.bearer, "Send 'Authorization: Bearer TOKEN' (else $KWS_INGEST_BEARER)")
      ->type_name("TOKEN")
      ->group(feed);
  app->add_option("--bearer-file", o.bearer_file, "Read the bearer token from FILE")->type_name("FILE")->group(feed);
  app->add_option("--ws-header", o.ws_headers, "Handshake header (repeatable; the value may contain commas)")
      ->type_name("'NAME: VALUE'")
      ->allow_extra_args(false)
      ->group(feed);
  app->add_option("--origin", o.origin, "Origin header of the handshake")->type_name("ORIGIN")->group(feed);
  app->add_option("--protocol", o.protocols, "Offer this subprotocol (repeatable)")
      ->type_name("NAME")
      ->allow_extra_args(false)
      ->group(feed);
  app->add_option("--ca", o.ca_file, "Trust the CA certificates in FILE instead of the system store")
      ->type_name("FILE")
      ->group(feed);
  app->add_option("--client-cert", o.cert_file, "Client certificate chain (PEM), for feeds that want mutual TLS")->type_name("FILE")->group(feed);
  app->add_option("--client-key", o.key_file, "Private key of --client-cert (PEM; default: in the same file)")->type_name("FILE")->group(feed);
  app->add_flag("--insecure", o.insecure, "Do not check the feed's certificate or host name (warns)")->group(feed);
  add_setting_flag(app, "--max-message-size", "ingest.max_message_size", o.settings,
                   "Largest message accepted; a bigger one is counted as dropped")
      ->group(feed);

  const char* live = "Reconnect and liveness";
  add_setting_flag(app, "--backoff-initial", "ingest.backoff_initial", o.settings,
                   "Ceiling of the first reconnect delay")
      ->group(live);
  add_setting_flag(app, "--backoff-max", "ingest.backoff_max", o.settings, "Highest reconnect delay ceiling")
      ->group(live);
  add_setting_flag(app, "--backoff-multiplier", "ingest.backoff_multiplier", o.settings,
                   "Growth of the ceiling per failed attempt")
      ->group(live);
  add_setting_flag(app, "--max-retries", "ingest.max_retries", o.settings,
                   "Give up (exit 1) after N failed retries in a row (0: at the first failure)")
      ->group(live);
  app->add_flag("--retry-permanent", o.retry_permanent,
                "Retry from the start even what waiting will not fix (unknown host, HTTP 4xx, TLS mismatch, "
                "bad certificate)")
      ->group(live);
  add_setting_flag(app, "--ping-interval", "ingest.ping_interval", o.settings, "WebSocket ping interval (0: none)")
      ->group(live);
  add_setting_flag(app, "--pong-timeout", "ingest.pong_timeout", o.settings,
                   "Reconnect when a ping gets no pong within D (0: do not wait for pongs)")
      ->group(live);
  add_setting_flag(app, "--stale-after", "ingest.stale_after", o.settings,
                   "Reconnect when no message arrived for D (0: never)")
      ->group(live);
  app->add_option("--heartbeat", o.heartbeat, "Application heartbeat message, sent every --heartbeat-interval")
      ->type_name("MSG")
      ->group(live);
  add_setting_flag(app, "--heartbeat-interval", "ingest.heartbeat_interval", o.settings, "Interval of --heartbeat")
      ->group(live);
  app->add_option("--heartbeat-reply", o.heartbeat_reply, "Messages containing PATTERN answer the heartbeat; not produced")
      ->type_name("PATTERN")
      ->group(live);
  app->add_option("--answer-ping", o.answer_ping, "Messages containing PATTERN are the feed's own pings: answer, do not produce")
      ->type_name("PATTERN")
      ->group(live);
  app->add_option("--answer-with", o.answer_with, "The answer to --answer-ping")->type_name("MSG")->group(live);

  const char* rec = "Records";
  app->add_option("-H,--header", o.headers, "Kafka header on every record (repeatable)")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false)
      ->group(rec);
  app->add_option("-p,--partition", o.partition, "Partition (default: the partitioner's choice by key)")
      ->type_name("N")
      ->check(integer_in(0, INT32_MAX))
      ->group(rec);
  app->add_option("-k,--key", o.key, "Key for every record")->type_name("KEY")->group(rec);
  app->add_option("--key-field", o.key_field, "Key each record by this field of the JSON message")
      ->type_name("/POINTER")
      ->group(rec);
  app->add_option("--filter", o.filters, "Keep only messages whose field equals VALUE (repeatable, all must match)")
      ->type_name("/POINTER=VALUE")
      ->allow_extra_args(false)
      ->group(rec);
  app->add_option("--seq-field", o.seq_field, "Count sequence numbers the feed skipped, read from this field")
      ->type_name("/POINTER")
      ->group(rec);
  app->add_option("--markers", o.markers, "Mark reconnects with headers only, or also with a marker record")
      ->type_name("headers|record")
      ->default_str("headers")
      ->check(CLI::IsMember({"headers", "record"}))
      ->group(rec);
  app->add_flag("--no-source-headers", o.no_source_headers,
                "Leave out kws-source, kws-received-ms and kws-connection (kws-downtime-ms stays)")
      ->group(rec);

  const char* buf = "Buffering and delivery";
  add_setting_flag(app, "--buffer-messages", "ingest.buffer_messages", o.settings, "Messages the buffer holds")
      ->group(buf);
  add_setting_flag(app, "--buffer-bytes", "ingest.buffer_bytes", o.settings, "Bytes the buffer holds")->group(buf);
  add_setting_flag(app, "--when-full", "ingest.when_full", o.settings,
                   "What a full buffer does: stop reading, or drop and count")
      ->group(buf);
  app->add_option("-c,--count", o.count, "Stop after N messages")
      ->type_name("N")
      ->check(integer_in(1, INT64_MAX))
      ->group(buf);
  app->add_option("--duration", o.duration, "Stop after D (a plain number is seconds)")->type_name("D")->group(buf);

  const char* obs = "Output";
  app->add_option("--metrics", o.metrics, "Serve Prometheus metrics at http://HOST:PORT/metrics (port 0: any)")
      ->type_name("HOST:PORT")
      ->group(obs);
  app->add_flag("--tee", o.tee, "Also write every message to stdout, one per line")->group(obs);
  app->add_flag("--dry-run", o.dry_run, "Connect and subscribe, print the first messages, produce nothing")->group(obs);
  app->add_flag("-q,--quiet", o.quiet, "No status line and no summary unless something went wrong")->group(obs);

  add_connection_options(app, o.connection);
  app->callback([&o, app] { o.key_given = app->count("--key") > 0; });
  return app;
}

namespace {

std::string read_secret_file(const std::string& path) {
  std::string content(trim(read_whole_file(path)));
  if (content.empty()) throw usage_error("--bearer-file " + path + " is empty");
  return content;
}

// The status line on a terminal, redrawn about once a second.
class StatusLine {
 public:
  explicit StatusLine(bool enabled) : enabled_(enabled) {}
  void show(const std::string& text) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    fprintf(stderr, "\r\033[K%s", text.c_str());
    fflush(stderr);
    shown_ = true;
  }
  void clear() {
    if (shown_) fprintf(stderr, "\r\033[K");
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

// Log lines must not land in the middle of the status line.
class StatusAwareLog : public LogSink {
 public:
  StatusAwareLog(LogSink& inner, StatusLine& status) : inner_(inner), status_(status) {}
  void write(LogLevel level, std::string_view message) override {
    std::lock_guard<std::mutex> lock(mutex_);
    status_.clear();
    inner_.write(level, message);
  }
  std::mutex mutex_;

 private:
  LogSink& inner_;
  StatusLine& status_;
};

// Prometheus text exposition of one ingest run.
std::string render_metrics(const SessionStats& s, const IngestBuffer::Stats& b, const BufferLimits& limits,
                           const RunCounters& c) {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& samples) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + samples;
  };
  auto one = [](const char* name, uint64_t v) { return std::string(name) + " " + std::to_string(v) + "\n"; };
  metric("kws_ingest_messages_received_total", "counter", "Messages read from the feed.",
         one("kws_ingest_messages_received_total", s.received));
  metric("kws_ingest_messages_filtered_total", "counter", "Messages --filter left out.",
         one("kws_ingest_messages_filtered_total", s.filtered_out));
  metric("kws_ingest_records_produced_total", "counter", "Feed messages Kafka acknowledged (marker records apart).",
         one("kws_ingest_records_produced_total", c.delivered));
  metric("kws_ingest_records_failed_total", "counter",
         "Feed messages Kafka refused or did not acknowledge (marker records apart).",
         one("kws_ingest_records_failed_total", c.failed));
  metric("kws_ingest_messages_dropped_total", "counter", "Messages dropped, by reason.",
         "kws_ingest_messages_dropped_total{reason=\"oldest\"} " + std::to_string(b.dropped_oldest) +
             "\nkws_ingest_messages_dropped_total{reason=\"newest\"} " + std::to_string(b.dropped_newest) +
             "\nkws_ingest_messages_dropped_total{reason=\"oversize\"} " + std::to_string(s.oversize) + "\n");
  metric("kws_ingest_connections_total", "counter", "Feed connections opened.",
         one("kws_ingest_connections_total", s.connections));
  metric("kws_ingest_connected", "gauge", "1 while the feed is connected.",
         one("kws_ingest_connected", s.connected ? 1 : 0));
  metric("kws_ingest_buffer_messages", "gauge", "Messages in the buffer.", one("kws_ingest_buffer_messages", b.messages));
  metric("kws_ingest_buffer_bytes", "gauge", "Bytes in the buffer.", one("kws_ingest_buffer_bytes", b.bytes));
  metric("kws_ingest_buffer_capacity_messages", "gauge", "--buffer-messages.",
         one("kws_ingest_buffer_capacity_messages", limits.messages));
  metric("kws_ingest_reading_paused", "gauge", "1 while a full buffer holds the feed back.",
         one("kws_ingest_reading_paused", b.paused ? 1 : 0));
  if (s.last_message_age) {
    char age[64];
    snprintf(age, sizeof age, "kws_ingest_last_message_age_seconds %.3f\n", s.last_message_age->count() / 1000.0);
    metric("kws_ingest_last_message_age_seconds", "gauge", "Seconds since the last message.", age);
  }
  metric("kws_ingest_seq_skipped_total", "counter", "Sequence numbers the feed skipped (--seq-field).",
         one("kws_ingest_seq_skipped_total", s.seq_skipped));
  metric("kws_ingest_heartbeats_sent_total", "counter", "Application heartbeats sent.",
         one("kws_ingest_heartbeats_sent_total", s.heartbeats_sent));
  metric("kws_ingest_kafka_up", "gauge", "0 while every broker is unreachable.",
         one("kws_ingest_kafka_up", c.kafka_down ? 0 : 1));
  return out;
}

// The feed is created after the session that listens to it; this forwards
// the session's calls to it.
class FeedRef : public FeedConnection {
 public:
  FeedConnection* target = nullptr;
  void connect() override { target->connect(); }
  void send_text(const std::string& t) override { target->send_text(t); }
  void close(const std::string& why) override { target->close(why); }
  void pause_reading() override { target->pause_reading(); }
  void resume_reading() override { target->resume_reading(); }
};

}  // namespace

int run_ingest(const IngestOptions& o) {
  // Before anything starts, so a bad value is only a usage error naming where
  // it came from; a value hidden by a higher layer is not looked at.
  ConnectionOptions::Resolved resolved = o.connection.resolve("ingest", o.settings);
  const KwsSettings& settings = resolved.kws;
  const bool from_stdin = o.url == "-";
  if (!from_stdin && o.url.rfind("ws://", 0) != 0 && o.url.rfind("wss://", 0) != 0) {
    throw usage_error("URL '" + o.url + "' must start with ws:// or wss:// (or be - for stdin)");
  }
  if (o.key_given && !o.key_field.empty()) throw usage_error("give -k or --key-field, not both");
  if (!o.bearer.empty() && !o.bearer_file.empty()) throw usage_error("give --bearer or --bearer-file, not both");
  // The interval may come from the environment or the config file, for the
  // runs that give --heartbeat; on the command line the two go together.
  const KwsSetting& heartbeat_interval = settings.at("ingest.heartbeat_interval");
  const bool heartbeat_timed = settings.duration("ingest.heartbeat_interval").count() > 0;
  if (!o.heartbeat.empty() && !heartbeat_timed) {
    throw usage_error("--heartbeat needs an interval: --heartbeat-interval (or " + heartbeat_interval.key->env + ", or " +
                      heartbeat_interval.key->file_key() + " in the config file)");
  }
  if (o.heartbeat.empty() && heartbeat_timed && heartbeat_interval.source == ConfigSource::flag) {
    throw usage_error("--heartbeat-interval needs --heartbeat (the message to send)");
  }

  // Headers on every record, as kws send parses them.
  std::vector<Header> extra_headers;
  for (const auto& s : o.headers) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw usage_error("bad header '" + s + "': expected -H NAME=VALUE");
    extra_headers.push_back({s.substr(0, eq), s.substr(eq + 1)});
  }

  SessionSettings session;
  session.open_messages = o.subscribe;
  if (!o.subscribe_file.empty()) {
    std::ifstream in(o.subscribe_file);
    if (!in) throw usage_error("cannot read --subscribe-file " + o.subscribe_file);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) session.open_messages.push_back(line);
    }
  }
  session.await_reply = o.await_reply;
  session.await_timeout = settings.duration("ingest.await_timeout");
  session.stale_after = settings.duration("ingest.stale_after");
  session.heartbeat = o.heartbeat;
  session.heartbeat_interval = settings.duration("ingest.heartbeat_interval");
  session.heartbeat_reply = o.heartbeat_reply;
  if (o.answer_ping.empty() != o.answer_with.empty()) throw usage_error("--answer-ping and --answer-with go together");
  session.ping_pattern = o.answer_ping;
  session.ping_answer = o.answer_with;
  session.backoff.initial = settings.duration("ingest.backoff_initial");
  session.backoff.max = settings.duration("ingest.backoff_max");
  session.backoff.multiplier = settings.factor("ingest.backoff_multiplier");
  if (session.backoff.max < session.backoff.initial) {
    const KwsSetting& max = settings.at("ingest.backoff_max");
    const KwsSetting& initial = settings.at("ingest.backoff_initial");
    throw usage_error(max.where() + ": '" + max.text + "' is below ingest.backoff_initial, " + initial.text + " (" +
                      initial.where() + ")");
  }
  const std::optional<uint64_t> max_retries = settings.limit("ingest.max_retries");
  session.max_retries = max_retries ? static_cast<int64_t>(*max_retries) : -1;
  session.retry_permanent = o.retry_permanent;
  session.markers = o.markers == "record" ? MarkerMode::record : MarkerMode::headers;
  session.take = o.count > 0 ? o.count : (o.dry_run ? 10 : 0);
  session.show_filtered = o.dry_run;

  FieldSpecs specs;
  specs.key_field = o.key_field;
  specs.filters = o.filters;
  specs.seq_field = o.seq_field;
  FieldRules rules(specs);

  BufferLimits held;  // all kws holds between the feed and Kafka
  held.messages = settings.count("ingest.buffer_messages");
  held.bytes = settings.bytes("ingest.buffer_bytes");
  held.when_full = *parse_when_full(settings.choice("ingest.when_full"));
  auto given = [&](const char* property) {
    const ConfigEntry* e = resolved.kafka.find(property);
    return e && e->source != ConfigSource::default_value;
  };
  const HeldLimits split =
      split_held_limits(held, given("queue.buffering.max.messages"), given("queue.buffering.max.kbytes"));
  const BufferLimits& limits = split.buffer;
  if (split.producer_messages) {
    resolved.kafka.set({"queue.buffering.max.messages", std::to_string(*split.producer_messages),
                        ConfigSource::default_value, "a quarter of --buffer-messages"});
  }
  if (split.producer_kbytes) {
    resolved.kafka.set({"queue.buffering.max.kbytes", std::to_string(*split.producer_kbytes),
                        ConfigSource::default_value, "a quarter of --buffer-bytes"});
  }

  FeedClientSettings client;
  client.url = o.url;
  std::string bearer = o.bearer;
  if (!o.bearer_file.empty()) bearer = read_secret_file(o.bearer_file);
  if (bearer.empty()) {
    if (const char* env = std::getenv("KWS_INGEST_BEARER")) bearer = env;
  }
  if (!bearer.empty()) client.headers.emplace_back("Authorization", "Bearer " + bearer);
  for (const auto& h : o.ws_headers) {
    auto colon = h.find(':');
    if (colon == std::string::npos || colon == 0) throw usage_error("bad --ws-header '" + h + "': expected 'Name: value'");
    client.headers.emplace_back(trim(h.substr(0, colon)), trim(h.substr(colon + 1)));
  }
  client.origin = o.origin;
  client.protocols = o.protocols;
  client.tls = {o.ca_file, o.cert_file, o.key_file, o.insecure};
  client.ping_interval = settings.duration("ingest.ping_interval");
  client.pong_timeout = settings.duration("ingest.pong_timeout");
  client.max_message_size = settings.bytes("ingest.max_message_size");
  const std::chrono::milliseconds run_for = parse_duration(o.duration, "--duration", /*zero_allowed=*/true);
  if (from_stdin && (!o.subscribe.empty() || !o.subscribe_file.empty() || !o.heartbeat.empty() || !bearer.empty() ||
                     !o.ws_headers.empty() || !o.ca_file.empty() || o.insecure)) {
    throw usage_error("feed options (--subscribe, --heartbeat, --bearer, --ws-header, TLS) need a ws:// or wss:// URL");
  }

  StatusLine status(isatty(STDERR_FILENO) == 1 && !o.quiet);
  StderrLog plain_log = o.connection.log();
  StatusAwareLog log(plain_log, status);

  IngestBuffer buffer(limits);
  FeedRef feed_ref;
  FeedSession feed_session(feed_ref, buffer, session, std::move(rules), log);
  std::unique_ptr<FeedConnection> feed;
  if (from_stdin) {
    feed = std::make_unique<StdinFeed>(feed_session, STDIN_FILENO, client.max_message_size);
  } else {
    feed = make_feed_client(client, feed_session, log);
  }
  feed_ref.target = feed.get();

  // Kafka before the first feed connection: a cluster that is not there is
  // an error before anything is read. (The feed client above only checked
  // its settings and TLS files.)
  std::unique_ptr<Producer> producer;
  if (!o.dry_run) {
    producer = std::make_unique<Producer>(resolved.kafka, o.connection.kafka_context(log));
    const int32_t partitions = producer->prepare_topic(o.topic);
    if (o.partition >= partitions) {
      throw Error("topic '" + o.topic + "' has " + std::to_string(partitions) + " partition(s); there is no partition " +
                  std::to_string(o.partition));
    }
  }

  RecordSettings records;
  records.topic = o.topic;
  if (o.partition >= 0) records.partition = o.partition;
  if (o.key_given) records.key = o.key;
  records.extra_headers = extra_headers;
  records.source = from_stdin ? "-" : source_label(o.url);
  records.ingest_headers = !o.no_source_headers;
  IngestRunner runner(feed_session, buffer, feed_ref, producer.get(), records, log);

  std::unique_ptr<TextEndpoint> metrics;
  if (!o.metrics.empty()) {
    HostPort at = parse_listen_address(o.metrics, "--metrics");
    metrics = std::make_unique<TextEndpoint>(at.host, at.port, "text/plain; version=0.0.4");
    log.note("metrics at http://" + at.host + ":" + std::to_string(metrics->port()) + "/metrics");
  }

  OutputBuffer out(STDOUT_FILENO);
  RunHooks hooks;
  hooks.stop = [] { return stop_requested(); };
  if (producer) hooks.kafka_lost = [&] { return producer->connection_lost(); };
  // A dry run with --key-field or --filter says what a real run would do
  // with each message: "pass" (and the key) or "filtered (why)", a tab, the
  // message.
  const bool annotate = o.dry_run && (!o.key_field.empty() || !o.filters.empty());
  const FieldRules explain(specs);
  if (o.tee || o.dry_run) {
    hooks.tee = [&](const IngestItem& item) {
      if (out.closed()) return;
      std::string& line = out.buffer();
      if (annotate) {
        if (item.filtered) {
          line += "filtered (" + explain.why_filtered(item.payload) + ")";
        } else {
          line += "pass";
          if (!o.key_field.empty()) {
            line += " key=";
            if (item.key) {
              line += '"';
              append_json_escaped(line, *item.key);
              line += '"';
            } else {
              line += "null";
            }
          }
        }
        line += '\t';
      }
      line += item.payload;
      line += '\n';
      out.maybe_flush();
    };
  }
  hooks.tick = [&] {
    if (o.tee || o.dry_run) out.flush();
    SessionStats s = feed_session.stats();
    IngestBuffer::Stats b = buffer.stats();
    const RunCounters& c = runner.counters();
    if (metrics) metrics->set(render_metrics(s, b, held, c));
    std::string line = std::string("kws: ") + (s.connected ? "connected" : "not connected") +
                       " | received " + std::to_string(s.received) + " | produced " + std::to_string(c.delivered) +
                       " | dropped " + std::to_string(b.dropped_oldest + b.dropped_newest + s.oversize) +
                       " | reconnects " + std::to_string(s.connections > 0 ? s.connections - 1 : 0) + " | buffer " +
                       std::to_string(limits.messages ? b.messages * 100 / limits.messages : 0) + "%";
    if (s.last_message_age) line += " | last " + format_duration(*s.last_message_age) + " ago";
    if (c.kafka_down) line += " | kafka down";
    std::lock_guard<std::mutex> lock(log.mutex_);
    status.show(line);
  };

  RunLimits run_limits;
  run_limits.duration = run_for;
  const RunEnd end = runner.run(run_limits, hooks);
  status.clear();
  out.flush();
  feed.reset();  // closes the I/O thread before the session goes away

  SessionStats s = feed_session.stats();
  IngestBuffer::Stats b = buffer.stats();
  const RunCounters& c = runner.counters();
  const uint64_t dropped = b.dropped_oldest + b.dropped_newest + s.oversize;
  const uint64_t not_delivered = c.failed + c.undelivered;
  // Each number is defined in kws-ingest(1) (SUMMARY in ingest_doc); the
  // first seven add up: received = produced (shown) + filtered + dropped +
  // failed + heartbeat_replies + pings_answered.
  std::string summary = "summary: received=" + std::to_string(s.received) +
                        (o.dry_run ? " shown=" + std::to_string(c.echoed.load())
                                   : " produced=" + std::to_string(c.delivered.load())) +
                        " filtered=" + std::to_string(s.filtered_out) + " dropped=" + std::to_string(dropped) +
                        " failed=" + std::to_string(not_delivered) +
                        " heartbeat_replies=" + std::to_string(s.heartbeat_replies) +
                        " pings_answered=" + std::to_string(s.pings_answered) +
                        " dropped_oldest=" + std::to_string(b.dropped_oldest) +
                        " dropped_newest=" + std::to_string(b.dropped_newest) +
                        " oversize=" + std::to_string(s.oversize) + " connections=" + std::to_string(s.connections) +
                        " key_missing=" + std::to_string(s.key_missing) +
                        " heartbeats_sent=" + std::to_string(s.heartbeats_sent);
  if (o.markers == "record") {
    summary += " markers=" + std::to_string(c.markers_delivered) + " markers_failed=" + std::to_string(c.markers_failed);
  }
  if (!o.seq_field.empty()) {
    summary += " seq_gaps=" + std::to_string(s.seq_gaps) + " seq_skipped=" + std::to_string(s.seq_skipped) +
               " seq_out_of_order=" + std::to_string(s.seq_out_of_order) +
               " seq_skipped_across_reconnects=" + std::to_string(s.seq_skipped_across_reconnects);
  }
  std::string reason;
  switch (end) {
    case RunEnd::interrupted: reason = "interrupted"; break;
    case RunEnd::count_reached:
      reason = o.count > 0 ? "--count reached" : "--dry-run shows the first " + std::to_string(session.take);
      break;
    case RunEnd::duration_reached: reason = "--duration reached"; break;
    case RunEnd::gave_up: reason = "gave up"; break;
    case RunEnd::end_of_input: reason = "end of input"; break;
  }
  const bool bad = dropped > 0 || not_delivered > 0 || c.markers_failed > 0 || feed_session.failure();
  if (!o.quiet || bad) print_diagnostic("note", summary + " (" + reason + ")");
  if (feed_session.failure()) throw Error(*feed_session.failure());
  if (not_delivered > 0) {
    print_diagnostic("error", std::to_string(not_delivered) + " message(s) not delivered to Kafka");
  }
  if (c.markers_failed > 0) {
    print_diagnostic("error", std::to_string(c.markers_failed) + " marker record(s) not delivered to Kafka");
  }
  if (dropped > 0) print_diagnostic("error", std::to_string(dropped) + " message(s) dropped (see the summary)");
  return bad ? exit_failure : exit_ok;
}

}  // namespace kws::cmd
