/* worker.c -- one worker process: the FCGX_Accept_r loop, routing and auth; and the request context the
 * routes, the body reader and the relay share. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "anthropic.h"
#include "body.h"
#include "metrics.h"
#include "openai.h"
#include "relay.h"
#include "responses.h"
#include "routes.h"

#define GONE_CHECK_MS 200.0
#define LARGE_BYTES (1u << 20)
/* Room above MEMORY_LIMIT in address space: libraries, thread stacks and arenas libcurl's resolver may make.
 * Past it allocation fails and the worker dies, so the host never runs out of memory. */
#define ADDRESS_MARGIN_MB 1024

static volatile sig_atomic_t stopping;
static int listen_fd_global = -1;
static int dummy_fd = -1;

/* ---- what the routes share ---- */

double worker_ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

void worker_random_id(char *out, size_t size, const char *prefix)
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

const char *worker_param(struct request *rq, const char *name)
{
    return FCGX_GetParam(name, rq->fcgi->envp);
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

int worker_authorized(struct request *rq)
{
    const char *key = rq->w->cfg->api_key, *v;

    if (!key)
        return 1;
    v = worker_param(rq, "HTTP_X_API_KEY");
    if (v && same_secret(v, key))
        return 1;
    v = worker_param(rq, "HTTP_AUTHORIZATION");
    return v && strncasecmp(v, "Bearer ", 7) == 0 && same_secret(v + 7, key);
}

/* The web server closes our connection when its client leaves (nginx), or a write to it fails
 * (lighttpd, which keeps it open until then). */
int worker_client_gone(struct request *rq, int look_now)
{
    struct pollfd p = { rq->fcgi->ipcFd, POLLIN | POLLRDHUP, 0 };

    if (rq->reply.gone)
        return 1;
    if (!look_now && worker_ms_since(&rq->gone_checked) < GONE_CHECK_MS)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &rq->gone_checked);
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return rq->reply.gone = 1;
    return 0;
}

/* Asked before every piece of Ollama's reply, so it is one pread() of a file kept open (0.3 us, against
 * 1.8 us to open and scan it each time); opened again in a process forked since. */
static long rss_mb(void)
{
    static int fd = -1;
    static pid_t owner;
    long resident = 0;
    char text[128];
    ssize_t n;

    if (fd >= 0 && owner != getpid()) {
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
        owner = getpid();
        if (fd < 0)
            return 0;
    }
    n = pread(fd, text, sizeof text - 1, 0);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    if (sscanf(text, "%*d %ld", &resident) != 1)
        resident = 0;
    return resident * (sysconf(_SC_PAGESIZE) / 1024) / 1024;
}

int worker_over_memory(struct request *rq)
{
    long limit = rq->w->cfg->memory_limit, held;

    if (limit == 0)
        return 0;
    held = rss_mb();
    if (held <= limit)
        return 0;
    if (!rq->w->retire)
        fprintf(stderr, "ollama-fcgi: worker %d holds %ld MiB, over MEMORY_LIMIT=%ld; it ends %s and retires\n",
                (int)getpid(), held, limit, rq->request_id);
    rq->w->retire = 1;
    return 1;
}

void worker_note_large(struct request *rq, size_t bytes)
{
    if (bytes >= LARGE_BYTES)
        rq->large = 1;
}

/* After a request that held megabytes, the worker goes back to its small size: the buffers it keeps from
 * request to request shrink, and malloc returns what is free to the system. */
static void give_back(struct worker *w, const struct request *rq)
{
    if (!rq->large && w->body.cap < LARGE_BYTES && w->out.cap < LARGE_BYTES)
        return;
    buf_free(&w->body);
    buf_free(&w->out);
    malloc_trim(0);
}

void worker_send_error(struct request *rq, const struct dialect *d, const struct apierr *e)
{
    reply_error(&rq->reply, d, e);
    if (!rq->log.outcome)
        rq->log.outcome = e->status >= 500 || e->kind == APIERR_OVERLOADED ? "upstream_error" : "rejected";
}

/* ---- routing ---- */

