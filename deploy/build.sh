#!/bin/sh
# Installs the Debian packages the pool and lighttpd need, builds, and installs under PREFIX (and
# DESTDIR): the same steps the README's `make run` takes, shared by the Dockerfile and tested by the
# test suite (tests/e2e/deploy.test.mjs) where no container engine runs.
set -eu
cd "$(dirname "$0")/.."
sh scripts/deps.sh run
make build/ollama-fcgi
make install PREFIX="${PREFIX:-/usr/local}" DESTDIR="${DESTDIR:-}"
