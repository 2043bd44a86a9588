/* relay.c -- a chat request from the client to Ollama and back, in any dialect: the pipeline, the model's
 * facts from /api/show, the call with its pings and keep-alives, the retry without thinking, and every
 * failure of Ollama's as an error in the client's dialect. */
#include "relay.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "body.h"
#include "capability.h"
#include "hosts.h"
#include "jsonx.h"
#include "metrics.h"
#include "ollama.h"
#include "pass.h"
#include "pipeline.h"
#include "stream.h"

#define SHOW_TIMEOUT_MS 15000
/* What a key at its max_streams is told to wait: long enough for the SDKs' few retries to span a short
 * stream, short enough not to idle once one ended. */
#define KEY_BUSY_RETRY_AFTER 5
#define KEEPALIVE_MS 1000.0
/* The worker's memory is looked at once this much of Ollama's reply came since the last look, or the reply
 * held this much more (a kept tool call counts what its arguments hold once built). A look at every piece
 * of a reply of one-token lines took half again as much CPU (4.9 s against 3.3 s for 16 MiB); this way it
 * costs nothing measurable, and a reply passes MEMORY_LIMIT by at most what one line (STREAM_MAX_LINE) and
 * 64 KiB of others can build. */
#define MEMORY_CHECK_BYTES (64u << 10)
#define MEMORY_CHECK_HELD (1u << 20)

struct relay {
    struct request *rq;
    const struct dialect *d;
    struct chat_request req;
    struct models_entry *entry;   /* what the worker knows of the model, or NULL */
    int may_ask;                  /* /api/show may be asked: not for an estimate, which must be quick */
    struct stream stream;
    struct wire_sink sink;
    struct chat_reply whole;
    struct timespec last_event;   /* the last event sent: pings are due PING_INTERVAL after it */
    struct timespec last_byte;    /* the last bytes sent, keep-alive comments included */
    int got_data;
    int over_memory;              /* the worker grew past MEMORY_LIMIT during the call */
    size_t unchecked;             /* bytes of the reply since the memory was last looked at */
    size_t held_checked;          /* what the reply held then */
    uint64_t key;                 /* the conversation's, for its host (affinity.h) */
    size_t host;                  /* the host called last */
    int called;                   /* some host was called for the reply */
};

/* The host as messages name it: with one host, OLLAMA_BASE_URL as always. */
static const char *host_shown(const struct config *cfg, size_t host)
{
    return cfg->n_hosts > 1 ? cfg->hosts_shown[host] : cfg->ollama_url_shown;
}

/* Why Ollama (at, as host_shown names it) could not be reached, or stopped answering, as the client's error. */
static void ollama_unreachable(const struct config *cfg, const char *at, const struct upstream_result *res,
                               struct apierr *e)
{
    if (res->idle)
        apierr_set(e, APIERR_TIMEOUT, 504, "Ollama at %s %s", at, res->message);
    else if (res->code == CURLE_OPERATION_TIMEDOUT && cfg->upstream_timeout && res->status)
        apierr_set(e, APIERR_TIMEOUT, 504, "Ollama at %s did not finish within UPSTREAM_TIMEOUT=%lds",
                   at, cfg->upstream_timeout);
    else if (res->status)
        apierr_set(e, APIERR_API, 502, "the connection to Ollama at %s broke: %s", at, res->message);
    else
        apierr_set(e, APIERR_API, 502, "cannot reach Ollama at %s: %s", at, res->message);
}

static void unreachable(struct relay *r, const struct upstream_result *res, struct apierr *e)
{
    ollama_unreachable(r->rq->w->cfg, host_shown(r->rq->w->cfg, r->host), res, e);
}

/* ---- the model's facts, asked of Ollama once per worker ---- */