static void serve_messages(struct request *rq)
{
    relay_serve(rq, &anthropic_dialect);
}

static void serve_count_tokens(struct request *rq)
{
    relay_serve(rq, &anthropic_count_dialect);
}

static void serve_chat_completions(struct request *rq)
{
    relay_serve(rq, &openai_dialect);
}

static void serve_responses(struct request *rq)
{
    relay_serve(rq, &responses_dialect);
}

struct route {
    enum metrics_route label;
    const char *method;           /* GET routes answer HEAD too */
    const char *path;
    int prefix;                   /* path is a prefix ("/v1/models/") */
    int open;                     /* no API key needed */
    void (*serve)(struct request *rq);
};

static const struct route routes[] = {
    { METRICS_MESSAGES, "POST", "/v1/messages", 0, 0, serve_messages },
    { METRICS_COUNT_TOKENS, "POST", "/v1/messages/count_tokens", 0, 0, serve_count_tokens },
    { METRICS_CHAT_COMPLETIONS, "POST", "/v1/chat/completions", 0, 0, serve_chat_completions },
    /* OpenAI clients given a base URL without /v1. */
    { METRICS_CHAT_COMPLETIONS, "POST", "/chat/completions", 0, 0, serve_chat_completions },
    { METRICS_RESPONSES, "POST", "/v1/responses", 0, 0, serve_responses },
    { METRICS_RESPONSES, "POST", "/responses", 0, 0, serve_responses },
    { METRICS_MODELS, "GET", "/v1/models", 0, 0, routes_models },
    { METRICS_MODELS, "GET", "/v1/models/", 1, 0, routes_models },
    { METRICS_HEALTH, "GET", "/health", 0, 1, routes_health },
    { METRICS_METRICS, "GET", "/metrics", 0, 0, routes_metrics },
    { METRICS_PROBE, "GET", "/", 0, 0, routes_root },
    { METRICS_PROBE, "GET", "/api/hello", 0, 0, routes_root },
    { METRICS_EVENT_LOGGING, "POST", "/api/event_logging/batch", 0, 0, routes_no_content },
    { METRICS_EVENT_LOGGING, "POST", "/api/event_logging/v2/batch", 0, 0, routes_no_content },
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
        strncmp(path, "/v1/embeddings", 14) == 0)
        return &openai_dialect;
    if (strncmp(path, "/v1/responses", 13) == 0 || strncmp(path, "/responses", 10) == 0)
        return &responses_dialect;
    return &anthropic_dialect;
}

/* An error for a request no route takes: the body is read first, or closing would reset the connection. */
static void refuse(struct request *rq, enum apierr_kind kind, int status, const char *code, const char *message)
{
    struct apierr e;

    body_drain(rq);
    apierr_set(&e, kind, status, "%s", message);
    e.code = code;
    worker_send_error(rq, path_dialect(rq->path), &e);
}

static enum metrics_route route(struct request *rq)
{
    const struct route *found = NULL;
    const char *allowed = NULL;
    char message[1200];

    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        if (!path_matches(&routes[i], rq->path))
            continue;
        if (method_matches(&routes[i], rq->method)) {
            found = &routes[i];
            break;
        }
        allowed = routes[i].method;
    }
    if (!found && allowed) {
        snprintf(message, sizeof message, "%s %s is not supported; use %s", rq->method, rq->path, allowed);
        refuse(rq, APIERR_INVALID_REQUEST, 405, NULL, message);
        return METRICS_OTHER;
    }
    if (!found) {
        snprintf(message, sizeof message, "no route for %s %s", rq->method, rq->path);
        refuse(rq, APIERR_NOT_FOUND, 404, NULL, message);
        return METRICS_OTHER;
    }
    if (!found->open && !worker_authorized(rq)) {
        refuse(rq, APIERR_AUTHENTICATION, 401, "invalid_api_key",
               "invalid or missing API key: send it as x-api-key or Authorization: Bearer");
        return found->label;
    }
    found->serve(rq);
    return found->label;
}

