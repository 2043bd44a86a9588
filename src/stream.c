/* stream.c -- Ollama's NDJSON reply, as raw bytes arrive, turned into a dialect's events: the one stream
 * driver every dialect and every whole reply goes through. */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "ollama.h"

/* ---- collecting a whole reply: a stream machine whose events fill a chat_reply ---- */

static int collect_nothing(void *st)
{
    (void)st;
    return 0;
}

static int collect_delta(void *st, enum chat_part part, const char *s, size_t n)
{
    struct chat_reply *r = st;

    buf_append(part == CHAT_THINKING ? &r->thinking : &r->text, s, n);
    return 0;
}

static int collect_tool_call(void *st, const char *id, const char *name, struct json_object *args)
{
    struct chat_reply *r = st;

    r->calls = xrealloc(r->calls, (r->n_calls + 1) * sizeof *r->calls);
    r->calls[r->n_calls].id = xstrdup(id);
    r->calls[r->n_calls].name = xstrdup(name);
    r->calls[r->n_calls].args = json_object_get(args);
    r->n_calls++;
    return 0;
}

static int collect_finish(void *st, const struct chat_finish *f)
{
    ((struct chat_reply *)st)->finish = *f;
    return 0;
}

static int collect_error(void *st, const struct apierr *e)
{
    struct chat_reply *r = st;

    r->err = *e;
    r->failed = 1;
    return 0;
}

static const struct stream_ops collect_ops = {
    .begin = collect_nothing, .delta = collect_delta, .tool_call = collect_tool_call,
    .finish = collect_finish, .error = collect_error, .ping = collect_nothing,
};

/* ---- the driver ---- */

void stream_open(struct stream *s, const struct dialect *d, const struct chat_request *req, struct wire_sink *sink,
                 struct chat_reply *whole, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    s->req = req;
    s->tok = jsonx_tokener_new();
    s->prompt_tokens = -1;
    s->cached_tokens = -1;
    buf_init(&s->line);
    stopseq_init(&s->stop, req->stop, req->n_stop);
    s->recover = req->text_calls != 0;
    if (s->recover)
        textcall_init(&s->calls, req->parts.tools, req->text_calls, cap);
    s->cap = cap;
    if (sink) {
        struct stream_state *st = xcalloc(1, d->state_size);

        st->req = req;
        st->sink = sink;
        buf_init(&st->data);
        s->ops = d->ops;
        s->st = st;
    } else {
        s->ops = &collect_ops;
        s->st = whole;
        s->whole = whole;
    }
}

void stream_close(struct stream *s)
{
    if (s->tok)
        json_tokener_free(s->tok);
    if (s->st && !s->whole) {
        if (s->d->state_free)
            s->d->state_free(s->st);
        buf_free(&((struct stream_state *)s->st)->data);
        json_object_put(((struct stream_state *)s->st)->logprobs);
        free(s->st);
    }
    stopseq_free(&s->stop);
    if (s->recover)
        textcall_free(&s->calls);
    buf_free(&s->line);
    memset(s, 0, sizeof *s);
}

int stream_begin(struct stream *s)
{
    if (s->begun)
        return 0;
    s->begun = 1;
    return s->ops->begin(s->st);
}

int stream_fail(struct stream *s, const struct apierr *e)
{
    if (s->ended)
        return 0;
    s->ended = 1;
    s->failed = 1;
    return s->ops->error(s->st, e);
}

int stream_ping(struct stream *s)
{
    if (s->ended)
        return 0;
    if (!s->begun)
        return stream_begin(s);
    return s->ops->ping(s->st);
}

/* A reply held in memory until it is complete (whole, or a stream machine that keeps it, or kept for
 * some other reason such as thinking whose text goes out only in its signature): past the cap it ends
 * with an error. */
static int over_cap(struct stream *s)
{
    struct apierr e;

    apierr_set(&e, APIERR_API, 502, "Ollama's reply grew past %zu bytes, the most a reply held whole may hold; "
               "lower the token limit%s", s->cap, s->whole ? ", or ask for it with \"stream\": true" : "");
    stream_fail(s, &e);
    return -1;
}

