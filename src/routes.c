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

#define TAGS_TIMEOUT_MS 10000
#define HEALTH_TIMEOUT_MS 2000

void routes_models(struct request *rq, const struct dialect_match *m)
{
    const struct dialect *d = m->d;
    const char *id = rq->path_model[0] ? rq->path_model : NULL;
    struct upstream_result r;
    struct json_object *tags = NULL, *o = NULL;
    struct buf body;
    struct apierr e;

    buf_init(&body);
    upstream_result_init(&r);
    if (upstream_fetch(&rq->w->up, "/api/tags", NULL, TAGS_TIMEOUT_MS, &body, &r) < 0) {
        apierr_set(&e, APIERR_API, 502, "cannot reach Ollama at %s: %s", rq->w->cfg->ollama_url_shown, r.message);
        request_send_error(rq, d, &e);
        goto out;
    }
    tags = body.data ? jsonx_parse(body.data, body.len, &e) : NULL;
    if (r.status != 200 || !tags) {
        apierr_set(&e, APIERR_API, 502, "Ollama's /api/tags answered HTTP %ld", r.status);
        request_send_error(rq, d, &e);
        goto out;
    }
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
    buf_free(&body);
    upstream_result_free(&r);
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
    if (upstream_fetch(&rq->w->up, "/api/version", NULL, HEALTH_TIMEOUT_MS, &body, &r) == 0 && r.status == 200 &&
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
    reply_body(&rq->reply, 200, "text/plain; version=0.0.4; charset=utf-8", out.data ? out.data : "", out.len);
    buf_free(&out);
}
