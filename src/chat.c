/* chat.c -- what the two dialects share: the neutral request, the Ollama request assembly, the stream
 * driver that turns Ollama lines into neutral events for a dialect, and the collector for whole replies. */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "ollama.h"

void chat_request_init(struct chat_request *req)
{
    memset(req, 0, sizeof *req);
    req->parts.messages = json_object_new_array();
    req->parts.options = json_object_new_object();
}

void chat_request_free(struct chat_request *req)
{
    json_object_put(req->parts.messages);
    json_object_put(req->parts.tools);
    json_object_put(req->parts.options);
    json_object_put(req->parts.think);
    json_object_put(req->parts.format);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->stop);
    free(req->client_model);
    free(req->ollama_model);
    memset(req, 0, sizeof *req);
}

void chat_default_think(struct chat_request *req, const struct config *cfg)
{
    if (req->parts.think)
        return;
    req->parts.think = json_object_new_boolean(config_is_think_model(cfg, req->ollama_model) ||
                                               config_is_think_model(cfg, req->client_model));
}

void chat_drop_think(struct chat_request *req)
{
    json_object_put(req->parts.think);
    req->parts.think = NULL;
}

int chat_think_requested(const struct chat_request *req)
{
    struct json_object *t = req->parts.think;

    if (!t)
        return 0;
    if (json_object_is_type(t, json_type_boolean))
        return json_object_get_boolean(t);
    return 1;
}

void chat_apply_facts(struct chat_request *req, const struct model_facts *f, const struct config *cfg)
{
    req->window = cfg->num_ctx;
    if (!f->known)
        return;
    if (!f->can_think)
        chat_drop_think(req);
    if (f->context_length > 0 && (req->window == 0 || f->context_length < req->window))
        req->window = f->context_length;
}

int chat_check_window(const struct chat_request *req, struct apierr *err)
{
    if (req->window > 0 && req->estimated_tokens > req->window) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "prompt is too long: %lld tokens > %lld maximum",
                   req->estimated_tokens, req->window);
        return -1;
    }
    return 0;
}

struct json_object *chat_ollama_body(const struct chat_request *req, const struct config *cfg)
{
    struct json_object *o = json_object_new_object(), *opts = json_object_new_object();

    json_object_object_add(o, "model", json_object_new_string(req->ollama_model));
    json_object_object_add(o, "messages", json_object_get(req->parts.messages));
    if (req->parts.tools && json_object_array_length(req->parts.tools) > 0)
        json_object_object_add(o, "tools", json_object_get(req->parts.tools));
    json_object_object_add(o, "stream", json_object_new_boolean(1));
    if (req->parts.think)
        json_object_object_add(o, "think", json_object_get(req->parts.think));
    if (req->parts.format)
        json_object_object_add(o, "format", json_object_get(req->parts.format));
    if (req->window > 0)
        json_object_object_add(opts, "num_ctx", json_object_new_int64(req->window));
    json_object_object_foreach(req->parts.options, key, val)
        json_object_object_add(opts, key, json_object_get(val));
    if (json_object_object_length(opts) > 0)
        json_object_object_add(o, "options", opts);
    else
        json_object_put(opts);
    if (cfg->keep_alive) {
        char *end;
        long long secs = strtoll(cfg->keep_alive, &end, 10);

        /* A bare number is seconds for Ollama; anything else is a Go duration string ("30m"). */
        if (*end == '\0')
            json_object_object_add(o, "keep_alive", json_object_new_int64(secs));
        else
            json_object_object_add(o, "keep_alive", json_object_new_string(cfg->keep_alive));
    }
    return o;
}

struct json_object *chat_message(const char *role)
{
    struct json_object *m = json_object_new_object();

    json_object_object_add(m, "role", json_object_new_string(role));
    return m;
}

void chat_join_text(struct buf *b, struct json_object *str)
{
    if (b->len > 0)
        buf_putc(b, '\n');
    buf_append(b, json_object_get_string(str), (size_t)json_object_get_string_len(str));
}

