/* anthropic.c -- the Anthropic Messages dialect: request translation, the SSE stream machine, whole replies. */
#include "anthropic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"

#define BILLING_HEADER "x-anthropic-billing-header:"
#define MAX_STOP_SEQUENCES 64

/* ---- request translation ---- */

/* State while translating the history: the Ollama messages being built and the name of every
 * tool_use id seen so far, which tool results need. */
struct xlate {
    const struct config *cfg;
    struct json_object *out;        /* borrowed: req->parts.messages */
    struct json_object *tool_names; /* owned: id -> name */
    struct apierr *err;
};

static int is_billing_block(const char *text)
{
    return strncmp(text, BILLING_HEADER, sizeof BILLING_HEADER - 1) == 0;
}

/* The text of a system value: a string, or text blocks joined by newlines (cache_control ignored;
 * Claude Code's billing header dropped, since its hash changes every request and would defeat
 * Ollama's prompt cache). */
static int system_text(struct json_object *sys, const char *path, struct buf *out, struct apierr *err)
{
    char name[160];
    size_t n;

    if (json_object_is_type(sys, json_type_string)) {
        buf_append(out, json_object_get_string(sys), (size_t)json_object_get_string_len(sys));
        return 0;
    }
    if (!json_object_is_type(sys, json_type_array)) {
        apierr_field(err, path, "expected a string or an array of text blocks, got %s",
                     jsonx_type_name(json_object_get_type(sys)));
        return -1;
    }
    n = json_object_array_length(sys);
    for (size_t i = 0; i < n; i++) {
        struct json_object *blk = json_object_array_get_idx(sys, i), *text;
        const char *type;

        jsonx_path_idx(name, sizeof name, path, i);
        if (!json_object_is_type(blk, json_type_object)) {
            apierr_field(err, name, "expected a text block, got %s", jsonx_type_name(json_object_get_type(blk)));
            return -1;
        }
        if (jsonx_opt_string(blk, "type", name, &type, err) < 0 ||
            jsonx_req(blk, "text", json_type_string, name, &text, err) < 0)
            return -1;
        if (type && strcmp(type, "text") != 0) {
            apierr_field(err, name, "expected a block of type \"text\", got \"%s\"", type);
            return -1;
        }
        if (is_billing_block(json_object_get_string(text)))
            continue;
        if (out->len > 0)
            buf_putc(out, '\n');
        buf_append(out, json_object_get_string(text), (size_t)json_object_get_string_len(text));
    }
    return 0;
}

static int image_data(struct json_object *blk, const char *path, struct json_object **data, struct apierr *err)
{
    struct json_object *src;
    const char *type;
    char name[160];

    if (jsonx_req(blk, "source", json_type_object, path, &src, err) < 0)
        return -1;
    jsonx_path(name, sizeof name, path, "source");
    if (jsonx_opt_string(src, "type", name, &type, err) < 0)
        return -1;
    if (!type || strcmp(type, "base64") != 0) {
        apierr_field(err, jsonx_path(name, sizeof name, name, "type"),
                     "image source \"%s\" is not supported: Ollama takes images as base64 (source.type \"base64\")",
                     type ? type : "");
        return -1;
    }
    return jsonx_req(src, "data", json_type_string, name, data, err);
}

static void add_image(struct json_object **images, struct json_object *data)
{
    if (!*images)
        *images = json_object_new_array();
    json_object_array_add(*images, json_object_get(data));
}

/* A document block with text in it becomes text. A PDF or a file reference cannot reach Ollama; it is
 * replaced by a note the model can read, so that the conversation (a Claude Code session that read a
 * PDF, say) goes on instead of failing on every later turn. */
