/* ollama.c -- Ollama's /api/chat: the body a request becomes, one line of its NDJSON as a neutral chunk, and
 * its error statuses as the client's errors. */
#include "ollama.h"

#include <stdio.h>
#include <string.h>

#include "jsonx.h"

/* A token count, or -1 when absent. json-c gives INT64_MAX for anything larger; a negative count means
 * nothing and reads as 0. */
static long long opt_count(struct json_object *root, const char *key)
{
    struct json_object *v;
    long long n;

    if (!json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    n = (long long)json_object_get_int64(v);
    return n < 0 ? 0 : n;
}

static void opt_text(struct json_object *obj, const char *key, const char **s, size_t *len)
{
    struct json_object *v;

    *s = "";
    *len = 0;
    if (obj && json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)) {
        *s = json_object_get_string(v);
        *len = (size_t)json_object_get_string_len(v);
    }
}

int ollama_chunk_parse(struct json_tokener *tok, const char *line, size_t len, struct ollama_chunk *c)
{
    struct json_object *msg = NULL, *v;

    memset(c, 0, sizeof *c);
    c->root = jsonx_parse_with(tok, line, len);
    if (!c->root)
        return -1;
    if (!json_object_is_type(c->root, json_type_object))
        goto bad;
    if (json_object_object_get_ex(c->root, "error", &v) && v) {
        c->error = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : jsonx_text(v, NULL);
        return 0;
    }
    if (json_object_object_get_ex(c->root, "message", &msg) && !json_object_is_type(msg, json_type_object))
        goto bad;
    if (!json_object_object_get_ex(c->root, "done", &v) || !json_object_is_type(v, json_type_boolean))
        goto bad;
    c->done = json_object_get_boolean(v);
    if (!msg && !c->done)
        goto bad;
    opt_text(msg, "content", &c->content, &c->content_len);
    opt_text(msg, "thinking", &c->thinking, &c->thinking_len);
    if (msg && json_object_object_get_ex(msg, "tool_calls", &v) && json_object_is_type(v, json_type_array))
        c->tool_calls = v;
    if (json_object_object_get_ex(c->root, "logprobs", &v) && json_object_is_type(v, json_type_array))
        c->logprobs = v;
    c->done_reason = "";
    if (json_object_object_get_ex(c->root, "done_reason", &v) && json_object_is_type(v, json_type_string))
        c->done_reason = json_object_get_string(v);
    c->prompt_eval_count = opt_count(c->root, "prompt_eval_count");
    c->prompt_eval_cached_count = opt_count(c->root, "prompt_eval_cached_count");
    c->eval_count = opt_count(c->root, "eval_count");
    return 0;
bad:
    ollama_chunk_release(c);
    return -1;
}

void ollama_chunk_release(struct ollama_chunk *c)
{
    if (c->root)
        json_object_put(c->root);
    c->root = NULL;
}

void ollama_error_message(const char *body, size_t len, char *out, size_t size)
{
    struct apierr ignored;
    struct json_object *o = jsonx_parse(body, len, &ignored), *v;

    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "error", &v) &&
        json_object_is_type(v, json_type_string))
        snprintf(out, size, "%s", json_object_get_string(v));
    else
        snprintf(out, size, "%.*s", (int)jsonx_utf8_prefix(body, len, 300), body);
    if (o)
        json_object_put(o);
    /* An HTML error page or a trailing newline must not break the one-line message. */
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    for (size_t n = strlen(out); n > 0 && out[n - 1] == ' '; n--)
        out[n - 1] = '\0';
}

void ollama_model_not_found(const struct chat_request *req, const char *ollama_message, struct apierr *e)
{
    if (strcmp(req->client_model, req->ollama_model) != 0)
        apierr_set(e, APIERR_NOT_FOUND, 404, "model '%s' (mapped to '%s' by MODEL_MAP) not found: Ollama says \"%s\"",
                   req->client_model, req->ollama_model, ollama_message);
    else
        apierr_set(e, APIERR_NOT_FOUND, 404, "model '%s' not found: Ollama says \"%s\"; pull it, or map the name "
                   "to a model you have with MODEL_MAP", req->client_model, ollama_message);
    e->code = "model_not_found";
    snprintf(e->param, sizeof e->param, "model");
}

void ollama_status_error(long status, const char *body, size_t len, const struct chat_request *req,
                         struct apierr *e)
{
    char msg[768];

    ollama_error_message(body, len, msg, sizeof msg);
    if (status == 404)
        ollama_model_not_found(req, msg, e);
    else if (status == 400)
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "Ollama rejected the request: %s", msg);
    else if (status == 503)
        apierr_set(e, APIERR_OVERLOADED, 503, "Ollama is overloaded: %s", msg);
    else if (status == 429)
        apierr_set(e, APIERR_RATE_LIMIT, 429, "Ollama: %s", msg);
    else
        apierr_set(e, APIERR_API, 502, "Ollama answered HTTP %ld: %s", status, msg);
}

int ollama_refused_think(long status, const char *body, size_t len)
{
    return status == 400 && len > 0 && memmem(body, len, "does not support thinking", 25) != NULL;
}

void ollama_write_chat_body(const struct chat_request *req, const struct config *cfg, struct buf *out)
{
    int opts = 0;

    buf_puts(out, "{\"model\":");
    jsonx_put_string(out, req->ollama_model, strlen(req->ollama_model));
    jsonx_put_key(out, "messages");
    jsonx_write(out, req->parts.messages);
    if (req->parts.tools && json_object_array_length(req->parts.tools) > 0) {
        jsonx_put_key(out, "tools");
        jsonx_write(out, req->parts.tools);
    }
    buf_puts(out, ",\"stream\":true");
    if (req->parts.think) {
        jsonx_put_key(out, "think");
        jsonx_write(out, req->parts.think);
    }
    if (req->parts.format) {
        jsonx_put_key(out, "format");
        jsonx_write(out, req->parts.format);
    }
    if (req->logprobs)
        buf_puts(out, ",\"logprobs\":true");
    if (req->top_logprobs > 0) {
        buf_puts(out, ",\"top_logprobs\":");
        buf_put_int(out, req->top_logprobs);
    }
    /* NUM_CTX=0 leaves the window to Ollama: the model's own length still bounds the prompt (chat_apply_facts),
     * but asking for it would have Ollama allocate that whole cache. */
    if (cfg->num_ctx > 0 && req->window > 0) {
        buf_puts(out, ",\"options\":{\"num_ctx\":");
        buf_put_int(out, req->window);
        opts = 1;
    }
    json_object_object_foreach(req->parts.options, key, val) {
        if (opts++) {
            jsonx_put_key(out, key);
        } else {
            buf_puts(out, ",\"options\":{");
            jsonx_put_string(out, key, strlen(key));
            buf_putc(out, ':');
        }
        jsonx_write(out, val);
    }
    if (opts)
        buf_putc(out, '}');
    if (cfg->keep_alive) {
        char *end;
        long long secs = strtoll(cfg->keep_alive, &end, 10);

        /* A bare number is seconds for Ollama; anything else is a Go duration string ("30m"). */
        jsonx_put_key(out, "keep_alive");
        if (*end == '\0')
            buf_put_int(out, secs);
        else
            jsonx_put_string(out, cfg->keep_alive, strlen(cfg->keep_alive));
    }
    buf_putc(out, '}');
}
