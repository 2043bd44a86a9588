/* worker.c -- one worker process: the FCGX_Accept_r loop, routing and auth; and the request context the
 * routes, the body reader and the relay share. */
#include "worker.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "body.h"
#include "dialect.h"
#include "metrics.h"
#include "relay.h"
#include "routes.h"

#define GONE_CHECK_MS 200.0
#define LARGE_BYTES (1u << 20)
/* Room above MEMORY_LIMIT in address space: libraries, thread stacks and arenas libcurl's resolver may make.
 * Past it allocation fails and the worker dies, so the host never runs out of memory. */
#define ADDRESS_MARGIN_MB 1024

static volatile sig_atomic_t stopping;
static int dummy_fd = -1;         /* a socket that does not listen, libfcgi's "listening" socket */

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

/* The key where d's clients put it: a header of its own or its query parameter. */
static int dialect_key(struct request *rq, const struct dialect *d, const char *key)
{
    const char *v;
    char given[512];

    for (size_t i = 0; d->key_headers && d->key_headers[i]; i++)
        if ((v = worker_param(rq, d->key_headers[i])) && same_secret(v, key))
            return 1;
    return d->key_query && chat_query_param(rq->query, d->key_query, given, sizeof given) == 0 &&
           same_secret(given, key);
}

int worker_authorized(struct request *rq, const struct dialect *d)
{
    const char *key = rq->w->cfg->api_key, *v;

    if (!key)
        return 1;
    for (size_t i = 0; d ? i == 0 : dialect_registry[i] != NULL; i++)
        if (dialect_key(rq, d ? d : dialect_registry[i], key))
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
};

static void name_route(void *ctx, const char *label)
{
    (void)ctx;
    metrics_name_route(label);
}

