/* anthropic.c -- the Anthropic Messages dialect: request translation, the SSE stream machine, whole replies. */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "models.h"

#define BILLING_HEADER "x-anthropic-billing-header:"
#define MAX_STOP_SEQUENCES 64

extern const struct dialect anthropic_dialect;

/* ---- request translation ---- */

/* State while translating the history: the request being built and the name of every tool_use id seen so
 * far, which tool results need. */
struct xlate {
    struct chat_request *req;
    struct chat_msg *m;             /* the message whose blocks are being read */
    struct buf *text;               /* where system text goes */
    struct chat_tools tools;        /* what was offered, for a tool a message adds */
    struct apierr *err;
};

/* Blocks that only Anthropic's own servers make or read (server tools, their results, redacted thinking):
 * nothing for a local model, left out without a note. */
static const char *const server_only_blocks[] = {
    "redacted_thinking", "server_tool_use", "web_search_tool_result", "web_fetch_tool_result",
    "code_execution_tool_result", "bash_code_execution_tool_result", "text_editor_code_execution_tool_result",
    "mcp_tool_use", "mcp_tool_result", "container_upload",
};

static int is_server_only(const char *type)
{
    for (size_t i = 0; i < sizeof server_only_blocks / sizeof *server_only_blocks; i++)
        if (strcmp(type, server_only_blocks[i]) == 0)
            return 1;
    return 0;
}

/* tool_addition {tool: {type: "tool_definition", definition: {name, description, input_schema}}}: the
 * tool is offered from here on, when tools are offered at all, and the model is told. */
static void tool_addition(struct xlate *x, struct json_object *blk, struct buf *text)
{
    struct json_object *tool = NULL, *def = NULL, *schema = NULL, *desc = NULL;
    const char *name;
    struct buf line;

    json_object_object_get_ex(blk, "tool", &tool);
    if (tool && !json_object_object_get_ex(tool, "definition", &def))
        def = tool;
    name = def ? jsonx_string_at(def, "name") : NULL;
    if (!name) {
        chat_note_dropped(x->req, "tool_addition");
        return;
    }
    if (x->req->parts.tools && json_object_object_get_ex(def, "input_schema", &schema) &&
        json_object_is_type(schema, json_type_object)) {
        int offered = 0;

        for (size_t i = 0; i < json_object_array_length(x->req->parts.tools) && !offered; i++) {
            struct json_object *fn;

            json_object_object_get_ex(json_object_array_get_idx(x->req->parts.tools, i), "function", &fn);
            offered = strcmp(jsonx_string_at(fn, "name"), name) == 0;
        }
        json_object_object_get_ex(def, "description", &desc);
        if (!offered)
            chat_offer_tool(x->req, &x->tools, name, desc && json_object_is_type(desc, json_type_string) ? desc : NULL,
                            json_object_get(schema));
    }
    buf_init(&line);
    buf_printf(&line, "The tool %s is now available.", name);
    chat_join_line(text, line.data, line.len);
    buf_free(&line);
}

/* A block of a type this translator has no rule for (tool search's tool_reference, a tool added or
 * removed mid-conversation, a type yet to come) becomes text the model can act on, or is left out with a
 * note in the access log. Never an error that would end the client's session. */
static void other_block(struct xlate *x, struct json_object *blk, const char *type, struct buf *text)
{
    const char *s;
    struct buf line;

    if (is_server_only(type))
        return;
    buf_init(&line);
    if (strcmp(type, "tool_reference") == 0 && (s = jsonx_string_at(blk, "tool_name"))) {
        /* Claude Code's tool search found this tool: it is in tools[] from this request on. */
        buf_printf(&line, "Tool %s loaded: it can be called now.", s);
    } else if (strcmp(type, "tool_addition") == 0) {
        tool_addition(x, blk, text);
    } else if (strcmp(type, "tool_removal") == 0) {
        struct json_object *tool = NULL;

        json_object_object_get_ex(blk, "tool", &tool);
        if (tool && ((s = jsonx_string_at(tool, "name")) || (s = jsonx_string_at(tool, "tool_name"))))
            buf_printf(&line, "The tool %s is no longer available; do not call it.", s);
        else
            chat_note_dropped(x->req, type);
    } else if ((s = jsonx_string_at(blk, "text")) || (s = jsonx_string_at(blk, "content"))) {
        buf_puts(&line, s);
    } else {
        struct json_object *content = NULL;

        json_object_object_get_ex(blk, "content", &content);
        chat_join_texts(&line, content);
        if (!line.len)
            chat_note_dropped(x->req, type);
    }
    if (line.len)
        chat_join_line(text, line.data, line.len);
    buf_free(&line);
}

