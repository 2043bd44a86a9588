/* gemini.c -- the Google Gemini API dialect (generateContent, streamGenerateContent, countTokens): request
 * translation, the stream machine for both of Google's stream wires, whole replies, errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "jsonx.h"
#include "models.h"

extern const struct dialect gemini_dialect;

#define MAX_STOP 16

/* What the reply needs from the request, kept in req->extra: includeThoughts, without which thought parts
 * are not sent (Google hides them). */
#define EXTRA_THOUGHTS "thoughts"

/* ---- request translation ---- */

struct xlate {
    struct chat_request *req;
    struct apierr *err;
    struct chat_msg *m;             /* the turn whose parts are being read */
    struct json_object *answered;   /* owned: functionResponse ids already given; a resumed session repeats them */
};

static void lower_string(struct json_object *s)
{
    char *low;

    if (!json_object_is_type(s, json_type_string))
        return;
    low = xstrdup(json_object_get_string(s));
    for (char *p = low; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    json_object_set_string(s, low);
    free(low);
}

/* Every "type" in a schema lower-cased: Google's OpenAPI subset says "OBJECT", "STRING", and the CLI's own
 * responseJsonSchema does too; JSON Schema, which Ollama's templates show the model, says "object". A
 * "type" that holds an object (a property called type) is walked like any other value. */
static void lower_types(struct json_object *o)
{
    if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            lower_types(json_object_array_get_idx(o, i));
        return;
    }
    if (!json_object_is_type(o, json_type_object))
        return;
    json_object_object_foreach(o, key, val) {
        if (strcmp(key, "type") == 0 && json_object_is_type(val, json_type_string)) {
            lower_string(val);
        } else if (strcmp(key, "type") == 0 && json_object_is_type(val, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(val); i++)
                lower_string(json_object_array_get_idx(val, i));
        } else {
            lower_types(val);
        }
    }
}

/* A new reference to a lower-cased deep copy of schema. */
static struct json_object *schema_copy(struct json_object *schema)
{
    struct json_object *copy = NULL;

    if (json_object_deep_copy(schema, &copy, NULL) < 0)
        abort();
    lower_types(copy);
    return copy;
}

/* inlineData {mimeType, data}: base64 bytes, which Ollama takes as an image. */
static int inline_data(struct xlate *x, struct json_object *part, const char *path)
{
    struct json_object *blob, *data;
    const char *mime = NULL;
    char name[200];

    if (jsonx_req(part, "inlineData", json_type_object, path, &blob, x->err) < 0)
        return -1;
    jsonx_path(name, sizeof name, path, "inlineData");
    if (jsonx_req(blob, "data", json_type_string, name, &data, x->err) < 0 ||
        jsonx_opt_string(blob, "mimeType", name, &mime, x->err) < 0)
        return -1;
    if (mime && strncmp(mime, "image/", 6) != 0) {
        apierr_field(x->err, jsonx_path(name, sizeof name, name, "mimeType"),
                     "only images can go to Ollama inline, got \"%s\"", mime);
        return -1;
    }
    chat_msg_image(x->m, data);
    return 0;
}

/* functionCall {id, name, args}: an Ollama tool call, args an object. */
static int function_call(struct xlate *x, struct json_object *part, const char *path)
{
    struct json_object *fc, *id, *name, *args;
    char fpath[200];

    if (jsonx_req(part, "functionCall", json_type_object, path, &fc, x->err) < 0)
        return -1;
    jsonx_path(fpath, sizeof fpath, path, "functionCall");
    if (jsonx_opt(fc, "id", json_type_string, fpath, &id, x->err) < 0 ||
        jsonx_req(fc, "name", json_type_string, fpath, &name, x->err) < 0 ||
        jsonx_opt(fc, "args", json_type_object, fpath, &args, x->err) < 0)
        return -1;
    chat_msg_call(x->req, x->m, id, name, args ? json_object_get(args) : json_object_new_object());
    return 0;
}

/* The words of a function's response for the model: {"output": "text"}, the CLI's shape, is the text;
 * anything else its JSON. */
