/* worker.c -- one worker process: the FCGX_Accept_r loop, routing, and serving each route. */
#include "worker.h"

#include <errno.h>
#include <fcgiapp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "anthropic.h"
#include "jsonx.h"
#include "metrics.h"
#include "models.h"
#include "ollama.h"
#include "openai.h"
#include "reply.h"
#include "tokens.h"
#include "upstream.h"

#define SHOW_TIMEOUT_MS 15000
#define TAGS_TIMEOUT_MS 10000
#define HEALTH_TIMEOUT_MS 2000
#define DRAIN_LIMIT (256u * 1024 * 1024)
#define KEEPALIVE_MS 1000.0
#define GONE_CHECK_MS 200.0

struct worker {
    const struct config *cfg;
    struct upstream up;
    struct models_cache models;
    FCGX_Request fcgi;
    struct buf body;              /* the request body, reused from request to request */
    struct buf out;               /* the Ollama request, likewise */
};

/* One request. */
struct rctx {
    struct worker *w;
    FCGX_Request *fcgi;
    struct reply reply;
    const char *method;
    char path[1024];              /* without the query string */
    char request_id[32];
    char model[256];              /* for the log: what the client asked for */
    char upstream_model[256];     /* and what Ollama was asked for */
    struct timespec start;
    struct timespec gone_checked; /* when client_gone last looked */
    struct access_entry log;
};

static volatile sig_atomic_t stopping;
static int listen_fd_global = -1;
static int dummy_fd = -1;

/* ---- small helpers ---- */

static double ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

static void random_id(char *out, size_t size, const char *prefix)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned char raw[24];
    size_t n = strlen(prefix), k = 0;

    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (unsigned char)rand();
    snprintf(out, size, "%s", prefix);
    while (n + 1 < size && k < sizeof raw)
        out[n++] = alphabet[raw[k++] % 62];
    out[n] = '\0';
}

static const char *param(struct rctx *rc, const char *name)
{
    return FCGX_GetParam(name, rc->fcgi->envp);
}

/* Constant-time comparison, so the key cannot be guessed byte by byte from response times. */
static int same_secret(const char *given, const char *want)
{
    size_t gl = strlen(given), wl = strlen(want);
    unsigned char diff = (unsigned char)(gl != wl);

    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

static int authorized(struct rctx *rc)
{
    const char *key = rc->w->cfg->api_key, *v;

    if (!key)
        return 1;
    v = param(rc, "HTTP_X_API_KEY");
    if (v && same_secret(v, key))
        return 1;
    v = param(rc, "HTTP_AUTHORIZATION");
    if (v && strncasecmp(v, "Bearer ", 7) == 0 && same_secret(v + 7, key))
        return 1;
    return 0;
}

/* The client is gone when the web server closed our connection (or sent FCGI_ABORT_REQUEST). libcurl's
 * progress callback comes many times a second while data flows: look at most every GONE_CHECK_MS. */
static int client_gone(struct rctx *rc)
{
    struct pollfd p = { rc->fcgi->ipcFd, POLLIN | POLLRDHUP, 0 };

    if (rc->reply.gone)
        return 1;
    if (ms_since(&rc->gone_checked) < GONE_CHECK_MS)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &rc->gone_checked);
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return rc->reply.gone = 1;
    return 0;
}

static void send_error(struct rctx *rc, const struct dialect *d, const struct apierr *e)
{
    reply_error(&rc->reply, d, e);
    if (!rc->log.outcome)
        rc->log.outcome = e->status >= 500 || e->kind == APIERR_OVERLOADED ? "upstream_error" : "rejected";
}

