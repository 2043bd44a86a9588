/* openai.c -- the OpenAI Chat Completions dialect: request translation, the SSE stream machine, whole replies. */
#include "openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"

#define MAX_STOP 16

/* ---- request translation ---- */

struct xlate {
    struct json_object *out;        /* borrowed: req->parts.messages */
    struct json_object *tool_names; /* owned: tool_call id -> function name */
    struct apierr *err;
};

/* An image_url part: only data URIs reach Ollama, which takes bare base64. */
static int image_part(struct json_object *part, const char *path, struct json_object **images, struct apierr *err)
{
    struct json_object *iu, *url;
    const char *u, *comma;
    char name[200];

    if (jsonx_req(part, "image_url", json_type_object, path, &iu, err) < 0)
        return -1;
    jsonx_path(name, sizeof name, path, "image_url");
    if (jsonx_req(iu, "url", json_type_string, name, &url, err) < 0)
        return -1;
    u = json_object_get_string(url);
    jsonx_path(name, sizeof name, name, "url");
    if (strncmp(u, "data:", 5) != 0) {
        apierr_field(err, name, "image URLs are not supported: Ollama takes images inline, as a "
                     "data:image/...;base64,... URI");
        return -1;
    }
    comma = strchr(u, ',');
    if (!comma || !strstr(u, ";base64")) {
        apierr_field(err, name, "expected a base64 data URI (data:image/png;base64,...)");
        return -1;
    }
    if (!*images)
        *images = json_object_new_array();
    json_object_array_add(*images, json_object_new_string(comma + 1));
    return 0;
}

/* Content as a string, null, or parts: text parts joined by newlines, images collected. */
static int content_text(struct json_object *content, const char *path, struct buf *text,
                        struct json_object **images, struct apierr *err)
{
    char name[200];
    size_t n;

    if (!content)
        return 0;
    if (json_object_is_type(content, json_type_string)) {
        buf_append(text, json_object_get_string(content), (size_t)json_object_get_string_len(content));
        return 0;
    }
    if (!json_object_is_type(content, json_type_array)) {
        apierr_field(err, path, "expected a string or an array of content parts, got %s",
                     jsonx_type_name(json_object_get_type(content)));
        return -1;
    }
    n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        struct json_object *part = json_object_array_get_idx(content, i), *t;
        const char *type;

        jsonx_path_idx(name, sizeof name, path, i);
        if (!json_object_is_type(part, json_type_object)) {
            apierr_field(err, name, "expected a content part, got %s", jsonx_type_name(json_object_get_type(part)));
            return -1;
        }
        if (jsonx_req(part, "type", json_type_string, name, &t, err) < 0)
            return -1;
        type = json_object_get_string(t);
        if (strcmp(type, "text") == 0 || strcmp(type, "refusal") == 0) {
            if (jsonx_req(part, type, json_type_string, name, &t, err) < 0)
                return -1;
            chat_join_text(text, t);
        } else if (strcmp(type, "image_url") == 0) {
            if (!images) {
                apierr_field(err, name, "images are only accepted in user messages");
                return -1;
            }
            if (image_part(part, name, images, err) < 0)
                return -1;
        } else {
            apierr_field(err, name, "content part type \"%s\" is not supported", type);
            return -1;
        }
    }
    return 0;
}

