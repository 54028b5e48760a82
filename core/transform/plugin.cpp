#include "core/transform/plugin.hpp"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "core/topic_name.hpp"
#include "core/util/error.hpp"
#include "kws/plugin.h"

namespace kws {

namespace {

// What a transform asked for, applied only after it returned: the message it
// reads must not change under it.
struct Staged {
  PluginDirection direction = PluginDirection::incoming;
  std::optional<std::string> topic;
  bool key_set = false;
  std::optional<std::string> key;
  bool value_set = false;
  std::optional<std::string> value;
  bool headers_cleared = false;
  std::vector<Header> added;
  std::string problem;  // the first refused edit
};

Staged& staged(kws_edit* edit) { return *static_cast<Staged*>(edit->host); }

std::optional<std::string> bytes_of(const char* data, size_t size) {
  if (!data) return std::nullopt;
  return std::string(data, size);
}

int set_topic(kws_edit* edit, const char* data, size_t size) {
  Staged& s = staged(edit);
  if (s.direction == PluginDirection::outgoing) {
    if (s.problem.empty()) s.problem = "set_topic on an outgoing message (its topic is the subscription's)";
    return -1;
  }
  if (!data || size == 0) {
    if (s.problem.empty()) s.problem = "set_topic with an empty topic";
    return -1;
  }
  s.topic = std::string(data, size);
  return 0;
}

int set_key(kws_edit* edit, const char* data, size_t size) {
  Staged& s = staged(edit);
  s.key_set = true;
  s.key = bytes_of(data, size);
  return 0;
}

int set_value(kws_edit* edit, const char* data, size_t size) {
  Staged& s = staged(edit);
  s.value_set = true;
  s.value = bytes_of(data, size);
  return 0;
}

int clear_headers(kws_edit* edit) {
  Staged& s = staged(edit);
  s.headers_cleared = true;
  s.added.clear();
  return 0;
}

int add_header(kws_edit* edit, const char* name, size_t name_size, const char* value, size_t value_size) {
  Staged& s = staged(edit);
  if (!name || name_size == 0) {
    if (s.problem.empty()) s.problem = "add_header with an empty name";
    return -1;
  }
  s.added.push_back(Header{std::string(name, name_size), bytes_of(value, value_size)});
  return 0;
}

kws_bytes view_of(const std::optional<std::string>& text) {
  if (!text) return kws_bytes{nullptr, 0};
  return kws_bytes{text->data(), text->size()};
}

std::string dl_problem() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

}  // namespace

std::shared_ptr<const Plugin> Plugin::load(const std::string& given, const std::string& origin) {
  const std::string where = origin + ": " + given + ": ";
  if (given.empty()) throw usage_error(origin + ": no file given");
  // dlopen searches the library path for a name without '/': a plugin is a
  // file the operator names, never a library found elsewhere.
  const std::string path = given.find('/') == std::string::npos ? "./" + given : given;
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) throw usage_error(where + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw usage_error(where + "not a regular file");
  std::shared_ptr<Plugin> p(new Plugin());
  p->path_ = given;
  dlerror();
  // RTLD_LOCAL: a plugin's symbols never resolve another library's;
  // RTLD_NOW: a missing symbol of its own fails here, not mid-stream.
  p->handle_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!p->handle_) throw usage_error(where + "cannot load it: " + dl_problem());
  dlerror();
  void* entry = dlsym(p->handle_, KWS_PLUGIN_ENTRY_SYMBOL);
  if (!entry) {
    throw usage_error(where + "not a kws plugin: it has no " KWS_PLUGIN_ENTRY_SYMBOL " function (" + dl_problem() + ")");
  }
  auto fn = reinterpret_cast<kws_plugin_entry_fn>(entry);
  const kws_plugin* plugin = fn(KWS_PLUGIN_ABI_VERSION);
  if (!plugin) throw usage_error(where + KWS_PLUGIN_ENTRY_SYMBOL " returned nothing (the plugin refused to start)");
  if (plugin->abi_version != KWS_PLUGIN_ABI_VERSION) {
    throw usage_error(where + "plugin ABI version " + std::to_string(plugin->abi_version) + ", but this kws speaks " +
                      std::to_string(KWS_PLUGIN_ABI_VERSION) + " (rebuild it against this kws's kws/plugin.h)");
  }
  if (!plugin->transform) throw usage_error(where + "its kws_plugin has no transform function");
  p->plugin_ = plugin;
  p->name_ = plugin->name && *plugin->name ? plugin->name : given;
  return p;
}

Plugin::~Plugin() {
  if (handle_) dlclose(handle_);
}

Plugin::Verdict Plugin::transform(PluginDirection direction, Message& m, std::string& problem) const {
  std::vector<kws_header> headers;
  headers.reserve(m.headers.size());
  for (const auto& h : m.headers) headers.push_back(kws_header{kws_bytes{h.name.data(), h.name.size()}, view_of(h.value)});
  kws_message in{};
  in.topic = kws_bytes{m.topic.data(), m.topic.size()};
  in.key = view_of(m.key);
  in.value = view_of(m.value);
  in.headers = headers.data();
  in.header_count = headers.size();
  in.partition = m.partition.value_or(-1);
  in.offset = m.offset.value_or(-1);
  in.timestamp_ms = m.timestamp_ms.value_or(-1);
  Staged s;
  s.direction = direction;
  kws_edit edit{&set_topic, &set_key, &set_value, &clear_headers, &add_header, &s};
  const int verdict =
      plugin_->transform(direction == PluginDirection::incoming ? KWS_INCOMING : KWS_OUTGOING, &in, &edit);
  if (verdict != KWS_KEEP && verdict != KWS_DROP) {
    problem = "its transform returned " + std::to_string(verdict) + " (neither KWS_KEEP nor KWS_DROP)";
    return Verdict::failed;
  }
  if (!s.problem.empty()) {
    problem = "its transform asked for " + s.problem;
    return Verdict::failed;
  }
  if (verdict == KWS_DROP) return Verdict::drop;
  if (s.topic) {
    if (auto bad = topic_name_problem(*s.topic)) {
      problem = "its transform set topic '" + *s.topic + "': " + *bad;
      return Verdict::failed;
    }
    m.topic = std::move(*s.topic);
  }
  if (s.key_set) m.key = std::move(s.key);
  if (s.value_set) m.value = std::move(s.value);
  if (s.headers_cleared) m.headers.clear();
  for (auto& h : s.added) m.headers.push_back(std::move(h));
  return Verdict::keep;
}

}  // namespace kws
