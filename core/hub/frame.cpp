#include "core/hub/frame.hpp"

#include "core/hub/encodings.hpp"

namespace kws {

MessageView Frame::view(std::string_view topic) const {
  MessageView v;
  v.topic = topic;
  v.partition = partition;
  v.offset = offset;
  v.timestamp_ms = timestamp_ms;
  v.timestamp_type = timestamp_type;
  if (key) v.key = std::string_view(*key);
  if (value) v.value = std::string_view(*value);
  v.headers.reserve(headers.size());
  for (const auto& h : headers) {
    HeaderView hv;
    hv.name = h.name;
    if (h.value) hv.value = std::string_view(*h.value);
    v.headers.push_back(hv);
  }
  return v;
}

size_t Frame::memory() const {
  size_t n = sizeof(Frame) + (key ? key->capacity() : 0) + (value ? value->capacity() : 0);
  for (const auto& h : headers) n += sizeof(Header) + h.name.capacity() + (h.value ? h.value->capacity() : 0);
  return n;
}

size_t Frame::wire_estimate() const {
  // The envelope's fixed fields and framing, plus what it quotes.
  size_t n = 160 + (key ? key->size() : 0) + (value ? value->size() : 0);
  for (const auto& h : headers) n += 32 + h.name.size() + (h.value ? h.value->size() : 0);
  return n;
}

FramePtr make_frame(const MessageView& m) {
  auto frame = std::make_shared<Frame>();
  frame->partition = m.partition;
  frame->offset = m.offset;
  frame->timestamp_ms = m.timestamp_ms;
  frame->timestamp_type = m.timestamp_type;
  if (m.key) frame->key.emplace(*m.key);
  if (m.value) frame->value.emplace(*m.value);
  frame->headers.reserve(m.headers.size());
  for (const auto& h : m.headers) {
    Header header;
    header.name = std::string(h.name);
    if (h.value) header.value.emplace(*h.value);
    frame->headers.push_back(std::move(header));
  }
  return frame;
}

const FrameBatch::Encoded& FrameBatch::encoded(Encoding encoding) const {
  Encoded& e = encoded_[static_cast<size_t>(encoding)];
  std::call_once(e.built, [&] {
    size_t estimate = 0;
    for (const auto& f : frames_) estimate += f->wire_estimate();
    e.bytes.reserve(estimate);
    for (const auto& f : frames_) e.count += append_encoded(e.bytes, encoding, *topic_, *f) ? 1 : 0;
  });
  return e;
}

const std::string& FrameBatch::bytes(Encoding encoding) const { return encoded(encoding).bytes; }

size_t FrameBatch::count(Encoding encoding) const { return encoded(encoding).count; }

std::vector<FrameBatchPtr> make_batches(const std::shared_ptr<const std::string>& topic,
                                        const std::vector<FramePtr>& frames, size_t max_bytes) {
  std::vector<FrameBatchPtr> out;
  size_t begin = 0, bytes = 0;
  auto cut = [&](size_t end) {
    out.push_back(std::make_shared<const FrameBatch>(
        topic, std::vector<FramePtr>(frames.begin() + static_cast<std::ptrdiff_t>(begin),
                                     frames.begin() + static_cast<std::ptrdiff_t>(end))));
  };
  for (size_t i = 0; i < frames.size(); ++i) {
    const size_t size = frames[i]->wire_estimate();
    if (i > begin && bytes + size > max_bytes) {
      cut(i);
      begin = i;
      bytes = 0;
    }
    bytes += size;
  }
  if (begin < frames.size()) cut(frames.size());
  return out;
}

}  // namespace kws
