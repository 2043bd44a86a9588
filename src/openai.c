/* openai.c -- the OpenAI Chat Completions dialect: request translation, the SSE stream machine, whole replies. */
#include "openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "models.h"


/* ---- request translation ---- */

struct xlate {
    struct chat_request *req;
    struct apierr *err;
};

int openai_data_uri_image(struct chat_msg *m, const char *url, const char *field, struct apierr *err)
{
    const char *comma;

    if (strncmp(url, "data:", 5) != 0) {
        apierr_field(err, field, "image URLs are not supported: Ollama takes images inline, as a "
                     "data:image/...;base64,... URI");
        return -1;
    }
    comma = strchr(url, ',');
    if (!comma || !strstr(url, ";base64")) {
        apierr_field(err, field, "expected a base64 data URI (data:image/png;base64,...)");
        return -1;
    }
    if (!m->images)
        m->images = json_object_new_array();
    json_object_array_add(m->images, json_object_new_string(comma + 1));
    return 0;
}

/* An image_url part: only data URIs reach Ollama, which takes bare base64. */
static int image_part(struct json_object *part, const char *path, struct chat_msg *m, struct apierr *err)
{
    struct json_object *iu, *url;
    char name[200];

    if (jsonx_req(part, "image_url", json_type_object, path, &iu, err) < 0)
        return -1;
    jsonx_path(name, sizeof name, path, "image_url");
    if (jsonx_req(iu, "url", json_type_string, name, &url, err) < 0)
        return -1;
    return openai_data_uri_image(m, json_object_get_string(url), jsonx_path(name, sizeof name, name, "url"), err);
}

struct parts {
    struct chat_msg *m;
    int images;                     /* the message may hold images */
    struct apierr *err;
};

static int content_part(void *ctx, struct json_object *part, const char *path)
{
    struct parts *p = ctx;
    struct json_object *t;
    const char *type;

    if (jsonx_req(part, "type", json_type_string, path, &t, p->err) < 0)
        return -1;
    type = json_object_get_string(t);
    if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
        if (jsonx_req(part, type, json_type_string, path, &t, p->err) < 0)
            return -1;
        chat_join_text(&p->m->text, t);
    } else if (strcmp(type, "image_url") == 0) {
        if (!p->images) {
            apierr_field(p->err, path, "images are only accepted in user messages");
            return -1;
        }
        return image_part(part, path, p->m, p->err);
    } else {
        apierr_field(p->err, path, "content part type \"%s\" is not supported", type);
        return -1;
    }
    return 0;
}

/* Content as a string, null, or parts: text parts joined by newlines; images collected into m when it
 * may hold them. */
static int content_text(struct json_object *content, const char *path, struct chat_msg *m, int images,
                        struct apierr *err)
{
    struct parts p = { m, images, err };

    return content ? chat_each_block(content, path, "content part", &m->text, content_part, &p, err) : 0;
}

struct json_object *openai_arguments(struct chat_request *req, struct json_object *text, const char *field,
                                     struct apierr *err)
{
    struct json_object *args;
    struct apierr perr;

    /* Ollama decodes arguments as an object; OpenAI sends a JSON string. */
    if (!text || json_object_get_string_len(text) == 0)
        return json_object_new_object();
    args = jsonx_parse_counted(json_object_get_string(text), (size_t)json_object_get_string_len(text),
                               req->parse_budget, &req->parse_used, &perr);
    if (!args && perr.status == 413) {
        *err = perr;
        return NULL;
    }
    if (!args || !json_object_is_type(args, json_type_object)) {
        json_object_put(args);
        apierr_field(err, field, "the tool call's arguments must be a JSON object encoded as a string");
        return NULL;
    }
    return args;
}