static int is_billing_block(const char *text)
{
    return strncmp(text, BILLING_HEADER, sizeof BILLING_HEADER - 1) == 0;
}

static int system_block(void *ctx, struct json_object *blk, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *text;
    const char *type;

    if (jsonx_opt_string(blk, "type", path, &type, x->err) < 0)
        return -1;
    if (type && strcmp(type, "text") != 0) {
        other_block(x, blk, type, x->text);
        return 0;
    }
    if (jsonx_req(blk, "text", json_type_string, path, &text, x->err) < 0)
        return -1;
    if (!is_billing_block(json_object_get_string(text)))
        chat_join_text(x->text, text);
    return 0;
}

/* The text of a system value: a string, or text blocks joined by newlines (cache_control ignored;
 * Claude Code's billing header dropped, since its hash changes every request and would defeat
 * Ollama's prompt cache). */
static int system_text(struct xlate *x, struct json_object *sys, const char *path, struct buf *out)
{
    x->text = out;
    return chat_each_block(sys, path, "text block", out, system_block, x, x->err);
}

/* A base64 image block's data, for the message's images. */
static int add_image(struct chat_msg *m, struct json_object *blk, const char *path, struct apierr *err)
{
    struct json_object *src, *data;
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
    if (jsonx_req(src, "data", json_type_string, name, &data, err) < 0)
        return -1;
    chat_msg_image(m, data);
    return 0;
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

/* One block of a tool result's content list: text and documents join the text, images attach. */
static int tool_result_part(void *ctx, struct json_object *part, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *t;
    const char *type;

    if (jsonx_opt_string(part, "type", path, &type, x->err) < 0)
        return -1;
    if (type && strcmp(type, "text") == 0) {
        if (jsonx_req(part, "text", json_type_string, path, &t, x->err) < 0)
            return -1;
        chat_join_text(&x->m->text, t);
    } else if (type && strcmp(type, "image") == 0) {
        return add_image(x->m, part, path, x->err);
    } else if (type && strcmp(type, "document") == 0) {
        return document_text(part, path, &x->m->text, x->err);
    } else if (type) {
        other_block(x, part, type, &x->m->text);
    }
    return 0;
}

/* tool_result content flattened to text: a string as is, a list's text blocks joined by newlines,
 * its images attached to the tool message. */
static int tool_result_message(struct xlate *x, struct json_object *blk, const char *path)
{
    struct json_object *id, *content = NULL;
    struct chat_msg m, *outer = x->m;
    int is_error = 0, rc = -1;
    char name[160];

    chat_msg_init(&m, "tool");
    x->m = &m;
    if (jsonx_req(blk, "tool_use_id", json_type_string, path, &id, x->err) < 0 ||
        jsonx_opt_bool(blk, "is_error", path, &is_error, x->err) < 0)
        goto out;
    json_object_object_get_ex(blk, "content", &content);
    if (content && chat_each_block(content, jsonx_path(name, sizeof name, path, "content"), "content block", &m.text,
                                   tool_result_part, x, x->err) < 0)
        goto out;
    if (is_error) {
        /* Ollama has no error flag on tool messages: the model must read it. */
        struct buf marked;

        buf_init(&marked);
        buf_puts(&marked, "Error: ");
        buf_append(&marked, m.text.data ? m.text.data : "", m.text.len);
        buf_free(&m.text);
        m.text = marked;
    }
    chat_push_answer(x->req, &m, id);
    rc = 0;
out:
    x->m = outer;
    chat_msg_free(&m);
    return rc;
}

static int tool_use_call(struct xlate *x, struct chat_msg *m, struct json_object *blk, const char *path)
{
    struct json_object *id, *name, *input;

    if (jsonx_req(blk, "id", json_type_string, path, &id, x->err) < 0 ||
        jsonx_req(blk, "name", json_type_string, path, &name, x->err) < 0 ||
        jsonx_opt(blk, "input", json_type_object, path, &input, x->err) < 0)
        return -1;
    chat_msg_call(x->req, m, id, name, input ? json_object_get(input) : json_object_new_object());
    return 0;
}

/* Thinking the client sends back. Sent without its text (display "omitted"), it rides in the signature. */
static int thinking_block(struct chat_msg *m, struct json_object *blk, const char *path, struct apierr *err)
{
    struct json_object *t;
    const char *sig = jsonx_string_at(blk, "signature");
    size_t mark = sizeof CHAT_THINKING_MARK - 1;

    if (jsonx_req(blk, "thinking", json_type_string, path, &t, err) < 0)
        return -1;
    if (json_object_get_string_len(t) == 0 && sig && strncmp(sig, CHAT_THINKING_MARK, mark) == 0) {
        size_t before = m->thinking.len;

        if (buf_get_base64(sig + mark, strlen(sig + mark), &m->thinking) < 0)
            m->thinking.len = before;
        return 0;
    }
    buf_append(&m->thinking, json_object_get_string(t), (size_t)json_object_get_string_len(t));
    return 0;
}

/* One block of a user or assistant message. */
static int content_block(void *ctx, struct json_object *blk, const char *path)
{
    struct xlate *x = ctx;
    struct chat_msg *m = x->m;
    int assistant = m->role[0] == 'a';
    struct json_object *t;
    const char *type;

    if (jsonx_req(blk, "type", json_type_string, path, &t, x->err) < 0)
        return -1;
    type = json_object_get_string(t);
    if (strcmp(type, "text") == 0) {
        if (jsonx_req(blk, "text", json_type_string, path, &t, x->err) < 0)
            return -1;
        chat_join_text(&m->text, t);
    } else if (strcmp(type, "image") == 0) {
        return add_image(m, blk, path, x->err);
    } else if (strcmp(type, "document") == 0) {
        return document_text(blk, path, &m->text, x->err);
    } else if (strcmp(type, "tool_result") == 0 && !assistant) {
        return tool_result_message(x, blk, path);
    } else if (strcmp(type, "tool_use") == 0 && assistant) {
        return tool_use_call(x, m, blk, path);
    } else if (strcmp(type, "thinking") == 0 && assistant) {
        return thinking_block(m, blk, path, x->err);
    } else if (strcmp(type, "tool_result") == 0 || strcmp(type, "tool_use") == 0) {
        apierr_field(x->err, path, "a %s block cannot be in a%s message", type, assistant ? "n assistant" : " user");
        return -1;
    } else if (strcmp(type, "thinking") != 0) {
        other_block(x, blk, type, &m->text);
    }
    return 0;
}

static int translate_message(void *ctx, struct json_object *msg, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *content, *v;
    struct chat_msg m;
    struct buf text;
    const char *role;
    char name[160];
    int rc = -1;

    chat_msg_init(&m, "user");
    buf_init(&text);
    if (jsonx_req(msg, "role", json_type_string, path, &v, x->err) < 0)
        goto out;
    role = json_object_get_string(v);
    if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 && strcmp(role, "system") != 0) {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "role"),
                     "expected \"user\", \"assistant\" or \"system\", got \"%s\"", role);
        goto out;
    }
    jsonx_path(name, sizeof name, path, "content");
    if (!json_object_object_get_ex(msg, "content", &content) || !content) {
        apierr_field(x->err, name, "Field required");
        goto out;
    }
    if (strcmp(role, "system") == 0) {
        if (system_text(x, content, name, &text) < 0)
            goto out;
        chat_place_system(x->req, text.data, text.len);
        rc = 0;
        goto out;
    }
    if (role[0] == 'a')
        m.role = "assistant";
    x->m = &m;
    if (chat_each_block(content, name, "content block", &m.text, content_block, x, x->err) < 0)
        goto out;
    /* A user turn made only of tool results has no user message of its own. */
    if (m.role[0] == 'u' && m.text.len == 0 && !m.images && json_object_is_type(content, json_type_array) &&
        json_object_array_length(content) > 0) {
        rc = 0;
        goto out;
    }
    chat_push(x->req, &m);
    rc = 0;
