// kws topics: what a cluster holds, with the offsets people look up next.
#include "cmd/topics.hpp"

#include <nlohmann/json.hpp>

#include <iostream>

#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/kafka/cluster.hpp"
#include "core/kafka/embedded_broker.hpp"
#include "core/util/output.hpp"

namespace kws::cmd {

const CommandDoc topics_doc{
    "topics",
    "List brokers, topics and partitions with their offsets (kcat -L, plus offsets)",
    "[OPTIONS] [TOPIC...] | --create NAME[:PARTITIONS]... [--replication N] [--topic-config KEY=VALUE]... | --delete NAME...",
    "Prints the cluster's brokers, then one row per partition of every topic (or of each TOPIC "
    "given): its leader, replicas, in-sync replicas, low and high watermark and the number of "
    "messages between them. -J prints the same as one JSON document.\n\n"
    "--groups adds every consumer group's committed offset and lag per partition; -G GROUP "
    "(repeatable) does the same for named groups, which also works on brokers that do not "
    "allow listing groups. kws broker lists the groups that joined or committed through it.\n\n"
    "--create creates each TOPIC, given as NAME or NAME:PARTITIONS (without a count, and without "
    "--replication, the broker's defaults apply), with --topic-config KEY=VALUE topic configs; --delete "
    "deletes each TOPIC. Both use Kafka's admin API and say for each topic what became of it on "
    "stderr; one that fails (it exists already, a bad partition count, not allowed) does not stop "
    "the others, and the exit status is then 1. kws broker creates topics (at most 10,000 "
    "partitions each) but keeps no topic configs, and never deletes: it answers --delete as a "
    "cluster with delete.topic.enable=false does. --names prints only the topic names, one per line, "
    "from a single metadata request (no offsets); the shell completions use it with a short --timeout.",
    {{"kws topics", "everything in the cluster"},
     {"kws topics -J demo | jq '.topics[0].partitions[].high'", "high watermarks of demo"},
     {"kws topics -G billing orders", "committed offsets and lag of group billing on orders"},
     {"kws topics --create orders:6 audit", "create orders with 6 partitions and audit with the broker's default"},
     {"kws topics -b kafka1:9092 --create events:12 --replication 3 --topic-config retention.ms=86400000",
      "a topic on a real cluster, with a retention of one day"},
     {"kws topics --delete scratch", "delete topic scratch"},
     {"kws topics --names --timeout 0.5", "just the topic names, quickly or not at all"}},
    "1 also when a topic could not be created or deleted."};

CLI::App* register_topics(CLI::App& parent, TopicsOptions& o) {
  CLI::App* app = add_documented_subcommand(parent, topics_doc);
  app->add_option("topics", o.topics, "Only these topics")->type_name("TOPIC");
  auto* json = app->add_flag("-J,--json", o.json, "Print JSON");
  auto* all_groups = app->add_flag("--groups", o.all_groups, "Show every consumer group's committed offsets and lag");
  auto* groups = app->add_option("-G,--group", o.groups, "Show committed offsets and lag of GROUP (repeatable)")
                     ->type_name("GROUP")
                     ->allow_extra_args(false);
  app->add_flag("--names", o.names_only, "Print only the topic names, one per line (no offsets)")
      ->excludes(json)
      ->excludes(all_groups)
      ->excludes(groups);
  const char* admin = "Creating and deleting";
  auto* create = app->add_flag("--create", o.create, "Create each TOPIC, given as NAME or NAME:PARTITIONS")->group(admin);
  auto* remove = app->add_flag("--delete", o.remove, "Delete each TOPIC")->group(admin)->excludes(create);
  app->add_option("--replication", o.replication, "With --create: replicas of each partition (default: the broker's)")
      ->type_name("N")
      ->check(integer_in(1, INT16_MAX))
      ->group(admin)
      ->excludes(remove);
  // --config is every command's config file (-F), so topic configs take the longer name.
  app->add_option("--topic-config", o.configs, "With --create: a topic config (repeatable)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false)
      ->group(admin)
      ->excludes(remove);
  add_connection_options(app, o.connection);
  return app;
}

namespace {

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (auto id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id);
  }
  return out.empty() ? "-" : out;
}

// Left-aligned columns, two spaces apart; stdout is data, so no decoration.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    if (width.size() < r.size()) width.resize(r.size());
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << line << '\n';
  }
}

std::string offset_text(int64_t offset) { return offset < 0 ? "-" : std::to_string(offset); }

}  // namespace

