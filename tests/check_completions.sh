#!/usr/bin/env bash
# The generated completion scripts load in their shells and complete.
set -euo pipefail
repo=$1
status=0
# bash: drive the completion function the way readline would.
out=$(bash -c '
  source "$1/completions/kws.bash"
  COMP_WORDS=(kws ta); COMP_CWORD=1; _kws; echo "cmd:${COMPREPLY[*]}"
  COMP_WORDS=(kws tail --off); COMP_CWORD=2; _kws; echo "opt:${COMPREPLY[*]}"
  COMP_WORDS=(kws tail -o beg); COMP_CWORD=3; _kws; echo "val:${COMPREPLY[*]}"
  COMP_WORDS=(kws completion z); COMP_CWORD=2; _kws; echo "shell:${COMPREPLY[*]}"
' _ "$repo")
echo "$out"
grep -qx 'cmd:tail' <<<"$out" || { echo "bash: 'kws ta' did not complete to tail" >&2; status=1; }
grep -qx 'opt:--offset' <<<"$out" || { echo "bash: 'kws tail --off' did not complete" >&2; status=1; }
grep -qx 'val:beginning' <<<"$out" || { echo "bash: -o value did not complete" >&2; status=1; }
grep -qx 'shell:zsh' <<<"$out" || { echo "bash: completion SHELL did not complete" >&2; status=1; }
# A missing shell skips only its own checks; a failure anywhere else still
# fails the test, and a skip is reported only when everything that ran passed.
missing=()
if command -v zsh >/dev/null; then
  zsh -n "$repo/completions/_kws" || { echo "zsh: syntax error in _kws" >&2; status=1; }
else
  missing+=(zsh)
fi
if command -v fish >/dev/null; then
  fish --no-execute "$repo/completions/kws.fish" || { echo "fish: syntax error" >&2; status=1; }
  out=$(fish -c "source $repo/completions/kws.fish; complete -C 'kws tail --off'")
  grep -q -- '--offset' <<<"$out" || { echo "fish: 'kws tail --off' did not complete: $out" >&2; status=1; }
else
  missing+=(fish)
fi
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "SKIP: ${missing[*]} not installed, so those completions were not checked (bash passed)" >&2
  exit 77
fi
exit 0
