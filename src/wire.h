/* wire.h -- how a dialect frames its events on the client's stream (SSE with event names, data-only SSE,
 * NDJSON, a JSON array), written once into the sink with one flush per event. */
#ifndef OF_WIRE_H
#define OF_WIRE_H

#include <stddef.h>

enum wire_kind {
    WIRE_SSE,          /* "event: NAME\ndata: JSON\n\n" (a NULL name writes no event line) */
    WIRE_SSE_DATA,     /* "data: JSON\n\n" only: clients that reject event lines and comments */
    WIRE_NDJSON,       /* "JSON\n" */
    WIRE_JSON_ARRAY,   /* "[JSON,\r\nJSON]": one JSON document that grows */
};

/* A framing, as a dialect declares it. */
struct wire {
    enum wire_kind kind;
    const char *content_type;
    const char *keepalive;   /* bytes every client of the framing skips, written during silence; NULL: none */
    const char *end;         /* bytes after the last event ("data: [DONE]\n\n", "]"), NULL: none */
};

/* Where a stream's bytes go. put() appends to the client's stream (the first call sends the headers
 * first), flush() sends what was put; both return -1 once the client is gone. */
struct wire_sink {
    const struct wire *wire;
    int (*put)(void *ctx, const char *bytes, size_t len);
    int (*flush)(void *ctx);
    void *ctx;
    size_t events;           /* events written so far */
};

void wire_sink_init(struct wire_sink *s, const struct wire *w, int (*put)(void *, const char *, size_t),
                    int (*flush)(void *), void *ctx);
/* One event (data is one line of JSON; name is used only by WIRE_SSE), then a flush. */
int wire_event(struct wire_sink *s, const char *name, const char *data, size_t len);
/* Bytes outside the framing, flushed: for a client that reads a failure mid-stream as bare JSON (Google's
 * SDK throws a chunk that is only {"error": ...} as the error it is). */
int wire_raw(struct wire_sink *s, const char *bytes, size_t len);
/* The framing's keep-alive, flushed; nothing when it has none. */
int wire_keepalive(struct wire_sink *s);
/* The framing's end, flushed; nothing when it has none. */
int wire_end(struct wire_sink *s);
/* Whether the framing has a keep-alive. */
int wire_can_keep_alive(const struct wire_sink *s);

/* The framings the dialects use. */
extern const struct wire wire_sse;            /* named events, ": keep-alive" comments */
extern const struct wire wire_sse_done;       /* data-only, ": keep-alive" comments, "data: [DONE]" at the end */
extern const struct wire wire_sse_data;       /* data-only, blank lines as keep-alive, no terminator */
extern const struct wire wire_ndjson;         /* NDJSON, no keep-alive */
extern const struct wire wire_json_array;     /* a JSON array, whitespace as keep-alive */

#endif
