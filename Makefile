# ollama-fcgi: the client APIs of coding agents and SDKs served from Ollama by a FastCGI worker pool.
CC      ?= cc
PKGS    := fcgi json-c libcurl zlib libzstd
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Isrc
CFLAGS  += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lfcgi -ljson-c -lcurl -lz -lzstd)
PREFIX  ?= /usr/local
PORT    ?= 4000
VERSION := 0.1.0

# The translation core: pure functions and state machines, no FastCGI and no libcurl.
# The dialects are every src/ file that defines one (a const struct dialect); dialect.c lists them.
DIALECT_SRC := $(shell grep -l '^const struct dialect [a-z_]*_dialect = {' src/*.c)
CORE_SRC := src/buf.c src/jsonx.c src/config.c src/apierr.c src/ollama.c src/chat.c src/stream.c \
            src/pipeline.c src/pass.c src/dialect.c src/models.c src/tokens.c src/stopseq.c src/textcall.c src/wire.c \
            src/sha256.c src/keys.c src/affinity.c src/capability.c \
            $(DIALECT_SRC)
# The rooms with I/O around it.
IO_SRC   := src/upstream.c src/hosts.c src/reply.c src/decode.c src/request.c src/body.c src/relay.c src/routes.c src/router.c \
            src/worker.c src/listen.c src/pool.c \
            src/accesslog.c src/metrics.c src/main.c

BIN      := build/ollama-fcgi
MOCK     := build/mock-ollama
UNIT     := build/unit-tests
UNIT_SAN := build/unit-tests-san
BENCH_TR := build/bench-translate

.PHONY: all test unit unit-san e2e e2e-valgrind resources clients run bench fuzz install clean \
        deps-build deps-test deps-run deps-bench deps-fuzz

all: $(BIN) $(MOCK)

build:
	@mkdir -p build

$(BIN): $(CORE_SRC) $(IO_SRC) $(wildcard src/*.h) | build
	$(CC) $(CFLAGS) -DOF_VERSION='"$(VERSION)"' -o $@ $(CORE_SRC) $(IO_SRC) $(LDFLAGS) $(LDLIBS)

$(MOCK): tests/mock_ollama.c | build
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) $(shell pkg-config --libs json-c) -lpthread

# The core, and the body decoder, which needs no I/O either.
UNIT_SRC := $(CORE_SRC) src/decode.c
UNIT_LIBS = $(shell pkg-config --libs json-c criterion zlib libzstd)

$(UNIT): $(UNIT_SRC) $(wildcard src/*.h) $(wildcard tests/unit/*.c) | build
	$(CC) $(CFLAGS) -o $@ $(UNIT_SRC) tests/unit/*.c $(LDFLAGS) $(UNIT_LIBS)

# The same unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
$(UNIT_SAN): $(UNIT_SRC) $(wildcard src/*.h) $(wildcard tests/unit/*.c) | build
	$(CC) $(CFLAGS) -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	  -o $@ $(UNIT_SRC) tests/unit/*.c $(LDFLAGS) $(UNIT_LIBS)

# The translation microbenchmark: the core without I/O, built as the pool is.
$(BENCH_TR): tests/bench/bench_translate.c $(CORE_SRC) $(wildcard src/*.h) | build
	$(CC) $(CFLAGS) -o $@ tests/bench/bench_translate.c $(CORE_SRC) $(LDFLAGS) $(shell pkg-config --libs json-c)

# libFuzzer harnesses over the request translators and the NDJSON-to-SSE translation.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -Isrc $(shell pkg-config --cflags json-c) \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_SRC) $(wildcard src/*.h) | build
	@mkdir -p build/fuzz
	clang $(FUZZ_CFLAGS) -o $@ $< $(CORE_SRC) $(shell pkg-config --libs json-c)

fuzz: deps-fuzz build/fuzz/fuzz_request build/fuzz/fuzz_stream
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) sh tests/fuzz/run.sh

deps-build:
	@sh scripts/deps.sh build
deps-run:
	@sh scripts/deps.sh run
deps-test:
	@sh scripts/deps.sh test
deps-bench:
	@sh scripts/deps.sh bench
deps-fuzz:
	@sh scripts/deps.sh fuzz

unit: $(UNIT)
	cd tests && ../$(UNIT) -j2

unit-san: $(UNIT_SAN)
	cd tests && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ../$(UNIT_SAN) -j2

# One test file at a time: they start servers of their own. Older Node (Debian's 18) lacks the flag
# and names no directory, so the files are listed and the flag given only where Node knows it.
NODE_TEST = node --test $(shell node --test-concurrency=1 -e 0 >/dev/null 2>&1 && echo --test-concurrency=1)

e2e: all
	cd tests && $(NODE_TEST) e2e/*.test.mjs

# The same end-to-end suite with every pool process under valgrind: any memory error or leak fails it.
e2e-valgrind: all
	cd tests && OFCGI_VALGRIND=1 $(NODE_TEST) e2e/*.test.mjs

# What hostile bodies, clients and Ollama replies cost the pool, measured from /proc against their budgets.
resources: all
	cd tests && $(NODE_TEST) resources/*.test.mjs

clients: all
	cd tests && npm ci --no-audit --no-fund --loglevel=error && $(NODE_TEST) clients/*.test.mjs

test: deps-test
	$(MAKE) all $(UNIT) $(UNIT_SAN)
	$(MAKE) unit
	$(MAKE) unit-san
	$(MAKE) e2e
	$(MAKE) e2e-valgrind
	$(MAKE) resources
	$(MAKE) clients

# The mock Ollama, the pool behind nginx and a plain nginx hop under wrk; prints the table (BENCHMARKS.md).
bench: deps-bench
	$(MAKE) $(BIN) $(BENCH_TR)
	node tests/bench/bench.mjs

run: deps-run
	$(MAKE) $(BIN)
	PORT=$(PORT) ./scripts/run.sh

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/ollama-fcgi $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/ollama-fcgi
	install -m 644 lighttpd.conf nginx-fastcgi.conf deploy/nginx-scale-out.conf deploy/nginx-key-limits.conf \
	  deploy/litellm-config.yaml \
	  deploy/apache-proxy-fcgi.conf deploy/apache-fcgid.conf deploy/apache-fcgid.htaccess deploy/Caddyfile \
	  deploy/FRONTENDS.md $(DESTDIR)$(PREFIX)/share/ollama-fcgi/
	sed 's|/usr/local/|$(PREFIX)/|g' deploy/ollama-fcgi.service > $(DESTDIR)$(PREFIX)/share/ollama-fcgi/ollama-fcgi.service
	install -m 755 spawn-fcgi.sh deploy/entrypoint.sh $(DESTDIR)$(PREFIX)/share/ollama-fcgi/
	install -m 644 deploy/ollama-fcgi.8 $(DESTDIR)$(PREFIX)/share/man/man8/ollama-fcgi.8

clean:
	rm -rf build
