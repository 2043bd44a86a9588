/* metrics.h -- Prometheus counters for the whole pool, in memory shared by the master and its workers. */
#ifndef OF_METRICS_H
#define OF_METRICS_H

#include <stddef.h>

#include "buf.h"

/* The most route labels counted apart; past it, and for any label not named, "other". */
#define METRICS_MAX_ROUTES 48

/* Before metrics_init: a route label requests are counted by (a label named twice is one). */
void metrics_name_route(const char *label);
/* Before the workers are forked: room for n workers (each writes only its own slot, so no locks). */
int metrics_init(size_t n_slots);
/* In a worker: which slot is its own. */
void metrics_use_slot(size_t slot);
/* In a worker: it took a request (busy) or finished one. */
void metrics_busy(int busy);
/* In the master: a worker was started in slot; one was reaped (what it had in flight is no longer). */
void metrics_slot_started(size_t slot);
void metrics_slot_released(size_t slot);
/* In the master: whether slot's worker is serving a request, and else for how long it has been idle. */
int metrics_slot_busy(size_t slot, double *idle_seconds);
/* In the master: the pool's limit, and every time it was reached. */
void metrics_pool_limit(long max_workers);
void metrics_max_reached(void);

void metrics_stream_started(void);
void metrics_stream_ended(void);
/* One finished request. ttft_s < 0 when there was no first token. */
void metrics_request(const char *route, int status, double duration_s, double ttft_s,
                     long long input_tokens, long long output_tokens, int upstream_error, int client_gone);
/* A reply whose tool calls were recovered from its text, in these textcall formats. */
void metrics_text_tool_calls(unsigned formats);
/* The Prometheus text exposition, summed over every slot; listen_queue < 0 when it cannot be known. */
void metrics_render(struct buf *out, long listen_queue);

#endif
