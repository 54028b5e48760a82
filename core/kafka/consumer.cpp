#include "core/kafka/consumer.hpp"

#include <cstring>
#include <unistd.h>

#include "core/error.hpp"
#include "core/kafka/metadata.hpp"
#include "core/output.hpp"

namespace kws {

namespace {

struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};
using PartitionList = std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter>;

// NULL without a group (explicit assignment), so check before comparing.
bool cooperative_rebalancing(rd_kafka_t* rk) {
  const char* protocol = rd_kafka_rebalance_protocol(rk);
  return protocol && std::strcmp(protocol, "COOPERATIVE") == 0;
}

TimestampType convert_timestamp_type(rd_kafka_timestamp_type_t t) {
  switch (t) {
    case RD_KAFKA_TIMESTAMP_CREATE_TIME: return TimestampType::create_time;
    case RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME: return TimestampType::log_append_time;
    default: return TimestampType::none;
  }
}

}  // namespace

TailConsumer::TailConsumer(const KafkaSettings& settings, TailPlan plan, int verbosity,
                           std::chrono::milliseconds connect_timeout)
    : plan_(std::move(plan)), timeout_(connect_timeout) {
  if (plan_.start.kind == OffsetSpec::Kind::stored && plan_.group.empty()) {
    throw usage_error("-o stored needs a consumer group: add -G GROUP");
  }
  ClientOptions options;
  options.type = RD_KAFKA_CONSUMER;
  options.verbosity = verbosity;
  // A group member learns where each partition ends even without -e, so that
  // it can commit the end of partitions it read nothing from (see run()).
  const bool want_eof = plan_.exit_at_end || !plan_.group.empty();
  options.required = {{"enable.partition.eof", want_eof ? "true" : "false"}};
  // librdkafka 2.0 compares its whole fetch queue against this per-partition
  // threshold and, once over it, stops fetching until a once-a-second timer;
  // a consumer that polls one message at a time hits that stall several times
  // per million messages (docs/BENCHMARKS.md). Memory stays bounded by
  // queued.max.messages.kbytes.
  options.defaults.push_back({"queued.min.messages", "1000000"});
  // With -e the last, empty fetch is held for fetch.wait.max.ms before the
  // end of the partition is known; 100 ms instead of 500 ms.
  if (plan_.exit_at_end) options.defaults.push_back({"fetch.wait.max.ms", "100"});
  if (plan_.group.empty()) {
    // No group: nothing is committed and no group is joined. librdkafka 2.0
    // still wants a group.id before it accepts an assignment, so give it a
    // private one that is never used for anything.
    options.required.push_back({"enable.auto.commit", "false"});
    options.required.push_back({"enable.auto.offset.store", "false"});
    options.required.push_back({"group.id", "kws-tail-" + std::to_string(getpid()) + "-" +
                                                std::to_string(std::chrono::steady_clock::now().time_since_epoch().count())});
  } else {
    options.required.push_back({"group.id", plan_.group});
    // Offsets are stored by hand: after a message was written out, and at the
    // end of a partition, so the group commits exactly what kws printed.
    options.required.push_back({"enable.auto.offset.store", "false"});
    if (!plan_.start_explicit || plan_.start.kind == OffsetSpec::Kind::stored) {
      // Where the group has no committed offset yet, start at the end, as a
      // tail would; -X auto.offset.reset=earliest changes that.
      options.defaults.push_back({"auto.offset.reset", "latest"});
    }
  }
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!plan_.group.empty()) rd_kafka_conf_set_rebalance_cb(conf, &TailConsumer::rebalance_callback);
  events_.owner = this;
  rk_ = create_client(settings, options, events_, conf);
  wait_for_brokers(rk_.get(), settings.brokers(), events_, connect_timeout);
  watch_ = std::make_unique<ConnectionWatch>(rk_.get(), events_, settings.brokers(), connect_timeout);

  ClusterInfo info = fetch_cluster_info(rk_.get(), plan_.topics, timeout_);
  if (plan_.partition) {
    for (const auto& t : info.topics) {
      if (*plan_.partition >= static_cast<int32_t>(t.partitions.size())) {
        throw Error("topic '" + t.name + "' has " + std::to_string(t.partitions.size()) +
                    " partition(s); there is no partition " + std::to_string(*plan_.partition));
      }
    }
  }

  if (plan_.group.empty()) {
    PartitionList list(rd_kafka_topic_partition_list_new(0));
    for (const auto& t : info.topics) {
      for (const auto& p : t.partitions) {
        if (plan_.partition && p.id != *plan_.partition) continue;
        rd_kafka_topic_partition_list_add(list.get(), t.name.c_str(), p.id);
      }
    }
    resolve_start_offsets(list.get());
    rd_kafka_poll_set_consumer(rk_.get());
    on_assign(list.get());
  } else {
    if (plan_.partition) throw usage_error("-p cannot be combined with -G (the group assigns partitions)");
    rd_kafka_poll_set_consumer(rk_.get());
    PartitionList list(rd_kafka_topic_partition_list_new(0));
    for (const auto& t : plan_.topics) {
      rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_.get(), list.get());
    if (err) throw Error(std::string("cannot subscribe: ") + rd_kafka_err2str(err));
  }
}

