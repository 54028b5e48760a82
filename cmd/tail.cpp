// kws tail: read topics into a terminal or a pipe, kcat -C style.
#include "cmd/tail.hpp"

#include <unistd.h>

#include <memory>
#include <optional>

#include "core/envelope.hpp"
#include "core/util/error.hpp"
#include "core/format.hpp"
#include "core/kafka/consumer.hpp"
#include "core/offset_spec.hpp"
#include "core/remote/bridge_tail.hpp"
#include "core/remote/bridge_url.hpp"
#include "core/topic_name.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"

namespace kws::cmd {

namespace {
// The -f tokens (core/format.hpp) in one text for --help (its footer) and the
// man page (DESCRIPTION), so neither sends the reader to the other.
constexpr const char* kFormatTokens =
    "Format tokens (-f), kcat's: %t topic, %p partition, %o offset, %k key, %s value, %S value "
    "length and %K key length (-1 for null), %T timestamp (ms), %h headers (name=value,...), plus %I "
    "the timestamp as ISO-8601 UTC and %% a percent sign; escapes \\n \\t \\r \\0 \\\\ \\xNN.";
}  // namespace

const CommandDoc tail_doc{
    "tail",
    "Print messages from Kafka topics (kcat -C habits)",
    "[OPTIONS] TOPIC... | [OPTIONS] ws://HOST:PORT/[v2/broker/?topics=T,...] [TOPIC...]",
    "Reads every partition of each TOPIC and prints one message value per line. By default it "
    "starts at the end and waits for new messages, like tail -f; -o picks another start, -e "
    "stops once every partition has been read to its end, -c stops after a count.\n\n"
    "Start positions (-o): beginning; end; stored (the group's committed offset, needs -G); N "
    "(absolute offset); -N (the last N messages of each partition); @MS or s@MS (the first "
    "message at or after a timestamp in milliseconds); or an ISO-8601 time such as "
    "2024-05-01T12:00:00Z or 2024-05-01 (UTC unless a zone is given).\n\n"
    "Without -G no consumer group is used and nothing is committed. With -G GROUP, kws joins "
    "the group, reads the partitions the group assigns to it and commits offsets; it resumes "
    "from the committed offsets (or the end, where there are none) unless -o is given, which "
    "then overrides them once per partition.\n\n" +
        std::string(kFormatTokens) +
        " -J prints "
        "the kws JSON envelope (docs/PROTOCOL.md), one per line; `kws send -J` reads it back. On a "
    "terminal, -f colours the metadata tokens (never the value) unless NO_COLOR is set; "
    "CLICOLOR_FORCE forces colour into a pipe.\n\n"
    "When no broker has answered for --timeout seconds, kws tail exits 1 saying so; with -G it "
    "then leaves without committing.\n\n"
    "A reader that goes away (kws tail ... | head) ends kws quietly with status 0. Ctrl-C "
    "closes the consumer (committing, with -G) and exits 130 (143 after SIGTERM).\n\n"
    "Through a bridge: when the first argument is a ws:// or wss:// URL, kws tail reads through "
    "that kws serve bridge exactly as a browser does, offering the subprotocol kws.v1, instead of "
    "talking to Kafka. The URL's topics= names the topics (or give TOPIC arguments after the URL); "
    "a URL with no path, or /, means the bridge's /v2/broker/. -o becomes the offset= parameter "
    "(beginning, end, N, -N, @MS, an ISO-8601 time), -f, -J and -c work as above, and -e stops at "
    "the ends the bridge's subscribed reply reports (end_offsets), once every partition delivered "
    "the offset before its end or had nothing to deliver, or once the bridge says it is past them "
    "(caught_up=1, which -e adds to the URL: with a filter= the last message below an end may stay "
    "on the bridge). A partition whose last offset is a transaction marker, which no reader is "
    "given, keeps -e waiting for its next message. The "
    "bridge's error frames go to stderr "
    "and make the exit status 1 (a topic it refuses is not waited for); lost and dropped notices "
    "go to stderr as warnings. --timeout bounds the connection (TCP, TLS and the upgrade), and a "
    "bridge that does not answer a ping within --timeout mid-run ends it with status 1; a "
    "refused connection or an HTTP answer (401, 403, 404, ...) is an error that shows the status "
    "and the bridge's reason. --token FILE (else the environment variable KWS_TOKEN) sends a "
    "bearer token as Authorization: Bearer; --ca, --client-cert, --client-key and --insecure "
    "apply to wss://. -b, -X, -F, -G and -p are refused with a URL: the bridge has its own Kafka "
    "settings, and joins groups with group.id= in the URL.",
    {{"kws tail demo", "follow new messages on topic demo (kcat's kws tail -t demo works too)"},
     {"kws tail -o beginning -e demo", "print everything in demo, then exit"},
     {"kws tail -o -10 -e demo", "the last 10 messages of each partition"},
     {"kws tail -o 2024-05-01T00:00:00Z -f '%I %k %s\\n' demo", "from a time, with timestamps and keys"},
     {"kws tail -J -c 5 -o beginning demo", "the first five messages as JSON envelopes"},
     {"kws tail -G billing orders", "consume as a member of group billing, committing offsets"},
     {"kws tail 'ws://127.0.0.1:8080/v2/broker/?topics=demo' -o -10", "through a kws serve bridge: the last 10, then live"},
     {"KWS_TOKEN=$(cat token) kws tail -J -o beginning -e wss://bridge.example.com/ demo",
      "everything in demo through a bridge that wants a token, as JSON envelopes"}},
    "1 also when a bridge (ws:// URL) cannot be reached, refuses the connection, answers with an "
    "error frame, or closes before the run ended."};

CLI::App* register_tail(CLI::App& parent, TailOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, tail_doc);
  // -t as kcat spells it; a TOPIC argument means the same.
  app->add_option("topics,-t,--topic", o.topics, "Topic to read (repeatable; TOPIC arguments also work)")
      ->required()
      ->type_name("TOPIC");
  app->add_option("-o,--offset", o.offset,
                  "Start: beginning|end|stored|N|-N|@MS|ISO-8601 time (default: end; with -G: stored)")
      ->type_name("OFFSET");
  app->add_flag("-e,--exit", o.exit_at_end, "Exit once every partition has been read to its end");
  app->add_option("-c,--count", o.count, "Exit after N messages")
      ->type_name("N")
      ->check(integer_in(0, INT64_MAX));
  app->add_option("-p,--partition", o.partition, "Read only partition N of each topic")
      ->type_name("N")
      ->check(integer_in(0, INT32_MAX));
  app->add_option("-G,--group", o.group, "Consume as a member of consumer GROUP and commit offsets")
      ->type_name("GROUP");
  auto* format = app->add_option("-f,--format", o.format, "Output format: kcat's % tokens and \\ escapes, listed under 'Format tokens'")
                     ->type_name("FORMAT");
  app->add_flag("-J,--json", o.json, "Print each message as a kws JSON envelope")->excludes(format);
  app->footer(kFormatTokens);
  add_connection_options(app, o.connection);
  add_bridge_options(app, o.bridge);
  app->callback([&o, app] {
    o.offset_given = app->count("--offset") > 0;
    o.format_given = app->count("--format") > 0;
  });
  return app;
}

