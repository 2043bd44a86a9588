/* ollama_api.c -- Ollama's own API through the pool: its routes passed to Ollama as they are, with the
 * pool's keys, limits, metrics and MODEL_MAP; its errors in Ollama's shape, {"error": "..."}. */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "jsonx.h"

/* The routes that load a model: KEEP_ALIVE applies where the client set none. */
static int loads_model(const struct dialect_route *r)
{
    static const char *const paths[] = { "/api/chat", "/api/generate", "/api/embed", "/api/embeddings", NULL };

    for (size_t i = 0; paths[i]; i++)
        if (strcmp(r->upstream, paths[i]) == 0)
            return 1;
    return 0;
}

/* The routes that generate: NUM_CTX applies too, so a model other dialects loaded with the pool's window
 * is not loaded again with Ollama's own. Embedding models take their own window. */
static int generates(const struct dialect_route *r)
{
    return strcmp(r->upstream, "/api/chat") == 0 || strcmp(r->upstream, "/api/generate") == 0;
}

/* Whether o[key] is there and not null: the client set it. */
static int client_set(struct json_object *o, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(o, key, &v) && v != NULL;
}

/* NUM_CTX into options.num_ctx and KEEP_ALIVE into keep_alive, where the client set neither. An options
 * that is not an object is left for Ollama to refuse. Returns whether the body changed. */
static int apply_defaults(const struct dialect_route *r, struct json_object *body, const struct config *cfg)
{
    struct json_object *options = NULL;
    int changed = 0;

    if (generates(r) && cfg->num_ctx > 0) {
        if (!json_object_object_get_ex(body, "options", &options) || !options) {
            options = json_object_new_object();
            json_object_object_add(body, "options", options);   /* the body owns it */
        }
        if (json_object_is_type(options, json_type_object) && !client_set(options, "num_ctx")) {
            json_object_object_add(options, "num_ctx", json_object_new_int64(cfg->num_ctx));
            changed = 1;
        }
    }
    if (loads_model(r) && cfg->keep_alive && !client_set(body, "keep_alive")) {
        char *end;
        long long secs = strtoll(cfg->keep_alive, &end, 10);

        /* A bare number is seconds for Ollama; anything else is a Go duration string ("30m"). */
        json_object_object_add(body, "keep_alive", *end == '\0' ? json_object_new_int64(secs)
                                                               : json_object_new_string(cfg->keep_alive));
        changed = 1;
    }
    return changed;
}

/* MODEL_MAP on the body's model, which stays where it was among the keys. Returns whether it changed. */
static int map_model(struct json_object *body, const struct config *cfg, struct chat_request *req)
{
    struct json_object *model;

    if (!json_object_object_get_ex(body, "model", &model) || !json_object_is_type(model, json_type_string))
        return 0;
    req->client_model = xstrdup(json_object_get_string(model));
    req->ollama_model = xstrdup(config_map_model(cfg, req->client_model));
    if (strcmp(req->client_model, req->ollama_model) == 0)
        return 0;
    json_object_object_add(body, "model", json_object_new_string(req->ollama_model));
    return 1;
}

/* The body passes as the client wrote it unless the model is mapped or a default is added; then it is
 * written again with every other field as it was (numbers keep their text, keys their order). */
static int api_pass_request(const struct dialect_call *call, const char *body, size_t len, const struct config *cfg,
                            struct chat_request *req, struct buf *out, struct apierr *err)
{
    struct json_object *o = jsonx_parse(body, len, err);
    int changed, rc = -1;

    if (!o)
        goto out;
    if (!json_object_is_type(o, json_type_object)) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "the request body must be a JSON object");
        goto out;
    }
    changed = map_model(o, cfg, req);
    changed |= apply_defaults(call->route, o, cfg);
    if (changed)
        jsonx_write(out, o);
    else
        buf_append(out, body, len);
    rc = 0;
out:
    json_object_put(o);
    return rc;
}

/* A count Ollama gave, or -1. */
static long long count_at(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    return json_object_get_int64(v);
}

/* Ollama's line as it came, but for the model the client asked for where MODEL_MAP named another; its
 * counts (the done line's, or an embedding's prompt count) go to fin. A line that is not a JSON object
 * passes as it is. */