static void upstream_unreachable(struct rctx *rc, const struct upstream_result *r, struct apierr *e)
{
    if (r->code == CURLE_OPERATION_TIMEDOUT && rc->w->cfg->upstream_timeout && r->status)
        apierr_set(e, APIERR_TIMEOUT, 504, "Ollama at %s did not finish within UPSTREAM_TIMEOUT=%lds",
                   rc->w->cfg->ollama_url, rc->w->cfg->upstream_timeout);
    else if (r->status)
        apierr_set(e, APIERR_API, 502, "the connection to Ollama at %s broke: %s", rc->w->cfg->ollama_url,
                   r->message);
    else
        apierr_set(e, APIERR_API, 502, "cannot reach Ollama at %s: %s", rc->w->cfg->ollama_url, r->message);
}

/* ---- request bodies ---- */

static void drain(struct rctx *rc)
{
    char scratch[16384];
    size_t total = 0;
    int n;

    /* Unread bytes would make close() reset the connection and lose our reply on the way out. */
    while (total < DRAIN_LIMIT && (n = FCGX_GetStr(scratch, sizeof scratch, rc->fcgi->in)) > 0)
        total += (size_t)n;
}

static int read_body(struct rctx *rc, struct apierr *e)
{
    const char *cl = param(rc, "CONTENT_LENGTH"), *ct = param(rc, "CONTENT_TYPE");
    struct buf *b = &rc->w->body;
    size_t want = 0, max = rc->w->cfg->max_body;
    char chunk[65536];
    int n;

    buf_reset(b);
    if (ct && *ct && !strstr(ct, "json")) {
        drain(rc);
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "Content-Type must be application/json, got \"%.100s\"", ct);
        return -1;
    }
    if (cl && *cl) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);

        if (*end || end == cl) {
            apierr_set(e, APIERR_INVALID_REQUEST, 400, "invalid Content-Length");
            return -1;
        }
        if (v > max) {
            drain(rc);
            apierr_set(e, APIERR_TOO_LARGE, 413, "request body of %llu bytes exceeds the %zu-byte limit (MAX_BODY_BYTES)",
                       v, max);
            return -1;
        }
        want = (size_t)v;
    }
    while ((n = FCGX_GetStr(chunk, sizeof chunk, rc->fcgi->in)) > 0) {
        if (b->len + (size_t)n > max) {
            drain(rc);
            apierr_set(e, APIERR_TOO_LARGE, 413, "request body exceeds the %zu-byte limit (MAX_BODY_BYTES)", max);
            return -1;
        }
        buf_append(b, chunk, (size_t)n);
    }
    if (cl && *cl && b->len != want) {
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "request body is truncated: got %zu of %zu bytes", b->len, want);
        return -1;
    }
    return 0;
}

static struct json_object *read_json(struct rctx *rc, struct apierr *e)
{
    if (read_body(rc, e) < 0)
        return NULL;
    return jsonx_parse(rc->w->body.data ? rc->w->body.data : "", rc->w->body.len, e);
}

/* ---- models ---- */

static void model_not_found(const struct chat_request *req, const char *ollama_message, struct apierr *e)
{
    if (strcmp(req->client_model, req->ollama_model) != 0)
        apierr_set(e, APIERR_NOT_FOUND, 404, "model '%s' (mapped to '%s' by MODEL_MAP) not found: Ollama says \"%s\"",
                   req->client_model, req->ollama_model, ollama_message);
    else
        apierr_set(e, APIERR_NOT_FOUND, 404, "model '%s' not found: Ollama says \"%s\"; pull it, or map the name "
                   "to a model you have with MODEL_MAP", req->client_model, ollama_message);
    e->code = "model_not_found";
    snprintf(e->param, sizeof e->param, "model");
}

