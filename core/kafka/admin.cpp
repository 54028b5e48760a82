// kws topics --create/--delete and kws send --create-like: librdkafka's
// admin API, and the words for what brokers answer.
#include <chrono>
#include <memory>

#include "core/kafka/client.hpp"
#include "core/kafka/cluster.hpp"
#include "core/kafka/metadata.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct OptionsDeleter {
  void operator()(rd_kafka_AdminOptions_t* o) const { rd_kafka_AdminOptions_destroy(o); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
using EventPtr = std::unique_ptr<rd_kafka_event_t, EventDeleter>;

// An admin client: never auto-creates what it looks at.
KafkaHandle admin_client(const KafkaSettings& settings, const KafkaContext& context, ClientEvents& events) {
  ClientOptions options;
  options.type = RD_KAFKA_PRODUCER;
  options.required = {{"allow.auto.create.topics", "false"}};
  KafkaHandle rk = create_client(settings, options, context, events);
  wait_for_brokers(rk.get(), settings.brokers(), events, context);
  return rk;
}

std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> admin_options(rd_kafka_t* rk, rd_kafka_admin_op_t op,
                                                                       const KafkaContext& context) {
  std::unique_ptr<rd_kafka_AdminOptions_t, OptionsDeleter> options(rd_kafka_AdminOptions_new(rk, op));
  char errstr[256];
  const int ms = static_cast<int>(context.timeout.count());
  rd_kafka_AdminOptions_set_request_timeout(options.get(), ms, errstr, sizeof errstr);
  // The broker answers once the change is made (or this time has passed), so
  // what comes next (kws send --create-like) finds the topic.
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), ms, errstr, sizeof errstr);
  return options;
}

// Waits for the one result event on `queue`, a little longer than the
// request may take; Ctrl-C ends the wait.
EventPtr await_result(rd_kafka_queue_t* queue, const KafkaContext& context, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + 2 * context.timeout + std::chrono::seconds(1);
  while (std::chrono::steady_clock::now() < deadline) {
    if (rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 200)) return EventPtr(event);
    if (context.stopping()) throw Error("interrupted while waiting to " + what, exit_interrupted);
  }
  throw Error("no answer from Kafka within " + std::to_string(context.timeout.count() / 1000) + " s to " + what +
              " (--timeout)");
}

// What a broker's answer about one topic means, in words; the broker's own
// message follows when it says more than the code.
std::string describe_topic_error(rd_kafka_resp_err_t err, const char* message, bool deleting) {
  std::string words;
  switch (err) {
    case RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS: words = "it already exists"; break;
    case RD_KAFKA_RESP_ERR_INVALID_PARTITIONS: words = "bad partition count"; break;
    case RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR: words = "bad replication factor"; break;
    case RD_KAFKA_RESP_ERR_INVALID_REPLICA_ASSIGNMENT: words = "bad replica assignment"; break;
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG: words = "bad topic config"; break;
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION: words = "bad topic name"; break;
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION: words = "refused by the cluster's policy"; break;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      words = deleting ? "not allowed to delete it" : "not allowed to create it";
      break;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART: words = "no such topic"; break;
    case RD_KAFKA_RESP_ERR_TOPIC_DELETION_DISABLED:
      words = "the cluster does not allow deleting topics (delete.topic.enable=false; kws broker never deletes: "
              "its topics live until it stops)";
      break;
    default: words = rd_kafka_err2str(err); break;
  }
  std::string said = message ? message : "";
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) said.clear();  // "Topic 'x' already exists." says no more
  if (!said.empty() && said != rd_kafka_err2str(err) && said.find(words) == std::string::npos) {
    words += ": " + said;
  }
  return words;
}

