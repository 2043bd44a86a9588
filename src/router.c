/* router.c -- one request from its params to its answer: the path, the route (a dialect's from the registry,
 * or one of the plain routes), the key, and the access-log line and metrics once it is answered. */
#include "router.h"

#include <ctype.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "body.h"
#include "dialect.h"
#include "metrics.h"
#include "relay.h"
#include "routes.h"

/* The routes no dialect owns. Their labels name them in /metrics. */
struct plain_route {
    const char *label;
    const char *method;           /* GET routes answer HEAD too */
    const char *path;
    int open;                     /* no API key needed */
    void (*serve)(struct request *rq);
};

static const struct plain_route plain_routes[] = {
    { .label = "/health", .method = "GET", .path = "/health", .open = 1, .serve = routes_health },
    { .label = "/metrics", .method = "GET", .path = "/metrics", .serve = routes_metrics },
    { .label = "probe", .method = "GET", .path = "/", .serve = routes_root },
    { .label = "probe", .method = "GET", .path = "/api/hello", .serve = routes_root },
    { .label = "/api/event_logging", .method = "POST", .path = "/api/event_logging/batch", .serve = routes_no_content },
    { .label = "/api/event_logging", .method = "POST", .path = "/api/event_logging/v2/batch", .serve = routes_no_content },
};

/* What each kind of dialect route runs. */
static void (*const serve_kind[])(struct request *rq, const struct dialect_match *m) = {
    [ROUTE_CHAT] = relay_serve,
    [ROUTE_COUNT] = relay_serve,
    [ROUTE_MODELS] = routes_models,
    [ROUTE_PASS] = relay_pass,
};

static void name_route(void *ctx, const char *label)
{
    (void)ctx;
    metrics_name_route(label);
}

void router_name_routes(void)
{
    dialect_labels(name_route, NULL);
    for (size_t i = 0; i < sizeof plain_routes / sizeof *plain_routes; i++)
        metrics_name_route(plain_routes[i].label);
}

