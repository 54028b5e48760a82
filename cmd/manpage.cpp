// Man pages generated from the CLI11 tree plus each command's CommandDoc,
// so an option cannot be added without appearing in its page.
#include <algorithm>
#include <sstream>

#include "cmd/app.hpp"
#include "core/config.hpp"
#include "core/settings.hpp"
#include "core/util/error.hpp"

namespace kws::cmd {

namespace {

// Escapes text for roff: backslashes, hyphens (so they render as ASCII
// minus and copy-paste as such), and a leading dot or quote on a line.
std::string roff(const std::string& text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    line_start = c == '\n';
    if (c == '\\') {
      out += "\\e";
    } else if (c == '-') {
      out += "\\-";
    } else {
      out += c;
    }
  }
  return out;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Paragraphs of a section; the first needs no .PP right after .SH.
void paragraphs(std::ostringstream& s, const std::string& text) {
  size_t start = 0;
  bool first = true;
  while (start <= text.size()) {
    size_t end = text.find("\n\n", start);
    std::string para = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (!para.empty()) {
      s << (first ? "" : ".PP\n") << roff(para) << "\n";
      first = false;
    }
    if (end == std::string::npos) break;
    start = end + 2;
  }
}

void options_section(std::ostringstream& s, const CLI::App* app) {
  bool any = false;
  for (const CLI::Option* opt : app->get_options()) {
    if (!opt->nonpositional()) continue;
    if (!any) s << ".SH OPTIONS\n";
    any = true;
    s << ".TP\n";
    std::string names;
    for (const auto& n : opt->get_snames()) names += (names.empty() ? "" : ", ") + std::string("\\fB\\-") + n + "\\fR";
    for (const auto& n : opt->get_lnames()) {
      names += (names.empty() ? "" : ", ") + std::string("\\fB\\-\\-") + roff(n) + "\\fR";
    }
    if (opt->get_type_size() != 0) names += " \\fI" + roff(opt->get_type_name()) + "\\fR";
    s << names << "\n" << roff(opt->get_description());
    std::string def = opt->get_default_str();
    if (!def.empty() && opt->get_type_size() != 0) s << " (default: " << roff(def) << ")";
    s << "\n";
  }
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

std::string type_description(const SettingKey& key) {
  const std::string zero = key.zero.empty() ? "" : " (0: " + key.zero + ")";
  switch (key.type) {
    case SettingType::host_port:
      return "HOST:PORT or [V6]:PORT; PORT or :PORT alone means 127.0.0.1:PORT (every interface only as "
             "0.0.0.0:PORT)";
    case SettingType::bytes:
      return "bytes: a number with an optional k, M or G (powers of 1024; KiB, KB, MiB, MB, GiB, GB alike)" + zero;
    case SettingType::count:
      return "a whole number from " + std::string(key.zero.empty() ? "1" : "0") +
             (key.max ? " to " + std::to_string(key.max) : std::string()) + zero +
             (key.unlimited.empty() ? "" : ", or " + key.unlimited);
    case SettingType::duration:
      return "a duration: a number with ms, s, m or h, or parts from the largest unit down such as 1m30s (a plain "
             "number is seconds)" + zero;
    case SettingType::factor:
      return "a number from 1 to " + std::to_string(key.max);
    case SettingType::choice:
      return join(key.choices, ", ");
    case SettingType::path:
      return "a file";
    case SettingType::text:
      return "text";
    case SettingType::boolean:
      return "true or false";
    case SettingType::list:
      return "items separated by commas (empty: none)";
  }
  return "";
}

// kws's own settings, from the key table: on kws(1) and kws-config(1) all
// of them, on a command's page those it reads (none: no section).
void settings_section(std::ostringstream& s, const std::string& command) {
  bool all = command.empty() || command == "config";
  bool any = false;
  for (const auto& key : kws_setting_keys()) {
    if (!all && !key.used_by(command)) continue;
    if (!any) {
      s << ".SH SETTINGS\n"
        << roff(
               "kws's own settings, as opposed to the librdkafka properties that -X passes through. "
               "Each is set, highest precedence first, by the reading command's flag, by its "
               "environment variable, by a kws. line in the config file (e.g. "
               "kws.serve.listen=0.0.0.0:8080), or else has the default shown. "
               "An unknown kws. key in the config file is an error; `kws config` shows every "
               "value and where it came from.")
        << "\n";
      any = true;
    }
    s << ".TP\n.B " << roff(key.file_key()) << "\n"
      << roff(key.doc) << "\n.br\n"
      << roff("Environment " + key.env + "; " + type_description(key) + "; default " +
              (key.default_value.empty() ? "empty (not set)" : key.default_value) + "; read by kws " +
              join(key.commands, ", kws ") + ".")
      << "\n";
  }
}

void common_sections(std::ostringstream& s, const CommandDoc& doc) {
  s << ".SH EXIT STATUS\n";
  s << ".TP\n.B 0\nSuccess.\n";
  s << ".TP\n.B 1\nRuntime failure: brokers unreachable, unknown topic, a message not delivered.\n";
  s << ".TP\n.B 2\nUsage error: bad flags, bad \\-o, bad \\-X property, bad config file.\n";
  // One rule for every command, applied in main.cpp.
  s << ".TP\n.B 130\nStopped by SIGINT (Ctrl\\-C), after the command's orderly shutdown (producer flushed, "
       "consumer closed, connections closed).\n";
  s << ".TP\n.B 143\nStopped by SIGTERM, after the same orderly shutdown.\n";
  s << ".PP\nA stop signal decides the status even when something went wrong on the way out; stderr says "
       "what (for example how many messages were not delivered).\n";
  if (!doc.extra_exit_status.empty()) s << ".PP\n" << roff(doc.extra_exit_status) << "\n";
  s << ".SH ENVIRONMENT\n";
  for (const auto& alias : environment_aliases()) {
    s << ".TP\n.B " << alias.variable << "\nSets the librdkafka property " << roff(alias.property)
      << "; a flag beats it, it beats the config file.\n";
  }
  s << ".TP\n.B KWS_CONFIG\nConfig file to read when \\-F is not given.\n";
  if (doc.name == "tail" || doc.name == "send") {
    // The one variable of the bridge flags (cmd/common.cpp, bridge_client_settings).
    s << ".TP\n.B KWS_TOKEN\nWith a ws:// or wss:// URL: the bearer token sent as Authorization: Bearer "
         "when \\-\\-token is not given.\n";
  }
  std::vector<std::string> prefixes;  // KWS_SERVE_*, ... from the key table
  for (const auto& key : kws_setting_keys()) {
    for (const auto& command : key.commands) {
      std::string p = "KWS_" + upper(command) + "_*";
      if (std::find(prefixes.begin(), prefixes.end(), p) == prefixes.end()) prefixes.push_back(p);
    }
  }
  if (!prefixes.empty()) {
    s << ".TP\n.B " << roff(join(prefixes, ", ")) << "\nkws's own settings; see SETTINGS in\n.BR kws (1).\n";
  }
  s << ".TP\n.B NO_COLOR\nWhen set, diagnostics are never coloured.\n";
  s << ".TP\n.B CLICOLOR_FORCE\nWhen set (and not 0), diagnostics are coloured even when stderr is not a terminal.\n";
  s << ".SH FILES\n";
  s << ".TP\n.I ~/.config/kws/kws.conf\n"
       "librdkafka properties and kws. settings (key=value lines, # comments) read when neither "
       "\\-F nor KWS_CONFIG names a file; $XDG_CONFIG_HOME replaces ~/.config when set.\n";
}

void examples_section(std::ostringstream& s, const CommandDoc& doc) {
  if (doc.examples.empty()) return;
  s << ".SH EXAMPLES\n";
  bool first = true;
  for (const auto& [command, what] : doc.examples) {
    s << (first ? "" : ".PP\n") << roff(what) << ":\n.PP\n.RS 4\n.nf\n\\fB" << roff(command) << "\\fR\n.fi\n.RE\n";
    first = false;
  }
}

}  // namespace

std::vector<std::string> man_page_names(const Cli& cli) {
  std::vector<std::string> names = {"kws"};
  for (const auto& c : cli.commands) {
    if (c.documented) names.push_back("kws-" + c.doc->name);
  }
  return names;
}

std::string man_page(const Cli& cli, const std::string& page) {
  std::ostringstream s;
  const char* header = "\" Generated by `kws manpage`; do not edit. Source: cmd/*.cpp\n";
  if (page == "kws") {
    s << ".\\" << header;
    s << ".TH KWS 1 \"\" \"kws " KWS_VERSION "\" \"kws manual\"\n";
    s << ".SH NAME\nkws \\- " << roff(kws_doc.summary) << "\n";
    s << ".SH SYNOPSIS\n.B kws\n" << roff(kws_doc.synopsis) << "\n";
    s << ".SH DESCRIPTION\n";
    paragraphs(s, kws_doc.description);
    s << ".SH COMMANDS\n";
    for (const auto& c : cli.commands) {
      if (!c.documented) continue;
      s << ".TP\n.BR kws\\-" << roff(c.doc->name) << " (1)\n" << roff(c.doc->summary) << "\n";
    }
    s << ".SH OPTIONS\n.TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\nPrint the versions of kws, "
         "librdkafka, websocketpp and OpenSSL, and the compiled-in features.\n"
         ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nShow help; after a command, that command's help.\n";
    settings_section(s, "");
    examples_section(s, kws_doc);
    common_sections(s, kws_doc);
    s << ".SH SEE ALSO\n";
    std::string sep;
    for (const auto& c : cli.commands) {
      if (!c.documented) continue;
      s << sep << ".BR kws\\-" << roff(c.doc->name) << " (1)";
      sep = ",\n";
    }
    s << ",\n.BR kcat (1)\n";
    return s.str();
  }
  for (const auto& c : cli.commands) {
    if (!c.documented || "kws-" + c.doc->name != page) continue;
    const CommandDoc& doc = *c.doc;
    s << ".\\" << header;
    s << ".TH " << upper("kws\\-" + doc.name) << " 1 \"\" \"kws " KWS_VERSION "\" \"kws manual\"\n";
    s << ".SH NAME\nkws\\-" << roff(doc.name) << " \\- " << roff(doc.summary) << "\n";
    s << ".SH SYNOPSIS\n.B kws " << roff(doc.name) << "\n" << roff(doc.synopsis) << "\n";
    s << ".SH DESCRIPTION\n";
    paragraphs(s, doc.description);
    options_section(s, c.app);
    settings_section(s, doc.name);
    examples_section(s, doc);
    common_sections(s, doc);
    s << ".SH SEE ALSO\n.BR kws (1)\n";
    return s.str();
  }
  throw usage_error("no man page named '" + page + "'");
}

}  // namespace kws::cmd
