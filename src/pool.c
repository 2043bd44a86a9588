/* pool.c -- the master process: a prefork pool of workers on the listening socket, supervision, signals.
 *
 * php-fpm's model: the master owns the socket and forks the workers, which all accept() on it. Signals
 * reach the master's loop through a self-pipe, so nothing but write() runs in a handler.
 *
 * The pool is fixed (WORKERS) or sized by demand (MAX_WORKERS), as php-fpm's pm = dynamic: the master
 * reads which workers are busy from the metrics mapping, starts workers while fewer than
 * MIN_IDLE_WORKERS are idle, and stops those idle longer than WORKER_IDLE_SECONDS beyond that many. */
#include "pool.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "accesslog.h"
#include "buf.h"
#include "keys.h"
#include "listen.h"
#include "metrics.h"
#include "worker.h"

#define RESPAWN_DELAY_MS 1000     /* after a worker died within a second of its start */
#define FORK_RETRY_MIN_MS 100     /* a failed fork is tried again after this, doubling up to the max */
#define FORK_RETRY_MAX_MS 5000
#define TICK_MS 100               /* how often the master looks at the pool */

struct slot {
    pid_t pid;                    /* 0: empty */
    int generation;
    struct timespec started;
    struct timespec kill_at;      /* SIGKILL deadline once asked to stop; tv_sec 0 when not asked */
};

struct pool {
    const struct config *cfg;
    int listen_fd;
    struct slot *slots;           /* one per metrics slot: a slot is never shared by two live workers */
    size_t n_slots;
    int generation;
    int stopping;
    long pending;                 /* workers to start once start_at passes */
    struct timespec start_at;
    long retry_ms;                /* the wait after a fork that failed, or 0 */
    int at_max;                   /* every worker busy and no room for another, when last looked */
};

static int signal_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;

    if (write(signal_pipe[1], &c, 1) < 0) {
        /* The pipe is full: the loop has signals enough to read. */
    }
    errno = saved;
}

static void add_ms(struct timespec *t, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (ms % 1000) * 1000000L;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

static int passed(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static struct slot *free_slot(struct pool *p)
{
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].pid == 0)
            return &p->slots[i];
    return NULL;
}

/* The child keeps every signal blocked until the worker's own handlers are in place (worker_run): a
 * SIGTERM sent in between waits for them instead of running the master's handler in the child. */
static void child_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
}

/* Starts one worker in a free slot. Returns 0, or -1 when there is no slot or fork failed. */
static int spawn(struct pool *p)
{
    struct slot *s = free_slot(p);
    sigset_t all, old;
    size_t index;
    pid_t pid;

    if (!s)
        return -1;
    index = (size_t)(s - p->slots);
    /* Before the fork: the new worker's first "busy" must not be overwritten by this. */
    metrics_slot_started(index);
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid = fork();
    if (pid == 0) {
        close(signal_pipe[0]);
        close(signal_pipe[1]);
        child_signals();
        metrics_use_slot(index);
        _exit(worker_run(p->cfg, p->listen_fd));
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        metrics_slot_released(index);
        fprintf(stderr, "ollama-fcgi: fork: %s; trying again\n", strerror(errno));
        return -1;
    }
    s->pid = pid;
    s->generation = p->generation;
    clock_gettime(CLOCK_MONOTONIC, &s->started);
    s->kill_at.tv_sec = 0;
    return 0;
}

/* n more workers are wanted, after delay_ms at the least. */
static void want(struct pool *p, long n, long delay_ms)
{
    struct timespec at;

    add_ms(&at, delay_ms);
    if (p->pending == 0 || at.tv_sec > p->start_at.tv_sec ||
        (at.tv_sec == p->start_at.tv_sec && at.tv_nsec > p->start_at.tv_nsec))
        p->start_at = at;
    p->pending += n;
}

/* Starts what is wanted; a failed fork (no memory, no process left) is tried again with back-off until
 * the pool is whole, and so is a start that waits for an old worker's slot to free. */
static void start_pending(struct pool *p)
{
    if (p->pending == 0 || p->stopping || !passed(&p->start_at))
        return;
    while (p->pending > 0) {
        if (spawn(p) < 0) {
            p->retry_ms = p->retry_ms ? p->retry_ms * 2 : FORK_RETRY_MIN_MS;
            if (p->retry_ms > FORK_RETRY_MAX_MS)
                p->retry_ms = FORK_RETRY_MAX_MS;
            add_ms(&p->start_at, p->retry_ms);
            return;
        }
        p->pending--;
        p->retry_ms = 0;
    }
}

