/* chat.c -- what every dialect shares: the neutral request, the helpers its translator builds it with,
 * the Ollama request body, the whole reply, and the dialect table's shared parts. */
#include "chat.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"

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
    json_object_put(req->extra);
    json_object_put(req->call_names);
    if (req->has_last)
        chat_msg_free(&req->last);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->stop);
    free(req->client_model);
    free(req->ollama_model);
    memset(req, 0, sizeof *req);
}

int chat_preamble(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                  struct chat_request *req, struct apierr *err)
{
    struct json_object *model;
    const char *name = call->model;

    if (!json_object_is_type(body, json_type_object)) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body must be a JSON object, got %s",
                   jsonx_type_name(json_object_get_type(body)));
        return -1;
    }
    if (!name) {
        if (jsonx_req(body, "model", json_type_string, "", &model, err) < 0)
            return -1;
        name = json_object_get_string(model);
    }
    if (call->route->stream == ROUTE_STREAM_BODY) {
        if (jsonx_opt_bool(body, "stream", "", &req->stream, err) < 0)
            return -1;
    } else {
        req->stream = call->route->stream;
    }
    if (!*name) {
        apierr_field(err, "model", "must not be empty");
        return -1;
    }
    req->client_model = xstrdup(name);
    req->ollama_model = xstrdup(config_map_model(cfg, req->client_model));
    return 0;
}

int chat_query_param(const char *query, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);

    for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        size_t len = strcspn(p, "&");

        if (len > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            snprintf(out, size, "%.*s", (int)(len - n - 1), p + n + 1);
            return 0;
        }
        if (len == n && strncmp(p, name, n) == 0) {
            snprintf(out, size, "%s", "");
            return 0;
        }
    }
    return -1;
}

int chat_check_fields(struct json_object *body, const struct chat_field *fields, size_t n, struct apierr *err)
{
    struct json_object *v;
    long long i;
    int present;

    for (size_t k = 0; k < n; k++) {
        int rc = fields[k].type == json_type_int ? jsonx_opt_int(body, fields[k].name, "", &i, &present, err)
                                                 : jsonx_opt(body, fields[k].name, fields[k].type, "", &v, err);

        if (rc < 0)
            return -1;
    }
    return 0;
}

int chat_copy_options(struct json_object *body, const char *path, const struct chat_option *opts, size_t n,
                      struct chat_request *req, struct apierr *err)
{
    struct json_object *v;
    long long i;
    int present;

    for (size_t k = 0; k < n; k++) {
        if (opts[k].integer) {
            if (jsonx_opt_int(body, opts[k].name, path, &i, &present, err) < 0)
                return -1;
            v = present ? json_object_new_int64(i) : NULL;
        } else {
            if (jsonx_opt_number(body, opts[k].name, path, &v, err) < 0)
                return -1;
            v = json_object_get(v);
        }
        if (v)
            json_object_object_add(req->parts.options, opts[k].ollama ? opts[k].ollama : opts[k].name, v);
    }
    return 0;
}

int chat_max_tokens(struct json_object *body, const char *field, long long min, int *present,
                    struct chat_request *req, struct apierr *err)
{
    long long n;

    if (jsonx_opt_int(body, field, "", &n, present, err) < 0)
        return -1;
    if (!*present)
        return 0;
    if (n < min) {
        apierr_field(err, field, "must be at least %lld, got %lld", min, n);
        return -1;
    }
    req->max_tokens = n;
    json_object_object_add(req->parts.options, "num_predict", json_object_new_int64(n));
    return 0;
}

static void add_stop(struct chat_request *req, struct json_object *s)
{
    if (json_object_get_string_len(s) > 0)
        req->stop[req->n_stop++] = xstrndup(json_object_get_string(s), (size_t)json_object_get_string_len(s));
}

