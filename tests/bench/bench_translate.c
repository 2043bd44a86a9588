/* bench_translate.c -- the translation core without I/O, timed:
 *   - a whole request: the client's body (the 76 KB Claude Code request) to the Ollama /api/chat body
 *     through the worker's pipeline (parse, translate, facts, estimate, window check, serialize into a
 *     reused buffer), then freed; and for scale the strict parse alone (ours: jsonx_parse) and json-c's own
 *     strict parse (the floor the library sets);
 *   - a streamed event: one Ollama NDJSON content line, as bytes, through the stream driver to the event
 *     the client gets, for every dialect of the registry (its request: tests/bench/stream/NAME.json), and
 *     for Anthropic with tools offered and on a code answer (the sink counts the bytes and drops them).
 * Allocations are counted too (malloc, calloc and realloc are interposed and passed to glibc's).
 *
 * Usage: bench-translate REQUEST.json [SECONDS_PER_FIGURE]    -- prints one JSON object; run from the
 * repository's root. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dialect.h"
#include "jsonx.h"
#include "pipeline.h"
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
    double request_us, parse_us, jsonc_parse_us, free_us;
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
    if (pipeline_request(dialect_named("anthropic"), &(struct dialect_call){ dialect_named("anthropic")->routes, NULL, "" },
                         text, len, cfg, &models, &req, &out_buf, &e) < 0)
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

/* json-c's own strict parse and free, nothing of ours: the floor the library sets. */
static double jsonc_alone(const char *text, size_t len, long iters)
{
    struct json_tokener *tok = json_tokener_new_ex(64);
    double a;

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    a = now_ns();
    for (long i = 0; i < iters; i++) {
        struct json_object *o;

        json_tokener_reset(tok);
        if (!(o = json_tokener_parse_ex(tok, text, (int)len)))
            die("json-c does not parse the request", NULL);
        json_object_put(o);
    }
    a = (now_ns() - a) / (double)iters / 1e3;
    json_tokener_free(tok);
    return a;
}

static void bench_request(const char *text, size_t len, const struct config *cfg, double seconds,
                          struct request_figures *r)
{
    double whole[BATCHES], parse[BATCHES], jsonc[BATCHES], fr[BATCHES], allocs[BATCHES];
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
        jsonc[k] = jsonc_alone(text, len, iters / 2 + 1);
    }
    r->request_us = median(whole, BATCHES);
    r->parse_us = median(parse, BATCHES);
    r->jsonc_parse_us = median(jsonc, BATCHES);
    r->free_us = median(fr, BATCHES);
    r->allocs = median(allocs, BATCHES);
}

/* ---- streamed events ---- */

struct sink_count {
    size_t frames, bytes;
};

static int count_bytes(void *ctx, const char *bytes, size_t len)
{
    (void)bytes;
    ((struct sink_count *)ctx)->bytes += len;
    return 0;
}

/* Every event ends in one flush. */
static int count_frame(void *ctx)
{
    ((struct sink_count *)ctx)->frames++;
    return 0;
}

struct event_figures {
    double ns;
    double allocs;
    double frame_bytes;
};

/* Ollama's own line for one token, as /api/chat streams it, with its newline. */
#define OLLAMA_LINE(token) \
    "{\"model\":\"qwen3:4b\",\"created_at\":\"2026-01-01T10:00:00.123456789Z\",\"message\":{\"role\":\"assistant\"," \
    "\"content\":\"" token "\"},\"done\":false}\n"
static const char *const PROSE[] = { OLLAMA_LINE(" the") };
/* A code answer's tokens: braces, brackets, angle brackets, fences and JSON that open possible tool calls
 * and are ruled out a few bytes later -- the most work text tool-call recovery does on text it keeps. */
