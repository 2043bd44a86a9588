/* metrics.c -- Prometheus counters for the whole pool, in memory shared by the master and its workers.
 *
 * One slot per worker in an anonymous shared mapping made before the fork: a worker writes only its
 * own slot, with relaxed atomic stores, and /metrics sums every slot, so any worker answers for the
 * whole pool. A replacement worker inherits its predecessor's slot, keeping the counters monotonic.
 * The same mapping tells the master which workers are busy (the pool sized by demand reads it), and
 * holds the master's own counters. */
#include "metrics.h"

#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "keys.h"
#include "textcall.h"

static const int status_codes[] = { 200, 204, 400, 401, 404, 405, 408, 413, 415, 429, 500, 502, 503, 504, 529, 0 };
#define N_STATUS (sizeof status_codes / sizeof *status_codes)   /* the last is "any other" */

static const double buckets[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300 };
#define N_BUCKETS (sizeof buckets / sizeof *buckets)

/* Named before the fork, read-only after: every process holds the same list. The last is "other". */
static char route_names[METRICS_MAX_ROUTES + 1][128];
static size_t n_routes;

/* Key names, likewise: appended by the master as keys come (at start and on SIGHUP), never removed, so a
 * name keeps its counters; workers forked since know every name, and those that knew fewer count them
 * where the newer ones do. The last is "other". */
static char key_names[METRICS_MAX_KEYS + 1][KEYS_NAME_MAX + 1];
static size_t n_keys;

struct histogram {
    uint64_t counts[N_BUCKETS + 1];   /* the last is +Inf */
    uint64_t sum_us;
};

struct slot {
    uint64_t requests[METRICS_MAX_ROUTES + 1][N_STATUS];
    uint64_t in_flight;
    uint64_t upstream_errors;
    uint64_t client_disconnects;
    uint64_t input_tokens;
    uint64_t output_tokens;
    uint64_t cached_tokens;       /* of the input tokens, read from Ollama's prompt cache */
    uint64_t host_prompt[METRICS_MAX_HOSTS];
    uint64_t host_cached[METRICS_MAX_HOSTS];
    uint64_t host_replies[METRICS_MAX_HOSTS];
    uint64_t model_prompt[METRICS_MAX_MODELS + 1];    /* by the index of the pool's model table; the last is "other" */
    uint64_t model_cached[METRICS_MAX_MODELS + 1];
    uint64_t host_failures[METRICS_MAX_HOSTS];
    uint64_t text_tool_calls[TEXTCALL_N_FORMATS];
    uint64_t key_requests[METRICS_MAX_KEYS + 1];
    uint64_t key_input_tokens[METRICS_MAX_KEYS + 1];
    uint64_t key_output_tokens[METRICS_MAX_KEYS + 1];
    uint64_t key_cached_tokens[METRICS_MAX_KEYS + 1];
    uint64_t serving_key;         /* the key whose request the worker holds, by key_id; 0: none */
    struct histogram duration;
    struct histogram ttft;
    uint64_t alive;               /* written by the master: a worker runs in this slot */
    uint64_t busy;                /* written by the worker: it is serving a request */
    uint64_t since_ms;            /* when busy last changed, CLOCK_MONOTONIC */
};

/* The master's own figures. */
/* A model Ollama answered for, named once for the whole pool by the first worker to see it. */
struct model_name {
    uint64_t state;               /* MODEL_FREE, MODEL_CLAIMED (being written), MODEL_READY */
    char name[METRICS_MODEL_NAME];
};

enum { MODEL_FREE, MODEL_CLAIMED, MODEL_READY };

struct pool_figures {
    struct model_name models[METRICS_MAX_MODELS];
    uint64_t max_workers;         /* the pool's limit (its fixed size, or MAX_WORKERS) */
    uint64_t max_reached;         /* times every worker was busy with no room for another */
    /* Written by any worker: a failed host's back-off. Two workers failing at once may both double it;
     * either value is a back-off, so last write wins. */
    uint64_t host_down_until_ms[METRICS_MAX_HOSTS];
    uint64_t host_backoff_ms[METRICS_MAX_HOSTS];
};

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 30000

