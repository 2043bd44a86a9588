/* bench_translate.c -- the translation core without I/O, timed:
 *   - a whole request: the client's body (the 76 KB Claude Code request) to the Ollama /api/chat body
 *     through the worker's pipeline (parse, translate, facts, estimate, window check, serialize into a
 *     reused buffer), then freed; and the strict parse alone, for scale;
 *   - a streamed event: one Ollama NDJSON content line, as bytes, through the stream driver to the SSE
 *     frame the client gets, for each dialect's stream machine (the sink takes the frame and discards it).
 * Allocations are counted too (malloc, calloc and realloc are interposed and passed to glibc's).
 *
 * Usage: bench-translate REQUEST.json [SECONDS_PER_FIGURE]    -- prints one JSON object. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "anthropic.h"
#include "jsonx.h"
#include "openai.h"
#include "pipeline.h"
#include "responses.h"
#include "stream.h"

/* ---- allocation counting: the executable's malloc interposes on glibc's for the whole process ---- */

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);

static unsigned long long n_allocs;

void *malloc(size_t n)
{
    n_allocs++;
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    n_allocs++;
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    n_allocs++;
    return __libc_realloc(p, n);
}

/* ---- helpers ---- */

static double now_ns(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[65536];
    size_t n;

    if (!f)
        return NULL;
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return buf_steal(&b);
}

static const char *no_env(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return NULL;   /* every setting at its default, as a pool started without any */
}

static void die(const char *what, const struct apierr *e)
{
    fprintf(stderr, "bench-translate: %s: %s\n", what, e ? e->message : "failed");
    exit(1);
}

/* ---- a whole request ---- */

static struct buf out_buf;

#define BATCHES 7

struct request_figures {
    double request_us, parse_us, free_us;
    double allocs;
    size_t out_bytes;
};

/* Facts of a model that cannot think, as the mock's /api/show says. */
static int bench_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err)
{
    (void)ctx;
    (void)req;
    (void)err;
    *f = (struct model_facts){ .known = 1, .context_length = 262144, .correction = 1.0 };
    return 0;
}

static const struct pipeline_models models = { bench_facts, NULL };

/* One request through the worker's pipeline; adds its time and the time to free it, in ns, to t[0..1]. */
static size_t one_request(const char *text, size_t len, const struct config *cfg, double t[2])
{
    struct chat_request req;
    struct apierr e;
    double a, b, c;

    a = now_ns();
    chat_request_init(&req);
    buf_reset(&out_buf);            /* the worker writes the body into a buffer it keeps */
    if (pipeline_request(&anthropic_dialect, text, len, cfg, &models, &req, &out_buf, &e) < 0)
        die("the request does not pass the pipeline", &e);
    b = now_ns();
    chat_request_free(&req);
    c = now_ns();
    t[0] += b - a;
    t[1] += c - b;
    return out_buf.len;
}

/* The strict parse alone, the part json-c does. */
static double parse_alone(const char *text, size_t len, long iters)
{
    struct apierr e;
    double a = now_ns();

    for (long i = 0; i < iters; i++) {
        struct json_object *o = jsonx_parse(text, len, &e);

        if (!o)
            die("the request does not parse", &e);
        json_object_put(o);
    }
    return (now_ns() - a) / (double)iters / 1e3;
}

static void bench_request(const char *text, size_t len, const struct config *cfg, double seconds,
                          struct request_figures *r)
{
    double whole[BATCHES], parse[BATCHES], fr[BATCHES], allocs[BATCHES];
    double t[2];
    long iters = 0;

    /* Warm up, and size the batches to the time asked for. */
    double start = now_ns();
    memset(t, 0, sizeof t);
    while (now_ns() - start < 0.2e9) {
        r->out_bytes = one_request(text, len, cfg, t);
        iters++;
    }
    iters = (long)((double)iters * seconds / 0.2 / BATCHES);
    if (iters < 20)
        iters = 20;
    for (int k = 0; k < BATCHES; k++) {
        unsigned long long a0 = n_allocs;

        memset(t, 0, sizeof t);
        for (long i = 0; i < iters; i++)
            one_request(text, len, cfg, t);
        whole[k] = (t[0] + t[1]) / (double)iters / 1e3;
        fr[k] = t[1] / (double)iters / 1e3;
        allocs[k] = (double)(n_allocs - a0) / (double)iters;
        parse[k] = parse_alone(text, len, iters / 2 + 1);
    }
    r->request_us = median(whole, BATCHES);
    r->parse_us = median(parse, BATCHES);
    r->free_us = median(fr, BATCHES);
    r->allocs = median(allocs, BATCHES);
}

/* ---- streamed events ---- */

struct sink_count {
    size_t frames, bytes;
};

static int count_frame(void *ctx, const char *bytes, size_t len)
{
    struct sink_count *c = ctx;

    (void)bytes;
    c->frames++;
    c->bytes += len;
    return 0;
}

