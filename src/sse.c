/* sse.c -- Server-Sent Events framing onto a sink that writes and flushes one whole frame at a time. */
#include "sse.h"

#include <string.h>

void sse_sink_init(struct sse_sink *s, int (*frame)(void *, const char *, size_t), void *ctx)
{
    s->frame = frame;
    s->ctx = ctx;
    buf_init(&s->scratch);
}

void sse_sink_free(struct sse_sink *s)
{
    buf_free(&s->scratch);
}

int sse_event(struct sse_sink *s, const char *name, const char *data, size_t len)
{
    buf_reset(&s->scratch);
    if (name) {
        buf_append(&s->scratch, "event: ", 7);
        buf_puts(&s->scratch, name);
        buf_putc(&s->scratch, '\n');
    }
    buf_append(&s->scratch, "data: ", 6);
    buf_append(&s->scratch, data, len);
    buf_append(&s->scratch, "\n\n", 2);
    return s->frame(s->ctx, s->scratch.data, s->scratch.len);
}

int sse_comment(struct sse_sink *s, const char *text)
{
    buf_reset(&s->scratch);
    buf_append(&s->scratch, ": ", 2);
    buf_puts(&s->scratch, text);
    buf_append(&s->scratch, "\n\n", 2);
    return s->frame(s->ctx, s->scratch.data, s->scratch.len);
}
