#include "core/kafka/consumer.hpp"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "core/kafka/client.hpp"
#include "core/kafka/metadata.hpp"
#include "core/kafka/offset_jump.hpp"
#include "core/kafka/record_view.hpp"
#include "core/util/error.hpp"

namespace kws {

namespace {

// NULL without a group (explicit assignment), so check before comparing.
bool cooperative_rebalancing(rd_kafka_t* rk) {
  const char* protocol = rd_kafka_rebalance_protocol(rk);
  return protocol && std::strcmp(protocol, "COOPERATIVE") == 0;
}

}  // namespace

struct Consumer::Impl {
  ConsumerPlan plan;
  KafkaContext context;
  ClientEvents events;
  KafkaHandle rk;
  std::unique_ptr<ConnectionWatch> watch;
  StartTimeFilter time_filter;
  std::set<std::pair<std::string, int32_t>> assigned;
  std::set<std::pair<std::string, int32_t>> at_end;
  std::set<std::pair<std::string, int32_t>> started;  // explicit start offset already applied
  bool closed = false;
  bool abandoned = false;  // close() timed out: the handle is leaked, not destroyed
  bool assignment_seen = false;
  bool assignment_changed = false;  // an `assigned` event is due
  bool paused = false;               // pause_all(true): every assigned partition, new ones too
  // store_when_told: partitions this consumer handed a message of; their
  // ends are not stored by themselves (the messages before may not be out).
  std::set<std::pair<std::string, int32_t>> handed;
  OffsetJumps jumps;
  uint64_t lost_messages = 0;
  // Where each assigned partition started (RD_KAFKA_OFFSET_INVALID: the
  // group's committed offset): see start_again.
  std::map<std::pair<std::string, int32_t>, int64_t> starts;
  // Where a partition with no committed offset starts (the user's
  // auto.offset.reset): librdkafka is told "error" so that it never jumps
  // by itself, and kws applies this one case on its behalf (an offset error
  // with no position: restart_after_offset_error).
  int64_t no_offset_start = RD_KAFKA_OFFSET_END;
  bool no_offset_is_error = false;
  MessageView view;  // reused: its header vector keeps its capacity
  const rd_kafka_topic_t* last_rkt = nullptr;
  const char* last_topic_name = nullptr;

  int64_t logical_start_offset() const {
    switch (plan.start.kind) {
      case OffsetSpec::Kind::beginning: return RD_KAFKA_OFFSET_BEGINNING;
      case OffsetSpec::Kind::end: return RD_KAFKA_OFFSET_END;
      case OffsetSpec::Kind::stored: return RD_KAFKA_OFFSET_STORED;
      case OffsetSpec::Kind::absolute: return plan.start.value;
      case OffsetSpec::Kind::from_end: return RD_KAFKA_OFFSET_TAIL(plan.start.value);
      case OffsetSpec::Kind::timestamp: break;
    }
    return RD_KAFKA_OFFSET_END;  // timestamp offsets are looked up per partition
  }

  void resolve_start_offsets(rd_kafka_topic_partition_list_t* partitions) {
    if (plan.start.kind != OffsetSpec::Kind::timestamp) {
      for (int i = 0; i < partitions->cnt; ++i) partitions->elems[i].offset = logical_start_offset();
      return;
    }
    for (int i = 0; i < partitions->cnt; ++i) partitions->elems[i].offset = plan.start.value;
    rd_kafka_resp_err_t err =
        rd_kafka_offsets_for_times(rk.get(), partitions, static_cast<int>(context.timeout.count()));
    if (err) throw Error(std::string("cannot look up offsets for the start time: ") + rd_kafka_err2str(err));
    for (int i = 0; i < partitions->cnt; ++i) {
      auto& e = partitions->elems[i];
      // No message at or after the time: start at the end.
      if (e.err || e.offset < 0) e.offset = RD_KAFKA_OFFSET_END;
    }
  }

