/* worker.c -- one worker process: it waits for connections, hands each to libfcgi for its head and to the
 * router for its answer, and stops, retires or fails as its signals and limits say. */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "metrics.h"
#include "router.h"

/* Room above MEMORY_LIMIT in address space: libraries, thread stacks and arenas libcurl's resolver may make.
 * Past it allocation fails and the worker dies, so the host never runs out of memory. */
#define ADDRESS_MARGIN_MB 1024

static volatile sig_atomic_t stopping;
static int dummy_fd = -1;         /* a socket that does not listen, libfcgi's "listening" socket */

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

static sigset_t stop_signals;

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
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
    sa.sa_handler = request_on_late;
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
    request_guard(fd, &w->deadline);
    rc = FCGX_Accept_r(&w->fcgi);
    request_unguard();
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
    request_guard(w->fcgi.ipcFd, &linger);
    FCGX_Finish_r(&w->fcgi);
    request_unguard();
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
            router_handle(&w);
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