static struct pool_figures *pool;
static struct slot *slots;
static size_t n_slots;
static struct slot *mine;

static uint64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

void metrics_name_route(const char *label)
{
    for (size_t i = 0; i < n_routes; i++)
        if (strcmp(route_names[i], label) == 0)
            return;
    if (n_routes < METRICS_MAX_ROUTES && strlen(label) < sizeof *route_names)
        strcpy(route_names[n_routes++], label);
}

static size_t route_index(const char *label)
{
    size_t i = 0;

    while (i < n_routes && strcmp(route_names[i], label) != 0)
        i++;
    return i;
}

void metrics_name_key(const char *name)
{
    for (size_t i = 0; i < n_keys; i++)
        if (strcmp(key_names[i], name) == 0)
            return;
    if (n_keys < METRICS_MAX_KEYS && strlen(name) < sizeof *key_names)
        strcpy(key_names[n_keys++], name);
}

void metrics_name_keys(void)
{
    const struct keys *keys = keys_active();

    for (size_t i = 0; i < keys->n; i++)
        metrics_name_key(keys->entries[i].name);
}

static size_t key_index(const char *name)
{
    size_t i = 0;

    while (i < n_keys && strcmp(key_names[i], name) != 0)
        i++;
    return i;
}

/* A key's identity in the slots: its name's FNV-1a hash, so every worker of every generation agrees on
 * it, names past METRICS_MAX_KEYS included. Never 0, which is "none". */
static uint64_t key_id(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ull;
    return h ? h : 1;
}