int chat_set_stop(struct chat_request *req, struct json_object *v, const char *field, size_t max,
                  struct apierr *err)
{
    char name[160];
    size_t n, bytes = 0;

    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        if (json_object_get_string_len(v) > CHAT_MAX_STOP_BYTES) {
            apierr_field(err, field, "a stop sequence may be at most %d bytes", CHAT_MAX_STOP_BYTES);
            return -1;
        }
        req->stop = xmalloc(sizeof *req->stop);
        add_stop(req, v);
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
    for (size_t i = 0; i < n; i++) {
        struct json_object *s = json_object_array_get_idx(v, i);

        if (!json_object_is_type(s, json_type_string)) {
            apierr_field(err, jsonx_path_idx(name, sizeof name, field, i), "expected a string, got %s",
                         jsonx_type_name(json_object_get_type(s)));
            return -1;
        }
        bytes += (size_t)json_object_get_string_len(s);
    }
    if (bytes > CHAT_MAX_STOP_BYTES) {
        apierr_field(err, field, "stop sequences may hold at most %d bytes in all, got %zu", CHAT_MAX_STOP_BYTES,
                     bytes);
        return -1;
    }
    req->stop = xcalloc(n ? n : 1, sizeof *req->stop);
    for (size_t i = 0; i < n; i++)
        add_stop(req, json_object_array_get_idx(v, i));
    return 0;
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

void chat_note_dropped(struct chat_request *req, const char *type)
{
    size_t n = strlen(req->dropped), len = strlen(type);

    for (const char *p = req->dropped; *p; p += strcspn(p, ","), p += *p == ',')
        if (strncmp(p, type, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return;
    if (n + len + 2 > sizeof req->dropped)
        return;
    snprintf(req->dropped + n, sizeof req->dropped - n, "%s%s", n ? "," : "", type);
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

/* ---- messages ---- */

int chat_each_block(struct json_object *content, const char *path, const char *kind, struct buf *text,
                    int (*each)(void *ctx, struct json_object *blk, const char *path), void *ctx, struct apierr *err)
{
    char name[200];
    size_t n;

    if (json_object_is_type(content, json_type_string)) {
        buf_append(text, json_object_get_string(content), (size_t)json_object_get_string_len(content));
        return 0;
    }
    if (!json_object_is_type(content, json_type_array)) {
        apierr_field(err, path, "expected a string or an array of %ss, got %s", kind,
                     jsonx_type_name(json_object_get_type(content)));
        return -1;
    }
    n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        struct json_object *blk = json_object_array_get_idx(content, i);

        jsonx_path_idx(name, sizeof name, path, i);
        if (!json_object_is_type(blk, json_type_object)) {
            apierr_field(err, name, "expected a %s, got %s", kind, jsonx_type_name(json_object_get_type(blk)));
            return -1;
        }
        if (each(ctx, blk, name) < 0)
            return -1;
    }
    return 0;
}

int chat_each_message(struct json_object *list, const char *field, int may_be_empty,
                      int (*one)(void *ctx, struct json_object *msg, const char *path), void *ctx, struct apierr *err)
{
    size_t n = json_object_array_length(list);
    char path[64];

    if (n == 0 && !may_be_empty) {
        apierr_field(err, field, "must contain at least one message");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *msg = json_object_array_get_idx(list, i);

        jsonx_path_idx(path, sizeof path, field, i);
        if (!json_object_is_type(msg, json_type_object)) {
            apierr_field(err, path, "expected an object, got %s", jsonx_type_name(json_object_get_type(msg)));
            return -1;
        }
        if (one(ctx, msg, path) < 0)
            return -1;
    }
    return 0;
}

int chat_role_and_content(struct json_object *msg, const char *path, const char **role, struct json_object **content,
                          char *content_path, size_t size, struct apierr *err)
{
    struct json_object *v;

    if (jsonx_req(msg, "role", json_type_string, path, &v, err) < 0)
        return -1;
    *role = json_object_get_string(v);
    *content = NULL;
    json_object_object_get_ex(msg, "content", content);
    jsonx_path(content_path, size, path, "content");
    return 0;
}

int chat_is_system_role(const char *role)
{
    return strcmp(role, "system") == 0 || strcmp(role, "developer") == 0;
}

void chat_msg_init(struct chat_msg *m, const char *role)
{
    *m = (struct chat_msg){ .role = role };
}

void chat_msg_free(struct chat_msg *m)
{
    struct json_object *owned[] = { m->images, m->calls, m->tool_name, m->tool_call_id };

    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        json_object_put(owned[i]);
    buf_free(&m->text);
    buf_free(&m->thinking);
    chat_msg_init(m, m->role);
}

void chat_join_line(struct buf *b, const char *s, size_t n)
{
    if (b->len > 0)
        buf_putc(b, '\n');
    buf_append(b, s, n);
}

void chat_join_text(struct buf *b, struct json_object *str)
{
    chat_join_line(b, json_object_get_string(str), (size_t)json_object_get_string_len(str));
}

void chat_join_texts(struct buf *b, struct json_object *list)
{
    size_t n = json_object_is_type(list, json_type_array) ? json_object_array_length(list) : 0;

    for (size_t i = 0; i < n; i++) {
        struct json_object *t;

        if (json_object_object_get_ex(json_object_array_get_idx(list, i), "text", &t) &&
            json_object_is_type(t, json_type_string))
            chat_join_text(b, t);
    }
}

void chat_msg_image(struct chat_msg *m, struct json_object *data)
{
    if (!m->images)
        m->images = json_object_new_array();
    json_object_array_add(m->images, json_object_get(data));
}

void chat_msg_call(struct chat_request *req, struct chat_msg *m, struct json_object *id, struct json_object *name,
                   struct json_object *arguments)
{
    struct json_object *call = json_object_new_object(), *fn = json_object_new_object();

    if (!m->calls)
        m->calls = json_object_new_array();
    if (id) {
        if (!req->call_names)
            req->call_names = json_object_new_object();
        json_object_object_add(req->call_names, json_object_get_string(id), json_object_get(name));
        json_object_object_add(call, "id", json_object_get(id));
    }
    json_object_object_add(fn, "name", json_object_get(name));
    /* Ollama decodes arguments as an object (a string is rejected); the client's key order is kept. */
    json_object_object_add(fn, "arguments", arguments);
    json_object_object_add(call, "function", fn);
    json_object_array_add(m->calls, call);
}

/* The message as Ollama takes it; m keeps nothing. */
static struct json_object *materialize(struct chat_msg *m)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "role", json_object_new_string(m->role));
    json_object_object_add(o, "content", jsonx_string(m->text.data ? m->text.data : "", m->text.len));
    if (m->thinking.len)
        json_object_object_add(o, "thinking", jsonx_string(m->thinking.data, m->thinking.len));
    if (m->images)
        json_object_object_add(o, "images", m->images);
    if (m->calls)
        json_object_object_add(o, "tool_calls", m->calls);
    if (m->tool_name)
        json_object_object_add(o, "tool_name", m->tool_name);
    if (m->tool_call_id)
        json_object_object_add(o, "tool_call_id", m->tool_call_id);
    m->images = m->calls = m->tool_name = m->tool_call_id = NULL;
    chat_msg_free(m);
    return o;
}

void chat_close_messages(struct chat_request *req)
{
    if (!req->has_last)
        return;
    json_object_array_add(req->parts.messages, materialize(&req->last));
    req->has_last = 0;
}

void chat_push(struct chat_request *req, struct chat_msg *m)
{
    chat_close_messages(req);
    req->last = *m;
    req->has_last = 1;
    chat_msg_init(m, m->role);
}

struct json_object *chat_call_name(const struct chat_request *req, const char *id)
{
    struct json_object *name = NULL;

