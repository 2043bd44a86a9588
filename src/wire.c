/* wire.c -- how a dialect frames its events on the client's stream (SSE with event names, data-only SSE,
 * NDJSON, a JSON array), written once into the sink with one flush per event. */
#include "wire.h"

#include <string.h>

#define SSE_TYPE "text/event-stream; charset=utf-8"

const struct wire wire_sse = { .kind = WIRE_SSE, .content_type = SSE_TYPE, .keepalive = ": keep-alive\n\n" };
const struct wire wire_sse_done = {
    .kind = WIRE_SSE_DATA, .content_type = SSE_TYPE, .keepalive = ": keep-alive\n\n", .end = "data: [DONE]\n\n",
};
/* A blank line dispatches no event (the SSE rule), and a parser that wants "data: " at a line's start
 * after optional whitespace (Google's SDK) reads past it: the one keep-alive such clients accept. */
const struct wire wire_sse_data = { .kind = WIRE_SSE_DATA, .content_type = SSE_TYPE, .keepalive = "\n" };
const struct wire wire_ndjson = { .kind = WIRE_NDJSON, .content_type = "application/x-ndjson" };
/* Whitespace between array members is still the same JSON document. */
const struct wire wire_json_array = {
    .kind = WIRE_JSON_ARRAY, .content_type = "application/json; charset=utf-8", .keepalive = "\n", .end = "]",
};

void wire_sink_init(struct wire_sink *s, const struct wire *w, int (*put)(void *, const char *, size_t),
                    int (*flush)(void *), void *ctx)
{
    s->wire = w;
    s->put = put;
    s->flush = flush;
    s->ctx = ctx;
    s->events = 0;
}

static int put_str(struct wire_sink *s, const char *text)
{
    return s->put(s->ctx, text, strlen(text));
}

/* What goes before an event's data, by framing. */
static int open_event(struct wire_sink *s, const char *name)
{
    switch (s->wire->kind) {
    case WIRE_SSE:
        if (name && (put_str(s, "event: ") < 0 || put_str(s, name) < 0 || s->put(s->ctx, "\n", 1) < 0))
            return -1;
        return s->put(s->ctx, "data: ", 6);
    case WIRE_SSE_DATA:
        return s->put(s->ctx, "data: ", 6);
    case WIRE_NDJSON:
        return 0;
    case WIRE_JSON_ARRAY:
        return s->events == 0 ? s->put(s->ctx, "[", 1) : s->put(s->ctx, ",\r\n", 3);
    }
    return 0;
}

static const char *event_close(const struct wire *w)
{
    switch (w->kind) {
    case WIRE_SSE:
    case WIRE_SSE_DATA:
        return "\n\n";
    case WIRE_NDJSON:
        return "\n";
    case WIRE_JSON_ARRAY:
        break;
    }
    return "";
}

int wire_event(struct wire_sink *s, const char *name, const char *data, size_t len)
{
    if (open_event(s, name) < 0 || s->put(s->ctx, data, len) < 0 || put_str(s, event_close(s->wire)) < 0)
        return -1;
    s->events++;
    return s->flush(s->ctx);
}

int wire_raw(struct wire_sink *s, const char *bytes, size_t len)
{
    if (s->put(s->ctx, bytes, len) < 0)
        return -1;
    return s->flush(s->ctx);
}

int wire_can_keep_alive(const struct wire_sink *s)
{
    return s->wire->keepalive != NULL;
}

int wire_keepalive(struct wire_sink *s)
{
    if (!s->wire->keepalive)
        return 0;
    if (put_str(s, s->wire->keepalive) < 0)
        return -1;
    return s->flush(s->ctx);
}

int wire_end(struct wire_sink *s)
{
    if (!s->wire->end)
        return 0;
    /* An array that never got a member still opens before it closes. */
    if (s->wire->kind == WIRE_JSON_ARRAY && s->events == 0 && s->put(s->ctx, "[", 1) < 0)
        return -1;
    if (put_str(s, s->wire->end) < 0)
        return -1;
    return s->flush(s->ctx);
}
