/* buf.c -- growable byte buffer and the allocation wrappers that abort on failure. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "ollama-fcgi: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void buf_init(struct buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void buf_free(struct buf *b)
{
    free(b->data);
    buf_init(b);
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static void grow(struct buf *b, size_t cap)
{
    b->data = xrealloc(b->data, cap);
    if (b->cap == 0)
        b->data[0] = '\0';
    b->cap = cap;
}

static void buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap;

    if (need <= b->cap)
        return;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    grow(b, cap);
}

void buf_reserve_exact(struct buf *b, size_t total)
{
    if (total + 1 > b->cap)
        grow(b, total + 1);
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s)
{
    buf_append(b, s, strlen(s));
}

void buf_putc(struct buf *b, char c)
{
    buf_append(b, &c, 1);
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_put_int(struct buf *b, long long v)
{
    char tmp[24];
    size_t i = sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[--i] = '-';
    buf_append(b, tmp + i, sizeof tmp - i);
}

char *buf_steal(struct buf *b)
{
    char *p = b->data ? b->data : xstrdup("");
    buf_init(b);
    return p;
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void buf_put_base64(struct buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = { b64[v >> 18], b64[(v >> 12) & 63], i + 1 < n ? b64[(v >> 6) & 63] : '=',
                      i + 2 < n ? b64[v & 63] : '=' };

        buf_append(b, q, 4);
    }
}

int buf_get_base64(const char *s, size_t n, struct buf *b)
{
    unsigned v = 0;
    int bits = 0;

    for (size_t i = 0; i < n && s[i] != '='; i++) {
        const char *at = memchr(b64, s[i], 64);

        if (!at || !s[i])
            return -1;
        v = (v << 6) | (unsigned)(at - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf_putc(b, (char)((v >> bits) & 0xff));
        }
    }
    return 0;
}

int buf_lines(struct buf *held, const char *bytes, size_t n, size_t cap,
              int (*each)(void *ctx, const char *line, size_t len), void *ctx)
{
    size_t start = 0;
    int rc;

    for (const char *nl; start < n && (nl = memchr(bytes + start, '\n', n - start)); start = (size_t)(nl - bytes) + 1) {
        size_t len = (size_t)(nl - bytes) - start;

        if (held->len + len > cap)
            return BUF_LINE_TOO_LONG;
        if (held->len) {
            buf_append(held, bytes + start, len);
            rc = each(ctx, held->data, held->len);
            buf_reset(held);
        } else {
            rc = each(ctx, bytes + start, len);
        }
        if (rc != 0)
            return rc;
    }
    if (start < n) {
        if (held->len + (n - start) > cap)
            return BUF_LINE_TOO_LONG;
        buf_append(held, bytes + start, n - start);
    }
    return 0;
}