static int assistant_tool_calls(struct xlate *x, struct json_object *msg, const char *path, struct json_object **calls)
{
    struct json_object *list;
    char name[200], fpath[220];
    size_t n;

    if (jsonx_opt(msg, "tool_calls", json_type_array, path, &list, x->err) < 0)
        return -1;
    if (!list || json_object_array_length(list) == 0)
        return 0;
    n = json_object_array_length(list);
    *calls = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct json_object *tc = json_object_array_get_idx(list, i), *id, *fn, *fname, *fargs, *args, *call, *ofn;
        struct apierr perr;

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
        /* Ollama decodes arguments as an object; OpenAI sends a JSON string. */
        if (!fargs || json_object_get_string_len(fargs) == 0) {
            args = json_object_new_object();
        } else {
            args = jsonx_parse(json_object_get_string(fargs), (size_t)json_object_get_string_len(fargs), &perr);
            if (!args || !json_object_is_type(args, json_type_object)) {
                json_object_put(args);
                apierr_field(x->err, jsonx_path(fpath, sizeof fpath, fpath, "arguments"),
                             "the tool call's arguments must be a JSON object encoded as a string");
                return -1;
            }
        }
        call = json_object_new_object();
        ofn = json_object_new_object();
        if (id) {
            json_object_object_add(call, "id", json_object_get(id));
            json_object_object_add(x->tool_names, json_object_get_string(id), json_object_get(fname));
        }
        json_object_object_add(ofn, "name", json_object_get(fname));
        json_object_object_add(ofn, "arguments", args);
        json_object_object_add(call, "function", ofn);
        json_object_array_add(*calls, call);
    }
    return 0;
}

static int translate_message(struct xlate *x, struct json_object *msg, size_t idx)
{
    struct json_object *v, *content = NULL, *images = NULL, *calls = NULL, *m, *id = NULL, *name_obj = NULL;
    struct buf text, thinking;
    const char *role, *out_role;
    char path[64], name[160];
    int rc = -1;

    buf_init(&text);
    buf_init(&thinking);
    snprintf(path, sizeof path, "messages.%zu", idx);
    if (!json_object_is_type(msg, json_type_object)) {
        apierr_field(x->err, path, "expected an object, got %s", jsonx_type_name(json_object_get_type(msg)));
        goto out;
    }
    if (jsonx_req(msg, "role", json_type_string, path, &v, x->err) < 0)
        goto out;
    role = json_object_get_string(v);
    json_object_object_get_ex(msg, "content", &content);
    jsonx_path(name, sizeof name, path, "content");
    if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
        if (content_text(content, name, &text, NULL, x->err) < 0)
            goto out;
        chat_place_system(x->out, text.data ? text.data : "", text.len);
        rc = 0;
        goto out;
    } else if (strcmp(role, "user") == 0) {
        out_role = "user";
        if (content_text(content, name, &text, &images, x->err) < 0)
            goto out;
    } else if (strcmp(role, "assistant") == 0) {
        out_role = "assistant";
        if (content_text(content, name, &text, NULL, x->err) < 0 ||
            assistant_tool_calls(x, msg, path, &calls) < 0)
            goto out;
        if (jsonx_opt(msg, "reasoning_content", json_type_string, path, &v, x->err) < 0)
            goto out;
        if (!v && jsonx_opt(msg, "reasoning", json_type_string, path, &v, x->err) < 0)
            goto out;
        if (v)
            buf_append(&thinking, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    } else if (strcmp(role, "tool") == 0 || strcmp(role, "function") == 0) {
        out_role = "tool";
        if (content_text(content, name, &text, NULL, x->err) < 0)
            goto out;
        if (role[0] == 't') {
            if (jsonx_req(msg, "tool_call_id", json_type_string, path, &id, x->err) < 0)
                goto out;
            json_object_object_get_ex(x->tool_names, json_object_get_string(id), &name_obj);
        }
        if (!name_obj && jsonx_opt(msg, "name", json_type_string, path, &name_obj, x->err) < 0)
            goto out;
    } else {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "role"),
                     "expected \"system\", \"developer\", \"user\", \"assistant\" or \"tool\", got \"%s\"", role);
        goto out;
    }
    m = chat_message(out_role);
    json_object_object_add(m, "content", jsonx_string(text.data ? text.data : "", text.len));
    if (thinking.len)
        json_object_object_add(m, "thinking", jsonx_string(thinking.data, thinking.len));
    if (images)
        json_object_object_add(m, "images", images);
    if (calls)
        json_object_object_add(m, "tool_calls", calls);
    if (name_obj)
        json_object_object_add(m, "tool_name", json_object_get(name_obj));
    if (id)
        json_object_object_add(m, "tool_call_id", json_object_get(id));
    images = calls = NULL;
    json_object_array_add(x->out, m);
    rc = 0;
