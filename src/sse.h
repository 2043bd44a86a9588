/* sse.h -- Server-Sent Events framing onto a sink that writes and flushes one whole frame at a time. */
#ifndef OF_SSE_H
#define OF_SSE_H

#include <stddef.h>

#include "buf.h"

/* frame() writes one complete frame and flushes it; it returns -1 once the client is gone. */
struct sse_sink {
    int (*frame)(void *ctx, const char *bytes, size_t len);
    void *ctx;
    struct buf scratch;   /* reused for every frame: no allocation per event once warm */
};

void sse_sink_init(struct sse_sink *s, int (*frame)(void *, const char *, size_t), void *ctx);
void sse_sink_free(struct sse_sink *s);
/* "event: NAME\ndata: DATA\n\n", or without the event line when name is NULL. DATA has no newline
 * (json-c escapes every control character). */
int sse_event(struct sse_sink *s, const char *name, const char *data, size_t len);
/* ": TEXT\n\n", a comment clients ignore; it keeps proxies and clients from timing out. */
int sse_comment(struct sse_sink *s, const char *text);

#endif
