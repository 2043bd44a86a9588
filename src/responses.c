/* responses.c -- the OpenAI Responses dialect (Codex CLI, client.responses): request translation, the SSE
 * stream machine, whole replies. Stateless, as Ollama's own: every turn carries the whole conversation. */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "openai.h"


/* ---- what the reply needs from the request: req->extra ----
 *
 * {"echo": {fields every response object repeats}, "custom": {name: true}, "namespaced": {"ns.member":
 *  ["ns", "member"]}, "summary": bool, "encrypted": bool} */

static struct json_object *extra_get(const struct chat_request *req, const char *key)
{
    struct json_object *v = NULL;

    json_object_object_get_ex(req->extra, key, &v);
    return v;
}

static int extra_flag(const struct chat_request *req, const char *key)
{
    struct json_object *v = extra_get(req, key);

    return v && json_object_get_boolean(v);
}

/* ---- request translation ---- */

struct xlate {
    struct chat_request *req;
    struct chat_msg *m;               /* the message whose parts are being read */
    struct apierr *err;
};

/* A part of a message's content, or of a tool output's. */
static int content_part(void *ctx, struct json_object *part, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *t, *v;
    const char *type, *name = NULL;
    char field[200];

    if (jsonx_req(part, "type", json_type_string, path, &t, x->err) < 0)
        return -1;
    type = json_object_get_string(t);
    if (strcmp(type, "input_image") == 0) {
        if (jsonx_opt(part, "image_url", json_type_string, path, &v, x->err) < 0)
            return -1;
        if (!v) {
            apierr_field(x->err, jsonx_path(field, sizeof field, path, "image_url"), "Ollama takes images inline: give "
                         "image_url as a data:image/...;base64,... URI (file_id needs state this server does not keep)");
            return -1;
        }
        return openai_data_uri_image(x->m, json_object_get_string(v), jsonx_path(field, sizeof field, path, "image_url"),
                                     x->err);
    }
    if (strcmp(type, "input_file") == 0) {
        if (jsonx_opt_string(part, "filename", path, &name, x->err) < 0)
            return -1;
        if (x->m->text.len)
            buf_putc(&x->m->text, '\n');
        buf_printf(&x->m->text, "[file%s%s%s not included: Ollama cannot read files]", name ? " \"" : "",
                   name ? name : "", name ? "\"" : "");
        return 0;
    }
    /* input_text, output_text, refusal, summary_text, reasoning_text and the part types yet to come: their
     * text, when they have one. */
    if (jsonx_opt(part, strcmp(type, "refusal") == 0 ? "refusal" : "text", json_type_string, path, &v, x->err) < 0)
        return -1;
    if (v)
        chat_join_text(&x->m->text, v);
    return 0;
}

static int content_into(struct xlate *x, struct chat_msg *m, struct json_object *content, const char *path)
{
    struct chat_msg *outer = x->m;
    int rc;

    x->m = m;
    rc = content ? chat_each_block(content, path, "content part", &m->text, content_part, x, x->err) : 0;
    x->m = outer;
    return rc;
}

/* A message's content read into a new message of the role, which its caller hands on or frees. */
static int read_message(struct xlate *x, struct chat_msg *m, const char *role, struct json_object *content,
                        const char *field)
{
    chat_msg_init(m, role);
    if (content_into(x, m, content, field) == 0)
        return 0;
    chat_msg_free(m);
    return -1;
}

/* The assistant message a reasoning or message item joins. One turn comes as several items, in the order
 * reasoning, message, calls, and they join one message; a reasoning or message item after the turn's text or
 * calls begins the next turn, which stays a message of its own, as Ollama's own Responses layer keeps it. */
static struct chat_msg *assistant_turn(struct chat_request *req)
{
    struct chat_msg next;

    if (req->has_last && strcmp(req->last.role, "assistant") == 0 && (req->last.text.len || req->last.calls)) {
        chat_msg_init(&next, "assistant");
        chat_push(req, &next);
    }
    return chat_open(req, "assistant");
}

static int message_item(struct xlate *x, struct json_object *item, const char *path)
{
    struct json_object *content;
    struct chat_msg m, *turn;
    const char *role;
    char field[200];

    if (chat_role_and_content(item, path, &role, &content, field, sizeof field, x->err) < 0)
        return -1;
    if (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0 && !chat_is_system_role(role)) {
        apierr_field(x->err, jsonx_path(field, sizeof field, path, "role"),
                     "expected \"user\", \"assistant\", \"system\" or \"developer\", got \"%s\"", role);
        return -1;
    }
    if (read_message(x, &m, role[0] == 'u' ? "user" : "assistant", content, field) < 0)
        return -1;
    if (chat_is_system_role(role)) {
        chat_place_system(x->req, m.text.data, m.text.len);
    } else if (role[0] == 'u') {
        chat_push(x->req, &m);
    } else if (m.text.len) {
        turn = assistant_turn(x->req);
        buf_append(&turn->text, m.text.data, m.text.len);
    }
    chat_msg_free(&m);
    return 0;
}

/* The name Ollama knows a called tool by: "ns.member" for a tool of a namespace, the member's own name when it
 * already begins with "ns." (muse.read_file in namespace muse), which a second prefix would only garble. */
static void ollama_tool_name(const char *name, const char *ns, struct buf *out)
{
    size_t n = ns ? strlen(ns) : 0;

    buf_reset(out);
    if (n && !(strncmp(name, ns, n) == 0 && name[n] == '.')) {
        buf_puts(out, ns);
        buf_putc(out, '.');
    }
    buf_puts(out, name);
}

