#!/usr/bin/env bash
# Fails when completions/ or man/ differ from what the binary generates,
# i.e. when someone changed a flag without running scripts/generate.
set -euo pipefail
kws=$1
repo=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$repo/scripts/generate" "$kws" "$tmp"
status=0
for f in completions/kws.bash completions/_kws completions/kws.fish; do
  if ! diff -u "$repo/$f" "$tmp/$f"; then
    echo "DRIFT: $f is stale; run scripts/generate" >&2
    status=1
  fi
done
for f in "$tmp"/man/*.1; do
  name=man/$(basename "$f")
  if ! diff -u "$repo/$name" "$f"; then
    echo "DRIFT: $name is stale; run scripts/generate" >&2
    status=1
  fi
done
for f in "$repo"/man/*.1; do
  [ -e "$tmp/man/$(basename "$f")" ] || { echo "DRIFT: $f is no longer generated" >&2; status=1; }
done
exit $status
