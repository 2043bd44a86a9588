/* worker.h -- one worker process: the FCGX_Accept_r loop, routing and auth; and the request context the
 * routes, the body reader and the relay share. */
#ifndef OF_WORKER_H
#define OF_WORKER_H

#include <fcgiapp.h>
#include <time.h>

#include "accesslog.h"
#include "buf.h"
#include "chat.h"
#include "config.h"
#include "models.h"
#include "reply.h"
#include "upstream.h"

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

/* The exit status of a worker that retired on purpose: the master replaces it at once. */
#define WORKER_RETIRED 75

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
    struct timespec gone_checked; /* when worker_client_gone last looked */
    int large;                    /* the request held megabytes: memory goes back to the system after it */
    struct access_entry log;
};

/* Serves requests on listen_fd until told to stop (SIGTERM, SIGINT, SIGQUIT: the request in flight
 * finishes first). Returns the process exit status. */
int worker_run(const struct config *cfg, int listen_fd);

/* FCGX_GetStr on the request's body, ending at the connection's deadline however the bytes trickle (what
 * arrived by then is returned; FCGX_GetError is then set). */
int worker_read(struct request *rq, char *buf, int n);
/* A FastCGI parameter of the request, or NULL. */
const char *worker_param(struct request *rq, const char *name);
/* Whether the client has left: the web server closed our connection, or a write failed. Looks at the
 * connection at most every few hundred milliseconds unless asked to look now. */
int worker_client_gone(struct request *rq, int look_now);
/* Whether the process holds more than MEMORY_LIMIT; if so it retires after this request. */
int worker_over_memory(struct request *rq);
/* The request moved a lot of memory: give it back once the request is done. */
void worker_note_large(struct request *rq, size_t bytes);
/* Whether the request carries ADAPTER_API_KEY (always, when none is set) where dialect d's clients put it,
 * or (d NULL) where any dialect's do. */
int worker_authorized(struct request *rq, const struct dialect *d);
/* Names every route's label for /metrics; before metrics_init. */
void worker_name_routes(void);
/* The error in dialect d, as the reply; the log says whose fault it was. */
void worker_send_error(struct request *rq, const struct dialect *d, const struct apierr *e);
double worker_ms_since(const struct timespec *t);
/* A request or reply id: prefix and 24 random characters. */
void worker_random_id(char *out, size_t size, const char *prefix);

#endif
