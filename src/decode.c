/* decode.c -- request bodies a client compressed (Content-Encoding gzip, deflate, zstd), decoded within
 * the size a body may have, so that no small body inflates into a large one.
 *
 * A few kilobytes of gzip can stand for gigabytes: the output is produced a piece at a time and the
 * decoding stops the moment it passes the limit, before it is ever held. zstd's decoder may also ask for
 * its whole window in memory, so the window a frame may declare is bounded too. */
#include "decode.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#define PIECE 65536
/* zstd frames whose window is larger (made with --long or level 20+) are refused rather than given
 * 2^27 bytes of memory: ordinary clients compress with windows of a few MiB. */
#define ZSTD_WINDOW_LOG_MAX 24

enum { OK = 0, BAD = -1, TOO_LARGE = -2 };

/* gzip (one or more members) or zlib-wrapped deflate; raw deflate when raw. */
static int inflate_into(const struct buf *in, struct buf *out, size_t max, int raw)
{
    z_stream zs;
    unsigned char piece[PIECE];
    int rc = BAD, zrc = Z_OK;

    memset(&zs, 0, sizeof zs);
    /* 15 + 32: a gzip or a zlib header, whichever comes. */
    if (inflateInit2(&zs, raw ? -15 : 15 + 32) != Z_OK)
        return BAD;
    zs.next_in = (unsigned char *)in->data;
    zs.avail_in = (uInt)in->len;
    for (;;) {
        zs.next_out = piece;
        zs.avail_out = sizeof piece;
        zrc = inflate(&zs, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            goto out;
        if (out->len + (sizeof piece - zs.avail_out) > max) {
            rc = TOO_LARGE;
            goto out;
        }
        buf_append(out, piece, sizeof piece - zs.avail_out);
        if (zrc == Z_STREAM_END) {
            /* Another gzip member may follow; anything else after the end is not gzip. */
            if (zs.avail_in == 0 || raw)
                break;
            if (inflateReset(&zs) != Z_OK)
                goto out;
            continue;
        }
        if (zrc == Z_BUF_ERROR && zs.avail_in == 0)
            goto out;   /* the input ended inside the stream */
    }
    rc = zs.avail_in == 0 ? OK : BAD;
out:
    inflateEnd(&zs);
    return rc;
}

static int zstd_into(const struct buf *in, struct buf *out, size_t max)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer src = { in->data, in->len, 0 };
    unsigned char piece[PIECE];
    size_t left = 1;
    int rc = BAD;

    if (!dctx || ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX)))
        goto out;
    while (src.pos < src.size || left != 0) {
        ZSTD_outBuffer dst = { piece, sizeof piece, 0 };
        size_t before = src.pos;

        left = ZSTD_decompressStream(dctx, &dst, &src);
        if (ZSTD_isError(left))
            goto out;
        if (out->len + dst.pos > max) {
            rc = TOO_LARGE;
            goto out;
        }
        buf_append(out, piece, dst.pos);
        /* No progress either way: the input ended inside a frame. */
        if (dst.pos == 0 && src.pos == before)
            goto out;
    }
    rc = OK;
out:
    ZSTD_freeDCtx(dctx);
    return rc;
}

/* One coding undone: body is replaced by what it decodes to. */
static int undo(const char *coding, size_t len, struct buf *body, size_t max, struct apierr *err)
{
    struct buf out;
    int rc;

    buf_init(&out);
    if ((len == 4 && strncasecmp(coding, "gzip", 4) == 0) || (len == 6 && strncasecmp(coding, "x-gzip", 6) == 0)) {
        rc = inflate_into(body, &out, max, 0);
    } else if (len == 7 && strncasecmp(coding, "deflate", 7) == 0) {
        /* "deflate" means zlib-wrapped, but some clients send it raw. */
        rc = inflate_into(body, &out, max, 0);
        if (rc == BAD) {
            buf_reset(&out);
            rc = inflate_into(body, &out, max, 1);
        }
    } else if (len == 4 && strncasecmp(coding, "zstd", 4) == 0) {
        rc = zstd_into(body, &out, max);
    } else {
        buf_free(&out);
        apierr_set(err, APIERR_INVALID_REQUEST, 415, "Content-Encoding \"%.*s\" is not supported: send the body as "
                   "gzip, deflate, zstd or uncompressed", (int)(len > 64 ? 64 : len), coding);
        return -1;
    }
    if (rc == TOO_LARGE)
        apierr_set(err, APIERR_TOO_LARGE, 413, "the request body decompresses to more than the %zu-byte limit "
                   "(MAX_BODY_BYTES)", max);
    else if (rc == BAD)
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "the request body is not valid %.*s data (Content-Encoding)",
                   (int)len, coding);
    if (rc != OK) {
        buf_free(&out);
        return -1;
    }
    buf_free(body);
    *body = out;
    return 0;
}

int decode_body(const char *encoding, struct buf *body, size_t max, struct apierr *err)
{
    const char *end = encoding ? encoding + strlen(encoding) : NULL;

    /* Codings are listed in the order they were applied: the last is undone first. */
    while (end && end > encoding) {
        const char *start = end, *last;
        size_t len;

        while (start > encoding && start[-1] != ',')
            start--;
        last = end;
        end = start > encoding ? start - 1 : encoding;
        while (start < last && (*start == ' ' || *start == '\t'))
            start++;
        while (last > start && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        len = (size_t)(last - start);
        if (len == 0 || (len == 8 && strncasecmp(start, "identity", 8) == 0))
            continue;
        if (undo(start, len, body, max, err) < 0)
            return -1;
    }
    return 0;
}
