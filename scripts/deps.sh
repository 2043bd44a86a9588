#!/bin/sh
# Installs the Debian packages the build, the tests and `make run` need, only when one is missing.
# Usage: scripts/deps.sh build|run|test|bench|fuzz
# "a|b" takes whichever of the two the release has (nginx-light went into nginx on newer ones).
set -eu
need_build="pkg-config gcc make libfcgi-dev libjson-c-dev libcurl4-openssl-dev zlib1g-dev libzstd-dev"
need_run="$need_build lighttpd spawn-fcgi"
need_test="$need_run libcriterion-dev nginx-light|nginx curl valgrind apache2 libapache2-mod-fcgid caddy zstd groff-base systemd"
need_bench="$need_build nginx-light|nginx wrk"
need_fuzz="$need_build clang"
case "${1:-build}" in
  build) want=$need_build ;;
  run) want=$need_run ;;
  test) want=$need_test ;;
  bench) want=$need_bench ;;
  fuzz) want=$need_fuzz ;;
  *) echo "usage: $0 build|run|test|bench|fuzz" >&2; exit 2 ;;
esac
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
updated=""
update() { [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }; }
# The first of the alternatives apt can install.
candidate() {
  for p in $(echo "$1" | tr '|' ' '); do
    apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' && { echo "$p"; return; }
  done
  echo "${1%%|*}"
}
missing=""
for group in $want; do
  have=""
  for p in $(echo "$group" | tr '|' ' '); do installed "$p" && have=1; done
  [ -n "$have" ] && continue
  case "$group" in
    *"|"*) update; missing="$missing $(candidate "$group")" ;;
    *) missing="$missing $group" ;;
  esac
done
# The client tests need node and npm; one from elsewhere (nvm, a tarball) serves as well as Debian's.
if [ "${1:-build}" = test ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  missing="$missing nodejs npm"
fi
# The benchmark's orchestrator is a node script.
if [ "${1:-build}" = bench ] && ! command -v node >/dev/null 2>&1; then
  missing="$missing nodejs"
fi
if [ -n "$missing" ]; then
  echo "installing:$missing" >&2
  update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
fi
# libFuzzer comes with clang's runtime package, named after clang's own version.
if [ "${1:-build}" = fuzz ]; then
  rt="libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev"
  installed "$rt" || { update; DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$rt" >&2; }
fi
