#!/bin/sh
# Installs the Debian packages the build, the tests and `make run` need, only when one is missing.
# Usage: scripts/deps.sh build|run|test|bench
set -eu
need_build="pkg-config gcc make libfcgi-dev libjson-c-dev libcurl4-openssl-dev zlib1g-dev libzstd-dev"
need_run="$need_build lighttpd spawn-fcgi"
need_test="$need_run libcriterion-dev nginx-light curl clang libclang-rt-14-dev valgrind apache2 libapache2-mod-fcgid caddy zstd"
need_bench="$need_build nginx-light wrk"
case "${1:-build}" in
  build) want=$need_build ;;
  run) want=$need_run ;;
  test) want=$need_test ;;
  bench) want=$need_bench ;;
  *) echo "usage: $0 build|run|test|bench" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# The client tests need node and npm; one from elsewhere (nvm, a tarball) serves as well as Debian's.
if [ "${1:-build}" = test ] && ! { command -v node && command -v npm; } >/dev/null 2>&1; then
  missing="$missing nodejs npm"
fi
# The benchmark's orchestrator is a node script.
if [ "${1:-build}" = bench ] && ! command -v node >/dev/null 2>&1; then
  missing="$missing nodejs"
fi
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing:$missing" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >&2