/* function_call and custom_tool_call: a call of the assistant turn they belong to. */
static int call_item(struct xlate *x, struct json_object *item, const char *path, int custom)
{
    struct json_object *call_id, *name, *v, *args, *full;
    const char *ns = NULL;
    struct buf tool;
    char field[200];

    if (jsonx_req(item, "call_id", json_type_string, path, &call_id, x->err) < 0 ||
        jsonx_req(item, "name", json_type_string, path, &name, x->err) < 0 ||
        jsonx_opt_string(item, "namespace", path, &ns, x->err) < 0)
        return -1;
    if (custom) {
        /* A custom tool is offered to Ollama as a function of one string, "input". */
        if (jsonx_opt(item, "input", json_type_string, path, &v, x->err) < 0)
            return -1;
        args = json_object_new_object();
        json_object_object_add(args, "input", v ? json_object_get(v) : json_object_new_string(""));
    } else {
        if (jsonx_opt(item, "arguments", json_type_string, path, &v, x->err) < 0)
            return -1;
        args = openai_arguments(x->req, v, jsonx_path(field, sizeof field, path, "arguments"), x->err);
        if (!args)
            return -1;
    }
    buf_init(&tool);
    ollama_tool_name(json_object_get_string(name), ns, &tool);
    full = jsonx_string(tool.data, tool.len);
    chat_msg_call(x->req, chat_open(x->req, "assistant"), call_id, full, args);
    json_object_put(full);
    buf_free(&tool);
    return 0;
}

/* function_call_output and custom_tool_call_output: what the client's tool said. */
static int output_item(struct xlate *x, struct json_object *item, const char *path)
{
    struct json_object *call_id, *output = NULL;
    struct chat_msg m;
    char field[200];
    int rc = -1;

    chat_msg_init(&m, "tool");
    if (jsonx_req(item, "call_id", json_type_string, path, &call_id, x->err) < 0)
        goto out;
    json_object_object_get_ex(item, "output", &output);
    if (content_into(x, &m, output, jsonx_path(field, sizeof field, path, "output")) < 0)
        goto out;
    chat_push_answer(x->req, &m, call_id);
    rc = 0;
out:
    chat_msg_free(&m);
    return rc;
}

/* A reasoning item: the thinking of the assistant turn it belongs to. What this adapter wrote comes back
 * whole in encrypted_content; another server's reasoning gives its content, or else its summary. */
static int reasoning_item(struct xlate *x, struct json_object *item, const char *path)
{
    struct json_object *enc = NULL, *v = NULL;
    struct chat_msg *turn;
    struct buf thinking;
    const char *e;

    if (jsonx_opt(item, "encrypted_content", json_type_string, path, &enc, x->err) < 0)
        return -1;
    buf_init(&thinking);
    e = enc ? json_object_get_string(enc) : "";
    if (strncmp(e, CHAT_THINKING_MARK, sizeof CHAT_THINKING_MARK - 1) != 0 ||
        buf_get_base64(e + sizeof CHAT_THINKING_MARK - 1, strlen(e) - (sizeof CHAT_THINKING_MARK - 1), &thinking) < 0) {
        buf_reset(&thinking);
        json_object_object_get_ex(item, "content", &v);
        chat_join_texts(&thinking, v);
        if (thinking.len == 0 && json_object_object_get_ex(item, "summary", &v))
            chat_join_texts(&thinking, v);
    }
    turn = assistant_turn(x->req);
    buf_append(&turn->thinking, thinking.data ? thinking.data : "", thinking.len);
    buf_free(&thinking);
    return 0;
}

/* An item this adapter cannot use (a hosted tool's call, another agent's message, a reference to stored
 * state, a type yet to come): its text, if it has any, reaches the model as a note; otherwise it is left
 * out. Never an error that would end the client's session. */
static void other_item(struct xlate *x, struct json_object *item, const char *type)
{
    struct json_object *v = NULL;
    struct chat_msg m;

    chat_msg_init(&m, "user");
    if (json_object_object_get_ex(item, "content", &v) && v) {
        if (json_object_is_type(v, json_type_string))
            chat_join_text(&m.text, v);
        else
            chat_join_texts(&m.text, v);
    }
    if (m.text.len == 0 && json_object_object_get_ex(item, "text", &v) && json_object_is_type(v, json_type_string))
        chat_join_text(&m.text, v);
    if (m.text.len) {
        struct buf note;

        buf_init(&note);
        buf_printf(&note, "[%s] ", type);
        buf_append(&note, m.text.data, m.text.len);
        chat_place_system(x->req, note.data, note.len);
        buf_free(&note);
    }
    chat_msg_free(&m);
}

static int input_item(void *ctx, struct json_object *item, const char *path)
{
    struct xlate *x = ctx;
    const char *type = NULL;

    if (jsonx_opt_string(item, "type", path, &type, x->err) < 0)
        return -1;
    /* An item with a role and no type is a message. */
    if (!type || strcmp(type, "message") == 0)
        return message_item(x, item, path);
    if (strcmp(type, "function_call") == 0)
        return call_item(x, item, path, 0);
    if (strcmp(type, "custom_tool_call") == 0)
        return call_item(x, item, path, 1);
    if (strcmp(type, "function_call_output") == 0 || strcmp(type, "custom_tool_call_output") == 0)
        return output_item(x, item, path);
    if (strcmp(type, "reasoning") == 0)
        return reasoning_item(x, item, path);
    other_item(x, item, type);
    return 0;
}

