/* config.h -- every setting in one struct, read from the environment once at start and validated. */
#ifndef OF_CONFIG_H
#define OF_CONFIG_H

#include <stddef.h>

struct model_alias {
    char *pattern;   /* a glob (fnmatch): '*' matches any run of characters */
    char *target;
    char **fallbacks;  /* the models after '|' in the target, tried in order when no host can answer with it */
    size_t n_fallbacks;
};

/* ROUTES: models for what the model MODEL_MAP chose cannot do (capability.h decides). NULL when not set. */
struct config_routes {
    long long long_context;      /* long_context>N: a prompt estimated above N tokens ... */
    char *long_context_model;    /* ... goes to this model */
    char *images_model;          /* images=MODEL: a request with images, for a model without "vision" */
    char *thinking_model;        /* thinking=MODEL: a request asking for thinking, for a model that cannot */
};

/* The most Ollama hosts OLLAMA_BASE_URL may name (metrics.h counts by host). */
#define CONFIG_MAX_HOSTS 16

struct config {
    char *ollama_url;            /* OLLAMA_BASE_URL's first host without a trailing slash */
    char *ollama_url_shown;      /* OLLAMA_BASE_URL with any user:password in it hidden, for messages and logs */
    char **hosts;                /* every host OLLAMA_BASE_URL names (a comma-separated list), as ollama_url */
    char **hosts_shown;          /* the same, each as ollama_url_shown */
    size_t n_hosts;              /* at least 1 */
    char **think_models;         /* THINK_MODELS */
    size_t n_think_models;
    struct model_alias *aliases; /* MODEL_MAP, first match wins */
    size_t n_aliases;
    struct config_routes routes; /* ROUTES */
    long num_ctx;                /* NUM_CTX */
    char *keep_alive;            /* KEEP_ALIVE or NULL: a duration string, or a number of seconds */
    char *api_key;               /* ADAPTER_API_KEY or NULL */
    char *api_keys_file;         /* API_KEYS_FILE or NULL: a key per person (keys.h) */
    long ping_interval;          /* PING_INTERVAL, seconds */
    long upstream_timeout;       /* UPSTREAM_TIMEOUT, seconds, 0 = none */
    long idle_timeout;           /* IDLE_TIMEOUT, seconds Ollama may send nothing at all, 0 = no limit */
    long connect_timeout;        /* CONNECT_TIMEOUT, seconds */
    long grace_timeout;          /* GRACE_TIMEOUT, seconds a stopping worker may finish its stream */
    long body_timeout;           /* BODY_TIMEOUT, seconds the web server may take to hand over a request */
    long send_timeout;           /* SEND_TIMEOUT, seconds a reply frame may wait for the client to take it */
    size_t max_body;             /* MAX_BODY_BYTES */
    size_t max_reply;            /* MAX_REPLY_BYTES: the most a reply that is not streamed may hold */
    char *log_file;              /* LOG_FILE or NULL (stderr) */
    char *listen;                /* FCGI_LISTEN or NULL (inherit fd 0) */
    long workers;                /* WORKERS: the pool's fixed size, when MAX_WORKERS is 0 */
    long max_workers;            /* MAX_WORKERS: 0 for a fixed pool, else the most a pool sized by demand runs */
    long min_idle_workers;       /* MIN_IDLE_WORKERS: a pool sized by demand starts workers to keep this many idle */
    long worker_idle_seconds;    /* WORKER_IDLE_SECONDS: then stops the workers idle this long beyond those */
    long max_requests;           /* MAX_REQUESTS: a worker serves this many requests, then a fresh one takes over */
    long memory_limit;           /* MEMORY_LIMIT, MiB a worker may hold before its request ends, 0 = none */
    unsigned text_tool_calls;    /* TEXT_TOOL_CALLS: the textcall formats recovered from a reply's text */
    long api_writes;             /* OLLAMA_API_WRITES: 1 passes Ollama's routes that change the server */
};

/* Where settings come from: getenv, or a table in tests. */
typedef const char *(*config_getter)(const char *name, void *ctx);

/* Fills cfg from the getter; returns 0, or -1 with a message naming the bad setting in err. */
int config_load(struct config *cfg, config_getter get, void *ctx, char *err, size_t errlen);
int config_from_env(struct config *cfg, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The Ollama model to use for what the client asked for: the first matching MODEL_MAP target, or the name. */
const char *config_map_model(const struct config *cfg, const char *requested);
/* The fallbacks of the MODEL_MAP entry that maps requested (NULL and *n 0 when there is none). */
char *const *config_model_fallbacks(const struct config *cfg, const char *requested, size_t *n);
int config_is_think_model(const struct config *cfg, const char *model);
/* Whether two model names are the same model: "qwen3" is "qwen3:latest"; a with a '*' is a glob
 * ("qwen3*", "deepseek-r1:*"). */
int config_same_model(const char *a, const char *b);

#endif
