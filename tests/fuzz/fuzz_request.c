/* fuzz_request.c -- libFuzzer harness: any bytes as a request body, through the pipeline of every route of
 * every dialect in the registry. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dialect.h"
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
    return 0;
}
