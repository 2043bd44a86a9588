/* worker.h -- one worker process: the FCGX_Accept_r loop, routing, and serving each route. */
#ifndef OF_WORKER_H
#define OF_WORKER_H

#include "config.h"

/* Serves requests on listen_fd until told to stop (SIGTERM, SIGINT, SIGQUIT: the request in flight
 * finishes first). Returns the process exit status. */
int worker_run(const struct config *cfg, int listen_fd);

#endif
