#!/bin/sh
# `make fuzz`: each libFuzzer harness for FUZZ_SECONDS, seeded from the test cases; stops at the first
# crash, leak or sanitizer report and leaves the input that caused it in build/fuzz/.
set -eu
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
for h in request stream; do
  corpus=build/fuzz/corpus-$h
  mkdir -p "$corpus"
  if [ "$h" = request ]; then
    for f in tests/cases/*/*/request.json; do cp "$f" "$corpus/$(echo "$f" | tr / _)"; done
  else
    for f in tests/cases/*/*/ollama.ndjson; do cp "$f" "$corpus/$(echo "$f" | tr / _)"; done
  fi
  echo "fuzz_$h: ${secs}s" >&2
  ./build/fuzz/fuzz_$h -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build/fuzz/ -print_final_stats=1 "$corpus" 2>build/fuzz/$h.log || {
    tail -40 build/fuzz/$h.log >&2; exit 1; }
  grep -E "^stat::number_of_executed_units|^Done" build/fuzz/$h.log >&2 || true
done