out:
    x->m = NULL;
    chat_msg_free(&m);
    buf_free(&text);
    return rc;
}

static int translate_tool_choice(struct json_object *body, struct chat_tools *t, struct apierr *err)
{
    struct json_object *choice, *v;
    const char *type;
    int parallel_off = 0;   /* Ollama cannot limit parallel calls: checked, not used */

    if (jsonx_opt(body, "tool_choice", json_type_object, "", &choice, err) < 0)
        return -1;
    if (!choice)
        return 0;
    if (jsonx_req(choice, "type", json_type_string, "tool_choice", &v, err) < 0 ||
        jsonx_opt_bool(choice, "disable_parallel_tool_use", "tool_choice", &parallel_off, err) < 0)
        return -1;
    type = json_object_get_string(v);
    if (strcmp(type, "tool") == 0) {
        if (jsonx_req(choice, "name", json_type_string, "tool_choice", &v, err) < 0)
            return -1;
        t->choice = CHAT_TOOLS_ONE;
        t->only = json_object_get_string(v);
        t->only_field = "tool_choice.name";
    } else if (strcmp(type, "none") == 0) {
        t->choice = CHAT_TOOLS_NONE;
    } else if (strcmp(type, "any") == 0) {
        t->choice = CHAT_TOOLS_REQUIRED;
    } else if (strcmp(type, "auto") != 0) {
        apierr_field(err, "tool_choice.type", "expected \"auto\", \"any\", \"tool\" or \"none\", got \"%s\"", type);
        return -1;
    }
    return 0;
}