static void show_answer(struct relay *r, const struct chat_request *req, const struct upstream_result *res,
                        const struct buf *body, struct apierr *e, int *rc)
{
    struct model_facts f;
    char msg[512];

    if (res->status == 404 && (!body->data || !strstr(body->data, "\"error\""))) {
        /* Ollama says {"error": ...}; a bare 404 is some other server, or a URL with a path in it. */
        apierr_set(e, APIERR_API, 502, "OLLAMA_BASE_URL=%s does not look like Ollama: /api/show answered 404 "
                   "(\"%.80s\"); it should be the server's root, e.g. http://localhost:11434",
                   host_shown(r->rq->w->cfg, r->host), body->data ? body->data : "");
        *rc = -1;
    } else if (res->status == 404) {
        ollama_error_message(body->data ? body->data : "", body->len, msg, sizeof msg);
        ollama_model_not_found(req, msg, e);
        *rc = -1;
    } else if (res->status == 200 && models_parse_show(body->data, body->len, &f) == 0) {
        r->entry = models_put(&r->rq->w->models, req->ollama_model, &f);
    }
}

/* ---- the key's say: asked once the model Ollama would run is known, before Ollama is asked anything ---- */

/* Whether key (NULL: none was needed) may use the model req names and, when it would call the model (stream),
 * hold one more stream. */
static int admit(const struct key_entry *key, const struct chat_request *req, int stream, struct apierr *e)
{
    if (!key)
        return 0;
    if (!keys_allow_model(key, req->ollama_model)) {
        /* The model, never the key: the client knows which key it sent. */
        if (strcmp(req->client_model, req->ollama_model) != 0)
            apierr_set(e, APIERR_PERMISSION, 403, "this API key may not use the model '%s' (Ollama's '%s')",
                       req->client_model, req->ollama_model);
        else
            apierr_set(e, APIERR_PERMISSION, 403, "this API key may not use the model '%s'", req->ollama_model);
        return -1;
    }
    if (stream && metrics_key_claim(key->name, key->max_streams) < 0) {
        apierr_set(e, APIERR_RATE_LIMIT, 429, "this API key already has %ld requests in flight (max_streams=%ld); "
                   "try again when one has ended", key->max_streams, key->max_streams);
        e->retry_after = KEY_BUSY_RETRY_AFTER;
        return -1;
    }
    return 0;
}

/* What the access log says of the request: the models it named and went to, the blocks it left out. Copied,
 * since the log line is written after req is freed. */
static void log_models(struct request *rq, const struct chat_request *req)
{
    if (!req->client_model)
        return;
    snprintf(rq->model, sizeof rq->model, "%s", req->client_model);
    snprintf(rq->upstream_model, sizeof rq->upstream_model, "%s", req->ollama_model);
    snprintf(rq->dropped, sizeof rq->dropped, "%s", req->dropped);
    rq->log.model = rq->model;
    rq->log.upstream_model = rq->upstream_model;
    rq->log.dropped = rq->dropped;
}

/* The request's model is the relay's own r->req, which req points to. */
static void use_model(struct relay *r, const char *model)
{
    free(r->req.ollama_model);
    r->req.ollama_model = xstrdup(model);
    snprintf(r->rq->upstream_model, sizeof r->rq->upstream_model, "%s", model);
}

/* A model a request may switch to: some host has it, and the key (if any) may use it. */
static int may_use(const struct relay *r, const char *model)
{
    return hosts_any_has(&r->rq->w->up, model) && (!r->rq->key || keys_allow_model(r->rq->key, model));
}

/* The MODEL_MAP fallback after the request's model (the first, when the model is none of them) that the
 * request may switch to, or NULL. Each switch moves further down the chain, so it ends. */
static const char *next_fallback(const struct relay *r)
{
    size_t n, next = 0;
    char *const *fallbacks = config_model_fallbacks(r->rq->w->cfg, r->req.client_model, &n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(fallbacks[i], r->req.ollama_model) == 0)
            next = i + 1;
    for (; next < n; next++)
        if (may_use(r, fallbacks[next]))
            return fallbacks[next];
    return NULL;
}

