#include "core/ingest/fields.hpp"

#include <nlohmann/json.hpp>

#include "core/util/error.hpp"

namespace kws {

namespace {

using json = nlohmann::json;

json::json_pointer compile_pointer(const std::string& text, const char* flag) {
  if (text.empty() || text[0] != '/') {
    throw usage_error(std::string(flag) + " '" + text + "': a JSON pointer starts with '/' (e.g. /data/symbol)");
  }
  try {
    return json::json_pointer(text);
  } catch (const json::exception& e) {
    throw usage_error(std::string(flag) + " '" + text + "': not a JSON pointer (" + e.what() + ")");
  }
}

const json* find(const json& doc, const json::json_pointer& ptr) {
  // contains() refuses a pointer through a non-object instead of throwing,
  // except for malformed array indices, hence the try.
  try {
    if (!doc.contains(ptr)) return nullptr;
    return &doc.at(ptr);
  } catch (const json::exception&) {
    return nullptr;
  }
}

// A field as text: strings without quotes, anything else as compact JSON.
std::string as_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

const char* const kFilterForm =
    "accepted: /pointer=value with one '=', the value compared as text: strings without quotes, "
    "numbers, true, false, null and objects as compact JSON (e.g. --filter /symbol=BTC, --filter /n=5)";

// A filter that parses but reads like something else would silently match
// nothing; say so instead.
std::pair<std::string, std::string> split_filter(const std::string& f) {
  auto refuse = [&f](const std::string& why) {
    return usage_error("--filter '" + f + "': " + why + "; " + kFilterForm);
  };
  auto eq = f.find('=');
  if (eq == std::string::npos) throw refuse("no '='");
  std::string pointer = f.substr(0, eq);
  std::string value = f.substr(eq + 1);
  if (!value.empty() && value[0] == '=') {
    throw refuse("'==' is not an operator here (for equality write " + pointer + "=" + value.substr(1) + ")");
  }
  if (!pointer.empty() && std::string_view("!<>~").find(pointer.back()) != std::string_view::npos) {
    throw refuse(std::string("'") + pointer.back() + "=' is not an operator here: only equality is");
  }
  if ((!pointer.empty() && (pointer.back() == ' ' || pointer.back() == '\t')) ||
      (!value.empty() && (value[0] == ' ' || value[0] == '\t'))) {
    throw refuse("blanks around '=' would be part of the field name or the value");
  }
  if (value.size() >= 2 && ((value.front() == '"' && value.back() == '"') ||
                            (value.front() == '\'' && value.back() == '\''))) {
    throw refuse("quotes would be compared as part of the value (strings compare without them: " + pointer + "=" +
                 value.substr(1, value.size() - 2) + ")");
  }
  return {pointer, value};
}

}  // namespace

struct FieldRules::Impl {
  std::optional<json::json_pointer> key;
  std::vector<std::pair<json::json_pointer, std::string>> filters;
  std::optional<json::json_pointer> seq;
};

FieldRules::FieldRules(const FieldSpecs& specs) : impl_(std::make_unique<Impl>()) {
  if (!specs.key_field.empty()) impl_->key = compile_pointer(specs.key_field, "--key-field");
  for (const auto& f : specs.filters) {
    auto [pointer, value] = split_filter(f);
    impl_->filters.emplace_back(compile_pointer(pointer, "--filter"), value);
  }
  if (!specs.seq_field.empty()) impl_->seq = compile_pointer(specs.seq_field, "--seq-field");
}

FieldRules::~FieldRules() = default;
FieldRules::FieldRules(FieldRules&&) noexcept = default;
FieldRules& FieldRules::operator=(FieldRules&&) noexcept = default;

bool FieldRules::active() const { return impl_->key || !impl_->filters.empty() || impl_->seq; }
bool FieldRules::wants_filter() const { return !impl_->filters.empty(); }
bool FieldRules::wants_key() const { return impl_->key.has_value(); }
bool FieldRules::wants_seq() const { return impl_->seq.has_value(); }

Extracted FieldRules::extract(std::string_view message) const {
  Extracted out;
  if (!active()) return out;
  json doc = json::parse(message.begin(), message.end(), nullptr, /*allow_exceptions=*/false);
  out.parsed = !doc.is_discarded();
  if (!out.parsed) {
    out.keep = impl_->filters.empty();
    out.key_missing = impl_->key.has_value();
    return out;
  }
  for (const auto& [ptr, want] : impl_->filters) {
    const json* v = find(doc, ptr);
    if (!v || as_text(*v) != want) {
      out.keep = false;
      return out;
    }
  }
  if (impl_->key) {
    const json* v = find(doc, *impl_->key);
    if (v && !v->is_null()) {
      out.key = as_text(*v);
    } else {
      out.key_missing = true;
    }
  }
  if (impl_->seq) {
    const json* v = find(doc, *impl_->seq);
    if (v && v->is_number_integer()) {
      out.seq = v->get<int64_t>();
    } else if (v && v->is_string()) {
      const std::string& s = v->get_ref<const std::string&>();
      char* end = nullptr;
      long long n = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end && *end == '\0') out.seq = n;
    }
  }
  return out;
}

std::string FieldRules::why_filtered(std::string_view message) const {
  if (impl_->filters.empty()) return "";
  json doc = json::parse(message.begin(), message.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return "not JSON";
  for (const auto& [ptr, want] : impl_->filters) {
    const json* v = find(doc, ptr);
    if (!v) return ptr.to_string() + " is missing";
    if (as_text(*v) != want) {
      std::string found = v->dump();
      if (found.size() > 60) found = found.substr(0, 57) + "...";
      return ptr.to_string() + " is " + found + ", not " + want;
    }
  }
  return "";
}

uint64_t SeqTracker::observe(int64_t seq) {
  uint64_t skipped = 0;
  if (last_) {
    if (seq > *last_ + 1) {
      uint64_t jump = static_cast<uint64_t>(seq - *last_ - 1);
      if (fresh_connection_) {
        across_ += jump;
      } else {
        skipped = jump;
        skipped_ += jump;
        ++gaps_;
      }
    } else if (seq <= *last_ && !fresh_connection_) {
      ++out_of_order_;
    }
  }
  fresh_connection_ = false;
  // A feed that restarts its numbering is followed from the new number.
  last_ = seq;
  return skipped;
}

}  // namespace kws