    json_object_object_get_ex(req->call_names, id, &name);
    return name;
}

void chat_push_answer(struct chat_request *req, struct chat_msg *m, struct json_object *id)
{
    struct json_object *name = chat_call_name(req, json_object_get_string(id));

    if (name)
        m->tool_name = json_object_get(name);
    m->tool_call_id = json_object_get(id);
    chat_push(req, m);
}

struct chat_msg *chat_open(struct chat_request *req, const char *role)
{
    struct chat_msg m;

    if (!req->has_last || strcmp(req->last.role, role) != 0) {
        chat_msg_init(&m, role);
        chat_push(req, &m);
    }
    return &req->last;
}

/* Before the conversation starts, system text joins the one leading system message. Later it stays where
 * it stands -- moving it to the front would change the prompt prefix Ollama caches -- as text most chat
 * templates accept, since many reject a system message after the first: inside <system-reminder> tags,
 * merged into the user message before it, or as a user message of its own. The newest message stays
 * open as a buffer, so a long run of system entries costs time in proportion to their text. */
void chat_place_system(struct chat_request *req, const char *text, size_t len)
{
    size_t before = json_object_array_length(req->parts.messages);
    struct chat_msg m;

    if (len == 0)
        return;
    if (!req->has_last) {
        chat_msg_init(&m, "system");
        buf_append(&m.text, text, len);
        chat_push(req, &m);
    } else if (before == 0 && strcmp(req->last.role, "system") == 0) {
        if (req->last.text.len)
            buf_puts(&req->last.text, "\n\n");
        buf_append(&req->last.text, text, len);
    } else {
        if (strcmp(req->last.role, "user") != 0) {
            chat_msg_init(&m, "user");
            chat_push(req, &m);
        }
        if (req->last.text.len)
            buf_puts(&req->last.text, "\n\n");
        buf_puts(&req->last.text, "<system-reminder>\n");
        buf_append(&req->last.text, text, len);
        buf_puts(&req->last.text, "\n</system-reminder>");
    }
}

/* ---- tools ---- */

void chat_tools_init(struct chat_tools *t)
{
    memset(t, 0, sizeof *t);
    t->choice = CHAT_TOOLS_AUTO;
}

void chat_offer_tool(struct chat_request *req, struct chat_tools *t, const char *name,
                     struct json_object *description, struct json_object *parameters)
{
    struct json_object *tool, *fn;

