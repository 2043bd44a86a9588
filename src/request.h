/* request.h -- one request's context, which the routes, the body reader and the relay share: its params,
 * its key, whether its client is still there, the worker's memory, its errors, and reads of its connection
 * that end at its deadline however the bytes trickle. */
#ifndef OF_REQUEST_H
#define OF_REQUEST_H

#include <fcgiapp.h>
#include <time.h>

#include "accesslog.h"
#include "buf.h"
#include "chat.h"
#include "config.h"
#include "keys.h"
#include "models.h"
#include "reply.h"
#include "upstream.h"

/* A request that held this much is large: the worker gives memory back after it. */
#define REQUEST_LARGE_BYTES (1u << 20)

/* What a worker keeps from one request to the next. */
struct worker {
    const struct config *cfg;
    struct upstream up;
    struct models_cache models;
    FCGX_Request fcgi;
    struct buf body;              /* the request body, reused from request to request */
    struct buf out;               /* the Ollama request, likewise */
    int listen_fd;
    struct timespec deadline;     /* the request's head and body arrive by then: BODY_TIMEOUT after it began */
    long served;                  /* requests served, for MAX_REQUESTS */
    int retire;                   /* past MEMORY_LIMIT or MAX_REQUESTS: a fresh process takes over */
};

/* One request. */
struct request {
    struct worker *w;
    FCGX_Request *fcgi;
    struct reply reply;
    const char *method;
    char path[1024];              /* without the query string */
    const char *query;            /* the query string without "?", or "" (borrowed from the params) */
    char path_model[512];         /* the model the route's path names, decoded; "" when none */
    char request_id[32];
    char model[256];              /* for the log: what the client asked for */
    char upstream_model[256];     /* and what Ollama was asked for */
    char dropped[96];             /* block types the translator left out, for the log */
    struct timespec start;
    struct timespec gone_checked; /* when request_client_gone last looked */
    int large;                    /* the request held megabytes: memory goes back to the system after it */
    const struct key_entry *key;  /* the key it carried (borrowed from keys_active), NULL when none was needed */
    struct access_entry log;
};

/* FCGX_GetStr on the request's body, ending at the connection's deadline however the bytes trickle (what
 * arrived by then is returned; FCGX_GetError is then set). */
int request_read(struct request *rq, char *buf, int n);
/* Reads of fd end at deadline (at once when it has passed) until request_unguard: a timer shuts reading
 * down, through request_on_late, the SIGALRM handler the worker installs. */
void request_guard(int fd, const struct timespec *deadline);
void request_unguard(void);
void request_on_late(int sig);
/* A FastCGI parameter of the request, or NULL. */
const char *request_param(struct request *rq, const char *name);
/* Whether the client has left: the web server closed our connection, or a write failed. Looks at the
 * connection at most every few hundred milliseconds unless asked to look now. */
int request_client_gone(struct request *rq, int look_now);
/* Whether the process holds more than MEMORY_LIMIT; if so it retires after this request. */
int request_over_memory(struct request *rq);
/* The request moved a lot of memory: give it back once the request is done. */
void request_note_large(struct request *rq, size_t bytes);
/* Whether the request carries a known key (always, when no key is set: neither ADAPTER_API_KEY nor
 * API_KEYS_FILE) where dialect d's clients put it, or (d NULL) where any dialect's do; rq->key is then its
 * entry. */
int request_authorized(struct request *rq, const struct dialect *d);
/* The error in dialect d, as the reply; the log says whose fault it was. */
void request_send_error(struct request *rq, const struct dialect *d, const struct apierr *e);
double request_ms_since(const struct timespec *t);
/* A request or reply id: prefix and 24 random characters. */
void request_random_id(char *out, size_t size, const char *prefix);

#endif