namespace {

// The output side both ways share: -f or -J into stdout. On a terminal
// every message shows at once; into a pipe, output is batched and flushed
// whenever the topic goes quiet.
class TailOutput {
 public:
  explicit TailOutput(const TailOptions& o)
      : interactive_(isatty(STDOUT_FILENO) == 1), out_(STDOUT_FILENO, interactive_ ? 0 : (1 << 16)) {
    if (!o.json) {
      if (o.format_given && o.format.empty()) throw usage_error("-f needs a format; '' would print nothing");
      format_ = MessageFormat::parse(o.format_given ? o.format : std::string("%s\\n"), colour_enabled(STDOUT_FILENO));
    }
  }
  bool wants_headers() const { return !format_ || format_->uses_headers(); }
  // One message; false once the reader went away.
  bool write(const MessageView& m) {
    auto& b = out_.buffer();
    if (format_) {
      format_->append(b, m);
    } else {
      append_envelope_json(b, m);
      b += '\n';
    }
    if (interactive_) return out_.flush();
    out_.maybe_flush();
    return !out_.closed();
  }
  // While nothing arrives: a quiet topic writes nothing, so `kws tail t |
  // head -1` would never learn that head exited; check the pipe.
  bool idle() { return out_.flush() && !out_.reader_gone(); }
  void flush() { out_.flush(); }

