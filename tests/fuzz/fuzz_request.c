/* fuzz_request.c -- libFuzzer harness: any bytes as a request body, through the pipeline of every route of
 * every dialect in the registry (and, on a route passed to Ollama, as Ollama's reply too). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dialect.h"
#include "pass.h"
#include "pipeline.h"

static const char *fuzz_env(const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "MODEL_MAP") == 0)
        return "claude-*haiku*=small,claude-*=big";
    if (strcmp(name, "THINK_MODELS") == 0)
        return "big";
    if (strcmp(name, "KEEP_ALIVE") == 0)
        return "5m";
    return NULL;
}

/* A small model that cannot think: the window check and the think drop both run. */
static int fuzz_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err)
{
    (void)ctx;
    (void)req;
    (void)err;
    *f = (struct model_facts){ .known = 1, .context_length = 4096, .correction = 1.0 };
    return 0;
}

static void run(const struct dialect *d, const struct dialect_route *r, const struct config *cfg, const uint8_t *data,
                size_t size)
{
    static const struct pipeline_models models = { fuzz_facts, NULL };
    /* A route whose path names the model gets one from the path, as the worker would. */
    struct dialect_call call = { r, strstr(r->path, "{model}") ? "claude-haiku-4-5" : NULL, "alt=sse" };
    struct chat_request req;
    struct apierr e;
    struct buf out;

    chat_request_init(&req);
    buf_init(&out);
    pipeline_request(d, &call, (const char *)data, size, cfg, &models, &req, &out, &e);
    buf_free(&out);
    chat_request_free(&req);
}

static int sink_put(void *ctx, const char *bytes, size_t len)
{
    buf_append(ctx, bytes, len);
    return 0;
}

static int sink_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

/* A route passed to Ollama: the bytes as the client's body, then as Ollama's reply, streamed and whole. */
static void run_pass(const struct dialect *d, const struct dialect_route *r, const struct config *cfg,
                     const uint8_t *data, size_t size)
{
    struct dialect_call call = { r, NULL, "" };
    struct chat_request req;
    struct wire_sink sink;
    struct pass p;
    struct apierr e;
    struct buf out;

    chat_request_init(&req);
    buf_init(&out);
    d->pass_request(&call, (const char *)data, size, cfg, &req, &out, &e);
    for (int streamed = 0; streamed < 2; streamed++) {
        buf_reset(&out);
        wire_sink_init(&sink, d->wire, sink_put, sink_flush, &out);
        pass_open(&p, d, &req, streamed ? &sink : NULL, 1u << 20);
        pass_feed(&p, (const char *)data, size);
        pass_end(&p, &out);
        pass_close(&p);
    }
    buf_free(&out);
    chat_request_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    static int ready;
    char err[128];

    if (!ready) {
        config_load(&cfg, fuzz_env, NULL, err, sizeof err);
        ready = 1;
    }
    for (size_t i = 0; dialect_registry[i]; i++)
        for (const struct dialect_route *r = dialect_registry[i]->routes; r->method; r++)
            if (r->kind == ROUTE_CHAT || r->kind == ROUTE_COUNT)
                run(dialect_registry[i], r, &cfg, data, size);
            else if (r->kind == ROUTE_PASS && r->upstream && strcmp(r->method, "GET") != 0)
                run_pass(dialect_registry[i], r, &cfg, data, size);
    return 0;
}