static int translate_input(struct xlate *x, struct json_object *body)
{
    struct json_object *input = NULL;
    struct chat_msg m;

    json_object_object_get_ex(body, "input", &input);
    if (!input) {
        apierr_field(x->err, "input", "Field required");
        return -1;
    }
    if (json_object_is_type(input, json_type_string)) {
        chat_msg_init(&m, "user");
        chat_join_text(&m.text, input);
        chat_push(x->req, &m);
        return 0;
    }
    if (!json_object_is_type(input, json_type_array)) {
        apierr_field(x->err, "input", "expected a string or an array of items, got %s",
                     jsonx_type_name(json_object_get_type(input)));
        return -1;
    }
    return chat_each_message(input, "input", 0, input_item, x, x->err);
}

/* ---- tools ---- */

/* A custom tool's one parameter: its input as a string, with the grammar it follows when it has one. */
static struct json_object *custom_parameters(struct json_object *tool, const char *path, struct apierr *err)
{
    struct json_object *format, *props = json_object_new_object(), *input = json_object_new_object(), *p, *req;
    const char *syntax = NULL, *definition = NULL;
    struct buf desc;

    buf_init(&desc);
    if (jsonx_opt(tool, "format", json_type_object, path, &format, err) < 0 ||
        (format && (jsonx_opt_string(format, "syntax", path, &syntax, err) < 0 ||
                    jsonx_opt_string(format, "definition", path, &definition, err) < 0))) {
        json_object_put(props);
        json_object_put(input);
        return NULL;
    }
    buf_puts(&desc, "The tool's whole input, as plain text (not JSON)");
    if (definition)
        buf_printf(&desc, ". It follows this %s grammar:\n%s", syntax ? syntax : "", definition);
    json_object_object_add(input, "type", json_object_new_string("string"));
    json_object_object_add(input, "description", jsonx_string(desc.data, desc.len));
    json_object_object_add(props, "input", input);
    p = json_object_new_object();
    req = json_object_new_array();
    json_object_array_add(req, json_object_new_string("input"));
    json_object_object_add(p, "type", json_object_new_string("object"));
    json_object_object_add(p, "properties", props);
    json_object_object_add(p, "required", req);
    buf_free(&desc);
    return p;
}

/* A custom tool's description, for a model that calls it as a function: the caller puts it. */
static struct json_object *custom_description(struct json_object *desc)
{
    struct buf text;
    struct json_object *o;

    buf_init(&text);
    if (desc)
        buf_append(&text, json_object_get_string(desc), (size_t)json_object_get_string_len(desc));
    buf_puts(&text, text.len ? "\n\n" : "");
    buf_puts(&text, "Call it as a function whose one parameter, input, holds the whole input as plain text.");
    o = jsonx_string(text.data, text.len);
    buf_free(&text);
    return o;
}

struct tools_ctx {
    struct chat_request *req;
    struct chat_tools choice;
    struct json_object *custom;       /* borrowed from extra */
    struct json_object *namespaced;   /* likewise */
    struct apierr *err;
};

static int one_tool(struct tools_ctx *t, struct json_object *tool, const char *path, const char *ns);

static int namespace_tool(struct tools_ctx *t, struct json_object *tool, const char *path)
{
    struct json_object *name, *members;
    char field[200];

    if (jsonx_req(tool, "name", json_type_string, path, &name, t->err) < 0 ||
        jsonx_req(tool, "tools", json_type_array, path, &members, t->err) < 0)
        return -1;
    jsonx_path(field, sizeof field, path, "tools");
    for (size_t i = 0; i < json_object_array_length(members); i++) {
        struct json_object *member = json_object_array_get_idx(members, i);
        char mpath[220];

        jsonx_path_idx(mpath, sizeof mpath, field, i);
        if (!json_object_is_type(member, json_type_object)) {
            apierr_field(t->err, mpath, "expected an object, got %s", jsonx_type_name(json_object_get_type(member)));
            return -1;
        }
        if (one_tool(t, member, mpath, json_object_get_string(name)) < 0)
            return -1;
    }
    return 0;
}

static int one_tool(struct tools_ctx *t, struct json_object *tool, const char *path, const char *ns)
{
    struct json_object *name, *desc, *params, *pair;
    const char *type = NULL;
    struct buf full;

    if (jsonx_opt_string(tool, "type", path, &type, t->err) < 0)
        return -1;
    if (type && strcmp(type, "namespace") == 0 && !ns)
        return namespace_tool(t, tool, path);
    /* Hosted tools (web_search, file_search, code_interpreter, ...) run on OpenAI's side: none here. */
    if (type && strcmp(type, "function") != 0 && strcmp(type, "custom") != 0)
        return 0;
    if (jsonx_req(tool, "name", json_type_string, path, &name, t->err) < 0 ||
        jsonx_opt(tool, "description", json_type_string, path, &desc, t->err) < 0)
        return -1;
    if (type && strcmp(type, "custom") == 0) {
        params = custom_parameters(tool, path, t->err);
        if (!params)
            return -1;
        json_object_object_add(t->custom, json_object_get_string(name), json_object_new_boolean(1));
        desc = custom_description(desc);
    } else {
        if (jsonx_opt(tool, "parameters", json_type_object, path, &params, t->err) < 0)
            return -1;
        params = params ? json_object_get(params) : NULL;
    }
    buf_init(&full);
    ollama_tool_name(json_object_get_string(name), ns, &full);
    if (ns) {
        pair = json_object_new_array();
        json_object_array_add(pair, json_object_new_string(ns));
        json_object_array_add(pair, json_object_get(name));
        json_object_object_add(t->namespaced, full.data, pair);
    }
    chat_offer_tool(t->req, &t->choice, full.data, desc, params);
    if (type && strcmp(type, "custom") == 0)
        json_object_put(desc);
    buf_free(&full);
    return 0;
}

