/* hosts.h -- the Ollama hosts of OLLAMA_BASE_URL as a worker sees them: which models each has (its /api/tags,
 * asked now and then and again after a "model not found"), and which to call for a request, in order. */
#ifndef OF_HOSTS_H
#define OF_HOSTS_H

#include <stddef.h>
#include <stdint.h>

#include "upstream.h"

/* Asks the hosts whose listing is older than HOSTS_REFRESH_MS (or, with recent, older than a second) for
 * it again; hosts backing off are left alone. With one host, nothing is asked: it is called for every
 * model, as it always was. */
void hosts_refresh(struct upstream *up, int recent);
/* Whether host listed model ("m" is "m:latest"); a host not listed yet may have any model. */
int hosts_has(const struct upstream *up, size_t host, const char *model);
/* Whether any host has model (hosts_has). */
int hosts_any_has(const struct upstream *up, const char *model);
/* The hosts to call for model, in order, into order (room for up->n_hosts): those that have it, by
 * rendezvous weight for the conversation key, the ones backing off last. Returns how many. */
size_t hosts_order(const struct upstream *up, const char *model, uint64_t key, size_t *order);
/* The host answered "model not found": its listing is asked for again on the next refresh. */
void hosts_forget(struct upstream *up, size_t host);
/* Fills host's listing from an /api/tags body; returns 0, or -1 when it is not one (the listing stays). */
int hosts_take_tags(struct upstream *up, size_t host, const char *body, size_t len);

#endif
