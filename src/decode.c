/* decode.c -- request bodies a client compressed (Content-Encoding gzip, deflate, zstd), decoded within
 * the size a body may have, so that no small body inflates into a large one.
 *
 * A few kilobytes of gzip can stand for gigabytes: the output is produced a piece at a time and the
 * decoding stops the moment it passes the limit, before it is ever held. Each coding listed costs a pass
 * over up to that limit, so the codings a body may list are few, and the decoding runs within the time the
 * body had to arrive in. zstd's decoder may also ask for its whole window in memory, so the window a frame
 * may declare is bounded too. */
#include "decode.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>
#include <zstd_errors.h>

#define PIECE 65536
/* The input handed to a decoder at once: the deadline is checked at least this often, even for input that
 * decodes to nothing (a deflate stream of empty blocks). */
#define IN_STEP (1u << 20)
/* Codings a body may list: as curl decodes at most five, none of the clients we serve sends more than two,
 * and each one is a pass over up to MAX_BODY_BYTES. */
#define MAX_CODINGS 5
/* zstd's own default for decoding (ZSTD_WINDOWLOG_LIMIT_DEFAULT): `zstd --long=27` compresses with it, and
 * a pipe into zstd declares a whole 2^27 window whatever the size. The decoder reserves the window but
 * touches only what it decodes, which MAX_BODY_BYTES bounds; frames that ask for more (--long=28 and up)
 * are refused, as `zstd -d` refuses them without --memory. */
#define ZSTD_WINDOW_LOG_MAX 27

enum { OK = 0, BAD = -1, TOO_LARGE = -2, LATE = -3, WINDOW = -4 };
enum coding { GZIP, DEFLATE, ZSTD };

/* One coding listed in Content-Encoding, as the client spelled it. */
struct listed {
    enum coding coding;
    const char *name;
    size_t len;
};

static int past(const struct timespec *at)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > at->tv_sec || (now.tv_sec == at->tv_sec && now.tv_nsec > at->tv_nsec);
}

/* A decoded piece kept: TOO_LARGE past the size limit, LATE past the deadline. */
static int keep(struct buf *out, const unsigned char *piece, size_t n, const struct decode_limits *lim)
{
    if (out->len + n > lim->max_bytes)
        return TOO_LARGE;
    buf_append(out, piece, n);
    return past(&lim->deadline) ? LATE : OK;
}

/* What is left of the input, given to inflate a step at a time. */
static size_t unread(const z_stream *zs, const struct buf *in)
{
    return in->len - (size_t)(zs->next_in - (const unsigned char *)in->data);
}

