// kws send: produce from a terminal or a pipe, kcat -P style.
#include "cmd/send.hpp"

#include <unistd.h>

#include <functional>
#include <memory>

#include <chrono>
#include <optional>

#include "core/envelope.hpp"
#include "core/util/error.hpp"
#include "core/util/input.hpp"
#include "core/kafka/cluster.hpp"
#include "core/kafka/producer.hpp"
#include "core/outgoing.hpp"
#include "core/remote/bridge_send.hpp"
#include "core/remote/bridge_url.hpp"
#include "core/topic_name.hpp"
#include "core/util/output.hpp"
#include "core/util/signals.hpp"
#include "core/util/text.hpp"

namespace kws::cmd {

const CommandDoc send_doc{
    "send",
    "Produce messages to a Kafka topic (kcat -P habits)",
    "[OPTIONS] TOPIC [MESSAGE...] | [OPTIONS] ws://HOST:PORT/ TOPIC [MESSAGE...]",
    "Sends each MESSAGE argument as one message. Without arguments it reads standard input and "
    "sends one message per line (-D changes the delimiter); --file sends a whole file as one "
    "message.\n\n"
    "It is safe by default: the producer is idempotent with acks=all, and kws waits for the "
    "delivery report of every message before it exits. If any message was not delivered it "
    "prints how many on stderr and exits 1. When no broker has answered for --timeout seconds "
    "(a dead or stopped broker), it stops at once, however slowly its input arrives, and says how "
    "many messages were not delivered and where it stopped reading. Nothing goes to stdout unless "
    "--print-offsets is given; its lines appear as the deliveries happen. When stderr is a terminal and the input is large, a progress line shows the rate.\n\n"
    "With -J each input line is a kws envelope, the JSON shape that `kws tail -J` prints "
    "(docs/PROTOCOL.md): per-message key, headers, partition and timestamp are kept, and binary "
    "data travels as base64. kcat -J's shape (payload, ts, tstype, flat headers) is read too. Every "
    "line needs a value: only \"message\": null (or kcat's \"payload\": null) sends a tombstone, and a "
    "line without one is rejected naming its unknown fields, so a typo cannot delete a key. "
    "`kws tail -J -e -o beginning SRC | kws send -J --create-like SRC DST` copies a topic: "
    "--create-like creates DST, when it does not exist, with as many partitions as SRC (without it "
    "a broker may auto-create DST with its default count). "
    "An envelope whose partition DST does not have is rejected, unless --any-partition lets "
    "the partitioner choose by key. "
    "A line that is not a valid envelope is reported with its line number on stderr, the other "
    "lines are still sent, and the exit status is 1.\n\n"
    "Through a bridge: when the first argument is a ws:// or wss:// URL, kws send produces "
    "through that kws serve bridge instead of talking to Kafka (a URL with no path, or /, means "
    "the bridge's /v2/broker/). Each record becomes one produce frame, a kws envelope with an id "
    "(-k, -K, -H, -p and -J mean what they mean above), and kws waits for the bridge's ack of "
    "every one; --print-offsets prints what the acks report. At most 64 frames wait for their "
    "answer at a time, so a large input is read as fast as the bridge acknowledges it, never "
    "held in memory. A frame the bridge refuses with rate_limited is sent again after a pause of "
    "a second; any other error frame is printed on stderr with its input line and makes the exit "
    "status 1. --timeout bounds the connection (TCP, TLS and the upgrade), and a bridge that "
    "does not answer a ping within --timeout mid-run ends it with status 1; a refused connection "
    "or an HTTP answer (401, 403, 404, ...) is an error that shows the status and the bridge's "
    "reason. --token FILE (else the environment variable KWS_TOKEN) sends a bearer token as "
    "Authorization: Bearer; --ca, --client-cert, --client-key and --insecure apply to wss://. "
    "-b, -X, -F and --create-like are refused with a URL: the bridge has its own Kafka settings.",
    {{"kws send demo hello world", "send two messages, \"hello\" and \"world\""},
     {"seq 1000 | kws send -K : -H source=seq demo", "send 1000 lines, with a header on each"},
     {"printf 'user1:hi\\\\n' | kws send -K : demo", "send a message with key \"user1\" and value \"hi\""},
     {"kws send --file photo.jpg -k photo demo", "send a whole file as one message"},
     {"kws tail -J -e -o beginning src | kws send -J --create-like src dst",
      "copy a topic with keys, headers and partitions, creating dst like src"},
     {"kws tail -J -e -o beginning src | kws send -J --any-partition dst",
      "copy into a topic with fewer partitions"},
     {"seq 100 | kws send -K : ws://127.0.0.1:8080/ demo", "send 100 lines through a kws serve bridge, acked"},
     {"kws send --token token --ca ca.pem wss://bridge.example.com/ demo hello", "through a bridge that wants a token, over TLS"}},
    "1 also when any message was not delivered or an input line was rejected; through a bridge, when a "
    "message was not acknowledged (an error frame, or no answer before the connection ended)."};

CLI::App* register_send(CLI::App& parent, SendOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, send_doc);
  app->add_option("topic", o.topic, "Topic to produce to")->required()->type_name("TOPIC");
  app->add_option("messages", o.messages, "Messages to send, one per argument (else stdin)")
      ->type_name("MESSAGE");
  app->add_option("-D,--delimiter", o.delimiter, "Message delimiter for stdin (escapes allowed: '\\0', '\\t')")
      ->type_name("DELIM")
      ->default_str("\\n");
  app->add_option("-K,--key-delimiter", o.key_delimiter, "Split each message into key and value at the first DELIM")
      ->type_name("DELIM");
  app->add_option("-k,--key", o.key, "Key for every message")->type_name("KEY");
  app->add_option("-H,--header", o.headers, "Header on every message (repeatable)")
      ->type_name("NAME=VALUE")
      ->allow_extra_args(false);
  app->add_option("-p,--partition", o.partition, "Partition (default: the partitioner's choice by key)")
      ->type_name("N")
      ->check(integer_in(0, INT32_MAX));
  app->add_flag("-J,--json", o.json, "Each input line is a kws JSON envelope (as printed by kws tail -J or kcat -J)");
  app->add_flag("--any-partition", o.any_partition,
                "With -J, ignore the envelopes' partitions and let the partitioner choose by key");
  app->add_option("--create-like", o.create_like,
                  "Create TOPIC, if it does not exist, with as many partitions as SOURCE has")
      ->type_name("SOURCE");
  app->add_option("--file", o.files, "Send the whole FILE as one message (repeatable)")
      ->type_name("PATH")
      ->allow_extra_args(false);
  app->add_flag("--print-offsets", o.print_offsets, "Print 'topic partition offset' per delivered message");
  add_connection_options(app, o.connection);
  add_bridge_options(app, o.bridge);
  app->callback([&o, app] { o.key_given = app->count("--key") > 0; });
  return app;
}

