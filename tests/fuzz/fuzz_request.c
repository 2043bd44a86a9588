/* fuzz_request.c -- libFuzzer harness: any bytes as a request body, through every request translator. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "anthropic.h"
#include "jsonx.h"
#include "openai.h"
#include "tokens.h"

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

static void run(const struct config *cfg, struct json_object *body,
                int (*translate)(struct json_object *, const struct config *, struct chat_request *, struct apierr *))
{
    struct chat_request req;
    struct model_facts facts = { 1, 0, 4096 };
    struct apierr e;

    chat_request_init(&req);
    if (translate(body, cfg, &req, &e) == 0) {
        struct json_object *o;

        chat_apply_facts(&req, &facts, cfg);
        req.estimated_tokens = tokens_estimate(&req);
        chat_check_window(&req, &e);
        o = chat_ollama_body(&req, cfg);
        jsonx_text(o, NULL);
        json_object_put(o);
    }
    chat_request_free(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config cfg;
    static int ready;
    struct json_object *body;
    struct apierr e;
    char err[128];

    if (!ready) {
        config_load(&cfg, fuzz_env, NULL, err, sizeof err);
        ready = 1;
    }
    body = jsonx_parse((const char *)data, size, &e);
    if (!body)
        return 0;
    run(&cfg, body, anthropic_dialect.translate);
    run(&cfg, body, anthropic_translate_count);
    run(&cfg, body, openai_dialect.translate);
    json_object_put(body);
    return 0;
}