TailConsumer::~TailConsumer() {
  try {
    close();
  } catch (...) {
  }
}

void TailConsumer::close() {
  if (closed_ || !rk_) return;
  closed_ = true;
  rd_kafka_consumer_close(rk_.get());
}

int64_t TailConsumer::logical_start_offset() const {
  switch (plan_.start.kind) {
    case OffsetSpec::Kind::beginning: return RD_KAFKA_OFFSET_BEGINNING;
    case OffsetSpec::Kind::end: return RD_KAFKA_OFFSET_END;
    case OffsetSpec::Kind::stored: return RD_KAFKA_OFFSET_STORED;
    case OffsetSpec::Kind::absolute: return plan_.start.value;
    case OffsetSpec::Kind::from_end: return RD_KAFKA_OFFSET_TAIL(plan_.start.value);
    case OffsetSpec::Kind::timestamp: break;
  }
  return RD_KAFKA_OFFSET_END;  // timestamp offsets are looked up per partition
}

void TailConsumer::resolve_start_offsets(rd_kafka_topic_partition_list_t* partitions) {
  if (plan_.start.kind != OffsetSpec::Kind::timestamp) {
    for (int i = 0; i < partitions->cnt; ++i) partitions->elems[i].offset = logical_start_offset();
    return;
  }
  for (int i = 0; i < partitions->cnt; ++i) partitions->elems[i].offset = plan_.start.value;
  rd_kafka_resp_err_t err =
      rd_kafka_offsets_for_times(rk_.get(), partitions, static_cast<int>(timeout_.count()));
  if (err) throw Error(std::string("cannot look up offsets for the -o time: ") + rd_kafka_err2str(err));
  for (int i = 0; i < partitions->cnt; ++i) {
    auto& e = partitions->elems[i];
    // No message at or after the time: start at the end.
    if (e.err || e.offset < 0) e.offset = RD_KAFKA_OFFSET_END;
  }
}

void TailConsumer::on_assign(rd_kafka_topic_partition_list_t* partitions) {
  assignment_seen_ = true;
  for (int i = 0; i < partitions->cnt; ++i) {
    assigned_.insert({partitions->elems[i].topic, partitions->elems[i].partition});
  }
  rd_kafka_resp_err_t err;
  if (cooperative_rebalancing(rk_.get())) {
    rd_kafka_error_t* error = rd_kafka_incremental_assign(rk_.get(), partitions);
    if (error) {
      std::string why = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
      throw Error("cannot assign partitions: " + why);
    }
    return;
  }
  err = rd_kafka_assign(rk_.get(), partitions);
  if (err) throw Error(std::string("cannot assign partitions: ") + rd_kafka_err2str(err));
}

void TailConsumer::on_revoke(rd_kafka_topic_partition_list_t* partitions) {
  for (int i = 0; i < partitions->cnt; ++i) {
    std::pair<std::string, int32_t> tp{partitions->elems[i].topic, partitions->elems[i].partition};
    assigned_.erase(tp);
    at_end_.erase(tp);
  }
  if (cooperative_rebalancing(rk_.get())) {
    rd_kafka_error_t* error = rd_kafka_incremental_unassign(rk_.get(), partitions);
    if (error) rd_kafka_error_destroy(error);
  } else {
    rd_kafka_assign(rk_.get(), nullptr);
  }
}

void TailConsumer::rebalance_callback(rd_kafka_t*, rd_kafka_resp_err_t err,
                                      rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<TailConsumer*>(static_cast<ClientEvents*>(opaque)->owner);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    if (self->plan_.start_explicit && self->plan_.start.kind != OffsetSpec::Kind::stored) {
      // An explicit -o overrides the group's committed offsets, once per
      // partition: a later rebalance resumes from what was committed.
      PartitionList fresh(rd_kafka_topic_partition_list_new(0));
      for (int i = 0; i < partitions->cnt; ++i) {
        const auto& e = partitions->elems[i];
        if (self->started_.insert({e.topic, e.partition}).second) {
          rd_kafka_topic_partition_list_add(fresh.get(), e.topic, e.partition);
        }
      }
      self->resolve_start_offsets(fresh.get());
      for (int i = 0; i < fresh->cnt; ++i) {
        rd_kafka_topic_partition_list_find(partitions, fresh->elems[i].topic, fresh->elems[i].partition)
            ->offset = fresh->elems[i].offset;
      }
    }
    self->on_assign(partitions);
  } else {
    self->on_revoke(partitions);
  }
}