void worker_name_routes(void)
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
    worker_send_error(rq, d, &e);
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
    return worker_param(ctx, name) != NULL;
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
    if (!worker_authorized(rq, m->d)) {
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
        if (!r->open && !worker_authorized(rq, NULL))
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
    const char *uri = worker_param(rq, "REQUEST_URI"), *q;
    size_t n;

    if (!uri || !*uri)
        uri = worker_param(rq, "SCRIPT_NAME");
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

static void handle(struct worker *w)
{
    struct request rq;
    char label[DIALECT_LABEL_MAX];

    /* A client that stops taking the reply (and so a web server that stops reading it) holds a write at
     * most SEND_TIMEOUT; the write then fails as if the client had left. Reads end at the connection's
     * deadline (worker_read). */
    limit(w->fcgi.ipcFd, SO_SNDTIMEO, w->cfg->send_timeout);
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
    route(&rq, label, sizeof label);
    if (rq.reply.gone && !rq.reply.headers_sent) {
        rq.reply.status = 499;   /* nginx's word for a client that closed the connection first */
    } else if (!rq.reply.headers_sent) {
        struct apierr e;

        apierr_set(&e, APIERR_API, 500, "the adapter sent no reply");
        worker_send_error(&rq, dialect_for_path(rq.path), &e);
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

/* How a worker waits, and why so:
 * - It accepts connections itself (poll, then accept4 on the non-blocking listening socket) and hands each
 *   to libfcgi to read the request's head, so it is busy from the moment it holds a connection: a web
 *   server (or a client speaking FastCGI) that trickles the head holds a worker the pool sees as busy, and
 *   a pool sized by demand starts another. libfcgi's own accept is never used (it is given a socket that
 *   does not listen): on a signal it closed a connection it had just accepted.
 * - Stop signals are blocked except while it waits for a connection (ppoll): one arriving then ends the
 *   wait, and one arriving later waits until the connection in hand is served. No accepted connection is
 *   lost, and no read or write of a request is interrupted by a stop.
 * - The request's head and body must arrive within BODY_TIMEOUT of the connection, however they trickle: a
 *   timer shuts reading down at that deadline, which ends whatever read libfcgi is blocked in (bytes
 *   already there are still read). The listening socket has no timeout: an idle worker waits forever. */

#define LINGER_MS 2000            /* closing waits this long for the web server to hang up, as libfcgi would */

static volatile sig_atomic_t late_fd = -1;   /* the connection a guarded read waits on */
static sigset_t stop_signals;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* The deadline passed during a read: reading ends, and the read returns what had arrived. */
static void on_late(int sig)
{
    int saved = errno;

    (void)sig;
    if (late_fd >= 0)
        shutdown(late_fd, SHUT_RD);
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
    sa.sa_handler = on_late;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    /* The master blocks every signal across fork: one sent in between is delivered at the first wait. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGQUIT);
    sigaddset(&stop_signals, SIGUSR1);
    sigprocmask(SIG_SETMASK, &stop_signals, NULL);
}

static long ms_until(const struct timespec *t)
{
    return (long)-worker_ms_since(t);
}

/* Reading fd ends at deadline (at once when it has passed). */
static void guard(int fd, const struct timespec *deadline)
{
    long ms = ms_until(deadline);
    struct itimerval t;

    memset(&t, 0, sizeof t);
    late_fd = fd;
    if (ms <= 0) {
        shutdown(fd, SHUT_RD);
        return;
    }
    t.it_value.tv_sec = ms / 1000;
    t.it_value.tv_usec = (ms % 1000) * 1000 + 1;
    setitimer(ITIMER_REAL, &t, NULL);
}

/* In this order: a timer that fires in between finds no connection to shut. */
static void unguard(void)
{
    struct itimerval off;

    late_fd = -1;
    memset(&off, 0, sizeof off);
    setitimer(ITIMER_REAL, &off, NULL);
}

int worker_read(struct request *rq, char *buf, int n)
{
    int got;

    guard(rq->fcgi->ipcFd, &rq->w->deadline);
    got = FCGX_GetStr(buf, n, rq->fcgi->in);
    unguard();
    return got;
}

/* Whether fd is readable (or hung up) within ms (-1: no limit); stop signals end the wait (0). */
static int wait_readable(int fd, long ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
    sigset_t none;
    int n;

    sigemptyset(&none);
    n = ppoll(&p, 1, ms < 0 ? NULL : &t, &none);
    if (n < 0 && errno != EINTR)
        return -1;
    /* A stop signal that came with the connection stays pending when ppoll returns it: it counts too. */
    if (n > 0 && sigpending(&none) == 0)
        for (int i = 1; i < NSIG; i++)
            if (sigismember(&stop_signals, i) == 1 && sigismember(&none, i) == 1)
                stopping = 1;
    return n > 0;
}

/* Whether the master shut the listening socket down (SIGTERM): what is queued is then served before the
 * worker exits, and nothing new can queue. */
static int listener_shut(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };

    return poll(&p, 1, 0) > 0 && (p.revents & POLLHUP);
}

/* The next connection: one the web server kept open once it sends again (FCGI_KEEP_CONN; dropped after
 * BODY_TIMEOUT of silence), or a new one. Returns it, or -1 when the worker is to stop or cannot accept
 * (*failed set, errno saying why). */
static int next_connection(struct worker *w, int *failed)
{
    int kept = w->fcgi.ipcFd, fd, ready;

    *failed = 0;
    if (kept >= 0) {
        /* Told to stop, a request already on its way is still served. */
        ready = wait_readable(kept, stopping ? 0 : w->cfg->body_timeout * 1000);
        if (ready > 0)
            return kept;
        close(kept);
        w->fcgi.ipcFd = -1;
    }
    for (;;) {
        int err;

        if (!stopping && (ready = wait_readable(w->listen_fd, -1)) <= 0) {
            if (ready < 0)
                goto failed;
            continue;
        }
        /* Told to stop: the connections queued are left to the other workers, but in a drain. */
        if (stopping && !listener_shut(w->listen_fd))
            return -1;
        fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            return fd;
        err = errno;
        /* A drain whose queue is empty. */
        if (listener_shut(w->listen_fd))
            return -1;
        errno = err;
        /* Another worker took it, or the client left before it was taken. */
        if (err == EAGAIN || err == EWOULDBLOCK || err == ECONNABORTED || err == EINTR || err == EPROTO)
            continue;
        goto failed;
    }
failed:
    *failed = 1;
    return -1;
}

/* The request's head (params), read by libfcgi from the connection in hand within its deadline. Returns
 * 0, or -1 when none came in time or it was not FastCGI (libfcgi has closed the connection then). */
static int read_head(struct worker *w, int fd)
{
    int one = 1, rc;

    clock_gettime(CLOCK_MONOTONIC, &w->deadline);
    w->deadline.tv_sec += w->cfg->body_timeout;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);   /* fails harmlessly on a unix socket */
    w->fcgi.ipcFd = fd;
    /* FCGX_Accept_r first finishes the request before, closing its connection unless it is to be kept:
     * this one is. Its own accept, after a failed head, fails on the socket it was given, which does not
     * listen. */
    w->fcgi.keepConnection = 1;
    guard(fd, &w->deadline);
    rc = FCGX_Accept_r(&w->fcgi);
    unguard();
    return rc < 0 ? -1 : 0;
}

/* The reply is complete; the connection is closed (or kept for the next request, as the web server asked).
 * Closing waits for the web server to hang up, at most LINGER_MS however it trickles bytes meanwhile. */
static void finish(struct worker *w)
{
    struct timespec linger;

    FCGX_FClose(w->fcgi.err);
    FCGX_FClose(w->fcgi.out);
    clock_gettime(CLOCK_MONOTONIC, &linger);
    linger.tv_sec += LINGER_MS / 1000;
    guard(w->fcgi.ipcFd, &linger);
    FCGX_Finish_r(&w->fcgi);
    unguard();
}

/* The listening socket does not block: every idle worker's poll wakes for a connection, and those that
 * lose it to another go back to waiting, where a stop signal reaches them, rather than blocking in accept.
 * Nor has it a timeout: an idle worker waits as long as it takes. */
static int prepare_listener(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int worker_run(const struct config *cfg, int listen_fd)
{
    struct worker w;
    int status = 0, failed = 0, fd;

    memset(&w, 0, sizeof w);
    w.cfg = cfg;
    w.listen_fd = listen_fd;
    buf_init(&w.body);
    buf_init(&w.out);
    dummy_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Our handlers go in first: libfcgi then leaves them alone, and they restart interrupted writes. */
    install_signals();
    if (dummy_fd < 0 || prepare_listener(listen_fd) < 0 || FCGX_Init() != 0 ||
        FCGX_InitRequest(&w.fcgi, dummy_fd, 0) != 0) {
        fprintf(stderr, "ollama-fcgi: cannot initialise libfcgi\n");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || upstream_init(&w.up, cfg) < 0) {
        fprintf(stderr, "ollama-fcgi: cannot initialise libcurl\n");
        return 1;
    }
    srand((unsigned)getpid());
    limit_memory(cfg);
    while (!w.retire && (fd = next_connection(&w, &failed)) >= 0) {
        metrics_busy(1);
        if (read_head(&w, fd) == 0) {
            handle(&w);
            finish(&w);
            /* A fresh process now and then, as php-fpm's pm.max_requests: whatever a long life gathers goes. */
            if (cfg->max_requests && ++w.served >= cfg->max_requests)
                w.retire = 1;
        }
        metrics_busy(0);
    }
    if (w.retire) {
        status = WORKER_RETIRED;
    } else if (failed) {
        fprintf(stderr, "ollama-fcgi: worker %d: accept failed: %s\n", (int)getpid(), strerror(errno));
        status = 1;
    }
    FCGX_Free(&w.fcgi, 1);
    close(dummy_fd);
    upstream_free(&w.up);
    models_cache_free(&w.models);
    buf_free(&w.body);
    buf_free(&w.out);
    curl_global_cleanup();
    return status;
}