static void ask_to_stop(struct pool *p, struct slot *s)
{
    if (s->pid == 0 || s->kill_at.tv_sec != 0)
        return;
    kill(s->pid, SIGTERM);
    add_ms(&s->kill_at, p->cfg->grace_timeout * 1000);
}

static size_t live(const struct pool *p)
{
    size_t n = 0;

    for (size_t i = 0; i < p->n_slots; i++)
        n += p->slots[i].pid != 0;
    return n;
}

static void reap(struct pool *p)
{
    pid_t pid;
    int status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (size_t i = 0; i < p->n_slots; i++) {
            struct slot *s = &p->slots[i];
            struct timespec young;

            if (s->pid != pid)
                continue;
            s->pid = 0;
            metrics_slot_released(i);
            if (p->stopping || s->generation != p->generation || s->kill_at.tv_sec != 0)
                break;
            if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_RETIRED) {
                want(p, 1, 0);
                break;
            }
            if (WIFSIGNALED(status))
                fprintf(stderr, "ollama-fcgi: worker %d killed by signal %d; starting another\n", (int)pid,
                        WTERMSIG(status));
            else if (WEXITSTATUS(status) != 0)
                fprintf(stderr, "ollama-fcgi: worker %d exited with status %d; starting another\n", (int)pid,
                        WEXITSTATUS(status));
            /* A worker that dies at once would die again: wait a little rather than spin. A worker that
             * stopped cleanly was told to by a signal, most likely the terminal's Ctrl-C reaching the
             * whole process group just before the master's own stop: wait as long, so as not to start
             * workers that are about to be stopped. */
            young = s->started;
            young.tv_sec += 1;
            want(p, 1, !passed(&young) || (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? RESPAWN_DELAY_MS : 0);
            break;
        }
    }
}

/* A pool sized by demand: workers started while fewer than MIN_IDLE_WORKERS are idle, and one worker
 * stopped at a time once it has been idle WORKER_IDLE_SECONDS beyond them. Workers asked to stop (by a
 * reload, or for being idle) count against MAX_WORKERS until they are gone: after SIGHUPs the pool is
 * never more than MAX_WORKERS, the old workers still finishing their streams included. */
static void size_by_demand(struct pool *p)
{
    const struct config *cfg = p->cfg;
    long running = 0, idle = 0, leaving = 0, room;
    struct slot *longest = NULL;
    double longest_idle = 0;

    if (p->stopping)
        return;
    for (size_t i = 0; i < p->n_slots; i++) {
        struct slot *s = &p->slots[i];
        double idle_for;

        if (s->pid == 0)
            continue;
        if (s->kill_at.tv_sec != 0 || s->generation != p->generation) {
            leaving++;
            continue;
        }
        running++;
        if (metrics_slot_busy(i, &idle_for))
            continue;
        idle++;
        if (!longest || idle_for > longest_idle) {
            longest = s;
            longest_idle = idle_for;
        }
    }
    room = cfg->max_workers - running - leaving - p->pending;
    if (idle + p->pending < cfg->min_idle_workers) {
        long more = cfg->min_idle_workers - idle - p->pending;

        if (more > room)
            more = room;
        if (more > 0)
            want(p, more, 0);
    } else if (idle > cfg->min_idle_workers && longest && longest_idle >= (double)cfg->worker_idle_seconds) {
        ask_to_stop(p, longest);
    }
    /* Every worker busy and none to add: new requests wait in the socket's queue. Said once a time. */
    if (room <= 0 && idle == 0 && p->pending == 0 && !p->at_max) {
        metrics_max_reached();
        accesslog_warn("all MAX_WORKERS=%ld workers are busy: new requests wait in the listen queue (%ld there now)",
                       cfg->max_workers, listen_queue(p->listen_fd));
    }
    p->at_max = room <= 0 && idle == 0 && p->pending == 0;
}

static void on_tick(struct pool *p)
{
    for (size_t i = 0; i < p->n_slots; i++) {
        struct slot *s = &p->slots[i];

        if (s->pid && s->kill_at.tv_sec != 0 && passed(&s->kill_at)) {
            fprintf(stderr, "ollama-fcgi: worker %d did not finish within GRACE_TIMEOUT; killing it\n", (int)s->pid);
            kill(s->pid, SIGKILL);
            s->kill_at.tv_sec = 0x7fffffff;
        }
    }
    if (p->cfg->max_workers)
        size_by_demand(p);
    start_pending(p);
}

