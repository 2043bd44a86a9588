/* pipeline.c -- one client request, whatever its dialect, to the body Ollama's /api/chat receives, and
 * the decisions about its outcome (a retry, an error, the whole reply, the count): the steps the worker,
 * the case runner, the benchmark and the fuzzers all run. */
#include "pipeline.h"

#include "jsonx.h"
#include "ollama.h"
#include "tokens.h"

/* A whole reply may hold this much per token the client allows, and at least REPLY_FLOOR. */
#define REPLY_BYTES_PER_TOKEN 64
#define REPLY_FLOOR (1u << 20)

int pipeline_request(const struct dialect *d, const struct dialect_call *call, const char *body, size_t len,
                     const struct config *cfg, const struct pipeline_models *models, struct chat_request *req,
                     struct buf *out, struct apierr *err)
{
    struct json_object *parsed;
    struct model_facts facts;
    int rc;

    /* One budget for the body and every document inside it (tool calls' arguments as strings). */
    req->parse_budget = jsonx_budget(len);
    parsed = jsonx_parse_counted(body, len, req->parse_budget, &req->parse_used, err);
    if (!parsed)
        return -1;
    req->wire = d->wire;
    rc = d->translate(call, parsed, cfg, req, err);
    /* The client's document is not needed past here: what Ollama gets was copied out of it. */
    json_object_put(parsed);
    if (rc < 0)
        return -1;
    chat_default_think(req, cfg);
    /* Calls written as text are looked for only where a call could be meant: with tools offered, and not
     * when the client asked for JSON output, which may well look like one. */
    if (req->parts.tools && json_object_array_length(req->parts.tools) > 0 && !req->parts.format)
        req->text_calls = cfg->text_tool_calls;
    chat_close_messages(req);
    if (models->facts(models->ctx, req, &facts, err) < 0)
        return -1;
    req->raw_estimate = tokens_estimate(req);
    chat_apply_facts(req, &facts, cfg);
    if (call->route->kind == ROUTE_COUNT) {
        d->count_reply(req, out);
        return 0;
    }
    if (chat_check_window(req, err) < 0)
        return -1;
    ollama_write_chat_body(req, cfg, out);
    return 0;
}

size_t pipeline_reply_cap(const struct chat_request *req, const struct config *cfg)
{
    size_t cap = cfg->max_reply;

    if (req->max_tokens > 0 && (unsigned long long)req->max_tokens < cap / REPLY_BYTES_PER_TOKEN) {
        cap = (size_t)req->max_tokens * REPLY_BYTES_PER_TOKEN;
        if (cap < REPLY_FLOOR)
            cap = REPLY_FLOOR;
    }
    return cap;
}

int pipeline_refused(struct chat_request *req, const struct config *cfg, int attempt, long status, const char *body,
                     size_t len, struct buf *out, struct apierr *err)
{
    if (attempt == 0 && chat_think_requested(req) && ollama_refused_think(status, body, len)) {
        chat_drop_think(req);
        buf_reset(out);
        ollama_write_chat_body(req, cfg, out);
        return PIPELINE_RETRY;
    }
    ollama_status_error(status, body, len, req, err);
    return -1;
}

int pipeline_whole(const struct dialect *d, const struct chat_request *req, const struct chat_reply *whole,
                   struct buf *out, struct apierr *err)
{
    if (whole->failed) {
        *err = whole->err;
        return -1;
    }
    d->reply(req, whole, out);
    return 0;
}
