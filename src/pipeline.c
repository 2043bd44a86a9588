/* pipeline.c -- one client request, whatever its dialect, to the body Ollama's /api/chat receives: the
 * steps the worker, the case runner, the benchmark and the fuzzers all run. */
#include "pipeline.h"

#include "jsonx.h"
#include "tokens.h"

int pipeline_request(const struct dialect *d, const char *body, size_t len, const struct config *cfg,
                     const struct pipeline_models *models, struct chat_request *req, struct buf *out,
                     struct apierr *err)
{
    struct json_object *parsed;
    struct model_facts facts;
    int rc;

    /* One budget for the body and every document inside it (tool calls' arguments as strings). */
    req->parse_budget = jsonx_budget(len);
    parsed = jsonx_parse_counted(body, len, req->parse_budget, &req->parse_used, err);
    if (!parsed)
        return -1;
    rc = d->translate(parsed, cfg, req, err);
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
    if (d->count_only)
        return 0;
    if (chat_check_window(req, err) < 0)
        return -1;
    chat_write_ollama_body(req, cfg, out);
    return 0;
}