static int translate_tools(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct tools_ctx t = { .req = req, .custom = json_object_new_object(), .namespaced = json_object_new_object(),
                           .err = err };
    struct json_object *tools;
    char path[64];
    int rc = -1;

    chat_tools_init(&t.choice);
    json_object_object_add(req->extra, "custom", t.custom);
    json_object_object_add(req->extra, "namespaced", t.namespaced);
    if (jsonx_opt(body, "tools", json_type_array, "", &tools, err) < 0 ||
        openai_tool_choice(body, &t.choice, err) < 0)
        goto out;
    for (size_t i = 0; tools && i < json_object_array_length(tools); i++) {
        struct json_object *tool = json_object_array_get_idx(tools, i);

        snprintf(path, sizeof path, "tools.%zu", i);
        if (!json_object_is_type(tool, json_type_object)) {
            apierr_field(err, path, "expected an object, got %s", jsonx_type_name(json_object_get_type(tool)));
            goto out;
        }
        if (one_tool(&t, tool, path, NULL) < 0)
            goto out;
    }
    rc = tools ? chat_tools_done(req, &t.choice, err) : 0;
out:
    return rc;
}

/* ---- options, and the fields every response object repeats ---- */

/* Fields kept for the reply as the client gave them, or their defaults. */
static void echo(struct json_object *body, struct json_object *out, const char *key, struct json_object *dflt)
{
    struct json_object *v = NULL;

    if (json_object_object_get_ex(body, key, &v) && v) {
        json_object_put(dflt);
        json_object_object_add(out, key, json_object_get(v));
    } else {
        json_object_object_add(out, key, dflt);
    }
}

static int translate_options(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    static const struct chat_option options[] = { { .name = "temperature" }, { .name = "top_p" } };
    struct json_object *reasoning, *text, *format, *v = NULL;
    const char *effort = NULL, *summary = NULL;
    int present;

    if (chat_max_tokens(body, "max_output_tokens", 1, &present, req, err) < 0 ||
        chat_copy_options(body, "", options, sizeof options / sizeof *options, req, err) < 0 ||
        jsonx_opt(body, "reasoning", json_type_object, "", &reasoning, err) < 0 ||
        (reasoning && (jsonx_opt_string(reasoning, "effort", "reasoning", &effort, err) < 0 ||
                       jsonx_opt_string(reasoning, "summary", "reasoning", &summary, err) < 0)) ||
        (effort && openai_reasoning_effort(effort, "reasoning.effort", req, err) < 0) ||
        jsonx_opt(body, "text", json_type_object, "", &text, err) < 0 ||
        (text && jsonx_opt(text, "format", json_type_object, "text", &format, err) < 0))
        return -1;
    if (text && format && openai_format(format, "text.format", req, err) < 0)
        return -1;
    json_object_object_add(req->extra, "summary", json_object_new_boolean(summary != NULL));
    json_object_object_get_ex(body, "stop", &v);
    return chat_set_stop(req, v, "stop", OPENAI_MAX_STOP, err);
}

/* A conversation kept on the server cannot be continued here: the client must send it whole. */
static int check_stateless(struct json_object *body, struct apierr *err)
{
    static const char *const stored[] = { "previous_response_id", "conversation" };
    struct json_object *v;
    int background = 0;

    for (size_t i = 0; i < sizeof stored / sizeof *stored; i++) {
        if (json_object_object_get_ex(body, stored[i], &v) && v) {
            apierr_field(err, stored[i], "this server keeps no conversations (like Ollama's own Responses API): "
                         "send the whole conversation in input, with store false");
            return -1;
        }
    }
    if (jsonx_opt_bool(body, "background", "", &background, err) < 0)
        return -1;
    if (background) {
        apierr_field(err, "background", "background responses need state this server does not keep");
        return -1;
    }
    return 0;
}

/* Fields Ollama has no use for are still checked, as OpenAI checks them. */
static const struct chat_field ignored_fields[] = {
    { "parallel_tool_calls", json_type_boolean }, { "store", json_type_boolean }, { "prompt_cache_key", json_type_string },
    { "truncation", json_type_string }, { "user", json_type_string }, { "safety_identifier", json_type_string },
    { "service_tier", json_type_string }, { "metadata", json_type_object }, { "client_metadata", json_type_object },
    { "stream_options", json_type_object }, { "include", json_type_array }, { "top_logprobs", json_type_int },
    { "max_tool_calls", json_type_int },
};

/* Whether include asks for reasoning.encrypted_content, where this adapter keeps a turn's thinking. */
static int wants_encrypted(struct json_object *body)
{
    struct json_object *include;

    if (!json_object_object_get_ex(body, "include", &include) || !json_object_is_type(include, json_type_array))
        return 0;
    for (size_t i = 0; i < json_object_array_length(include); i++) {
        struct json_object *v = json_object_array_get_idx(include, i);

        if (json_object_is_type(v, json_type_string) &&
            strcmp(json_object_get_string(v), "reasoning.encrypted_content") == 0)
            return 1;
    }
    return 0;
}