out:
    json_object_put(images);
    json_object_put(calls);
    buf_free(&text);
    buf_free(&thinking);
    return rc;
}

/* A function without parameters still needs a schema for Ollama's templates. */
static struct json_object *empty_parameters(void)
{
    struct json_object *p = json_object_new_object();

    json_object_object_add(p, "type", json_object_new_string("object"));
    json_object_object_add(p, "properties", json_object_new_object());
    return p;
}

static int translate_tools(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *tools, *choice = NULL, *v;
    const char *only = NULL;
    char path[64], fpath[80];
    size_t n;
    int none = 0, found = 0;

    if (jsonx_opt(body, "tools", json_type_array, "", &tools, err) < 0)
        return -1;
    json_object_object_get_ex(body, "tool_choice", &choice);
    if (choice && json_object_is_type(choice, json_type_string)) {
        const char *c = json_object_get_string(choice);

        if (strcmp(c, "none") == 0)
            none = 1;
        else if (strcmp(c, "auto") != 0 && strcmp(c, "required") != 0) {
            apierr_field(err, "tool_choice", "expected \"none\", \"auto\", \"required\" or an object, got \"%s\"", c);
            return -1;
        }
    } else if (choice && json_object_is_type(choice, json_type_object)) {
        struct json_object *fn;

        if (jsonx_opt(choice, "function", json_type_object, "tool_choice", &fn, err) < 0)
            return -1;
        if (fn) {
            if (jsonx_req(fn, "name", json_type_string, "tool_choice.function", &v, err) < 0)
                return -1;
            only = json_object_get_string(v);
        }
    } else if (choice) {
        apierr_field(err, "tool_choice", "expected a string or an object, got %s",
                     jsonx_type_name(json_object_get_type(choice)));
        return -1;
    }
    if (!tools)
        return 0;
    n = json_object_array_length(tools);
    req->parts.tools = json_object_new_array();
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
        if (only && strcmp(only, json_object_get_string(name)) != 0)
            continue;
        found = 1;
        json_object_array_add(req->parts.tools,
                              chat_function_tool(name, desc, params ? json_object_get(params) : empty_parameters()));
    }
    if (only && !found) {
        apierr_field(err, "tool_choice.function.name", "no tool named \"%s\" in tools", only);
        return -1;
    }
    if (none) {
        json_object_put(req->parts.tools);
        req->parts.tools = NULL;
    }
    return 0;
}

static int translate_options(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    static const char *const numbers[] = { "temperature", "top_p", "frequency_penalty", "presence_penalty" };
    struct json_object *v;
    long long n;
    int present;

    const char *max_field = "max_completion_tokens";

    if (jsonx_opt_int(body, max_field, "", &n, &present, err) < 0)
        return -1;
    if (!present) {
        max_field = "max_tokens";
        if (jsonx_opt_int(body, max_field, "", &n, &present, err) < 0)
            return -1;
    }
    if (present) {
        if (n < 1) {
            apierr_field(err, max_field, "must be at least 1, got %lld", n);
            return -1;
        }
        json_object_object_add(req->parts.options, "num_predict", json_object_new_int64(n));
    }
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        if (jsonx_opt_number(body, numbers[i], "", &v, err) < 0)
            return -1;
        if (v)
            json_object_object_add(req->parts.options, numbers[i], json_object_get(v));
    }
    if (jsonx_opt_int(body, "seed", "", &n, &present, err) < 0)
        return -1;
    if (present)
        json_object_object_add(req->parts.options, "seed", json_object_new_int64(n));
    json_object_object_get_ex(body, "stop", &v);
    return chat_set_stop(req, v, "stop", MAX_STOP, err);
}