/* gzip (one or more members) or zlib-wrapped deflate; raw deflate when raw. */
static int inflate_into(const struct buf *in, struct buf *out, const struct decode_limits *lim, int raw)
{
    z_stream zs;
    unsigned char piece[PIECE];
    int rc = BAD, zrc = Z_OK;

    memset(&zs, 0, sizeof zs);
    /* 15 + 32: a gzip or a zlib header, whichever comes. */
    if (inflateInit2(&zs, raw ? -15 : 15 + 32) != Z_OK)
        return BAD;
    zs.next_in = (unsigned char *)in->data;
    for (;;) {
        zs.avail_in = (uInt)(unread(&zs, in) < IN_STEP ? unread(&zs, in) : IN_STEP);
        zs.next_out = piece;
        zs.avail_out = sizeof piece;
        zrc = inflate(&zs, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
            goto out;
        rc = keep(out, piece, sizeof piece - zs.avail_out, lim);
        if (rc != OK)
            goto out;
        rc = BAD;
        if (zrc == Z_STREAM_END) {
            /* Another gzip member may follow; anything else after the end is not gzip. */
            if (unread(&zs, in) == 0 || raw)
                break;
            if (inflateReset(&zs) != Z_OK)
                goto out;
            continue;
        }
        if (zrc == Z_BUF_ERROR && unread(&zs, in) == 0)
            goto out;   /* the input ended inside the stream */
    }
    rc = unread(&zs, in) == 0 ? OK : BAD;
out:
    inflateEnd(&zs);
    return rc;
}

static int zstd_into(const struct buf *in, struct buf *out, const struct decode_limits *lim)
{
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    ZSTD_inBuffer src = { in->data, 0, 0 };
    unsigned char piece[PIECE];
    size_t left = 1;
    int rc = BAD;

    if (!dctx || ZSTD_isError(ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX)))
        goto out;
    while (src.pos < in->len || left != 0) {
        ZSTD_outBuffer dst = { piece, sizeof piece, 0 };
        size_t before = src.pos;

        src.size = in->len - src.pos < IN_STEP ? in->len : src.pos + IN_STEP;
        left = ZSTD_decompressStream(dctx, &dst, &src);
        if (ZSTD_isError(left)) {
            rc = ZSTD_getErrorCode(left) == ZSTD_error_frameParameter_windowTooLarge ? WINDOW : BAD;
            goto out;
        }
        rc = keep(out, piece, dst.pos, lim);
        if (rc != OK)
            goto out;
        rc = BAD;
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
static int undo(const struct listed *c, struct buf *body, const struct decode_limits *lim, struct apierr *err)
{
    struct buf out;
    int rc;

    buf_init(&out);
    if (c->coding == GZIP) {
        rc = inflate_into(body, &out, lim, 0);
    } else if (c->coding == DEFLATE) {
        /* "deflate" means zlib-wrapped, but some clients send it raw. */
        rc = inflate_into(body, &out, lim, 0);
        if (rc == BAD) {
            buf_reset(&out);
            rc = inflate_into(body, &out, lim, 1);
        }
    } else {
        rc = zstd_into(body, &out, lim);
    }
    if (rc == TOO_LARGE)
        apierr_set(err, APIERR_TOO_LARGE, 413, "the request body decompresses to more than the %zu-byte limit "
                   "(MAX_BODY_BYTES)", lim->max_bytes);
    else if (rc == LATE)
        apierr_set(err, APIERR_TIMEOUT, 408, "the request body did not arrive and decompress within %lds "
                   "(BODY_TIMEOUT)", lim->timeout);
    else if (rc == WINDOW)
        apierr_set(err, APIERR_INVALID_REQUEST, 415, "the request body's zstd frame asks for a window larger than "
                   "%d MiB, the most decoded here: compress with a smaller window (zstd --long=%d or less)",
                   1 << (ZSTD_WINDOW_LOG_MAX - 20), ZSTD_WINDOW_LOG_MAX);
    else if (rc == BAD)
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "the request body is not valid %.*s data (Content-Encoding)",
                   (int)c->len, c->name);
    if (rc != OK) {
        buf_free(&out);
        return -1;
    }
    buf_free(body);
    *body = out;
    return 0;
}

/* The coding spelled so; -1 for "identity" (nothing to undo), -2 for one this adapter cannot decode. */
static int coding_named(const char *s, size_t len)
{
    if ((len == 4 && strncasecmp(s, "gzip", 4) == 0) || (len == 6 && strncasecmp(s, "x-gzip", 6) == 0))
        return GZIP;
    if (len == 7 && strncasecmp(s, "deflate", 7) == 0)
        return DEFLATE;
    if (len == 4 && strncasecmp(s, "zstd", 4) == 0)
        return ZSTD;
    return len == 0 || (len == 8 && strncasecmp(s, "identity", 8) == 0) ? -1 : -2;
}

/* The codings listed, in the order they were applied, every one checked before any is undone. Returns how
 * many, or -1 with err set: a coding this adapter cannot decode, or more than MAX_CODINGS. */
static int list_codings(const char *encoding, struct listed *list, struct apierr *err)
{
    const char *p = encoding;
    int n = 0;

    while (*p) {
        const char *start = p, *last;
        int c;

        while (*p && *p != ',')
            p++;
        last = p;
        if (*p)
            p++;
        while (start < last && (*start == ' ' || *start == '\t'))
            start++;
        while (last > start && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        c = coding_named(start, (size_t)(last - start));
        if (c == -2) {
            apierr_set(err, APIERR_INVALID_REQUEST, 415, "Content-Encoding \"%.*s\" is not supported: send the body "
                       "as gzip, deflate, zstd or uncompressed", (int)(last - start > 64 ? 64 : last - start), start);
            return -1;
        }
        if (c >= 0 && n < MAX_CODINGS)
            list[n] = (struct listed){ (enum coding)c, start, (size_t)(last - start) };
        n += c >= 0;
    }
    if (n > MAX_CODINGS) {
        apierr_set(err, APIERR_INVALID_REQUEST, 415, "Content-Encoding lists %d codings; at most %d are decoded",
                   n, MAX_CODINGS);
        return -1;
    }
    return n;
}

int decode_body(const char *encoding, struct buf *body, const struct decode_limits *lim, struct apierr *err)
{
    struct listed list[MAX_CODINGS];
    int n = encoding ? list_codings(encoding, list, err) : 0;

    if (n < 0)
        return -1;
    /* Codings are listed in the order they were applied: the last is undone first. */
    while (n > 0)
        if (undo(&list[--n], body, lim, err) < 0)
            return -1;
    return 0;
}
