/* listen.h -- the FastCGI listening socket: opened on a TCP address or a unix path, and its queue of
 * connections no worker has taken yet, as the kernel counts it. */
#ifndef OF_LISTEN_H
#define OF_LISTEN_H

/* Opens the FastCGI listening socket: "host:port", "[v6]:port", ":port" or a unix socket path.
 * Returns the descriptor, or -1 with a message on stderr. */
int listen_open(const char *addr);
/* Connections waiting on the listening socket for a worker to accept them, or -1 when unknown. */
long listen_queue(int fd);

#endif