static int translate_tools(struct json_object *body, struct chat_request *req, struct chat_tools *t,
                           struct apierr *err)
{
    struct json_object *tools, *v;
    char path[64];
    size_t n;

    chat_tools_init(t);
    if (jsonx_opt(body, "tools", json_type_array, "", &tools, err) < 0 ||
        translate_tool_choice(body, t, err) < 0)
        return -1;
    n = tools ? json_object_array_length(tools) : 0;
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
            jsonx_opt(tool, "description", json_type_string, path, &desc, err) < 0 ||
            jsonx_opt(tool, "defer_loading", json_type_boolean, path, &v, err) < 0)
            return -1;
        /* Claude Code's placeholder keeps its tool search on and must never be called: a small model is
         * better off not seeing it. Every other tool, deferred ones included, is offered. */
        if (v && json_object_get_boolean(v) && strcmp(json_object_get_string(name), "DeferredToolPlaceholder") == 0)
            continue;
        chat_offer_tool(req, t, json_object_get_string(name), desc, json_object_get(schema));
    }
    /* An empty tools list offers nothing, and a named choice has nothing to name. */
    if (!tools)
        return 0;
    return chat_tools_done(req, t, err);
}

/* output_config.effort as Ollama's think level: levels a model cannot take become true later, with its
 * facts. A value this translator does not know leaves thinking simply on. */
static int effort_level(struct json_object *body, const char **level, struct apierr *err)
{
    struct json_object *config;
    const char *effort = NULL;

    *level = NULL;
    if (jsonx_opt(body, "output_config", json_type_object, "", &config, err) < 0 ||
        (config && jsonx_opt_string(config, "effort", "output_config", &effort, err) < 0))
        return -1;
    if (effort && (strcmp(effort, "low") == 0 || strcmp(effort, "medium") == 0))
        *level = effort;
    else if (effort && (strcmp(effort, "high") == 0 || strcmp(effort, "xhigh") == 0 || strcmp(effort, "max") == 0))
        *level = "high";
    return 0;
}

static int translate_thinking(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *thinking, *v;
    const char *type, *display, *level;
    long long budget;   /* Ollama cannot bound thinking: checked, not used */
    int present;

    if (jsonx_opt(body, "thinking", json_type_object, "", &thinking, err) < 0)
        return -1;
    if (!thinking)
        return 0;
    if (jsonx_req(thinking, "type", json_type_string, "thinking", &v, err) < 0 ||
        jsonx_opt_int(thinking, "budget_tokens", "thinking", &budget, &present, err) < 0 ||
        jsonx_opt_string(thinking, "display", "thinking", &display, err) < 0)
        return -1;
    type = json_object_get_string(v);
    req->thinking_omitted = display && strcmp(display, "omitted") == 0;
    if (strcmp(type, "enabled") == 0 || strcmp(type, "adaptive") == 0) {
        if (effort_level(body, &level, err) < 0)
            return -1;
        req->parts.think = level ? json_object_new_string(level) : json_object_new_boolean(1);
    } else if (strcmp(type, "disabled") == 0) {
        req->parts.think = json_object_new_boolean(0);
    } else {
        apierr_field(err, "thinking.type", "expected \"enabled\", \"adaptive\" or \"disabled\", got \"%s\"", type);
        return -1;
    }
    return 0;
}

static int translate_options(struct json_object *body, struct chat_request *req, int need_max_tokens,
                             struct apierr *err)
{
    static const struct chat_option options[] = {
        { .name = "temperature" }, { .name = "top_p" }, { .name = "top_k", .integer = 1 },
    };
    struct json_object *v;
    int present;