static int assistant_tool_calls(struct xlate *x, struct json_object *msg, const char *path, struct chat_msg *m)
{
    struct json_object *list;
    char name[200], fpath[220];
    size_t n;

    if (jsonx_opt(msg, "tool_calls", json_type_array, path, &list, x->err) < 0)
        return -1;
    n = list ? json_object_array_length(list) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *tc = json_object_array_get_idx(list, i), *id, *fn, *fname, *fargs, *args;

        snprintf(name, sizeof name, "%s.tool_calls.%zu", path, i);
        if (!json_object_is_type(tc, json_type_object)) {
            apierr_field(x->err, name, "expected an object, got %s", jsonx_type_name(json_object_get_type(tc)));
            return -1;
        }
        if (jsonx_opt(tc, "id", json_type_string, name, &id, x->err) < 0 ||
            jsonx_req(tc, "function", json_type_object, name, &fn, x->err) < 0)
            return -1;
        jsonx_path(fpath, sizeof fpath, name, "function");
        if (jsonx_req(fn, "name", json_type_string, fpath, &fname, x->err) < 0 ||
            jsonx_opt(fn, "arguments", json_type_string, fpath, &fargs, x->err) < 0)
            return -1;
        args = openai_arguments(x->req, fargs, jsonx_path(fpath, sizeof fpath, fpath, "arguments"), x->err);
        if (!args)
            return -1;
        chat_msg_call(x->req, m, id, fname, args);
    }
    return 0;
}

static int assistant_message(struct xlate *x, struct json_object *msg, struct json_object *content, const char *path,
                             const char *cpath, struct chat_msg *m)
{
    struct json_object *v;

    if (content_text(content, cpath, m, 0, x->err) < 0 || assistant_tool_calls(x, msg, path, m) < 0 ||
        jsonx_opt(msg, "reasoning_content", json_type_string, path, &v, x->err) < 0)
        return -1;
    if (!v && jsonx_opt(msg, "reasoning", json_type_string, path, &v, x->err) < 0)
        return -1;
    if (v)
        buf_append(&m->thinking, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    return 0;
}

static int tool_message(struct xlate *x, struct json_object *msg, struct json_object *content, const char *path,
                        const char *cpath, int legacy, struct chat_msg *m)
{
    struct json_object *id = NULL, *name = NULL;

    if (content_text(content, cpath, m, 0, x->err) < 0)
        return -1;
    if (!legacy) {
        if (jsonx_req(msg, "tool_call_id", json_type_string, path, &id, x->err) < 0)
            return -1;
        name = chat_call_name(x->req, json_object_get_string(id));
        m->tool_call_id = json_object_get(id);
    }
    if (!name && jsonx_opt(msg, "name", json_type_string, path, &name, x->err) < 0)
        return -1;
    if (name)
        m->tool_name = json_object_get(name);
    return 0;
}

/* Only an assistant's turn that calls tools may say nothing; any other message without content is a
 * mistake the API refuses, not an empty turn. (A role that is none of these is named as such instead.) */
static int content_missing(struct json_object *msg, const char *role, struct json_object *content)
{
    struct json_object *v = NULL;

    if (content)
        return 0;
    if (strcmp(role, "assistant") == 0) {
        if (!json_object_object_get_ex(msg, "tool_calls", &v) || !v)
            json_object_object_get_ex(msg, "function_call", &v);
        return v == NULL;
    }
    return chat_is_system_role(role) || strcmp(role, "user") == 0 || strcmp(role, "tool") == 0 ||
           strcmp(role, "function") == 0;
}

static int translate_message(void *ctx, struct json_object *msg, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *content;
    struct chat_msg m;
    const char *role;
    char name[160];
    int rc = -1;

    chat_msg_init(&m, "user");
    if (chat_role_and_content(msg, path, &role, &content, name, sizeof name, x->err) < 0)
        goto out;
    if (content_missing(msg, role, content)) {
        apierr_field(x->err, name, "Field required");
        goto out;
    }
    if (chat_is_system_role(role)) {
        if (content_text(content, name, &m, 0, x->err) < 0)
            goto out;
        chat_place_system(x->req, m.text.data, m.text.len);
        rc = 0;
        goto out;
    }
    if (strcmp(role, "user") == 0) {
        rc = content_text(content, name, &m, 1, x->err);
    } else if (strcmp(role, "assistant") == 0) {
        m.role = "assistant";
        rc = assistant_message(x, msg, content, path, name, &m);
    } else if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) {
        m.role = "tool";
        rc = tool_message(x, msg, content, path, name, role[0] == 'f', &m);
    } else {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "role"),
                     "expected \"system\", \"developer\", \"user\", \"assistant\" or \"tool\", got \"%s\"", role);
    }
    if (rc == 0)
        chat_push(x->req, &m);
out:
    chat_msg_free(&m);
    return rc;
}