static int document_text(struct json_object *blk, const char *path, struct buf *text, struct apierr *err)
{
    struct json_object *src, *data;
    const char *type, *media = NULL, *title = NULL;
    char name[160], inner[200];

    if (jsonx_req(blk, "source", json_type_object, path, &src, err) < 0 ||
        jsonx_opt_string(blk, "title", path, &title, err) < 0)
        return -1;
    jsonx_path(name, sizeof name, path, "source");
    if (jsonx_opt_string(src, "type", name, &type, err) < 0 ||
        jsonx_opt_string(src, "media_type", name, &media, err) < 0)
        return -1;
    if (type && strcmp(type, "text") == 0) {
        if (jsonx_req(src, "data", json_type_string, name, &data, err) < 0)
            return -1;
        chat_join_text(text, data);
        return 0;
    }
    if (type && strcmp(type, "content") == 0) {
        if (!json_object_object_get_ex(src, "content", &data) || !data) {
            apierr_field(err, jsonx_path(inner, sizeof inner, name, "content"), "Field required");
            return -1;
        }
        if (json_object_is_type(data, json_type_string)) {
            chat_join_text(text, data);
            return 0;
        }
        if (!json_object_is_type(data, json_type_array)) {
            apierr_field(err, jsonx_path(inner, sizeof inner, name, "content"),
                         "expected a string or an array of content blocks, got %s",
                         jsonx_type_name(json_object_get_type(data)));
            return -1;
        }
        for (size_t i = 0; i < json_object_array_length(data); i++) {
            struct json_object *part = json_object_array_get_idx(data, i), *t;

            if (json_object_is_type(part, json_type_object) && json_object_object_get_ex(part, "text", &t) &&
                json_object_is_type(t, json_type_string))
                chat_join_text(text, t);
        }
        return 0;
    }
    if (text->len > 0)
        buf_putc(text, '\n');
    buf_printf(text, "[document%s%s%s not included: Ollama cannot read %s documents]", title ? " \"" : "",
               title ? title : "", title ? "\"" : "", media ? media : type ? type : "such");
    return 0;
}

/* tool_result content flattened to text: a string as is, a list's text blocks joined by newlines,
 * its images attached to the tool message. */
static int tool_result_message(struct xlate *x, struct json_object *blk, const char *path)
{
    struct json_object *id, *content = NULL, *images = NULL, *name_obj = NULL, *m;
    struct buf text;
    int is_error = 0, rc = -1;
    char name[160], inner[200];

    buf_init(&text);
    if (jsonx_req(blk, "tool_use_id", json_type_string, path, &id, x->err) < 0 ||
        jsonx_opt_bool(blk, "is_error", path, &is_error, x->err) < 0)
        goto out;
    json_object_object_get_ex(blk, "content", &content);
    jsonx_path(name, sizeof name, path, "content");
    if (content && json_object_is_type(content, json_type_string)) {
        buf_append(&text, json_object_get_string(content), (size_t)json_object_get_string_len(content));
    } else if (content && json_object_is_type(content, json_type_array)) {
        size_t n = json_object_array_length(content);

        for (size_t i = 0; i < n; i++) {
            struct json_object *part = json_object_array_get_idx(content, i), *t, *data;
            const char *type;

            jsonx_path_idx(inner, sizeof inner, name, i);
            if (!json_object_is_type(part, json_type_object)) {
                apierr_field(x->err, inner, "expected a content block, got %s",
                             jsonx_type_name(json_object_get_type(part)));
                goto out;
            }
            if (jsonx_opt_string(part, "type", inner, &type, x->err) < 0)
                goto out;
            if (type && strcmp(type, "text") == 0) {
                if (jsonx_req(part, "text", json_type_string, inner, &t, x->err) < 0)
                    goto out;
                chat_join_text(&text, t);
            } else if (type && strcmp(type, "image") == 0) {
                if (image_data(part, inner, &data, x->err) < 0)
                    goto out;
                add_image(&images, data);
            } else if (type && strcmp(type, "document") == 0) {
                if (document_text(part, inner, &text, x->err) < 0)
                    goto out;
            }
        }
    } else if (content) {
        apierr_field(x->err, name, "expected a string or an array of content blocks, got %s",
                     jsonx_type_name(json_object_get_type(content)));
        goto out;
    }
    m = chat_message("tool");
    if (is_error) {
        /* Ollama has no error flag on tool messages: the model must read it. */
        struct buf marked;

        buf_init(&marked);
        buf_puts(&marked, "Error: ");
        buf_append(&marked, text.data ? text.data : "", text.len);
        json_object_object_add(m, "content", jsonx_string(marked.data, marked.len));
        buf_free(&marked);
    } else {
        json_object_object_add(m, "content", jsonx_string(text.data ? text.data : "", text.len));
    }
    if (images)
        json_object_object_add(m, "images", images);
    images = NULL;
    if (json_object_object_get_ex(x->tool_names, json_object_get_string(id), &name_obj))
        json_object_object_add(m, "tool_name", json_object_get(name_obj));
    json_object_object_add(m, "tool_call_id", json_object_get(id));
    json_object_array_add(x->out, m);
    rc = 0;
out:
    json_object_put(images);
    buf_free(&text);
    return rc;
}