int metrics_init(size_t n)
{
    void *p = mmap(NULL, sizeof *pool + n * sizeof *slots, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return -1;
    pool = p;
    slots = (struct slot *)(pool + 1);
    n_slots = n;
    mine = &slots[0];
    /* A worker that runs alone (--single, mod_fcgid) is its own pool of one. */
    slots[0].alive = 1;
    pool->max_workers = 1;
    return 0;
}

void metrics_use_slot(size_t slot)
{
    if (slots && slot < n_slots)
        mine = &slots[slot];
}

static void add(uint64_t *v, uint64_t n)
{
    __atomic_store_n(v, __atomic_load_n(v, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

void metrics_slot_released(size_t slot)
{
    if (!slots || slot >= n_slots)
        return;
    __atomic_store_n(&slots[slot].in_flight, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[slot].serving_key, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&slots[slot].busy, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[slot].alive, 0, __ATOMIC_RELAXED);
}

void metrics_slot_started(size_t slot)
{
    if (!slots || slot >= n_slots)
        return;
    __atomic_store_n(&slots[slot].busy, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&slots[slot].serving_key, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&slots[slot].since_ms, now_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&slots[slot].alive, 1, __ATOMIC_RELAXED);
}

int metrics_slot_busy(size_t slot, double *idle_seconds)
{
    uint64_t busy, since;

    if (!slots || slot >= n_slots)
        return 0;
    busy = __atomic_load_n(&slots[slot].busy, __ATOMIC_RELAXED);
    since = __atomic_load_n(&slots[slot].since_ms, __ATOMIC_RELAXED);
    *idle_seconds = busy ? 0 : (double)(now_ms() - since) / 1e3;
    return (int)busy;
}

void metrics_busy(int busy)
{
    if (!mine)
        return;
    __atomic_store_n(&mine->since_ms, now_ms(), __ATOMIC_RELAXED);
    __atomic_store_n(&mine->busy, busy ? 1 : 0, __ATOMIC_RELAXED);
}

void metrics_pool_limit(long max_workers)
{
    if (pool)
        pool->max_workers = (uint64_t)max_workers;
}

void metrics_max_reached(void)
{
    if (pool)
        add(&pool->max_reached, 1);
}

void metrics_stream_started(void)
{
    if (mine)
        add(&mine->in_flight, 1);
}

void metrics_stream_ended(void)
{
    if (mine && get(&mine->in_flight) > 0)
        add(&mine->in_flight, (uint64_t)-1);
}

static void observe(struct histogram *h, double seconds)
{
    size_t i = 0;

    while (i < N_BUCKETS && seconds > buckets[i])
        i++;
    add(&h->counts[i], 1);
    add(&h->sum_us, (uint64_t)(seconds * 1e6));
}

void metrics_request(const char *route, int status, double duration_s, double ttft_s,
                     long long input_tokens, long long output_tokens, int upstream_error, int client_gone)
{
    size_t s = 0, r = route_index(route);

    if (!mine)
        return;
    while (s + 1 < N_STATUS && status_codes[s] != status)
        s++;
    add(&mine->requests[r][s], 1);
    add(&mine->upstream_errors, upstream_error ? 1 : 0);
    add(&mine->client_disconnects, client_gone ? 1 : 0);
    add(&mine->input_tokens, input_tokens > 0 ? (uint64_t)input_tokens : 0);
    add(&mine->output_tokens, output_tokens > 0 ? (uint64_t)output_tokens : 0);
    observe(&mine->duration, duration_s);
    if (ttft_s >= 0)
        observe(&mine->ttft, ttft_s);
}

/* The model's index in the pool's table, naming it there the first time (a claim by compare-and-swap, so
 * two workers never write one entry); METRICS_MAX_MODELS ("other") once the table is full. */
static size_t model_index(const char *model)
{
    size_t n = strlen(model);

    if (n >= METRICS_MODEL_NAME)
        return METRICS_MAX_MODELS;
    for (size_t i = 0; i < METRICS_MAX_MODELS; i++) {
        struct model_name *m = &pool->models[i];
        uint64_t state = __atomic_load_n(&m->state, __ATOMIC_ACQUIRE), free_state = MODEL_FREE;

        if (state == MODEL_READY && strcmp(m->name, model) == 0)
            return i;
        if (state != MODEL_FREE ||
            !__atomic_compare_exchange_n(&m->state, &free_state, MODEL_CLAIMED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;
        memcpy(m->name, model, n + 1);
        __atomic_store_n(&m->state, MODEL_READY, __ATOMIC_RELEASE);
        return i;
    }
    return METRICS_MAX_MODELS;
}

void metrics_prompt(size_t host, const char *model, long long prompt_tokens, long long cached_tokens)
{
    uint64_t prompt = prompt_tokens > 0 ? (uint64_t)prompt_tokens : 0;
    uint64_t cached = cached_tokens > 0 ? (uint64_t)cached_tokens : 0;
    size_t m;

    if (!mine || host >= METRICS_MAX_HOSTS)
        return;
    if (cached > prompt)
        cached = prompt;
    m = model_index(model);
    add(&mine->model_prompt[m], prompt);
    add(&mine->model_cached[m], cached);
    add(&mine->cached_tokens, cached);
    add(&mine->host_prompt[host], prompt);
    add(&mine->host_cached[host], cached);
    add(&mine->host_replies[host], 1);
}

int metrics_host_backing_off(size_t host)
{
    return metrics_host_backoff_left(host) > 0;
}

long long metrics_host_backoff_left(size_t host)
{
    uint64_t until, now = now_ms();

    if (!pool || host >= METRICS_MAX_HOSTS)
        return 0;
    until = get(&pool->host_down_until_ms[host]);
    return until > now ? (long long)(until - now) : 0;
}

void metrics_host_failed(size_t host)
{
    uint64_t b;

    if (!pool || host >= METRICS_MAX_HOSTS)
        return;
    b = get(&pool->host_backoff_ms[host]);
    b = b == 0 ? BACKOFF_FIRST_MS : b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
    __atomic_store_n(&pool->host_backoff_ms[host], b, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->host_down_until_ms[host], now_ms() + b, __ATOMIC_RELAXED);
    if (mine)
        add(&mine->host_failures[host], 1);
}

void metrics_host_ok(size_t host)
{
    if (!pool || host >= METRICS_MAX_HOSTS || !get(&pool->host_backoff_ms[host]))
        return;
    __atomic_store_n(&pool->host_backoff_ms[host], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool->host_down_until_ms[host], 0, __ATOMIC_RELAXED);
}

void metrics_key_request(const char *name, long long input_tokens, long long output_tokens, long long cached_tokens)
{
    size_t k = key_index(name);

    if (!mine)
        return;
    add(&mine->key_requests[k], 1);
    add(&mine->key_input_tokens[k], input_tokens > 0 ? (uint64_t)input_tokens : 0);
    add(&mine->key_output_tokens[k], output_tokens > 0 ? (uint64_t)output_tokens : 0);
    add(&mine->key_cached_tokens[k], cached_tokens > 0 ? (uint64_t)cached_tokens : 0);
}

/* The workers serving the key now, this one included once it said so. */
static long key_holders(uint64_t id)
{
    long n = 0;

    for (size_t i = 0; i < n_slots; i++)
        n += __atomic_load_n(&slots[i].serving_key, __ATOMIC_SEQ_CST) == id;
    return n;
}

/* The slot says which key it serves before the others are counted: of two requests racing for the last
 * share, each sees the other, and both are refused rather than both served. */
int metrics_key_claim(const char *name, long max)
{
    uint64_t id = key_id(name);

    if (!mine)
        return 0;
    __atomic_store_n(&mine->serving_key, id, __ATOMIC_SEQ_CST);
    if (max > 0 && key_holders(id) > max) {
        metrics_key_release();
        return -1;
    }
    return 0;
}

void metrics_key_release(void)
{
    if (mine)
        __atomic_store_n(&mine->serving_key, 0, __ATOMIC_SEQ_CST);
}

void metrics_text_tool_calls(unsigned formats)
{
    if (!mine)
        return;
    for (int f = 0; f < TEXTCALL_N_FORMATS; f++)
        if (formats & (1u << f))
            add(&mine->text_tool_calls[f], 1);
}

static uint64_t sum(size_t offset)
{
    uint64_t total = 0;

    for (size_t i = 0; i < n_slots; i++)
        total += get((const uint64_t *)((const char *)&slots[i] + offset));
    return total;
}

static void render_histogram(struct buf *out, const char *name, const char *help, size_t offset)
{
    uint64_t cumulative = 0;

    buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        cumulative += sum(offset + offsetof(struct histogram, counts) + b * sizeof(uint64_t));
        if (b < N_BUCKETS)
            buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[b], (unsigned long long)cumulative);
        else
            buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cumulative);
    }
    buf_printf(out, "%s_sum %.6f\n%s_count %llu\n", name,
               (double)sum(offset + offsetof(struct histogram, sum_us)) / 1e6, name, (unsigned long long)cumulative);
}

static void render_counter(struct buf *out, const char *name, const char *type, const char *help, size_t offset)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
               (unsigned long long)sum(offset));
}

static void render_workers(struct buf *out, long listen_queue)
{
    uint64_t busy = 0, idle = 0;

    for (size_t i = 0; i < n_slots; i++) {
        if (!get(&slots[i].alive))
            continue;
        if (get(&slots[i].busy))
            busy++;
        else
            idle++;
    }
    buf_printf(out, "# HELP ollama_fcgi_workers Worker processes, by whether they are serving a request.\n"
                    "# TYPE ollama_fcgi_workers gauge\nollama_fcgi_workers{state=\"busy\"} %llu\n"
                    "ollama_fcgi_workers{state=\"idle\"} %llu\n"
                    "# HELP ollama_fcgi_workers_max The most workers the pool runs (WORKERS, or MAX_WORKERS).\n"
                    "# TYPE ollama_fcgi_workers_max gauge\nollama_fcgi_workers_max %llu\n"
                    "# HELP ollama_fcgi_max_workers_reached_total Times every worker was busy and the pool could "
                    "start no other: requests then wait in the listen queue.\n"
                    "# TYPE ollama_fcgi_max_workers_reached_total counter\nollama_fcgi_max_workers_reached_total %llu\n",
               (unsigned long long)busy, (unsigned long long)idle, (unsigned long long)get(&pool->max_workers),
               (unsigned long long)get(&pool->max_reached));
    if (listen_queue >= 0)
        buf_printf(out, "# HELP ollama_fcgi_listen_queue Connections accepted by the kernel that no worker has taken "
                        "yet.\n# TYPE ollama_fcgi_listen_queue gauge\nollama_fcgi_listen_queue %ld\n", listen_queue);
}

static void render_key_counter(struct buf *out, const char *name, const char *help, size_t offset)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t k = 0; k <= n_keys; k++) {
        uint64_t n = sum(offset + k * sizeof(uint64_t));

        if (k < n_keys || n)
            buf_printf(out, "%s{key=\"%s\"} %llu\n", name, k < n_keys ? key_names[k] : "other",
                       (unsigned long long)n);
    }
}