/* With several hosts, the first model of the MODEL_MAP entry's chain that some host has. A model no host
 * has is a 404, as one Ollama's own would be. */
static int choose_model(struct relay *r, struct apierr *e)
{
    struct upstream *up = &r->rq->w->up;
    const char *to;
    size_t n;

    if (up->n_hosts < 2)
        return 0;
    hosts_refresh(up, 0);
    /* A model pulled since the last listing is found at once. */
    if (!hosts_any_has(up, r->req.ollama_model))
        hosts_refresh(up, 1);
    if (hosts_any_has(up, r->req.ollama_model))
        return 0;
    to = next_fallback(r);
    if (to) {
        use_model(r, to);
        return 0;
    }
    config_model_fallbacks(r->rq->w->cfg, r->req.client_model, &n);
    ollama_model_not_found(&r->req, n ? "no host has it nor any of its fallbacks" : "no host has it", e);
    return -1;
}

/* What the worker knows of req's model, asked of a host that has it when it knows nothing: r->entry. */
static int learn_facts(struct relay *r, const struct chat_request *req, struct apierr *e)
{
    struct upstream_result res;
    struct json_object *q;
    struct buf body;
    size_t order[CONFIG_MAX_HOSTS];
    int rc = 0;

    r->entry = models_find(&r->rq->w->models, req->ollama_model);
    if (r->entry || !r->may_ask)
        return 0;
    r->host = hosts_order(&r->rq->w->up, req->ollama_model, r->key, order) ? order[0] : 0;
    buf_init(&body);
    upstream_result_init(&res);
    q = json_object_new_object();
    json_object_object_add(q, "model", json_object_new_string(req->ollama_model));
    if (upstream_fetch(&r->rq->w->up, r->host, "/api/show", jsonx_text(q, NULL), SHOW_TIMEOUT_MS, &body, &res) < 0) {
        unreachable(r, &res, e);
        rc = -1;
    } else {
        show_answer(r, req, &res, &body, e, &rc);
    }
    json_object_put(q);
    buf_free(&body);
    upstream_result_free(&res);
    return rc;
}

/* ROUTES, after MODEL_MAP: a model for what the chosen one cannot do, when a host has it. */
static int route_by_capability(struct relay *r, const struct chat_request *req, struct apierr *e)
{
    static const struct model_facts unknown;
    const char *to = capability_route(r->rq->w->cfg, req, r->entry ? &r->entry->facts : &unknown);

    if (!to || config_same_model(to, req->ollama_model) || !may_use(r, to))
        return 0;
    use_model(r, to);
    return learn_facts(r, req, e);
}

static int model_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *e)
{
    struct relay *r = ctx;
    const char *to;
    int rc;

    memset(f, 0, sizeof *f);
    if (r->may_ask && choose_model(r, e) < 0)
        return -1;
    /* Asked here, where the model Ollama would run is known and Ollama was not asked anything yet (but the
     * hosts' model lists). */
    if (admit(r->rq->key, req, r->may_ask, e) < 0)
        return -1;
    r->key = affinity_key(req);
    rc = learn_facts(r, req, e);
    /* One Ollama, whose models are not listed: its /api/show says which it does not have. */
    while (rc < 0 && e->status == 404 && r->may_ask && (to = next_fallback(r))) {
        use_model(r, to);
        rc = learn_facts(r, req, e);
    }
    if (rc == 0 && r->may_ask)
        rc = route_by_capability(r, req, e);
    if (r->entry)
        *f = r->entry->facts;
    return rc;
}

/* ---- the call ---- */

static int put(void *ctx, const char *bytes, size_t len)
{
    struct relay *r = ctx;

    return reply_put(&r->rq->reply, r->sink.wire->content_type, bytes, len);
}

