/* config.c -- every setting in one struct, read from the environment once at start and validated. */
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "textcall.h"

static const char *env_getter(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

static int parse_long(const char *name, const char *v, long min, long max, long *out, char *err, size_t errlen)
{
    char *end;
    long n;

    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *trim(end) != '\0' || n < min || n > max) {
        snprintf(err, errlen, "%s=%s: expected an integer from %ld to %ld", name, v, min, max);
        return -1;
    }
    *out = n;
    return 0;
}

/* Every numeric setting: its name, default and range, and the field it fills (a long, or a size_t). */
struct number_setting {
    const char *name;
    long def, min, max;
    size_t offset;
    int is_size;
};

#define LONG_FIELD(f) offsetof(struct config, f), 0
#define SIZE_FIELD(f) offsetof(struct config, f), 1

static const struct number_setting numbers[] = {
    { "NUM_CTX", 65536, 0, 16777216, LONG_FIELD(num_ctx) },
    { "PING_INTERVAL", 10, 1, 3600, LONG_FIELD(ping_interval) },
    { "UPSTREAM_TIMEOUT", 0, 0, 86400 * 7, LONG_FIELD(upstream_timeout) },
    { "IDLE_TIMEOUT", 600, 0, 86400, LONG_FIELD(idle_timeout) },
    { "CONNECT_TIMEOUT", 5, 1, 600, LONG_FIELD(connect_timeout) },
    { "GRACE_TIMEOUT", 30, 0, 86400, LONG_FIELD(grace_timeout) },
    { "BODY_TIMEOUT", 60, 1, 3600, LONG_FIELD(body_timeout) },
    { "SEND_TIMEOUT", 60, 1, 3600, LONG_FIELD(send_timeout) },
    { "WORKERS", 4, 1, 1024, LONG_FIELD(workers) },
    { "MAX_WORKERS", 0, 0, 1024, LONG_FIELD(max_workers) },
    { "MIN_IDLE_WORKERS", 1, 1, 1024, LONG_FIELD(min_idle_workers) },
    { "WORKER_IDLE_SECONDS", 10, 1, 86400, LONG_FIELD(worker_idle_seconds) },
    { "MAX_REQUESTS", 0, 0, 1L << 40, LONG_FIELD(max_requests) },
    { "OLLAMA_API_WRITES", 0, 0, 1, LONG_FIELD(api_writes) },
    { "MEMORY_LIMIT", 512, 0, 1L << 20, LONG_FIELD(memory_limit) },
    { "MAX_BODY_BYTES", 32L * 1024 * 1024, 1024, 1L << 31, SIZE_FIELD(max_body) },
    { "MAX_REPLY_BYTES", 16L * 1024 * 1024, 4096, 1L << 30, SIZE_FIELD(max_reply) },
};

/* The settings taken as they are: a string, or NULL when unset or empty. */
static const struct {
    const char *name;
    size_t offset;
} strings[] = {
    { "KEEP_ALIVE", offsetof(struct config, keep_alive) },
    { "ADAPTER_API_KEY", offsetof(struct config, api_key) },
    { "API_KEYS_FILE", offsetof(struct config, api_keys_file) },
    { "LOG_FILE", offsetof(struct config, log_file) },
    { "FCGI_LISTEN", offsetof(struct config, listen) },
};

static int setting_number(config_getter get, void *ctx, const struct number_setting *s, struct config *cfg,
                          char *err, size_t errlen)
{
    const char *v = get(s->name, ctx);
    long n = s->def;

    if (v && *v && parse_long(s->name, v, s->min, s->max, &n, err, errlen) < 0)
        return -1;
    if (s->is_size)
        *(size_t *)((char *)cfg + s->offset) = (size_t)n;
    else
        *(long *)((char *)cfg + s->offset) = n;
    return 0;
}

/* The URL as messages may show it: the user and password before "@" become three stars. */
static char *hide_credentials(const char *url)
{
    const char *host = strstr(url, "://"), *at, *slash;
    struct buf b;

    if (!host)
        return xstrdup(url);
    host += 3;
    slash = host + strcspn(host, "/?#");
    at = memchr(host, '@', (size_t)(slash - host));
    if (!at)
        return xstrdup(url);
    buf_init(&b);
    buf_append(&b, url, (size_t)(host - url));
    buf_puts(&b, "***");
    buf_puts(&b, at);
    return buf_steal(&b);
}

/* One host of OLLAMA_BASE_URL: an http(s) URL, kept without its trailing slashes. Its shown form goes into
 * metric labels and log lines, so quotes, backslashes and spaces are refused. */