/* By key name, when keys are set: names are letters, digits and ._@- (keys.c), nothing to escape. */
static void render_keys(struct buf *out)
{
    if (!n_keys)
        return;
    render_key_counter(out, "ollama_fcgi_key_requests_total", "Requests answered, by the name of the key they carried.",
                       offsetof(struct slot, key_requests));
    render_key_counter(out, "ollama_fcgi_key_input_tokens_total", "Prompt tokens, by key name.",
                       offsetof(struct slot, key_input_tokens));
    render_key_counter(out, "ollama_fcgi_key_output_tokens_total", "Generated tokens, by key name.",
                       offsetof(struct slot, key_output_tokens));
    render_key_counter(out, "ollama_fcgi_key_cached_input_tokens_total",
                       "Prompt tokens Ollama read from its prompt cache, by key name.",
                       offsetof(struct slot, key_cached_tokens));
    buf_puts(out, "# HELP ollama_fcgi_key_streams_in_flight Requests calling Ollama now, by key name (what "
                  "max_streams limits).\n# TYPE ollama_fcgi_key_streams_in_flight gauge\n");
    for (size_t k = 0; k < n_keys; k++)
        buf_printf(out, "ollama_fcgi_key_streams_in_flight{key=\"%s\"} %ld\n", key_names[k],
                   key_holders(key_id(key_names[k])));
}