static void response_text(struct json_object *resp, struct buf *out)
{
    struct json_object *v;
    const char *s;
    size_t n;

    if (json_object_object_length(resp) == 1 && json_object_object_get_ex(resp, "output", &v) &&
        json_object_is_type(v, json_type_string)) {
        buf_append(out, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        return;
    }
    s = jsonx_text(resp, &n);
    buf_append(out, s, n);
}

/* The user turn's text and images so far, before a tool result that comes after them. */
static void flush_user(struct xlate *x)
{
    if (x->m->text.len || x->m->images)
        chat_push(x->req, x->m);
}

/* functionResponse {id, name, response}: a tool message; one whose id was already answered (a resumed
 * session gives the last results twice) is left out. */
static int function_response(struct xlate *x, struct json_object *part, const char *path)
{
    struct json_object *fr, *id, *name, *resp;
    struct chat_msg m;
    char fpath[200];

    if (jsonx_req(part, "functionResponse", json_type_object, path, &fr, x->err) < 0)
        return -1;
    jsonx_path(fpath, sizeof fpath, path, "functionResponse");
    if (jsonx_opt(fr, "id", json_type_string, fpath, &id, x->err) < 0 ||
        jsonx_req(fr, "name", json_type_string, fpath, &name, x->err) < 0 ||
        jsonx_req(fr, "response", json_type_object, fpath, &resp, x->err) < 0)
        return -1;
    if (id) {
        if (json_object_object_get_ex(x->answered, json_object_get_string(id), NULL))
            return 0;
        json_object_object_add(x->answered, json_object_get_string(id), NULL);
    }
    flush_user(x);
    chat_msg_init(&m, "tool");
    response_text(resp, &m.text);
    m.tool_name = json_object_get(name);
    m.tool_call_id = json_object_get(id);
    chat_push(x->req, &m);
    return 0;
}

/* Parts that only Google's own servers make (code execution's) are left out with a note. */
static const char *const hosted_parts[] = { "executableCode", "codeExecutionResult", "toolCall", "toolResponse" };

static int other_part(struct xlate *x, struct json_object *part, const char *path)
{
    for (size_t i = 0; i < sizeof hosted_parts / sizeof *hosted_parts; i++)
        if (json_object_object_get_ex(part, hosted_parts[i], NULL)) {
            chat_note_dropped(x->req, hosted_parts[i]);
            return 0;
        }
    if (json_object_object_get_ex(part, "fileData", NULL)) {
        apierr_field(x->err, path, "fileData is not supported: Ollama cannot fetch a file by URI; send the bytes "
                     "as inlineData");
        return -1;
    }
    apierr_field(x->err, path, "expected a part with text, inlineData, functionCall or functionResponse");
    return -1;
}

static int user_part(void *ctx, struct json_object *part, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *v;

    if (json_object_object_get_ex(part, "text", NULL)) {
        if (jsonx_req(part, "text", json_type_string, path, &v, x->err) < 0)
            return -1;
        chat_join_text(&x->m->text, v);
        return 0;
    }
    if (json_object_object_get_ex(part, "inlineData", NULL))
        return inline_data(x, part, path);
    if (json_object_object_get_ex(part, "functionResponse", NULL))
        return function_response(x, part, path);
    if (json_object_object_get_ex(part, "functionCall", NULL)) {
        apierr_field(x->err, path, "a functionCall belongs in a turn of role \"model\"");
        return -1;
    }
    return other_part(x, part, path);
}

static int model_part(void *ctx, struct json_object *part, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *v;
    int thought = 0;

    if (json_object_object_get_ex(part, "text", NULL)) {
        if (jsonx_req(part, "text", json_type_string, path, &v, x->err) < 0 ||
            jsonx_opt_bool(part, "thought", path, &thought, x->err) < 0)
            return -1;
        chat_join_text(thought ? &x->m->thinking : &x->m->text, v);
        return 0;
    }
    if (json_object_object_get_ex(part, "functionCall", NULL))
        return function_call(x, part, path);
    if (json_object_object_get_ex(part, "inlineData", NULL) ||
        json_object_object_get_ex(part, "functionResponse", NULL)) {
        apierr_field(x->err, path, "a turn of role \"model\" holds text and functionCall parts only");
        return -1;
    }
    return other_part(x, part, path);
}

/* One Content {role, parts}: "model" is the assistant; "user" (or none, or the older "function") the user,
 * whose functionResponse parts become tool messages where they stand. */
static int translate_content(void *ctx, struct json_object *content, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *parts;
    const char *role = NULL;
    struct chat_msg m;
    char name[160];
    int model, rc = -1;

    if (jsonx_opt_string(content, "role", path, &role, x->err) < 0 ||
        jsonx_req(content, "parts", json_type_array, path, &parts, x->err) < 0)
        return -1;
    model = role && strcmp(role, "model") == 0;
    if (role && !model && strcmp(role, "user") != 0 && strcmp(role, "function") != 0) {
        apierr_field(x->err, jsonx_path(name, sizeof name, path, "role"), "expected \"user\" or \"model\", got \"%s\"",
                     role);
        return -1;
    }
    chat_msg_init(&m, model ? "assistant" : "user");
    x->m = &m;
    if (chat_each_block(parts, jsonx_path(name, sizeof name, path, "parts"), "part", &m.text,
                        model ? model_part : user_part, x, x->err) < 0)
        goto out;
    /* A user turn that held only tool results has nothing left to push. */
    if (model || m.text.len || m.images || json_object_array_length(parts) == 0)
        chat_push(x->req, &m);
    rc = 0;
out:
    x->m = NULL;
    chat_msg_free(&m);
    return rc;
}

static int system_part(void *ctx, struct json_object *part, const char *path)
{
    struct xlate *x = ctx;
    struct json_object *v;

    if (jsonx_req(part, "text", json_type_string, path, &v, x->err) < 0)
        return -1;
    chat_join_text(&x->m->text, v);
    return 0;
}

/* systemInstruction: a Content whose role means nothing; its text parts are the system message. */
static int translate_system(struct xlate *x, struct json_object *body)
{
    struct json_object *sys, *parts;
    struct chat_msg m;
    int rc = -1;

    if (jsonx_opt(body, "systemInstruction", json_type_object, "", &sys, x->err) < 0)
        return -1;
    if (!sys)
        return 0;
    if (jsonx_req(sys, "parts", json_type_array, "systemInstruction", &parts, x->err) < 0)
        return -1;
    chat_msg_init(&m, "system");
    x->m = &m;
    if (chat_each_block(parts, "systemInstruction.parts", "part", &m.text, system_part, x, x->err) < 0)
        goto out;
    if (m.text.len)
        chat_push(x->req, &m);
    rc = 0;
out:
    x->m = NULL;
    chat_msg_free(&m);
    return rc;
}

/* ---- tools ---- */

struct tools {
    struct chat_tools t;
    struct json_object *allowed;    /* owned: allowedFunctionNames, each -> whether it was declared; NULL: all */
};

/* toolConfig.functionCallingConfig {mode, allowedFunctionNames}, as the other dialects' tool_choice. */
static int tool_config(struct json_object *body, struct tools *t, struct apierr *err)
{
    struct json_object *tc, *fcc, *names;
    const char *mode = NULL;
    char name[96];

    if (jsonx_opt(body, "toolConfig", json_type_object, "", &tc, err) < 0 ||
        (tc && jsonx_opt(tc, "functionCallingConfig", json_type_object, "toolConfig", &fcc, err) < 0))
        return -1;
    if (!tc || !fcc)
        return 0;
    if (jsonx_opt_string(fcc, "mode", "toolConfig.functionCallingConfig", &mode, err) < 0 ||
        jsonx_opt(fcc, "allowedFunctionNames", json_type_array, "toolConfig.functionCallingConfig", &names,
                  err) < 0)
        return -1;
    if (names)
        t->allowed = json_object_new_object();
    for (size_t i = 0; names && i < json_object_array_length(names); i++) {
        struct json_object *n = json_object_array_get_idx(names, i);

        if (!json_object_is_type(n, json_type_string)) {
            apierr_field(err, jsonx_path_idx(name, sizeof name, "toolConfig.functionCallingConfig.allowedFunctionNames",
                                             i), "expected a string");
            return -1;
        }
        json_object_object_add(t->allowed, json_object_get_string(n), json_object_new_boolean(0));
    }
    if (!mode || strcmp(mode, "AUTO") == 0 || strcmp(mode, "VALIDATED") == 0 ||
        strcmp(mode, "MODE_UNSPECIFIED") == 0)
        t->t.choice = CHAT_TOOLS_AUTO;
    else if (strcmp(mode, "ANY") == 0)
        t->t.choice = CHAT_TOOLS_REQUIRED;
    else if (strcmp(mode, "NONE") == 0)
        t->t.choice = CHAT_TOOLS_NONE;
    else {
        apierr_field(err, "toolConfig.functionCallingConfig.mode",
                     "expected \"AUTO\", \"ANY\", \"NONE\" or \"VALIDATED\", got \"%s\"", mode);
        return -1;
    }
    return 0;
}

static int declaration(struct chat_request *req, struct tools *t, struct json_object *fd, const char *path,
                       struct apierr *err)
{
    struct json_object *name, *desc, *js, *oas;
    const char *n;

    if (jsonx_req(fd, "name", json_type_string, path, &name, err) < 0 ||
        jsonx_opt(fd, "description", json_type_string, path, &desc, err) < 0 ||
        jsonx_opt(fd, "parametersJsonSchema", json_type_object, path, &js, err) < 0 ||
        jsonx_opt(fd, "parameters", json_type_object, path, &oas, err) < 0)
        return -1;
    n = json_object_get_string(name);
    if (t->allowed) {
        if (!json_object_object_get_ex(t->allowed, n, NULL))
            return 0;
        json_object_object_add(t->allowed, n, json_object_new_boolean(1));
    }
    chat_offer_tool(req, &t->t, n, desc, js ? schema_copy(js) : oas ? schema_copy(oas) : NULL);
    return 0;
}

/* Tools that run on Google's side (googleSearch, urlContext, codeExecution, ...): left out, noted. */
static int one_tool(struct chat_request *req, struct tools *t, struct json_object *tool, const char *path,
                    struct apierr *err)
{
    struct json_object *decls;
    char name[96], dpath[128];

    if (jsonx_opt(tool, "functionDeclarations", json_type_array, path, &decls, err) < 0)
        return -1;
    json_object_object_foreach(tool, key, val) {
        (void)val;
        if (strcmp(key, "functionDeclarations") != 0)
            chat_note_dropped(req, key);
    }
    jsonx_path(name, sizeof name, path, "functionDeclarations");
    for (size_t i = 0; decls && i < json_object_array_length(decls); i++) {
        struct json_object *fd = json_object_array_get_idx(decls, i);

        jsonx_path_idx(dpath, sizeof dpath, name, i);
        if (!json_object_is_type(fd, json_type_object)) {
            apierr_field(err, dpath, "expected an object, got %s", jsonx_type_name(json_object_get_type(fd)));
            return -1;
        }
        if (declaration(req, t, fd, dpath, err) < 0)
            return -1;
    }
    return 0;
}

static int allowed_declared(const struct tools *t, struct apierr *err)
{
    if (!t->allowed)
        return 0;
    json_object_object_foreach(t->allowed, n, declared) {
        if (!json_object_get_boolean(declared)) {
            apierr_field(err, "toolConfig.functionCallingConfig.allowedFunctionNames",
                         "no function named \"%s\" in tools", n);
            return -1;
        }
    }
    return 0;
}

static int translate_tools(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *list;
    struct tools t = { .allowed = NULL };
    char path[64];
    int rc = -1;

    chat_tools_init(&t.t);
    if (jsonx_opt(body, "tools", json_type_array, "", &list, err) < 0 || tool_config(body, &t, err) < 0)
        goto out;
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        struct json_object *tool = json_object_array_get_idx(list, i);

        jsonx_path_idx(path, sizeof path, "tools", i);
        if (!json_object_is_type(tool, json_type_object)) {
            apierr_field(err, path, "expected an object, got %s", jsonx_type_name(json_object_get_type(tool)));
            goto out;
        }
        if (one_tool(req, &t, tool, path, err) < 0)
            goto out;
    }
    rc = list ? allowed_declared(&t, err) : 0;
    if (rc == 0 && list)
        rc = chat_tools_done(req, &t.t, err);
out:
    json_object_put(t.allowed);
    return rc;
}