/* Every flush ends an event or a keep-alive: the clocks of both restart. */
static int flush(void *ctx)
{
    struct relay *r = ctx;

    clock_gettime(CLOCK_MONOTONIC, &r->last_event);
    r->last_byte = r->last_event;
    return reply_flush(&r->rq->reply);
}

/* Memory grows only with what Ollama sends, so it is looked at between pieces of the reply, never on a
 * clock (every 500 ms let a held reply reach 800 MiB past a limit of 64). */
static int memory_due(struct relay *r, size_t len)
{
    r->unchecked += len;
    if (r->unchecked < MEMORY_CHECK_BYTES && r->stream.bytes - r->held_checked < MEMORY_CHECK_HELD)
        return 0;
    r->unchecked = 0;
    r->held_checked = r->stream.bytes;
    return 1;
}

static int on_data(void *ctx, const char *bytes, size_t len)
{
    struct relay *r = ctx;
    int rc;

    if (!r->got_data) {
        r->got_data = 1;
        r->rq->log.ttft_ms = request_ms_since(&r->rq->start);
    }
    rc = stream_feed(&r->stream, bytes, len);
    if (memory_due(r, len) && request_over_memory(r->rq)) {
        r->over_memory = 1;
        return UPSTREAM_ABORT;
    }
    if (rc == STREAM_GONE)
        return UPSTREAM_ABORT;
    if (rc == STREAM_DONE)
        return r->stream.saw_done ? UPSTREAM_DONE : UPSTREAM_ABORT;
    return UPSTREAM_MORE;
}

static int on_tick(void *ctx, int client_news)
{
    struct relay *r = ctx;

    if (request_client_gone(r->rq, client_news))
        return 1;
    if (!r->req.stream || r->stream.ended)
        return 0;
    /* While Ollama is silent (a model loading, a long prompt), pings keep clients and proxies waiting. */
    if (request_ms_since(&r->last_event) >= (double)r->rq->w->cfg->ping_interval * 1000.0)
        return stream_ping(&r->stream) < 0;
    /* lighttpd keeps the FastCGI connection of a client that left open until a write to it fails, so
     * after a second of silence the stream begins and the framing's keep-alive (which clients skip) goes
     * out each second: a client that left is found within about a second through any web server. A
     * framing without one (NDJSON) leaves this to nginx's and Apache's hang-up. */
    if (request_ms_since(&r->last_byte) >= KEEPALIVE_MS) {
        clock_gettime(CLOCK_MONOTONIC, &r->last_byte);
        if (!r->stream.begun)
            return stream_begin(&r->stream) < 0;
        return wire_keepalive(&r->sink) < 0;
    }
    return 0;
}

static void fail(struct relay *r, const struct apierr *e)
{
    struct request *rq = r->rq;

    if (r->req.stream && rq->reply.headers_sent)
        stream_fail(&r->stream, e);
    else
        reply_error(&rq->reply, r->d, e);
    rq->log.outcome = rq->reply.gone ? "client_gone" : "upstream_error";
}

enum { CALL_OK, CALL_NEXT, CALL_OVER };

/* One host's call of /api/chat, with the retry the core asks for. CALL_OK: the reply came (whole or cut
 * short by us); CALL_NEXT: the host failed before its first byte (refused, unreachable, a 5xx, or it lacks
 * the model), e says how, and another may answer; CALL_OVER: the request is over (answered, or the client
 * left). A stream whose host dies after its first byte ends with the error: never replayed elsewhere. */
