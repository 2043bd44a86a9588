/* listen.c -- the FastCGI listening socket: opened on a TCP address or a unix path, and its queue of
 * connections no worker has taken yet, as the kernel counts it. */
#include "listen.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BACKLOG 1024

static int listen_unix(const char *path)
{
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "ollama-fcgi: socket path too long: %s\n", path);
        return -1;
    }
    /* A socket left by an earlier run is replaced; any other file is not ours to remove. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0666) < 0 || listen(fd, BACKLOG) < 0) {
        fprintf(stderr, "ollama-fcgi: cannot listen on %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *addr)
{
    struct addrinfo hints, *res = NULL, *ai;
    char host[256];
    const char *colon = strrchr(addr, ':'), *h = addr;
    size_t hl;
    int fd = -1, one = 1, rc;

    hl = (size_t)(colon - addr);
    if (*h == '[' && hl >= 2 && addr[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        fprintf(stderr, "ollama-fcgi: bad listen address %s\n", addr);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ollama-fcgi: cannot resolve %s: %s\n", addr, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, BACKLOG) == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        fprintf(stderr, "ollama-fcgi: cannot listen on %s: %s\n", addr, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

/* A unix socket's backlog, from the kernel's socket diagnostics: the one whose inode is fd's. */
static long unix_queue(int fd)
{
    struct {
        struct nlmsghdr nh;
        struct unix_diag_req req;
    } ask;
    struct stat st;
    char reply[8192];
    long queue = -1;
    ssize_t n;
    int nl;

    if (fstat(fd, &st) < 0 || (nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) < 0)
        return -1;
    memset(&ask, 0, sizeof ask);
    ask.nh.nlmsg_len = sizeof ask;
    ask.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    ask.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    ask.req.sdiag_family = AF_UNIX;
    ask.req.udiag_states = 1 << 10;   /* TCP_LISTEN */
    ask.req.udiag_show = UDIAG_SHOW_RQLEN;
    if (send(nl, &ask, sizeof ask, 0) < 0)
        goto out;
    while (queue < 0 && (n = recv(nl, reply, sizeof reply, 0)) > 0) {
        for (struct nlmsghdr *h = (struct nlmsghdr *)reply; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            struct unix_diag_msg *m = NLMSG_DATA(h);
            int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));

            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR)
                goto out;
            if (m->udiag_ino != st.st_ino)
                continue;
            for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len))
                if (a->rta_type == UNIX_DIAG_RQLEN)
                    queue = (long)((struct unix_diag_rqlen *)RTA_DATA(a))->udiag_rqueue;
        }
    }
out:
    close(nl);
    return queue;
}

long listen_queue(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    struct tcp_info info;
    socklen_t info_len = sizeof info;

    if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
        return -1;
    if (sa.ss_family == AF_UNIX)
        return unix_queue(fd);
    /* For a listening TCP socket the kernel reports its accept queue as tcpi_unacked. */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) < 0)
        return -1;
    return (long)info.tcpi_unacked;
}

int listen_open(const char *addr)
{
    if (addr[0] == '/' || addr[0] == '.' || !strchr(addr, ':'))
        return listen_unix(addr);
    return listen_tcp(addr);
}