static int room_for_kept(struct stream *s, size_t n, int kept)
{
    if (!s->whole && !s->d->keeps_output && !kept)
        return 0;
    s->bytes += n;
    return s->bytes <= s->cap ? 0 : over_cap(s);
}

static int room_for(struct stream *s, size_t n)
{
    return room_for_kept(s, n, 0);
}

static int finish(struct stream *s, const char *done_reason, const char *stop_sequence)
{
    struct chat_finish f;

    f.stop_sequence = stop_sequence;
    if (stop_sequence)
        f.reason = "stop_sequence";
    else if (s->n_tools > 0)
        f.reason = "tool_calls";
    else if (strcmp(done_reason, "length") == 0)
        f.reason = "length";
    else
        f.reason = "stop";
    f.input_tokens = s->prompt_tokens >= 0 ? s->prompt_tokens : s->req->estimated_tokens;
    f.output_tokens = s->output_tokens;
    /* Never more than the prompt: a hostile count must not make Anthropic's input_tokens negative. */
    f.cached_tokens = s->cached_tokens < 0 ? -1 : s->cached_tokens > f.input_tokens ? f.input_tokens : s->cached_tokens;
    s->ended = 1;
    return s->ops->finish(s->st, &f);
}

static int send_text(struct stream *s, const char *text, size_t n)
{
    if (!n)
        return STREAM_MORE;
    if (room_for(s, n) < 0)
        return STREAM_DONE;
    s->said = 1;
    return s->ops->delta(s->st, CHAT_TEXT, text, n) < 0 ? STREAM_GONE : STREAM_MORE;
}

static int emit_calls(struct stream *s, struct json_object *calls);

/* The text ends (the reply does, or a tool call or a stop sequence comes): what was held back for a stop
 * sequence goes out, and what was held as a possible tool call becomes one or goes out as text. */
static int end_text(struct stream *s)
{
    const char *out;
    size_t n;
    struct json_object *calls;
    unsigned found = 0;
    int rc;

    stopseq_flush(&s->stop, &out, &n);
    if (!s->recover)
        return send_text(s, out, n);
    textcall_feed(&s->calls, out, n, &out, &n);
    rc = send_text(s, out, n);
    if (rc != STREAM_MORE)
        return rc;
    calls = textcall_end(&s->calls, &out, &n, &found);
    rc = calls ? emit_calls(s, calls) : send_text(s, out, n);
    s->text_calls |= found;
    json_object_put(calls);
    return rc;
}

static int emit_text(struct stream *s, const char *text, size_t n)
{
    const char *out;
    size_t len;
    int hit = stopseq_feed(&s->stop, text, n, &out, &len), rc;

    if (s->recover)
        textcall_feed(&s->calls, out, len, &out, &len);
    rc = send_text(s, out, len);
    if (rc != STREAM_MORE || hit < 0)
        return rc;
    rc = end_text(s);
    if (rc != STREAM_MORE)
        return rc;
    return finish(s, "stop", s->req->stop[hit]) < 0 ? STREAM_GONE : STREAM_DONE;
}

static int emit_thinking(struct stream *s, const char *text, size_t n)
{
    if (room_for_kept(s, n, s->req->thinking_omitted) < 0)
        return STREAM_DONE;
    return s->ops->delta(s->st, CHAT_THINKING, text, n) < 0 ? STREAM_GONE : STREAM_MORE;
}

/* Whether the client offered a tool of this name (Ollama's tools: {"function": {"name": ...}}). */
static int tool_offered(const struct chat_request *req, const char *name)
{
    size_t n = req->parts.tools ? json_object_array_length(req->parts.tools) : 0;
    struct json_object *fn;
    const char *offered;

    for (size_t i = 0; i < n; i++) {
        fn = NULL;
        json_object_object_get_ex(json_object_array_get_idx(req->parts.tools, i), "function", &fn);
        offered = jsonx_string_at(fn, "name");
        if (offered && strcmp(offered, name) == 0)
            return 1;
    }
    return 0;
}

/* A call the client could not run -- a tool it never offered, arguments that are not an object, no call
 * at all -- reaches it as what the model said, in text, the way a call written as text that fails the
 * same checks stays text: the client sees the model's words and can answer, and never runs a tool it
 * does not have or runs one with arguments it did not describe. */