/* A label value as Prometheus reads it: backslash, quote and newline escaped. */
static void label_value(struct buf *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_putc(out, '\\');
        if (*s == '\n')
            buf_puts(out, "\\n");
        else
            buf_putc(out, *s);
    }
}

static void render_model_counter(struct buf *out, const char *name, const char *help, size_t offset)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (size_t m = 0; m <= METRICS_MAX_MODELS; m++) {
        int ready = m < METRICS_MAX_MODELS && __atomic_load_n(&pool->models[m].state, __ATOMIC_ACQUIRE) == MODEL_READY;
        uint64_t n = sum(offset + m * sizeof(uint64_t));

        if (!ready && !(m == METRICS_MAX_MODELS && n))
            continue;
        buf_printf(out, "%s{model=\"", name);
        label_value(out, ready ? pool->models[m].name : "other");
        buf_printf(out, "\"} %llu\n", (unsigned long long)n);
    }
}

/* Prompt tokens by the model that read them, and how many of them Ollama's prompt cache held. */
static void render_models(struct buf *out)
{
    render_model_counter(out, "ollama_fcgi_model_prompt_tokens_total", "Prompt tokens, by the Ollama model that read them.",
                         offsetof(struct slot, model_prompt));
    render_model_counter(out, "ollama_fcgi_model_cached_tokens_total",
                         "Prompt tokens Ollama read from its prompt cache, by model.", offsetof(struct slot, model_cached));
}

