#pragma once
// A `--plugin FILE.so` loaded through the C ABI of include/kws/plugin.h
// (docs/PLUGINS.md). The only place in kws that calls dlopen. A file that
// cannot be loaded, lacks the entry symbol or speaks another ABI version is
// a kws::Error naming the file and the reason, at start; never a crash.
#include <memory>
#include <string>

#include "core/message.hpp"

struct kws_plugin;

namespace kws {

enum class PluginDirection { incoming, outgoing };

class Plugin {
 public:
  enum class Verdict { keep, drop, failed };

  // Loads `path` (a path with a '/' as given; a bare name is looked up as
  // "./NAME", never in the library search path). Throws a usage kws::Error
  // starting with `origin` ("--plugin", "KWS_SERVE_PLUGIN") and the path.
  static std::shared_ptr<const Plugin> load(const std::string& path, const std::string& origin = "--plugin");
  ~Plugin();
  Plugin(const Plugin&) = delete;
  Plugin& operator=(const Plugin&) = delete;

  const std::string& name() const { return name_; }
  const std::string& path() const { return path_; }

  // Runs the plugin's transform on `message`; on keep, `message` holds its
  // changes. On failed, `problem` says why (a return code the ABI does not
  // know, a refused edit) and `message` is unchanged. Thread-safe as far as
  // the plugin is (the ABI asks plugins to be).
  Verdict transform(PluginDirection direction, Message& message, std::string& problem) const;

 private:
  Plugin() = default;
  void* handle_ = nullptr;
  const kws_plugin* plugin_ = nullptr;
  std::string name_;
  std::string path_;
};

}  // namespace kws
