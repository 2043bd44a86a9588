/* routes.h -- the routes besides the chat dialects: Ollama's model list in either shape, health, metrics,
 * and the probes and telemetry posts clients send. */
#ifndef OF_ROUTES_H
#define OF_ROUTES_H

#include "worker.h"

void routes_models(struct request *rq);
void routes_health(struct request *rq);
void routes_metrics(struct request *rq);
void routes_root(struct request *rq);
void routes_no_content(struct request *rq);

#endif
