/* routes.c -- the routes besides the chat dialects: Ollama's model list in a dialect's shape, health, metrics,
 * and the probes and telemetry posts clients send. */
#include "routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "body.h"
#include "jsonx.h"
#include "metrics.h"
#include "listen.h"
#include "models.h"

#define TAGS_TIMEOUT_MS 10000
#define HEALTH_TIMEOUT_MS 2000

static int listed(struct json_object *models, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(models); i++) {
        const char *n = models_name(json_object_array_get_idx(models, i));

        if (n && strcmp(n, name) == 0)
            return 1;
    }
    return 0;
}

/* The models of every host that answers /api/tags, each name once (the first host's entry), as one /api/tags
 * body: new, the caller puts it. NULL with e set when no host answered. */
static struct json_object *all_tags(struct request *rq, struct apierr *e)
{
    struct json_object *all = NULL, *models = NULL, *tags, *list;
    struct upstream_result r;
    struct buf body;

    for (size_t h = 0; h < rq->w->up.n_hosts; h++) {
        buf_init(&body);
        upstream_result_init(&r);
        if (upstream_fetch(&rq->w->up, h, "/api/tags", NULL, TAGS_TIMEOUT_MS, &body, &r) < 0)
            apierr_set(e, APIERR_API, 502, "cannot reach Ollama at %s: %s", rq->w->cfg->hosts_shown[h], r.message);
        else if (r.status != 200 || !(tags = body.data ? jsonx_parse(body.data, body.len, e) : NULL))
            apierr_set(e, APIERR_API, 502, "Ollama's /api/tags answered HTTP %ld", r.status);
        else if (!all)
            all = tags;
        else {
            if (!models && !json_object_object_get_ex(all, "models", &models))
                models = NULL;
            if (models && json_object_is_type(models, json_type_array) &&
                json_object_object_get_ex(tags, "models", &list) && json_object_is_type(list, json_type_array))
                for (size_t i = 0; i < json_object_array_length(list); i++) {
                    struct json_object *m = json_object_array_get_idx(list, i);
                    const char *name = models_name(m);

                    if (name && !listed(models, name))
                        json_object_array_add(models, json_object_get(m));
                }
            json_object_put(tags);
        }
        buf_free(&body);
        upstream_result_free(&r);
    }
    return all;
}

/* Ollama's list as the key sees it: the models it may not use are left out of tags (which is changed). */
static void only_allowed(struct json_object *tags, const struct key_entry *key)
{
    struct json_object *list, *name;

    if (!key || !key->models || !json_object_object_get_ex(tags, "models", &list) ||
        !json_object_is_type(list, json_type_array))
        return;
    for (size_t i = json_object_array_length(list); i-- > 0;) {
        struct json_object *model = json_object_array_get_idx(list, i);

        if (!(json_object_object_get_ex(model, "name", &name) || json_object_object_get_ex(model, "model", &name)) ||
            !json_object_is_type(name, json_type_string) ||
            !keys_allow_model(key, json_object_get_string(name)))
            json_object_array_del_idx(list, i, 1);
    }
}

void routes_models(struct request *rq, const struct dialect_match *m)
{
    const struct dialect *d = m->d;
    const char *id = rq->path_model[0] ? rq->path_model : NULL;
    struct json_object *tags, *o = NULL;
    struct apierr e;

    tags = all_tags(rq, &e);
    if (!tags) {
        request_send_error(rq, d, &e);
        goto out;
    }
    only_allowed(tags, rq->key);
    o = d->models(tags, id);
    if (!o) {
        apierr_set(&e, APIERR_NOT_FOUND, 404, "model '%s' not found in Ollama", id);
        e.code = "model_not_found";
        request_send_error(rq, d, &e);
        goto out;
    }
    reply_json(&rq->reply, 200, o);
out:
    json_object_put(o);
    json_object_put(tags);
}