  // A start past the end reads from the end; say so, since nothing may ever
  // be printed. (librdkafka would report it as an offset error, which kws
  // keeps for positions that retention deleted.)
  void start_past_end_at_end(rd_kafka_topic_partition_list_t* partitions) {
    for (int i = 0; i < partitions->cnt; ++i) {
      auto& e = partitions->elems[i];
      int64_t low = -1, high = -1;
      if (rd_kafka_query_watermark_offsets(rk.get(), e.topic, e.partition, &low, &high,
                                           static_cast<int>(context.timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        continue;
      }
      if (e.offset > high) {
        context.log->warning("-o " + std::to_string(e.offset) + " is past the end of topic '" + e.topic +
                             "' partition " + std::to_string(e.partition) + " (its next offset is " +
                             std::to_string(high) + "); reading from the end instead");
        e.offset = RD_KAFKA_OFFSET_END;
      }
    }
  }

  void on_assign(rd_kafka_topic_partition_list_t* partitions) {
    assignment_seen = true;
    assignment_changed = true;
    for (int i = 0; i < partitions->cnt; ++i) {
      const auto& e = partitions->elems[i];
      assigned.insert({e.topic, e.partition});
      starts[{e.topic, e.partition}] = e.offset;
    }
    if (cooperative_rebalancing(rk.get())) {
      rd_kafka_error_t* error = rd_kafka_incremental_assign(rk.get(), partitions);
      if (error) {
        std::string why = rd_kafka_error_string(error);
        rd_kafka_error_destroy(error);
        throw Error("cannot assign partitions: " + why);
      }
      return;
    }
    rd_kafka_resp_err_t err = rd_kafka_assign(rk.get(), partitions);
    if (err) throw Error(std::string("cannot assign partitions: ") + rd_kafka_err2str(err));
  }

  void on_revoke(rd_kafka_topic_partition_list_t* partitions) {
    for (int i = 0; i < partitions->cnt; ++i) {
      std::pair<std::string, int32_t> tp{partitions->elems[i].topic, partitions->elems[i].partition};
      assigned.erase(tp);
      at_end.erase(tp);
      jumps.forget(tp.first, tp.second);
    }
    if (cooperative_rebalancing(rk.get())) {
      rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk.get(), partitions);
      if (error) rd_kafka_error_destroy(error);
    } else {
      rd_kafka_assign(rk.get(), nullptr);
    }
  }

  static void rebalance_callback(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                                 void* opaque) {
    auto* self = static_cast<Impl*>(static_cast<ClientEvents*>(opaque)->owner);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      if (self->plan.start_explicit && self->plan.start.kind != OffsetSpec::Kind::stored) {
        // An explicit start overrides the group's committed offsets, once per
        // partition: a later rebalance resumes from what was committed.
        PartitionList fresh(rd_kafka_topic_partition_list_new(0));
        for (int i = 0; i < partitions->cnt; ++i) {
          const auto& e = partitions->elems[i];
          if (self->started.insert({e.topic, e.partition}).second) {
            rd_kafka_topic_partition_list_add(fresh.get(), e.topic, e.partition);
          }
        }
        self->resolve_start_offsets(fresh.get());
        for (int i = 0; i < fresh->cnt; ++i) {
          rd_kafka_topic_partition_list_find(partitions, fresh->elems[i].topic, fresh->elems[i].partition)->offset =
              fresh->elems[i].offset;
        }
      }
      self->on_assign(partitions);
    } else {
      self->on_revoke(partitions);
    }
  }

