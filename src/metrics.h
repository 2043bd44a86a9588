/* metrics.h -- Prometheus counters for the whole pool, in memory shared by the master and its workers. */
#ifndef OF_METRICS_H
#define OF_METRICS_H

#include <stddef.h>

#include "buf.h"

/* The most route labels counted apart; past it, and for any label not named, "other". */
#define METRICS_MAX_ROUTES 48

/* The most Ollama hosts OLLAMA_BASE_URL may name. */
#define METRICS_MAX_HOSTS 16

/* The most key names counted apart (names are never forgotten, so counters stay monotonic across reloads);
 * past it, "other". */
#define METRICS_MAX_KEYS 64
/* The models counted apart in /metrics (past them, "other"), and the longest name counted. */
#define METRICS_MAX_MODELS 32
#define METRICS_MODEL_NAME 128

/* Before metrics_init: a route label requests are counted by (a label named twice is one). */
void metrics_name_route(const char *label);
/* In the master, before it forks workers (at start, and on SIGHUP before the new ones): a key name requests
 * are counted by (a name named twice is one). */
void metrics_name_key(const char *name);
/* Names every active key (keys_active). */
void metrics_name_keys(void);
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
/* One finished request that carried the key of this name. */
void metrics_key_request(const char *name, long long input_tokens, long long output_tokens, long long cached_tokens);
/* In a worker: its request, of the key of this name, is about to call Ollama. Returns 0, or -1 (and holds
 * nothing) when the key already holds max requests in flight in the pool's workers (max 0: no limit). The
 * worker's slot says which key it serves, so the count is the pool's, whichever worker asks, and a worker
 * killed mid-stream frees its share when the master releases its slot. */
int metrics_key_claim(const char *name, long max);
/* In a worker: its request no longer holds its key's share (a no-op when it held none). */
void metrics_key_release(void);
/* A reply whose tool calls were recovered from its text, in these textcall formats. */
void metrics_text_tool_calls(unsigned formats);
/* One reply's prompt, read by model on host: prompt_tokens in all, of which cached_tokens came from Ollama's
 * prompt cache (-1 when Ollama did not say: counted as evaluated). */
void metrics_prompt(size_t host, const char *model, long long prompt_tokens, long long cached_tokens);

/* Hosts that fail are left alone for a while by every worker of the pool: 1 s after a first failure,
 * doubling to 30 s while failures go on. */
int metrics_host_backing_off(size_t host);
void metrics_host_failed(size_t host);
void metrics_host_ok(size_t host);
/* Milliseconds host is left alone for still, 0 when it is not. */
long long metrics_host_backoff_left(size_t host);

/* The Prometheus text exposition, summed over every slot; listen_queue < 0 when it cannot be known. */
void metrics_render(struct buf *out, long listen_queue);
/* The per-host figures, labelled by the n hosts' URLs (as they may be shown). */
void metrics_render_hosts(struct buf *out, const char *const *urls, size_t n);

#endif