static void keep_echo(struct json_object *body, struct chat_request *req)
{
    struct json_object *e = json_object_new_object(), *text = json_object_new_object(), *format;

    format = json_object_new_object();
    json_object_object_add(format, "type", json_object_new_string("text"));
    json_object_object_add(text, "format", format);
    echo(body, e, "instructions", NULL);
    echo(body, e, "max_output_tokens", NULL);
    echo(body, e, "parallel_tool_calls", json_object_new_boolean(1));
    echo(body, e, "reasoning", json_object_new_object());
    echo(body, e, "store", json_object_new_boolean(0));
    echo(body, e, "temperature", NULL);
    echo(body, e, "text", text);
    echo(body, e, "tool_choice", json_object_new_string("auto"));
    echo(body, e, "tools", json_object_new_array());
    echo(body, e, "top_p", NULL);
    echo(body, e, "metadata", json_object_new_object());
    json_object_object_add(req->extra, "echo", e);
    json_object_object_add(req->extra, "encrypted", json_object_new_boolean(wants_encrypted(body)));
}

static int responses_translate(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                               struct chat_request *req, struct apierr *err)
{
    struct xlate x = { .req = req, .err = err };
    struct json_object *instructions;

    req->extra = json_object_new_object();
    if (chat_preamble(call, body, cfg, req, err) < 0 || check_stateless(body, err) < 0 ||
        chat_check_fields(body, ignored_fields, sizeof ignored_fields / sizeof *ignored_fields, err) < 0 ||
        translate_options(body, req, err) < 0 || translate_tools(body, req, err) < 0 ||
        jsonx_opt(body, "instructions", json_type_string, "", &instructions, err) < 0)
        return -1;
    keep_echo(body, req);
    if (instructions)
        chat_place_system(req, json_object_get_string(instructions), (size_t)json_object_get_string_len(instructions));
    return translate_input(&x, body);
}

/* ---- output items, the same whether streamed or whole ---- */

/* How a tool call Ollama made goes back: a custom tool's as a custom_tool_call with its input, a tool of a
 * namespace under its own name with the namespace beside it, any other as a function_call. */
struct call_shape {
    int custom;
    const char *ns;                   /* NULL when the tool has none */
    const char *name;
    const char *input;                /* a custom call's input, in the arguments object or in args */
    size_t input_len;
    struct buf args;                  /* owned: the arguments' JSON text */
};

/* Borrows args (an object), which must outlive c; call_shape_free frees what c holds. */
static void call_shape(const struct chat_request *req, const char *name, struct json_object *args,
                       struct call_shape *c)
{
    struct json_object *pair, *v;

    memset(c, 0, sizeof *c);
    c->name = name;
    buf_init(&c->args);
    jsonx_write(&c->args, args);
    if (json_object_object_get_ex(extra_get(req, "namespaced"), name, &pair)) {
        c->ns = json_object_get_string(json_object_array_get_idx(pair, 0));
        c->name = json_object_get_string(json_object_array_get_idx(pair, 1));
    }
    if (!json_object_object_get_ex(extra_get(req, "custom"), name, &v))
        return;
    c->custom = 1;
    c->input = c->args.data;
    c->input_len = c->args.len;
    if (json_object_object_get_ex(args, "input", &v) && json_object_is_type(v, json_type_string)) {
        c->input = json_object_get_string(v);
        c->input_len = (size_t)json_object_get_string_len(v);
    }
}

static void call_shape_free(struct call_shape *c)
{
    buf_free(&c->args);
}

static void string_field(struct buf *b, const char *k, const char *s, size_t n)
{
    jsonx_put_key(b, k);
    jsonx_put_string(b, s, n);
}

/* The item ids of one response: its own id's random part, a letter for the item, its index. */
static void item_id(struct buf *b, const struct chat_request *req, const char *prefix, int index)
{
    const char *suffix = req->id + strcspn(req->id, "_");

    buf_puts(b, prefix);
    buf_puts(b, *suffix ? suffix + 1 : req->id);
    buf_putc(b, '_');
    buf_put_int(b, index);
}

static void write_id(struct buf *b, const struct chat_request *req, const char *prefix, int index)
{
    struct buf id;

    buf_init(&id);
    item_id(&id, req, prefix, index);
    string_field(b, "id", id.data, id.len);
    buf_free(&id);
}

static void message_item_json(struct buf *b, const struct chat_request *req, int index, const char *status,
                              const char *text, size_t n, int with_part)
{
    buf_puts(b, "{\"type\":\"message\"");
    write_id(b, req, "msg_", index);
    buf_printf(b, ",\"status\":\"%s\",\"role\":\"assistant\",\"content\":[", status);
    if (with_part) {
        buf_puts(b, "{\"type\":\"output_text\",\"text\":");
        jsonx_put_string(b, text, n);
        buf_puts(b, ",\"annotations\":[],\"logprobs\":[]}");
    }
    buf_puts(b, "]}");
}