static void request_path(struct request *rq)
{
    const char *uri = worker_param(rq, "REQUEST_URI"), *q;
    size_t n;

    if (!uri || !*uri)
        uri = worker_param(rq, "SCRIPT_NAME");
    if (!uri || !*uri)
        uri = "/";
    q = strchr(uri, '?');
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

static void handle(struct worker *w)
{
    struct request rq;
    enum metrics_route label;

    /* A client that stops taking the reply (and so a web server that stops reading it) holds a write at
     * most SEND_TIMEOUT; the write then fails as if the client had left. A read of the body waits at most
     * BODY_TIMEOUT. */
    limit(w->fcgi.ipcFd, SO_SNDTIMEO, w->cfg->send_timeout);
    limit(w->fcgi.ipcFd, SO_RCVTIMEO, w->cfg->body_timeout);
    memset(&rq, 0, sizeof rq);
    rq.w = w;
    rq.fcgi = &w->fcgi;
    clock_gettime(CLOCK_MONOTONIC, &rq.start);
    worker_random_id(rq.request_id, sizeof rq.request_id, "req_");
    reply_init(&rq.reply, w->fcgi.out, rq.request_id);
    rq.method = worker_param(&rq, "REQUEST_METHOD");
    if (!rq.method)
        rq.method = "GET";
    request_path(&rq);
    rq.log.ttft_ms = -1;
    label = route(&rq);
    if (rq.reply.gone && !rq.reply.headers_sent) {
        rq.reply.status = 499;   /* nginx's word for a client that closed the connection first */
    } else if (!rq.reply.headers_sent) {
        struct apierr e;

        apierr_set(&e, APIERR_API, 500, "the adapter sent no reply");
        worker_send_error(&rq, path_dialect(rq.path), &e);
    }
    rq.log.request_id = rq.request_id;
    rq.log.method = rq.method;
    rq.log.path = rq.path;
    rq.log.status = rq.reply.status;
    rq.log.duration_ms = worker_ms_since(&rq.start);
    if (rq.reply.gone)
        rq.log.outcome = "client_gone";
    accesslog_write(&rq.log);
    metrics_request(label, rq.log.status, rq.log.duration_ms / 1e3, rq.log.ttft_ms / 1e3, rq.log.input_tokens,
                    rq.log.output_tokens, rq.log.outcome && strcmp(rq.log.outcome, "upstream_error") == 0,
                    rq.reply.gone);
    give_back(w, &rq);
}

/* MEMORY_LIMIT is checked between steps, which end the request in its dialect; the address-space limit
 * behind it catches what no check saw. */
static void limit_memory(const struct config *cfg)
{
    struct rlimit r;

    if (cfg->memory_limit == 0)
        return;
    r.rlim_cur = r.rlim_max = (rlim_t)(cfg->memory_limit + ADDRESS_MARGIN_MB) << 20;
    setrlimit(RLIMIT_AS, &r);
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
    /* The master blocks every signal across fork: one sent in between is delivered now, to these. */
    sigemptyset(&sa.sa_mask);
    sigprocmask(SIG_SETMASK, &sa.sa_mask, NULL);
}

int worker_run(const struct config *cfg, int listen_fd)
{
    struct worker w;
    int status = 0;

    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.listen_fd = listen_fd;
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
    limit_memory(cfg);
    /* Connections accepted on a TCP socket inherit this: a client that connects and sends nothing, or not
     * all of the request's head, holds a worker at most BODY_TIMEOUT per read. */
    limit(listen_fd, SO_RCVTIMEO, cfg->body_timeout);
    while (!stopping && !w.retire && FCGX_Accept_r(&w.fcgi) >= 0) {
        metrics_busy(1);
        handle(&w);
        FCGX_Finish_r(&w.fcgi);
        metrics_busy(0);
        /* A fresh process now and then, as php-fpm's pm.max_requests: whatever a long life gathers goes. */
        if (cfg->max_requests && ++w.served >= cfg->max_requests)
            w.retire = 1;
    }
    if (w.retire) {
        status = WORKER_RETIRED;
    } else if (!stopping) {
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