  // Where a partition that consumed nothing yet starts again when the
  // whole assignment is given anew (restart_partition, eager groups only):
  // its explicit start, else the group's committed offset, else where
  // auto.offset.reset says. Asked only on that rare path, so the blocking
  // lookup never slows an ordinary rebalance.
  int64_t start_again(const char* topic, int32_t partition) {
    auto it = starts.find({topic, partition});
    if (it != starts.end() && it->second != RD_KAFKA_OFFSET_INVALID) return it->second;
    PartitionList one(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(one.get(), topic, partition);
    if (!rd_kafka_committed(rk.get(), one.get(), static_cast<int>(context.timeout.count())) && !one->elems[0].err &&
        one->elems[0].offset >= 0) {
      return one->elems[0].offset;
    }
    return no_offset_start;
  }

  void set_paused(bool pause) {
    rd_kafka_topic_partition_list_t* raw = nullptr;
    if (rd_kafka_assignment(rk.get(), &raw) || !raw) return;
    PartitionList list(raw);
    if (list->cnt == 0) return;
    if (pause) {
      rd_kafka_pause_partitions(rk.get(), list.get());
    } else {
      rd_kafka_resume_partitions(rk.get(), list.get());
    }
  }

  void store_offset(const char* topic, int32_t partition, int64_t next_offset) {
    PartitionList list(rd_kafka_topic_partition_list_new(1));
    rd_kafka_topic_partition_list_add(list.get(), topic, partition)->offset = next_offset;
    rd_kafka_offsets_store(rk.get(), list.get());
  }

  // A record carrying an error instead of a message. Returns normally for
  // what the reader can go on after; throws for what it cannot.
  void handle_event(rd_kafka_message_t* msg, const std::function<void(const PartitionEvent&)>& on_event) {
    const char* topic = msg->rkt ? rd_kafka_topic_name(msg->rkt) : "";
    if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      resolve_jump(topic, msg->partition, msg->offset, on_event);
      if (plan.want_end_events) at_end.insert({topic, msg->partition});
      // Commit the end of a partition the group read nothing from, as Kafka's
      // own consumer does; otherwise the next run would start at "latest"
      // there and skip what arrives in between. msg->offset is the end
      // offset, the next one to read.
      if (!plan.group.empty() && !(plan.store_when_told && handed.count({topic, msg->partition}))) {
        store_offset(topic, msg->partition, msg->offset);
      }
      if (on_event) {
        PartitionEvent end;
        end.topic = topic;
        end.partition = msg->partition;
        end.next_offset = msg->offset;
        on_event(end);
      }
      return;
    }
    if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
      restart_after_offset_error(topic, msg);
      return;
    }
    if (msg->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || msg->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        msg->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
      throw Error(rd_kafka_message_errstr(msg));
    }
    context.log->warning(rd_kafka_message_errstr(msg));
  }

  // librdkafka stopped fetching a partition whose position it could not
  // use. No position at all (a group without a committed offset) starts
  // where the user's auto.offset.reset says; a position the partition no
  // longer has restarts at the log start, and the jump is reported when the
  // first message there shows how far it was (offset_jump.hpp).
  void restart_after_offset_error(const char* topic, const rd_kafka_message_t* msg) {
    int64_t restart_at = RD_KAFKA_OFFSET_BEGINNING;
    if (msg->offset < 0) {
      if (no_offset_is_error) throw Error(rd_kafka_message_errstr(msg));
      restart_at = no_offset_start;
    } else {
      jumps.jumped(topic, msg->partition, msg->offset);
    }
    std::string why = restart_partition(rk.get(), topic, msg->partition, restart_at,
                                        [this](const char* t, int32_t p) { return start_again(t, p); });
    if (!why.empty()) {
      throw Error("topic '" + std::string(topic) + "' partition " + std::to_string(msg->partition) +
                  ": cannot go on after an offset error: " + why);
    }
  }

  void resolve_jump(const char* topic, int32_t partition, int64_t next,
                    const std::function<void(const PartitionEvent&)>& on_event) {
    PartitionEvent jump;
    if (!jumps.resolve(topic, partition, next, jump)) return;
    context.log->warning(describe_jump(jump));
    if (jump.kind == PartitionEvent::Kind::lost) lost_messages += static_cast<uint64_t>(jump.next_offset - jump.lost_from);
    if (on_event) on_event(jump);
  }

