/* ollama.c -- one line of Ollama's /api/chat NDJSON, parsed into a neutral chunk. */
#include "ollama.h"

#include <stdio.h>
#include <string.h>

#include "jsonx.h"

static long long opt_count(struct json_object *root, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(root, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    return (long long)json_object_get_int64(v);
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
    c->done_reason = "";
    if (json_object_object_get_ex(c->root, "done_reason", &v) && json_object_is_type(v, json_type_string))
        c->done_reason = json_object_get_string(v);
    c->prompt_eval_count = opt_count(c->root, "prompt_eval_count");
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
        snprintf(out, size, "%.*s", (int)(len > 300 ? 300 : len), body);
    if (o)
        json_object_put(o);
    /* An HTML error page or a trailing newline must not break the one-line message. */
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}
