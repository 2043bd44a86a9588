/* buf.h -- a growable byte buffer; allocation failure aborts, as in redis' zmalloc. */
#ifndef OF_BUF_H
#define OF_BUF_H

#include <stddef.h>

struct buf {
    char *data;   /* always NUL-terminated when cap > 0 */
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* Room for total bytes without doubling: for a size known in advance, such as a request body's. */
void buf_reserve_exact(struct buf *b, size_t total);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A decimal integer, without printf: it runs for every streamed event. */
void buf_put_int(struct buf *b, long long v);
/* Appends n bytes of s as base64 (RFC 4648, padded). */
void buf_put_base64(struct buf *b, const char *s, size_t n);
/* Appends what buf_put_base64 wrote, decoded; anything that is not base64 gives -1. */
int buf_get_base64(const char *s, size_t n, struct buf *b);
/* Gives the bytes to the caller, who frees them; the buffer is left empty. */
char *buf_steal(struct buf *b);

/* What buf_lines returns when a line passes its cap. */
#define BUF_LINE_TOO_LONG (-1000)
/* Bytes that arrive in pieces cut anywhere, split into lines (without their '\n'): each complete line goes
 * to each(ctx, line, len), straight from bytes where it lies whole, else from held, which keeps an
 * unfinished line from one call to the next. A line longer than cap stops the split (BUF_LINE_TOO_LONG).
 * Returns 0, or the first non-zero value each returned. */
int buf_lines(struct buf *held, const char *bytes, size_t n, size_t cap,
              int (*each)(void *ctx, const char *line, size_t len), void *ctx);

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
