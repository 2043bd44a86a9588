/* main.c -- flags and environment into a config; then the pool, or a single worker for a supervisor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "accesslog.h"
#include "buf.h"
#include "config.h"
#include "keys.h"
#include "listen.h"
#include "metrics.h"
#include "pool.h"
#include "router.h"
#include "worker.h"

#ifndef OF_VERSION
#define OF_VERSION "dev"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ollama-fcgi [--listen ADDR] [--workers N] [--single]\n"
            "       ollama-fcgi --new-key NAME\n"
            "\n"
            "Serves Anthropic Messages (/v1/messages), OpenAI Chat Completions (/v1/chat/completions) and the\n"
            "OpenAI Responses API (/v1/responses) from Ollama's /api/chat, as a FastCGI worker pool behind\n"
            "nginx, lighttpd, Apache, Caddy or any web server.\n"
            "\n"
            "  --listen ADDR   host:port or a unix socket path (default: FCGI_LISTEN, else the socket on\n"
            "                  stdin, as spawn-fcgi and lighttpd's bin-path hand it over)\n"
            "  --workers N     worker processes of a fixed pool (default: WORKERS, else 4)\n"
            "  --single        one worker and no master, for a supervisor that restarts it (multiwatch)\n"
            "  --new-key NAME  prints a fresh key for NAME, once, and the line for API_KEYS_FILE\n"
            "  --help, --version\n"
            "\n"
            "Environment: OLLAMA_BASE_URL THINK_MODELS MODEL_MAP NUM_CTX KEEP_ALIVE ADAPTER_API_KEY API_KEYS_FILE\n"
            "PING_INTERVAL UPSTREAM_TIMEOUT IDLE_TIMEOUT CONNECT_TIMEOUT GRACE_TIMEOUT BODY_TIMEOUT\n"
            "SEND_TIMEOUT MAX_BODY_BYTES MAX_REPLY_BYTES MEMORY_LIMIT TEXT_TOOL_CALLS LOG_FILE FCGI_LISTEN\n"
            "WORKERS MAX_WORKERS MIN_IDLE_WORKERS WORKER_IDLE_SECONDS MAX_REQUESTS OLLAMA_API_WRITES\n"
            "(see the README).\n");
}

static int stdin_is_listening_socket(void)
{
    int listening = 0;
    socklen_t len = sizeof listening;

    return getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening;
}

/* Apache's mod_fcgid hands each process it starts a unix socket on fd 0, which its process manager made,
 * listens on, and named after itself: <FcgidIPCDir>/<the manager's pid>.<n>. It runs one request at a time
 * on it, starting and stopping processes itself, and sets no variable of its own. The kernel records which
 * process called listen() on a unix socket (SO_PEERCRED): the socket is mod_fcgid's when its name is that
 * process's pid, a dot and a number, and that process is another one. No name chosen in advance can do
 * that (spawn-fcgi's "9000.1" would need spawn-fcgi to get pid 9000), spawn-fcgi -n listens in this very
 * process, and lighttpd's names end in -<n>. */
static int started_by_mod_fcgid(void)
{
    struct sockaddr_un sa;
    struct ucred cred;
    socklen_t len = sizeof sa, cred_len = sizeof cred;
    char owner[32];
    const char *name, *number;
    size_t n;

    memset(&sa, 0, sizeof sa);
    if (getsockname(0, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX || !sa.sun_path[0] ||
        getsockopt(0, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0 || cred.pid <= 0 || cred.pid == getpid())
        return 0;
    name = strrchr(sa.sun_path, '/');
    name = name ? name + 1 : sa.sun_path;
    n = (size_t)snprintf(owner, sizeof owner, "%d.", (int)cred.pid);
    if (strncmp(name, owner, n) != 0)
        return 0;
    number = name + n;
    return *number && strspn(number, "0123456789") == strlen(number);
}

/* A key for name, shown this once; the file holds only its hash. */
static int new_key(const char *name)
{
    char key[KEYS_NEW_SIZE], hex[2 * SHA256_BYTES + 1], why[256];

    if (keys_check_name(name, why, sizeof why) < 0) {
        fprintf(stderr, "ollama-fcgi: --new-key: %s\n", why);
        return 2;
    }
    if (keys_generate(key, sizeof key) < 0) {
        fprintf(stderr, "ollama-fcgi: --new-key: the system gives no random bytes (getrandom)\n");
        return 1;
    }
    keys_hash_hex(key, hex);
    printf("The key for %s (shown only now: hand it over, it cannot be recovered):\n\n  %s\n\n"
           "The line for API_KEYS_FILE (then reload the pool: kill -HUP its master):\n\n  %s sha256:%s\n",
           name, key, name, hex);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    const char *listen_addr = NULL;
    long workers = 0;
    int single = 0, fd, status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("ollama-fcgi %s\n", OF_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_addr = argv[++i];
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = strtol(argv[++i], NULL, 10);
            if (workers < 1 || workers > 1024) {
                fprintf(stderr, "ollama-fcgi: --workers: expected 1 to 1024\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--new-key") == 0 && i + 1 < argc) {
            return new_key(argv[i + 1]);
        } else if (strcmp(argv[i], "--single") == 0) {
            single = 1;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (config_from_env(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "ollama-fcgi: %s\n", err);
        return 2;
    }
    if (keys_reload(cfg.api_keys_file, cfg.api_key, err, sizeof err) < 0) {
        fprintf(stderr, "ollama-fcgi: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (workers)
        cfg.workers = workers;
    if (accesslog_open(cfg.log_file) < 0)
        fprintf(stderr, "ollama-fcgi: cannot open LOG_FILE=%s; logging to stderr\n", cfg.log_file);
    if (!listen_addr)
        listen_addr = cfg.listen;
    if (listen_addr) {
        fd = listen_open(listen_addr);
        if (fd < 0)
            return 1;
    } else if (stdin_is_listening_socket()) {
        fd = 0;
        if (!single && started_by_mod_fcgid()) {
            /* mod_fcgid supervises; a master of our own would fight it, and idle workers would wait forever. */
            fprintf(stderr, "ollama-fcgi: started by mod_fcgid: one request at a time in this process, WORKERS "
                            "ignored\n");
            single = 1;
        }
    } else {
        fprintf(stderr, "ollama-fcgi: nothing to listen on: set FCGI_LISTEN or --listen, or start it under "
                        "spawn-fcgi\n");
        return 2;
    }
    router_name_routes();
    metrics_name_keys();
    if (single)
        metrics_init(1);
    status = single ? worker_run(&cfg, fd) : pool_run(&cfg, fd);
    keys_clear();
    config_free(&cfg);
    return status;
}