    /* The Messages API takes at least one token; count_tokens has no use for the field. */
    if (chat_max_tokens(body, "max_tokens", need_max_tokens ? 1 : 0, &present, req, err) < 0)
        return -1;
    if (!present && need_max_tokens) {
        apierr_field(err, "max_tokens", "Field required");
        return -1;
    }
    if (chat_copy_options(body, "", options, sizeof options / sizeof *options, req, err) < 0 ||
        jsonx_opt(body, "stop_sequences", json_type_array, "", &v, err) < 0)
        return -1;
    return chat_set_stop(req, v, "stop_sequences", MAX_STOP_SEQUENCES, err);
}

/* Fields Ollama has no use for are still checked, as Anthropic checks them. */
static const struct chat_field ignored_fields[] = {
    { "metadata", json_type_object }, { "service_tier", json_type_string }, { "output_config", json_type_object },
    { "context_management", json_type_object },
};

static int check_ignored_fields(struct json_object *body, struct apierr *err)
{
    struct json_object *metadata;
    const char *s;

    if (chat_check_fields(body, ignored_fields, sizeof ignored_fields / sizeof *ignored_fields, err) < 0)
        return -1;
    json_object_object_get_ex(body, "metadata", &metadata);
    return metadata ? jsonx_opt_string(metadata, "user_id", "metadata", &s, err) : 0;
}

/* A message thread (the tool runner of @anthropic-ai/sdk sends one by default) is a conversation kept on the
 * server. "create" asks the server to keep this one: it is answered, and nothing is kept. "continue" sends only
 * the new messages of a thread this server never holds: the answer is the SDK's "thread_not_found", on which it
 * sends the whole conversation again under a new thread, instead of a model answering a lone tool result. */
static int check_thread(struct json_object *body, struct apierr *err)
{
    struct json_object *thread;
    const char *type;

    if (jsonx_opt(body, "thread", json_type_object, "", &thread, err) < 0)
        return -1;
    if (!thread)
        return 0;
    if (jsonx_opt_string(thread, "type", "thread", &type, err) < 0)
        return -1;
    if (type && strcmp(type, "create") == 0)
        return 0;
    if (type && strcmp(type, "continue") == 0) {
        apierr_set(err, APIERR_NOT_FOUND, 404, "thread not found: this server keeps no threads; "
                   "send the whole conversation with thread type \"create\"");
        err->code = "thread_not_found";
        return -1;
    }
    apierr_field(err, "thread.type", "expected \"create\" or \"continue\"");
    return -1;
}

/* The body of /v1/messages; count_tokens's needs no max_tokens. */
static int anthropic_translate(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                               struct chat_request *req, struct apierr *err)
{
    int for_count = call->route->kind == ROUTE_COUNT;
    struct json_object *messages, *sys;
    struct xlate x = { .req = req, .err = err };
    struct chat_msg system;
    int rc = -1;

    chat_msg_init(&system, "system");
    if (check_thread(body, err) < 0 || chat_preamble(call, body, cfg, req, err) < 0 ||
        jsonx_req(body, "messages", json_type_array, "", &messages, err) < 0 ||
        check_ignored_fields(body, err) < 0 ||
        translate_options(body, req, !for_count, err) < 0 || translate_thinking(body, req, err) < 0 ||
        translate_tools(body, req, &x.tools, err) < 0)
        goto out;
    if (json_object_object_get_ex(body, "system", &sys) && sys) {
        if (system_text(&x, sys, "system", &system.text) < 0)
            goto out;
        if (system.text.len)
            chat_push(req, &system);
    }
    rc = chat_each_message(messages, "messages", for_count, translate_message, &x, err);
out:
    chat_msg_free(&system);
    return rc;
}


/* ---- the stream machine ---- */

enum block { BLOCK_NONE, BLOCK_THINKING, BLOCK_TEXT };

struct astream {
    struct stream_state out;
    int next_index;
    enum block open;
    struct buf thinking;            /* display "omitted": the block's thinking, sent in its signature */
};

static void astream_free(void *st)
{
    buf_free(&((struct astream *)st)->thinking);
}

/* A thinking block's signature. Ollama has none; clients keep it and send it back, so it is a stable
 * local one -- or, when the text was omitted, the text itself, for the next request to give back to
 * Ollama as Anthropic's own signatures carry it. */
static void put_signature(struct buf *b, const struct chat_request *req, const char *thinking, size_t n)
{
    if (!req->thinking_omitted) {
        buf_puts(b, "ollama-fcgi");
        return;
    }
    buf_puts(b, CHAT_THINKING_MARK);
    buf_put_base64(b, thinking, n);
}