static int call_as_text(struct stream *s, struct json_object *call, struct json_object *fn)
{
    const char *name = jsonx_string_at(fn, "name");
    struct json_object *args = NULL;
    struct buf text;
    int rc;

    buf_init(&text);
    if (s->said)
        buf_puts(&text, "\n\n");
    if (name) {
        /* As a call written as text would read: {"name": ..., "arguments": ...}. */
        buf_puts(&text, "{\"name\":");
        jsonx_put_string(&text, name, strlen(name));
        if (json_object_object_get_ex(fn, "arguments", &args)) {
            buf_puts(&text, ",\"arguments\":");
            jsonx_write(&text, args);
        }
        buf_putc(&text, '}');
    } else {
        jsonx_write(&text, call);
    }
    rc = send_text(s, text.data, text.len);
    buf_free(&text);
    return rc;
}

/* The arguments of a call: Ollama's object (borrowed), a new empty one when it gave none (a tool without
 * parameters), or NULL when they are anything else. *made says whether the caller puts the result. */
static struct json_object *call_arguments(struct json_object *fn, int *made)
{
    struct json_object *v = NULL;

    *made = 0;
    if (!json_object_object_get_ex(fn, "arguments", &v) || !v) {
        *made = 1;
        return json_object_new_object();
    }
    return json_object_is_type(v, json_type_object) ? v : NULL;
}

/* One tool call from Ollama's tool_calls array (native, or recovered from text), checked as a call the
 * client can run: an offered tool's name, arguments that are an object. The arguments go on as the object
 * Ollama's line held, never as text parsed again. */
static int emit_tool_call(struct stream *s, struct json_object *call)
{
    struct json_object *fn = NULL, *v, *args;
    const char *name, *id = NULL;
    char gen[96];
    int made, rc;

    if (json_object_is_type(call, json_type_object))
        json_object_object_get_ex(call, "function", &fn);
    name = jsonx_string_at(fn, "name");
    if (!name || !tool_offered(s->req, name) || !(args = call_arguments(fn, &made)))
        return call_as_text(s, call, fn);
    if (json_object_object_get_ex(call, "id", &v) && json_object_is_type(v, json_type_string) &&
        json_object_get_string_len(v) > 0) {
        id = json_object_get_string(v);
    } else {
        /* Older Ollama gives no id: make one unique within the whole service from the request id. */
        const char *suffix = s->req->id + strcspn(s->req->id, "_-");

        if (*suffix)
            suffix++;
        snprintf(gen, sizeof gen, "%s%s_%d", s->d->tool_prefix, suffix, s->n_tools);
        id = gen;
    }
    /* What a kept call holds is its arguments as built, which a dense object makes many times its text. */
    if (room_for(s, strlen(id) + strlen(name) + jsonx_held(args)) < 0) {
        rc = STREAM_DONE;
    } else {
        s->n_tools++;
        rc = s->ops->tool_call(s->st, id, name, args) < 0 ? STREAM_GONE : STREAM_MORE;
    }
    if (made)
        json_object_put(args);
    return rc;
}

static int emit_calls(struct stream *s, struct json_object *calls)
{
    size_t n = json_object_array_length(calls);
    int rc = STREAM_MORE;

    for (size_t i = 0; i < n && rc == STREAM_MORE; i++)
        rc = emit_tool_call(s, json_object_array_get_idx(calls, i));
    return rc;
}

/* The log probabilities of a chunk's tokens, kept for the events that carry its words (the whole reply's, or
 * the stream machine's next chunk), when the client asked for them. Entries that are not objects are left out. */
static int keep_logprobs(struct stream *s, struct json_object *entries)
{
    struct json_object **kept;
    size_t len = 0;

    if (!entries || (!s->req->logprobs && s->req->top_logprobs <= 0))
        return STREAM_MORE;
    jsonx_text(entries, &len);
    kept = s->whole ? &s->whole->logprobs : &((struct stream_state *)s->st)->logprobs;
    if (!*kept)
        *kept = json_object_new_array();
    /* A stream machine sends them with the next words, but words held back (a possible tool call written as
     * text) hold their log probabilities too: what is held at once is capped like a reply held whole. */
    if (s->whole) {
        if (room_for(s, len) < 0)
            return STREAM_DONE;
    } else {
        if (json_object_array_length(*kept) == 0)
            s->logprobs_held = 0;
        s->logprobs_held += len;
        if (s->logprobs_held > s->cap && over_cap(s) < 0)
            return STREAM_DONE;
    }
    for (size_t i = 0; i < json_object_array_length(entries); i++) {
        struct json_object *e = json_object_array_get_idx(entries, i);

        if (json_object_is_type(e, json_type_object))
            json_object_array_add(*kept, json_object_get(e));
    }
    return STREAM_MORE;
}

