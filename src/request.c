/* request.c -- one request's context, which the routes, the body reader and the relay share: its params,
 * its key, whether its client is still there, the worker's memory, its errors, and reads of its connection
 * that end at its deadline however the bytes trickle. */
#include "request.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "dialect.h"

#define GONE_CHECK_MS 200.0

double request_ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

void request_random_id(char *out, size_t size, const char *prefix)
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

const char *request_param(struct request *rq, const char *name)
{
    return FCGX_GetParam(name, rq->fcgi->envp);
}

/* The key where d's clients put it: a header of its own or its query parameter. */
static const struct key_entry *dialect_key(struct request *rq, const struct dialect *d, const struct keys *keys)
{
    const struct key_entry *e = NULL;
    const char *v;
    char given[512];

    for (size_t i = 0; !e && d->key_headers && d->key_headers[i]; i++)
        if ((v = request_param(rq, d->key_headers[i])))
            e = keys_find(keys, v);
    if (!e && d->key_query && chat_query_param(rq->query, d->key_query, given, sizeof given) == 0)
        e = keys_find(keys, given);
    return e;
}

int request_authorized(struct request *rq, const struct dialect *d)
{
    const struct keys *keys = keys_active();
    const struct key_entry *e = NULL;
    const char *v;

    rq->key = NULL;
    if (!keys->required)
        return 1;
    for (size_t i = 0; !e && (d ? i == 0 : dialect_registry[i] != NULL); i++)
        e = dialect_key(rq, d ? d : dialect_registry[i], keys);
    v = request_param(rq, "HTTP_AUTHORIZATION");
    if (!e && v && strncasecmp(v, "Bearer ", 7) == 0)
        e = keys_find(keys, v + 7);
    rq->key = e;
    return e != NULL;
}

/* The web server closes our connection when its client leaves (nginx), or a write to it fails
 * (lighttpd, which keeps it open until then). */
int request_client_gone(struct request *rq, int look_now)
{
    struct pollfd p = { rq->fcgi->ipcFd, POLLIN | POLLRDHUP, 0 };

    if (rq->reply.gone)
        return 1;
    if (!look_now && request_ms_since(&rq->gone_checked) < GONE_CHECK_MS)
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

int request_over_memory(struct request *rq)
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

void request_note_large(struct request *rq, size_t bytes)
{
    if (bytes >= REQUEST_LARGE_BYTES)
        rq->large = 1;
}

void request_send_error(struct request *rq, const struct dialect *d, const struct apierr *e)
{
    reply_error(&rq->reply, d, e);
    if (!rq->log.outcome)
        rq->log.outcome = e->status >= 500 || e->kind == APIERR_OVERLOADED ? "upstream_error" : "rejected";
}

/* ---- reads that end at the connection's deadline ---- */

static volatile sig_atomic_t late_fd = -1;   /* the connection a guarded read waits on */

/* The deadline passed during a read: reading ends, and the read returns what had arrived. */
void request_on_late(int sig)
{
    int saved = errno;

    (void)sig;
    if (late_fd >= 0)
        shutdown(late_fd, SHUT_RD);
    errno = saved;
}

static long ms_until(const struct timespec *t)
{
    return (long)-request_ms_since(t);
}

/* Reading fd ends at deadline (at once when it has passed). */
void request_guard(int fd, const struct timespec *deadline)
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
void request_unguard(void)
{
    struct itimerval off;

    late_fd = -1;
    memset(&off, 0, sizeof off);
    setitimer(ITIMER_REAL, &off, NULL);
}

int request_read(struct request *rq, char *buf, int n)
{
    int got;

    request_guard(rq->fcgi->ipcFd, &rq->w->deadline);
    got = FCGX_GetStr(buf, n, rq->fcgi->in);
    request_unguard();
    return got;
}
