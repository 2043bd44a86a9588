/* stopseq.h -- stop sequences matched by the adapter over streamed text, across chunk boundaries. */
#ifndef OF_STOPSEQ_H
#define OF_STOPSEQ_H

#include <stddef.h>

#include "buf.h"

struct stopseq_node;

struct stopseq {
    char *const *seqs;            /* borrowed from the request */
    size_t n;
    struct stopseq_node *nodes;   /* the automaton over every sequence; nodes[0] is the empty text */
    size_t n_nodes;
    int state;                    /* the node of the longest tail that may still become a sequence */
    struct buf held;              /* text from start on is that tail, not yet released */
    size_t start;
};

void stopseq_init(struct stopseq *m, char *const *seqs, size_t n);
void stopseq_free(struct stopseq *m);
/* Feeds text. Sets *out and *out_len to text safe to emit now (valid until the next call) and returns the
 * index of the matched sequence (the text before it is in *out), or -1 when none matched. */
int stopseq_feed(struct stopseq *m, const char *s, size_t n, const char **out, size_t *out_len);
/* The end of the text: everything held back is released. */
void stopseq_flush(struct stopseq *m, const char **out, size_t *out_len);

#endif