static int tool_use_call(struct xlate *x, struct json_object *blk, const char *path, struct json_object *calls)
{
    struct json_object *id, *name, *input, *call, *fn;

    if (jsonx_req(blk, "id", json_type_string, path, &id, x->err) < 0 ||
        jsonx_req(blk, "name", json_type_string, path, &name, x->err) < 0 ||
        jsonx_opt(blk, "input", json_type_object, path, &input, x->err) < 0)
        return -1;
    json_object_object_add(x->tool_names, json_object_get_string(id), json_object_get(name));
    call = json_object_new_object();
    fn = json_object_new_object();
    json_object_object_add(call, "id", json_object_get(id));
    json_object_object_add(fn, "name", json_object_get(name));
    /* Ollama decodes arguments as an object (a string is rejected); the client's key order is kept. */
    json_object_object_add(fn, "arguments", input ? json_object_get(input) : json_object_new_object());
    json_object_object_add(call, "function", fn);
    json_object_array_add(calls, call);
    return 0;
}

static int translate_message(struct xlate *x, struct json_object *msg, size_t idx)
{
    struct json_object *content, *images = NULL, *calls = NULL, *m, *v;
    struct buf text, thinking;
    const char *role;
    char path[64], name[160];
    int assistant, rc = -1;

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
    if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 && strcmp(role, "system") != 0) {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "role"),
                     "expected \"user\", \"assistant\" or \"system\", got \"%s\"", role);
        goto out;
    }
    if (!json_object_object_get_ex(msg, "content", &content) || !content) {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "content"), "Field required");
        goto out;
    }
    if (strcmp(role, "system") == 0) {
        if (system_text(content, jsonx_path(name, sizeof name, path, "content"), &text, x->err) < 0)
            goto out;
        chat_place_system(x->out, text.data ? text.data : "", text.len);
        rc = 0;
        goto out;
    }
    assistant = role[0] == 'a';
    if (json_object_is_type(content, json_type_string)) {
        buf_append(&text, json_object_get_string(content), (size_t)json_object_get_string_len(content));
    } else if (json_object_is_type(content, json_type_array)) {
        size_t n = json_object_array_length(content);

        for (size_t i = 0; i < n; i++) {
            struct json_object *blk = json_object_array_get_idx(content, i), *t, *data;
            const char *type;
            char bpath[160];

            snprintf(bpath, sizeof bpath, "%s.content.%zu", path, i);
            if (!json_object_is_type(blk, json_type_object)) {
                apierr_field(x->err, bpath, "expected a content block, got %s",
                             jsonx_type_name(json_object_get_type(blk)));
                goto out;
            }
            if (jsonx_req(blk, "type", json_type_string, bpath, &t, x->err) < 0)
                goto out;
            type = json_object_get_string(t);
            if (strcmp(type, "text") == 0) {
                if (jsonx_req(blk, "text", json_type_string, bpath, &t, x->err) < 0)
                    goto out;
                chat_join_text(&text, t);
            } else if (strcmp(type, "image") == 0) {
                if (image_data(blk, bpath, &data, x->err) < 0)
                    goto out;
                add_image(&images, data);
            } else if (strcmp(type, "document") == 0) {
                if (document_text(blk, bpath, &text, x->err) < 0)
                    goto out;
            } else if (strcmp(type, "tool_result") == 0 && !assistant) {
                if (tool_result_message(x, blk, bpath) < 0)
                    goto out;
            } else if (strcmp(type, "tool_use") == 0 && assistant) {
                if (!calls)
                    calls = json_object_new_array();
                if (tool_use_call(x, blk, bpath, calls) < 0)
                    goto out;
            } else if (strcmp(type, "thinking") == 0 && assistant) {
                if (jsonx_req(blk, "thinking", json_type_string, bpath, &t, x->err) < 0)
                    goto out;
                buf_append(&thinking, json_object_get_string(t), (size_t)json_object_get_string_len(t));
            } else if (strcmp(type, "tool_result") == 0 || strcmp(type, "tool_use") == 0) {
                apierr_field(x->err, bpath, "a %s block cannot be in a%s message", type,
                             assistant ? "n assistant" : " user");
                goto out;
            }
            /* redacted_thinking, server tool blocks and block types yet to come carry nothing Ollama
             * can use: dropped, never an error. */
        }
    } else {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "content"),
                     "expected a string or an array of content blocks, got %s",
                     jsonx_type_name(json_object_get_type(content)));
        goto out;
    }
    /* A user turn made only of tool results has no user message of its own. */
    if (!assistant && text.len == 0 && !images && json_object_is_type(content, json_type_array) &&
        json_object_array_length(content) > 0) {
        rc = 0;
        goto out;
    }
    m = chat_message(assistant ? "assistant" : "user");
    json_object_object_add(m, "content", jsonx_string(text.data ? text.data : "", text.len));
    if (thinking.len)
        json_object_object_add(m, "thinking", jsonx_string(thinking.data, thinking.len));
    if (images)
        json_object_object_add(m, "images", images);
    if (calls)
        json_object_object_add(m, "tool_calls", calls);
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