/* A named tool: {"function": {"name"}} in Chat Completions; {"type": "function" or "custom", "name"} in
 * the Responses API, where a hosted tool's type or a list of allowed tools offers them all. */
static int named_tool_choice(struct json_object *choice, struct chat_tools *t, struct apierr *err)
{
    struct json_object *fn, *v;
    const char *type = NULL;

    if (jsonx_opt(choice, "function", json_type_object, "tool_choice", &fn, err) < 0 ||
        jsonx_opt_string(choice, "type", "tool_choice", &type, err) < 0)
        return -1;
    if (fn) {
        if (jsonx_req(fn, "name", json_type_string, "tool_choice.function", &v, err) < 0)
            return -1;
        t->only_field = "tool_choice.function.name";
    } else if (type && (strcmp(type, "function") == 0 || strcmp(type, "custom") == 0) &&
               json_object_object_get_ex(choice, "name", &v)) {
        if (jsonx_req(choice, "name", json_type_string, "tool_choice", &v, err) < 0)
            return -1;
        t->only_field = "tool_choice.name";
    } else {
        return 0;
    }
    t->choice = CHAT_TOOLS_ONE;
    t->only = json_object_get_string(v);
    return 0;
}

int openai_tool_choice(struct json_object *body, struct chat_tools *t, struct apierr *err)
{
    struct json_object *choice = NULL;

    json_object_object_get_ex(body, "tool_choice", &choice);
    if (!choice)
        return 0;
    if (json_object_is_type(choice, json_type_string)) {
        const char *c = json_object_get_string(choice);

        if (strcmp(c, "none") == 0)
            t->choice = CHAT_TOOLS_NONE;
        else if (strcmp(c, "required") == 0)
            t->choice = CHAT_TOOLS_REQUIRED;
        else if (strcmp(c, "auto") != 0) {
            apierr_field(err, "tool_choice", "expected \"none\", \"auto\", \"required\" or an object, got \"%s\"", c);
            return -1;
        }
        return 0;
    }
    if (!json_object_is_type(choice, json_type_object)) {
        apierr_field(err, "tool_choice", "expected a string or an object, got %s",
                     jsonx_type_name(json_object_get_type(choice)));
        return -1;
    }
    return named_tool_choice(choice, t, err);
}

static int translate_tools(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *tools;
    struct chat_tools t;
    char path[64], fpath[80];
    size_t n;

    chat_tools_init(&t);
    if (jsonx_opt(body, "tools", json_type_array, "", &tools, err) < 0 ||
        openai_tool_choice(body, &t, err) < 0)
        return -1;
    if (!tools)
        return 0;
    n = json_object_array_length(tools);
    for (size_t i = 0; i < n; i++) {
        struct json_object *tool = json_object_array_get_idx(tools, i), *fn, *name, *desc, *params;
        const char *type;

        snprintf(path, sizeof path, "tools.%zu", i);
        if (!json_object_is_type(tool, json_type_object)) {
            apierr_field(err, path, "expected an object, got %s", jsonx_type_name(json_object_get_type(tool)));
            return -1;
        }
        if (jsonx_opt_string(tool, "type", path, &type, err) < 0)
            return -1;
        if (type && strcmp(type, "function") != 0) {
            apierr_field(err, jsonx_path(fpath, sizeof fpath, path, "type"),
                         "only \"function\" tools are supported, got \"%s\"", type);
            return -1;
        }
        if (jsonx_req(tool, "function", json_type_object, path, &fn, err) < 0)
            return -1;
        jsonx_path(fpath, sizeof fpath, path, "function");
        if (jsonx_req(fn, "name", json_type_string, fpath, &name, err) < 0 ||
            jsonx_opt(fn, "description", json_type_string, fpath, &desc, err) < 0 ||
            jsonx_opt(fn, "parameters", json_type_object, fpath, &params, err) < 0)
            return -1;
        chat_offer_tool(req, &t, json_object_get_string(name), desc, params ? json_object_get(params) : NULL);
    }
    return chat_tools_done(req, &t, err);
}