/* One host: whether it answers /api/tags, with its models, into o; 1 when it is up. */
static int health_of_host(struct request *rq, size_t h, struct json_object *o)
{
    struct upstream_result r;
    struct json_object *tags = NULL, *list, *names = json_object_new_array();
    struct buf body;
    struct apierr ignored;
    char reason[512] = "";
    long long backoff = metrics_host_backoff_left(h);

    buf_init(&body);
    upstream_result_init(&r);
    json_object_object_add(o, "url", json_object_new_string(rq->w->cfg->hosts_shown[h]));
    if (upstream_fetch(&rq->w->up, h, "/api/tags", NULL, HEALTH_TIMEOUT_MS, &body, &r) < 0)
        snprintf(reason, sizeof reason, "cannot reach Ollama: %s", r.message);
    else if (r.status != 200 || !(tags = jsonx_parse(body.data ? body.data : "", body.len, &ignored)) ||
             !json_object_object_get_ex(tags, "models", &list) || !json_object_is_type(list, json_type_array))
        snprintf(reason, sizeof reason, "Ollama's /api/tags answered HTTP %ld", r.status);
    else
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            const char *name = models_name(json_object_array_get_idx(list, i));

            if (name)
                json_object_array_add(names, json_object_new_string(name));
        }
    json_object_object_add(o, "status", json_object_new_string(reason[0] ? "down" : "up"));
    json_object_object_add(o, "models", names);
    if (reason[0])
        json_object_object_add(o, "error", json_object_new_string(reason));
    /* What the pool does with it now: after a failure, every worker leaves it alone for a while. */
    if (backoff > 0)
        json_object_object_add(o, "backoff_ms", json_object_new_int64(backoff));
    json_object_put(tags);
    buf_free(&body);
    upstream_result_free(&r);
    return !reason[0];
}

/* Every host, up or down, with its models: 200 while one is up, 503 with each one's reason when none is. */
static void health_of_hosts(struct request *rq)
{
    struct json_object *o = json_object_new_object(), *hosts = json_object_new_array();
    int up = 0;

    for (size_t h = 0; h < rq->w->up.n_hosts; h++) {
        struct json_object *one = json_object_new_object();

        up += health_of_host(rq, h, one);
        json_object_array_add(hosts, one);
    }
    json_object_object_add(o, "status", json_object_new_string(up ? "ok" : "unavailable"));
    json_object_object_add(o, "hosts", hosts);
    if (!up)
        json_object_object_add(o, "error", json_object_new_string("no Ollama host answers"));
    reply_json(&rq->reply, up ? 200 : 503, o);
    json_object_put(o);
}

/* Whether Ollama answers, and which version; 503 with the reason when it does not. */
static void health_in_full(struct request *rq)
{
    struct upstream_result r;
    struct json_object *o = json_object_new_object(), *ollama = json_object_new_object(), *v, *ver = NULL;
    struct buf body;
    struct apierr ignored;

    buf_init(&body);
    upstream_result_init(&r);
    json_object_object_add(ollama, "url", json_object_new_string(rq->w->cfg->ollama_url_shown));
    if (upstream_fetch(&rq->w->up, 0, "/api/version", NULL, HEALTH_TIMEOUT_MS, &body, &r) == 0 && r.status == 200 &&
        (ver = jsonx_parse(body.data ? body.data : "", body.len, &ignored)) &&
        json_object_object_get_ex(ver, "version", &v)) {
        json_object_object_add(o, "status", json_object_new_string("ok"));
        json_object_object_add(ollama, "version", json_object_get(v));
        json_object_object_add(o, "ollama", ollama);
        reply_json(&rq->reply, 200, o);
    } else {
        char reason[512];

        if (r.code != CURLE_OK)
            snprintf(reason, sizeof reason, "cannot reach Ollama: %s", r.message);
        else
            snprintf(reason, sizeof reason, "Ollama's /api/version answered HTTP %ld", r.status);
        json_object_object_add(o, "status", json_object_new_string("unavailable"));
        json_object_object_add(o, "ollama", ollama);
        json_object_object_add(o, "error", json_object_new_string(reason));
        reply_json(&rq->reply, 503, o);
    }
    json_object_put(ver);
    json_object_put(o);
    buf_free(&body);
    upstream_result_free(&r);
}

void routes_health(struct request *rq)
{
    static const char up[] = "{\"status\":\"ok\"}";

    /* Open to load balancers, which hold no key: they learn that the adapter is up, and nothing else. */
    if (!request_authorized(rq, NULL)) {
        reply_body(&rq->reply, 200, "application/json", up, sizeof up - 1);
        return;
    }
    if (rq->w->up.n_hosts > 1)
        health_of_hosts(rq);
    else
        health_in_full(rq);
}

void routes_root(struct request *rq)
{
    static const char text[] = "ollama-fcgi is running\n";

    reply_body(&rq->reply, 200, "text/plain; charset=utf-8", text, sizeof text - 1);
}

void routes_no_content(struct request *rq)
{
    body_drain(rq);
    reply_headers(&rq->reply, 204, NULL, NULL);
}

void routes_metrics(struct request *rq)
{
    struct buf out;

    buf_init(&out);
    metrics_render(&out, listen_queue(rq->w->listen_fd));
    if (rq->w->cfg->n_hosts > 1)
        metrics_render_hosts(&out, (const char *const *)rq->w->cfg->hosts_shown, rq->w->cfg->n_hosts);
    reply_body(&rq->reply, 200, "text/plain; version=0.0.4; charset=utf-8", out.data ? out.data : "", out.len);
    buf_free(&out);
}