/* ---- generationConfig ---- */

/* generationConfig's options, by Google's names for Ollama's. */
static const struct chat_option options[] = {
    { .name = "temperature" }, { .name = "topP", .ollama = "top_p" }, { .name = "topK", .integer = 1, .ollama = "top_k" },
    { .name = "seed", .integer = 1 }, { .name = "presencePenalty", .ollama = "presence_penalty" },
    { .name = "frequencyPenalty", .ollama = "frequency_penalty" },
};

/* responseMimeType application/json: Ollama's format, the schema when one is given. */
static int response_format(struct json_object *gc, struct chat_request *req, struct apierr *err)
{
    struct json_object *js, *oas;
    const char *mime = NULL;

    if (jsonx_opt_string(gc, "responseMimeType", "generationConfig", &mime, err) < 0 ||
        jsonx_opt(gc, "responseJsonSchema", json_type_object, "generationConfig", &js, err) < 0 ||
        jsonx_opt(gc, "responseSchema", json_type_object, "generationConfig", &oas, err) < 0)
        return -1;
    if (!mime || strcmp(mime, "text/plain") == 0)
        return 0;
    if (strcmp(mime, "application/json") != 0) {
        apierr_field(err, "generationConfig.responseMimeType", "expected \"text/plain\" or \"application/json\", "
                     "got \"%s\"", mime);
        return -1;
    }
    req->parts.format = js ? schema_copy(js) : oas ? schema_copy(oas) : json_object_new_string("json");
    return 0;
}