static int translate_options(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    static const struct chat_option options[] = {
        { .name = "temperature" }, { .name = "top_p" }, { .name = "frequency_penalty" }, { .name = "presence_penalty" },
        { .name = "seed", .integer = 1 },
    };
    struct json_object *v = NULL;
    int present;

    if (chat_max_tokens(body, "max_completion_tokens", 1, &present, req, err) < 0 ||
        (!present && chat_max_tokens(body, "max_tokens", 1, &present, req, err) < 0) ||
        chat_copy_options(body, "", options, sizeof options / sizeof *options, req, err) < 0)
        return -1;
    json_object_object_get_ex(body, "stop", &v);
    return chat_set_stop(req, v, "stop", OPENAI_MAX_STOP, err);
}

int openai_format(struct json_object *rf, const char *field, struct chat_request *req, struct apierr *err)
{
    struct json_object *v, *schema;
    const char *type;
    char name[96], inner[112];

    if (jsonx_req(rf, "type", json_type_string, field, &v, err) < 0)
        return -1;
    type = json_object_get_string(v);
    if (strcmp(type, "json_object") == 0) {
        req->parts.format = json_object_new_string("json");
    } else if (strcmp(type, "json_schema") == 0) {
        /* Chat Completions nests the schema under json_schema; the Responses API does not. */
        if (strcmp(field, "response_format") == 0) {
            if (jsonx_req(rf, "json_schema", json_type_object, field, &rf, err) < 0)
                return -1;
            field = jsonx_path(inner, sizeof inner, field, "json_schema");
        }
        if (jsonx_req(rf, "schema", json_type_object, field, &schema, err) < 0)
            return -1;
        req->parts.format = json_object_get(schema);
    } else if (strcmp(type, "text") != 0) {
        apierr_field(err, jsonx_path(name, sizeof name, field, "type"),
                     "expected \"text\", \"json_object\" or \"json_schema\", got \"%s\"", type);
        return -1;
    }
    return 0;
}

int openai_reasoning_effort(const char *effort, const char *field, struct chat_request *req, struct apierr *err)
{
    if (strcmp(effort, "none") == 0)
        req->parts.think = json_object_new_boolean(0);
    else if (strcmp(effort, "minimal") == 0 || strcmp(effort, "low") == 0)
        req->parts.think = json_object_new_string("low");
    else if (strcmp(effort, "medium") == 0)
        req->parts.think = json_object_new_string("medium");
    else if (strcmp(effort, "high") == 0 || strcmp(effort, "xhigh") == 0 || strcmp(effort, "max") == 0)
        req->parts.think = json_object_new_string("high");
    else {
        apierr_field(err, field, "expected \"none\", \"minimal\", \"low\", \"medium\" or \"high\", got \"%s\"", effort);
        return -1;
    }
    return 0;
}

/* Fields Ollama has no use for are still checked, as OpenAI checks them. */
static const struct chat_field ignored_fields[] = {
    { "parallel_tool_calls", json_type_boolean }, { "store", json_type_boolean },
    { "user", json_type_string }, { "service_tier", json_type_string }, { "safety_identifier", json_type_string },
    { "prompt_cache_key", json_type_string }, { "metadata", json_type_object }, { "logit_bias", json_type_object },
};

/* logprobs and top_logprobs reach Ollama as its own top-level fields of the same names; OpenAI allows at most
 * 20 alternatives, as Ollama does. */
static int translate_logprobs(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    int present;

    if (jsonx_opt_bool(body, "logprobs", "", &req->logprobs, err) < 0 ||
        jsonx_opt_int(body, "top_logprobs", "", &req->top_logprobs, &present, err) < 0)
        return -1;
    if (present && (req->top_logprobs < 0 || req->top_logprobs > 20)) {
        apierr_field(err, "top_logprobs", "expected an integer from 0 to 20, got %lld", req->top_logprobs);
        return -1;
    }
    return 0;
}

