#!/bin/sh
# `make run`: the worker pool and lighttpd in the foreground on http://$BIND:$PORT; Ctrl-C or SIGTERM
# stops both.
set -eu
cd "$(dirname "$0")/.."
: "${PORT:=4000}" "${BIND:=127.0.0.1}"
: "${FCGI_SOCKET:=${TMPDIR:-/tmp}/ollama-fcgi-$PORT.sock}"
export PORT BIND FCGI_SOCKET
FCGI_LISTEN=$FCGI_SOCKET ./build/ollama-fcgi &
pool=$!
i=0
while [ ! -S "$FCGI_SOCKET" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
lighttpd -D -f lighttpd.conf &
web=$!
stop() {
  trap - INT TERM EXIT
  kill -TERM "$web" "$pool" 2>/dev/null || true
  wait "$web" 2>/dev/null || true
  wait "$pool" 2>/dev/null || true
  rm -f "$FCGI_SOCKET"
}
trap 'stop; exit 0' INT TERM
trap stop EXIT
echo "ollama-fcgi: serving http://$BIND:$PORT (Ollama at ${OLLAMA_BASE_URL:-http://localhost:11434}); Ctrl-C stops" >&2
# Whichever ends first ends both.
while kill -0 "$pool" 2>/dev/null && kill -0 "$web" 2>/dev/null; do sleep 1; done