static int api_pass_reply(const struct chat_request *req, const char *line, size_t len, struct buf *out,
                          struct chat_finish *fin)
{
    struct apierr ignored;
    struct json_object *o = jsonx_parse(line, len, &ignored), *v;
    long long n;
    int last = 0;

    if (!o || !json_object_is_type(o, json_type_object)) {
        buf_append(out, line, len);
        goto out;
    }
    last = json_object_object_get_ex(o, "done", &v) && json_object_is_type(v, json_type_boolean) &&
           json_object_get_boolean(v);
    if ((n = count_at(o, "prompt_eval_count")) >= 0)
        fin->input_tokens = n;
    if ((n = count_at(o, "eval_count")) >= 0)
        fin->output_tokens = n;
    if (req->client_model && strcmp(req->client_model, req->ollama_model) != 0 &&
        json_object_object_get_ex(o, "model", &v) && json_object_is_type(v, json_type_string)) {
        json_object_object_add(o, "model", json_object_new_string(req->client_model));
        jsonx_write(out, o);
    } else {
        buf_append(out, line, len);
    }
out:
    json_object_put(o);
    return last;
}

/* {"error":"..."}: what Ollama's clients read. */
static void api_error_body(const struct dialect *d, const struct apierr *e, const char *request_id, struct buf *out)
{
    (void)d;
    (void)request_id;
    buf_puts(out, "{\"error\":");
    jsonx_put_string(out, e->message, strlen(e->message));
    buf_putc(out, '}');
}

static const char *const error_types[APIERR_N] = { [APIERR_API] = "api_error" };
static const char *const bases[] = { "/api", NULL };
static const char *const key_headers[] = { "HTTP_X_API_KEY", NULL };

static const struct dialect_route routes[] = {
    { .method = "POST", .path = "/chat", .kind = ROUTE_PASS, .upstream = "/api/chat" },
    { .method = "POST", .path = "/generate", .kind = ROUTE_PASS, .upstream = "/api/generate" },
    { .method = "POST", .path = "/embed", .kind = ROUTE_PASS, .upstream = "/api/embed" },
    { .method = "POST", .path = "/embeddings", .kind = ROUTE_PASS, .upstream = "/api/embeddings" },
    { .method = "POST", .path = "/show", .kind = ROUTE_PASS, .upstream = "/api/show" },
    { .method = "GET", .path = "/tags", .kind = ROUTE_PASS, .upstream = "/api/tags" },
    { .method = "GET", .path = "/ps", .kind = ROUTE_PASS, .upstream = "/api/ps" },
    { .method = "GET", .path = "/version", .kind = ROUTE_PASS, .upstream = "/api/version" },
    { .method = "POST", .path = "/pull", .kind = ROUTE_PASS, .upstream = "/api/pull", .writes = 1 },
    { .method = "POST", .path = "/push", .kind = ROUTE_PASS, .upstream = "/api/push", .writes = 1 },
    { .method = "POST", .path = "/create", .kind = ROUTE_PASS, .upstream = "/api/create", .writes = 1 },
    { .method = "POST", .path = "/copy", .kind = ROUTE_PASS, .upstream = "/api/copy", .writes = 1 },
    { .method = "DELETE", .path = "/delete", .kind = ROUTE_PASS, .upstream = "/api/delete", .writes = 1 },
    /* Model files are gigabytes, past any body the pool takes: uploads go to Ollama itself. */
    { .method = "POST", .path = "/blobs/{model}", .kind = ROUTE_PASS, .writes = 1 },
    { .method = "GET", .path = "/blobs/{model}", .kind = ROUTE_PASS, .writes = 1 },
    { 0 },
};

const struct dialect ollama_api_dialect = {
    .name = "ollama_api", .bases = bases, .routes = routes, .key_headers = key_headers, .wire = &wire_ndjson,
    .id_prefix = "", .tool_prefix = "call_", .overloaded_status = 503, .error_types = error_types,
    .pass_request = api_pass_request, .pass_reply = api_pass_reply, .error_body = api_error_body,
};