namespace {

// A bad stream can have millions of bad lines: show the first few, count all.
class RejectedLines {
 public:
  void reject(uint64_t line_number, const std::string& why) {
    constexpr uint64_t kShown = 20;
    if (++count_ <= kShown) {
      print_diagnostic("error", "input line " + std::to_string(line_number) + ": " + why);
    } else if (count_ == kShown + 1) {
      print_diagnostic("error", "more input lines rejected; not showing them");
    }
  }
  uint64_t count() const { return count_; }

 private:
  uint64_t count_ = 0;
};

// Hands every input record to `send_record`, in order, until it returns
// false: the MESSAGE arguments, the --file contents, or stdin split by
// `delimiter` (newlines with -J). Returns how many records there are when
// that is known in advance (arguments, files), else 0.
uint64_t feed_input(const SendOptions& o, std::string_view delimiter,
                    const std::function<bool(std::string_view)>& send_record, const StopCheck& should_stop,
                    const IdleCall& idle) {
  if (!o.messages.empty()) {
    for (const auto& m : o.messages) {
      if (!send_record(m)) break;
    }
    return o.messages.size();
  }
  if (!o.files.empty()) {
    for (const auto& path : o.files) {
      std::string content = read_whole_file(path);
      if (!send_record(content)) break;
    }
    return o.files.size();
  }
  if (isatty(STDIN_FILENO) == 1) {
    print_diagnostic("note", "reading messages from the terminal, one per line; end with Ctrl-D");
  }
  read_delimited(STDIN_FILENO, o.json ? std::string_view("\n") : delimiter, send_record, should_stop, idle);
  return 0;
}

// What was left unsent when sending stopped early, after record `line_number`.
std::string input_left_message(const SendOptions& o, uint64_t line_number, uint64_t input_records) {
  std::string where = !o.messages.empty() ? "MESSAGE argument" : !o.files.empty() ? "--file" : "input line";
  std::string msg = "stopped after " + where + " " + std::to_string(line_number);
  msg += input_records > 0 ? "; the " + std::to_string(input_records - line_number) + " after it were not sent"
                           : "; the rest of the input was never read";
  return msg;
}

// A rate line on stderr, redrawn at most once a second, only on a terminal.
class ProgressLine {
 public:
  ProgressLine() : enabled_(isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()) {}
  void update(uint64_t sent) {
    if (!enabled_ || (sent & 1023) != 0) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(1) || now - start_ < std::chrono::seconds(1)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    fprintf(stderr, "\rkws: sent %llu messages (%.0f msg/s)   ", static_cast<unsigned long long>(sent), sent / secs);
    shown_ = true;
  }
  void finish() {
    if (shown_) fprintf(stderr, "\r\033[K");
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
};

std::vector<Header> parse_headers(const std::vector<std::string>& specs) {
  std::vector<Header> headers;
  for (const auto& s : specs) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw usage_error("bad header '" + s + "': expected -H NAME=VALUE");
    }
    headers.push_back({s.substr(0, eq), s.substr(eq + 1)});
  }
  return headers;
}