std::vector<TopicOutcome> outcomes_of(const rd_kafka_topic_result_t** results, size_t count, bool deleting) {
  std::vector<TopicOutcome> out;
  for (size_t i = 0; i < count; ++i) {
    TopicOutcome o;
    o.name = rd_kafka_topic_result_name(results[i]);
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err) o.error = describe_topic_error(err, rd_kafka_topic_result_error_string(results[i]), deleting);
    o.already_exists = err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS;
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<TopicOutcome> create_topics_with(rd_kafka_t* rk, const std::vector<NewTopic>& topics,
                                             const KafkaContext& context) {
  std::vector<rd_kafka_NewTopic_t*> requests;
  auto destroy = [&requests] { rd_kafka_NewTopic_destroy_array(requests.data(), requests.size()); };
  char errstr[512];
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(t.name.c_str(), t.partitions, t.replication, errstr, sizeof errstr);
    if (!nt) {
      destroy();
      throw usage_error("topic '" + t.name + "': " + errstr);
    }
    requests.push_back(nt);
    for (const auto& [key, value] : t.configs) {
      if (rd_kafka_resp_err_t err = rd_kafka_NewTopic_set_config(nt, key.c_str(), value.c_str())) {
        destroy();
        throw usage_error("--topic-config " + key + "=" + value + ": " + rd_kafka_err2str(err));
      }
    }
  }
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk));
  auto options = admin_options(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS, context);
  rd_kafka_CreateTopics(rk, requests.data(), requests.size(), options.get(), queue.get());
  destroy();
  EventPtr event = await_result(queue.get(), context, "create topics");
  if (rd_kafka_event_error(event.get())) {
    throw Error(std::string("cannot create topics: ") + rd_kafka_event_error_string(event.get()));
  }
  size_t count = 0;
  const auto** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  return outcomes_of(results, count, false);
}

}  // namespace

std::vector<TopicOutcome> create_topics(const KafkaSettings& settings, const std::vector<NewTopic>& topics,
                                        const KafkaContext& context) {
  ClientEvents events;
  KafkaHandle rk = admin_client(settings, context, events);
  return create_topics_with(rk.get(), topics, context);
}

std::vector<TopicOutcome> delete_topics(const KafkaSettings& settings, const std::vector<std::string>& topics,
                                        const KafkaContext& context) {
  ClientEvents events;
  KafkaHandle rk = admin_client(settings, context, events);
  std::vector<rd_kafka_DeleteTopic_t*> requests;
  for (const auto& t : topics) requests.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk.get()));
  auto options = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_DELETETOPICS, context);
  rd_kafka_DeleteTopics(rk.get(), requests.data(), requests.size(), options.get(), queue.get());
  rd_kafka_DeleteTopic_destroy_array(requests.data(), requests.size());
  EventPtr event = await_result(queue.get(), context, "delete topics");
  if (rd_kafka_event_error(event.get())) {
    throw Error(std::string("cannot delete topics: ") + rd_kafka_event_error_string(event.get()));
  }
  size_t count = 0;
  const auto** results =
      rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(event.get()), &count);
  return outcomes_of(results, count, true);
}

CreatedLike create_topic_like(const KafkaSettings& settings, const std::string& topic, const std::string& source,
                              const KafkaContext& context) {
  ClientEvents events;
  KafkaHandle rk = admin_client(settings, context, events);
  ClusterInfo info;
  auto deadline = std::chrono::steady_clock::now() + context.timeout;
  auto src = find_topic(rk.get(), source, info, deadline, context);
  if (!src) throw Error("--create-like " + source + ": there is no topic '" + source + "' to copy the partition count of");
  CreatedLike result;
  result.source_partitions = static_cast<int32_t>(src->partitions.size());
  if (auto existing = find_topic(rk.get(), topic, info, deadline, context)) {
    result.partitions = static_cast<int32_t>(existing->partitions.size());
    return result;
  }
  NewTopic wanted{topic, result.source_partitions, -1, {}};
  TopicOutcome outcome = create_topics_with(rk.get(), {wanted}, context).at(0);
  if (outcome.already_exists) {
    // Created by someone else in between (a producer's auto-creation).
    auto now = find_topic(rk.get(), topic, info, std::chrono::steady_clock::now() + context.timeout, context);
    result.partitions = now ? static_cast<int32_t>(now->partitions.size()) : 0;
    return result;
  }
  if (!outcome.error.empty()) throw Error("cannot create topic '" + topic + "': " + outcome.error);
  result.created = true;
  result.partitions = result.source_partitions;
  return result;
}

}  // namespace kws