struct json_object *chat_function_tool(struct json_object *name, struct json_object *description,
                                       struct json_object *parameters)
{
    struct json_object *tool = json_object_new_object(), *fn = json_object_new_object();

    json_object_object_add(tool, "type", json_object_new_string("function"));
    json_object_object_add(fn, "name", json_object_get(name));
    if (description)
        json_object_object_add(fn, "description", json_object_get(description));
    json_object_object_add(fn, "parameters", parameters);
    json_object_object_add(tool, "function", fn);
    return tool;
}

static const char *message_role(struct json_object *m)
{
    struct json_object *role;

    return m && json_object_object_get_ex(m, "role", &role) ? json_object_get_string(role) : "";
}

/* Appends "\n\n" and text to m's content. */
static void append_content(struct json_object *m, const char *sep, const char *before, const char *text,
                           size_t len, const char *after)
{
    struct json_object *content;
    struct buf merged;

    buf_init(&merged);
    if (json_object_object_get_ex(m, "content", &content) && json_object_get_string_len(content) > 0) {
        buf_append(&merged, json_object_get_string(content), (size_t)json_object_get_string_len(content));
        buf_puts(&merged, sep);
    }
    buf_puts(&merged, before);
    buf_append(&merged, text, len);
    buf_puts(&merged, after);
    json_object_object_add(m, "content", jsonx_string(merged.data, merged.len));
    buf_free(&merged);
}

/* Before the conversation starts, system text joins the one leading system message. Later it stays where
 * it stands -- moving it to the front would change the prompt prefix Ollama caches -- as text most chat
 * templates accept, since many reject a system message after the first: inside <system-reminder> tags,
 * merged into the user message before it, or as a user message of its own. */
void chat_place_system(struct json_object *messages, const char *text, size_t len)
{
    size_t n = json_object_array_length(messages);
    struct json_object *last = n ? json_object_array_get_idx(messages, n - 1) : NULL;

    if (n == 0) {
        last = chat_message("system");
        json_object_object_add(last, "content", jsonx_string(text, len));
        json_object_array_add(messages, last);
    } else if (n == 1 && strcmp(message_role(last), "system") == 0) {
        append_content(last, "\n\n", "", text, len, "");
    } else if (strcmp(message_role(last), "user") == 0) {
        append_content(last, "\n\n", "<system-reminder>\n", text, len, "\n</system-reminder>");
    } else {
        last = chat_message("user");
        json_object_array_add(messages, last);
        append_content(last, "", "<system-reminder>\n", text, len, "\n</system-reminder>");
    }
}

int chat_set_stop(struct chat_request *req, struct json_object *v, const char *field, size_t max,
                  struct apierr *err)
{
    char name[160];
    size_t n;

    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        if (json_object_get_string_len(v) > 0) {
            req->stop = xmalloc(sizeof *req->stop);
            req->stop[req->n_stop++] = xstrdup(json_object_get_string(v));
        }
        return 0;
    }
    if (!json_object_is_type(v, json_type_array)) {
        apierr_field(err, field, "expected a string or an array of strings, got %s",
                     jsonx_type_name(json_object_get_type(v)));
        return -1;
    }
    n = json_object_array_length(v);
    if (n > max) {
        apierr_field(err, field, "at most %zu stop sequences are allowed, got %zu", max, n);
        return -1;
    }
    req->stop = xcalloc(n ? n : 1, sizeof *req->stop);
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(v, i);

        if (!json_object_is_type(s, json_type_string)) {
            apierr_field(err, jsonx_path_idx(name, sizeof name, field, i), "expected a string, got %s",
                         jsonx_type_name(json_object_get_type(s)));
            return -1;
        }
        if (json_object_get_string_len(s) > 0)
            req->stop[req->n_stop++] = xstrdup(json_object_get_string(s));
    }
    return 0;
}

/* ---- the stream driver ---- */

void chat_stream_init(struct chat_stream *cs, const struct chat_request *req, const struct stream_ops *ops,
                      void *st, const char *tool_prefix)
{
    memset(cs, 0, sizeof *cs);
    cs->req = req;
    cs->ops = ops;
    cs->st = st;
    cs->tok = jsonx_tokener_new();
    cs->tool_prefix = tool_prefix;
    cs->prompt_tokens = -1;
    stopseq_init(&cs->stop, req->stop, req->n_stop);
    buf_init(&cs->scratch);
}