// The checks both ways share, before anything connects.
void check_send_options(const SendOptions& o, const std::string& key_delimiter, const std::string& delimiter) {
  if (delimiter.empty()) throw usage_error("-D must not be empty");
  if (o.json && (!key_delimiter.empty())) throw usage_error("-K cannot be combined with -J (keys come from the envelope)");
  if (!o.messages.empty() && !o.files.empty()) throw usage_error("give MESSAGE arguments or --file, not both");
  if (o.json && !o.files.empty()) throw usage_error("--file sends raw bytes; use -J with stdin or MESSAGE arguments");
  if (o.any_partition && !o.json) throw usage_error("--any-partition only applies to -J input");
}

// kws send ws://HOST:PORT/ TOPIC: through a kws serve bridge, one produce
// frame per record, every one answered by an ack or an error.
int run_send_bridge(const SendOptions& given) {
  SendOptions o = given;
  const std::string url = o.topic;
  if (o.messages.empty()) throw usage_error("kws send " + url + " needs a TOPIC after the URL");
  o.topic = o.messages.front();
  o.messages.erase(o.messages.begin());
  refuse_kafka_flags_for_bridge(o.connection);
  if (!o.create_like.empty()) {
    throw usage_error("--create-like cannot be used with a ws:// URL: a bridge creates topics with the broker's defaults");
  }
  const std::vector<Header> extra_headers = parse_headers(o.headers);
  const std::string delimiter = unescape(o.delimiter);
  const std::string key_delimiter = unescape(o.key_delimiter);
  check_send_options(o, key_delimiter, delimiter);
  check_topic_name(o.topic);
  BridgeTarget target = make_bridge_target(url, {});
  if (!target.topics.empty() || target.group) {
    throw usage_error("'" + url + "' subscribes (topics= or group.id=); kws send only produces: drop the query");
  }
  StderrLog log = o.connection.log();
  FeedClientSettings client = bridge_client_settings(o.bridge, o.connection, target.url, {"kws.v1"});

  const bool tty = isatty(STDOUT_FILENO) == 1;
  OutputBuffer out(STDOUT_FILENO);
  std::function<void(const BridgeAck&)> on_ack;
  if (o.print_offsets) {
    // On the connection's thread; main touches `out` again only after it ended.
    on_ack = [&out, tty](const BridgeAck& a) {
      auto& b = out.buffer();
      b.append(a.topic);
      b += ' ';
      b += std::to_string(a.partition);
      b += ' ';
      b += std::to_string(a.offset);
      b += '\n';
      if (tty) {
        out.flush();
      } else {
        out.maybe_flush();
      }
    };
  }
  BridgeSend sender(target.url, BridgeSendLimits{}, on_ack, log);
  std::unique_ptr<FeedConnection> connection = make_feed_client(client, sender, log);
  sender.attach(*connection);
  if (!sender.open(o.connection.timeout(), stop_requested)) return exit_ok;  // main exits 130 or 143

  RecordPolicy policy;
  policy.topic = o.topic;
  if (o.partition >= 0) policy.partition = o.partition;
  policy.keep_envelope_partition = !o.any_partition;
  if (o.key_given) policy.key = o.key;
  policy.key_delimiter = key_delimiter;
  policy.extra_headers = extra_headers;

  PreparedRecord prepared;
  uint64_t line_number = 0;
  RejectedLines rejected;
  bool stopped_early = false;
  auto reject_line = [&](const std::string& why) { rejected.reject(line_number, why); };
  auto send_record = [&](std::string_view record) {
    ++line_number;
    // The prepared record points into the decoded envelope: it must live
    // until the record is sent.
    DecodedEnvelope decoded;
    if (o.json) {
      if (record.find_first_not_of(" \t\r") == std::string_view::npos) return true;  // blank line
      decoded = decode_envelope(record);
      if (!decoded) {
        reject_line(decoded.error);
        return true;
      }
      if (auto why = prepare_envelope_record(*decoded.message, policy, prepared)) {
        reject_line(*why);
        return true;
      }
    } else {
      prepare_plain_record(record, policy, prepared);
    }
    if (!sender.send(prepared.record, line_number, stop_requested) || stop_requested()) stopped_early = true;
    return !stopped_early;
  };
  IdleCall idle{[&] {
                  if (sender.connected()) return true;
                  stopped_early = true;
                  return false;
                },
                std::chrono::milliseconds(200)};
  const uint64_t input_records = feed_input(o, delimiter, send_record, [&] {
    if (stop_requested()) stopped_early = true;
    return stopped_early;
  }, idle);

  // Every frame sent gets its answer; 5 s after a Ctrl-C kws stops waiting
  // and counts the rest as unanswered.
  auto interrupted_at = std::chrono::steady_clock::time_point{};
  sender.finish([&] {
    if (!stop_requested()) return false;
    auto now = std::chrono::steady_clock::now();
    if (interrupted_at == std::chrono::steady_clock::time_point{}) interrupted_at = now;
    return now - interrupted_at > std::chrono::seconds(5);
  });
  connection.reset();  // its thread (and so on_ack) ends here
  out.flush();

  int status = exit_ok;
  const uint64_t failed = sender.refused() + sender.unanswered();
  if (failed > 0 || !sender.failure().empty()) {
    std::string msg;
    if (!sender.failure().empty()) msg = sender.failure() + "; ";
    msg += std::to_string(failed) + " of " + std::to_string(sender.sent()) + " message(s) not acknowledged";
    if (sender.unanswered() > 0) msg += " (" + std::to_string(sender.unanswered()) + " unanswered: they may or may not have been written)";
    print_diagnostic("error", msg);
    status = exit_failure;
  }
  if (sender.other_errors() > 0) status = exit_failure;  // each reported as it came
  const bool input_left = stopped_early && (input_records == 0 || line_number < input_records);
  if (input_left) {
    print_diagnostic(stop_requested() ? "note" : "error", input_left_message(o, line_number, input_records));
    if (!stop_requested()) status = exit_failure;
  }
  if (rejected.count() > 0) {
    print_diagnostic("error", std::to_string(rejected.count()) + " input line(s) rejected; the other " +
                                  std::to_string(sender.acked()) + " message(s) were sent");
    status = exit_failure;
  }
  return status;  // after a signal, main exits 130 or 143 instead
}

}  // namespace

