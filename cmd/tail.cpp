// kws tail: read topics into a terminal or a pipe, kcat -C style.
#include "cmd/tail.hpp"

#include <unistd.h>

#include "core/envelope.hpp"
#include "core/util/error.hpp"
#include "core/format.hpp"
#include "core/kafka/consumer.hpp"
#include "core/offset_spec.hpp"
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
    "[OPTIONS] TOPIC...",
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
    "closes the consumer (committing, with -G) and exits 130 (143 after SIGTERM).",
    {{"kws tail demo", "follow new messages on topic demo (kcat's kws tail -t demo works too)"},
     {"kws tail -o beginning -e demo", "print everything in demo, then exit"},
     {"kws tail -o -10 -e demo", "the last 10 messages of each partition"},
     {"kws tail -o 2024-05-01T00:00:00Z -f '%I %k %s\\n' demo", "from a time, with timestamps and keys"},
     {"kws tail -J -c 5 -o beginning demo", "the first five messages as JSON envelopes"},
     {"kws tail -G billing orders", "consume as a member of group billing, committing offsets"}},
    ""};

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
  app->callback([&o, app] {
    o.offset_given = app->count("--offset") > 0;
    o.format_given = app->count("--format") > 0;
  });
  return app;
}

int run_tail(const TailOptions& o) {
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
  std::optional<MessageFormat> format;
  if (!o.json) {
    if (o.format_given && o.format.empty()) throw usage_error("-f needs a format; '' would print nothing");
    format = MessageFormat::parse(o.format_given ? o.format : std::string("%s\\n"), colour_enabled(STDOUT_FILENO));
    plan.want_headers = format->uses_headers();
  } else {
    plan.want_headers = true;
  }

  KafkaSettings settings = o.connection.resolve();
  StderrLog log = o.connection.log();
  Consumer consumer(settings, plan, o.connection.kafka_context(log));

  // On a terminal every message shows at once; into a pipe, output is
  // batched and flushed whenever the topic goes quiet.
  const bool interactive = isatty(STDOUT_FILENO) == 1;
  OutputBuffer out(STDOUT_FILENO, interactive ? 0 : (1 << 16));
  auto sink = [&](const MessageView& m) {
    auto& b = out.buffer();
    if (format) {
      format->append(b, m);
    } else {
      append_envelope_json(b, m);
      b += '\n';
    }
    if (interactive) return out.flush();
    out.maybe_flush();
    return !out.closed();
  };
  // A quiet topic writes nothing, so `kws tail t | head -1` would never
  // learn that head exited; check the pipe while idle.
  auto idle = [&] { return out.flush() && !out.reader_gone(); };
  // Interrupted or not, this is a clean end; main turns a stop signal into
  // 130 or 143.
  consumer.run(sink, limits, idle);
  out.flush();
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