static int method_matches(const char *want, const char *method)
{
    return strcmp(want, method) == 0 || (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* An error for a request no route takes: the body is read first, or closing would reset the connection. */
static void refuse(struct request *rq, const struct dialect *d, enum apierr_kind kind, int status, const char *code,
                   const char *message)
{
    struct apierr e;

    body_drain(rq);
    apierr_set(&e, kind, status, "%s", message);
    e.code = code;
    request_send_error(rq, d, &e);
}

/* A 401 that says where this dialect's clients put the key: "x-goog-api-key, ?key= or Authorization: Bearer". */
static void refuse_key(struct request *rq, const struct dialect *d)
{
    struct buf m;

    buf_init(&m);
    buf_puts(&m, "invalid or missing API key: send it as ");
    for (size_t i = 0; d->key_headers && d->key_headers[i]; i++) {
        /* HTTP_X_API_KEY is the header x-api-key. */
        for (const char *h = d->key_headers[i] + 5; *h; h++)
            buf_putc(&m, *h == '_' ? '-' : (char)tolower((unsigned char)*h));
        buf_puts(&m, d->key_headers[i + 1] || d->key_query ? ", " : " or ");
    }
    if (d->key_query)
        buf_printf(&m, "?%s= or ", d->key_query);
    buf_puts(&m, "Authorization: Bearer");
    refuse(rq, d, APIERR_AUTHENTICATION, 401, "invalid_api_key", m.data);
    buf_free(&m);
}

static int has_param(void *ctx, const char *name)
{
    return request_param(ctx, name) != NULL;
}

/* The model a path names, percent-decoded: Gemini's clients write "qwen3:4b" as it is, others escape. */
static int path_model(struct request *rq, const struct dialect_match *m)
{
    char *decoded;
    int n = 0;

    if (!m->model[0])
        return 0;
    decoded = curl_easy_unescape(NULL, m->model, 0, &n);
    if (!decoded || (size_t)n >= sizeof rq->path_model || memchr(decoded, '\0', (size_t)n)) {
        curl_free(decoded);
        return -1;
    }
    memcpy(rq->path_model, decoded, (size_t)n + 1);
    curl_free(decoded);
    return 0;
}

/* A dialect route: the key, then the route's kind. */
static void serve_dialect(struct request *rq, const struct dialect_match *m)
{
    if (!request_authorized(rq, m->d)) {
        refuse_key(rq, m->d);
        return;
    }
    if (path_model(rq, m) < 0) {
        refuse(rq, m->d, APIERR_INVALID_REQUEST, 400, NULL, "the model named in the path is not valid");
        return;
    }
    serve_kind[m->route->kind](rq, m);
}

/* Routes rq; the label it is counted under goes to label. */
static void route(struct request *rq, char *label, size_t size)
{
    struct dialect_match m;
    const char *allowed = NULL;
    char message[1200];

    for (size_t i = 0; i < sizeof plain_routes / sizeof *plain_routes; i++) {
        const struct plain_route *r = &plain_routes[i];

        if (strcmp(r->path, rq->path) != 0)
            continue;
        if (!method_matches(r->method, rq->method)) {
            allowed = r->method;
            continue;
        }
        snprintf(label, size, "%s", r->label);
        if (!r->open && !request_authorized(rq, NULL))
            refuse_key(rq, dialect_registry[0]);
        else
            r->serve(rq);
        return;
    }
    snprintf(label, size, "other");
    switch (dialect_route(rq->method, rq->path, has_param, rq, &m, &allowed)) {
    case DIALECT_FOUND:
        snprintf(label, size, "%s", m.label);
        serve_dialect(rq, &m);
        return;
    case DIALECT_WRONG_METHOD:
        break;
    default:
        if (!allowed) {
            snprintf(message, sizeof message, "no route for %s %s", rq->method, rq->path);
            refuse(rq, dialect_for_path(rq->path), APIERR_NOT_FOUND, 404, NULL, message);
            return;
        }
    }
    snprintf(message, sizeof message, "%s %s is not supported; use %s", rq->method, rq->path, allowed);
    refuse(rq, dialect_for_path(rq->path), APIERR_INVALID_REQUEST, 405, NULL, message);
}

static void request_path(struct request *rq)
{
    const char *uri = request_param(rq, "REQUEST_URI"), *q;
    size_t n;

    if (!uri || !*uri)
        uri = request_param(rq, "SCRIPT_NAME");
    if (!uri || !*uri)
        uri = "/";
    q = strchr(uri, '?');
    rq->query = q ? q + 1 : "";
    n = q ? (size_t)(q - uri) : strlen(uri);
    if (n >= sizeof rq->path)
        n = sizeof rq->path - 1;
    memcpy(rq->path, uri, n);
    rq->path[n] = '\0';
    /* "/v1/messages/" is "/v1/messages", "//v1//messages" too (a base URL ending in a slash). */
    for (size_t i = 1, j = 1; i <= n; i++)
        if (!(rq->path[i] == '/' && rq->path[j - 1] == '/'))
            rq->path[j++] = rq->path[i];
    n = strlen(rq->path);
    while (n > 1 && rq->path[n - 1] == '/')
        rq->path[--n] = '\0';
    /* A base URL that already ends in /v1 (a common slip with Claude Code and OpenAI clients alike). */
    if (strncmp(rq->path, "/v1/v1/", 7) == 0)
        memmove(rq->path, rq->path + 3, n - 2);
}

static void limit(int fd, int which, long seconds)
{
    struct timeval t = { .tv_sec = seconds };

    setsockopt(fd, SOL_SOCKET, which, &t, sizeof t);
}

/* After a request that held megabytes, the worker goes back to its small size: the buffers it keeps from
 * request to request shrink, and malloc returns what is free to the system. */
static void give_back(struct worker *w, const struct request *rq)
{
    if (!rq->large && w->body.cap < REQUEST_LARGE_BYTES && w->out.cap < REQUEST_LARGE_BYTES)
        return;
    buf_free(&w->body);
    buf_free(&w->out);
    malloc_trim(0);
}

void router_handle(struct worker *w)
{
    struct request rq;
    char label[DIALECT_LABEL_MAX];

    /* A client that stops taking the reply (and so a web server that stops reading it) holds a write at
     * most SEND_TIMEOUT; the write then fails as if the client had left. Reads end at the connection's
     * deadline (request_read). */
    limit(w->fcgi.ipcFd, SO_SNDTIMEO, w->cfg->send_timeout);
    memset(&rq, 0, sizeof rq);
    rq.w = w;
    rq.fcgi = &w->fcgi;
    clock_gettime(CLOCK_MONOTONIC, &rq.start);
    request_random_id(rq.request_id, sizeof rq.request_id, "req_");
    reply_init(&rq.reply, w->fcgi.out, rq.request_id);
    rq.method = request_param(&rq, "REQUEST_METHOD");
    if (!rq.method)
        rq.method = "GET";
    request_path(&rq);
    rq.log.ttft_ms = -1;
    route(&rq, label, sizeof label);
    if (rq.reply.gone && !rq.reply.headers_sent) {
        rq.reply.status = 499;   /* nginx's word for a client that closed the connection first */
    } else if (!rq.reply.headers_sent) {
        struct apierr e;

        apierr_set(&e, APIERR_API, 500, "the adapter sent no reply");
        request_send_error(&rq, dialect_for_path(rq.path), &e);
    }
    rq.log.request_id = rq.request_id;
    rq.log.method = rq.method;
    rq.log.path = rq.path;
    rq.log.status = rq.reply.status;
    rq.log.duration_ms = request_ms_since(&rq.start);
    if (rq.reply.gone)
        rq.log.outcome = "client_gone";
    rq.log.key = rq.key ? rq.key->name : NULL;
    accesslog_write(&rq.log);
    metrics_request(label, rq.log.status, rq.log.duration_ms / 1e3, rq.log.ttft_ms / 1e3, rq.log.input_tokens,
                    rq.log.output_tokens, rq.log.outcome && strcmp(rq.log.outcome, "upstream_error") == 0,
                    rq.reply.gone);
    if (rq.key)
        metrics_key_request(rq.key->name, rq.log.input_tokens, rq.log.output_tokens, rq.log.cached_tokens);
    give_back(w, &rq);
}