int run_send(const SendOptions& o) {
  if (is_bridge_url(o.topic)) return run_send_bridge(o);
  refuse_bridge_flags_for_kafka(o.bridge);
  const std::vector<Header> extra_headers = parse_headers(o.headers);
  const std::string delimiter = unescape(o.delimiter);
  const std::string key_delimiter = unescape(o.key_delimiter);
  check_send_options(o, key_delimiter, delimiter);

  check_topic_name(o.topic);
  if (!o.create_like.empty()) check_topic_name(o.create_like);
  KafkaSettings settings = o.connection.resolve();
  StderrLog log = o.connection.log();
  // Before the producer, whose first look at TOPIC may auto-create it with
  // the broker's default partition count.
  if (!o.create_like.empty()) {
    CreatedLike made = create_topic_like(settings, o.topic, o.create_like, o.connection.kafka_context(log));
    const std::string counts = std::to_string(made.partitions) + " partition(s)";
    if (made.created) {
      log.note("created topic '" + o.topic + "' with " + counts + ", as '" + o.create_like + "' has");
    } else if (made.partitions != made.source_partitions) {
      log.note("topic '" + o.topic + "' exists with " + counts + "; '" + o.create_like + "' has " +
               std::to_string(made.source_partitions));
    }
  }
  Producer producer(settings, o.connection.kafka_context(log));
  const int32_t partitions = producer.prepare_topic(o.topic);
  if (o.partition >= partitions) {
    throw Error("topic '" + o.topic + "' has " + std::to_string(partitions) +
                " partition(s); there is no partition " + std::to_string(o.partition));
  }

  OutputBuffer out(STDOUT_FILENO);
  if (o.print_offsets) {
    producer.on_delivery([&out](const Delivery& d) {
      if (!d.ok()) return;
      auto& b = out.buffer();
      b.append(d.topic);
      b += ' ';
      b += std::to_string(d.partition);
      b += ' ';
      b += std::to_string(d.offset);
      b += '\n';
      out.maybe_flush();
    });
  }

  RecordPolicy policy;
  policy.topic = o.topic;
  if (o.partition >= 0) policy.partition = o.partition;
  policy.keep_envelope_partition = !o.any_partition;
  policy.partition_count = partitions;
  if (o.key_given) policy.key = o.key;
  policy.key_delimiter = key_delimiter;
  policy.extra_headers = extra_headers;

  ProgressLine progress;
  uint64_t queued = 0;
  RejectedLines rejected_lines;
  PreparedRecord prepared;
  // Set once no broker answered for --timeout; sending stops there.
  std::optional<std::string> lost;
  uint64_t line_number = 0;  // input records handed on so far (lines, arguments or files)
  std::string rejected;
  uint64_t shown_rejections = 0;
  auto produce = [&](const OutgoingRecord& record) {
    rejected.clear();
    if (!producer.produce(record, &rejected)) {
      lost = producer.connection_lost();
      return false;
    }
    progress.update(++queued);
    if (!rejected.empty() && ++shown_rejections <= 20) {
      std::string where = !o.messages.empty() ? "MESSAGE argument " : !o.files.empty() ? "--file " : "input line ";
      print_diagnostic("error", where + std::to_string(line_number) + ": " + rejected);
    }
    return true;
  };

  auto reject_line = [&](const std::string& why) { rejected_lines.reject(line_number, why); };
  auto send_plain = [&](std::string_view record) {
    prepare_plain_record(record, policy, prepared);
    return produce(prepared.record);
  };
  auto send_envelope = [&](std::string_view line) {
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return true;  // blank line
    DecodedEnvelope decoded = decode_envelope(line);
    if (!decoded) {
      reject_line(decoded.error);
      return true;
    }
    if (auto why = prepare_envelope_record(*decoded.message, policy, prepared)) {
      if (why->find("does not exist in topic") != std::string::npos) {
        *why += "; pass --any-partition to let the partitioner choose, or -p N";
      }
      reject_line(*why);
      return true;
    }
    return produce(prepared.record);
  };

  bool stopped_early = false;  // input was left unread
  auto send_record = [&](std::string_view record) {
    ++line_number;
    bool go_on = o.json ? send_envelope(record) : send_plain(record);
    // A reader of --print-offsets that goes away does not stop the sending:
    // the input is the job, the offsets are a courtesy.
    if (!go_on || stop_requested()) stopped_early = true;
    return !stopped_early;
  };
  // While the input is quiet: deliveries are reported (--print-offsets shows
  // them as they happen, even into a pipe) and a lost cluster is noticed.
  IdleCall idle{[&] {
                  if (auto why = producer.connection_lost()) {
                    lost = why;
                    stopped_early = true;
                    return false;
                  }
                  if (!out.buffer().empty()) out.flush();
                  return true;
                },
                std::chrono::milliseconds(200)};

  const uint64_t input_records = feed_input(o, delimiter, send_record, [&] {
    if (stop_requested()) stopped_early = true;
    return stopped_early;
  }, idle);

  // Every queued message gets its delivery report; 5 s after a Ctrl-C kws
  // stops waiting and reports the rest as undelivered.
  if (!lost) {
    auto interrupted_at = std::chrono::steady_clock::time_point{};
    producer.flush([&] {
      if (!stop_requested()) return false;
      auto now = std::chrono::steady_clock::now();
      if (interrupted_at == std::chrono::steady_clock::time_point{}) interrupted_at = now;
      return now - interrupted_at > std::chrono::seconds(5);
    });
    lost = producer.connection_lost();
  }
  progress.finish();
  out.flush();

  const uint64_t undelivered = queued - producer.delivered() - producer.failed();
  const uint64_t failed = producer.failed() + undelivered;
  int status = exit_ok;
  if (failed > 0 || lost) {
    std::string msg;
    if (lost) msg = *lost + "; ";
    msg += std::to_string(failed) + " of " + std::to_string(queued) + " message(s) not delivered";
    if (producer.failed() > 0 && !producer.first_error().empty()) msg += "; first error: " + producer.first_error();
    print_diagnostic("error", msg);
    status = exit_failure;
  }
  const bool input_left = stopped_early && (input_records == 0 || line_number < input_records);
  if (input_left) print_diagnostic(stop_requested() ? "note" : "error", input_left_message(o, line_number, input_records));
  if (rejected_lines.count() > 0) {
    print_diagnostic("error", std::to_string(rejected_lines.count()) + " input line(s) rejected; the other " +
                                  std::to_string(producer.delivered()) + " message(s) were sent");
    status = exit_failure;
  }
  return status;  // after a signal, main exits 130 or 143 instead
}

}  // namespace kws::cmd