/* What Ollama says about the model, asked once per worker. NULL with no error when Ollama would not say. */
static int model_entry(struct rctx *rc, const struct chat_request *req, struct models_entry **out, struct apierr *e)
{
    struct worker *w = rc->w;
    struct json_object *q;
    struct upstream_result r;
    struct model_facts f;
    struct buf body;
    char msg[512];
    int rc_ = 0;

    *out = models_find(&w->models, req->ollama_model);
    if (*out)
        return 0;
    buf_init(&body);
    upstream_result_init(&r);
    q = json_object_new_object();
    json_object_object_add(q, "model", json_object_new_string(req->ollama_model));
    if (upstream_fetch(&w->up, "/api/show", jsonx_text(q, NULL), SHOW_TIMEOUT_MS, &body, &r) < 0) {
        upstream_unreachable(rc, &r, e);
        rc_ = -1;
    } else if (r.status == 404 && (!body.data || !strstr(body.data, "\"error\""))) {
        /* Ollama says {"error": ...}; a bare 404 is some other server, or a URL with a path in it. */
        apierr_set(e, APIERR_API, 502, "OLLAMA_BASE_URL=%s does not look like Ollama: /api/show answered 404 "
                   "(\"%.80s\"); it should be the server's root, e.g. http://localhost:11434",
                   w->cfg->ollama_url, body.data ? body.data : "");
        rc_ = -1;
    } else if (r.status == 404) {
        ollama_error_message(body.data ? body.data : "", body.len, msg, sizeof msg);
        model_not_found(req, msg, e);
        rc_ = -1;
    } else if (r.status == 200 && models_parse_show(body.data, body.len, &f) == 0) {
        *out = models_put(&w->models, req->ollama_model, &f);
    }
    json_object_put(q);
    buf_free(&body);
    upstream_result_free(&r);
    return rc_;
}

/* ---- chat: both dialects, streamed or whole ---- */

struct chat_call {
    struct rctx *rc;
    const struct dialect *d;
    struct chat_request *req;
    struct chat_stream cs;
    struct sse_sink sink;
    struct chat_reply collected;
    struct timespec last_event;   /* the last SSE event sent: pings are due PING_INTERVAL after it */
    struct timespec last_byte;    /* the last bytes sent, keep-alive comments included */
    int got_line;
};

static int call_frame(void *ctx, const char *bytes, size_t len)
{
    struct chat_call *c = ctx;

    clock_gettime(CLOCK_MONOTONIC, &c->last_event);
    c->last_byte = c->last_event;
    return reply_frame(&c->rc->reply, bytes, len);
}

static int call_on_line(void *ctx, const char *line, size_t len)
{
    struct chat_call *c = ctx;
    int rc;

    if (!c->got_line) {
        c->got_line = 1;
        c->rc->log.ttft_ms = ms_since(&c->rc->start);
    }
    rc = chat_stream_line(&c->cs, line, len);
    if (rc == CHAT_GONE)
        return UPSTREAM_ABORT;
    if (rc == CHAT_DONE)
        return c->cs.saw_done ? UPSTREAM_IGNORE_REST : UPSTREAM_ABORT;
    return UPSTREAM_MORE;
}

static int call_on_tick(void *ctx)
{
    struct chat_call *c = ctx;
    static const char keepalive[] = ": keep-alive\n\n";

    if (client_gone(c->rc))
        return 1;
    if (!c->req->stream || c->cs.ended)
        return 0;
    /* While Ollama is silent (a model loading, a long prompt), pings keep clients and proxies waiting. */
    if (ms_since(&c->last_event) >= (double)c->rc->w->cfg->ping_interval * 1000.0)
        return chat_stream_ping(&c->cs) < 0;
    /* lighttpd keeps the FastCGI connection of a client that left open until a write to it fails, so
     * after a second of silence the stream begins and a comment (which clients skip) goes out each
     * second: a client that left is found within about a second through any web server. */
    if (ms_since(&c->last_byte) >= KEEPALIVE_MS) {
        if (!c->cs.begun)
            return chat_stream_begin(&c->cs) < 0;
        clock_gettime(CLOCK_MONOTONIC, &c->last_byte);
        return reply_frame(&c->rc->reply, keepalive, sizeof keepalive - 1) < 0;
    }
    return 0;
}

static void call_fail(struct chat_call *c, const struct apierr *e)
{
    if (c->req->stream && c->rc->reply.headers_sent)
        chat_stream_fail(&c->cs, e);
    else
        reply_error(&c->rc->reply, c->d, e);
    c->rc->log.outcome = c->rc->reply.gone ? "client_gone" : "upstream_error";
}