static int openai_translate(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                            struct chat_request *req, struct apierr *err)
{
    struct json_object *messages, *so, *rf;
    struct xlate x = { req, err };
    const char *effort;
    long long n_choices;
    int present;

    if (chat_preamble(call, body, cfg, req, err) < 0 ||
        jsonx_req(body, "messages", json_type_array, "", &messages, err) < 0 ||
        jsonx_opt_int(body, "n", "", &n_choices, &present, err) < 0 ||
        jsonx_opt(body, "stream_options", json_type_object, "", &so, err) < 0)
        return -1;
    if (present && n_choices != 1) {
        apierr_field(err, "n", "only n=1 is supported: Ollama generates one choice per request");
        return -1;
    }
    if ((so && jsonx_opt_bool(so, "include_usage", "stream_options", &req->include_usage, err) < 0) ||
        chat_check_fields(body, ignored_fields, sizeof ignored_fields / sizeof *ignored_fields, err) < 0 ||
        translate_logprobs(body, req, err) < 0 || translate_options(body, req, err) < 0 ||
        jsonx_opt(body, "response_format", json_type_object, "", &rf, err) < 0 ||
        (rf && openai_format(rf, "response_format", req, err) < 0) ||
        jsonx_opt_string(body, "reasoning_effort", "", &effort, err) < 0 ||
        (effort && openai_reasoning_effort(effort, "reasoning_effort", req, err) < 0) ||
        translate_tools(body, req, err) < 0)
        return -1;
    return chat_each_message(messages, "messages", 0, translate_message, &x, err);
}

/* ---- the stream machine ---- */

struct ostream {
    struct stream_state out;
    int n_tools;
    struct buf head;               /* what every chunk begins with, written once */
};

static void ostream_free(void *st)
{
    buf_free(&((struct ostream *)st)->head);
}

static void chunk_head(struct ostream *s)
{
    struct buf *h = &s->head;

    if (!h->len) {
        buf_puts(h, "{\"id\":");
        jsonx_put_string(h, s->out.req->id, strlen(s->out.req->id));
        buf_puts(h, ",\"object\":\"chat.completion.chunk\",\"created\":");
        buf_put_int(h, s->out.req->created);
        buf_puts(h, ",\"model\":");
        jsonx_put_string(h, s->out.req->client_model, strlen(s->out.req->client_model));
        buf_puts(h, ",\"system_fingerprint\":\"fp_ollama_fcgi\",\"choices\":");
    }
    buf_reset(&s->out.data);
    buf_append(&s->out.data, h->data, h->len);
}

static int ostream_begin(void *st)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_puts(&s->out.data, "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
             "\"finish_reason\":null}]}");
    return chat_send(&s->out, NULL);
}

/* "logprobs": the log probabilities of the tokens not yet sent, as Ollama's own OpenAI layer gives them
 * ({"content": [...]}), or null; once written they are sent. */
static void put_logprobs(struct ostream *s)
{
    struct json_object *kept = s->out.logprobs;
    size_t n = kept ? json_object_array_length(kept) : 0;

    buf_puts(&s->out.data, "\"logprobs\":");
    if (!n) {
        buf_puts(&s->out.data, "null");
        return;
    }
    buf_puts(&s->out.data, "{\"content\":");
    jsonx_write(&s->out.data, kept);
    buf_putc(&s->out.data, '}');
    json_object_array_del_idx(kept, 0, n);
}

static int ostream_delta(void *st, enum chat_part part, const char *str, size_t n)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_puts(&s->out.data, part == CHAT_THINKING ? "[{\"index\":0,\"delta\":{\"reasoning_content\":"
                                                 : "[{\"index\":0,\"delta\":{\"content\":");
    jsonx_put_string(&s->out.data, str, n);
    buf_puts(&s->out.data, "},");
    put_logprobs(s);
    buf_puts(&s->out.data, ",\"finish_reason\":null}]}");
    return chat_send(&s->out, NULL);
}

/* OpenAI's arguments are the object's JSON text, in a string. */
static void put_arguments(struct buf *b, struct json_object *args)
{
    struct buf text;

    buf_init(&text);
    jsonx_write(&text, args);
    jsonx_put_string(b, text.data, text.len);
    buf_free(&text);
}

static int ostream_tool_call(void *st, const char *id, const char *name, struct json_object *args)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_printf(&s->out.data, "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":", s->n_tools++);
    jsonx_put_string(&s->out.data, id, strlen(id));
    buf_puts(&s->out.data, ",\"type\":\"function\",\"function\":{\"name\":");
    jsonx_put_string(&s->out.data, name, strlen(name));
    buf_puts(&s->out.data, ",\"arguments\":");
    put_arguments(&s->out.data, args);
    buf_puts(&s->out.data, "}}]},\"logprobs\":null,\"finish_reason\":null}]}");
    return chat_send(&s->out, NULL);
}