static int add_host(struct config *cfg, const char *url, char *err, size_t errlen)
{
    char *u = xstrdup(url), *shown;
    size_t n = strlen(u);

    while (n > 0 && u[n - 1] == '/')
        u[--n] = '\0';
    shown = hide_credentials(u);
    cfg->hosts = xrealloc(cfg->hosts, (cfg->n_hosts + 1) * sizeof *cfg->hosts);
    cfg->hosts_shown = xrealloc(cfg->hosts_shown, (cfg->n_hosts + 1) * sizeof *cfg->hosts_shown);
    cfg->hosts[cfg->n_hosts] = u;
    cfg->hosts_shown[cfg->n_hosts++] = shown;
    if ((strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0) || strpbrk(u, "\"\\ \t\r\n")) {
        snprintf(err, errlen, "OLLAMA_BASE_URL=%s: expected an http:// or https:// URL", shown);
        return -1;
    }
    return 0;
}

/* A comma-separated list of hosts; one URL is the common case. */
static int split_hosts(struct config *cfg, const char *list, char *err, size_t errlen)
{
    char *copy = xstrdup(list), *save = NULL, *tok;
    struct buf shown;
    int rc = 0;

    for (tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        if (cfg->n_hosts == CONFIG_MAX_HOSTS) {
            snprintf(err, errlen, "OLLAMA_BASE_URL: more than %d hosts", CONFIG_MAX_HOSTS);
            rc = -1;
        } else {
            rc = add_host(cfg, tok, err, errlen);
        }
    }
    free(copy);
    if (rc == 0 && cfg->n_hosts == 0) {
        snprintf(err, errlen, "OLLAMA_BASE_URL=%s: expected an http:// or https:// URL", list);
        rc = -1;
    }
    if (rc < 0)
        return -1;
    buf_init(&shown);
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        if (i)
            buf_putc(&shown, ',');
        buf_puts(&shown, cfg->hosts_shown[i]);
    }
    cfg->ollama_url = xstrdup(cfg->hosts[0]);
    cfg->ollama_url_shown = buf_steal(&shown);
    return 0;
}

static void split_think_models(struct config *cfg, const char *list)
{
    char *copy = xstrdup(list), *save = NULL, *tok;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        cfg->think_models = xrealloc(cfg->think_models, (cfg->n_think_models + 1) * sizeof *cfg->think_models);
        cfg->think_models[cfg->n_think_models++] = xstrdup(tok);
    }
    free(copy);
}

/* PATTERN=FIRST|SECOND|...: the target is the first, the rest are its fallbacks (empty ones skipped). */
static void alias_targets(struct model_alias *a, const char *pattern, char *targets)
{
    char *save = NULL, *tok, *bar = strchr(targets, '|');

    memset(a, 0, sizeof *a);
    a->pattern = xstrdup(pattern);
    if (bar)
        *bar = '\0';
    a->target = xstrdup(trim(targets));
    if (!bar)
        return;
    for (tok = strtok_r(bar + 1, "|", &save); tok; tok = strtok_r(NULL, "|", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        a->fallbacks = xrealloc(a->fallbacks, (a->n_fallbacks + 1) * sizeof *a->fallbacks);
        a->fallbacks[a->n_fallbacks++] = xstrdup(tok);
    }
}

static int split_model_map(struct config *cfg, const char *map, char *err, size_t errlen)
{
    char *copy = xstrdup(map), *save = NULL, *tok, *eq;
    int rc = 0;

    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        eq = strchr(tok, '=');
        if (!eq || eq == tok || !*trim(eq + 1)) {
            snprintf(err, errlen, "MODEL_MAP: \"%s\" is not PATTERN=MODEL", tok);
            rc = -1;
            goto out;
        }
        *eq = '\0';
        cfg->aliases = xrealloc(cfg->aliases, (cfg->n_aliases + 1) * sizeof *cfg->aliases);
        alias_targets(&cfg->aliases[cfg->n_aliases], trim(tok), trim(eq + 1));
        cfg->n_aliases++;
        if (!*cfg->aliases[cfg->n_aliases - 1].target) {
            snprintf(err, errlen, "MODEL_MAP: \"%s\" names no model before '|'", tok);
            rc = -1;
            goto out;
        }
    }
out:
    free(copy);
    return rc;
}

/* One ROUTES entry, NAME=MODEL: long_context>N, images or thinking. */
static int route_entry(struct config_routes *r, char *name, const char *model, char *err, size_t errlen)
{
    char **slot = NULL;
    char *end;

    if (strncmp(name, "long_context>", 13) == 0) {
        errno = 0;
        r->long_context = strtoll(trim(name + 13), &end, 10);
        if (errno || end == trim(name + 13) || *trim(end) || r->long_context < 1) {
            snprintf(err, errlen, "ROUTES: \"%s\": expected long_context>TOKENS=MODEL", name);
            return -1;
        }
        slot = &r->long_context_model;
    } else if (strcmp(name, "images") == 0) {
        slot = &r->images_model;
    } else if (strcmp(name, "thinking") == 0) {
        slot = &r->thinking_model;
    } else {
        snprintf(err, errlen, "ROUTES: \"%s\" is not long_context>N, images or thinking", name);
        return -1;
    }
    free(*slot);
    *slot = xstrdup(model);
    return 0;
}

