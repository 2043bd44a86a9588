/* router.h -- one request from its params to its answer: the path, the route (a dialect's from the registry,
 * or one of the plain routes), the key, and the access-log line and metrics once it is answered. */
#ifndef OF_ROUTER_H
#define OF_ROUTER_H

#include "request.h"

/* Answers the request whose head w->fcgi holds. */
void router_handle(struct worker *w);
/* Names every route's label for /metrics; before metrics_init. */
void router_name_routes(void);

#endif
