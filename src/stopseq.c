/* stopseq.c -- stop sequences matched by the adapter over streamed text, across chunk boundaries.
 *
 * Ollama strips a matched stop sequence and reports it like a natural end, so the adapter matches them
 * itself. An Aho-Corasick automaton over all the sequences reads each byte of text once, whatever their
 * number and length; its state is the longest tail of the text that could still become a sequence, and
 * only that tail is held back -- everything before it goes out at once. */
#include "stopseq.h"

#include <stdlib.h>
#include <string.h>

struct stopseq_node {
    int child;                    /* first child, or -1 */
    int sibling;                  /* next child of the same parent, or -1 */
    int fail;                     /* the longest proper suffix that is also in the trie */
    int match;                    /* the sequence that ends here, or -1 */
    int shorter;                  /* the nearest node down the fail chain that ends a sequence, or -1 */
    int depth;
    unsigned char byte;
};

static int add_node(struct stopseq *m, int depth, unsigned char byte)
{
    struct stopseq_node *n;

    m->nodes = xrealloc(m->nodes, (m->n_nodes + 1) * sizeof *m->nodes);
    n = &m->nodes[m->n_nodes];
    *n = (struct stopseq_node){ .child = -1, .sibling = -1, .match = -1, .shorter = -1, .depth = depth,
                                .byte = byte };
    return (int)m->n_nodes++;
}

static int child(const struct stopseq *m, int node, unsigned char byte)
{
    for (int c = m->nodes[node].child; c >= 0; c = m->nodes[c].sibling)
        if (m->nodes[c].byte == byte)
            return c;
    return -1;
}

static void insert(struct stopseq *m, const char *seq, int index)
{
    int node = 0;

    for (size_t i = 0; seq[i]; i++) {
        int next = child(m, node, (unsigned char)seq[i]);

        if (next < 0) {
            next = add_node(m, m->nodes[node].depth + 1, (unsigned char)seq[i]);
            m->nodes[next].sibling = m->nodes[node].child;
            m->nodes[node].child = next;
        }
        node = next;
    }
    if (m->nodes[node].match < 0)
        m->nodes[node].match = index;
}

/* The automaton's step: from node on byte, following failure links where the trie has no edge. */
static int step(const struct stopseq *m, int node, unsigned char byte)
{
    for (;;) {
        int next = child(m, node, byte);

        if (next >= 0)
            return next;
        if (node == 0)
            return 0;
        node = m->nodes[node].fail;
    }
}

/* Failure links, breadth first: a node's link comes from its parent's. */
static void link(struct stopseq *m)
{
    int *queue = xmalloc(m->n_nodes * sizeof *queue);
    size_t head = 0, tail = 0;

    for (int c = m->nodes[0].child; c >= 0; c = m->nodes[c].sibling) {
        m->nodes[c].fail = 0;
        queue[tail++] = c;
    }
    while (head < tail) {
        int node = queue[head++];

        for (int c = m->nodes[node].child; c >= 0; c = m->nodes[c].sibling) {
            int f = step(m, m->nodes[node].fail, m->nodes[c].byte);

            m->nodes[c].fail = f;
            m->nodes[c].shorter = m->nodes[f].match >= 0 ? f : m->nodes[f].shorter;
            queue[tail++] = c;
        }
    }
    free(queue);
}

void stopseq_init(struct stopseq *m, char *const *seqs, size_t n)
{
    *m = (struct stopseq){ .seqs = seqs, .n = n };
    if (n == 0)
        return;
    add_node(m, 0, 0);
    for (size_t i = 0; i < n; i++)
        insert(m, seqs[i], (int)i);
    link(m);
}

void stopseq_free(struct stopseq *m)
{
    free(m->nodes);
    buf_free(&m->held);
    *m = (struct stopseq){ 0 };
}

/* The sequence that ends at node: the longest, since it started first. */
static int ended(const struct stopseq *m, int node)
{
    int at = m->nodes[node].match >= 0 ? node : m->nodes[node].shorter;

    return at < 0 ? -1 : m->nodes[at].match;
}

int stopseq_feed(struct stopseq *m, const char *s, size_t n, const char **out, size_t *out_len)
{
    size_t from;

    if (m->n == 0) {
        *out = s;
        *out_len = n;
        return -1;
    }
    /* What the last call handed out is no longer needed. It is dropped once it is half the buffer, so a
     * long held tail is not copied again for every token. */
    if (m->start > 0 && m->start >= m->held.len / 2) {
        memmove(m->held.data, m->held.data + m->start, m->held.len - m->start);
        m->held.len -= m->start;
        m->start = 0;
    }
    from = m->held.len;
    buf_append(&m->held, s, n);
    for (size_t i = from; i < m->held.len; i++) {
        int hit;

        m->state = step(m, m->state, (unsigned char)m->held.data[i]);
        hit = ended(m, m->state);
        if (hit >= 0) {
            *out = m->held.data + m->start;
            *out_len = i + 1 - strlen(m->seqs[hit]) - m->start;
            m->start = m->held.len;
            return hit;
        }
    }
    *out = m->held.data + m->start;
    *out_len = m->held.len - (size_t)m->nodes[m->state].depth - m->start;
    m->start += *out_len;
    return -1;
}

void stopseq_flush(struct stopseq *m, const char **out, size_t *out_len)
{
    *out = m->held.data ? m->held.data + m->start : "";
    *out_len = m->held.len - m->start;
    m->start = m->held.len;
    m->state = 0;
}
