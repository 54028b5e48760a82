#!/usr/bin/env bash
# Who may include what (docs/ARCHITECTURE.md). Between kws folders the build
# enforces it (a target sees only what it links); third-party headers all
# live in /usr/include, where any target could reach them, so this checks
# those by name.
#   tests/check_includes.sh REPO
set -euo pipefail
repo=${1:?usage: check_includes.sh REPO}
cd "$repo"
status=0
# rule: pattern of an #include, folders allowed to use it, why.
check() {
  local pattern=$1 allowed=$2 why=$3 hits
  hits=$(grep -rnE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($pattern)" core cmd \
           --include='*.cpp' --include='*.hpp' --include='*.c' --include='*.h' | grep -vE "^($allowed)" || true)
  if [ -n "$hits" ]; then
    echo "check_includes: $why:" >&2
    echo "$hits" >&2
    status=1
  fi
}
check 'librdkafka/' 'core/kafka/' 'only core/kafka/ includes librdkafka'
check 'websocketpp/' 'core/ws/client\.cpp|core/ws/library_version\.cpp' 'only the ingest client and the version report include websocketpp'
check 'CLI/' 'cmd/' 'only cmd/ includes CLI11'
check 'asio' 'core/kafka/|core/ws/' 'only core/kafka/ (the broker relay) and core/ws/ include Asio'
check 'openssl/' 'core/util/|core/ws/|core/bench/swarm\.cpp|core/auth/jwt\.cpp' 'only core/util/, core/ws/, the bench clients (core/bench/swarm.cpp) and token verification (core/auth/jwt.cpp) include OpenSSL'
check 'jwt\.h[>"]' 'core/auth/jwt\.cpp' 'only core/auth/jwt.cpp includes libjwt'
check 'dlfcn\.h' 'core/transform/plugin\.cpp' 'only core/transform/plugin.cpp loads shared libraries (dlopen)'
# A core/kafka header that includes librdkafka is internal to core/kafka:
# nothing outside may include it, so librdkafka never leaks through.
internal=$(grep -lE '#[[:space:]]*include[[:space:]]*<librdkafka/' core/kafka/*.hpp | sed 's|\.|\\.|g' | paste -sd'|' || true)
if [ -n "$internal" ]; then
  check "$internal" 'core/kafka/' 'a core/kafka header that includes librdkafka is used outside core/kafka'
fi
exit $status