  // Returns false when the message was not consumed (on_message said stop).
  bool deliver(rd_kafka_message_t* msg, const std::function<bool(const MessageView&)>& on_message,
               const std::function<void(const PartitionEvent&)>& on_event) {
    if (msg->rkt != last_rkt) {
      last_rkt = msg->rkt;
      last_topic_name = rd_kafka_topic_name(msg->rkt);
    }
    resolve_jump(last_topic_name, msg->partition, msg->offset, on_event);
    fill_message_view(msg, last_topic_name, plan.want_headers, view);
    if (!time_filter.admit(last_topic_name, msg->partition, view.timestamp_ms)) return true;
    // A message after an end-of-partition event means the partition grew again.
    if (!at_end.empty()) at_end.erase({last_topic_name, msg->partition});
    if (!on_message(view)) return false;
    if (plan.store_when_told) {
      if (handed.empty() || !handed.count({last_topic_name, msg->partition})) handed.insert({last_topic_name, msg->partition});
    } else if (!plan.group.empty()) {
      rd_kafka_offset_store(msg->rkt, msg->partition, msg->offset);
    }
    return true;
  }

  void check_health() {
    if (events.fatal()) throw Error("consumer failed: " + events.last_error());
    if (auto lost = watch->check()) throw Error(*lost);
  }
};

Consumer::Consumer(const KafkaSettings& settings, ConsumerPlan plan, const KafkaContext& context)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.plan = std::move(plan);
  c.context = context;
  if (c.plan.start.kind == OffsetSpec::Kind::timestamp) c.time_filter = StartTimeFilter(c.plan.start.value);
  if (c.plan.start.kind == OffsetSpec::Kind::stored && c.plan.group.empty()) {
    throw usage_error("-o stored needs a consumer group: add -G GROUP");
  }
  if (c.plan.partition && !c.plan.group.empty()) {
    throw usage_error("-p cannot be combined with -G (the group assigns partitions)");
  }
  ClientOptions options;
  options.type = RD_KAFKA_CONSUMER;
  // A group member learns where each partition ends even without -e, so that
  // it can commit the end of partitions it read nothing from.
  const bool want_eof = c.plan.want_end_events || !c.plan.group.empty();
  options.required = {{"enable.partition.eof", want_eof ? "true" : "false"}};
  // librdkafka 2.0 compares its whole fetch queue against this per-partition
  // threshold and, once over it, stops fetching until a once-a-second timer;
  // a consumer that polls one message at a time hits that stall several times
  // per million messages (docs/BENCHMARKS.md). Memory stays bounded by
  // queued.max.messages.kbytes.
  options.defaults.push_back({"queued.min.messages", "1000000"});
  // Memory: fetched messages point into their fetch response, so the peak
  // is what is queued plus librdkafka's per-message bookkeeping. Fetches of
  // 2 MiB instead of 50 keep the queue shallow, and 16 MiB of queued
  // payload instead of 64 caps it (docs/BENCHMARKS.md). librdkafka refuses
  // a fetch.max.bytes below message.max.bytes, so when the user sets the
  // latter, fetch.max.bytes is left to librdkafka, which then keeps it
  // within queued.max.messages.kbytes.
  if (!settings.find("message.max.bytes")) options.defaults.push_back({"fetch.max.bytes", "2097152"});
  options.defaults.push_back({"queued.max.messages.kbytes", "16384"});
  // When partition ends matter, the last, empty fetch is held for
  // fetch.wait.max.ms before the end is known; 100 ms instead of 500 ms.
  if (c.plan.want_end_events) options.defaults.push_back({"fetch.wait.max.ms", "100"});
  if (c.plan.group.empty()) {
    // No group: nothing is committed and no group is joined. librdkafka 2.0
    // still wants a group.id before it accepts an assignment, so give it a
    // private one that is never used for anything.
    options.required.push_back({"enable.auto.commit", "false"});
    options.required.push_back({"enable.auto.offset.store", "false"});
    options.required.push_back(
        {"group.id", "kws-reader-" + std::to_string(getpid()) + "-" +
                         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())});
  } else {
    options.required.push_back({"group.id", c.plan.group});
    // Offsets are stored by hand once a message was consumed, and at the end
    // of a partition, so the group commits exactly what was handed on.
    options.required.push_back({"enable.auto.offset.store", "false"});
  }
  // Where a group has no committed offset yet, start at the end, as a tail
  // would; -X auto.offset.reset=earliest changes that. librdkafka itself is
  // told "error", so that it never moves a reader silently: kws applies this
  // case itself and reports every other jump (restart_after_offset_error).
  if (const ConfigEntry* reset = settings.find("auto.offset.reset")) {
    const std::string& v = reset->value;
    if (v == "smallest" || v == "earliest" || v == "beginning") {
      c.no_offset_start = RD_KAFKA_OFFSET_BEGINNING;
    } else if (v == "error") {
      c.no_offset_is_error = true;
    }
  }
  options.required.push_back({"auto.offset.reset", "error"});
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!c.plan.group.empty()) rd_kafka_conf_set_rebalance_cb(conf, &Impl::rebalance_callback);
  c.events.owner = &c;
  c.rk = create_client(settings, options, context, c.events, conf);
  c.watch = connect_and_watch(c.rk.get(), settings.brokers(), c.events, context);

  ClusterInfo info = fetch_cluster_info(c.rk.get(), c.plan.topics, context);
  if (c.plan.partition) {
    for (const auto& t : info.topics) {
      if (*c.plan.partition >= static_cast<int32_t>(t.partitions.size())) {
        throw Error("topic '" + t.name + "' has " + std::to_string(t.partitions.size()) +
                    " partition(s); there is no partition " + std::to_string(*c.plan.partition));
      }
    }
  }

  rd_kafka_poll_set_consumer(c.rk.get());
  if (c.plan.group.empty()) {
    PartitionList list(rd_kafka_topic_partition_list_new(0));
    for (const auto& t : info.topics) {
      for (const auto& p : t.partitions) {
        if (c.plan.partition && p.id != *c.plan.partition) continue;
        rd_kafka_topic_partition_list_add(list.get(), t.name.c_str(), p.id);
      }
    }
    c.resolve_start_offsets(list.get());
    if (c.plan.start.kind == OffsetSpec::Kind::absolute) c.start_past_end_at_end(list.get());
    c.on_assign(list.get());
  } else {
    PartitionList list(rd_kafka_topic_partition_list_new(0));
    for (const auto& t : c.plan.topics) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c.rk.get(), list.get());
    if (err) throw Error(std::string("cannot subscribe: ") + rd_kafka_err2str(err));
  }
}