static const char *const CODE[] = {
    OLLAMA_LINE("```"), OLLAMA_LINE("json"), OLLAMA_LINE("\\n"), OLLAMA_LINE("{\\\""), OLLAMA_LINE("name"),
    OLLAMA_LINE("\\\":"), OLLAMA_LINE(" \\\"Alice"), OLLAMA_LINE("\\\"}"), OLLAMA_LINE("\\n```\\n"),
    OLLAMA_LINE("if"), OLLAMA_LINE(" (a"), OLLAMA_LINE(" <"), OLLAMA_LINE(" b)"), OLLAMA_LINE(" {"),
    OLLAMA_LINE(" x"), OLLAMA_LINE("["), OLLAMA_LINE("i"), OLLAMA_LINE("]"), OLLAMA_LINE(" ="), OLLAMA_LINE(" <"),
    OLLAMA_LINE("div"), OLLAMA_LINE(">;"), OLLAMA_LINE(" }"), OLLAMA_LINE("\\n"),
};
#define N_CODE (sizeof CODE / sizeof *CODE)

/* Short batches, many of them, interleaved: the median then shrugs off a VM's bursts of stolen time. */
#define EVENT_BATCHES 41

/* One stream being fed Ollama lines in turn, through the stream driver to a sink that counts frames. */
struct event_run {
    struct chat_request req;
    struct stream st;
    struct wire_sink sink;
    struct sink_count count;
    struct chat_reply unused;
    struct buf ignored;
    const char *const *lines;
    size_t *lens;
    size_t n_lines;
    long iters;                    /* lines per batch */
    double ns[EVENT_BATCHES], allocs[EVENT_BATCHES];
};

static void event_open(struct event_run *r, const struct dialect *d, const char *request, const char *const *lines,
                       size_t n_lines, const struct config *cfg)
{
    struct apierr e;

    memset(r, 0, sizeof *r);
    r->lines = lines;
    r->n_lines = n_lines;
    r->lens = calloc(n_lines, sizeof *r->lens);
    for (size_t i = 0; i < n_lines; i++)
        r->lens[i] = strlen(lines[i]);
    chat_request_init(&r->req);
    buf_init(&r->ignored);
    if (pipeline_request(d, &(struct dialect_call){ d->routes, strstr(d->routes->path, "{model}") ? "qwen3:4b" : NULL,
                                                    "alt=sse" },
                         request, strlen(request), cfg, &models, &r->req, &r->ignored, &e) < 0)
        die("the stream request does not pass the pipeline", &e);
    snprintf(r->req.id, sizeof r->req.id, "%sbench", d->id_prefix);
    r->req.created = 1700000000;
    wire_sink_init(&r->sink, r->req.wire, count_bytes, count_frame, &r->count);
    stream_open(&r->st, d, &r->req, &r->sink, &r->unused, (size_t)-1);
}

/* Feeds iters lines; the ns per line. Once warm (allocs asked), a single line must make one frame each time. */
static double event_feed(struct event_run *r, long iters, double *allocs)
{
    unsigned long long a0 = n_allocs;
    size_t f0 = r->count.frames;
    double t0 = now_ns();

    for (long i = 0; i < iters; i++)
        if (stream_feed(&r->st, r->lines[i % (long)r->n_lines], r->lens[i % (long)r->n_lines]) != STREAM_MORE)
            die("the stream ended", NULL);
    if (allocs)
        *allocs = (double)(n_allocs - a0) / (double)iters;
    if (allocs && r->n_lines == 1 && r->count.frames - f0 != (size_t)iters)
        die("one line did not make one frame", NULL);
    return (now_ns() - t0) / (double)iters;
}

static void event_close(struct event_run *r, struct event_figures *f)
{
    f->ns = median(r->ns, EVENT_BATCHES);
    f->allocs = median(r->allocs, EVENT_BATCHES);
    f->frame_bytes = (double)r->count.bytes / (double)r->count.frames;
    stream_close(&r->st);
    buf_free(&r->ignored);
    chat_request_free(&r->req);
    free(r->lens);
}

/* Every run's batches taken in turn, so that a machine that speeds up or slows down during the bench
 * (a VM's neighbours) weighs on every figure alike and the ratios between them hold. */