static int astream_begin(void *st)
{
    struct astream *s = st;

    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"message_start\",\"message\":{\"id\":");
    jsonx_put_string(&s->out.data, s->out.req->id, strlen(s->out.req->id));
    buf_puts(&s->out.data, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    jsonx_put_string(&s->out.data, s->out.req->client_model, strlen(s->out.req->client_model));
    buf_printf(&s->out.data, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":%lld,"
               "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0}}}",
               s->out.req->estimated_tokens);
    return chat_send(&s->out, "message_start");
}

static int close_block(struct astream *s)
{
    int index = s->next_index - 1;

    if (s->open == BLOCK_NONE)
        return 0;
    if (s->open == BLOCK_THINKING) {
        buf_reset(&s->out.data);
        buf_puts(&s->out.data, "{\"type\":\"content_block_delta\",\"index\":");
        buf_put_int(&s->out.data, index);
        /* Base64 and the mark need no escaping. */
        buf_puts(&s->out.data, ",\"delta\":{\"type\":\"signature_delta\",\"signature\":\"");
        put_signature(&s->out.data, s->out.req, s->thinking.data, s->thinking.len);
        buf_reset(&s->thinking);
        buf_puts(&s->out.data, "\"}}");
        if (chat_send(&s->out, "content_block_delta") < 0)
            return -1;
    }
    s->open = BLOCK_NONE;
    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"content_block_stop\",\"index\":");
    buf_put_int(&s->out.data, index);
    buf_putc(&s->out.data, '}');
    return chat_send(&s->out, "content_block_stop");
}

static int open_block(struct astream *s, enum block kind)
{
    if (s->open == kind)
        return 0;
    if (close_block(s) < 0)
        return -1;
    s->open = kind;
    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"content_block_start\",\"index\":");
    buf_put_int(&s->out.data, s->next_index++);
    buf_puts(&s->out.data, kind == BLOCK_THINKING
                           ? ",\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}}"
                           : ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    return chat_send(&s->out, "content_block_start");
}

static int astream_delta(void *st, enum chat_part part, const char *str, size_t n)
{
    struct astream *s = st;
    enum block kind = part == CHAT_THINKING ? BLOCK_THINKING : BLOCK_TEXT;

    if (open_block(s, kind) < 0)
        return -1;
    if (kind == BLOCK_THINKING && s->out.req->thinking_omitted) {
        buf_append(&s->thinking, str, n);
        return 0;
    }
    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"content_block_delta\",\"index\":");
    buf_put_int(&s->out.data, s->next_index - 1);
    buf_puts(&s->out.data, kind == BLOCK_THINKING ? ",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":"
                                              : ",\"delta\":{\"type\":\"text_delta\",\"text\":");
    jsonx_put_string(&s->out.data, str, n);
    buf_puts(&s->out.data, "}}");
    return chat_send(&s->out, "content_block_delta");
}

/* Claude Code reads a tool's input only from input_json_delta, never from content_block_start. */
static int astream_tool_call(void *st, const char *id, const char *name, struct json_object *args)
{
    struct astream *s = st;
    struct buf text;
    int index;

    if (close_block(s) < 0)
        return -1;
    index = s->next_index++;
    buf_reset(&s->out.data);
    buf_printf(&s->out.data, "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":",
               index);
    jsonx_put_string(&s->out.data, id, strlen(id));
    buf_puts(&s->out.data, ",\"name\":");
    jsonx_put_string(&s->out.data, name, strlen(name));
    buf_puts(&s->out.data, ",\"input\":{}}}");
    if (chat_send(&s->out, "content_block_start") < 0)
        return -1;
    buf_reset(&s->out.data);
    buf_printf(&s->out.data, "{\"type\":\"content_block_delta\",\"index\":%d,\"delta\":{\"type\":\"input_json_delta\","
               "\"partial_json\":", index);
    buf_init(&text);
    jsonx_write(&text, args);
    jsonx_put_string(&s->out.data, text.data, text.len);
    buf_free(&text);
    buf_puts(&s->out.data, "}}");
    if (chat_send(&s->out, "content_block_delta") < 0)
        return -1;
    buf_reset(&s->out.data);
    buf_printf(&s->out.data, "{\"type\":\"content_block_stop\",\"index\":%d}", index);
    return chat_send(&s->out, "content_block_stop");
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
    buf_reset(&s->out.data);
    buf_printf(&s->out.data, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":",
               stop_reason(f->reason));
    if (f->stop_sequence)
        jsonx_put_string(&s->out.data, f->stop_sequence, strlen(f->stop_sequence));
    else
        buf_puts(&s->out.data, "null");
    /* Anthropic's input_tokens leaves out what the cache read; an Ollama that does not say keeps the
     * usage as it always was. */
    if (f->cached_tokens >= 0)
        buf_printf(&s->out.data, "},\"usage\":{\"input_tokens\":%lld,\"cache_creation_input_tokens\":0,"
                   "\"cache_read_input_tokens\":%lld,\"output_tokens\":%lld}}", f->input_tokens - f->cached_tokens,
                   f->cached_tokens, f->output_tokens);
    else
        buf_printf(&s->out.data, "},\"usage\":{\"input_tokens\":%lld,\"output_tokens\":%lld}}", f->input_tokens,
                   f->output_tokens);
    if (chat_send(&s->out, "message_delta") < 0)
        return -1;
    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"message_stop\"}");
    return chat_send(&s->out, "message_stop");
}