static void reasoning_item_json(struct buf *b, const struct chat_request *req, int index, const char *text, size_t n,
                                int done)
{
    buf_puts(b, "{\"type\":\"reasoning\"");
    write_id(b, req, "rs_", index);
    buf_puts(b, extra_flag(req, "summary") ? ",\"summary\":[" : ",\"summary\":[],\"content\":[");
    if (done) {
        buf_puts(b, extra_flag(req, "summary") ? "{\"type\":\"summary_text\",\"text\":" : "{\"type\":\"reasoning_text\",\"text\":");
        jsonx_put_string(b, text, n);
        buf_putc(b, '}');
    }
    buf_putc(b, ']');
    if (done && extra_flag(req, "encrypted")) {
        jsonx_put_key(b, "encrypted_content");
        buf_puts(b, "\"" CHAT_THINKING_MARK);
        buf_put_base64(b, text, n);
        buf_putc(b, '"');
    }
    buf_putc(b, '}');
}

static void call_item_json(struct buf *b, const struct chat_request *req, int index, const char *status, const char *id,
                           const struct call_shape *c, const char *args, size_t args_len)
{
    buf_puts(b, c->custom ? "{\"type\":\"custom_tool_call\"" : "{\"type\":\"function_call\"");
    write_id(b, req, c->custom ? "ctc_" : "fc_", index);
    buf_printf(b, ",\"status\":\"%s\"", status);
    string_field(b, "call_id", id, strlen(id));
    string_field(b, "name", c->name, strlen(c->name));
    if (c->ns)
        string_field(b, "namespace", c->ns, strlen(c->ns));
    if (c->custom)
        string_field(b, "input", c->input, c->input_len);
    else
        string_field(b, "arguments", args, args_len);
    buf_putc(b, '}');
}

/* The response object: every field but output, which the caller has written into output (a JSON array's
 * inside, "" for none), and usage (NULL: none yet). */
static void response_json(struct buf *b, const struct chat_request *req, const char *status, const char *output,
                          size_t output_len, const struct chat_finish *usage, const char *incomplete,
                          const struct apierr *error)
{
    struct json_object *e = extra_get(req, "echo");

    buf_puts(b, "{\"id\":");
    jsonx_put_string(b, req->id, strlen(req->id));
    buf_puts(b, ",\"object\":\"response\",\"created_at\":");
    buf_put_int(b, req->created);
    buf_printf(b, ",\"status\":\"%s\",\"background\":false,\"error\":", status);
    if (error) {
        buf_printf(b, "{\"code\":\"%s\",\"message\":", error->code ? error->code
                   : error->kind == APIERR_RATE_LIMIT ? "rate_limit_exceeded" : "server_error");
        jsonx_put_string(b, error->message, strlen(error->message));
        buf_putc(b, '}');
    } else {
        buf_puts(b, "null");
    }
    if (incomplete)
        buf_printf(b, ",\"incomplete_details\":{\"reason\":\"%s\"}", incomplete);
    else
        buf_puts(b, ",\"incomplete_details\":null");
    string_field(b, "model", req->client_model, strlen(req->client_model));
    buf_puts(b, ",\"output\":[");
    buf_append(b, output, output_len);
    buf_putc(b, ']');
    json_object_object_foreach(e, k, v) {
        jsonx_put_key(b, k);
        jsonx_write(b, v);
    }
    buf_puts(b, ",\"usage\":");
    if (usage)
        buf_printf(b, "{\"input_tokens\":%lld,\"input_tokens_details\":{\"cached_tokens\":%lld},\"output_tokens\":%lld,"
                   "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":%lld}", usage->input_tokens,
                   usage->cached_tokens > 0 ? usage->cached_tokens : 0, usage->output_tokens,
                   chat_sum_tokens(usage->input_tokens, usage->output_tokens));
    else
        buf_puts(b, "null");
    buf_putc(b, '}');
}

/* ---- the stream machine ---- */

enum item { ITEM_NONE, ITEM_REASONING, ITEM_MESSAGE };

struct rstream {
    struct stream_state out;
    long long seq;                    /* sequence_number of the next event */
    int index;                        /* output_index of the next item */
    enum item open;
    struct buf text;                  /* the open item's text so far */
    struct buf items;                 /* every finished item, comma-separated, for the last event */
    struct buf scratch;
    struct buf pos;                   /* the open item's position, written once for all its deltas */
    const struct part_events *reasoning;   /* a reasoning item's events: summary or content, as asked */
};

/* Starts an event: {"type":…,"sequence_number":…, the caller adds the rest and send_event closes it. */
static void event(struct rstream *s, const char *type)
{
    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"type\":\"");
    buf_puts(&s->out.data, type);
    buf_puts(&s->out.data, "\",\"sequence_number\":");
    buf_put_int(&s->out.data, s->seq++);
}

static int send_event(struct rstream *s, const char *type)
{
    buf_putc(&s->out.data, '}');
    return chat_send(&s->out, type);
}

/* The position of the open item's text: item_id, output_index and the part's index. */
static void position_to(struct rstream *s, struct buf *b, const char *part_key)
{
    jsonx_put_key(b, "item_id");
    buf_putc(b, '"');
    item_id(b, s->out.req, s->open == ITEM_REASONING ? "rs_" : "msg_", s->index);
    buf_puts(b, "\",\"output_index\":");
    buf_put_int(b, s->index);
    buf_printf(b, ",\"%s\":0", part_key);
}

static void position(struct rstream *s, const char *part_key)
{
    position_to(s, &s->out.data, part_key);
}

static int item_event(struct rstream *s, const char *type, const char *item, size_t len)
{
    event(s, type);
    buf_puts(&s->out.data, ",\"output_index\":");
    buf_put_int(&s->out.data, s->index);
    jsonx_put_key(&s->out.data, "item");
    buf_append(&s->out.data, item, len);
    return send_event(s, type);
}

