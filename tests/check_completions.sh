#!/usr/bin/env bash
# The generated completion scripts load in their shells and complete:
# commands, options, the values of options with a fixed set of choices (from
# the settings key table and CLI11's checks), and topic names asked of a live
# broker, which a missing broker must not turn into a hung shell.
#   check_completions.sh REPO KWS_BIN
set -euo pipefail
repo=$1
kws_bin=$(readlink -f "$2")
status=0
fail() { echo "FAIL: $*" >&2; status=1; }

tmp=$(mktemp -d)
broker_pid=""
cleanup() {
  if [ -n "$broker_pid" ]; then kill "$broker_pid" 2>/dev/null || true; wait "$broker_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# The scripts run `kws topics --names` as the user typed kws: from PATH.
mkdir "$tmp/bin"
ln -s "$kws_bin" "$tmp/bin/kws"
export PATH="$tmp/bin:$PATH"
# Hermetic: no broker from the caller's environment or config.
unset KWS_BROKERS KWS_CONFIG
export HOME="$tmp" XDG_CONFIG_HOME="$tmp/xdg"

kws broker --listen 127.0.0.1:0 -t alpha -t beta:2 >"$tmp/broker.out" 2>"$tmp/broker.err" &
broker_pid=$!
for _ in $(seq 200); do grep -q '^BROKERS=' "$tmp/broker.out" && break; sleep 0.05; done
brokers=$(sed -n 's/^BROKERS=//p' "$tmp/broker.out")
[ -n "$brokers" ] || { echo "kws broker did not start: $(cat "$tmp/broker.err")" >&2; exit 1; }
# A port nothing listens on: a broker that is not there.
missing=127.0.0.1:1

# Each case: the words typed so far (the last one is being completed, often
# empty), then what completing it must give, sorted and space-separated.
cases=(
  "kws ta|tail"
  "kws tail --off|--offset"
  "kws tail -o beg|beginning"
  "kws completion z|zsh"
  "kws completion |bash fish zsh"
  "kws serve --slow-client |close drop-oldest latest-per-key"
  "kws serve --log-format |json text"
  "kws ingest --when-full |block drop-newest drop-oldest"
  "kws ingest --markers r|record"
  "kws tail -b $brokers |alpha beta"
  "kws tail -b $brokers alpha b|beta"
  "kws topics -b $brokers -G g a|alpha"
  "kws send -b $brokers |alpha beta"
  "kws send -b $brokers alpha |"
  "kws ingest -b $brokers |"
  "kws ingest -b $brokers --subscribe x wss://feed/ |alpha beta"
  "kws ingest -b $brokers - a|alpha"
  "kws bench -b $brokers -t |alpha beta"
  "kws tail -b $missing |"
)
# How long completing a topic against $missing may take (the scripts ask
# with a 0.5 s timeout).
max_seconds=3

check() {  # shell, case, what the shell gave, seconds it took
  local shell=$1 line=${2%%|*} want=${2#*|} got=$3 took=$4
  if [ "$got" != "$want" ]; then fail "$shell: '$line' completed to '$got', expected '$want'"; fi
  if [ "$took" -gt "$max_seconds" ]; then fail "$shell: '$line' took $took s"; fi
}

# bash: drive the completion function the way readline would.
for c in "${cases[@]}"; do
  line=${c%%|*}
  start=$SECONDS
  got=$(bash -c '
    source "$1/completions/kws.bash"
    read -r -a COMP_WORDS <<<"$2"
    case "$2" in *" ") COMP_WORDS+=("") ;; esac
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _kws
    printf "%s\n" "${COMPREPLY[@]}" | sort -u | paste -sd" "
  ' _ "$repo" "$line")
  check bash "$c" "$got" $((SECONDS - start))
done

# A missing shell skips only its own checks; a failure anywhere else still
# fails the test, and a skip is reported only when everything that ran passed.
missing_shells=()
if command -v zsh >/dev/null; then
  zsh -n "$repo/completions/_kws" || fail "zsh: syntax error in _kws"
  lines=()
  for c in "${cases[@]}"; do lines+=("${c%%|*}"); done
  start=$SECONDS
  mapfile -t results < <(zsh "$repo/tests/zsh_complete.zsh" "$repo/completions" "${lines[@]}")
  took=$(( (SECONDS - start) / ${#cases[@]} ))
  [ ${#results[@]} -eq ${#cases[@]} ] || fail "zsh: ${#results[@]} results for ${#cases[@]} cases: ${results[*]}"
  for i in "${!cases[@]}"; do
    check zsh "${cases[i]}" "${results[i]:-}" "$took"
  done
else
  missing_shells+=(zsh)
fi
if command -v fish >/dev/null; then
  fish --no-execute "$repo/completions/kws.fish" || fail "fish: syntax error"
  for c in "${cases[@]}"; do
    line=${c%%|*}
    start=$SECONDS
    got=$(fish -c 'source $argv[1]; complete -C $argv[2] | string split -f1 \t | sort -u | paste -sd" "' \
      "$repo/completions/kws.fish" "$line")
    check fish "$c" "$got" $((SECONDS - start))
  done
else
  missing_shells+=(fish)
fi
if [ "$status" -ne 0 ]; then exit "$status"; fi
if [ ${#missing_shells[@]} -gt 0 ]; then
  echo "SKIP: ${missing_shells[*]} not installed, so those completions were not checked (bash passed)" >&2
  exit 77
fi
echo "completions: ${#cases[@]} cases pass in bash, zsh and fish"
