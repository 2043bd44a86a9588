/* upstream.h -- the one libcurl handle a worker keeps to Ollama: streamed chat POSTs split into NDJSON
 * lines, small GETs and POSTs, and aborts when the client is gone. */
#ifndef OF_UPSTREAM_H
#define OF_UPSTREAM_H

#include <curl/curl.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

struct upstream {
    CURL *curl;
    const struct config *cfg;
    struct curl_slist *json_headers;
};

/* Streaming callbacks. on_line gets each NDJSON line without its newline and returns UPSTREAM_MORE,
 * UPSTREAM_IGNORE_REST (the reply is complete: read the rest quietly so the connection can be kept), or
 * UPSTREAM_ABORT (stop Ollama now: a stop sequence matched, or the client is gone). on_tick runs about
 * once a second while the transfer lasts; a non-zero return aborts. */
enum { UPSTREAM_MORE = 0, UPSTREAM_IGNORE_REST = 1, UPSTREAM_ABORT = 2 };

struct upstream_handler {
    int (*on_line)(void *ctx, const char *line, size_t len);
    int (*on_tick)(void *ctx);
    void *ctx;
};

struct upstream_result {
    long status;              /* Ollama's HTTP status, 0 when none came */
    CURLcode code;            /* CURLE_OK, or why the transfer failed */
    int aborted;              /* we stopped it */
    struct buf error_body;    /* the body of a non-2xx reply */
    char message[CURL_ERROR_SIZE];
};

int upstream_init(struct upstream *up, const struct config *cfg);
void upstream_free(struct upstream *up);
void upstream_result_init(struct upstream_result *r);
void upstream_result_free(struct upstream_result *r);

/* POST body to /api/chat and stream the reply through h. Returns 0 when the transfer ran to its end
 * or was aborted by us, -1 on a transport failure (r->code, r->message). */
int upstream_chat(struct upstream *up, const char *body, size_t len, const struct upstream_handler *h,
                  struct upstream_result *r);
/* A short request (GET when body is NULL, POST otherwise) whose whole reply lands in out. */
int upstream_fetch(struct upstream *up, const char *path, const char *body, long timeout_ms, struct buf *out,
                   struct upstream_result *r);

#endif
