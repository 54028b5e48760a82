#pragma once
// `--add-field NAME=bridge_time|JSON`: fields the bridge adds to outgoing
// message values that are JSON objects (docs/PROTOCOL.md, "Transforms").
// Applied where the bridge reads a message from Kafka, once per message,
// so every client gets the same bytes of one encoding per batch.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kws {

struct AddedField {
  std::string name;
  std::string quoted_name;    // as a JSON string
  bool bridge_time = false;  // the time the bridge read the message, ms since the epoch
  std::string json;          // otherwise: this JSON text, as given
};

// Reads one `NAME=bridge_time` or `NAME=JSON` item; nothing with `problem`
// set when it is not one (no '=', an empty name, a value that is not JSON).
std::optional<AddedField> parse_added_field(std::string_view item, std::string& problem);

// `value` with `fields` added at the end of its top-level object, its own
// bytes otherwise untouched; a field the object already has keeps its value.
// Nothing when `value` is not a JSON object (text, arrays, invalid JSON pass
// as they are).
std::optional<std::string> add_fields(std::string_view value, const std::vector<AddedField>& fields, int64_t now_ms);

}  // namespace kws
