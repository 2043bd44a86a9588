/* upstream.h -- the one libcurl handle a worker keeps to Ollama: streamed chat POSTs whose bytes go to a
 * handler as they arrive, small GETs and POSTs, and aborts when the client is gone or Ollama stalls. */
#ifndef OF_UPSTREAM_H
#define OF_UPSTREAM_H

#include <curl/curl.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/* One Ollama host of OLLAMA_BASE_URL, as a worker knows it. */
struct upstream_host {
    CURL *curl;                   /* kept from one request to the next, so is its connection */
    char error[CURL_ERROR_SIZE];  /* libcurl's error buffer, valid as long as the handle */
    char **models;                /* owned: the models its /api/tags listed (see hosts.h) */
    size_t n_models;
    int listed;                   /* models holds a listing */
    long long listed_ms;          /* when it was asked for, CLOCK_MONOTONIC milliseconds; 0 never */
};

struct upstream {
    struct upstream_host *hosts;  /* owned: one per host of cfg->hosts, in its order */
    size_t n_hosts;
    CURLM *multi;                 /* drives the one transfer a worker runs at a time */
    const struct config *cfg;
    struct curl_slist *json_headers;
};

/* What the handler's on_data returns. UPSTREAM_DONE: the reply is complete; the transfer may run a moment
 * longer so the connection can be kept, then stops whatever Ollama does. UPSTREAM_ABORT: stop Ollama now
 * (a stop sequence matched, or the client is gone). */
enum { UPSTREAM_MORE = 0, UPSTREAM_DONE = 1, UPSTREAM_ABORT = 2 };

struct upstream_handler {
    /* Bytes of a 2xx reply's body, split anywhere. */
    int (*on_data)(void *ctx, const char *bytes, size_t len);
    /* Runs at least every UPSTREAM_TICK_MS while the transfer lasts, and at once when watch_fd turns
     * readable (client_news then 1); a non-zero return aborts. */
    int (*on_tick)(void *ctx, int client_news);
    void *ctx;
    int watch_fd;                 /* the client's connection, whose hang-up is news, or -1 */
};

#define UPSTREAM_TICK_MS 200

struct upstream_result {
    long status;              /* Ollama's HTTP status, 0 when none came */
    CURLcode code;            /* CURLE_OK, or why the transfer failed */
    int aborted;              /* we stopped it */
    int idle;                 /* Ollama sent nothing for IDLE_TIMEOUT seconds */
    struct buf error_body;    /* the body of a non-2xx reply, at most 64 KiB of it */
    char content_type[128];   /* the reply's Content-Type, "" when it said none */
    char message[CURL_ERROR_SIZE];
};

int upstream_init(struct upstream *up, const struct config *cfg);
void upstream_free(struct upstream *up);
void upstream_result_init(struct upstream_result *r);
void upstream_result_free(struct upstream_result *r);

/* Every call names the host (an index into cfg->hosts) it goes to. */

/* POST body to /api/chat and give the reply to h. Returns 0 when the transfer ran to its end or was
 * stopped by us, -1 on a transport failure or a silent Ollama (r->code, r->message, r->idle). */
int upstream_chat(struct upstream *up, size_t host, const char *body, size_t len, const struct upstream_handler *h,
                  struct upstream_result *r);
/* The same with any method to any path: body (len bytes of JSON) goes with it unless it is NULL, with
 * UPSTREAM_TIMEOUT and IDLE_TIMEOUT as for a chat. */
int upstream_stream(struct upstream *up, size_t host, const char *method, const char *path, const char *body, size_t len,
                    const struct upstream_handler *h, struct upstream_result *r);
/* A short request (GET when body is NULL, POST otherwise) whose whole reply lands in out. */
int upstream_fetch(struct upstream *up, size_t host, const char *path, const char *body, long timeout_ms,
                   struct buf *out, struct upstream_result *r);

#endif