static void status_error(struct chat_call *c, const struct upstream_result *r, struct apierr *e)
{
    char msg[768];

    ollama_error_message(r->error_body.data ? r->error_body.data : "", r->error_body.len, msg, sizeof msg);
    if (r->status == 404)
        model_not_found(c->req, msg, e);
    else if (r->status == 400)
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "Ollama rejected the request: %s", msg);
    else if (r->status == 503)
        apierr_set(e, APIERR_OVERLOADED, 503, "Ollama is overloaded: %s", msg);
    else if (r->status == 429)
        apierr_set(e, APIERR_RATE_LIMIT, 429, "Ollama: %s", msg);
    else
        apierr_set(e, APIERR_API, 502, "Ollama answered HTTP %ld: %s", r->status, msg);
}

static int think_refused(const struct upstream_result *r)
{
    return r->status == 400 && r->error_body.data && strstr(r->error_body.data, "does not support thinking");
}

static void run_chat(struct chat_call *c, struct models_entry *entry, long long raw_estimate)
{
    struct rctx *rc = c->rc;
    struct upstream_handler h = { call_on_line, call_on_tick, c };
    struct upstream_result r;
    struct json_object *body;
    struct apierr e;

    for (int attempt = 0;; attempt++) {
        upstream_result_init(&r);
        body = chat_ollama_body(c->req, rc->w->cfg);
        buf_reset(&rc->w->out);
        jsonx_write(&rc->w->out, body);
        json_object_put(body);
        if (upstream_chat(&rc->w->up, rc->w->out.data, rc->w->out.len, &h, &r) < 0) {
            if (rc->reply.gone)
                break;
            upstream_unreachable(rc, &r, &e);
            call_fail(c, &e);
            goto out;
        }
        /* Thinking asked of a model that cannot think is not the client's fault: ask again without. */
        if (attempt == 0 && think_refused(&r) && chat_think_requested(c->req)) {
            struct model_facts f = entry ? entry->facts : (struct model_facts){ 1, 0, 0 };

            f.can_think = 0;
            entry = models_put(&rc->w->models, c->req->ollama_model, &f);
            chat_drop_think(c->req);
            upstream_result_free(&r);
            continue;
        }
        break;
    }
    if (rc->reply.gone || (r.aborted && !c->cs.ended)) {
        rc->log.outcome = "client_gone";
        goto out;
    }
    if (r.status < 200 || r.status >= 300) {
        status_error(c, &r, &e);
        call_fail(c, &e);
        goto out;
    }
    chat_stream_eof(&c->cs);
    if (c->cs.prompt_tokens >= 0)
        models_learn(entry, raw_estimate, c->cs.prompt_tokens);
    rc->log.input_tokens = c->cs.prompt_tokens >= 0 ? c->cs.prompt_tokens : c->req->estimated_tokens;
    rc->log.output_tokens = c->cs.output_tokens;
    if (!c->req->stream) {
        if (c->collected.failed) {
            call_fail(c, &c->collected.err);
        } else {
            struct json_object *o = c->d->reply(c->req, &c->collected);

            reply_json(&rc->reply, 200, o);
            json_object_put(o);
        }
    }
    if (!rc->log.outcome)
        rc->log.outcome = rc->reply.gone ? "client_gone" : c->cs.failed ? "upstream_error" : "ok";
out:
    upstream_result_free(&r);
}

static int prepare_chat(struct rctx *rc, const struct dialect *d, struct chat_request *req,
                        struct models_entry **entry, long long *raw, struct apierr *e)
{
    struct json_object *body = read_json(rc, e);
    int ok;

