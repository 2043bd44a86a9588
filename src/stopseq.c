/* stopseq.c -- stop sequences matched by the adapter over streamed text, across chunk boundaries.
 *
 * Ollama strips a matched stop sequence and reports it like a natural end, so the adapter matches
 * them itself. Text that could be the beginning of a sequence is held back until the next chunk
 * decides; everything else goes out at once. */
#include "stopseq.h"

#include <string.h>

void stopseq_init(struct stopseq *m, char *const *seqs, size_t n)
{
    *m = (struct stopseq){ .seqs = seqs, .n = n };
}

void stopseq_free(struct stopseq *m)
{
    buf_free(&m->held);
    buf_free(&m->emit);
}

/* The length of the longest suffix of s that is a proper prefix of some sequence. */
static size_t partial_tail(const struct stopseq *m, const char *s, size_t n)
{
    size_t best = 0;

    for (size_t i = 0; i < m->n; i++) {
        size_t sl = strlen(m->seqs[i]);
        size_t k = sl - 1 < n ? sl - 1 : n;

        for (; k > best; k--)
            if (memcmp(s + n - k, m->seqs[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

static void release(struct stopseq *m, size_t n, const char **out, size_t *out_len)
{
    buf_reset(&m->emit);
    buf_append(&m->emit, m->held.data ? m->held.data : "", n);
    memmove(m->held.data, m->held.data + n, m->held.len - n);
    m->held.len -= n;
    m->held.data[m->held.len] = '\0';
    *out = m->emit.data;
    *out_len = m->emit.len;
}

int stopseq_feed(struct stopseq *m, const char *s, size_t n, const char **out, size_t *out_len)
{
    size_t first = (size_t)-1;
    int which = -1;

    if (m->n == 0) {
        *out = s;
        *out_len = n;
        return -1;
    }
    buf_append(&m->held, s, n);
    for (size_t i = 0; i < m->n; i++) {
        char *hit = memmem(m->held.data, m->held.len, m->seqs[i], strlen(m->seqs[i]));

        if (hit && (size_t)(hit - m->held.data) < first) {
            first = (size_t)(hit - m->held.data);
            which = (int)i;
        }
    }
    if (which >= 0) {
        release(m, first, out, out_len);
        buf_reset(&m->held);
        return which;
    }
    release(m, m->held.len - partial_tail(m, m->held.data, m->held.len), out, out_len);
    return -1;
}

void stopseq_flush(struct stopseq *m, const char **out, size_t *out_len)
{
    if (m->held.data == NULL) {
        *out = "";
        *out_len = 0;
        return;
    }
    release(m, m->held.len, out, out_len);
}
