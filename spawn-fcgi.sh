#!/bin/sh
# Runs the ollama-fcgi worker pool alone, in the foreground, for nginx, systemd or any supervisor.
#
#   FCGI_LISTEN=127.0.0.1:9000 WORKERS=4 ./spawn-fcgi.sh
#   FCGI_LISTEN=/run/ollama-fcgi/fcgi.sock ./spawn-fcgi.sh
#
# spawn-fcgi opens the socket and, with -n, execs the pool's master on it in the foreground. The master
# forks WORKERS workers sharing the socket, replaces any that dies, replaces them all on SIGHUP, and on
# SIGTERM or SIGINT lets the streams in flight finish (up to GRACE_TIMEOUT seconds) before it exits.
# Every other setting (OLLAMA_BASE_URL, THINK_MODELS, MODEL_MAP, ...) passes through the environment.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
bin=${OLLAMA_FCGI_BIN:-}
if [ -z "$bin" ]; then
  if [ -x "$here/build/ollama-fcgi" ]; then bin=$here/build/ollama-fcgi; else bin=$(command -v ollama-fcgi); fi
fi
: "${FCGI_LISTEN:=127.0.0.1:9000}"
listen=$FCGI_LISTEN
# The master takes the socket spawn-fcgi hands it on stdin; it must not bind FCGI_LISTEN again.
unset FCGI_LISTEN
case "$listen" in
  /*|./*)
    exec spawn-fcgi -n -s "$listen" -M 0666 -- "$bin" ;;
  *:*)
    exec spawn-fcgi -n -a "${listen%:*}" -p "${listen##*:}" -- "$bin" ;;
  *)
    echo "spawn-fcgi.sh: FCGI_LISTEN must be host:port or a socket path, got '$listen'" >&2
    exit 2 ;;
esac
