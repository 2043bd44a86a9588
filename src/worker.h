/* worker.h -- one worker process: it waits for connections, hands each to libfcgi for its head and to the
 * router for its answer, and stops, retires or fails as its signals and limits say. */
#ifndef OF_WORKER_H
#define OF_WORKER_H

#include "config.h"

/* The exit status of a worker that retired on purpose: the master replaces it at once. */
#define WORKER_RETIRED 75

/* Serves requests on listen_fd until told to stop (SIGTERM, SIGINT, SIGQUIT: the request in flight
 * finishes first). Returns the process exit status. */
int worker_run(const struct config *cfg, int listen_fd);

#endif
