/* decode.h -- request bodies a client compressed (Content-Encoding gzip, deflate, zstd), decoded within
 * the size a body may have, so that no small body inflates into a large one. */
#ifndef OF_DECODE_H
#define OF_DECODE_H

#include <stddef.h>

#include "apierr.h"
#include "buf.h"

/* Decodes body in place by the Content-Encoding header's value (codings listed in the order they were
 * applied, so undone last first; "identity" and an empty value leave it as it is). The decoded body may
 * hold at most max bytes: decoding stops there. Returns 0, or -1 with err set: 415 naming an encoding
 * this adapter cannot decode, 400 for bytes that are not what their encoding says, 413 past max. */
int decode_body(const char *encoding, struct buf *body, size_t max, struct apierr *err);

#endif