static int translate_tools(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *tools, *choice, *v;
    const char *choice_type = NULL, *only = NULL;
    char path[64];
    size_t n;
    int found = 0;

    if (jsonx_opt(body, "tools", json_type_array, "", &tools, err) < 0 ||
        jsonx_opt(body, "tool_choice", json_type_object, "", &choice, err) < 0)
        return -1;
    if (choice) {
        int parallel_off = 0;   /* Ollama cannot limit parallel calls: checked, not used */

        if (jsonx_req(choice, "type", json_type_string, "tool_choice", &v, err) < 0 ||
            jsonx_opt_bool(choice, "disable_parallel_tool_use", "tool_choice", &parallel_off, err) < 0)
            return -1;
        choice_type = json_object_get_string(v);
        if (strcmp(choice_type, "tool") == 0) {
            if (jsonx_req(choice, "name", json_type_string, "tool_choice", &v, err) < 0)
                return -1;
            only = json_object_get_string(v);
        } else if (strcmp(choice_type, "auto") != 0 && strcmp(choice_type, "any") != 0 &&
                   strcmp(choice_type, "none") != 0) {
            apierr_field(err, "tool_choice.type", "expected \"auto\", \"any\", \"tool\" or \"none\", got \"%s\"",
                         choice_type);
            return -1;
        }
    }
    if (!tools)
        return 0;
    n = json_object_array_length(tools);
    req->parts.tools = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct json_object *tool = json_object_array_get_idx(tools, i), *name, *schema, *desc;
        const char *type;

        snprintf(path, sizeof path, "tools.%zu", i);
        if (!json_object_is_type(tool, json_type_object)) {
            apierr_field(err, path, "expected an object, got %s", jsonx_type_name(json_object_get_type(tool)));
            return -1;
        }
        if (jsonx_opt_string(tool, "type", path, &type, err) < 0 ||
            jsonx_req(tool, "name", json_type_string, path, &name, err) < 0)
            return -1;
        /* Anthropic's server tools (web_search_…, bash_…) run on Anthropic's side: none here. */
        if (type && strcmp(type, "custom") != 0)
            continue;
        if (jsonx_req(tool, "input_schema", json_type_object, path, &schema, err) < 0 ||
            jsonx_opt(tool, "description", json_type_string, path, &desc, err) < 0)
            return -1;
        if (only && strcmp(only, json_object_get_string(name)) != 0)
            continue;
        found = 1;
        json_object_array_add(req->parts.tools, chat_function_tool(name, desc, json_object_get(schema)));
    }
    if (only && !found) {
        apierr_field(err, "tool_choice.name", "no tool named \"%s\" in tools", only);
        return -1;
    }
    if (choice_type && strcmp(choice_type, "none") == 0) {
        /* No tools offered this turn; the history keeps its tool calls. */
        json_object_put(req->parts.tools);
        req->parts.tools = NULL;
    }
    return 0;
}