static const char *const think_levels[][2] = {
    { "MINIMAL", "low" }, { "LOW", "low" }, { "MEDIUM", "medium" }, { "HIGH", "high" },
};

/* thinkingConfig: a budget of 0 turns thinking off, a level is Ollama's level, anything else asked turns it
 * on. chat_apply_facts drops it for a model that cannot think: the CLI asks on every model.
 * includeThoughts says whether thought parts are sent back. */
static int thinking_config(struct json_object *gc, struct chat_request *req, struct apierr *err)
{
    struct json_object *tc;
    const char *level = NULL;
    long long budget = -1;
    int include = 0, present = 0;

    if (jsonx_opt(gc, "thinkingConfig", json_type_object, "generationConfig", &tc, err) < 0)
        return -1;
    if (!tc)
        return 0;
    if (jsonx_opt_bool(tc, "includeThoughts", "generationConfig.thinkingConfig", &include, err) < 0 ||
        jsonx_opt_int(tc, "thinkingBudget", "generationConfig.thinkingConfig", &budget, &present, err) < 0 ||
        jsonx_opt_string(tc, "thinkingLevel", "generationConfig.thinkingConfig", &level, err) < 0)
        return -1;
    if (include)
        json_object_object_add(req->extra, EXTRA_THOUGHTS, json_object_new_boolean(1));
    if (present && budget == 0) {
        req->parts.think = json_object_new_boolean(0);
        return 0;
    }
    for (size_t i = 0; level && i < sizeof think_levels / sizeof *think_levels; i++)
        if (strcmp(level, think_levels[i][0]) == 0) {
            req->parts.think = json_object_new_string(think_levels[i][1]);
            return 0;
        }
    if (level && strcmp(level, "THINKING_LEVEL_UNSPECIFIED") != 0) {
        apierr_field(err, "generationConfig.thinkingConfig.thinkingLevel",
                     "expected \"MINIMAL\", \"LOW\", \"MEDIUM\" or \"HIGH\", got \"%s\"", level);
        return -1;
    }
    if (include || present || level)
        req->parts.think = json_object_new_boolean(1);
    return 0;
}