void chat_stream_free(struct chat_stream *cs)
{
    if (cs->tok)
        json_tokener_free(cs->tok);
    stopseq_free(&cs->stop);
    buf_free(&cs->scratch);
    cs->tok = NULL;
}

int chat_stream_begin(struct chat_stream *cs)
{
    if (cs->begun)
        return 0;
    cs->begun = 1;
    return cs->ops->begin(cs->st);
}

int chat_stream_fail(struct chat_stream *cs, const struct apierr *e)
{
    if (cs->ended)
        return 0;
    cs->ended = 1;
    cs->failed = 1;
    return cs->ops->error(cs->st, e);
}

int chat_stream_ping(struct chat_stream *cs)
{
    if (cs->ended)
        return 0;
    if (!cs->begun)
        return chat_stream_begin(cs);
    return cs->ops->ping(cs->st);
}

static int finish(struct chat_stream *cs, const char *done_reason, const char *stop_sequence)
{
    struct chat_finish f;

    f.stop_sequence = stop_sequence;
    if (stop_sequence)
        f.reason = "stop_sequence";
    else if (cs->n_tools > 0)
        f.reason = "tool_calls";
    else if (strcmp(done_reason, "length") == 0)
        f.reason = "length";
    else
        f.reason = "stop";
    f.input_tokens = cs->prompt_tokens >= 0 ? cs->prompt_tokens : cs->req->estimated_tokens;
    f.output_tokens = cs->output_tokens;
    cs->ended = 1;
    return cs->ops->finish(cs->st, &f);
}

static int flush_text(struct chat_stream *cs)
{
    const char *out;
    size_t n;

    stopseq_flush(&cs->stop, &out, &n);
    return n ? cs->ops->text(cs->st, out, n) : 0;
}

static int emit_text(struct chat_stream *cs, const char *s, size_t n)
{
    const char *out;
    size_t len;
    int hit = stopseq_feed(&cs->stop, s, n, &out, &len);

    if (len && cs->ops->text(cs->st, out, len) < 0)
        return CHAT_GONE;
    if (hit >= 0)
        return finish(cs, "stop", cs->req->stop[hit]) < 0 ? CHAT_GONE : CHAT_DONE;
    return CHAT_MORE;
}

static int emit_tool_calls(struct chat_stream *cs, struct json_object *calls)
{
    size_t n = json_object_array_length(calls);

    if (flush_text(cs) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        struct json_object *call = json_object_array_get_idx(calls, i), *fn = NULL, *v;
        const char *name = "", *id = NULL, *args = "{}";
        size_t args_len = 2;
        char gen[96];

        if (!json_object_is_type(call, json_type_object))
            continue;
        json_object_object_get_ex(call, "function", &fn);
        if (fn && json_object_object_get_ex(fn, "name", &v) && json_object_is_type(v, json_type_string))
            name = json_object_get_string(v);
        if (fn && json_object_object_get_ex(fn, "arguments", &v) && v) {
            if (json_object_is_type(v, json_type_string)) {
                args = json_object_get_string(v);
                args_len = (size_t)json_object_get_string_len(v);
            } else {
                args = jsonx_text(v, &args_len);
            }
        }
        if (json_object_object_get_ex(call, "id", &v) && json_object_is_type(v, json_type_string) &&
            json_object_get_string_len(v) > 0) {
            id = json_object_get_string(v);
        } else {
            /* Older Ollama gives no id: make one unique within the whole service from the request id. */
            const char *suffix = cs->req->id + strcspn(cs->req->id, "_-");

            if (*suffix)
                suffix++;
            snprintf(gen, sizeof gen, "%s%s_%d", cs->tool_prefix, suffix, cs->n_tools);
            id = gen;
        }
        cs->n_tools++;
        if (cs->ops->tool_call(cs->st, id, name, args, args_len) < 0)
            return -1;
    }
    return 0;
}