static int translate_thinking(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *thinking, *v;
    const char *type;
    long long budget;   /* Ollama cannot bound thinking: checked, not used */
    int present;

    if (jsonx_opt(body, "thinking", json_type_object, "", &thinking, err) < 0)
        return -1;
    if (!thinking)
        return 0;
    if (jsonx_req(thinking, "type", json_type_string, "thinking", &v, err) < 0 ||
        jsonx_opt_int(thinking, "budget_tokens", "thinking", &budget, &present, err) < 0)
        return -1;
    type = json_object_get_string(v);
    if (strcmp(type, "enabled") == 0 || strcmp(type, "adaptive") == 0)
        req->parts.think = json_object_new_boolean(1);
    else if (strcmp(type, "disabled") == 0)
        req->parts.think = json_object_new_boolean(0);
    else {
        apierr_field(err, "thinking.type", "expected \"enabled\", \"adaptive\" or \"disabled\", got \"%s\"", type);
        return -1;
    }
    return 0;
}

static int translate_options(struct json_object *body, struct chat_request *req, int need_max_tokens,
                             struct apierr *err)
{
    struct json_object *v;
    long long n;
    int present;

    if (jsonx_opt_int(body, "max_tokens", "", &n, &present, err) < 0)
        return -1;
    if (!present && need_max_tokens) {
        apierr_field(err, "max_tokens", "Field required");
        return -1;
    }
    if (present) {
        if (n < 0) {
            apierr_field(err, "max_tokens", "must be at least 0, got %lld", n);
            return -1;
        }
        json_object_object_add(req->parts.options, "num_predict", json_object_new_int64(n));
    }
    if (jsonx_opt_number(body, "temperature", "", &v, err) < 0)
        return -1;
    if (v)
        json_object_object_add(req->parts.options, "temperature", json_object_get(v));
    if (jsonx_opt_number(body, "top_p", "", &v, err) < 0)
        return -1;
    if (v)
        json_object_object_add(req->parts.options, "top_p", json_object_get(v));
    if (jsonx_opt_int(body, "top_k", "", &n, &present, err) < 0)
        return -1;
    if (present)
        json_object_object_add(req->parts.options, "top_k", json_object_new_int64(n));
    if (jsonx_opt(body, "stop_sequences", json_type_array, "", &v, err) < 0)
        return -1;
    return chat_set_stop(req, v, "stop_sequences", MAX_STOP_SEQUENCES, err);
}

/* Fields Ollama has no use for are still checked, as Anthropic checks them. */
static int check_ignored_fields(struct json_object *body, struct apierr *err)
{
    struct json_object *metadata, *v;
    const char *s;

    if (jsonx_opt(body, "metadata", json_type_object, "", &metadata, err) < 0 ||
        (metadata && jsonx_opt_string(metadata, "user_id", "metadata", &s, err) < 0) ||
        jsonx_opt_string(body, "service_tier", "", &s, err) < 0 ||
        jsonx_opt(body, "output_config", json_type_object, "", &v, err) < 0 ||
        jsonx_opt(body, "context_management", json_type_object, "", &v, err) < 0)
        return -1;
    return 0;
}

