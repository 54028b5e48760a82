#pragma once
// Kafka's rule for topic names, checked locally so that every command
// refuses a bad name before connecting, with the rule in the message.
#include <optional>
#include <string>
#include <string_view>

namespace kws {

// 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
bool is_valid_topic_name(std::string_view name);

// Throws a usage kws::Error that states the rule when `name` breaks it.
void check_topic_name(const std::string& name);

// Why Kafka would refuse `name`, or nothing when it is fine (for error
// frames, where nothing may be thrown).
std::optional<std::string> topic_name_problem(std::string_view name);

}  // namespace kws