void metrics_render(struct buf *out, long listen_queue)
{
    if (!slots)
        return;
    render_workers(out, listen_queue);
    buf_puts(out, "# HELP ollama_fcgi_requests_total Requests answered, by route and HTTP status.\n"
                  "# TYPE ollama_fcgi_requests_total counter\n");
    for (size_t r = 0; r <= n_routes; r++)
        for (size_t s = 0; s < N_STATUS; s++) {
            uint64_t n = sum(offsetof(struct slot, requests) + (r * N_STATUS + s) * sizeof(uint64_t));

            if (!n)
                continue;
            const char *name = r < n_routes ? route_names[r] : "other";

            if (status_codes[s])
                buf_printf(out, "ollama_fcgi_requests_total{route=\"%s\",status=\"%d\"} %llu\n", name,
                           status_codes[s], (unsigned long long)n);
            else
                buf_printf(out, "ollama_fcgi_requests_total{route=\"%s\",status=\"other\"} %llu\n", name,
                           (unsigned long long)n);
        }
    render_counter(out, "ollama_fcgi_streams_in_flight", "gauge", "Requests being answered from Ollama now.",
                   offsetof(struct slot, in_flight));
    render_counter(out, "ollama_fcgi_upstream_errors_total", "counter",
                   "Requests that failed because of Ollama (unreachable, an error status or a broken stream).",
                   offsetof(struct slot, upstream_errors));
    render_counter(out, "ollama_fcgi_client_disconnects_total", "counter",
                   "Requests whose client went away before the answer was complete.",
                   offsetof(struct slot, client_disconnects));
    render_counter(out, "ollama_fcgi_input_tokens_total", "counter", "Prompt tokens, as Ollama counted them.",
                   offsetof(struct slot, input_tokens));
    render_counter(out, "ollama_fcgi_cached_input_tokens_total", "counter",
                   "Prompt tokens Ollama read from its prompt cache instead of evaluating them (of the input tokens).",
                   offsetof(struct slot, cached_tokens));
    render_counter(out, "ollama_fcgi_output_tokens_total", "counter", "Generated tokens, as Ollama counted them.",
                   offsetof(struct slot, output_tokens));
    buf_puts(out, "# HELP ollama_fcgi_text_tool_calls_total Replies whose tool calls the model wrote as text and the "
                  "adapter recovered, by the format they were written in.\n"
                  "# TYPE ollama_fcgi_text_tool_calls_total counter\n");
    for (int f = 0; f < TEXTCALL_N_FORMATS; f++)
        buf_printf(out, "ollama_fcgi_text_tool_calls_total{format=\"%s\"} %llu\n", textcall_format_name(f),
                   (unsigned long long)sum(offsetof(struct slot, text_tool_calls) + (size_t)f * sizeof(uint64_t)));
    render_keys(out);
    render_models(out);
    render_histogram(out, "ollama_fcgi_request_duration_seconds", "Time from request to the end of the answer.",
                     offsetof(struct slot, duration));
    render_histogram(out, "ollama_fcgi_time_to_first_token_seconds", "Time from request to Ollama's first output.",
                     offsetof(struct slot, ttft));
}

static void render_host_family(struct buf *out, const char *name, const char *type, const char *help, size_t offset,
                               const char *const *urls, size_t n)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t h = 0; h < n && h < METRICS_MAX_HOSTS; h++)
        buf_printf(out, "%s{host=\"%s\"} %llu\n", name, urls[h],
                   (unsigned long long)sum(offset + h * sizeof(uint64_t)));
}

void metrics_render_hosts(struct buf *out, const char *const *urls, size_t n)
{
    if (!slots)
        return;
    render_host_family(out, "ollama_fcgi_host_prompt_tokens_total", "counter", "Prompt tokens by Ollama host.",
                       offsetof(struct slot, host_prompt), urls, n);
    render_host_family(out, "ollama_fcgi_host_cached_tokens_total", "counter",
                       "Prompt tokens an Ollama host read from its prompt cache.", offsetof(struct slot, host_cached),
                       urls, n);
    render_host_family(out, "ollama_fcgi_host_replies_total", "counter", "Replies by Ollama host.",
                       offsetof(struct slot, host_replies), urls, n);
    render_host_family(out, "ollama_fcgi_host_failures_total", "counter",
                       "Calls to an Ollama host that failed before its first byte (refused, unreachable, 5xx).",
                       offsetof(struct slot, host_failures), urls, n);
    buf_puts(out, "# HELP ollama_fcgi_host_up Whether an Ollama host is being called (0 while it backs off).\n"
                  "# TYPE ollama_fcgi_host_up gauge\n");
    for (size_t h = 0; h < n && h < METRICS_MAX_HOSTS; h++)
        buf_printf(out, "ollama_fcgi_host_up{host=\"%s\"} %d\n", urls[h], !metrics_host_backing_off(h));
}