static int translate(struct json_object *body, const struct config *cfg, struct chat_request *req,
                     int for_count, struct apierr *err)
{
    struct json_object *model, *messages, *sys;
    struct xlate x = { cfg, req->parts.messages, json_object_new_object(), err };
    struct buf stext;
    size_t n;
    int rc = -1;

    buf_init(&stext);
    if (!json_object_is_type(body, json_type_object)) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body must be a JSON object, got %s",
                   jsonx_type_name(json_object_get_type(body)));
        goto out;
    }
    if (jsonx_req(body, "model", json_type_string, "", &model, err) < 0 ||
        jsonx_req(body, "messages", json_type_array, "", &messages, err) < 0 ||
        jsonx_opt_bool(body, "stream", "", &req->stream, err) < 0)
        goto out;
    if (json_object_get_string_len(model) == 0) {
        apierr_field(err, "model", "must not be empty");
        goto out;
    }
    if (check_ignored_fields(body, err) < 0)
        goto out;
    req->client_model = xstrdup(json_object_get_string(model));
    req->ollama_model = xstrdup(config_map_model(cfg, req->client_model));
    if (translate_options(body, req, !for_count, err) < 0 || translate_thinking(body, req, err) < 0 ||
        translate_tools(body, req, err) < 0)
        goto out;
    if (json_object_object_get_ex(body, "system", &sys) && sys) {
        if (system_text(sys, "system", &stext, err) < 0)
            goto out;
        if (stext.len) {
            struct json_object *m = chat_message("system");

            json_object_object_add(m, "content", jsonx_string(stext.data, stext.len));
            json_object_array_add(x.out, m);
        }
    }
    n = json_object_array_length(messages);
    if (n == 0 && !for_count) {
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
    buf_free(&stext);
    return rc;
}

static int anthropic_translate(struct json_object *body, const struct config *cfg, struct chat_request *req,
                               struct apierr *err)
{
    return translate(body, cfg, req, 0, err);
}

int anthropic_translate_count(struct json_object *body, const struct config *cfg, struct chat_request *req,
                              struct apierr *err)
{
    return translate(body, cfg, req, 1, err);
}

/* ---- the stream machine ---- */

enum block { BLOCK_NONE, BLOCK_THINKING, BLOCK_TEXT };

struct astream {
    const struct chat_request *req;
    struct sse_sink *sink;
    int next_index;
    enum block open;
    struct buf data;
};

static void *astream_new(const struct chat_request *req, struct sse_sink *sink)
{
    struct astream *s = xcalloc(1, sizeof *s);

    s->req = req;
    s->sink = sink;
    buf_init(&s->data);
    return s;
}

static void astream_free(void *st)
{
    struct astream *s = st;

    buf_free(&s->data);
    free(s);
}

static int send_data(struct astream *s, const char *event)
{
    return sse_event(s->sink, event, s->data.data, s->data.len);
}

