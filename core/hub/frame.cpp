#include "core/hub/frame.hpp"

#include "core/envelope.hpp"

namespace kws {

void append_ws_frame_header(std::string& out, bool binary, size_t n) {
  out += static_cast<char>(0x80 | (binary ? 0x2 : 0x1));  // FIN + opcode
  if (n < 126) {
    out += static_cast<char>(n);
  } else if (n <= 0xFFFF) {
    out += static_cast<char>(126);
    out += static_cast<char>((n >> 8) & 0xFF);
    out += static_cast<char>(n & 0xFF);
  } else {
    out += static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8) out += static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xFF);
  }
}

std::string ws_text_frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 10);
  append_ws_frame_header(out, false, payload.size());
  out.append(payload);
  return out;
}

FramePtr encode_frame(const MessageView& m) {
  auto frame = std::make_shared<Frame>();
  frame->partition = m.partition;
  frame->offset = m.offset;
  frame->timestamp_ms = m.timestamp_ms;
  std::string envelope;
  envelope.reserve(128 + (m.value ? m.value->size() : 0) + (m.key ? m.key->size() : 0));
  append_envelope_json(envelope, m);
  frame->text.reserve(envelope.size() + 10);
  append_ws_frame_header(frame->text, false, envelope.size());
  frame->text += envelope;
  if (m.topic.size() <= kMaxBinaryTopicLength) {
    size_t value_size = m.value ? m.value->size() : 0;
    size_t payload = 1 + m.topic.size() + value_size;
    frame->binary.reserve(payload + 10);
    append_ws_frame_header(frame->binary, true, payload);
    frame->binary += static_cast<char>(m.topic.size());
    frame->binary.append(m.topic);
    if (m.value) frame->binary.append(*m.value);
  }
  return frame;
}

FrameBatchPtr make_batch(const FramePtr* frames, size_t count) {
  auto batch = std::make_shared<FrameBatch>();
  batch->frames.assign(frames, frames + count);
  size_t text = 0, binary = 0;
  for (size_t i = 0; i < count; ++i) {
    text += frames[i]->text.size();
    binary += frames[i]->binary.size();
  }
  batch->text.reserve(text);
  batch->binary.reserve(binary);
  for (size_t i = 0; i < count; ++i) {
    batch->text += frames[i]->text;
    if (!frames[i]->binary.empty()) {
      batch->binary += frames[i]->binary;
      ++batch->binary_frames;
    }
  }
  return batch;
}

std::vector<FrameBatchPtr> make_batches(const std::vector<FramePtr>& frames, size_t max_bytes) {
  std::vector<FrameBatchPtr> out;
  size_t begin = 0, bytes = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    if (i > begin && bytes + frames[i]->text.size() > max_bytes) {
      out.push_back(make_batch(frames.data() + begin, i - begin));
      begin = i;
      bytes = 0;
    }
    bytes += frames[i]->text.size();
  }
  if (begin < frames.size()) out.push_back(make_batch(frames.data() + begin, frames.size() - begin));
  return out;
}

}  // namespace kws
