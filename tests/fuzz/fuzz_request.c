/* fuzz_request.c -- libFuzzer harness: any bytes as a request body, through the pipeline of every dialect. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "anthropic.h"
#include "openai.h"
#include "pipeline.h"
#include "responses.h"

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

static void run(const struct dialect *d, const struct config *cfg, const uint8_t *data, size_t size)
{
    static const struct pipeline_models models = { fuzz_facts, NULL };
    struct chat_request req;
    struct apierr e;
    struct buf out;

    chat_request_init(&req);
    buf_init(&out);
    pipeline_request(d, (const char *)data, size, cfg, &models, &req, &out, &e);
    buf_free(&out);
    chat_request_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dialect *const dialects[] = { &anthropic_dialect, &anthropic_count_dialect, &openai_dialect,
                                                      &responses_dialect };
    static struct config cfg;
    static int ready;
    char err[128];

    if (!ready) {
        config_load(&cfg, fuzz_env, NULL, err, sizeof err);
        ready = 1;
    }
    for (size_t i = 0; i < sizeof dialects / sizeof *dialects; i++)
        run(dialects[i], &cfg, data, size);
    return 0;
}
