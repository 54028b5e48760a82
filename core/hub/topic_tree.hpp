#pragma once
// MQTT topic names and filters (MQTT 3.1.1 and 5, section 4.7) as pure
// functions, and a trie of filters by level (`TopicTree`) that finds every
// filter matching a name without looking at the others: the hub's index of
// `mqtt_topic` filters (issue 17), so a wildcard subscription costs a walk
// per message, not a check per session.
//
// Levels are split on '/', and an empty level is a level ("a//b" has three,
// "/a" two). In a filter, '+' is any one level and '#', only as the last
// level, is any number of levels including none ("a/#" matches "a" too). A
// name beginning with '$' (such as "$SYS/broker") is not matched by a filter
// whose first level is '+' or '#'.
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kws {

// Why `filter` is not an MQTT topic filter ("'#' must be the last level,
// alone"), or nothing when it is one: non-empty, at most 65535 bytes, UTF-8
// without U+0000, '+' only as a whole level, '#' only alone as the last.
std::optional<std::string> topic_filter_problem(std::string_view filter);
// Why `name` is not an MQTT topic name (what a PUBLISH carries), or nothing:
// non-empty, at most 65535 bytes, UTF-8 without U+0000, no '+' or '#'.
// (mqtt_: kws::topic_name_problem, core/topic_name.hpp, is Kafka's rule.)
std::optional<std::string> mqtt_topic_name_problem(std::string_view name);
// The same test without the reason, allocation-free (per message).
bool is_mqtt_topic_name(std::string_view name);

// Whether `name` matches `filter` by the rules above. Assumes a valid filter
// (a '#' that is not the last level is compared as text); checks nothing of
// `name` beyond its levels: callers that take names from outside test them
// with is_mqtt_topic_name first.
bool topic_matches(std::string_view filter, std::string_view name);

// Values stored under topic filters, found by topic name. Not thread-safe;
// the hub keeps one per Kafka topic on its own thread. The same (filter,
// value) may be inserted twice; then it is found twice and erased once per
// erase. Filters are assumed valid (topic_filter_problem). Matching, erasing
// and destruction recurse once per level of the stored filters, so callers
// bound their levels (MessageFilter: 128).
template <class T>
class TopicTree {
 public:
  void insert(std::string_view filter, T value) {
    Node* n = &root_;
    for (size_t pos = 0;;) {
      const size_t slash = filter.find('/', pos);
      const bool last = slash == std::string_view::npos;
      const std::string_view level = filter.substr(pos, last ? std::string_view::npos : slash - pos);
      if (last && level == "#") {
        n->rest.push_back(std::move(value));
        return;
      }
      n = &n->child(level);
      if (last) break;
      pos = slash + 1;
    }
    n->here.push_back(std::move(value));
  }

  // Removes one (filter, value) inserted before, and the nodes left empty.
  // False when there was none.
  bool erase(std::string_view filter, const T& value) { return erase_at(root_, filter, 0, value); }

  // Calls `on_match(value)` for every value whose filter matches `name`
  // (once per insert). Visits the levels of `name` along the literal path
  // and each '+' branch only: the cost grows with the levels and the
  // wildcards that match, never with the number of filters stored.
  template <class F>
  void match(std::string_view name, F&& on_match) const {
    walk(root_, name, 0, true, on_match);
  }

  bool empty() const { return root_.empty(); }

 private:
  struct Node {
    // Literal levels; std::less<> finds a string_view without a copy.
    std::map<std::string, std::unique_ptr<Node>, std::less<>> children;
    std::unique_ptr<Node> plus;  // the '+' level
    std::vector<T> here;         // filters that end at this node
    std::vector<T> rest;         // filters that end with '#' after this node

    bool empty() const { return children.empty() && !plus && here.empty() && rest.empty(); }
    Node& child(std::string_view level) {
      std::unique_ptr<Node>* slot = nullptr;
      if (level == "+") {
        slot = &plus;
      } else {
        auto it = children.find(level);
        if (it == children.end()) it = children.emplace(std::string(level), nullptr).first;
        slot = &it->second;
      }
      if (!*slot) *slot = std::make_unique<Node>();
      return **slot;
    }
  };

  static bool remove_value(std::vector<T>& values, const T& value) {
    for (auto it = values.begin(); it != values.end(); ++it) {
      if (*it == value) {
        values.erase(it);
        return true;
      }
    }
    return false;
  }

  // The level of `filter` starting at `pos` in `n`; prunes the child it went
  // into when that is left empty.
  static bool erase_at(Node& n, std::string_view filter, size_t pos, const T& value) {
    const size_t slash = filter.find('/', pos);
    const bool last = slash == std::string_view::npos;
    const std::string_view level = filter.substr(pos, last ? std::string_view::npos : slash - pos);
    if (last && level == "#") return remove_value(n.rest, value);
    std::unique_ptr<Node>* slot = nullptr;
    typename decltype(n.children)::iterator it;
    if (level == "+") {
      slot = &n.plus;
    } else {
      it = n.children.find(level);
      if (it != n.children.end()) slot = &it->second;
    }
    if (!slot || !*slot) return false;
    const bool found = last ? remove_value((*slot)->here, value) : erase_at(**slot, filter, slash + 1, value);
    if (found && (*slot)->empty()) {
      if (slot == &n.plus) {
        n.plus.reset();
      } else {
        n.children.erase(it);
      }
    }
    return found;
  }

  // `name` from `pos` holds the levels still to match against `n`'s
  // children; `pos == npos` means none are left (the name ended at `n`).
  template <class F>
  static void walk(const Node& n, std::string_view name, size_t pos, bool first, F& on_match) {
    if (pos == std::string_view::npos) {
      for (const auto& v : n.here) on_match(v);
      for (const auto& v : n.rest) on_match(v);  // "a/#" matches "a"
      return;
    }
    // A '$' name is not matched by a first level '+' or '#'.
    const bool wildcards = !(first && pos < name.size() && name[pos] == '$');
    if (wildcards) {
      for (const auto& v : n.rest) on_match(v);
    }
    const size_t slash = name.find('/', pos);
    const std::string_view level =
        name.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    const size_t next = slash == std::string_view::npos ? std::string_view::npos : slash + 1;
    auto it = n.children.find(level);
    if (it != n.children.end()) walk(*it->second, name, next, false, on_match);
    if (wildcards && n.plus) walk(*n.plus, name, next, false, on_match);
  }

  Node root_;
};

}  // namespace kws