static int call_host(struct relay *r, size_t host, struct upstream_result *res, struct apierr *e)
{
    struct request *rq = r->rq;
    struct upstream_handler h = { on_data, on_tick, r, rq->fcgi->ipcFd };

    r->host = host;
    r->called = 1;
    for (int attempt = 0;; attempt++) {
        upstream_result_init(res);
        if (upstream_chat(&rq->w->up, host, rq->w->out.data, rq->w->out.len, &h, res) < 0) {
            if (rq->reply.gone)
                return CALL_OVER;
            unreachable(r, res, e);
            if (!r->got_data) {
                metrics_host_failed(host);
                return CALL_NEXT;
            }
            fail(r, e);
            return CALL_OVER;
        }
        if (res->status >= 200 && res->status < 300) {
            metrics_host_ok(host);
            return CALL_OK;
        }
        if (res->status >= 500 || res->status == 404) {
            ollama_status_error(res->status, res->error_body.data, res->error_body.len, &r->req, e);
            if (res->status == 404)
                hosts_forget(&rq->w->up, host);
            else
                metrics_host_failed(host);
            return CALL_NEXT;
        }
        if (pipeline_refused(&r->req, rq->w->cfg, attempt, res->status, res->error_body.data, res->error_body.len,
                             &rq->w->out, e) != PIPELINE_RETRY) {
            fail(r, e);
            return CALL_OVER;
        }
        /* The model cannot think: every later request to it goes without. */
        r->entry = models_put(&rq->w->models, r->req.ollama_model,
                              r->entry ? &r->entry->facts : &(struct model_facts){ .known = 1, .correction = 1.0 });
        r->entry->facts.can_think = 0;
        upstream_result_free(res);
    }
}

/* The hosts that have the model, the conversation's first. */
static int call_model(struct relay *r, struct upstream_result *res, struct apierr *e)
{
    size_t order[CONFIG_MAX_HOSTS], n = hosts_order(&r->rq->w->up, r->req.ollama_model, r->key, order);
    int rc = CALL_NEXT;

    for (size_t i = 0; i < n && rc == CALL_NEXT; i++) {
        if (i > 0)
            upstream_result_free(res);
        rc = call_host(r, order[i], res, e);
    }
    if (n == 0)
        upstream_result_init(res);
    return rc;
}

/* The model, then its MODEL_MAP fallbacks after it: the next is asked for when every host with one failed
 * before its first byte. The reply still names the model the client asked for. Returns 0 when the reply
 * came, -1 when the request is over. */
static int call(struct relay *r, struct upstream_result *res)
{
    const char *to;
    struct apierr e;
    int rc;

    apierr_set(&e, APIERR_NOT_FOUND, 404, "no host has model '%s'", r->req.ollama_model);
    for (;;) {
        rc = call_model(r, res, &e);
        if (rc != CALL_NEXT)
            return rc == CALL_OK ? 0 : -1;
        to = next_fallback(r);
        if (!to || r->rq->reply.gone)
            break;
        upstream_result_free(res);
        use_model(r, to);
        /* The body names the model; what the first one's facts made of it stays. */
        buf_reset(&r->rq->w->out);
        ollama_write_chat_body(&r->req, r->rq->w->cfg, &r->rq->w->out);
    }
    if (!r->rq->reply.gone)
        fail(r, &e);
    return -1;
}

static void answer(struct relay *r)
{
    struct request *rq = r->rq;
    struct upstream_result res;
    struct apierr e;

    if (call(r, &res) < 0)
        goto out;
    request_note_large(rq, r->stream.bytes);
    if (r->over_memory) {
        /* The reply ends with an error, and the worker makes way for a fresh one. */
        apierr_set(&e, APIERR_API, 502, "answering took more memory than a worker may hold (MEMORY_LIMIT=%ld MiB)",
                   rq->w->cfg->memory_limit);
        fail(r, &e);
        goto out;
    }
    if (rq->reply.gone || (res.aborted && !r->stream.ended)) {
        rq->log.outcome = "client_gone";
        goto out;
    }
    stream_eof(&r->stream);
    if (r->stream.prompt_tokens >= 0)
        models_learn(r->entry, r->req.raw_estimate, r->stream.prompt_tokens);
    rq->log.input_tokens = r->stream.prompt_tokens >= 0 ? r->stream.prompt_tokens : r->req.estimated_tokens;
    rq->log.cache_said = r->stream.cached_tokens >= 0;
    rq->log.cached_tokens = r->stream.cached_tokens;
    if (r->stream.saw_done)
        metrics_prompt(r->host, r->req.ollama_model, rq->log.input_tokens, r->stream.cached_tokens);
    rq->log.output_tokens = r->stream.output_tokens;
    rq->log.text_tool_calls = r->stream.text_calls;
    if (r->stream.text_calls)
        metrics_text_tool_calls(r->stream.text_calls);
    if (!r->req.stream) {
        struct buf body;

        buf_init(&body);
        if (pipeline_whole(r->d, &r->req, &r->whole, &body, &e) < 0)
            fail(r, &e);
        else
            reply_body(&rq->reply, 200, "application/json", body.data, body.len);
        buf_free(&body);
    }
    if (!rq->log.outcome)
        rq->log.outcome = rq->reply.gone ? "client_gone" : r->stream.failed ? "upstream_error" : "ok";
out:
    upstream_result_free(&res);
}