static const char *finish_reason(const char *reason)
{
    if (strcmp(reason, "length") == 0)
        return "length";
    if (strcmp(reason, "tool_calls") == 0)
        return "tool_calls";
    return "stop";
}

static void usage_json(struct buf *b, const struct chat_finish *f)
{
    buf_printf(b, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld", f->input_tokens,
               f->output_tokens, chat_sum_tokens(f->input_tokens, f->output_tokens));
    /* Only from an Ollama that says what its cache read; an older one's usage stays as it was. */
    if (f->cached_tokens >= 0)
        buf_printf(b, ",\"prompt_tokens_details\":{\"cached_tokens\":%lld}", f->cached_tokens);
    buf_putc(b, '}');
}

static int ostream_finish(void *st, const struct chat_finish *f)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_puts(&s->out.data, "[{\"index\":0,\"delta\":{},");
    put_logprobs(s);
    buf_printf(&s->out.data, ",\"finish_reason\":\"%s\"}]}", finish_reason(f->reason));
    if (chat_send(&s->out, NULL) < 0)
        return -1;
    if (s->out.req->include_usage) {
        chunk_head(s);
        buf_puts(&s->out.data, "[],\"usage\":");
        usage_json(&s->out.data, f);
        buf_puts(&s->out.data, "}");
        if (chat_send(&s->out, NULL) < 0)
            return -1;
    }
    return wire_end(s->out.sink);
}

/* Where OpenAI's names differ from the ones every dialect shares (chat.c). */
const char *const openai_error_types[APIERR_N] = {
    [APIERR_PERMISSION] = "permission_denied",
    [APIERR_TOO_LARGE] = "invalid_request_error",
    [APIERR_API] = "server_error",
};

void openai_error_json(const struct dialect *d, const struct apierr *e, struct buf *out)
{
    buf_puts(out, "{\"message\":");
    jsonx_put_string(out, e->message, strlen(e->message));
    buf_puts(out, ",\"type\":\"");
    buf_puts(out, chat_error_type(d, e->kind));
    buf_puts(out, "\",\"param\":");
    if (e->param[0])
        jsonx_put_string(out, e->param, strlen(e->param));
    else
        buf_puts(out, "null");
    buf_puts(out, ",\"code\":");
    if (e->code)
        jsonx_put_string(out, e->code, strlen(e->code));
    else
        buf_puts(out, "null");
    buf_putc(out, '}');
}

void openai_error_body(const struct dialect *d, const struct apierr *e, const char *request_id, struct buf *out)
{
    (void)request_id;
    buf_puts(out, "{\"error\":");
    openai_error_json(d, e, out);
    buf_putc(out, '}');
}

/* A failure after the stream began: an error frame, and no [DONE] pretending success. */
static int ostream_error(void *st, const struct apierr *e)
{
    struct ostream *s = st;

    buf_reset(&s->out.data);
    openai_error_body(&openai_dialect, e, NULL, &s->out.data);
    return chat_send(&s->out, NULL);
}

static int ostream_ping(void *st)
{
    return wire_keepalive(((struct ostream *)st)->out.sink);
}

static const struct stream_ops ostream_ops = {
    .begin = ostream_begin, .delta = ostream_delta, .tool_call = ostream_tool_call,
    .finish = ostream_finish, .error = ostream_error, .ping = ostream_ping,
};

/* ---- whole replies ---- */

/* A new string: the arguments' JSON text. */
static struct json_object *arguments_string(struct json_object *args)
{
    struct json_object *o;
    struct buf text;

    buf_init(&text);
    jsonx_write(&text, args);
    o = jsonx_string(text.data ? text.data : "", text.len);
    buf_free(&text);
    return o;
}

