/* affinity.h -- which Ollama host a conversation goes to: a key from what stays the same over its turns
 * (its system text and first user message), and rendezvous hashing (highest random weight) of that key and
 * the model over the hosts, which every worker of every pool computes alike without sharing anything. */
#ifndef OF_AFFINITY_H
#define OF_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"

/* The conversation's key: FNV-1a over the text of the system messages before the first user message, and
 * that message's text. Every later turn of the conversation has the same key. */
uint64_t affinity_key(const struct chat_request *req);
/* The weight of host (its URL) for the conversation key asking for model. */
uint64_t affinity_weight(uint64_t key, const char *model, const char *host);
/* Sorts order[0..n) (indices into hosts) by falling weight: the conversation's host first, then the one it
 * fails over to, and so on. Ties (equal weights) keep the lower index first. */
void affinity_order(uint64_t key, const char *model, char *const *hosts, size_t *order, size_t n);

#endif