void relay_serve(struct request *rq, const struct dialect_match *m)
{
    const struct dialect *d = m->d;
    struct relay r = { .rq = rq, .d = d, .may_ask = m->route->kind != ROUTE_COUNT };
    struct dialect_call call = { m->route, rq->path_model[0] ? rq->path_model : NULL, rq->query };
    struct pipeline_models models = { model_facts, &r };
    struct apierr e;
    int rc;

    chat_request_init(&r.req);
    chat_reply_init(&r.whole);
    buf_reset(&rq->w->out);
    rc = body_read(rq, &e);
    if (rc == 0)
        rc = pipeline_request(d, &call, rq->w->body.data ? rq->w->body.data : "", rq->w->body.len, rq->w->cfg,
                              &models, &r.req, &rq->w->out, &e);
    log_models(rq, &r.req);
    request_note_large(rq, rq->w->body.len);
    /* Past MEMORY_LIMIT, the client hears that rather than whatever else went wrong on the way. */
    if (request_over_memory(rq)) {
        apierr_set(&e, APIERR_TOO_LARGE, 413, "this request takes more memory than a worker may hold "
                   "(MEMORY_LIMIT=%ld MiB)", rq->w->cfg->memory_limit);
        rc = -1;
    }
    if (rc < 0) {
        request_send_error(rq, d, &e);
        goto out;
    }
    /* A client that left while its request was read and translated is not worth a call to Ollama. */
    if (request_client_gone(rq, 1))
        goto out;
    if (m->route->kind == ROUTE_COUNT) {
        reply_body(&rq->reply, 200, "application/json", rq->w->out.data, rq->w->out.len);
        goto out;
    }
    wire_sink_init(&r.sink, r.req.wire, put, flush, &r);
    request_random_id(r.req.id, sizeof r.req.id, d->id_prefix);
    r.req.created = (long long)time(NULL);
    clock_gettime(CLOCK_MONOTONIC, &r.last_event);
    r.last_byte = r.last_event;
    stream_open(&r.stream, d, &r.req, r.req.stream ? &r.sink : NULL, &r.whole, pipeline_reply_cap(&r.req, rq->w->cfg));
    metrics_stream_started();
    answer(&r);
    if (rq->w->cfg->n_hosts > 1 && r.called)
        rq->log.host = rq->w->cfg->hosts_shown[r.host];
    metrics_stream_ended();
    request_note_large(rq, r.stream.line.cap);
    stream_close(&r.stream);
out:
    metrics_key_release();
    chat_reply_free(&r.whole);
    chat_request_free(&r.req);
}

/* ---- Ollama's own routes, passed ---- */

struct passing {
    struct request *rq;
    const struct dialect *d;
    struct chat_request req;      /* the models the body named; nothing else of it is used */
    struct upstream_result res;
    struct wire_sink sink;
    struct pass pass;
    int opened;                   /* pass_open ran, once the reply's type was known */
};

