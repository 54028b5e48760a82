#!/usr/bin/env bash
# `cmake --install` gives a kws that works like an installed tool: into
# ~/.local (a fresh HOME here) the binary runs from PATH, `man` finds every
# page, and bash-completion, zsh and fish load the completions from where
# they look, with nothing sourced by hand. Into /usr/local (staged with
# DESTDIR) the files land in directories that man and zsh search by default.
#   check_install.sh BUILD_DIR REPO
set -euo pipefail
build=$(readlink -f "$1")
repo=$(readlink -f "$2")
status=0
fail() { echo "FAIL: $*" >&2; status=1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
home=$tmp/home
prefix=$home/.local
mkdir -p "$home"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log" >&2; exit 1; }

# What an installed user has: the prefix's bin on PATH, no kws variables,
# no XDG overrides, nothing from this build tree.
clean() { env -i HOME="$home" PATH="$prefix/bin:/usr/bin:/bin" TERM=dumb "$@"; }

# The binary.
found=$(clean bash -c 'command -v kws') || true
[ "$found" = "$prefix/bin/kws" ] || fail "kws on PATH is '$found', expected $prefix/bin/kws"
clean kws --version >"$tmp/version" 2>&1 || fail "kws --version failed: $(cat "$tmp/version")"
grep -q '^kws ' "$tmp/version" || fail "kws --version printed: $(cat "$tmp/version")"
grep -q '^kws plugin ABI: [0-9]' "$tmp/version" || fail "kws --version does not name its plugin ABI: $(cat "$tmp/version")"

# The plugin ABI (docs/PLUGINS.md): a plugin author has only the installed
# header. The example builds against it alone, as docs/PLUGINS.md says, and
# the installed kws serve loads it and says so.
[ -f "$prefix/include/kws/plugin.h" ] || fail "the install lacks include/kws/plugin.h"
if command -v cc >/dev/null; then
  if cc -shared -fPIC -Wall -Wextra -Werror -I"$prefix/include" -o "$tmp/example.so" "$repo/plugins/example/example.c" \
       2>"$tmp/cc.log"; then
    # exec: $! must be kws itself (a backgrounded function is a subshell
    # whose kill left kws serve running after the test).
    (exec env -i HOME="$home" PATH="$prefix/bin:/usr/bin:/bin" TERM=dumb \
       kws serve --plugin "$tmp/example.so" --broker-listen 127.0.0.1:0 -l 127.0.0.1:0 >/dev/null 2>"$tmp/serve.log") &
    serve_pid=$!
    for _ in $(seq 200); do
      grep -q "plugin 'example' loaded from $tmp/example.so" "$tmp/serve.log" && break
      kill -0 "$serve_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
    grep -q "plugin 'example' loaded from $tmp/example.so" "$tmp/serve.log" ||
      fail "the installed kws serve did not load a plugin built against the installed header: $(cat "$tmp/serve.log")"
  else
    fail "plugins/example/example.c does not build against the installed kws/plugin.h: $(cat "$tmp/cc.log")"
  fi
else
  fail "no C compiler (cc) to build a plugin against the installed header"
fi

# The man pages: by the prefix (-M), and by PATH alone (man-db looks in
# ../share/man next to each PATH directory), which is what `man kws` does.
for page in "$repo"/man/*.1; do
  name=$(basename "$page" .1)
  want=$prefix/share/man/man1/$name.1
  got=$(clean man -M "$prefix/share/man" -w "$name" 2>&1) || true
  [ "$got" = "$want" ] || fail "man -M $prefix/share/man -w $name: '$got', expected $want"
  got=$(clean man -w "$name" 2>&1) || true
  [ "$got" = "$want" ] || fail "man -w $name with $prefix/bin on PATH: '$got', expected $want"
  cmp -s "$page" "$want" || fail "$want differs from man/$name.1"
done
clean man -P cat kws-ingest 2>/dev/null | grep -q 'EXIT STATUS' || fail "man kws-ingest does not render"

# The completions, each loaded the way its shell finds it.
missing_shells=()
if [ -f /usr/share/bash-completion/bash_completion ]; then
  # bash-completion loads on demand from ../share/bash-completion/completions
  # next to the command's directory on PATH.
  got=$(clean bash -c 'source /usr/share/bash-completion/bash_completion
    __load_completion kws || exit 1
    COMP_WORDS=(kws serve --slow-client ""); COMP_CWORD=3; _kws; echo "${COMPREPLY[*]}"' 2>&1) || true
  [ "$got" = "close drop-oldest latest-per-key" ] || fail "bash-completion did not load kws's completion from $prefix: '$got'"
else
  missing_shells+=(bash-completion)
fi
if command -v zsh >/dev/null; then
  # ~/.local/share/zsh/site-functions is not in zsh's default fpath (the
  # README says to add it); /usr/local's is, checked below.
  got=$(clean zsh "$repo/tests/zsh_complete.zsh" "$prefix/share/zsh/site-functions" 'kws ingest --when-full ') || true
  [ "$got" = "block drop-newest drop-oldest" ] || fail "zsh did not complete from $prefix/share/zsh/site-functions: '$got'"
else
  missing_shells+=(zsh)
fi
if command -v fish >/dev/null; then
  # fish reads ~/.local/share/fish/vendor_completions.d by itself.
  got=$(clean fish -c 'complete -C "kws ingest --when-full " | string split -f1 \t | sort | paste -sd" "') || true
  [ "$got" = "block drop-newest drop-oldest" ] || fail "fish did not load kws's completion from $prefix: '$got'"
else
  missing_shells+=(fish)
fi

# /usr/local, staged: the same layout under the prefix where the system's
# man and zsh already look.
DESTDIR=$tmp/stage cmake --install "$build" --prefix /usr/local >"$tmp/install-local.log" 2>&1 ||
  { cat "$tmp/install-local.log" >&2; exit 1; }
for f in bin/kws include/kws/plugin.h share/man/man1/kws.1 share/bash-completion/completions/kws share/zsh/site-functions/_kws \
  share/fish/vendor_completions.d/kws.fish; do
  [ -f "$tmp/stage/usr/local/$f" ] || fail "/usr/local install lacks $f"
done
env -i PATH=/usr/bin:/bin manpath 2>/dev/null | tr ':' '\n' | grep -qx /usr/local/share/man ||
  fail "/usr/local/share/man is not in man's default path"
if command -v zsh >/dev/null; then
  zsh -fc 'print -l $fpath' | grep -qx /usr/local/share/zsh/site-functions ||
    fail "/usr/local/share/zsh/site-functions is not in zsh's default fpath"
fi

if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ ${#missing_shells[@]} -gt 0 ]; then
  echo "SKIP: ${missing_shells[*]} not installed, so those completions were not checked (the rest passed)" >&2
  exit 77
fi
echo "install: binary, $(ls "$repo"/man/*.1 | wc -l) man pages and bash, zsh, fish completions found under $prefix"