/* What the pool starts with: its fixed size, or for one sized by demand the idle workers it keeps. */
static long first_workers(const struct config *cfg)
{
    return cfg->max_workers ? cfg->min_idle_workers : cfg->workers;
}

/* The keys are read again before the new workers are forked, so they start with them; a file that does not
 * read leaves the keys as they were. */
static void reload_keys(const struct config *cfg)
{
    char err[512];

    if (!cfg->api_keys_file)
        return;
    if (keys_reload(cfg->api_keys_file, cfg->api_key, err, sizeof err) < 0) {
        fprintf(stderr, "ollama-fcgi: SIGHUP: %s; the keys stay as they were\n", err);
        return;
    }
    metrics_name_keys();
    fprintf(stderr, "ollama-fcgi: SIGHUP: %zu keys from API_KEYS_FILE=%s\n", keys_active()->n, cfg->api_keys_file);
}

static void reload(struct pool *p)
{
    int old = p->generation++;

    reload_keys(p->cfg);
    fprintf(stderr, "ollama-fcgi: SIGHUP: replacing the workers\n");
    p->pending = 0;
    /* A pool sized by demand starts its new workers as room within MAX_WORKERS allows (size_by_demand). */
    if (!p->cfg->max_workers) {
        want(p, first_workers(p->cfg), 0);
        start_pending(p);
    }
    for (size_t i = 0; i < p->n_slots; i++)
        if (p->slots[i].generation == old)
            ask_to_stop(p, &p->slots[i]);
}

static void stop(struct pool *p)
{
    if (p->stopping)
        return;
    p->stopping = 1;
    fprintf(stderr, "ollama-fcgi: stopping: %zu workers finish what they serve\n", live(p));
    /* New connections are refused at once from now on, rather than queued for workers that are leaving;
     * those already queued are served by the workers as they stop (they see the socket shut down). */
    shutdown(p->listen_fd, SHUT_RDWR);
    for (size_t i = 0; i < p->n_slots; i++)
        ask_to_stop(p, &p->slots[i]);
}

static void install(void)
{
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP };
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
        sigaction(sigs[i], &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sa.sa_flags = 0;
    sigaction(SIGPIPE, &sa, NULL);
}

int pool_run(const struct config *cfg, int listen_fd)
{
    struct pool p;
    unsigned char sigbuf[64];
    ssize_t n;

    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    p.listen_fd = listen_fd;
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        fprintf(stderr, "ollama-fcgi: pipe: %s\n", strerror(errno));
        return 1;
    }
    install();
    /* Room for new generations while SIGHUPs replace old ones still finishing their streams. */
    p.n_slots = (size_t)(cfg->max_workers ? cfg->max_workers : cfg->workers) * 4 + 8;
    p.slots = xcalloc(p.n_slots, sizeof *p.slots);
    if (metrics_init(p.n_slots) < 0)
        fprintf(stderr, "ollama-fcgi: no shared memory for /metrics: %s\n", strerror(errno));
    metrics_pool_limit(cfg->max_workers ? cfg->max_workers : cfg->workers);
    if (cfg->max_workers)
        fprintf(stderr, "ollama-fcgi: master %d: %ld to %ld workers, %ld kept idle, Ollama at %s\n", (int)getpid(),
                cfg->min_idle_workers, cfg->max_workers, cfg->min_idle_workers, cfg->ollama_url_shown);
    else
        fprintf(stderr, "ollama-fcgi: master %d: %ld workers, Ollama at %s\n", (int)getpid(), cfg->workers,
                cfg->ollama_url_shown);
    want(&p, first_workers(cfg), 0);
    start_pending(&p);
    while (!p.stopping || live(&p) > 0) {
        struct pollfd pfd = { signal_pipe[0], POLLIN, 0 };

        if (poll(&pfd, 1, TICK_MS) > 0) {
            while ((n = read(signal_pipe[0], sigbuf, sizeof sigbuf)) > 0) {
                for (ssize_t i = 0; i < n; i++) {
                    if (sigbuf[i] == SIGCHLD)
                        continue;
                    if (sigbuf[i] == SIGHUP && !p.stopping)
                        reload(&p);
                    else if (sigbuf[i] != SIGHUP)
                        stop(&p);
                }
            }
        }
        reap(&p);
        on_tick(&p);
    }
    fprintf(stderr, "ollama-fcgi: master %d: stopped\n", (int)getpid());
    free(p.slots);
    close(signal_pipe[0]);
    close(signal_pipe[1]);
    return 0;
}