    if (t->choice == CHAT_TOOLS_ONE && strcmp(t->only, name) != 0) {
        json_object_put(parameters);
        return;
    }
    t->found = 1;
    if (!parameters) {
        /* A function without parameters still needs a schema for Ollama's templates. */
        parameters = json_object_new_object();
        json_object_object_add(parameters, "type", json_object_new_string("object"));
        json_object_object_add(parameters, "properties", json_object_new_object());
    }
    tool = json_object_new_object();
    fn = json_object_new_object();
    json_object_object_add(tool, "type", json_object_new_string("function"));
    json_object_object_add(fn, "name", json_object_new_string(name));
    if (description)
        json_object_object_add(fn, "description", json_object_get(description));
    json_object_object_add(fn, "parameters", parameters);
    json_object_object_add(tool, "function", fn);
    if (!req->parts.tools)
        req->parts.tools = json_object_new_array();
    json_object_array_add(req->parts.tools, tool);
}

int chat_tools_done(struct chat_request *req, struct chat_tools *t, struct apierr *err)
{
    if (t->choice == CHAT_TOOLS_ONE && !t->found) {
        apierr_field(err, t->only_field, "no tool named \"%s\" in tools", t->only);
        return -1;
    }
    if (t->choice == CHAT_TOOLS_NONE) {
        /* No tools offered this turn; the history keeps its tool calls. */
        json_object_put(req->parts.tools);
        req->parts.tools = NULL;
    }
    return 0;
}

/* ---- the Ollama request ---- */

void chat_apply_facts(struct chat_request *req, const struct model_facts *f, const struct config *cfg)
{
    req->window = cfg->num_ctx;
    req->estimated_tokens = req->raw_estimate;
    if (!f->known)
        return;
    if (!f->can_think)
        chat_drop_think(req);
    else if (req->parts.think && json_object_is_type(req->parts.think, json_type_string) && !f->think_levels) {
        json_object_put(req->parts.think);
        req->parts.think = json_object_new_boolean(1);
    }
    if (f->context_length > 0 && (req->window == 0 || f->context_length < req->window))
        req->window = f->context_length;
    if (f->correction > 0)
        req->estimated_tokens = (long long)((double)req->raw_estimate * f->correction + 0.5);
}

int chat_check_window(const struct chat_request *req, struct apierr *err)
{
    if (req->window > 0 && req->estimated_tokens > req->window) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "prompt is too long: %lld tokens > %lld maximum",
                   req->estimated_tokens, req->window);
        /* OpenAI's code for it, which Codex answers by telling the user to start afresh. */
        err->code = "context_length_exceeded";
        return -1;
    }
    return 0;
}

/* ---- replies ---- */

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
        json_object_put(r->calls[i].args);
    }
    free(r->calls);
    json_object_put(r->logprobs);
    memset(r, 0, sizeof *r);
}

int chat_send(struct stream_state *st, const char *event)
{
    return wire_event(st->sink, event, st->data.data, st->data.len);
}

long long chat_sum_tokens(long long a, long long b)
{
    return a > LLONG_MAX - b ? LLONG_MAX : a + b;
}

/* The error types the APIs name alike; a dialect's own table names the others, and its APIERR_API entry
 * is its word for anything else. */
static const char *const common_error_types[APIERR_N] = {
    [APIERR_INVALID_REQUEST] = "invalid_request_error",
    [APIERR_AUTHENTICATION] = "authentication_error",
    [APIERR_PERMISSION] = "permission_error",
    [APIERR_NOT_FOUND] = "not_found_error",
    [APIERR_RATE_LIMIT] = "rate_limit_error",
    [APIERR_TIMEOUT] = "timeout_error",
    [APIERR_OVERLOADED] = "overloaded_error",
};

const char *chat_error_type(const struct dialect *d, enum apierr_kind kind)
{
    if (kind >= APIERR_N)
        kind = APIERR_API;
    if (d->error_types[kind])
        return d->error_types[kind];
    return common_error_types[kind] ? common_error_types[kind] : d->error_types[APIERR_API];
}

int chat_error_status(const struct dialect *d, const struct apierr *e)
{
    return e->kind == APIERR_OVERLOADED ? d->overloaded_status : e->status;
}
