/* decode.h -- request bodies a client compressed (Content-Encoding gzip, deflate, zstd), decoded within
 * the size a body may have, so that no small body inflates into a large one. */
#ifndef OF_DECODE_H
#define OF_DECODE_H

#include <stddef.h>
#include <time.h>

#include "apierr.h"
#include "buf.h"

/* What decoding may take. */
struct decode_limits {
    size_t max_bytes;             /* MAX_BODY_BYTES: the most the body (and each step of it) may decode to */
    struct timespec deadline;     /* CLOCK_MONOTONIC: when the body's BODY_TIMEOUT runs out */
    long timeout;                 /* BODY_TIMEOUT, in seconds, to name in the error */
};

/* Decodes body in place by the Content-Encoding header's value (codings listed in the order they were
 * applied, so undone last first; "identity" and an empty value leave it as it is). Every coding is checked
 * before any is undone; each step may decode to at most lim->max_bytes, and the whole must be done by
 * lim->deadline. Returns 0, or -1 with err set: 415 naming an encoding this adapter cannot decode, more
 * than five codings, or a zstd window past 128 MiB; 400 for bytes that are not what their encoding says;
 * 413 past max_bytes; 408 past the deadline. */
int decode_body(const char *encoding, struct buf *body, const struct decode_limits *lim, struct apierr *err);

#endif
