/* pool.h -- the master process: the listening socket, a prefork pool of workers, supervision, signals. */
#ifndef OF_POOL_H
#define OF_POOL_H

#include "config.h"

/* Opens the FastCGI listening socket: "host:port", "[v6]:port", ":port" or a unix socket path.
 * Returns the descriptor, or -1 with a message on stderr. */
int pool_listen(const char *addr);
/* Runs cfg->workers workers on listen_fd and keeps that many alive until SIGTERM, SIGINT or SIGQUIT
 * (graceful: streams in flight finish, up to GRACE_TIMEOUT seconds). SIGHUP replaces every worker
 * without closing the socket. Returns the exit status. */
int pool_run(const struct config *cfg, int listen_fd);

#endif