static int pass_put(void *ctx, const char *bytes, size_t len)
{
    struct passing *p = ctx;

    return reply_put(&p->rq->reply, p->sink.wire->content_type, bytes, len);
}

static int pass_flush(void *ctx)
{
    return reply_flush(&((struct passing *)ctx)->rq->reply);
}

/* Ollama's type, or JSON when it named none. */
static const char *pass_type(const struct passing *p)
{
    return p->res.content_type[0] ? p->res.content_type : "application/json";
}

/* Ollama streams NDJSON line by line, and the client gets each line as it comes; any other reply (stream
 * false, the GET routes) is held and passed whole, with Ollama's type. */
static void pass_start(struct passing *p)
{
    int streamed = strncmp(p->res.content_type, "application/x-ndjson", 20) == 0;

    p->opened = 1;
    p->rq->log.ttft_ms = request_ms_since(&p->rq->start);
    wire_sink_init(&p->sink, p->d->wire, pass_put, pass_flush, p);
    pass_open(&p->pass, p->d, &p->req, streamed ? &p->sink : NULL, streamed ? STREAM_MAX_LINE : p->rq->w->cfg->max_reply);
}

static int pass_data(void *ctx, const char *bytes, size_t len)
{
    struct passing *p = ctx;

    if (!p->opened)
        pass_start(p);
    switch (pass_feed(&p->pass, bytes, len)) {
    case PASS_GONE:
        return UPSTREAM_ABORT;
    case PASS_DONE:
        return p->pass.last ? UPSTREAM_DONE : UPSTREAM_ABORT;
    }
    return UPSTREAM_MORE;
}

static int pass_tick(void *ctx, int client_news)
{
    struct passing *p = ctx;

    return request_client_gone(p->rq, client_news);
}

/* The reply Ollama gave, to the client: its own error with its status, a stream's end, or a whole reply. */
static void pass_answer(struct passing *p)
{
    struct request *rq = p->rq;
    struct buf body;

    buf_init(&body);
    if (p->res.status < 200 || p->res.status >= 300) {
        reply_body(&rq->reply, (int)p->res.status, pass_type(p), p->res.error_body.data, p->res.error_body.len);
        rq->log.outcome = p->res.status >= 500 ? "upstream_error" : "rejected";
        goto out;
    }
    if (!p->opened)
        pass_start(p);
    if (pass_end(&p->pass, &body) == PASS_GONE)
        goto out;
    if (!p->pass.sink && p->pass.failed)
        request_send_error(rq, p->d, &p->pass.err);
    else if (!rq->reply.headers_sent)
        reply_body(&rq->reply, (int)p->res.status, pass_type(p), body.data, body.len);
    if (!rq->log.outcome)
        rq->log.outcome = p->pass.failed ? "upstream_error" : "ok";
out:
    buf_free(&body);
}

/* With several hosts, a route that names a model goes to the first host that has it (by the conversation's
 * rendezvous order, as a translated chat would), any other to the first host. No failover: what a passed
 * route does on a server (a pull, a delete) must not be done twice. */
static size_t pass_host(struct passing *p)
{
    struct upstream *up = &p->rq->w->up;
    size_t order[CONFIG_MAX_HOSTS];

    if (up->n_hosts < 2 || !p->req.ollama_model)
        return 0;
    hosts_refresh(up, 0);
    return hosts_order(up, p->req.ollama_model, affinity_key(&p->req), order) ? order[0] : 0;
}

