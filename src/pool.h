/* pool.h -- the master process: the listening socket, a prefork pool of workers, supervision, signals. */
#ifndef OF_POOL_H
#define OF_POOL_H

#include "config.h"

/* Opens the FastCGI listening socket: "host:port", "[v6]:port", ":port" or a unix socket path.
 * Returns the descriptor, or -1 with a message on stderr. */
int pool_listen(const char *addr);
/* Runs the workers on listen_fd -- WORKERS of them, or as many as demand asks up to MAX_WORKERS -- until
 * SIGTERM, SIGINT or SIGQUIT (graceful: streams in flight finish, up to GRACE_TIMEOUT seconds). SIGHUP
 * replaces every worker without closing the socket. Returns the exit status. */
int pool_run(const struct config *cfg, int listen_fd);
/* Connections waiting on the listening socket for a worker to accept them, or -1 when unknown. */
long pool_listen_queue(int fd);

#endif