static void bench_events(struct event_run *runs, size_t n, double seconds)
{
    for (size_t i = 0; i < n; i++) {
        double start = now_ns();
        long iters = 0;

        /* The first line opens the message and its text block; warm up and size the batches. */
        while (now_ns() - start < 0.05e9)
            iters += (long)runs[i].n_lines, event_feed(&runs[i], (long)runs[i].n_lines, NULL);
        iters = (long)((double)iters * seconds / 0.05 / EVENT_BATCHES);
        iters -= iters % (long)runs[i].n_lines;
        runs[i].iters = iters > 1000 ? iters : 1000;
    }
    for (int k = 0; k < EVENT_BATCHES; k++)
        for (size_t i = 0; i < n; i++)
            runs[i].ns[k] = event_feed(&runs[i], runs[i].iters, &runs[i].allocs[k]);
}

/* An Anthropic stream request, with or without tools offered (with them, text tool-call recovery is on). */
#define ANTHROPIC_REQUEST(tools) \
    "{\"model\":\"qwen3:4b\",\"max_tokens\":1024,\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Say hi\"}]" \
    tools "}"
#define TOOLS \
    ",\"tools\":[{\"name\":\"Read\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}}}}," \
    "{\"name\":\"Write\",\"input_schema\":{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"}," \
    "\"content\":{\"type\":\"string\"}}}}]"

/* The registry's dialects, each with its own stream request. */
#define MAX_DIALECTS 16

static char *stream_request(const struct dialect *d)
{
    char path[256];
    size_t len;
    char *text;

    snprintf(path, sizeof path, "tests/bench/stream/%s.json", d->name);
    if (!(text = slurp(path, &len))) {
        fprintf(stderr, "bench-translate: %s: every dialect needs its stream request\n", path);
        exit(1);
    }
    return text;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct request_figures rq = { 0 };
    struct event_figures figs[MAX_DIALECTS + 3];
    struct event_run runs[MAX_DIALECTS + 3];
    char *requests[MAX_DIALECTS];
    const struct dialect *ds[MAX_DIALECTS];
    const struct dialect *an = dialect_named("anthropic");
    char err[256];
    size_t len, n = 0;
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
    /* The dialects that translate; one that passes Ollama's own lines has no events to measure. */
    for (size_t i = 0; dialect_registry[i] && n < MAX_DIALECTS; i++)
        if (dialect_registry[i]->translate)
            ds[n++] = dialect_registry[i];
    for (size_t i = 0; i < n; i++) {
        requests[i] = stream_request(ds[i]);
        event_open(&runs[i], ds[i], requests[i], PROSE, 1, &cfg);
    }
    event_open(&runs[n], an, ANTHROPIC_REQUEST(TOOLS), PROSE, 1, &cfg);
    event_open(&runs[n + 1], an, ANTHROPIC_REQUEST(""), CODE, N_CODE, &cfg);
    event_open(&runs[n + 2], an, ANTHROPIC_REQUEST(TOOLS), CODE, N_CODE, &cfg);
    bench_events(runs, n + 3, seconds / 2);
    for (size_t i = 0; i < n + 3; i++)
        event_close(&runs[i], &figs[i]);
    printf("{\"request_bytes\":%zu,\"ollama_bytes\":%zu,\"request_us\":%.2f,\"parse_us\":%.2f,\"jsonc_parse_us\":%.2f,"
           "\"free_us\":%.2f,\"request_allocs\":%.0f,", len, rq.out_bytes, rq.request_us, rq.parse_us, rq.jsonc_parse_us,
           rq.free_us, rq.allocs);
    for (size_t i = 0; i < n; i++) {
        printf("\"%s_event_ns\":%.1f,\"%s_event_allocs\":%.2f,\"%s_frame_bytes\":%.0f,", ds[i]->name,
               figs[i].ns, ds[i]->name, figs[i].allocs, ds[i]->name, figs[i].frame_bytes);
        free(requests[i]);
    }
    printf("\"anthropic_tools_event_ns\":%.1f,\"code_event_ns\":%.1f,\"code_tools_event_ns\":%.1f}\n",
           figs[n].ns, figs[n + 1].ns, figs[n + 2].ns);
    config_free(&cfg);
    free(text);
    return 0;
}