int chat_stream_line(struct chat_stream *cs, const char *line, size_t len)
{
    struct ollama_chunk c;
    struct apierr e;
    int rc = CHAT_MORE;

    if (cs->ended)
        return CHAT_DONE;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return CHAT_MORE;
    if (ollama_chunk_parse(cs->tok, line, len, &c) < 0) {
        apierr_set(&e, APIERR_API, 502, "Ollama sent a line that is not a chat chunk: %.*s",
                   (int)(len > 200 ? 200 : len), line);
        return chat_stream_fail(cs, &e) < 0 ? CHAT_GONE : CHAT_DONE;
    }
    if (c.error) {
        apierr_set(&e, APIERR_API, 500, "Ollama: %s", c.error);
        rc = chat_stream_fail(cs, &e) < 0 ? CHAT_GONE : CHAT_DONE;
        goto out;
    }
    if (chat_stream_begin(cs) < 0)
        goto gone;
    if (c.thinking_len || c.content_len)
        cs->output_tokens++;
    if (c.thinking_len && cs->ops->thinking(cs->st, c.thinking, c.thinking_len) < 0)
        goto gone;
    if (c.content_len) {
        rc = emit_text(cs, c.content, c.content_len);
        if (rc != CHAT_MORE)
            goto out;
    }
    if (c.tool_calls && emit_tool_calls(cs, c.tool_calls) < 0)
        goto gone;
    if (c.done) {
        cs->saw_done = 1;
        if (c.prompt_eval_count >= 0)
            cs->prompt_tokens = c.prompt_eval_count;
        if (c.eval_count >= 0)
            cs->output_tokens = c.eval_count;
        if (flush_text(cs) < 0 || finish(cs, c.done_reason, NULL) < 0)
            goto gone;
        rc = CHAT_DONE;
    }
out:
    ollama_chunk_release(&c);
    return rc;
gone:
    ollama_chunk_release(&c);
    return CHAT_GONE;
}

int chat_stream_eof(struct chat_stream *cs)
{
    struct apierr e;

    if (cs->ended)
        return 0;
    apierr_set(&e, APIERR_API, 502, "Ollama's stream ended before the reply was complete");
    return chat_stream_fail(cs, &e);
}

/* ---- collecting a whole reply ---- */

void chat_reply_init(struct chat_reply *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->thinking);
    buf_init(&r->text);
}

void chat_reply_free(struct chat_reply *r)
{
    buf_free(&r->thinking);
    buf_free(&r->text);
    for (size_t i = 0; i < r->n_calls; i++) {
        free(r->calls[i].id);
        free(r->calls[i].name);
        free(r->calls[i].args);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}

static int collect_begin(void *st)
{
    (void)st;
    return 0;
}

static int collect_thinking(void *st, const char *s, size_t n)
{
    buf_append(&((struct chat_reply *)st)->thinking, s, n);
    return 0;
}

static int collect_text(void *st, const char *s, size_t n)
{
    buf_append(&((struct chat_reply *)st)->text, s, n);
    return 0;
}

static int collect_tool_call(void *st, const char *id, const char *name, const char *args, size_t args_len)
{
    struct chat_reply *r = st;

    r->calls = xrealloc(r->calls, (r->n_calls + 1) * sizeof *r->calls);
    r->calls[r->n_calls].id = xstrdup(id);
    r->calls[r->n_calls].name = xstrdup(name);
    r->calls[r->n_calls].args = xstrndup(args, args_len);
    r->n_calls++;
    return 0;
}

static int collect_finish(void *st, const struct chat_finish *f)
{
    struct chat_reply *r = st;

    r->finish = *f;
    r->finished = 1;
    return 0;
}

static int collect_error(void *st, const struct apierr *e)
{
    struct chat_reply *r = st;

    r->err = *e;
    r->failed = 1;
    return 0;
}

const struct stream_ops chat_collect_ops = {
    collect_begin, collect_thinking, collect_text, collect_tool_call, collect_finish, collect_error,
    collect_begin,
};