static int whole_response_event(struct rstream *s, const char *type, const char *status, const struct chat_finish *f,
                                const char *incomplete, const struct apierr *error)
{
    event(s, type);
    jsonx_put_key(&s->out.data, "response");
    response_json(&s->out.data, s->out.req, status, s->items.data ? s->items.data : "", s->items.len, f, incomplete,
                  error);
    return send_event(s, type);
}

/* The events of one kind of text part, each following the same lifecycle: the part added, its deltas, its text
 * done, the part done. A reasoning item's text is a summary when the client asked for one, else its content
 * (reasoning_text), whose part is opened and closed like a message's: stream helpers that accumulate the
 * response (openai's responses.stream) refuse a delta for a part never added. */
struct part_events {
    const char *added, *delta, *text_done, *done;
    const char *index_key;            /* summary_index or content_index */
    const char *part_type;
    const char *part_tail;            /* what the part carries after its text */
};

static const struct part_events output_part = {
    .added = "response.content_part.added", .delta = "response.output_text.delta",
    .text_done = "response.output_text.done", .done = "response.content_part.done",
    .index_key = "content_index", .part_type = "output_text", .part_tail = ",\"annotations\":[],\"logprobs\":[]",
};
static const struct part_events summary_part = {
    .added = "response.reasoning_summary_part.added", .delta = "response.reasoning_summary_text.delta",
    .text_done = "response.reasoning_summary_text.done", .done = "response.reasoning_summary_part.done",
    .index_key = "summary_index", .part_type = "summary_text", .part_tail = "",
};
static const struct part_events reasoning_part = {
    .added = "response.content_part.added", .delta = "response.reasoning_text.delta",
    .text_done = "response.reasoning_text.done", .done = "response.content_part.done",
    .index_key = "content_index", .part_type = "reasoning_text", .part_tail = "",
};

static int rstream_begin(void *st)
{
    struct rstream *s = st;

    s->reasoning = extra_flag(s->out.req, "summary") ? &summary_part : &reasoning_part;
    if (whole_response_event(s, "response.created", "in_progress", NULL, NULL, NULL) < 0)
        return -1;
    return whole_response_event(s, "response.in_progress", "in_progress", NULL, NULL, NULL);
}

static const struct part_events *part_events(struct rstream *s, enum item kind)
{
    return kind == ITEM_MESSAGE ? &output_part : s->reasoning;
}

/* A part event: its position and the part with its text so far. */
static int part_event(struct rstream *s, const struct part_events *p, const char *name, const char *text, size_t n)
{
    event(s, name);
    position(s, p->index_key);
    buf_printf(&s->out.data, ",\"part\":{\"type\":\"%s\",\"text\":", p->part_type);
    jsonx_put_string(&s->out.data, text, n);
    buf_puts(&s->out.data, p->part_tail);
    buf_putc(&s->out.data, '}');
    return send_event(s, name);
}

static int open_item(struct rstream *s, enum item kind)
{
    buf_reset(&s->scratch);
    buf_reset(&s->text);
    s->open = kind;
    if (kind == ITEM_REASONING)
        reasoning_item_json(&s->scratch, s->out.req, s->index, "", 0, 0);
    else
        message_item_json(&s->scratch, s->out.req, s->index, "in_progress", "", 0, 0);
    if (item_event(s, "response.output_item.added", s->scratch.data, s->scratch.len) < 0)
        return -1;
    buf_reset(&s->pos);
    position_to(s, &s->pos, part_events(s, kind)->index_key);
    return part_event(s, part_events(s, kind), part_events(s, kind)->added, "", 0);
}

/* Ends the open item: its .done events with the whole text, then output_item.done, which clients act on. */
static int close_item(struct rstream *s)
{
    enum item kind = s->open;
    const char *text = s->text.data ? s->text.data : "";
    const struct part_events *p;

    if (kind == ITEM_NONE)
        return 0;
    p = part_events(s, kind);
    event(s, p->text_done);
    position(s, p->index_key);
    string_field(&s->out.data, "text", text, s->text.len);
    if (send_event(s, p->text_done) < 0 || part_event(s, p, p->done, text, s->text.len) < 0)
        return -1;
    buf_reset(&s->scratch);
    if (kind == ITEM_REASONING)
        reasoning_item_json(&s->scratch, s->out.req, s->index, text, s->text.len, 1);
    else
        message_item_json(&s->scratch, s->out.req, s->index, "completed", text, s->text.len, 1);
    s->open = ITEM_NONE;
    if (s->items.len)
        buf_putc(&s->items, ',');
    buf_append(&s->items, s->scratch.data, s->scratch.len);
    if (item_event(s, "response.output_item.done", s->scratch.data, s->scratch.len) < 0)
        return -1;
    s->index++;
    return 0;
}

static int rstream_delta(void *st, enum chat_part part, const char *str, size_t n)
{
    struct rstream *s = st;
    enum item kind = part == CHAT_THINKING ? ITEM_REASONING : ITEM_MESSAGE;
    const struct part_events *p;

    if (s->open != kind && (close_item(s) < 0 || open_item(s, kind) < 0))
        return -1;
    buf_append(&s->text, str, n);
    p = part_events(s, kind);
    event(s, p->delta);
    buf_append(&s->out.data, s->pos.data, s->pos.len);
    string_field(&s->out.data, "delta", str, n);
    if (kind == ITEM_MESSAGE)
        buf_puts(&s->out.data, ",\"logprobs\":[]");
    return send_event(s, p->delta);
}

