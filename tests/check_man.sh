#!/usr/bin/env bash
# Lints every man page with both groff and mandoc; any warning fails.
set -euo pipefail
repo=$1
command -v groff >/dev/null || { echo "SKIP: groff not installed" >&2; exit 77; }
command -v mandoc >/dev/null || { echo "SKIP: mandoc not installed" >&2; exit 77; }
status=0
for page in "$repo"/man/*.1; do
  out=$(groff -man -ww -z "$page" 2>&1) || status=1
  [ -z "$out" ] || { echo "groff: $page: $out" >&2; status=1; }
  out=$(mandoc -T lint -W warning "$page" 2>&1) || true
  # mandoc asks for a date in .TH; the pages deliberately carry none so that
  # regenerating them never produces a diff.
  out=$(printf '%s\n' "$out" | grep -v -e 'missing date' -e 'date, using' -e '^$' || true)
  [ -z "$out" ] || { echo "mandoc: $out" >&2; status=1; }
  # Every page documents the sections users look for.
  for section in NAME SYNOPSIS DESCRIPTION "EXIT STATUS" ENVIRONMENT FILES; do
    grep -q "^\.SH $section" "$page" || { echo "$page: no $section section" >&2; status=1; }
  done
done
exit $status