/* Where Anthropic's names differ from the ones every dialect shares (chat.c). */
static const char *const error_types[APIERR_N] = {
    [APIERR_TOO_LARGE] = "request_too_large",
    [APIERR_API] = "api_error",
};

/* The error codes Anthropic itself sends in error.details.error_code, which its SDK acts on; OpenAI's codes
 * (model_not_found, context_length_exceeded) are not Anthropic's and stay out of its bodies. */
static const char *const error_codes[] = { "thread_not_found" };

static const char *error_code(const struct apierr *e)
{
    for (size_t i = 0; e->code && i < sizeof error_codes / sizeof *error_codes; i++)
        if (strcmp(e->code, error_codes[i]) == 0)
            return error_codes[i];
    return NULL;
}

static void error_json(const struct apierr *e, struct buf *out)
{
    const char *code = error_code(e);

    buf_puts(out, "{\"type\":\"error\",\"error\":{\"type\":\"");
    buf_puts(out, chat_error_type(&anthropic_dialect, e->kind));
    buf_puts(out, "\",\"message\":");
    jsonx_put_string(out, e->message, strlen(e->message));
    if (code)
        buf_printf(out, ",\"details\":{\"error_code\":\"%s\"}", code);
    buf_puts(out, "}");
}

/* A failure after the stream began: an error event, never a message_stop that pretends success. */
static int astream_error(void *st, const struct apierr *e)
{
    struct astream *s = st;

    buf_reset(&s->out.data);
    error_json(e, &s->out.data);
    buf_puts(&s->out.data, "}");
    return chat_send(&s->out, "error");
}

static int astream_ping(void *st)
{
    struct astream *s = st;

    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"ping\"}");
    return chat_send(&s->out, "ping");
}

static const struct stream_ops astream_ops = {
    .begin = astream_begin, .delta = astream_delta, .tool_call = astream_tool_call,
    .finish = astream_finish, .error = astream_error, .ping = astream_ping,
};

/* ---- whole replies and errors ---- */

/* A new content block of the given type, at the end of content. */
static struct json_object *add_block(struct json_object *content, const char *type)
{
    struct json_object *blk = json_object_new_object();

    json_object_object_add(blk, "type", json_object_new_string(type));
    json_object_array_add(content, blk);
    return blk;
}