/* Fields of generationConfig Ollama has no use for, still type-checked. */
static const struct chat_field ignored_config[] = {
    { "responseModalities", json_type_array }, { "responseLogprobs", json_type_boolean },
    { "logprobs", json_type_int }, { "enableEnhancedCivicAnswers", json_type_boolean },
    { "speechConfig", json_type_object }, { "mediaResolution", json_type_string },
};

static int generation_config(struct json_object *body, struct chat_request *req, struct apierr *err)
{
    struct json_object *gc, *v = NULL;
    long long n;
    int present;

    if (jsonx_opt(body, "generationConfig", json_type_object, "", &gc, err) < 0)
        return -1;
    if (!gc)
        return 0;
    if (jsonx_opt_int(gc, "candidateCount", "generationConfig", &n, &present, err) < 0)
        return -1;
    if (present && n != 1) {
        apierr_field(err, "generationConfig.candidateCount",
                     "only 1 candidate is supported: Ollama generates one per request, got %lld", n);
        return -1;
    }
    if (chat_check_fields(gc, ignored_config, sizeof ignored_config / sizeof *ignored_config, err) < 0 ||
        chat_copy_options(gc, "generationConfig", options, sizeof options / sizeof *options, req, err) < 0 ||
        chat_max_tokens(gc, "maxOutputTokens", 1, &present, req, err) < 0)
        return -1;
    json_object_object_get_ex(gc, "stopSequences", &v);
    if (chat_set_stop(req, v, "generationConfig.stopSequences", MAX_STOP, err) < 0 ||
        response_format(gc, req, err) < 0)
        return -1;
    return thinking_config(gc, req, err);
}

/* Fields of the request Ollama has no use for, still type-checked. */
static const struct chat_field ignored_fields[] = {
    { "safetySettings", json_type_array }, { "labels", json_type_object }, { "model", json_type_string },
};

/* Values whose keys are the client's own (a call's arguments, a result, a schema's property names): their
 * keys are never renamed. */
static const char *const free_form[] = {
    "args", "response", "parameters", "parametersJsonSchema", "responseSchema", "responseJsonSchema", "labels",
};

static int is_free_form(const char *key)
{
    for (size_t i = 0; i < sizeof free_form / sizeof *free_form; i++)
        if (strcmp(key, free_form[i]) == 0)
            return 1;
    return 0;
}

/* Google's JSON takes each field by its proto name as well (system_instruction, inline_data, mime_type:
 * what curl examples send): those become the lowerCamelCase names the rest of this file reads. */
static void camel_keys(struct json_object *o)
{
    struct json_object **moved = NULL;
    char **names = NULL;
    size_t n = 0, cap = 0;

    if (json_object_is_type(o, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(o); i++)
            camel_keys(json_object_array_get_idx(o, i));
        return;
    }
    if (!json_object_is_type(o, json_type_object))
        return;
    json_object_object_foreach(o, key, val) {
        if (strchr(key, '_')) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                moved = xrealloc(moved, cap * sizeof *moved);
                names = xrealloc(names, cap * sizeof *names);
            }
            moved[n] = json_object_get(val);
            names[n++] = xstrdup(key);
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *w = names[i];

        json_object_object_del(o, names[i]);
        for (const char *r = names[i]; *r; r++)
            if (*r == '_' && r[1] >= 'a' && r[1] <= 'z')
                *w++ = (char)(*++r - 'a' + 'A');
            else
                *w++ = *r;
        *w = '\0';
        json_object_object_add(o, names[i], moved[i]);
        free(names[i]);
    }
    free(moved);
    free(names);
    json_object_object_foreach(o, k, v)
        if (!is_free_form(k))
            camel_keys(v);
}