void TailConsumer::store_offset(const char* topic, int32_t partition, int64_t next_offset) {
  PartitionList list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic, partition)->offset = next_offset;
  rd_kafka_offsets_store(rk_.get(), list.get());
}

TailStop TailConsumer::run(const std::function<bool(const MessageView&)>& sink,
                           const std::function<bool()>& should_stop, const std::function<bool()>& idle) {
  int64_t count = 0;
  MessageView view;
  const char* last_topic_name = nullptr;
  rd_kafka_topic_t* last_rkt = nullptr;
  while (true) {
    if (should_stop()) return TailStop::interrupted;
    if (plan_.max_messages >= 0 && count >= plan_.max_messages) return TailStop::message_limit;
    // An empty assignment (a group with more members than partitions) is at
    // its end at once.
    if (plan_.exit_at_end && assignment_seen_ && at_end_.size() >= assigned_.size()) {
      if (assigned_.empty()) print_diagnostic("note", "the group assigned no partitions to this member");
      return TailStop::end_of_partitions;
    }
    rd_kafka_message_t* msg = rd_kafka_consumer_poll(rk_.get(), 100);
    if (!msg) {
      if (events_.fatal()) throw Error("consumer failed: " + events_.last_error());
      if (auto lost = watch_->check()) throw Error(*lost);
      if (!idle()) return TailStop::sink_closed;
      continue;
    }
    if (msg->err) {
      if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (plan_.exit_at_end) at_end_.insert({rd_kafka_topic_name(msg->rkt), msg->partition});
        // Commit the end of a partition the group read nothing from, as
        // Kafka's own consumer does; otherwise the next run would start at
        // "latest" there and skip what arrives in between. msg->offset is
        // the end offset, the next one to read.
        if (!plan_.group.empty()) store_offset(rd_kafka_topic_name(msg->rkt), msg->partition, msg->offset);
      } else if (msg->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                 msg->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                 msg->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        std::string why = rd_kafka_message_errstr(msg);
        rd_kafka_message_destroy(msg);
        throw Error(why);
      } else {
        print_diagnostic("warning", rd_kafka_message_errstr(msg));
      }
      rd_kafka_message_destroy(msg);
      continue;
    }
    if (msg->rkt != last_rkt) {
      last_rkt = msg->rkt;
      last_topic_name = rd_kafka_topic_name(msg->rkt);
    }
    view.topic = last_topic_name;
    view.partition = msg->partition;
    view.offset = msg->offset;
    rd_kafka_timestamp_type_t tstype;
    view.timestamp_ms = rd_kafka_message_timestamp(msg, &tstype);
    view.timestamp_type = convert_timestamp_type(tstype);
    if (plan_.start.kind == OffsetSpec::Kind::timestamp) {
      std::pair<std::string, int32_t> tp{last_topic_name, msg->partition};
      if (!reached_start_time_.count(tp)) {
        if (view.timestamp_ms < plan_.start.value) {
          rd_kafka_message_destroy(msg);
          continue;
        }
        reached_start_time_.insert(std::move(tp));
      }
    }
    view.key = msg->key ? std::optional<std::string_view>(std::string_view(static_cast<const char*>(msg->key), msg->key_len))
                        : std::nullopt;
    view.value = msg->payload ? std::optional<std::string_view>(std::string_view(static_cast<const char*>(msg->payload), msg->len))
                              : std::nullopt;
    view.headers.clear();
    if (plan_.want_headers) {
      rd_kafka_headers_t* headers = nullptr;
      if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i) {
          HeaderView h{name, std::nullopt};
          if (value) h.value = std::string_view(static_cast<const char*>(value), size);
          view.headers.push_back(h);
        }
      }
    }
    // A message after an end-of-partition event means the partition grew again.
    if (!at_end_.empty()) at_end_.erase({last_topic_name, msg->partition});
    bool keep_going = sink(view);
    if (keep_going && !plan_.group.empty()) rd_kafka_offset_store(msg->rkt, msg->partition, msg->offset);
    rd_kafka_message_destroy(msg);
    ++count;
    if (!keep_going) return TailStop::sink_closed;
  }
}

}  // namespace kws