    if (!body)
        return -1;
    ok = d->translate(body, rc->w->cfg, req, e) == 0;
    json_object_put(body);
    if (!ok)
        return -1;
    snprintf(rc->model, sizeof rc->model, "%s", req->client_model);
    snprintf(rc->upstream_model, sizeof rc->upstream_model, "%s", req->ollama_model);
    rc->log.model = rc->model;
    rc->log.upstream_model = rc->upstream_model;
    random_id(req->id, sizeof req->id, d->id_prefix);
    req->created = (long long)time(NULL);
    if (model_entry(rc, req, entry, e) < 0)
        return -1;
    chat_apply_facts(req, *entry ? &(*entry)->facts : &(struct model_facts){ 0, 0, 0 }, rc->w->cfg);
    *raw = tokens_estimate(req);
    req->estimated_tokens = models_scaled_estimate(*entry, *raw);
    return chat_check_window(req, e);
}

static void serve_chat(struct rctx *rc, const struct dialect *d)
{
    struct chat_request req;
    struct chat_call c;
    struct models_entry *entry = NULL;
    long long raw = 0;
    struct apierr e;
    void *st = NULL;

    chat_request_init(&req);
    memset(&c, 0, sizeof c);
    chat_reply_init(&c.collected);
    sse_sink_init(&c.sink, call_frame, &c);
    if (prepare_chat(rc, d, &req, &entry, &raw, &e) < 0) {
        send_error(rc, d, &e);
        goto out;
    }
    c.rc = rc;
    c.d = d;
    c.req = &req;
    clock_gettime(CLOCK_MONOTONIC, &c.last_event);
    c.last_byte = c.last_event;
    if (req.stream) {
        st = d->stream_new(&req, &c.sink);
        chat_stream_init(&c.cs, &req, d->ops, st, d->tool_prefix);
    } else {
        chat_stream_init(&c.cs, &req, &chat_collect_ops, &c.collected, d->tool_prefix);
    }
    metrics_stream_started();
    run_chat(&c, entry, raw);
    metrics_stream_ended();
    chat_stream_free(&c.cs);
out:
    if (st)
        d->stream_free(st);
    sse_sink_free(&c.sink);
    chat_reply_free(&c.collected);
    chat_request_free(&req);
}

/* ---- the other routes ---- */

static void serve_messages(struct rctx *rc)
{
    serve_chat(rc, &anthropic_dialect);
}

static void serve_chat_completions(struct rctx *rc)
{
    serve_chat(rc, &openai_dialect);
}

static void serve_count_tokens(struct rctx *rc)
{
    struct chat_request req;
    struct json_object *body, *o;
    struct models_entry *entry;
    struct apierr e;

    chat_request_init(&req);
    body = read_json(rc, &e);
    if (!body || anthropic_translate_count(body, rc->w->cfg, &req, &e) < 0) {
        send_error(rc, &anthropic_dialect, &e);
        goto out;
    }
    entry = models_find(&rc->w->models, req.ollama_model);
    o = json_object_new_object();
    json_object_object_add(o, "input_tokens", json_object_new_int64(models_scaled_estimate(entry, tokens_estimate(&req))));
    reply_json(&rc->reply, 200, o);
    json_object_put(o);
out:
    json_object_put(body);
    chat_request_free(&req);
}

static void url_decode(char *s)
{
    char *o = s;

    for (; *s; s++) {
        if (s[0] == '%' && s[1] && s[2]) {
            char hex[3] = { s[1], s[2], 0 }, *end;
            long v = strtol(hex, &end, 16);

            if (!*end && v > 0) {
                *o++ = (char)v;
                s += 2;
                continue;
            }
        }
        *o++ = *s;
    }
    *o = '\0';
}