namespace {

// Reports each topic's outcome on stderr (stdout is data, and these are
// not); 1 when any failed.
int report_outcomes(const std::vector<TopicOutcome>& outcomes, const char* done, const char* failed) {
  int status = exit_ok;
  for (const auto& r : outcomes) {
    if (r.error.empty()) {
      print_diagnostic("note", std::string(done) + " topic '" + r.name + "'");
    } else {
      print_diagnostic("error", std::string(failed) + " topic '" + r.name + "': " + r.error);
      status = exit_failure;
    }
  }
  return status;
}

int create_or_delete(const TopicsOptions& o) {
  if (o.json || o.all_groups || !o.groups.empty()) {
    throw usage_error(std::string(o.create ? "--create" : "--delete") + " cannot be combined with -J, --groups or -G");
  }
  if (o.topics.empty()) {
    throw usage_error(o.create ? "--create needs the topics to create: kws topics --create NAME[:PARTITIONS]..."
                               : "--delete needs the topics to delete: kws topics --delete NAME...");
  }
  std::vector<NewTopic> wanted;
  for (const auto& text : o.topics) {
    if (o.remove) {
      check_topic_name(text);
      continue;
    }
    TopicSpec spec = parse_topic_spec(text, -1);
    NewTopic t{spec.name, spec.partitions, o.replication, {}};
    for (const auto& c : o.configs) t.configs.push_back(split_property(c, "--topic-config"));
    for (const auto& earlier : wanted) {
      if (earlier.name == t.name) throw usage_error("topic '" + t.name + "' is given twice");
    }
    wanted.push_back(std::move(t));
  }
  KafkaSettings settings = o.connection.resolve();
  StderrLog log = o.connection.log();
  KafkaContext context = o.connection.kafka_context(log);
  if (o.remove) return report_outcomes(delete_topics(settings, o.topics, context), "deleted", "cannot delete");
  return report_outcomes(create_topics(settings, wanted, context), "created", "cannot create");
}

}  // namespace

int run_topics(const TopicsOptions& o) {
  if (!o.create && (o.replication != -1 || !o.configs.empty())) {
    throw usage_error("--replication and --topic-config apply to --create only");
  }
  if (o.create || o.remove) return create_or_delete(o);
  KafkaSettings settings = o.connection.resolve();
  StderrLog log = o.connection.log();
  for (const auto& t : o.topics) check_topic_name(t);
  ClusterQuery query{o.topics, o.groups, o.all_groups};
  query.watermarks = !o.names_only;
  ClusterReport report = describe_cluster(settings, query, o.connection.kafka_context(log));
  if (o.names_only) {
    for (const auto& t : report.cluster.topics) std::cout << t.name << '\n';
    std::cout.flush();
    return exit_ok;
  }
  const ClusterInfo& info = report.cluster;
  const std::vector<GroupPosition>& group_rows = report.groups;

  if (o.json) {
    nlohmann::json doc;
    doc["brokers"] = nlohmann::json::array();
    for (const auto& b : info.brokers) doc["brokers"].push_back({{"id", b.id}, {"host", b.host}, {"port", b.port}});
    doc["topics"] = nlohmann::json::array();
    for (const auto& t : info.topics) {
      nlohmann::json parts = nlohmann::json::array();
      for (const auto& p : t.partitions) {
        nlohmann::json jp = {{"partition", p.id}, {"leader", p.leader}, {"replicas", p.replicas},
                             {"isr", p.in_sync_replicas}, {"low", p.low_watermark}, {"high", p.high_watermark}};
        if (!p.error.empty()) jp["error"] = p.error;
        parts.push_back(jp);
      }
      doc["topics"].push_back({{"name", t.name}, {"partitions", parts}});
    }
    if (o.all_groups || !o.groups.empty()) {
      doc["groups"] = nlohmann::json::array();
      for (const auto& r : group_rows) {
        nlohmann::json row = {{"group", r.group}, {"topic", r.topic}, {"partition", r.partition},
                              {"committed", r.committed < 0 ? nlohmann::json() : nlohmann::json(r.committed)},
                              {"high", r.high},
                              {"lag", r.lag() ? nlohmann::json(*r.lag()) : nlohmann::json()}};
        doc["groups"].push_back(row);
      }
    }
    std::cout << doc.dump() << '\n';
    return exit_ok;
  }

  std::vector<std::vector<std::string>> rows = {{"BROKER", "ADDRESS"}};
  for (const auto& b : info.brokers) rows.push_back({std::to_string(b.id), b.host + ":" + std::to_string(b.port)});
  print_table(rows);
  std::cout << '\n';
  rows = {{"TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "LOW", "HIGH", "MESSAGES"}};
  for (const auto& t : info.topics) {
    for (const auto& p : t.partitions) {
      std::string messages = p.low_watermark < 0 ? "-" : std::to_string(p.high_watermark - p.low_watermark);
      rows.push_back({t.name, std::to_string(p.id), std::to_string(p.leader), join_ids(p.replicas),
                      join_ids(p.in_sync_replicas), offset_text(p.low_watermark), offset_text(p.high_watermark),
                      p.error.empty() ? messages : "error: " + p.error});
    }
  }
  print_table(rows);
  if (o.all_groups || !o.groups.empty()) {
    std::cout << '\n';
    rows = {{"GROUP", "TOPIC", "PARTITION", "COMMITTED", "HIGH", "LAG"}};
    for (const auto& r : group_rows) {
      rows.push_back({r.group, r.topic, std::to_string(r.partition), offset_text(r.committed), offset_text(r.high),
                      r.lag() ? std::to_string(*r.lag()) : "-"});
    }
    print_table(rows);
  }
  std::cout.flush();
  return exit_ok;
}

}  // namespace kws::cmd
