#!/bin/sh
# The container's command: lighttpd and the pool in one container, in the foreground. OLLAMA_BASE_URL
# points outside it (e.g. http://host.docker.internal:11434); PORT is the HTTP port (default 8080).
# Either process ending ends the container; SIGTERM lets streams in flight finish.
set -eu
share=${OLLAMA_FCGI_SHARE:-/usr/local/share/ollama-fcgi}
bin=${OLLAMA_FCGI_BIN:-/usr/local/bin/ollama-fcgi}
: "${PORT:=8080}" "${BIND:=0.0.0.0}" "${FCGI_SOCKET:=/tmp/ollama-fcgi.sock}"
export PORT BIND FCGI_SOCKET
FCGI_LISTEN=$FCGI_SOCKET "$bin" &
pool=$!
i=0
while [ ! -S "$FCGI_SOCKET" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
lighttpd -D -f "$share/lighttpd.conf" &
web=$!
trap 'kill -TERM "$web" "$pool" 2>/dev/null; wait "$pool"; exit 0' INT TERM
while kill -0 "$pool" 2>/dev/null && kill -0 "$web" 2>/dev/null; do sleep 1; done
kill -TERM "$web" "$pool" 2>/dev/null || true
wait "$pool" 2>/dev/null || true
exit 1