/* The model comes from the path and whether to stream from the route; without ?alt=sse a stream is
 * Google's JSON array. */
static int gemini_translate(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                            struct chat_request *req, struct apierr *err)
{
    struct json_object *contents, *inner;
    struct xlate x = { .req = req, .err = err, .answered = json_object_new_object() };
    char alt[16];
    int count = call->route->kind == ROUTE_COUNT, rc = -1;

    if (chat_preamble(call, body, cfg, req, err) < 0)
        goto out;
    camel_keys(body);
    /* countTokens takes the contents alone, or a whole generateContentRequest. */
    if (count && jsonx_opt(body, "generateContentRequest", json_type_object, "", &inner, err) < 0)
        goto out;
    if (count && inner)
        body = inner;
    if (json_object_object_get_ex(body, "cachedContent", NULL)) {
        apierr_field(err, "cachedContent", "cached content lives on Google's servers: send the contents themselves");
        goto out;
    }
    if (req->stream && (chat_query_param(call->query, "alt", alt, sizeof alt) < 0 || strcmp(alt, "sse") != 0))
        req->wire = &wire_json_array;
    req->extra = json_object_new_object();
    if (jsonx_req(body, "contents", json_type_array, "", &contents, err) < 0 ||
        chat_check_fields(body, ignored_fields, sizeof ignored_fields / sizeof *ignored_fields, err) < 0 ||
        generation_config(body, req, err) < 0 || translate_tools(body, req, err) < 0 ||
        translate_system(&x, body) < 0)
        goto out;
    rc = chat_each_message(contents, "contents", count, translate_content, &x, err);
out:
    json_object_put(x.answered);
    return rc;
}

/* ---- the stream machine ---- */

struct gstream {
    struct stream_state out;
    int thoughts;                   /* thought parts are sent */
    size_t thinking_bytes;          /* for thoughtsTokenCount */
};

/* Every event is a whole GenerateContentResponse; its candidate's parts come after this. */
static void event_head(struct gstream *s)
{
    buf_reset(&s->out.data);
    buf_puts(&s->out.data, "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[");
}

static void event_tail(struct gstream *s, const char *finish_reason)
{
    buf_puts(&s->out.data, "]},");
    if (finish_reason)
        buf_printf(&s->out.data, "\"finishReason\":\"%s\",", finish_reason);
    buf_puts(&s->out.data, "\"index\":0}]");
}

static void event_ids(struct buf *b, const struct chat_request *req)
{
    buf_puts(b, ",\"modelVersion\":");
    jsonx_put_string(b, req->client_model, strlen(req->client_model));
    buf_puts(b, ",\"responseId\":");
    jsonx_put_string(b, req->id, strlen(req->id));
    buf_putc(b, '}');
}

/* Google's streams have no opening event. */
static int gstream_begin(void *st)
{
    struct gstream *s = st;

    s->thoughts = json_object_object_get_ex(s->out.req->extra, EXTRA_THOUGHTS, NULL);
    return 0;
}

static int gstream_delta(void *st, enum chat_part part, const char *str, size_t n)
{
    struct gstream *s = st;

    if (part == CHAT_THINKING) {
        s->thinking_bytes += n;
        if (!s->thoughts)
            return 0;
    }
    event_head(s);
    buf_puts(&s->out.data, "{\"text\":");
    jsonx_put_string(&s->out.data, str, n);
    buf_puts(&s->out.data, part == CHAT_THINKING ? ",\"thought\":true}" : "}");
    event_tail(s, NULL);
    event_ids(&s->out.data, s->out.req);
    return chat_send(&s->out, NULL);
}

/* args as Google wants them, an object: Ollama's arguments as its line held them. */
static void put_call(struct buf *b, const char *id, const char *name, struct json_object *args)
{
    buf_puts(b, "{\"functionCall\":{\"id\":");
    jsonx_put_string(b, id, strlen(id));
    buf_puts(b, ",\"name\":");
    jsonx_put_string(b, name, strlen(name));
    buf_puts(b, ",\"args\":");
    if (json_object_is_type(args, json_type_object))
        jsonx_write(b, args);
    else
        buf_puts(b, "{}");
    buf_puts(b, "}}");
}

