/* fuzz_stream.c -- libFuzzer harness: any bytes as Ollama's NDJSON reply, in pieces of the fuzzer's choosing,
 * through every dialect's stream machine and the whole-reply collector. Each dialect's requests are its
 * translation cases' (tests/cases/NAME/CASE/request.json, read once, through its own translator, so what its
 * machine keeps from the request is there); the first byte picks one, with its stop sequences and offered
 * tools (tools put text tool-call recovery on the path), and how the reply is cut. */
#include <glob.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "jsonx.h"
#include "pipeline.h"
#include "stream.h"

static int discard(void *ctx, const char *bytes, size_t len)
{
    (void)ctx;
    (void)bytes;
    (void)len;
    return 0;
}

static int no_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

/* The reply in pieces whose sizes come from the input's first byte, as reads from a socket would cut it. */
static void feed(struct stream *s, const uint8_t *data, size_t size, size_t piece)
{
    for (size_t at = 0; at < size; at += piece)
        if (stream_feed(s, (const char *)data + at, size - at < piece ? size - at : piece) != STREAM_MORE)
            return;
    stream_eof(s);
}

static void run(const struct dialect *d, const struct chat_request *req, const uint8_t *data, size_t size, size_t piece)
{
    struct wire_sink sink;
    struct stream s;
    struct chat_reply r;
    struct buf out;
    struct apierr e;

    wire_sink_init(&sink, req->wire, discard, no_flush, NULL);
    chat_reply_init(&r);
    stream_open(&s, d, req, &sink, &r, 0);
    feed(&s, data, size, piece);
    stream_close(&s);
    stream_open(&s, d, req, NULL, &r, 4096);
    feed(&s, data, size, piece);
    buf_init(&out);
    pipeline_whole(d, req, &r, &out, &e);
    buf_free(&out);
    stream_close(&s);
    chat_reply_free(&r);
}

/* A dialect's requests that its translator takes, translated once (the worker's path, model facts none). */
struct requests {
    struct chat_request *reqs;
    size_t n;
};

static struct requests requests_of[16];

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        text = xmalloc((size_t)n + 1);
        *len = fread(text, 1, (size_t)n, f);
        text[*len] = '\0';
    }
    fclose(f);
    return text;
}

static const char *no_env(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return NULL;
}

static int no_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err)
{
    (void)ctx;
    (void)req;
    (void)err;
    *f = (struct model_facts){ .correction = 1.0 };
    return 0;
}

static void load(size_t i, const struct config *cfg)
{
    static const struct pipeline_models models = { no_facts, NULL };
    const struct dialect *d = dialect_registry[i];
    struct dialect_call call = { d->routes, strstr(d->routes->path, "{model}") ? "big" : NULL, "alt=sse" };
    struct requests *rs = &requests_of[i];
    char pattern[256];
    glob_t g;

    /* A dialect that passes Ollama's own replies has no translator: its lines are fuzzed by fuzz_request. */
    if (!d->translate)
        return;
    snprintf(pattern, sizeof pattern, "%s/%s/*/request.json", getenv("FUZZ_CASES") ? getenv("FUZZ_CASES")
             : "tests/cases", d->name);
    if (glob(pattern, 0, NULL, &g) != 0) {
        fprintf(stderr, "fuzz_stream: no cases at %s\n", pattern);
        abort();
    }
    rs->reqs = xcalloc(g.gl_pathc, sizeof *rs->reqs);
    for (size_t k = 0; k < g.gl_pathc; k++) {
        struct chat_request *req = &rs->reqs[rs->n];
        struct apierr e;
        struct buf body;
        size_t len = 0;
        char *text = read_all(g.gl_pathv[k], &len);

        chat_request_init(req);
        buf_init(&body);
        if (text && pipeline_request(d, &call, text, len, cfg, &models, req, &body, &e) == 0) {
            snprintf(req->id, sizeof req->id, "%sfuzz", d->id_prefix);
            req->created = 1700000000;
            rs->n++;
        } else {
            chat_request_free(req);
        }
        buf_free(&body);
        free(text);
    }
    globfree(&g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    static int ready;
    char err[128];
    size_t piece;
    unsigned pick;

    if (!ready) {
        config_load(&cfg, no_env, NULL, err, sizeof err);
        for (size_t i = 0; dialect_registry[i]; i++)
            load(i, &cfg);
        ready = 1;
    }
    if (size < 2)
        return 0;
    /* The fuzzer chooses each dialect's request, and how the reply is cut. */
    pick = data[0];
    piece = (size_t)data[1] + 1;
    data += 2;
    size -= 2;
    for (size_t i = 0; dialect_registry[i]; i++)
        if (requests_of[i].n)
            run(dialect_registry[i], &requests_of[i].reqs[pick % requests_of[i].n], data, size, piece);
    return 0;
}
