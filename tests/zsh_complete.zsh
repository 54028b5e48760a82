# Completes each command line in a real interactive zsh (under zpty, with
# compinit and the _kws in FPATH_DIR) and prints, per line, the matches it
# offered, sorted and space-separated. For tests/check_completions.sh.
#   zsh zsh_complete.zsh FPATH_DIR 'kws tail -o ' ...
zmodload zsh/zpty
dir=$1
shift
zpty z zsh -f -i

# Reads the shell's output until MARK appears in it. The marks are printed
# by `print '<'MARK'>'`, so the echo of the typed command never matches.
wait_for() {
  local mark=$1 chunk
  buf=""
  local deadline=$(( SECONDS + 20 ))
  while (( SECONDS < deadline )); do
    if zpty -r -t z chunk 2>/dev/null; then buf+=$chunk; else sleep 0.02; fi
    [[ $buf == *"$mark"* ]] && return 0
  done
  print -u2 "zsh_complete: timed out waiting for $mark; got: $buf"
  exit 1
}

zpty -w z "PS1=''; fpath=($dir \$fpath); autoload -Uz compinit; compinit -u -D"
# Every match the completion system adds is also printed, marked, so the
# test sees what a user would be offered whatever the display looks like.
zpty -w z 'compadd () { if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi; local -a __hits; builtin compadd -O __hits "$@"; (( $#__hits )) && print -r -l -- "<M>"${^__hits}; builtin compadd "$@"; }'
zpty -w z 'zstyle ":completion:*" list-prompt ""; zstyle ":completion:*" menu no'
zpty -w z "print '<'READY'>'"
wait_for '<READY>'
for line in "$@"; do
  zpty -n -w z "$line"$'\t'
  zpty -w z $'\C-u'"print '<'END'>'"
  wait_for '<END>'
  print -r -- ${(j: :)${(f)"$(print -r -- $buf | tr -d '\r' | grep -ao '<M>[^<]*' | sed 's/<M>//; s/[[:space:]]*$//' | sort -u)"}}
done
zpty -d z