static int gstream_tool_call(void *st, const char *id, const char *name, struct json_object *args)
{
    struct gstream *s = st;

    event_head(s);
    put_call(&s->out.data, id, name, args);
    event_tail(s, NULL);
    event_ids(&s->out.data, s->out.req);
    return chat_send(&s->out, NULL);
}

static const char *finish_reason(const char *reason)
{
    return strcmp(reason, "length") == 0 ? "MAX_TOKENS" : "STOP";
}

/* Ollama counts thinking and text together; the thoughts' share is estimated from their bytes. */
static void put_usage(struct buf *b, const struct chat_finish *f, size_t thinking_bytes)
{
    long long thoughts = (long long)(thinking_bytes / 4), candidates;

    if (thoughts > f->output_tokens)
        thoughts = f->output_tokens;
    candidates = f->output_tokens - thoughts;
    buf_printf(b, ",\"usageMetadata\":{\"promptTokenCount\":%lld,\"candidatesTokenCount\":%lld,", f->input_tokens,
               candidates);
    if (thinking_bytes)
        buf_printf(b, "\"thoughtsTokenCount\":%lld,", thoughts);
    /* Within promptTokenCount, as Gemini counts it; only from an Ollama that says. */
    if (f->cached_tokens >= 0)
        buf_printf(b, "\"cachedContentTokenCount\":%lld,", f->cached_tokens);
    buf_printf(b, "\"totalTokenCount\":%lld}", chat_sum_tokens(f->input_tokens, f->output_tokens));
}

/* The last event: finishReason on every turn (the CLI sends a turn again when it ends without one), the
 * counts, then the array's end when the stream is one. */
static int gstream_finish(void *st, const struct chat_finish *f)
{
    struct gstream *s = st;

    event_head(s);
    buf_puts(&s->out.data, "{\"text\":\"\"}");
    event_tail(s, finish_reason(f->reason));
    put_usage(&s->out.data, f, s->thinking_bytes);
    event_ids(&s->out.data, s->out.req);
    if (chat_send(&s->out, NULL) < 0)
        return -1;
    return wire_end(s->out.sink);
}

/* Google's status names, by kind. */
static const char *const error_types[APIERR_N] = {
    [APIERR_INVALID_REQUEST] = "INVALID_ARGUMENT", [APIERR_AUTHENTICATION] = "UNAUTHENTICATED",
    [APIERR_PERMISSION] = "PERMISSION_DENIED", [APIERR_NOT_FOUND] = "NOT_FOUND",
    [APIERR_TOO_LARGE] = "INVALID_ARGUMENT", [APIERR_RATE_LIMIT] = "RESOURCE_EXHAUSTED",
    [APIERR_API] = "INTERNAL", [APIERR_TIMEOUT] = "DEADLINE_EXCEEDED", [APIERR_OVERLOADED] = "UNAVAILABLE",
};

static void gemini_error_body(const struct dialect *d, const struct apierr *e, const char *request_id,
                              struct buf *out)
{
    (void)request_id;
    buf_printf(out, "{\"error\":{\"code\":%d,\"message\":", chat_error_status(d, e));
    jsonx_put_string(out, e->message, strlen(e->message));
    buf_puts(out, ",\"status\":\"");
    buf_puts(out, chat_error_type(d, e->kind));
    buf_puts(out, "\"}}");
}

/* A failure after the stream began: in SSE, the error object bare, without "data: ", which the SDK throws as
 * an ApiError when it comes alone, and otherwise fails the stream as "Incomplete JSON segment at the end"
 * (a data event holding it would read as an empty response, and the CLI would quietly send the turn
 * again); in the array, its last member. */
static int gstream_error(void *st, const struct apierr *e)
{
    struct gstream *s = st;
    struct wire_sink *sink = s->out.sink;

    buf_reset(&s->out.data);
    gemini_error_body(&gemini_dialect, e, NULL, &s->out.data);
    if (sink->wire->kind == WIRE_JSON_ARRAY)
        return chat_send(&s->out, NULL) < 0 ? -1 : wire_end(sink);
    return wire_raw(sink, s->out.data.data, s->out.data.len);
}

/* Google's parser skips whitespace before an event and rejects SSE comments: the framing's keep-alive is a
 * blank line (whitespace in the array). */
static int gstream_ping(void *st)
{
    return wire_keepalive(((struct gstream *)st)->out.sink);
}

static const struct stream_ops gstream_ops = {
    .begin = gstream_begin, .delta = gstream_delta, .tool_call = gstream_tool_call,
    .finish = gstream_finish, .error = gstream_error, .ping = gstream_ping,
};

/* ---- whole replies ---- */