Consumer::~Consumer() {
  try {
    close();
  } catch (...) {
  }
  if (impl_->abandoned) {
    // Its threads live on until the process ends; they must not log into a
    // sink that is gone.
    impl_->events.log = nullptr;
    static_cast<void>(impl_.release());
  }
}

void Consumer::close() {
  Impl& c = *impl_;
  if (c.closed || !c.rk) return;
  c.closed = true;
  // Close in the background and wait at most the context's timeout: the
  // broker may die or freeze just now, and rd_kafka_consumer_close would
  // then wait for the group coordinator for most of a minute. When the
  // cluster is already lost, only the local part (revoking the assignment)
  // is left to do; that takes milliseconds.
  const auto budget = c.watch->lost() || c.events.fatal() ? std::chrono::milliseconds(1000) : c.context.timeout;
  rd_kafka_queue_t* queue = rd_kafka_queue_new(c.rk.get());
  rd_kafka_error_t* error = rd_kafka_consumer_close_queue(c.rk.get(), queue);
  bool closed = error == nullptr;
  if (error) rd_kafka_error_destroy(error);
  const auto deadline = std::chrono::steady_clock::now() + budget;
  while (closed && !rd_kafka_consumer_closed(c.rk.get())) {
    if (std::chrono::steady_clock::now() >= deadline) {
      closed = false;
      break;
    }
    // The close forwards the rebalance that revokes the assignment here, as
    // an event (with messages still arriving beside it).
    rd_kafka_event_t* event = rd_kafka_queue_poll(queue, 100);
    if (!event) continue;
    if (rd_kafka_event_type(event) == RD_KAFKA_EVENT_REBALANCE) {
      Impl::rebalance_callback(c.rk.get(), rd_kafka_event_error(event), rd_kafka_event_topic_partition_list(event),
                               &c.events);
    }
    rd_kafka_event_destroy(event);
  }
  rd_kafka_queue_destroy(queue);
  if (!closed) {
    if (!c.plan.group.empty() && !c.watch->lost()) {
      c.context.log->warning("could not leave consumer group '" + c.plan.group +
                             "' within --timeout; the last offsets may not be committed");
    }
    // librdkafka 2.0 cannot destroy a group member whose coordinator is gone
    // without waiting for session.timeout.ms (45 s), not even with
    // RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE; the destructor abandons it.
    c.abandoned = true;
  }
}