 private:
  bool interactive_;
  OutputBuffer out_;
  std::optional<MessageFormat> format_;
};

// kws tail ws://HOST:PORT/v2/broker/?topics=a: through a kws serve bridge.
int run_tail_bridge(const TailOptions& o) {
  refuse_kafka_flags_for_bridge(o.connection);
  if (!o.group.empty()) {
    throw usage_error("-G cannot be used with a ws:// URL: a bridge's consumer groups are joined with group.id= in the URL");
  }
  if (o.partition >= 0) throw usage_error("-p cannot be used with a ws:// URL: a bridge subscribes to every partition");
  BridgeRequest request;
  for (size_t i = 1; i < o.topics.size(); ++i) {
    if (is_bridge_url(o.topics[i])) throw usage_error("give one bridge URL, not several");
    check_topic_name(o.topics[i]);
    request.topics.push_back(o.topics[i]);
  }
  if (o.offset_given) {
    OffsetSpec start = parse_offset_spec(o.offset);  // a typo fails here, before connecting
    if (start.kind == OffsetSpec::Kind::stored) {
      throw usage_error("-o stored needs a consumer group; through a bridge, use group.id= in the URL");
    }
    request.offset = o.offset;
  }
  // -e stops at the end offsets of the `subscribed` replies; with a
  // filter= the last message below them may stay on the bridge, so the
  // bridge says when it got there (caught_up).
  request.caught_up = o.exit_at_end;
  BridgeTarget target = make_bridge_target(o.topics[0], request);
  if (target.topics.empty()) {
    throw usage_error("nothing to read: add ?topics=a,b to the URL, or give TOPIC arguments after it");
  }
  if (o.exit_at_end && target.group) {
    throw usage_error("-e cannot be used with group.id=: a group session's reply has no end offsets");
  }
  TailOutput output(o);
  StderrLog log = o.connection.log();
  FeedClientSettings client = bridge_client_settings(o.bridge, o.connection, target.url, {"kws.v1"});

  BridgeTailPlan plan;
  plan.topics = target.topics;
  plan.exit_at_end = o.exit_at_end;
  plan.count = o.count;
  BridgeTail tail(target.url, plan, [&output](const MessageView& m) { return output.write(m); }, log);
  std::unique_ptr<FeedConnection> connection = make_feed_client(client, tail, log);
  tail.attach(*connection);
  BridgeTailResult result;
  if (tail.open(o.connection.timeout(), stop_requested)) {
    result = tail.run(stop_requested, [&output] { return output.idle(); });
  }
  connection.reset();  // its thread ends before the listener does
  output.flush();
  if (!result.failure.empty()) throw Error(result.failure);
  if (result.lost > 0) {
    log.warning(std::to_string(result.lost) + " message(s) were deleted by retention before they could be read; "
                "the output has gaps (see the warnings above)");
  }
  if (result.errors > 0) {
    // Each was reported as it came.
    log.error(std::to_string(result.errors) + " error(s) from the bridge");
    return exit_failure;
  }
  return exit_ok;
}

}  // namespace

int run_tail(const TailOptions& o) {
  if (!o.topics.empty() && is_bridge_url(o.topics[0])) return run_tail_bridge(o);
  refuse_bridge_flags_for_kafka(o.bridge);
  for (const auto& t : o.topics) {
    if (is_bridge_url(t)) throw usage_error("a ws:// or wss:// URL must be the first argument: '" + t + "'");
  }
  ConsumerPlan plan;
  plan.topics = o.topics;
  if (o.partition >= 0) plan.partition = o.partition;
  for (const auto& t : o.topics) check_topic_name(t);
  if (o.partition >= 0 && !o.group.empty()) {
    throw usage_error("-p cannot be combined with -G (the group assigns partitions)");
  }
  plan.start_explicit = o.offset_given;
  if (plan.start_explicit) {
    plan.start = parse_offset_spec(o.offset);
  } else {
    plan.start.kind = o.group.empty() ? OffsetSpec::Kind::end : OffsetSpec::Kind::stored;
  }
  plan.group = o.group;
  plan.want_end_events = o.exit_at_end;
  RunLimits limits{o.exit_at_end, o.count};

  // Formats are checked before connecting, so a typo fails fast.
  TailOutput output(o);
  plan.want_headers = output.wants_headers();

  KafkaSettings settings = o.connection.resolve();
  StderrLog log = o.connection.log();
  Consumer consumer(settings, plan, o.connection.kafka_context(log));

  auto sink = [&](const MessageView& m) { return output.write(m); };
  auto idle = [&] { return output.idle(); };
  // Interrupted or not, this is a clean end; main turns a stop signal into
  // 130 or 143.
  consumer.run(sink, limits, idle);
  output.flush();
  consumer.close();
  if (uint64_t lost = consumer.lost_messages()) {
    // Each gap was reported as it happened; the total is what a reader
    // of the output needs to know it is not the whole topic.
    log.warning(std::to_string(lost) + " message(s) were deleted by retention before they could be read; "
                "the output has gaps (see the warnings above)");
  }
  return exit_ok;
}

}  // namespace kws::cmd