static int split_routes(struct config *cfg, const char *list, char *err, size_t errlen)
{
    char *copy = xstrdup(list), *save = NULL, *tok, *eq;
    int rc = 0;

    for (tok = strtok_r(copy, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        tok = trim(tok);
        if (!*tok)
            continue;
        eq = strrchr(tok, '=');
        if (!eq || eq == tok || !*trim(eq + 1)) {
            snprintf(err, errlen, "ROUTES: \"%s\" is not NAME=MODEL", tok);
            rc = -1;
            break;
        }
        *eq = '\0';
        rc = route_entry(&cfg->routes, trim(tok), trim(eq + 1), err, errlen);
    }
    free(copy);
    return rc;
}

int config_load(struct config *cfg, config_getter get, void *ctx, char *err, size_t errlen)
{
    const char *v;

    memset(cfg, 0, sizeof *cfg);
    v = get("OLLAMA_BASE_URL", ctx);
    if (split_hosts(cfg, v && *v ? v : "http://localhost:11434", err, errlen) < 0)
        return -1;
    v = get("THINK_MODELS", ctx);
    if (v)
        split_think_models(cfg, v);
    v = get("MODEL_MAP", ctx);
    if (v && split_model_map(cfg, v, err, errlen) < 0)
        return -1;
    v = get("ROUTES", ctx);
    if (v && split_routes(cfg, v, err, errlen) < 0)
        return -1;
    v = get("TEXT_TOOL_CALLS", ctx);
    if (textcall_parse_formats(v && *v ? v : "auto", &cfg->text_tool_calls, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++)
        if (setting_number(get, ctx, &numbers[i], cfg, err, errlen) < 0)
            return -1;
    if (cfg->max_workers && cfg->min_idle_workers > cfg->max_workers) {
        snprintf(err, errlen, "MIN_IDLE_WORKERS=%ld: more than MAX_WORKERS=%ld", cfg->min_idle_workers,
                 cfg->max_workers);
        return -1;
    }
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        const char *s = get(strings[i].name, ctx);

        *(char **)((char *)cfg + strings[i].offset) = s && *s ? xstrdup(s) : NULL;
    }
    return 0;
}

int config_from_env(struct config *cfg, char *err, size_t errlen)
{
    return config_load(cfg, env_getter, NULL, err, errlen);
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_think_models; i++)
        free(cfg->think_models[i]);
    for (size_t i = 0; i < cfg->n_aliases; i++) {
        free(cfg->aliases[i].pattern);
        free(cfg->aliases[i].target);
        for (size_t j = 0; j < cfg->aliases[i].n_fallbacks; j++)
            free(cfg->aliases[i].fallbacks[j]);
        free(cfg->aliases[i].fallbacks);
    }
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        free(cfg->hosts[i]);
        free(cfg->hosts_shown[i]);
    }
    free(cfg->hosts);
    free(cfg->hosts_shown);
    free(cfg->routes.long_context_model);
    free(cfg->routes.images_model);
    free(cfg->routes.thinking_model);
    free(cfg->think_models);
    free(cfg->aliases);
    free(cfg->ollama_url);
    free(cfg->ollama_url_shown);
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++)
        free(*(char **)((char *)cfg + strings[i].offset));
    memset(cfg, 0, sizeof *cfg);
}

const char *config_map_model(const struct config *cfg, const char *requested)
{
    for (size_t i = 0; i < cfg->n_aliases; i++)
        if (fnmatch(cfg->aliases[i].pattern, requested, 0) == 0)
            return cfg->aliases[i].target;
    return requested;
}

char *const *config_model_fallbacks(const struct config *cfg, const char *requested, size_t *n)
{
    for (size_t i = 0; i < cfg->n_aliases; i++)
        if (fnmatch(cfg->aliases[i].pattern, requested, 0) == 0) {
            *n = cfg->aliases[i].n_fallbacks;
            return cfg->aliases[i].fallbacks;
        }
    *n = 0;
    return NULL;
}

int config_same_model(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);

    if (strchr(a, '*'))
        return fnmatch(a, b, 0) == 0;
    /* "qwen3" names "qwen3:latest" in Ollama, either way round. */
    return strcmp(a, b) == 0 || (strncmp(a, b, na) == 0 && strcmp(b + na, ":latest") == 0) ||
           (strncmp(a, b, nb) == 0 && strcmp(a + nb, ":latest") == 0);
}

int config_is_think_model(const struct config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->n_think_models; i++)
        if (config_same_model(cfg->think_models[i], model))
            return 1;
    return 0;
}
