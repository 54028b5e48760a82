// Shell completion scripts generated from the CLI11 tree.
#include <sstream>

#include "cmd/app.hpp"
#include "core/util/error.hpp"

namespace kws::cmd {

namespace {

// What the value of an option or a positional argument completes to.
enum class ValueKind {
  none,     // a flag: no value
  file,     // FILE or PATH
  offset,   // tail -o: the words of the offset vocabulary
  choices,  // a fixed set (a choice setting, or a CLI11 IsMember check)
  topic,    // a topic name, asked of the brokers
  other,    // free text: nothing to offer
};

struct ValueInfo {
  ValueKind kind = ValueKind::none;
  std::string name;  // "FILE", "TOPIC", "close|drop-oldest"
  std::vector<std::string> choices;
};

struct OptionInfo {
  std::vector<std::string> short_names;  // without '-'
  std::vector<std::string> long_names;   // without '--'
  std::string description;
  ValueInfo value;
};

struct PositionalInfo {
  ValueInfo value;
  bool many = false;  // takes every further argument too
};

struct CommandInfo {
  std::string name;
  std::string summary;
  std::vector<OptionInfo> options;
  std::vector<PositionalInfo> positionals;  // in order
};

// The fixed set of values an option accepts; empty when it is not one.
std::vector<std::string> fixed_choices(CLI::Option* opt) {
  if (const SettingKey* key = setting_key_of(opt)) {
    return key->type == SettingType::choice ? key->choices : std::vector<std::string>{};
  }
  // Other fixed sets are CLI11 IsMember checks; CLI11 has no accessor for
  // their set, only the description it shows in --help ("{text,json}").
  for (int i = 0;; ++i) {
    CLI::Validator* validator = nullptr;
    try {
      validator = opt->get_validator(i);
    } catch (const CLI::OptionNotFound&) {
      break;
    }
    std::string d = validator->get_description();
    if (d.size() < 3 || d.front() != '{' || d.back() != '}') continue;
    std::vector<std::string> out;
    std::istringstream items(d.substr(1, d.size() - 2));
    for (std::string item; std::getline(items, item, ',');) out.push_back(item);
    return out;
  }
  return {};
}

ValueInfo value_of(CLI::Option* opt) {
  ValueInfo v;
  // A flag's type size is not always 0 in CLI11 2.1, but it has no type name.
  if (opt->get_type_size() == 0 || opt->get_type_name().empty()) return v;
  v.name = opt->get_type_name();
  v.choices = fixed_choices(opt);
  if (!v.choices.empty()) {
    v.kind = ValueKind::choices;
  } else if (v.name == "FILE" || v.name == "PATH") {
    v.kind = ValueKind::file;
  } else if (v.name == "OFFSET") {
    v.kind = ValueKind::offset;
  } else if (v.name == "TOPIC") {
    v.kind = ValueKind::topic;
  } else {
    v.kind = ValueKind::other;
  }
  return v;
}

std::vector<CommandInfo> collect(const Cli& cli) {
  std::vector<CommandInfo> out;
  for (const auto& c : cli.commands) {
    if (!c.documented) continue;
    CommandInfo info{c.doc->name, c.doc->summary, {}, {}};
    for (CLI::Option* opt : c.app->get_options()) {
      // An option may be both (kws tail's TOPIC and -t TOPIC).
      if (opt->get_positional()) info.positionals.push_back({value_of(opt), opt->get_expected_max() > 1});
      if (!opt->nonpositional()) continue;
      OptionInfo o;
      o.short_names = opt->get_snames();
      o.long_names = opt->get_lnames();
      o.description = opt->get_description();
      o.value = value_of(opt);
      info.options.push_back(o);
    }
    out.push_back(info);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

std::vector<std::string> dashed_names(const OptionInfo& o) {
  std::vector<std::string> names;
  for (const auto& n : o.short_names) names.push_back("-" + n);
  for (const auto& n : o.long_names) names.push_back("--" + n);
  return names;
}

// Every option of `c` that takes a value, dashed: the words after them are
// values, not positional arguments.
std::vector<std::string> valued_names(const CommandInfo& c) {
  std::vector<std::string> out;
  for (const auto& o : c.options) {
    if (o.value.kind == ValueKind::none) continue;
    for (const auto& n : dashed_names(o)) out.push_back(n);
  }
  return out;
}

const char* const kOffsetWords = "beginning end stored";

// How the completions ask for topic names: the brokers and config the
// command line names (else KWS_BROKERS, the config file, localhost), half a
// second at most, so a missing broker costs a pause instead of a hung shell.
const char* const kTopicsTimeout = "0.5";
const char* const kConnectionFlags[] = {"-b", "--brokers", "-F", "--config", "-X", "--property"};

std::string single_quote_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out;
}

std::string connection_flag_pattern(const char* sep) {
  std::string out;
  for (const char* f : kConnectionFlags) out += (out.empty() ? "" : sep) + std::string(f);
  return out;
}

std::string bash_script(const std::vector<CommandInfo>& commands) {
  std::ostringstream s;
  s << "# bash completion for kws. Generated by `kws completion bash`; do not edit.\n";
  s << "# Topic names: `kws topics --names` against the brokers this command line\n"
       "# names (else KWS_BROKERS, the config file, localhost:9092), with a "
    << kTopicsTimeout << " s timeout.\n";
  s << "_kws_topics() {\n";
  s << "  local args=() i\n";
  s << "  for ((i = 1; i + 1 < COMP_CWORD; i++)); do\n";
  s << "    case \"${COMP_WORDS[i]}\" in " << connection_flag_pattern("|")
    << ") args+=(\"${COMP_WORDS[i]}\" \"${COMP_WORDS[i+1]}\") ;; esac\n";
  s << "  done\n";
  s << "  \"${COMP_WORDS[0]}\" topics --names --timeout " << kTopicsTimeout << " \"${args[@]}\" 2>/dev/null\n";
  s << "}\n";
  s << "_kws() {\n";
  s << "  COMPREPLY=()\n";
  s << "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n";
  s << "  # --flag=value: readline splits at '=', so the flag is a word further back.\n";
  s << "  if [[ \"$cur\" == \"=\" ]]; then cur=\"\"; elif [[ \"$prev\" == \"=\" && COMP_CWORD -ge 2 ]]; then "
       "prev=\"${COMP_WORDS[COMP_CWORD-2]}\"; fi\n";
  s << "  local cmd=\"\" cmd_at=0 i\n";
  s << "  for ((i = 1; i < COMP_CWORD; i++)); do\n";
  s << "    case \"${COMP_WORDS[i]}\" in -*) ;; *) cmd=\"${COMP_WORDS[i]}\"; cmd_at=$i; break ;; esac\n";
  s << "  done\n";
  s << "  # positionals: what each positional argument completes to (topic, =WORDS,\n";
  s << "  # or nothing); with repeat=1 the last one also covers all further ones.\n";
  s << "  local opts=\"\" files=\"\" offsets=\"\" valued=\"\" repeat=0\n";
  s << "  local -a positionals=()\n";
  s << "  case \"$cmd\" in\n";
  s << "    \"\")\n      COMPREPLY=($(compgen -W \"";
  for (const auto& c : commands) s << c.name << ' ';
  s << "--help --version\" -- \"$cur\"))\n      return ;;\n";
  for (const auto& c : commands) {
    std::vector<std::string> opts, files, offsets;
    std::vector<std::pair<std::string, std::string>> prev_cases;  // names pattern, words or "topic"
    for (const auto& o : c.options) {
      std::vector<std::string> names = dashed_names(o);
      opts.insert(opts.end(), names.begin(), names.end());
      switch (o.value.kind) {
        case ValueKind::file: files.insert(files.end(), names.begin(), names.end()); break;
        case ValueKind::offset: offsets.insert(offsets.end(), names.begin(), names.end()); break;
        case ValueKind::choices: prev_cases.emplace_back(join(names, "|"), join(o.value.choices, " ")); break;
        case ValueKind::topic: prev_cases.emplace_back(join(names, "|"), ""); break;
        default: break;
      }
    }
    s << "    " << c.name << ")\n";
    s << "      opts=\"" << join(opts, " ") << "\"\n";
    if (!files.empty()) s << "      files=\"" << join(files, " ") << "\"\n";
    if (!offsets.empty()) s << "      offsets=\"" << join(offsets, " ") << "\"\n";
    std::vector<std::string> valued = valued_names(c);
    if (!valued.empty()) s << "      valued=\"" << join(valued, " ") << "\"\n";
    if (!c.positionals.empty()) {
      s << "      positionals=(";
      for (size_t i = 0; i < c.positionals.size(); ++i) {
        const ValueInfo& v = c.positionals[i].value;
        s << (i ? " " : "") << "\""
          << (v.kind == ValueKind::topic ? "topic" : v.kind == ValueKind::choices ? "=" + join(v.choices, " ") : "")
          << "\"";
      }
      s << ")\n";
      if (c.positionals.back().many) s << "      repeat=1\n";
    }
    if (!prev_cases.empty()) {
      s << "      case \"$prev\" in\n";
      for (const auto& [pattern, words] : prev_cases) {
        s << "        " << pattern << ") COMPREPLY=($(compgen -W \""
          << (words.empty() ? "$(_kws_topics)" : words) << "\" -- \"$cur\")); return ;;\n";
      }
      s << "      esac\n";
    }
    s << "      ;;\n";
  }
  s << "    *) return ;;\n";
  s << "  esac\n";
  s << "  if [[ \" $files \" == *\" $prev \"* ]]; then COMPREPLY=($(compgen -f -- \"$cur\")); return; fi\n";
  s << "  if [[ \" $offsets \" == *\" $prev \"* ]]; then COMPREPLY=($(compgen -W \"" << kOffsetWords
    << "\" -- \"$cur\")); return; fi\n";
  s << "  if [[ \" $valued \" == *\" $prev \"* ]]; then COMPREPLY=(); return; fi\n";
  s << "  if [[ \"$cur\" == -* ]]; then COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\")); return; fi\n";
  s << "  # Which positional argument is being typed: the words after the command\n";
  s << "  # that are neither options nor an option's value.\n";
  s << "  local n=0 skip=0\n";
  s << "  for ((i = cmd_at + 1; i < COMP_CWORD; i++)); do\n";
  s << "    if [[ \"${COMP_WORDS[i]}\" == \"=\" ]]; then skip=1; continue; fi\n";
  s << "    if ((skip)); then skip=0; continue; fi\n";
  s << "    case \"${COMP_WORDS[i]}\" in\n";
  s << "      -) n=$((n + 1)) ;;\n";
  s << "      -*) [[ \" $valued \" == *\" ${COMP_WORDS[i]} \"* ]] && skip=1 ;;\n";
  s << "      *) n=$((n + 1)) ;;\n";
  s << "    esac\n";
  s << "  done\n";
  s << "  if ((repeat && n >= ${#positionals[@]})); then n=$((${#positionals[@]} - 1)); fi\n";
  s << "  local kind=\"${positionals[n]:-}\"\n";
  s << "  case \"$kind\" in\n";
  s << "    topic) COMPREPLY=($(compgen -W \"$(_kws_topics)\" -- \"$cur\")) ;;\n";
  s << "    =*) COMPREPLY=($(compgen -W \"${kind#=}\" -- \"$cur\")) ;;\n";
  s << "  esac\n";
  s << "}\n";
  s << "complete -o default -F _kws kws\n";
  return s.str();
}

std::string zsh_escape(const std::string& text) {
  std::string out;
  for (char c : single_quote_escape(text)) {
    if (c == '[' || c == ']' || c == ':') out += '\\';
    out += c;
  }
  return out;
}

// The action part of an _arguments spec for a value: ":MESSAGE:ACTION".
std::string zsh_action(const ValueInfo& v) {
  // The message is shown above the matches; ':' would end it.
  std::string message = zsh_escape(v.name.empty() ? "value" : v.name);
  switch (v.kind) {
    case ValueKind::none: return "";
    case ValueKind::file: return ":" + message + ":_files";
    case ValueKind::offset: return ":" + message + ":(" + kOffsetWords + ")";
    case ValueKind::choices: return ":" + message + ":(" + join(v.choices, " ") + ")";
    case ValueKind::topic: return ":" + message + ":_kws_topics";
    case ValueKind::other: break;
  }
  return ":" + message + ": ";
}

std::string zsh_script(const std::vector<CommandInfo>& commands) {
  std::ostringstream s;
  s << "#compdef kws\n# zsh completion for kws. Generated by `kws completion zsh`; do not edit.\n";
  s << "# Topic names: `kws topics --names` against the brokers this command line\n"
       "# names (else KWS_BROKERS, the config file, localhost:9092), with a "
    << kTopicsTimeout << " s timeout.\n";
  s << "_kws_topics() {\n";
  s << "  local -a args topics\n";
  s << "  local i\n";
  s << "  for ((i = 2; i + 1 < CURRENT; i++)); do\n";
  s << "    case $words[i] in " << connection_flag_pattern("|") << ") args+=($words[i] $words[i+1]) ;; esac\n";
  s << "  done\n";
  s << "  topics=(${(f)\"$($_kws_bin topics --names --timeout " << kTopicsTimeout << " $args 2>/dev/null)\"})\n";
  s << "  _wanted topics expl topic compadd -a topics\n";
  s << "}\n";
  s << "_kws() {\n";
  s << "  local _kws_bin=$words[1]\n";
  s << "  local -a commands\n";
  s << "  commands=(\n";
  for (const auto& c : commands) {
    s << "    '" << c.name << ":" << single_quote_escape(c.summary) << "'\n";
  }
  s << "  )\n";
  s << "  if (( CURRENT == 2 )); then\n    _describe 'command' commands\n    return\n  fi\n";
  s << "  local command=$words[2]\n  shift words\n  (( CURRENT-- ))\n";
  s << "  case $command in\n";
  for (const auto& c : commands) {
    s << "    " << c.name << ")\n      _arguments -s";
    for (const auto& o : c.options) {
      std::string desc = "[" + zsh_escape(o.description) + "]";
      bool repeatable = o.description.find("repeatable") != std::string::npos;
      for (const auto& n : dashed_names(o)) {
        s << " \\\n        '" << (repeatable ? "*" : "") << n << desc << zsh_action(o.value) << "'";
      }
    }
    for (size_t i = 0; i < c.positionals.size(); ++i) {
      const PositionalInfo& p = c.positionals[i];
      std::string action = zsh_action(p.value);
      if (action.empty()) action = ": : ";
      const bool rest = p.many && i + 1 == c.positionals.size();
      s << " \\\n        '" << (rest ? "*" : std::to_string(i + 1)) << action << "'";
    }
    if (c.positionals.empty()) s << " \\\n        '*::argument: '";
    s << "\n      ;;\n";
  }
  s << "  esac\n}\n";
  s << "_kws \"$@\"\n";
  return s.str();
}

std::string fish_script(const std::vector<CommandInfo>& commands) {
  std::ostringstream s;
  s << "# fish completion for kws. Generated by `kws completion fish`; do not edit.\n";
  s << "complete -c kws -f\n";
  s << "# Topic names: `kws topics --names` against the brokers this command line\n"
       "# names (else KWS_BROKERS, the config file, localhost:9092), with a "
    << kTopicsTimeout << " s timeout.\n";
  s << "function __kws_topics\n";
  s << "    set -l words (commandline -opc)\n";
  s << "    set -l args\n";
  s << "    for i in (seq 2 (math (count $words) - 1))\n";
  s << "        switch $words[$i]\n";
  s << "            case " << connection_flag_pattern(" ") << "\n";
  s << "                set -a args $words[$i] $words[(math $i + 1)]\n";
  s << "        end\n";
  s << "    end\n";
  s << "    command -q $words[1]; or return\n";
  s << "    $words[1] topics --names --timeout " << kTopicsTimeout << " $args 2>/dev/null\n";
  s << "end\n";
  s << "# The index (from 0) of the positional argument being typed: the words\n"
       "# after the command that are neither options nor the value of one of\n"
       "# the options given as arguments (those that take a value).\n";
  s << "function __kws_positional_index\n";
  s << "    set -l words (commandline -opc)\n";
  s << "    set -l n 0\n";
  s << "    set -l command_seen 0\n";
  s << "    set -l skip 0\n";
  s << "    for w in $words[2..]\n";
  s << "        if test $skip = 1\n";
  s << "            set skip 0\n";
  s << "        else if test $command_seen = 0\n";
  s << "            string match -q -- '-*' $w; or set command_seen 1\n";
  s << "        else if test \"$w\" = -\n";
  s << "            set n (math $n + 1)\n";
  s << "        else if string match -q -- '--*=*' $w\n";
  s << "        else if string match -q -- '-*' $w\n";
  s << "            contains -- $w $argv; and set skip 1\n";
  s << "        else\n";
  s << "            set n (math $n + 1)\n";
  s << "        end\n";
  s << "    end\n";
  s << "    echo $n\n";
  s << "end\n";
  std::string all;
  for (const auto& c : commands) all += (all.empty() ? "" : " ") + c.name;
  for (const auto& c : commands) {
    s << "complete -c kws -n 'not __fish_seen_subcommand_from " << all << "' -a " << c.name << " -d '"
      << single_quote_escape(c.summary) << "'\n";
  }
  for (const auto& c : commands) {
    const std::string seen = "__fish_seen_subcommand_from " + c.name;
    for (const auto& o : c.options) {
      s << "complete -c kws -n '" << seen << "'";
      for (const auto& n : o.short_names) s << " -s " << n;
      for (const auto& n : o.long_names) s << " -l " << n;
      switch (o.value.kind) {
        case ValueKind::none: break;
        case ValueKind::file: s << " -r -F"; break;
        // -x: these values are the only ones, no file names among them.
        case ValueKind::offset: s << " -x -a '" << kOffsetWords << "'"; break;
        case ValueKind::choices: s << " -x -a '" << single_quote_escape(join(o.value.choices, " ")) << "'"; break;
        case ValueKind::topic: s << " -x -a '(__kws_topics)'"; break;
        case ValueKind::other: s << " -r"; break;
      }
      s << " -d '" << single_quote_escape(o.description) << "'\n";
    }
    const std::string valued = join(valued_names(c), " ");
    for (size_t i = 0; i < c.positionals.size(); ++i) {
      const PositionalInfo& p = c.positionals[i];
      std::string words;
      if (p.value.kind == ValueKind::topic) {
        words = "(__kws_topics)";
      } else if (p.value.kind == ValueKind::choices) {
        words = single_quote_escape(join(p.value.choices, " "));
      } else {
        continue;
      }
      const bool rest = p.many && i + 1 == c.positionals.size();
      s << "complete -c kws -n '" << seen << "; and test (__kws_positional_index " << valued << ") "
        << (rest ? "-ge " : "-eq ") << i << "' -a '" << words << "'\n";
    }
  }
  return s.str();
}

}  // namespace

std::string completion_script(const Cli& cli, const std::string& shell) {
  auto commands = collect(cli);
  if (shell == "bash") return bash_script(commands);
  if (shell == "zsh") return zsh_script(commands);
  if (shell == "fish") return fish_script(commands);
  throw usage_error("unknown shell '" + shell + "': expected bash, zsh or fish");
}

}  // namespace kws::cmd