struct event_figures {
    double ns;
    double allocs;
    double frame_bytes;
};

/* Ollama's own line for one token, as /api/chat streams it, with its newline. */
static const char LINE[] =
    "{\"model\":\"qwen3:4b\",\"created_at\":\"2026-01-01T10:00:00.123456789Z\",\"message\":{\"role\":\"assistant\","
    "\"content\":\" the\"},\"done\":false}\n";

static void bench_events(const struct dialect *d, const char *request, const struct config *cfg, double seconds,
                         struct event_figures *r)
{
    struct chat_request req;
    struct stream st;
    struct sse_sink sink;
    struct sink_count count = { 0, 0 };
    struct chat_reply unused;
    struct apierr e;
    struct buf ignored;
    double ns[BATCHES], allocs[BATCHES];
    long iters = 0;

    chat_request_init(&req);
    buf_init(&ignored);
    if (pipeline_request(d, request, strlen(request), cfg, &models, &req, &ignored, &e) < 0)
        die("the stream request does not pass the pipeline", &e);
    snprintf(req.id, sizeof req.id, "%sbench", d->id_prefix);
    req.created = 1700000000;
    sse_sink_init(&sink, count_frame, &count);
    stream_open(&st, d, &req, &sink, &unused, (size_t)-1);

    /* The first line opens the message and its text block; warm up and size the batches. */
    double start = now_ns();
    while (now_ns() - start < 0.1e9) {
        if (stream_feed(&st, LINE, sizeof LINE - 1) != STREAM_MORE)
            die("the stream ended", NULL);
        iters++;
    }
    iters = (long)((double)iters * seconds / 0.1 / BATCHES);
    if (iters < 1000)
        iters = 1000;
    for (int k = 0; k < BATCHES; k++) {
        unsigned long long a0 = n_allocs;
        size_t f0 = count.frames, b0 = count.bytes;
        double t0 = now_ns();

        for (long i = 0; i < iters; i++)
            stream_feed(&st, LINE, sizeof LINE - 1);
        ns[k] = (now_ns() - t0) / (double)iters;
        allocs[k] = (double)(n_allocs - a0) / (double)iters;
        if (count.frames - f0 != (size_t)iters)
            die("one line did not make one frame", NULL);
        r->frame_bytes = (double)(count.bytes - b0) / (double)iters;
    }
    r->ns = median(ns, BATCHES);
    r->allocs = median(allocs, BATCHES);
    stream_close(&st);
    sse_sink_free(&sink);
    buf_free(&ignored);
    chat_request_free(&req);
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct request_figures rq = { 0 };
    struct event_figures an = { 0 }, oa = { 0 }, rs = { 0 };
    char err[256];
    size_t len;
    char *text;
    double seconds = argc > 2 ? atof(argv[2]) : 1.0;

    if (argc < 2) {
        fprintf(stderr, "usage: %s REQUEST.json [SECONDS_PER_FIGURE]\n", argv[0]);
        return 2;
    }
    if (seconds <= 0)
        seconds = 1.0;
    text = slurp(argv[1], &len);
    if (!text) {
        perror(argv[1]);
        return 1;
    }
    if (config_load(&cfg, no_env, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "bench-translate: config: %s\n", err);
        return 1;
    }
    bench_request(text, len, &cfg, seconds, &rq);
    bench_events(&anthropic_dialect,
                 "{\"model\":\"qwen3:4b\",\"max_tokens\":1024,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Say hi\"}]}",
                 &cfg, seconds / 2, &an);
    bench_events(&openai_dialect,
                 "{\"model\":\"qwen3:4b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Say hi\"}]}",
                 &cfg, seconds / 2, &oa);
    bench_events(&responses_dialect, "{\"model\":\"qwen3:4b\",\"stream\":true,\"input\":\"Say hi\"}", &cfg, seconds / 2, &rs);
    printf("{\"request_bytes\":%zu,\"ollama_bytes\":%zu,"
           "\"request_us\":%.2f,\"parse_us\":%.2f,\"free_us\":%.2f,"
           "\"request_allocs\":%.0f,"
           "\"anthropic_event_ns\":%.1f,\"anthropic_event_allocs\":%.2f,\"anthropic_frame_bytes\":%.0f,"
           "\"openai_event_ns\":%.1f,\"openai_event_allocs\":%.2f,\"openai_frame_bytes\":%.0f,"
           "\"responses_event_ns\":%.1f,\"responses_event_allocs\":%.2f,\"responses_frame_bytes\":%.0f}\n",
           len, rq.out_bytes, rq.request_us, rq.parse_us, rq.free_us, rq.allocs,
           an.ns, an.allocs, an.frame_bytes, oa.ns, oa.allocs, oa.frame_bytes, rs.ns, rs.allocs, rs.frame_bytes);
    config_free(&cfg);
    free(text);
    return 0;
}