static void gemini_reply(const struct chat_request *req, const struct chat_reply *r, struct buf *out)
{
    int thoughts = json_object_object_get_ex(req->extra, EXTRA_THOUGHTS, NULL), parts = 0;

    buf_puts(out, "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[");
    if (r->thinking.len && thoughts) {
        buf_puts(out, "{\"text\":");
        jsonx_put_string(out, r->thinking.data, r->thinking.len);
        buf_puts(out, ",\"thought\":true}");
        parts++;
    }
    if (r->text.len || r->n_calls == 0) {
        buf_puts(out, parts++ ? ",{\"text\":" : "{\"text\":");
        jsonx_put_string(out, r->text.data ? r->text.data : "", r->text.len);
        buf_putc(out, '}');
    }
    for (size_t i = 0; i < r->n_calls; i++) {
        if (parts++)
            buf_putc(out, ',');
        put_call(out, r->calls[i].id, r->calls[i].name, r->calls[i].args);
    }
    buf_printf(out, "]},\"finishReason\":\"%s\",\"index\":0}]", finish_reason(r->finish.reason));
    put_usage(out, &r->finish, r->thinking.len);
    event_ids(out, req);
}

/* ---- model lists ---- */

/* One of Ollama's /api/tags entries as Google's Model. Ollama's list says nothing of context lengths, so
 * the token limits are left out. */
static struct json_object *google_model(struct json_object *m)
{
    static const char *const detail_keys[] = { "family", "parameter_size", "quantization_level" };
    struct json_object *o = json_object_new_object(), *methods = json_object_new_array(), *details;
    const char *name = models_name(m), *tag = strrchr(name, ':');
    struct buf b;

    buf_init(&b);
    buf_puts(&b, "models/");
    buf_puts(&b, name);
    json_object_object_add(o, "name", jsonx_string(b.data, b.len));
    json_object_object_add(o, "version", json_object_new_string(tag ? tag + 1 : "latest"));
    json_object_object_add(o, "displayName", json_object_new_string(name));
    buf_reset(&b);
    buf_puts(&b, "Ollama model");
    if (json_object_object_get_ex(m, "details", &details))
        for (size_t i = 0; i < sizeof detail_keys / sizeof *detail_keys; i++) {
            const char *v = jsonx_string_at(details, detail_keys[i]);

            if (v && *v)
                buf_printf(&b, "%s%s", i ? ", " : " ", v);
        }
    json_object_object_add(o, "description", jsonx_string(b.data, b.len));
    buf_free(&b);
    json_object_array_add(methods, json_object_new_string("generateContent"));
    json_object_array_add(methods, json_object_new_string("streamGenerateContent"));
    json_object_array_add(methods, json_object_new_string("countTokens"));
    json_object_object_add(o, "supportedGenerationMethods", methods);
    return o;
}

/* {"models": [...]} in one page (Ollama's list is short), or with id the one model. */
static struct json_object *gemini_models(struct json_object *tags, const char *id)
{
    struct json_object *list = models_each(tags, id, google_model), *o;

    if (id || !list)
        return list;
    o = json_object_new_object();
    json_object_object_add(o, "models", list);
    return o;
}

static void gemini_count_reply(const struct chat_request *req, struct buf *out)
{
    buf_printf(out, "{\"totalTokens\":%lld}", req->estimated_tokens);
}

/* The Gemini API under v1beta, where Google's SDKs and Gemini CLI go, and v1. GET /v1/models stays the
 * OpenAI list the dialect before this one serves. */
static const char *const bases[] = { "/v1beta", "/v1", NULL };
static const char *const key_headers[] = { "HTTP_X_GOOG_API_KEY", NULL };

/* The stream route first: the bench and the fuzzers drive a dialect's stream machine through its first. */
static const struct dialect_route routes[] = {
    { .method = "POST", .path = "/models/{model}:streamGenerateContent", .kind = ROUTE_CHAT, .stream = 1 },
    { .method = "POST", .path = "/models/{model}:generateContent", .kind = ROUTE_CHAT, .stream = 0 },
    { .method = "POST", .path = "/models/{model}:countTokens", .kind = ROUTE_COUNT },
    { .method = "GET", .path = "/models", .kind = ROUTE_MODELS },
    { .method = "GET", .path = "/models/{model}", .kind = ROUTE_MODELS },
    { 0 },
};

const struct dialect gemini_dialect = {
    .name = "gemini", .bases = bases, .routes = routes, .key_headers = key_headers, .key_query = "key",
    .wire = &wire_sse_data, .id_prefix = "gen_", .tool_prefix = "call_", .overloaded_status = 503,
    .error_types = error_types, .translate = gemini_translate, .state_size = sizeof(struct gstream),
    .ops = &gstream_ops, .reply = gemini_reply, .count_reply = gemini_count_reply, .models = gemini_models,
    .error_body = gemini_error_body,
};
