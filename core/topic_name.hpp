#pragma once
// Kafka's rule for topic names, checked before a name reaches a broker.
#include <optional>
#include <string>
#include <string_view>

namespace kws {

// Why Kafka would refuse `name` (1-249 characters of [a-zA-Z0-9._-], not "."
// or ".."), or nothing when it is fine.
std::optional<std::string> topic_name_problem(std::string_view name);

}  // namespace kws
