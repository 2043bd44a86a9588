/* hosts.c -- the Ollama hosts of OLLAMA_BASE_URL as a worker sees them: which models each has (its /api/tags,
 * asked now and then and again after a "model not found"), and which to call for a request, in order.
 *
 * Each worker keeps its own listings (a few names per host, asked at most every HOSTS_REFRESH_MS); whether
 * a host failed is shared by the whole pool (metrics.c), so one worker's refused connection spares the
 * others the same wait. */
#include "hosts.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "config.h"
#include "jsonx.h"
#include "metrics.h"
#include "models.h"

#define HOSTS_REFRESH_MS 30000
#define HOSTS_RECENT_MS 1000
#define TAGS_TIMEOUT_MS 3000

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void drop_listing(struct upstream_host *h)
{
    for (size_t i = 0; i < h->n_models; i++)
        free(h->models[i]);
    free(h->models);
    h->models = NULL;
    h->n_models = 0;
}

int hosts_take_tags(struct upstream *up, size_t host, const char *body, size_t len)
{
    struct upstream_host *h = &up->hosts[host];
    struct json_object *tags, *models;
    struct apierr ignored;
    size_t n;

    tags = body ? jsonx_parse(body, len, &ignored) : NULL;
    if (!tags || !json_object_is_type(tags, json_type_object) || !json_object_object_get_ex(tags, "models", &models) ||
        !json_object_is_type(models, json_type_array)) {
        json_object_put(tags);
        return -1;
    }
    drop_listing(h);
    n = json_object_array_length(models);
    h->models = xcalloc(n ? n : 1, sizeof *h->models);
    for (size_t i = 0; i < n; i++) {
        const char *name = models_name(json_object_array_get_idx(models, i));

        if (name)
            h->models[h->n_models++] = xstrdup(name);
    }
    h->listed = 1;
    json_object_put(tags);
    return 0;
}

static void ask_tags(struct upstream *up, size_t host)
{
    struct upstream_result r;
    struct buf body;

    buf_init(&body);
    upstream_result_init(&r);
    up->hosts[host].listed_ms = now_ms();
    if (upstream_fetch(up, host, "/api/tags", NULL, TAGS_TIMEOUT_MS, &body, &r) < 0 || r.status >= 500)
        metrics_host_failed(host);
    else if (r.status == 200)
        hosts_take_tags(up, host, body.data, body.len);
    buf_free(&body);
    upstream_result_free(&r);
}

void hosts_refresh(struct upstream *up, int recent)
{
    long long now = now_ms(), age = recent ? HOSTS_RECENT_MS : HOSTS_REFRESH_MS;

    if (up->n_hosts < 2)
        return;
    for (size_t i = 0; i < up->n_hosts; i++)
        if ((!up->hosts[i].listed_ms || now - up->hosts[i].listed_ms >= age) && !metrics_host_backing_off(i))
            ask_tags(up, i);
}

int hosts_has(const struct upstream *up, size_t host, const char *model)
{
    const struct upstream_host *h = &up->hosts[host];

    if (up->n_hosts < 2 || !h->listed)
        return 1;
    for (size_t i = 0; i < h->n_models; i++)
        if (config_same_model(model, h->models[i]))
            return 1;
    return 0;
}

int hosts_any_has(const struct upstream *up, const char *model)
{
    for (size_t i = 0; i < up->n_hosts; i++)
        if (hosts_has(up, i, model))
            return 1;
    return 0;
}

size_t hosts_order(const struct upstream *up, const char *model, uint64_t key, size_t *order)
{
    size_t n = 0, usable = 0, tail[CONFIG_MAX_HOSTS], n_tail = 0;

    for (size_t i = 0; i < up->n_hosts; i++)
        if (hosts_has(up, i, model))
            order[n++] = i;
    affinity_order(key, model, up->cfg->hosts, order, n);
    /* Hosts backing off go last, in their order: tried only when every other failed too. */
    for (size_t i = 0; i < n; i++) {
        if (metrics_host_backing_off(order[i]))
            tail[n_tail++] = order[i];
        else
            order[usable++] = order[i];
    }
    memcpy(order + usable, tail, n_tail * sizeof *tail);
    return n;
}

void hosts_forget(struct upstream *up, size_t host)
{
    up->hosts[host].listed_ms = 0;
}
