// kws topics: what a cluster holds, with the offsets people look up next.
#include "cmd/topics.hpp"

#include <nlohmann/json.hpp>

#include <iostream>

#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "core/kafka/cluster.hpp"

namespace kws::cmd {

const CommandDoc topics_doc{
    "topics",
    "List brokers, topics and partitions with their offsets (kcat -L, plus offsets)",
    "[OPTIONS] [TOPIC...]",
    "Prints the cluster's brokers, then one row per partition of every topic (or of each TOPIC "
    "given): its leader, replicas, in-sync replicas, low and high watermark and the number of "
    "messages between them. -J prints the same as one JSON document.\n\n"
    "--groups adds every consumer group's committed offset and lag per partition; -G GROUP "
    "(repeatable) does the same for named groups, which also works on brokers that do not "
    "allow listing groups. kws broker lists the groups that joined or committed through it.\n\n"
    "--names prints only the topic names, one per line, from a single metadata request (no "
    "offsets); the shell completions use it with a short --timeout.",
    {{"kws topics", "everything in the cluster"},
     {"kws topics -J demo | jq '.topics[0].partitions[].high'", "high watermarks of demo"},
     {"kws topics -G billing orders", "committed offsets and lag of group billing on orders"},
     {"kws topics --names --timeout 0.5", "just the topic names, quickly or not at all"}},
    ""};

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

int run_topics(const TopicsOptions& o) {
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