static int translate_format(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *rf, *v, *schema;
    const char *type;

    if (jsonx_opt(body, "response_format", json_type_object, "", &rf, err) < 0)
        return -1;
    if (!rf)
        return 0;
    if (jsonx_req(rf, "type", json_type_string, "response_format", &v, err) < 0)
        return -1;
    type = json_object_get_string(v);
    if (strcmp(type, "json_object") == 0) {
        req->parts.format = json_object_new_string("json");
    } else if (strcmp(type, "json_schema") == 0) {
        if (jsonx_req(rf, "json_schema", json_type_object, "response_format", &v, err) < 0 ||
            jsonx_req(v, "schema", json_type_object, "response_format.json_schema", &schema, err) < 0)
            return -1;
        req->parts.format = json_object_get(schema);
    } else if (strcmp(type, "text") != 0) {
        apierr_field(err, "response_format.type", "expected \"text\", \"json_object\" or \"json_schema\", got \"%s\"",
                     type);
        return -1;
    }
    return 0;
}

static int translate_reasoning(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    const char *effort;

    if (jsonx_opt_string(body, "reasoning_effort", "", &effort, err) < 0)
        return -1;
    if (!effort)
        return 0;
    if (strcmp(effort, "none") == 0)
        req->parts.think = json_object_new_boolean(0);
    else if (strcmp(effort, "minimal") == 0 || strcmp(effort, "low") == 0)
        req->parts.think = json_object_new_string("low");
    else if (strcmp(effort, "medium") == 0)
        req->parts.think = json_object_new_string("medium");
    else if (strcmp(effort, "high") == 0 || strcmp(effort, "xhigh") == 0 || strcmp(effort, "max") == 0)
        req->parts.think = json_object_new_string("high");
    else {
        apierr_field(err, "reasoning_effort", "expected \"none\", \"minimal\", \"low\", \"medium\" or \"high\", got \"%s\"",
                     effort);
        return -1;
    }
    return 0;
}

/* Fields Ollama has no use for are still checked, as OpenAI checks them. */
static int check_ignored_fields(struct json_object *body, struct apierr *err)
{
    static const char *const bools[] = { "parallel_tool_calls", "logprobs", "store" };
    static const char *const strings[] = { "user", "service_tier", "safety_identifier", "prompt_cache_key" };
    struct json_object *v;
    const char *s;
    long long n;
    int b, present;

    for (size_t i = 0; i < sizeof bools / sizeof *bools; i++)
        if (jsonx_opt_bool(body, bools[i], "", &b, err) < 0)
            return -1;
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        if (jsonx_opt_string(body, strings[i], "", &s, err) < 0)
            return -1;
    if (jsonx_opt_int(body, "top_logprobs", "", &n, &present, err) < 0 ||
        jsonx_opt(body, "metadata", json_type_object, "", &v, err) < 0 ||
        jsonx_opt(body, "logit_bias", json_type_object, "", &v, err) < 0)
        return -1;
    return 0;
}

static int openai_translate(struct json_object *body, const struct config *cfg, struct chat_request *req,
                            struct apierr *err)
{
    struct json_object *model, *messages, *so;
    struct xlate x = { req->parts.messages, json_object_new_object(), err };
    long long n_choices;
    int present, rc = -1;
    size_t n;

