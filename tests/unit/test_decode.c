/* test_decode.c -- Content-Encoding undone within its limits: the number of codings, the size each
 * decodes to, the time the body had, and the window a zstd frame asks for. */
#include <criterion/criterion.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "decode.h"

/* An hour from now, or an hour ago. */
static struct decode_limits limits(size_t max, int expired)
{
    struct decode_limits lim = { .max_bytes = max, .timeout = 60 };

    clock_gettime(CLOCK_MONOTONIC, &lim.deadline);
    lim.deadline.tv_sec += expired ? -3600 : 3600;
    return lim;
}

/* body gzipped once more, in place. */
static void gzip_once(struct buf *body)
{
    z_stream zs;
    struct buf out;

    memset(&zs, 0, sizeof zs);
    cr_assert_eq(deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    buf_init(&out);
    buf_reserve_exact(&out, deflateBound(&zs, body->len));
    zs.next_in = (unsigned char *)body->data;
    zs.avail_in = (uInt)body->len;
    zs.next_out = (unsigned char *)out.data;
    zs.avail_out = (uInt)out.cap;
    cr_assert_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
    out.len = zs.total_out;
    deflateEnd(&zs);
    buf_free(body);
    *body = out;
}

/* body as one zstd frame with a window of 2^log, its size not declared, as `zstd --long` from a pipe. */
static void zstd_window(struct buf *body, int log)
{
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_inBuffer in = { body->data, body->len, 0 };
    struct buf out;
    size_t left;

    cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_windowLog, log)));
    cr_assert(!ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_enableLongDistanceMatching, 1)));
    buf_init(&out);
    buf_reserve_exact(&out, ZSTD_compressBound(body->len) + 64);
    {
        ZSTD_outBuffer dst = { out.data, out.cap, 0 };

        /* Streamed without ZSTD_e_end first: the frame cannot say its size, so it keeps the window whole. */
        cr_assert(!ZSTD_isError(ZSTD_compressStream2(cctx, &dst, &in, ZSTD_e_continue)));
        do
            left = ZSTD_compressStream2(cctx, &dst, &in, ZSTD_e_end);
        while (!ZSTD_isError(left) && left != 0);
        cr_assert(!ZSTD_isError(left));
        out.len = dst.pos;
    }
    ZSTD_freeCCtx(cctx);
    buf_free(body);
    *body = out;
}

static void text(struct buf *b, const char *s)
{
    buf_init(b);
    buf_puts(b, s);
}

static const char request[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

Test(decode, five_codings_are_undone)
{
    struct buf body;
    struct decode_limits lim = limits(1 << 20, 0);
    struct apierr err;

    text(&body, request);
    for (int i = 0; i < 5; i++)
        gzip_once(&body);
    cr_assert_eq(decode_body("gzip, gzip,identity, gzip , x-gzip, GZIP", &body, &lim, &err), 0, "%s", err.message);
    cr_expect(body.len == strlen(request) && memcmp(body.data, request, body.len) == 0);
    buf_free(&body);
}

/* Six codings are refused before any is undone: the body is not even gzip, which would be a 400. */
Test(decode, six_codings_are_refused_before_any_is_undone)
{
    struct buf body;
    struct decode_limits lim = limits(1 << 20, 0);
    struct apierr err;

    text(&body, request);
    cr_assert_eq(decode_body("gzip, identity, gzip, gzip, gzip, gzip, gzip", &body, &lim, &err), -1);
    cr_expect_eq(err.status, 415);
    cr_expect(strstr(err.message, "lists 6 codings; at most 5") != NULL, "%s", err.message);
    cr_expect_str_eq(body.data, request);
    buf_free(&body);
}

/* An unknown coding is named before anything is decoded, wherever it sits in the list. */
Test(decode, an_unknown_coding_is_refused_before_any_is_undone)
{
    struct buf body;
    struct decode_limits lim = limits(1 << 20, 0);
    struct apierr err;

    text(&body, request);
    cr_assert_eq(decode_body("br, gzip", &body, &lim, &err), -1);
    cr_expect_eq(err.status, 415);
    cr_expect(strstr(err.message, "\"br\" is not supported") != NULL, "%s", err.message);
    buf_free(&body);
}

/* Decoding counts against the body's BODY_TIMEOUT: past it, 408. */
Test(decode, decoding_stops_at_the_deadline)
{
    struct buf body;
    struct decode_limits lim = limits(1 << 20, 1);
    struct apierr err;

    text(&body, request);
    gzip_once(&body);
    cr_assert_eq(decode_body("gzip", &body, &lim, &err), -1);
    cr_expect_eq(err.status, 408);
    cr_expect(strstr(err.message, "within 60s (BODY_TIMEOUT)") != NULL, "%s", err.message);
    buf_free(&body);
}

/* A 2^27 window (zstd --long=27 from a pipe) is decoded; a larger one is refused naming the limit. */
Test(decode, zstd_windows_up_to_128_mib)
{
    struct buf body;
    struct decode_limits lim = limits(1 << 20, 0);
    struct apierr err;

    text(&body, request);
    zstd_window(&body, 27);
    cr_assert_eq(decode_body("zstd", &body, &lim, &err), 0, "%s", err.message);
    cr_expect_str_eq(body.data, request);
    buf_free(&body);

    text(&body, request);
    zstd_window(&body, 28);
    cr_assert_eq(decode_body("zstd", &body, &lim, &err), -1);
    cr_expect_eq(err.status, 415);
    cr_expect(strstr(err.message, "window larger than 128 MiB") != NULL, "%s", err.message);
    cr_expect(strstr(err.message, "--long=27") != NULL, "%s", err.message);
    buf_free(&body);
}