static void anthropic_reply(const struct chat_request *req, const struct chat_reply *r, struct buf *out)
{
    struct json_object *o = json_object_new_object(), *content = json_object_new_array(), *blk, *usage;
    long long cached = r->finish.cached_tokens > 0 ? r->finish.cached_tokens : 0;

    json_object_object_add(o, "id", json_object_new_string(req->id));
    json_object_object_add(o, "type", json_object_new_string("message"));
    json_object_object_add(o, "role", json_object_new_string("assistant"));
    json_object_object_add(o, "model", json_object_new_string(req->client_model));
    if (r->thinking.len) {
        struct buf sig;

        buf_init(&sig);
        put_signature(&sig, req, r->thinking.data, r->thinking.len);
        blk = add_block(content, "thinking");
        json_object_object_add(blk, "thinking", req->thinking_omitted ? json_object_new_string("")
                                                                       : jsonx_string(r->thinking.data, r->thinking.len));
        json_object_object_add(blk, "signature", jsonx_string(sig.data, sig.len));
        buf_free(&sig);
    }
    if (r->text.len)
        json_object_object_add(add_block(content, "text"), "text", jsonx_string(r->text.data, r->text.len));
    for (size_t i = 0; i < r->n_calls; i++) {
        blk = add_block(content, "tool_use");
        json_object_object_add(blk, "id", json_object_new_string(r->calls[i].id));
        json_object_object_add(blk, "name", json_object_new_string(r->calls[i].name));
        json_object_object_add(blk, "input", json_object_get(r->calls[i].args));
    }
    json_object_object_add(o, "content", content);
    json_object_object_add(o, "stop_reason", json_object_new_string(stop_reason(r->finish.reason)));
    json_object_object_add(o, "stop_sequence",
                           r->finish.stop_sequence ? json_object_new_string(r->finish.stop_sequence) : NULL);
    usage = json_object_new_object();
    json_object_object_add(usage, "input_tokens", json_object_new_int64(r->finish.input_tokens - cached));
    json_object_object_add(usage, "cache_creation_input_tokens", json_object_new_int(0));
    json_object_object_add(usage, "cache_read_input_tokens", json_object_new_int64(cached));
    json_object_object_add(usage, "output_tokens", json_object_new_int64(r->finish.output_tokens));
    json_object_object_add(o, "usage", usage);
    jsonx_write(out, o);
    json_object_put(o);
}

static void anthropic_error_body(const struct dialect *d, const struct apierr *e, const char *request_id,
                                 struct buf *out)
{
    (void)d;
    error_json(e, out);
    if (request_id) {
        buf_puts(out, ",\"request_id\":");
        jsonx_put_string(out, request_id, strlen(request_id));
    }
    buf_puts(out, "}");
}

static void anthropic_count_reply(const struct chat_request *req, struct buf *out)
{
    buf_printf(out, "{\"input_tokens\":%lld}", req->estimated_tokens);
}

static struct json_object *model_json(struct json_object *m)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "type", json_object_new_string("model"));
    json_object_object_add(o, "id", json_object_new_string(models_name(m)));
    json_object_object_add(o, "display_name", json_object_new_string(models_name(m)));
    json_object_object_add(o, "created_at", json_object_new_string(models_modified(m)));
    return o;
}

/* Anthropic's paged list, all on one page; or one model. */
static struct json_object *anthropic_models(struct json_object *tags, const char *id)
{
    struct json_object *data = models_each(tags, id, model_json), *o, *first, *last, *v;
    size_t n;

    if (id || !data)
        return data;
    n = json_object_array_length(data);
    first = n ? json_object_array_get_idx(data, 0) : NULL;
    last = n ? json_object_array_get_idx(data, n - 1) : NULL;
    o = json_object_new_object();
    json_object_object_add(o, "data", data);
    json_object_object_add(o, "has_more", json_object_new_boolean(0));
    json_object_object_add(o, "first_id", first && json_object_object_get_ex(first, "id", &v) ? json_object_get(v) : NULL);
    json_object_object_add(o, "last_id", last && json_object_object_get_ex(last, "id", &v) ? json_object_get(v) : NULL);
    return o;
}

/* "" too: clients given a base URL without /v1 (@ai-sdk/anthropic, Continue) post to /messages. */
static const char *const bases[] = { "/v1", "", NULL };
static const char *const key_headers[] = { "HTTP_X_API_KEY", NULL };

/* The model list is Anthropic's only for Anthropic's clients, which send anthropic-version; OpenAI's
 * clients get theirs from the same path. */
static const struct dialect_route routes[] = {
    { .method = "POST", .path = "/messages", .kind = ROUTE_CHAT, .stream = ROUTE_STREAM_BODY },
    { .method = "POST", .path = "/messages/count_tokens", .kind = ROUTE_COUNT },
    { .method = "GET", .path = "/models", .kind = ROUTE_MODELS, .header = "HTTP_ANTHROPIC_VERSION" },
    { .method = "GET", .path = "/models/{model}", .kind = ROUTE_MODELS, .header = "HTTP_ANTHROPIC_VERSION" },
    { 0 },
};

const struct dialect anthropic_dialect = {
    .name = "anthropic", .bases = bases, .routes = routes, .key_headers = key_headers, .wire = &wire_sse,
    .id_prefix = "msg_", .tool_prefix = "toolu_", .overloaded_status = 529, .error_types = error_types,
    .translate = anthropic_translate, .state_size = sizeof(struct astream), .ops = &astream_ops,
    .state_free = astream_free, .reply = anthropic_reply, .count_reply = anthropic_count_reply,
    .models = anthropic_models, .error_body = anthropic_error_body,
};