/* What a chunk says, in order: thinking, text, tool calls, and on the last line the counts and the end. */
static int emit_chunk(struct stream *s, const struct ollama_chunk *c)
{
    int rc = keep_logprobs(s, c->logprobs);

    if (rc != STREAM_MORE)
        return rc;
    if (c->thinking_len || c->content_len)
        s->output_tokens++;
    if (c->thinking_len)
        rc = emit_thinking(s, c->thinking, c->thinking_len);
    if (rc == STREAM_MORE && c->content_len)
        rc = emit_text(s, c->content, c->content_len);
    if (rc == STREAM_MORE && c->tool_calls) {
        rc = end_text(s);
        if (rc == STREAM_MORE)
            rc = emit_calls(s, c->tool_calls);
    }
    if (rc != STREAM_MORE || !c->done)
        return rc;
    s->saw_done = 1;
    if (c->prompt_eval_count >= 0)
        s->prompt_tokens = c->prompt_eval_count;
    if (c->prompt_eval_cached_count >= 0)
        s->cached_tokens = c->prompt_eval_cached_count;
    if (c->eval_count >= 0)
        s->output_tokens = c->eval_count;
    rc = end_text(s);
    if (rc != STREAM_MORE)
        return rc;
    return finish(s, c->done_reason, NULL) < 0 ? STREAM_GONE : STREAM_DONE;
}

/* An error that ends the reply, quoting at most cap bytes of what Ollama sent. */
static int fail_with(struct stream *s, int status, const char *what, const char *detail, size_t len, size_t cap)
{
    struct apierr e;

    apierr_set(&e, APIERR_API, status, "%s%.*s", what, (int)jsonx_utf8_prefix(detail, len, cap), detail);
    return stream_fail(s, &e) < 0 ? STREAM_GONE : STREAM_DONE;
}

/* One NDJSON line from Ollama (without its newline). */
static int on_line(struct stream *s, const char *line, size_t len)
{
    struct ollama_chunk c;
    int rc;

    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (len == 0)
        return STREAM_MORE;
    if (ollama_chunk_parse(s->tok, line, len, &c) < 0)
        return fail_with(s, 502, "Ollama sent a line that is not a chat chunk: ", line, len, 200);
    if (c.error)
        rc = fail_with(s, 500, "Ollama: ", c.error, strlen(c.error), 900);
    else if (stream_begin(s) < 0)
        rc = STREAM_GONE;
    else
        rc = emit_chunk(s, &c);
    ollama_chunk_release(&c);
    return rc;
}

static int line_too_long(struct stream *s)
{
    struct apierr e;

    apierr_set(&e, APIERR_API, 502, "Ollama sent a line longer than %u bytes", STREAM_MAX_LINE);
    return stream_fail(s, &e) < 0 ? STREAM_GONE : STREAM_DONE;
}

static int each_line(void *ctx, const char *line, size_t len)
{
    return on_line(ctx, line, len);
}

int stream_feed(struct stream *s, const char *bytes, size_t n)
{
    int rc;

    if (s->ended)
        return STREAM_DONE;
    rc = buf_lines(&s->line, bytes, n, STREAM_MAX_LINE, each_line, s);
    return rc == BUF_LINE_TOO_LONG ? line_too_long(s) : rc;
}

int stream_eof(struct stream *s)
{
    struct apierr e;
    int rc = STREAM_MORE;

    /* A last line without its newline. */
    if (!s->ended && s->line.len) {
        rc = on_line(s, s->line.data, s->line.len);
        buf_reset(&s->line);
    }
    if (s->ended)
        return rc == STREAM_GONE ? -1 : 0;
    apierr_set(&e, APIERR_API, 502, "Ollama's stream ended before the reply was complete");
    return stream_fail(s, &e);
}