static int astream_begin(void *st)
{
    struct astream *s = st;

    buf_reset(&s->data);
    buf_puts(&s->data, "{\"type\":\"message_start\",\"message\":{\"id\":");
    jsonx_put_string(&s->data, s->req->id, strlen(s->req->id));
    buf_puts(&s->data, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    jsonx_put_string(&s->data, s->req->client_model, strlen(s->req->client_model));
    buf_printf(&s->data, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":%lld,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}",
               s->req->estimated_tokens);
    return send_data(s, "message_start");
}

static int close_block(struct astream *s)
{
    int index = s->next_index - 1;

    if (s->open == BLOCK_NONE)
        return 0;
    if (s->open == BLOCK_THINKING) {
        /* Clients keep and send back a signature; Ollama has none, so a stable local one. */
        buf_reset(&s->data);
        buf_puts(&s->data, "{\"type\":\"content_block_delta\",\"index\":");
        buf_put_int(&s->data, index);
        buf_puts(&s->data, ",\"delta\":{\"type\":\"signature_delta\",\"signature\":");
        jsonx_put_string(&s->data, "ollama-fcgi", 11);
        buf_puts(&s->data, "}}");
        if (send_data(s, "content_block_delta") < 0)
            return -1;
    }
    s->open = BLOCK_NONE;
    buf_reset(&s->data);
    buf_puts(&s->data, "{\"type\":\"content_block_stop\",\"index\":");
    buf_put_int(&s->data, index);
    buf_putc(&s->data, '}');
    return send_data(s, "content_block_stop");
}

static int open_block(struct astream *s, enum block kind)
{
    if (s->open == kind)
        return 0;
    if (close_block(s) < 0)
        return -1;
    s->open = kind;
    buf_reset(&s->data);
    buf_puts(&s->data, "{\"type\":\"content_block_start\",\"index\":");
    buf_put_int(&s->data, s->next_index++);
    buf_puts(&s->data, kind == BLOCK_THINKING
                           ? ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}"
                           : ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    return send_data(s, "content_block_start");
}

static int delta(struct astream *s, enum block kind, const char *str, size_t n)
{
    if (open_block(s, kind) < 0)
        return -1;
    buf_reset(&s->data);
    buf_puts(&s->data, "{\"type\":\"content_block_delta\",\"index\":");
    buf_put_int(&s->data, s->next_index - 1);
    buf_puts(&s->data, kind == BLOCK_THINKING ? ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":"
                                              : ",\"delta\":{\"type\":\"text_delta\",\"text\":");
    jsonx_put_string(&s->data, str, n);
    buf_puts(&s->data, "}}");
    return send_data(s, "content_block_delta");
}

static int astream_thinking(void *st, const char *str, size_t n)
{
    return delta(st, BLOCK_THINKING, str, n);
}

static int astream_text(void *st, const char *str, size_t n)
{
    return delta(st, BLOCK_TEXT, str, n);
}

/* Claude Code reads a tool's input only from input_json_delta, never from content_block_start. */
static int astream_tool_call(void *st, const char *id, const char *name, const char *args, size_t args_len)
{
    struct astream *s = st;
    int index;

    if (close_block(s) < 0)
        return -1;
    index = s->next_index++;
    buf_reset(&s->data);
    buf_printf(&s->data, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":",
               index);
    jsonx_put_string(&s->data, id, strlen(id));
    buf_puts(&s->data, ",\"name\":");
    jsonx_put_string(&s->data, name, strlen(name));
    buf_puts(&s->data, ",\"input\":{}}}");
    if (send_data(s, "content_block_start") < 0)
        return -1;
    buf_reset(&s->data);
    buf_printf(&s->data, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"input_json_delta\","
               "\"partial_json\":", index);
    jsonx_put_string(&s->data, args, args_len);
    buf_puts(&s->data, "}}");
    if (send_data(s, "content_block_delta") < 0)
        return -1;
    buf_reset(&s->data);
    buf_printf(&s->data, "{\"type\":\"content_block_stop\",\"index\":%d}", index);
    return send_data(s, "content_block_stop");
}

static const char *stop_reason(const char *reason)
{
    if (strcmp(reason, "length") == 0)
        return "max_tokens";
    if (strcmp(reason, "tool_calls") == 0)
        return "tool_use";
    if (strcmp(reason, "stop_sequence") == 0)
        return "stop_sequence";
    return "end_turn";
}

static int astream_finish(void *st, const struct chat_finish *f)
{
    struct astream *s = st;

    if (close_block(s) < 0)
        return -1;
    buf_reset(&s->data);
    buf_printf(&s->data, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":",
               stop_reason(f->reason));
    if (f->stop_sequence)
        jsonx_put_string(&s->data, f->stop_sequence, strlen(f->stop_sequence));
    else
        buf_puts(&s->data, "null");
    buf_printf(&s->data, "},\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld}}", f->input_tokens,
               f->output_tokens);
    if (send_data(s, "message_delta") < 0)
        return -1;
    buf_reset(&s->data);
    buf_puts(&s->data, "{\"type\":\"message_stop\"}");
    return send_data(s, "message_stop");
}

const char *anthropic_error_type(enum apierr_kind kind)
{
    switch (kind) {
    case APIERR_INVALID_REQUEST: return "invalid_request_error";
    case APIERR_AUTHENTICATION: return "authentication_error";
    case APIERR_PERMISSION: return "permission_error";
    case APIERR_NOT_FOUND: return "not_found_error";
    case APIERR_TOO_LARGE: return "request_too_large";
    case APIERR_RATE_LIMIT: return "rate_limit_error";
    case APIERR_TIMEOUT: return "timeout_error";
    case APIERR_OVERLOADED: return "overloaded_error";
    case APIERR_NONE:
    case APIERR_API: break;
    }
    return "api_error";
}

static void error_json(const struct apierr *e, struct buf *out)
{
    buf_puts(out, "{\"type\":\"error\",\"error\":{\"type\":\"");
    buf_puts(out, anthropic_error_type(e->kind));
    buf_puts(out, "\",\"message\":");
    jsonx_put_string(out, e->message, strlen(e->message));
    buf_puts(out, "}");
}

/* A failure after the stream began: an error event, never a message_stop that pretends success. */
static int astream_error(void *st, const struct apierr *e)
{
    struct astream *s = st;

    buf_reset(&s->data);
    error_json(e, &s->data);
    buf_puts(&s->data, "}");
    return send_data(s, "error");
}

static int astream_ping(void *st)
{
    struct astream *s = st;

    buf_reset(&s->data);
    buf_puts(&s->data, "{\"type\":\"ping\"}");
    return send_data(s, "ping");
}

static const struct stream_ops astream_ops = {
    astream_begin, astream_thinking, astream_text, astream_tool_call, astream_finish, astream_error, astream_ping,
};

/* ---- whole replies and errors ---- */

static struct json_object *anthropic_reply(const struct chat_request *req, const struct chat_reply *r)
{
    struct json_object *o = json_object_new_object(), *content = json_object_new_array(), *blk, *usage;
    struct apierr ignored;

    json_object_object_add(o, "id", json_object_new_string(req->id));
    json_object_object_add(o, "type", json_object_new_string("message"));
    json_object_object_add(o, "role", json_object_new_string("assistant"));
    json_object_object_add(o, "model", json_object_new_string(req->client_model));
    if (r->thinking.len) {
        blk = json_object_new_object();
        json_object_object_add(blk, "type", json_object_new_string("thinking"));
        json_object_object_add(blk, "thinking", jsonx_string(r->thinking.data, r->thinking.len));
        json_object_object_add(blk, "signature", json_object_new_string("ollama-fcgi"));
        json_object_array_add(content, blk);
    }
    if (r->text.len) {
        blk = json_object_new_object();
        json_object_object_add(blk, "type", json_object_new_string("text"));
        json_object_object_add(blk, "text", jsonx_string(r->text.data, r->text.len));
        json_object_array_add(content, blk);
    }
    for (size_t i = 0; i < r->n_calls; i++) {
        struct json_object *input = jsonx_parse(r->calls[i].args, strlen(r->calls[i].args), &ignored);

        if (!input || !json_object_is_type(input, json_type_object)) {
            json_object_put(input);
            input = json_object_new_object();
        }
        blk = json_object_new_object();
        json_object_object_add(blk, "type", json_object_new_string("tool_use"));
        json_object_object_add(blk, "id", json_object_new_string(r->calls[i].id));
        json_object_object_add(blk, "name", json_object_new_string(r->calls[i].name));
        json_object_object_add(blk, "input", input);
        json_object_array_add(content, blk);
    }
    json_object_object_add(o, "content", content);
    json_object_object_add(o, "stop_reason", json_object_new_string(stop_reason(r->finish.reason)));
    json_object_object_add(o, "stop_sequence",
                           r->finish.stop_sequence ? json_object_new_string(r->finish.stop_sequence) : NULL);
    usage = json_object_new_object();
    json_object_object_add(usage, "input_tokens", json_object_new_int64(r->finish.input_tokens));
    json_object_object_add(usage, "cache_creation_input_tokens", json_object_new_int(0));
    json_object_object_add(usage, "cache_read_input_tokens", json_object_new_int(0));
    json_object_object_add(usage, "output_tokens", json_object_new_int64(r->finish.output_tokens));
    json_object_object_add(o, "usage", usage);
    return o;
}

static void anthropic_error_body(const struct apierr *e, const char *request_id, struct buf *out)
{
    error_json(e, out);
    if (request_id) {
        buf_puts(out, ",\"request_id\":");
        jsonx_put_string(out, request_id, strlen(request_id));
    }
    buf_puts(out, "}");
}

const struct dialect anthropic_dialect = {
    "anthropic", "toolu_", "msg_", 529, anthropic_translate, astream_new, astream_free, &astream_ops,
    anthropic_reply, anthropic_error_body,
};
