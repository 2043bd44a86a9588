/* pass.h -- Ollama's own reply passed to the client as it comes: NDJSON line by line through the dialect's
 * pass_reply (one flush each), or a whole reply held and passed once. No I/O: the relay and the case runner
 * both drive it. */
#ifndef OF_PASS_H
#define OF_PASS_H

#include <stddef.h>

#include "apierr.h"
#include "buf.h"
#include "chat.h"
#include "wire.h"

enum { PASS_GONE = -1, PASS_MORE = 0, PASS_DONE = 1 };

struct pass {
    const struct dialect *d;
    const struct chat_request *req;
    struct wire_sink *sink;        /* borrowed: a stream's lines go here, one event each; NULL for a whole reply */
    size_t cap;                    /* the longest line of a stream, or the most a whole reply may hold */
    struct buf held;               /* a stream's unfinished line, or the whole reply so far */
    struct buf out;                /* a line as the client gets it, reused */
    struct chat_finish fin;        /* the token counts Ollama's lines carried, -1 when none did */
    size_t bytes;                  /* what Ollama sent */
    int last;                      /* the reply's last line came */
    int failed;                    /* the reply ended with err: a stream got it as its last line */
    struct apierr err;
};

/* A stream (with a sink) or a whole reply (without), its lines or body capped at cap bytes. pass_close
 * frees it. */
void pass_open(struct pass *p, const struct dialect *d, const struct chat_request *req, struct wire_sink *sink,
               size_t cap);
void pass_close(struct pass *p);
/* Bytes of Ollama's reply, split anywhere. PASS_DONE: stop reading (the last line came, or the reply
 * failed); PASS_GONE: the client left. */
int pass_feed(struct pass *p, const char *bytes, size_t n);
/* The reply cannot go on: a stream ends with e as its last line, in the dialect's shape (Ollama itself
 * ends a failed stream with an {"error": ...} line); a whole reply fails with e. Returns PASS_GONE when the
 * client left, else PASS_DONE. */
int pass_fail(struct pass *p, const struct apierr *e);
/* Ollama's reply ended: a stream's last line without its newline goes out; a whole reply, through the
 * dialect's pass_reply, is appended to body. Returns PASS_GONE when the client left, else PASS_DONE. */
int pass_end(struct pass *p, struct buf *body);

#endif
