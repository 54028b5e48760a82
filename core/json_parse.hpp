#pragma once
// Parsing one JSON text from a client or an input line, with the reason and
// column on failure, and without throwing: a server rejects one bad frame and
// carries on.
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/envelope.hpp"

namespace kws {

// Returns the document, or nothing with `error` set to "not valid JSON: column
// N: ..." (syntax, invalid UTF-8, trailing text, a raw NUL byte).
std::optional<nlohmann::json> parse_json_text(std::string_view text, std::string& error) noexcept;

// decode_envelope (envelope.hpp) for a document already parsed, e.g. a
// client frame whose "type" was looked at first. `also_known` names fields
// the caller reads itself (the bridge's "id" and "type"), so that an
// envelope refused for having no value does not call them unknown.
DecodedEnvelope decode_envelope_document(const nlohmann::json& doc,
                                         const std::vector<std::string_view>& also_known = {}) noexcept;

}  // namespace kws