static void openai_reply(const struct chat_request *req, const struct chat_reply *r, struct buf *out)
{
    struct json_object *o = json_object_new_object(), *choices = json_object_new_array(), *choice, *msg, *usage;

    json_object_object_add(o, "id", json_object_new_string(req->id));
    json_object_object_add(o, "object", json_object_new_string("chat.completion"));
    json_object_object_add(o, "created", json_object_new_int64(req->created));
    json_object_object_add(o, "model", json_object_new_string(req->client_model));
    json_object_object_add(o, "system_fingerprint", json_object_new_string("fp_ollama_fcgi"));
    choice = json_object_new_object();
    msg = json_object_new_object();
    json_object_object_add(choice, "index", json_object_new_int(0));
    json_object_object_add(msg, "role", json_object_new_string("assistant"));
    json_object_object_add(msg, "content",
                           r->text.len || r->n_calls == 0 ? jsonx_string(r->text.data ? r->text.data : "", r->text.len)
                                                          : NULL);
    if (r->thinking.len)
        json_object_object_add(msg, "reasoning_content", jsonx_string(r->thinking.data, r->thinking.len));
    if (r->n_calls) {
        struct json_object *calls = json_object_new_array();

        for (size_t i = 0; i < r->n_calls; i++) {
            struct json_object *call = json_object_new_object(), *fn = json_object_new_object();

            json_object_object_add(call, "id", json_object_new_string(r->calls[i].id));
            json_object_object_add(call, "type", json_object_new_string("function"));
            json_object_object_add(fn, "name", json_object_new_string(r->calls[i].name));
            json_object_object_add(fn, "arguments", arguments_string(r->calls[i].args));
            json_object_object_add(call, "function", fn);
            json_object_array_add(calls, call);
        }
        json_object_object_add(msg, "tool_calls", calls);
    }
    json_object_object_add(choice, "message", msg);
    if (r->logprobs && json_object_array_length(r->logprobs)) {
        struct json_object *logprobs = json_object_new_object();

        json_object_object_add(logprobs, "content", json_object_get(r->logprobs));
        json_object_object_add(choice, "logprobs", logprobs);
    } else {
        json_object_object_add(choice, "logprobs", NULL);
    }
    json_object_object_add(choice, "finish_reason", json_object_new_string(finish_reason(r->finish.reason)));
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    usage = json_object_new_object();
    json_object_object_add(usage, "prompt_tokens", json_object_new_int64(r->finish.input_tokens));
    json_object_object_add(usage, "completion_tokens", json_object_new_int64(r->finish.output_tokens));
    json_object_object_add(usage, "total_tokens",
                           json_object_new_int64(chat_sum_tokens(r->finish.input_tokens, r->finish.output_tokens)));
    if (r->finish.cached_tokens >= 0) {
        struct json_object *details = json_object_new_object();

        json_object_object_add(details, "cached_tokens", json_object_new_int64(r->finish.cached_tokens));
        json_object_object_add(usage, "prompt_tokens_details", details);
    }
    json_object_object_add(o, "usage", usage);
    jsonx_write(out, o);
    json_object_put(o);
}

static struct json_object *model_json(struct json_object *m)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "id", json_object_new_string(models_name(m)));
    json_object_object_add(o, "object", json_object_new_string("model"));
    json_object_object_add(o, "created", json_object_new_int64(models_unix_time(models_modified(m))));
    json_object_object_add(o, "owned_by", json_object_new_string("ollama"));
    return o;
}

/* {"object":"list","data":[...]}, or one model. */
static struct json_object *openai_models(struct json_object *tags, const char *id)
{
    struct json_object *data = models_each(tags, id, model_json), *o;

    if (id || !data)
        return data;
    o = json_object_new_object();
    json_object_object_add(o, "object", json_object_new_string("list"));
    json_object_object_add(o, "data", data);
    return o;
}

static const char *const bases[] = { "/v1", "", NULL };
static const char *const key_headers[] = { "HTTP_X_API_KEY", NULL };

static const struct dialect_route routes[] = {
    { .method = "POST", .path = "/chat/completions", .kind = ROUTE_CHAT, .stream = ROUTE_STREAM_BODY },
    { .method = "GET", .path = "/models", .kind = ROUTE_MODELS },
    { .method = "GET", .path = "/models/{model}", .kind = ROUTE_MODELS },
    { 0 },
};

const struct dialect openai_dialect = {
    .name = "openai", .bases = bases, .routes = routes, .key_headers = key_headers, .wire = &wire_sse_done,
    .id_prefix = "chatcmpl-", .tool_prefix = "call_", .overloaded_status = 503, .error_types = openai_error_types,
    .translate = openai_translate, .state_size = sizeof(struct ostream), .ops = &ostream_ops,
    .state_free = ostream_free, .reply = openai_reply,
    .models = openai_models, .error_body = openai_error_body,
};