static void serve_models(struct rctx *rc)
{
    int anthropic = param(rc, "HTTP_ANTHROPIC_VERSION") != NULL;
    const struct dialect *d = anthropic ? &anthropic_dialect : &openai_dialect;
    struct upstream_result r;
    struct json_object *tags = NULL, *o = NULL;
    struct buf body;
    struct apierr e;
    char id[512] = "";

    if (strncmp(rc->path, "/v1/models/", 11) == 0) {
        snprintf(id, sizeof id, "%s", rc->path + 11);
        url_decode(id);
    }
    buf_init(&body);
    upstream_result_init(&r);
    if (upstream_fetch(&rc->w->up, "/api/tags", NULL, TAGS_TIMEOUT_MS, &body, &r) < 0) {
        upstream_unreachable(rc, &r, &e);
        send_error(rc, d, &e);
        goto out;
    }
    tags = body.data ? jsonx_parse(body.data, body.len, &e) : NULL;
    if (r.status != 200 || !tags) {
        apierr_set(&e, APIERR_API, 502, "Ollama's /api/tags answered HTTP %ld", r.status);
        send_error(rc, d, &e);
        goto out;
    }
    o = anthropic ? models_list_anthropic(tags, id[0] ? id : NULL) : models_list_openai(tags, id[0] ? id : NULL);
    if (!o) {
        apierr_set(&e, APIERR_NOT_FOUND, 404, "model '%s' not found in Ollama", id);
        e.code = "model_not_found";
        send_error(rc, d, &e);
        goto out;
    }
    reply_json(&rc->reply, 200, o);
out:
    json_object_put(o);
    json_object_put(tags);
    buf_free(&body);
    upstream_result_free(&r);
}

static void serve_health(struct rctx *rc)
{
    struct upstream_result r;
    struct json_object *o = json_object_new_object(), *ollama = json_object_new_object(), *v, *ver = NULL;
    struct buf body;
    struct apierr ignored;

    buf_init(&body);
    upstream_result_init(&r);
    json_object_object_add(ollama, "url", json_object_new_string(rc->w->cfg->ollama_url));
    if (upstream_fetch(&rc->w->up, "/api/version", NULL, HEALTH_TIMEOUT_MS, &body, &r) == 0 && r.status == 200 &&
        (ver = jsonx_parse(body.data ? body.data : "", body.len, &ignored)) &&
        json_object_object_get_ex(ver, "version", &v)) {
        json_object_object_add(o, "status", json_object_new_string("ok"));
        json_object_object_add(ollama, "version", json_object_get(v));
        json_object_object_add(o, "ollama", ollama);
        reply_json(&rc->reply, 200, o);
    } else {
        char reason[512];

        if (r.code != CURLE_OK)
            snprintf(reason, sizeof reason, "cannot reach Ollama: %s", r.message);
        else
            snprintf(reason, sizeof reason, "Ollama's /api/version answered HTTP %ld", r.status);
        json_object_object_add(o, "status", json_object_new_string("unavailable"));
        json_object_object_add(o, "ollama", ollama);
        json_object_object_add(o, "error", json_object_new_string(reason));
        reply_json(&rc->reply, 503, o);
    }
    json_object_put(ver);
    json_object_put(o);
    buf_free(&body);
    upstream_result_free(&r);
}

static void serve_root(struct rctx *rc)
{
    static const char text[] = "ollama-fcgi is running\n";

    reply_body(&rc->reply, 200, "text/plain; charset=utf-8", text, sizeof text - 1);
}

static void serve_no_content(struct rctx *rc)
{
    drain(rc);
    reply_headers(&rc->reply, 204, NULL, NULL);
}

static void serve_metrics(struct rctx *rc)
{
    struct buf out;

    buf_init(&out);
    metrics_render(&out);
    reply_body(&rc->reply, 200, "text/plain; version=0.0.4; charset=utf-8", out.data ? out.data : "", out.len);
    buf_free(&out);
}

/* ---- routing ---- */

struct route {
    enum metrics_route label;
    const char *method;           /* GET routes answer HEAD too */
    const char *path;
    int prefix;                   /* path is a prefix ("/v1/models/") */
    int open;                     /* no API key needed */
    void (*serve)(struct rctx *rc);
};