    if (!json_object_is_type(body, json_type_object)) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body must be a JSON object, got %s",
                   jsonx_type_name(json_object_get_type(body)));
        goto out;
    }
    if (jsonx_req(body, "model", json_type_string, "", &model, err) < 0 ||
        jsonx_req(body, "messages", json_type_array, "", &messages, err) < 0 ||
        jsonx_opt_bool(body, "stream", "", &req->stream, err) < 0 ||
        jsonx_opt_int(body, "n", "", &n_choices, &present, err) < 0 ||
        jsonx_opt(body, "stream_options", json_type_object, "", &so, err) < 0)
        goto out;
    if (json_object_get_string_len(model) == 0) {
        apierr_field(err, "model", "must not be empty");
        goto out;
    }
    if (present && n_choices != 1) {
        apierr_field(err, "n", "only n=1 is supported: Ollama generates one choice per request");
        goto out;
    }
    if ((so && jsonx_opt_bool(so, "include_usage", "stream_options", &req->include_usage, err) < 0) ||
        check_ignored_fields(body, err) < 0)
        goto out;
    req->client_model = xstrdup(json_object_get_string(model));
    req->ollama_model = xstrdup(config_map_model(cfg, req->client_model));
    if (translate_options(body, req, err) < 0 || translate_format(body, req, err) < 0 ||
        translate_reasoning(body, req, err) < 0 || translate_tools(body, req, err) < 0)
        goto out;
    n = json_object_array_length(messages);
    if (n == 0) {
        apierr_field(err, "messages", "must contain at least one message");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (translate_message(&x, json_object_array_get_idx(messages, i), i) < 0)
            goto out;
    chat_default_think(req, cfg);
    rc = 0;
out:
    json_object_put(x.tool_names);
    return rc;
}

/* ---- the stream machine ---- */

struct ostream {
    const struct chat_request *req;
    struct sse_sink *sink;
    int n_tools;
    struct buf data;
};

static void *ostream_new(const struct chat_request *req, struct sse_sink *sink)
{
    struct ostream *s = xcalloc(1, sizeof *s);

    s->req = req;
    s->sink = sink;
    buf_init(&s->data);
    return s;
}

static void ostream_free(void *st)
{
    struct ostream *s = st;

    buf_free(&s->data);
    free(s);
}

static void chunk_head(struct ostream *s)
{
    buf_reset(&s->data);
    buf_puts(&s->data, "{\"id\":");
    jsonx_put_string(&s->data, s->req->id, strlen(s->req->id));
    buf_puts(&s->data, ",\"object\":\"chat.completion.chunk\",\"created\":");
    buf_put_int(&s->data, s->req->created);
    buf_puts(&s->data, ",\"model\":");
    jsonx_put_string(&s->data, s->req->client_model, strlen(s->req->client_model));
    buf_puts(&s->data, ",\"system_fingerprint\":\"fp_ollama_fcgi\",\"choices\":");
}

static int send_chunk(struct ostream *s)
{
    return sse_event(s->sink, NULL, s->data.data, s->data.len);
}

static int ostream_begin(void *st)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_puts(&s->data, "[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,"
             "\"finish_reason\":null}]}");
    return send_chunk(s);
}

static int delta_text(struct ostream *s, const char *key, const char *str, size_t n)
{
    chunk_head(s);
    buf_puts(&s->data, "[{\"index\":0,\"delta\":{\"");
    buf_puts(&s->data, key);
    buf_puts(&s->data, "\":");
    jsonx_put_string(&s->data, str, n);
    buf_puts(&s->data, "},\"logprobs\":null,\"finish_reason\":null}]}");
    return send_chunk(s);
}

static int ostream_thinking(void *st, const char *str, size_t n)
{
    return delta_text(st, "reasoning_content", str, n);
}

static int ostream_text(void *st, const char *str, size_t n)
{
    return delta_text(st, "content", str, n);
}

static int ostream_tool_call(void *st, const char *id, const char *name, const char *args, size_t args_len)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_printf(&s->data, "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%d,\"id\":", s->n_tools++);
    jsonx_put_string(&s->data, id, strlen(id));
    buf_puts(&s->data, ",\"type\":\"function\",\"function\":{\"name\":");
    jsonx_put_string(&s->data, name, strlen(name));
    buf_puts(&s->data, ",\"arguments\":");
    jsonx_put_string(&s->data, args, args_len);
    buf_puts(&s->data, "}}]},\"logprobs\":null,\"finish_reason\":null}]}");
    return send_chunk(s);
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
    buf_printf(b, "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld}", f->input_tokens,
               f->output_tokens, f->input_tokens + f->output_tokens);
}

