/* pool.h -- the master process: a prefork pool of workers on the listening socket, supervision, signals. */
#ifndef OF_POOL_H
#define OF_POOL_H

#include "config.h"

/* Runs the workers on listen_fd -- WORKERS of them, or as many as demand asks up to MAX_WORKERS -- until
 * SIGTERM, SIGINT or SIGQUIT (graceful: streams in flight finish, up to GRACE_TIMEOUT seconds). SIGHUP
 * replaces every worker without closing the socket. Returns the exit status. */
int pool_run(const struct config *cfg, int listen_fd);

#endif