/* A tool call arrives whole from Ollama: added, its arguments (or input) in one delta, done. */
static int rstream_tool_call(void *st, const char *id, const char *name, struct json_object *args)
{
    struct rstream *s = st;
    struct call_shape c;
    const char *kind;
    int rc = -1;

    call_shape(s->out.req, name, args, &c);
    if (close_item(s) < 0)
        goto out;
    buf_reset(&s->scratch);
    call_item_json(&s->scratch, s->out.req, s->index, "in_progress", id, &c, "", 0);
    if (item_event(s, "response.output_item.added", s->scratch.data, s->scratch.len) < 0)
        goto out;
    kind = c.custom ? "response.custom_tool_call_input" : "response.function_call_arguments";
    for (int done = 0; done < 2; done++) {
        buf_reset(&s->scratch);
        buf_printf(&s->scratch, "%s.%s", kind, done ? "done" : "delta");
        event(s, s->scratch.data);
        jsonx_put_key(&s->out.data, "item_id");
        buf_putc(&s->out.data, '"');
        item_id(&s->out.data, s->out.req, c.custom ? "ctc_" : "fc_", s->index);
        buf_puts(&s->out.data, "\",\"output_index\":");
        buf_put_int(&s->out.data, s->index);
        if (c.custom)
            string_field(&s->out.data, done ? "input" : "delta", c.input, c.input_len);
        else
            string_field(&s->out.data, done ? "arguments" : "delta", c.args.data, c.args.len);
        if (send_event(s, s->scratch.data) < 0)
            goto out;
    }
    buf_reset(&s->scratch);
    call_item_json(&s->scratch, s->out.req, s->index, "completed", id, &c, c.args.data, c.args.len);
    if (s->items.len)
        buf_putc(&s->items, ',');
    buf_append(&s->items, s->scratch.data, s->scratch.len);
    if (item_event(s, "response.output_item.done", s->scratch.data, s->scratch.len) < 0)
        goto out;
    s->index++;
    rc = 0;
out:
    call_shape_free(&c);
    return rc;
}

static int rstream_finish(void *st, const struct chat_finish *f)
{
    struct rstream *s = st;

    if (close_item(s) < 0)
        return -1;
    if (strcmp(f->reason, "length") == 0)
        return whole_response_event(s, "response.incomplete", "incomplete", f, "max_output_tokens", NULL);
    return whole_response_event(s, "response.completed", "completed", f, NULL, NULL);
}

/* A failure after the stream began: response.failed with the error, never a stream that just ends. The
 * item in progress is left unfinished, so a client does not keep half of it. */
static int rstream_error(void *st, const struct apierr *e)
{
    return whole_response_event(st, "response.failed", "failed", NULL, NULL, e);
}

static int rstream_ping(void *st)
{
    return wire_keepalive(((struct rstream *)st)->out.sink);
}

static void rstream_free(void *st)
{
    struct rstream *s = st;

    buf_free(&s->text);
    buf_free(&s->items);
    buf_free(&s->scratch);
    buf_free(&s->pos);
}

static const struct stream_ops rstream_ops = {
    .begin = rstream_begin, .delta = rstream_delta, .tool_call = rstream_tool_call,
    .finish = rstream_finish, .error = rstream_error, .ping = rstream_ping,
};

/* ---- whole replies ---- */

static void responses_reply(const struct chat_request *req, const struct chat_reply *r, struct buf *out)
{
    int length = strcmp(r->finish.reason, "length") == 0, index = 0;
    struct buf items;

    buf_init(&items);
    if (r->thinking.len)
        reasoning_item_json(&items, req, index++, r->thinking.data, r->thinking.len, 1);
    if (r->text.len) {
        if (items.len)
            buf_putc(&items, ',');
        message_item_json(&items, req, index++, "completed", r->text.data, r->text.len, 1);
    }
    for (size_t i = 0; i < r->n_calls; i++) {
        struct call_shape c;

        call_shape(req, r->calls[i].name, r->calls[i].args, &c);
        if (items.len)
            buf_putc(&items, ',');
        call_item_json(&items, req, index++, "completed", r->calls[i].id, &c, c.args.data, c.args.len);
        call_shape_free(&c);
    }
    response_json(out, req, length ? "incomplete" : "completed", items.data ? items.data : "", items.len, &r->finish,
                  length ? "max_output_tokens" : NULL, NULL);
    /* The SDKs compute output_text from output themselves; a plain HTTP client gets it here. */
    out->len--;
    string_field(out, "output_text", r->text.data ? r->text.data : "", r->text.len);
    buf_putc(out, '}');
    buf_free(&items);
}

static const char *const bases[] = { "/v1", "", NULL };
static const char *const key_headers[] = { "HTTP_X_API_KEY", NULL };

static const struct dialect_route routes[] = {
    { .method = "POST", .path = "/responses", .kind = ROUTE_CHAT, .stream = ROUTE_STREAM_BODY },
    { 0 },
};

const struct dialect responses_dialect = {
    .name = "responses", .bases = bases, .routes = routes, .key_headers = key_headers, .wire = &wire_sse,
    .id_prefix = "resp_", .tool_prefix = "call_", .overloaded_status = 503, .keeps_output = 1,
    .error_types = openai_error_types, .translate = responses_translate, .state_size = sizeof(struct rstream),
    .ops = &rstream_ops, .state_free = rstream_free, .reply = responses_reply, .error_body = openai_error_body,
};
