/* routes.h -- the routes besides the chat dialects: Ollama's model list in a dialect's shape, health, metrics,
 * and the probes and telemetry posts clients send. */
#ifndef OF_ROUTES_H
#define OF_ROUTES_H

#include "dialect.h"
#include "request.h"

/* ROUTE_MODELS: Ollama's model list, or the one model the path names, in the route's dialect. */
void routes_models(struct request *rq, const struct dialect_match *m);
void routes_health(struct request *rq);
void routes_metrics(struct request *rq);
void routes_root(struct request *rq);
void routes_no_content(struct request *rq);

#endif
