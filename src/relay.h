/* relay.h -- a chat request from the client to Ollama and back, in any dialect: the pipeline, the model's
 * facts from /api/show, the call with its pings and keep-alives, the retry without thinking, and every
 * failure of Ollama's as an error in the client's dialect. */
#ifndef OF_RELAY_H
#define OF_RELAY_H

#include "dialect.h"
#include "request.h"

/* Answers rq on its route (ROUTE_CHAT, ROUTE_COUNT): its body read and translated, Ollama called, the
 * reply streamed or whole. A count gets the estimate, with what the worker already knows of the model. */
void relay_serve(struct request *rq, const struct dialect_match *m);
/* Answers rq on a ROUTE_PASS route: its body through the dialect's pass_request to Ollama's own route, and
 * Ollama's reply through its pass_reply back, line by line as it comes (NDJSON) or whole. Routes that
 * change the server are refused unless OLLAMA_API_WRITES=1. */
void relay_pass(struct request *rq, const struct dialect_match *m);

#endif