/* Ollama's reply to the body in rq->w->out (or none: a GET), passed on as it comes. */
static void pass_call(struct passing *p, const struct dialect_route *route)
{
    struct request *rq = p->rq;
    struct upstream_handler h = { pass_data, pass_tick, p, rq->fcgi->ipcFd };
    int get = strcmp(route->method, "GET") == 0;
    size_t host = pass_host(p);
    struct apierr e;
    int rc;

    metrics_stream_started();
    rc = upstream_stream(&rq->w->up, host, route->method, route->upstream, get ? NULL : rq->w->out.data,
                         rq->w->out.len, &h, &p->res);
    if (rq->w->cfg->n_hosts > 1)
        rq->log.host = rq->w->cfg->hosts_shown[host];
    metrics_stream_ended();
    if (rq->reply.gone || (p->res.aborted && !p->pass.last && !p->pass.failed)) {
        rq->log.outcome = "client_gone";
    } else if (rc < 0) {
        ollama_unreachable(rq->w->cfg, host_shown(rq->w->cfg, host), &p->res, &e);
        if (p->opened && p->pass.sink && rq->reply.headers_sent)
            pass_fail(&p->pass, &e);
        else
            request_send_error(rq, p->d, &e);
        rq->log.outcome = rq->reply.gone ? "client_gone" : "upstream_error";
    } else {
        pass_answer(p);
    }
    if (p->pass.fin.input_tokens >= 0)
        rq->log.input_tokens = p->pass.fin.input_tokens;
    if (p->pass.fin.output_tokens >= 0)
        rq->log.output_tokens = p->pass.fin.output_tokens;
    request_note_large(rq, p->pass.held.cap);
}

/* The key's say on a passed route: a key held to some models changes nothing on the server (a pull, a copy or
 * a delete could reach other models), and a route that names a model is held to the key's models and
 * counts as one of its streams. */
static int pass_admit(const struct passing *p, const struct dialect_route *route, struct apierr *e)
{
    const struct key_entry *key = p->rq->key;

    if (key && key->models && route->writes) {
        apierr_set(e, APIERR_PERMISSION, 403, "this API key may use only some models, and may not change the server");
        return -1;
    }
    return p->req.ollama_model ? admit(key, &p->req, 1, e) : 0;
}

/* A route that changes the server, refused unless the setting allows it; one the pool never passes. */
static int pass_refused(struct request *rq, const struct dialect_match *m)
{
    struct apierr e;

    if (m->route->upstream && (!m->route->writes || rq->w->cfg->api_writes))
        return 0;
    body_drain(rq);
    if (!m->route->upstream)
        apierr_set(&e, APIERR_PERMISSION, 403, "%s %s is not passed by this server: model files go to Ollama "
                   "itself", rq->method, rq->path);
    else
        apierr_set(&e, APIERR_PERMISSION, 403, "%s %s changes the server, which this server allows only with "
                   "OLLAMA_API_WRITES=1", rq->method, rq->path);
    request_send_error(rq, m->d, &e);
    return -1;
}

void relay_pass(struct request *rq, const struct dialect_match *m)
{
    const struct dialect *d = m->d;
    struct passing p = { .rq = rq, .d = d };
    struct dialect_call call = { m->route, rq->path_model[0] ? rq->path_model : NULL, rq->query };
    struct apierr e;
    int rc = 0;

    chat_request_init(&p.req);
    upstream_result_init(&p.res);
    buf_reset(&rq->w->out);
    if (pass_refused(rq, m) < 0)
        goto out;
    if (strcmp(m->route->method, "GET") == 0) {
        body_drain(rq);
    } else {
        rc = body_read_any(rq, &e);
        if (rc == 0)
            rc = d->pass_request(&call, rq->w->body.data ? rq->w->body.data : "", rq->w->body.len, rq->w->cfg,
                                 &p.req, &rq->w->out, &e);
    }
    log_models(rq, &p.req);
    request_note_large(rq, rq->w->body.len);
    if (rc == 0)
        rc = pass_admit(&p, m->route, &e);
    if (rc < 0) {
        request_send_error(rq, d, &e);
        goto out;
    }
    /* A client that left while its request was read is not worth a call to Ollama. */
    if (request_client_gone(rq, 1))
        goto out;
    pass_call(&p, m->route);
out:
    metrics_key_release();
    if (p.opened)
        pass_close(&p.pass);
    upstream_result_free(&p.res);
    chat_request_free(&p.req);
}