static const struct route routes[] = {
    { METRICS_MESSAGES, "POST", "/v1/messages", 0, 0, serve_messages },
    { METRICS_COUNT_TOKENS, "POST", "/v1/messages/count_tokens", 0, 0, serve_count_tokens },
    { METRICS_CHAT_COMPLETIONS, "POST", "/v1/chat/completions", 0, 0, serve_chat_completions },
    /* OpenAI clients given a base URL without /v1. */
    { METRICS_CHAT_COMPLETIONS, "POST", "/chat/completions", 0, 0, serve_chat_completions },
    { METRICS_MODELS, "GET", "/v1/models", 0, 0, serve_models },
    { METRICS_MODELS, "GET", "/v1/models/", 1, 0, serve_models },
    { METRICS_HEALTH, "GET", "/health", 0, 1, serve_health },
    { METRICS_METRICS, "GET", "/metrics", 0, 0, serve_metrics },
    { METRICS_PROBE, "GET", "/", 0, 0, serve_root },
    { METRICS_PROBE, "GET", "/api/hello", 0, 0, serve_root },
    { METRICS_EVENT_LOGGING, "POST", "/api/event_logging/batch", 0, 0, serve_no_content },
    { METRICS_EVENT_LOGGING, "POST", "/api/event_logging/v2/batch", 0, 0, serve_no_content },
};

static int path_matches(const struct route *r, const char *path)
{
    if (r->prefix)
        return strncmp(path, r->path, strlen(r->path)) == 0 && path[strlen(r->path)] != '\0';
    return strcmp(path, r->path) == 0;
}