size_t Consumer::poll_batch(std::chrono::milliseconds wait, size_t max,
                            const std::function<bool(const MessageView&)>& on_message,
                            const std::function<void(const PartitionEvent&)>& on_event) {
  Impl& c = *impl_;
  size_t consumed = 0;
  int timeout_ms = static_cast<int>(wait.count());
  while (consumed < max) {
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(c.rk.get(), timeout_ms);
    timeout_ms = 0;  // only the first poll waits: the rest takes what is already fetched
    if (c.assignment_changed) {
      // The rebalance callback ran inside the poll above.
      c.assignment_changed = false;
      if (c.paused) c.set_paused(true);  // partitions just assigned stay paused too
      if (on_event) {
        PartitionEvent assigned;
        assigned.kind = PartitionEvent::Kind::assigned;
        on_event(assigned);
      }
    }
    if (!msg) {
      c.check_health();
      break;
    }
    struct Destroy {
      rd_kafka_message_t* m;
      ~Destroy() { rd_kafka_message_destroy(m); }
    } destroy{msg};
    if (msg->err) {
      c.handle_event(msg, on_event);
      continue;
    }
    if (!c.deliver(msg, on_message, on_event)) break;
    ++consumed;
  }
  return consumed;
}

uint64_t Consumer::lost_messages() const { return impl_->lost_messages; }

void Consumer::store_offset(std::string_view topic, int32_t partition, int64_t next_offset) {
  if (impl_->plan.group.empty()) return;
  // librdkafka's offset store is thread-safe; a partition no longer
  // assigned is refused by it, which is right: its new owner goes on from
  // what was committed.
  impl_->store_offset(std::string(topic).c_str(), partition, next_offset);
}

bool Consumer::pause_all(bool pause) {
  if (impl_->paused != pause) {
    impl_->paused = pause;
    impl_->set_paused(pause);
  }
  return true;
}

RunStop Consumer::run(const std::function<bool(const MessageView&)>& sink, const RunLimits& limits,
                      const std::function<bool()>& idle) {
  Impl& c = *impl_;
  int64_t count = 0;
  bool sink_closed = false;
  auto counted_sink = [&](const MessageView& m) {
    if (!sink(m)) {
      sink_closed = true;
      return false;
    }
    ++count;
    return true;
  };
  while (true) {
    if (c.context.stopping()) return RunStop::interrupted;
    if (limits.max_messages >= 0 && count >= limits.max_messages) return RunStop::message_limit;
    // An empty assignment (a group with more members than partitions) is at
    // its end at once.
    if (limits.exit_at_end && c.assignment_seen && c.at_end.size() >= c.assigned.size()) {
      if (c.assigned.empty()) c.context.log->note("the group assigned no partitions to this member");
      return RunStop::end_of_partitions;
    }
    size_t room = limits.max_messages >= 0 ? static_cast<size_t>(limits.max_messages - count) : 4096;
    size_t got = poll_batch(std::chrono::milliseconds(100), std::min<size_t>(room, 4096), counted_sink, nullptr);
    if (sink_closed) return RunStop::sink_closed;
    if (got == 0 && !idle()) return RunStop::sink_closed;
  }
}

}  // namespace kws
