/* body.h -- a request's body from the web server: within MAX_BODY_BYTES and BODY_TIMEOUT, whatever the
 * client sends or fails to send. */
#ifndef OF_BODY_H
#define OF_BODY_H

#include "apierr.h"
#include "request.h"

/* Reads the body into rq->w->body, decoded when the client compressed it (Content-Encoding). Returns 0,
 * or -1 with err set: 400 (not JSON by its Content-Type, a truncated body, bytes that are not their
 * encoding), 413 (too large, sent or decoded), 415 (an encoding it cannot decode), 408 (not sent in
 * time). */
int body_read(struct request *rq, struct apierr *err);
/* The same whatever the Content-Type says: Ollama takes JSON under any (curl -d, as its own documentation
 * writes requests, sends application/x-www-form-urlencoded). */
int body_read_any(struct request *rq, struct apierr *err);
/* Reads what is left of the body and drops it, so that closing the connection does not reset it. */
void body_drain(struct request *rq);

#endif
