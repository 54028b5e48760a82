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

}  // namespace

struct FieldRules::Impl {
  std::optional<json::json_pointer> key;
  std::vector<std::pair<json::json_pointer, std::string>> filters;
  std::optional<json::json_pointer> seq;
};

FieldRules::FieldRules(const FieldSpecs& specs) : impl_(std::make_unique<Impl>()) {
  if (!specs.key_field.empty()) impl_->key = compile_pointer(specs.key_field, "--key-field");
  for (const auto& f : specs.filters) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw usage_error("--filter '" + f + "': expected /pointer=value");
    impl_->filters.emplace_back(compile_pointer(f.substr(0, eq), "--filter"), f.substr(eq + 1));
  }
  if (!specs.seq_field.empty()) impl_->seq = compile_pointer(specs.seq_field, "--seq-field");
}

FieldRules::~FieldRules() = default;
FieldRules::FieldRules(FieldRules&&) noexcept = default;
FieldRules& FieldRules::operator=(FieldRules&&) noexcept = default;

bool FieldRules::active() const { return impl_->key || !impl_->filters.empty() || impl_->seq; }
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
