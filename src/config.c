/* config.c -- every setting in one struct, read from the environment once at start and validated. */
#include "config.h"

#include <errno.h>
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

static int setting_long(config_getter get, void *ctx, const char *name, long def, long min, long max,
                        long *out, char *err, size_t errlen)
{
    const char *v = get(name, ctx);

    *out = def;
    if (!v || !*v)
        return 0;
    return parse_long(name, v, min, max, out, err, errlen);
}

static char *setting_str(config_getter get, void *ctx, const char *name)
{
    const char *v = get(name, ctx);

    return v && *v ? xstrdup(v) : NULL;
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
        cfg->aliases[cfg->n_aliases].pattern = xstrdup(trim(tok));
        cfg->aliases[cfg->n_aliases].target = xstrdup(trim(eq + 1));
        cfg->n_aliases++;
    }
out:
    free(copy);
    return rc;
}

int config_load(struct config *cfg, config_getter get, void *ctx, char *err, size_t errlen)
{
    const char *v;
    long max_body, max_reply;
    size_t n;

    memset(cfg, 0, sizeof *cfg);
    v = get("OLLAMA_BASE_URL", ctx);
    cfg->ollama_url = xstrdup(v && *v ? v : "http://localhost:11434");
    n = strlen(cfg->ollama_url);
    while (n > 0 && cfg->ollama_url[n - 1] == '/')
        cfg->ollama_url[--n] = '\0';
    cfg->ollama_url_shown = hide_credentials(cfg->ollama_url);
    if (strncmp(cfg->ollama_url, "http://", 7) != 0 && strncmp(cfg->ollama_url, "https://", 8) != 0) {
        snprintf(err, errlen, "OLLAMA_BASE_URL=%s: expected an http:// or https:// URL", cfg->ollama_url_shown);
        return -1;
    }
    v = get("THINK_MODELS", ctx);
    if (v)
        split_think_models(cfg, v);
    v = get("MODEL_MAP", ctx);
    if (v && split_model_map(cfg, v, err, errlen) < 0)
        return -1;
    v = get("TEXT_TOOL_CALLS", ctx);
    if (textcall_parse_formats(v && *v ? v : "auto", &cfg->text_tool_calls, err, errlen) < 0)
        return -1;
    if (setting_long(get, ctx, "NUM_CTX", 65536, 0, 16777216, &cfg->num_ctx, err, errlen) < 0 ||
        setting_long(get, ctx, "PING_INTERVAL", 10, 1, 3600, &cfg->ping_interval, err, errlen) < 0 ||
        setting_long(get, ctx, "UPSTREAM_TIMEOUT", 0, 0, 86400 * 7, &cfg->upstream_timeout, err, errlen) < 0 ||
        setting_long(get, ctx, "IDLE_TIMEOUT", 600, 0, 86400, &cfg->idle_timeout, err, errlen) < 0 ||
        setting_long(get, ctx, "CONNECT_TIMEOUT", 5, 1, 600, &cfg->connect_timeout, err, errlen) < 0 ||
        setting_long(get, ctx, "GRACE_TIMEOUT", 30, 0, 86400, &cfg->grace_timeout, err, errlen) < 0 ||
        setting_long(get, ctx, "BODY_TIMEOUT", 60, 1, 3600, &cfg->body_timeout, err, errlen) < 0 ||
        setting_long(get, ctx, "SEND_TIMEOUT", 60, 1, 3600, &cfg->send_timeout, err, errlen) < 0 ||
        setting_long(get, ctx, "WORKERS", 4, 1, 1024, &cfg->workers, err, errlen) < 0 ||
        setting_long(get, ctx, "MAX_WORKERS", 0, 0, 1024, &cfg->max_workers, err, errlen) < 0 ||
        setting_long(get, ctx, "MIN_IDLE_WORKERS", 1, 1, 1024, &cfg->min_idle_workers, err, errlen) < 0 ||
        setting_long(get, ctx, "WORKER_IDLE_SECONDS", 10, 1, 86400, &cfg->worker_idle_seconds, err, errlen) < 0 ||
        setting_long(get, ctx, "MAX_REQUESTS", 0, 0, 1L << 40, &cfg->max_requests, err, errlen) < 0 ||
        setting_long(get, ctx, "MEMORY_LIMIT", 512, 0, 1L << 20, &cfg->memory_limit, err, errlen) < 0 ||
        setting_long(get, ctx, "MAX_BODY_BYTES", 32L * 1024 * 1024, 1024, 1L << 31, &max_body, err, errlen) < 0 ||
        setting_long(get, ctx, "MAX_REPLY_BYTES", 16L * 1024 * 1024, 4096, 1L << 30, &max_reply, err, errlen) < 0)
        return -1;
    if (cfg->max_workers && cfg->min_idle_workers > cfg->max_workers) {
        snprintf(err, errlen, "MIN_IDLE_WORKERS=%ld: more than MAX_WORKERS=%ld", cfg->min_idle_workers,
                 cfg->max_workers);
        return -1;
    }
    cfg->max_body = (size_t)max_body;
    cfg->max_reply = (size_t)max_reply;
    cfg->keep_alive = setting_str(get, ctx, "KEEP_ALIVE");
    cfg->api_key = setting_str(get, ctx, "ADAPTER_API_KEY");
    cfg->log_file = setting_str(get, ctx, "LOG_FILE");
    cfg->listen = setting_str(get, ctx, "FCGI_LISTEN");
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
    }
    free(cfg->think_models);
    free(cfg->aliases);
    free(cfg->ollama_url);
    free(cfg->ollama_url_shown);
    free(cfg->keep_alive);
    free(cfg->api_key);
    free(cfg->log_file);
    free(cfg->listen);
    memset(cfg, 0, sizeof *cfg);
}

int config_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *resume = NULL;

    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*')
        p++;
    return *p == '\0';
}

const char *config_map_model(const struct config *cfg, const char *requested)
{
    for (size_t i = 0; i < cfg->n_aliases; i++)
        if (config_glob_match(cfg->aliases[i].pattern, requested))
            return cfg->aliases[i].target;
    return requested;
}

/* "qwen3" names "qwen3:latest" in Ollama; an entry with '*' is a glob ("qwen3*", "deepseek-r1:*"). */
static int same_model(const char *entry, const char *model)
{
    size_t n = strlen(entry);

    if (strchr(entry, '*'))
        return config_glob_match(entry, model);
    if (strcmp(entry, model) == 0)
        return 1;
    if (strncmp(entry, model, n) == 0 && strcmp(model + n, ":latest") == 0)
        return 1;
    n = strlen(model);
    return strncmp(entry, model, n) == 0 && strcmp(entry + n, ":latest") == 0;
}

int config_is_think_model(const struct config *cfg, const char *model)
{
    for (size_t i = 0; i < cfg->n_think_models; i++)
        if (same_model(cfg->think_models[i], model))
            return 1;
    return 0;
}