static int ostream_finish(void *st, const struct chat_finish *f)
{
    struct ostream *s = st;

    chunk_head(s);
    buf_printf(&s->data, "[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"}]}",
               finish_reason(f->reason));
    if (send_chunk(s) < 0)
        return -1;
    if (s->req->include_usage) {
        chunk_head(s);
        buf_puts(&s->data, "[],\"usage\":");
        usage_json(&s->data, f);
        buf_puts(&s->data, "}");
        if (send_chunk(s) < 0)
            return -1;
    }
    return sse_event(s->sink, NULL, "[DONE]", 6);
}

static const char *error_type(enum apierr_kind kind)
{
    switch (kind) {
    case APIERR_INVALID_REQUEST:
    case APIERR_TOO_LARGE: return "invalid_request_error";
    case APIERR_AUTHENTICATION: return "authentication_error";
    case APIERR_PERMISSION: return "permission_error";
    case APIERR_NOT_FOUND: return "not_found_error";
    case APIERR_RATE_LIMIT: return "rate_limit_error";
    case APIERR_TIMEOUT: return "timeout_error";
    case APIERR_OVERLOADED: return "overloaded_error";
    case APIERR_NONE:
    case APIERR_API: break;
    }
    return "server_error";
}

static void openai_error_body(const struct apierr *e, const char *request_id, struct buf *out)
{
    (void)request_id;
    buf_puts(out, "{\"error\":{\"message\":");
    jsonx_put_string(out, e->message, strlen(e->message));
    buf_puts(out, ",\"type\":\"");
    buf_puts(out, error_type(e->kind));
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
    buf_puts(out, "}}");
}

/* A failure after the stream began: an error frame, and no [DONE] pretending success. */
static int ostream_error(void *st, const struct apierr *e)
{
    struct ostream *s = st;

    buf_reset(&s->data);
    openai_error_body(e, NULL, &s->data);
    return send_chunk(s);
}

static int ostream_ping(void *st)
{
    return sse_comment(((struct ostream *)st)->sink, "ping");
}

static const struct stream_ops ostream_ops = {
    ostream_begin, ostream_thinking, ostream_text, ostream_tool_call, ostream_finish, ostream_error, ostream_ping,
};

/* ---- whole replies ---- */

static struct json_object *openai_reply(const struct chat_request *req, const struct chat_reply *r)
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
            json_object_object_add(fn, "arguments", json_object_new_string(r->calls[i].args));
            json_object_object_add(call, "function", fn);
            json_object_array_add(calls, call);
        }
        json_object_object_add(msg, "tool_calls", calls);
    }
    json_object_object_add(choice, "message", msg);
    json_object_object_add(choice, "logprobs", NULL);
    json_object_object_add(choice, "finish_reason", json_object_new_string(finish_reason(r->finish.reason)));
    json_object_array_add(choices, choice);
    json_object_object_add(o, "choices", choices);
    usage = json_object_new_object();
    json_object_object_add(usage, "prompt_tokens", json_object_new_int64(r->finish.input_tokens));
    json_object_object_add(usage, "completion_tokens", json_object_new_int64(r->finish.output_tokens));
    json_object_object_add(usage, "total_tokens",
                           json_object_new_int64(r->finish.input_tokens + r->finish.output_tokens));
    json_object_object_add(o, "usage", usage);
    return o;
}

const struct dialect openai_dialect = {
    "openai", "call_", "chatcmpl-", 503, openai_translate, ostream_new, ostream_free, &ostream_ops,
    openai_reply, openai_error_body,
};