static int method_matches(const struct route *r, const char *method)
{
    return strcmp(r->method, method) == 0 || (strcmp(r->method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* Errors on paths no route serves are in the dialect the path belongs to. */
static const struct dialect *path_dialect(const char *path)
{
    if (strncmp(path, "/v1/chat/", 9) == 0 || strncmp(path, "/chat/", 6) == 0 ||
        strncmp(path, "/v1/completions", 15) == 0 ||
        strncmp(path, "/v1/embeddings", 14) == 0 || strncmp(path, "/v1/responses", 13) == 0)
        return &openai_dialect;
    return &anthropic_dialect;
}

static enum metrics_route route(struct rctx *rc)
{
    const struct route *found = NULL;
    const char *allowed = NULL;
    struct apierr e;

    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!path_matches(&routes[i], rc->path))
            continue;
        if (method_matches(&routes[i], rc->method)) {
            found = &routes[i];
            break;
        }
        allowed = routes[i].method;
    }
    if (!found && allowed) {
        drain(rc);
        apierr_set(&e, APIERR_INVALID_REQUEST, 405, "%s %s is not supported; use %s", rc->method, rc->path, allowed);
        send_error(rc, path_dialect(rc->path), &e);
        return METRICS_OTHER;
    }
    if (!found) {
        drain(rc);
        apierr_set(&e, APIERR_NOT_FOUND, 404, "no route for %s %s", rc->method, rc->path);
        send_error(rc, path_dialect(rc->path), &e);
        return METRICS_OTHER;
    }
    if (!found->open && !authorized(rc)) {
        drain(rc);
        apierr_set(&e, APIERR_AUTHENTICATION, 401, "invalid or missing API key: send it as x-api-key or "
                   "Authorization: Bearer");
        e.code = "invalid_api_key";
        send_error(rc, path_dialect(rc->path), &e);
        return found->label;
    }
    found->serve(rc);
    return found->label;
}

static void request_path(struct rctx *rc)
{
    const char *uri = param(rc, "REQUEST_URI"), *q;
    size_t n;

    if (!uri || !*uri)
        uri = param(rc, "SCRIPT_NAME");
    if (!uri || !*uri)
        uri = "/";
    q = strchr(uri, '?');
    n = q ? (size_t)(q - uri) : strlen(uri);
    if (n >= sizeof rc->path)
        n = sizeof rc->path - 1;
    memcpy(rc->path, uri, n);
    rc->path[n] = '\0';
    /* "/v1/messages/" is "/v1/messages", "//v1//messages" too (a base URL ending in a slash). */
    for (size_t i = 1, j = 1; i <= n; i++)
        if (!(rc->path[i] == '/' && rc->path[j - 1] == '/'))
            rc->path[j++] = rc->path[i];
    n = strlen(rc->path);
    while (n > 1 && rc->path[n - 1] == '/')
        rc->path[--n] = '\0';
    /* A base URL that already ends in /v1 (a common slip with Claude Code and OpenAI clients alike). */
    if (strncmp(rc->path, "/v1/v1/", 7) == 0)
        memmove(rc->path, rc->path + 3, n - 2);
}

static void handle(struct worker *w)
{
    struct rctx rc;
    enum metrics_route label;

    memset(&rc, 0, sizeof rc);
    rc.w = w;
    rc.fcgi = &w->fcgi;
    clock_gettime(CLOCK_MONOTONIC, &rc.start);
    random_id(rc.request_id, sizeof rc.request_id, "req_");
    reply_init(&rc.reply, w->fcgi.out, rc.request_id);
    rc.method = param(&rc, "REQUEST_METHOD");
    if (!rc.method)
        rc.method = "GET";
    request_path(&rc);
    rc.log.ttft_ms = -1;
    label = route(&rc);
    if (rc.reply.gone && !rc.reply.headers_sent)
        rc.reply.status = 499;   /* nginx's word for a client that closed the connection first */
    else if (!rc.reply.headers_sent) {
        struct apierr e;

        apierr_set(&e, APIERR_API, 500, "the adapter sent no reply");
        send_error(&rc, path_dialect(rc.path), &e);
    }
    rc.log.request_id = rc.request_id;
    rc.log.method = rc.method;
    rc.log.path = rc.path;
    rc.log.status = rc.reply.status;
    rc.log.duration_ms = ms_since(&rc.start);
    if (rc.reply.gone)
        rc.log.outcome = "client_gone";
    accesslog_write(&rc.log);
    metrics_request(label, rc.log.status, rc.log.duration_ms / 1e3, rc.log.ttft_ms / 1e3, rc.log.input_tokens,
                    rc.log.output_tokens, rc.log.outcome && strcmp(rc.log.outcome, "upstream_error") == 0,
                    rc.reply.gone);
}

/* ---- the loop and its signals ---- */

/* A worker asked to stop finishes the request in flight. Pointing the listening descriptor at a socket
 * that does not listen makes the next accept() (or the one now blocked, when the kernel restarts it)
 * fail at once: php-fpm's way, without a race against a connection already accepted. */
static void on_stop(int sig)
{
    int saved = errno;

    (void)sig;
    stopping = 1;
    if (dummy_fd >= 0 && listen_fd_global >= 0)
        dup2(dummy_fd, listen_fd_global);
    errno = saved;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGQUIT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

int worker_run(const struct config *cfg, int listen_fd)
{
    struct worker w;
    int status = 0;

    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    buf_init(&w.body);
    buf_init(&w.out);
    listen_fd_global = listen_fd;
    dummy_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Our handlers go in first: libfcgi then leaves them alone, and they restart interrupted writes. */
    install_signals();
    if (FCGX_Init() != 0 || FCGX_InitRequest(&w.fcgi, listen_fd, 0) != 0) {
        fprintf(stderr, "ollama-fcgi: cannot initialise libfcgi\n");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || upstream_init(&w.up, cfg) < 0) {
        fprintf(stderr, "ollama-fcgi: cannot initialise libcurl\n");
        return 1;
    }
    srand((unsigned)getpid());
    while (!stopping && FCGX_Accept_r(&w.fcgi) >= 0) {
        handle(&w);
        FCGX_Finish_r(&w.fcgi);
    }
    if (!stopping) {
        fprintf(stderr, "ollama-fcgi: worker %d: accept failed: %s\n", (int)getpid(), strerror(errno));
        status = 1;
    }
    FCGX_Free(&w.fcgi, 1);
    upstream_free(&w.up);
    models_cache_free(&w.models);
    buf_free(&w.body);
    buf_free(&w.out);
    curl_global_cleanup();
    return status;
}
