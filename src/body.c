/* body.c -- a request's body from the web server: within MAX_BODY_BYTES and BODY_TIMEOUT, whatever the
 * client sends or fails to send. */
#include "body.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "decode.h"

#define DRAIN_LIMIT (256u * 1024 * 1024)
#define CHUNK 65536

/* The request's head and body arrive within BODY_TIMEOUT of its connection, however they trickle: the
 * worker's reads end at that deadline. */
static void deadline_in(struct request *rq, struct timespec *at)
{
    *at = rq->w->deadline;
}

/* Reads at most n bytes; 0 at the end of the body, -1 when the web server stopped sending in time. */
static int read_some(struct request *rq, char *chunk, int n, const struct timespec *at)
{
    struct timespec now;
    int got = request_read(rq, chunk, n);

    if (got == 0 && FCGX_GetError(rq->fcgi->in) != 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (got > 0 && (now.tv_sec > at->tv_sec || (now.tv_sec == at->tv_sec && now.tv_nsec > at->tv_nsec)))
        return -1;
    return got;
}

void body_drain(struct request *rq)
{
    struct timespec deadline;
    char scratch[16384];
    size_t total = 0;
    int n;

    /* Unread bytes would make close() reset the connection and lose our reply on the way out. */
    deadline_in(rq, &deadline);
    while (total < DRAIN_LIMIT && (n = read_some(rq, scratch, sizeof scratch, &deadline)) > 0)
        total += (size_t)n;
}

/* The body's length when the web server says it. Caddy says -1 for a chunked body: not known, so the body
 * is read to its end as when no length is given. */
static int content_length(struct request *rq, size_t *want, int *given, struct apierr *e)
{
    const char *cl = request_param(rq, "CONTENT_LENGTH");
    unsigned long long v;
    char *end;

    *given = cl && *cl && cl[0] != '-';
    if (!*given)
        return 0;
    errno = 0;
    v = strtoull(cl, &end, 10);
    if (*end || end == cl || errno) {
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "invalid Content-Length");
        return -1;
    }
    if (v > rq->w->cfg->max_body) {
        body_drain(rq);
        apierr_set(e, APIERR_TOO_LARGE, 413, "request body of %llu bytes exceeds the %zu-byte limit (MAX_BODY_BYTES)",
                   v, rq->w->cfg->max_body);
        return -1;
    }
    *want = (size_t)v;
    return 0;
}

/* The body; json_only refuses a Content-Type that does not say JSON. */
static int read_body(struct request *rq, struct apierr *e, int json_only)
{
    const char *ct = request_param(rq, "CONTENT_TYPE");
    struct buf *b = &rq->w->body;
    size_t want = 0, max = rq->w->cfg->max_body;
    struct timespec deadline;
    struct decode_limits lim;
    char chunk[CHUNK];
    int n, given;

    buf_reset(b);
    deadline_in(rq, &deadline);
    if (json_only && ct && *ct && !strstr(ct, "json")) {
        body_drain(rq);
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "Content-Type must be application/json, got \"%.100s\"", ct);
        return -1;
    }
    if (content_length(rq, &want, &given, e) < 0)
        return -1;
    /* The whole body in one allocation of its own size: no doubling past what the client sent. */
    if (given)
        buf_reserve_exact(b, want);
    while ((n = read_some(rq, chunk, sizeof chunk, &deadline)) > 0) {
        if (b->len + (size_t)n > max) {
            body_drain(rq);
            apierr_set(e, APIERR_TOO_LARGE, 413, "request body exceeds the %zu-byte limit (MAX_BODY_BYTES)", max);
            return -1;
        }
        buf_append(b, chunk, (size_t)n);
    }
    if (n < 0) {
        /* Nothing more is read from this connection, FCGX_Finish_r's own reading included. */
        shutdown(rq->fcgi->ipcFd, SHUT_RD);
        apierr_set(e, APIERR_TIMEOUT, 408, "the request body did not arrive within %lds (BODY_TIMEOUT)",
                   rq->w->cfg->body_timeout);
        return -1;
    }
    if (given && b->len != want) {
        apierr_set(e, APIERR_INVALID_REQUEST, 400, "request body is truncated: got %zu of %zu bytes", b->len, want);
        return -1;
    }
    /* What the client compressed counts against MAX_BODY_BYTES decoded, as the JSON it is, and is decoded
     * within the body's own BODY_TIMEOUT: a worker is never held longer by a body that arrived in time. */
    lim.max_bytes = max;
    lim.deadline = deadline;
    lim.timeout = rq->w->cfg->body_timeout;
    return decode_body(request_param(rq, "HTTP_CONTENT_ENCODING"), b, &lim, e);
}

int body_read(struct request *rq, struct apierr *e)
{
    return read_body(rq, e, 1);
}

int body_read_any(struct request *rq, struct apierr *e)
{
    return read_body(rq, e, 0);
}
