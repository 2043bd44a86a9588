/* pass.c -- Ollama's own reply passed to the client as it comes: NDJSON line by line through the dialect's
 * pass_reply (one flush each), or a whole reply held and passed once. No I/O: the relay and the case runner
 * both drive it. */
#include "pass.h"

#include <string.h>

void pass_open(struct pass *p, const struct dialect *d, const struct chat_request *req, struct wire_sink *sink,
               size_t cap)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->req = req;
    p->sink = sink;
    p->cap = cap;
    p->fin.input_tokens = p->fin.output_tokens = -1;
    buf_init(&p->held);
    buf_init(&p->out);
}

void pass_close(struct pass *p)
{
    buf_free(&p->held);
    buf_free(&p->out);
}

int pass_fail(struct pass *p, const struct apierr *e)
{
    p->err = *e;
    p->failed = 1;
    if (!p->sink)
        return PASS_DONE;
    buf_reset(&p->out);
    p->d->error_body(p->d, &p->err, NULL, &p->out);
    return wire_event(p->sink, NULL, p->out.data, p->out.len) < 0 ? PASS_GONE : PASS_DONE;
}

static int too_long(struct pass *p)
{
    struct apierr e;

    if (p->sink)
        apierr_set(&e, APIERR_API, 502, "Ollama sent a line longer than %zu bytes", p->cap);
    else
        apierr_set(&e, APIERR_API, 502, "Ollama's reply is larger than %zu bytes (MAX_REPLY_BYTES)", p->cap);
    return pass_fail(p, &e);
}

static int send_line(struct pass *p, const char *line, size_t len)
{
    if (len == 0)
        return PASS_MORE;
    buf_reset(&p->out);
    p->last = p->d->pass_reply(p->req, line, len, &p->out, &p->fin);
    if (wire_event(p->sink, NULL, p->out.data ? p->out.data : "", p->out.len) < 0)
        return PASS_GONE;
    return p->last ? PASS_DONE : PASS_MORE;
}

static int feed_whole(struct pass *p, const char *bytes, size_t n)
{
    if (p->held.len + n > p->cap)
        return too_long(p);
    buf_append(&p->held, bytes, n);
    return PASS_MORE;
}

static int each_line(void *ctx, const char *line, size_t len)
{
    return send_line(ctx, line, len);
}

int pass_feed(struct pass *p, const char *bytes, size_t n)
{
    int rc;

    if (p->last || p->failed)
        return PASS_DONE;
    p->bytes += n;
    if (!p->sink)
        return feed_whole(p, bytes, n);
    rc = buf_lines(&p->held, bytes, n, p->cap, each_line, p);
    return rc == BUF_LINE_TOO_LONG ? too_long(p) : rc;
}

int pass_end(struct pass *p, struct buf *body)
{
    if (p->failed || p->last)
        return PASS_DONE;
    if (p->sink) {
        int rc = send_line(p, p->held.data, p->held.len);

        buf_reset(&p->held);
        return rc == PASS_GONE ? PASS_GONE : PASS_DONE;
    }
    if (p->held.len)
        p->last = p->d->pass_reply(p->req, p->held.data, p->held.len, body, &p->fin);
    return PASS_DONE;
}
