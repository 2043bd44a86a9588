/* upstream.c -- the one libcurl handle a worker keeps to Ollama: streamed chat POSTs whose bytes go to a
 * handler as they arrive, small GETs and POSTs, and aborts when the client is gone or Ollama stalls.
 *
 * Transfers run through a multi handle the worker drives itself, so that it wakes when the client hangs
 * up, ticks on time for pings, and can stop a reply that Ollama keeps open after its last line. */
#include "upstream.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#define MAX_ERROR_BODY (64u * 1024)
#define MAX_FETCH_BODY (8u * 1024 * 1024)
/* After Ollama's last line, how long the end of its chunked body may take before the connection is
 * dropped instead of kept. */
#define DONE_GRACE_MS 50

#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR 0xFFFFFFFF
#endif

struct transfer {
    struct upstream *up;
    struct upstream_host *at;     /* the host called */
    const struct upstream_handler *h;
    struct upstream_result *r;
    struct buf *out;              /* upstream_fetch: the whole body */
    int checked_status;
    int done;                     /* the handler has the whole reply */
    long long done_at;
    long long last_data;          /* when Ollama last sent anything, for IDLE_TIMEOUT */
};

static long long now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int host_init(struct upstream *up, struct upstream_host *at)
{
    at->curl = curl_easy_init();
    if (!at->curl)
        return -1;
    curl_easy_setopt(at->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(at->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(at->curl, CURLOPT_HTTPHEADER, up->json_headers);
    curl_easy_setopt(at->curl, CURLOPT_ERRORBUFFER, at->error);
    return 0;
}

int upstream_init(struct upstream *up, const struct config *cfg)
{
    memset(up, 0, sizeof *up);
    up->cfg = cfg;
    up->multi = curl_multi_init();
    if (!up->multi)
        return -1;
    up->json_headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip for big bodies. */
    up->json_headers = curl_slist_append(up->json_headers, "Expect:");
    if (!up->json_headers)
        return -1;
    up->hosts = xcalloc(cfg->n_hosts, sizeof *up->hosts);
    up->n_hosts = cfg->n_hosts;
    for (size_t i = 0; i < up->n_hosts; i++)
        if (host_init(up, &up->hosts[i]) < 0)
            return -1;
    return 0;
}

void upstream_free(struct upstream *up)
{
    if (up->multi)
        curl_multi_cleanup(up->multi);
    for (size_t i = 0; i < up->n_hosts; i++) {
        if (up->hosts[i].curl)
            curl_easy_cleanup(up->hosts[i].curl);
        for (size_t m = 0; m < up->hosts[i].n_models; m++)
            free(up->hosts[i].models[m]);
        free(up->hosts[i].models);
    }
    free(up->hosts);
    curl_slist_free_all(up->json_headers);
    memset(up, 0, sizeof *up);
}

void upstream_result_init(struct upstream_result *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->error_body);
}

void upstream_result_free(struct upstream_result *r)
{
    buf_free(&r->error_body);
}

/* Options that do not change between requests are set once per worker, in upstream_init: a
 * curl_easy_reset and a fresh set-up per request cost more than the rest of a small request. */
static void set_common(struct upstream *up, size_t host, const char *path, struct transfer *t)
{
    char url[2048];

    t->at = &up->hosts[host < up->n_hosts ? host : 0];
    snprintf(url, sizeof url, "%s%s", up->cfg->hosts[t->at - up->hosts], path);
    curl_easy_setopt(t->at->curl, CURLOPT_URL, url);
    curl_easy_setopt(t->at->curl, CURLOPT_WRITEDATA, t);
    /* The handle is reused: a method one request named must not stay for the next. */
    curl_easy_setopt(t->at->curl, CURLOPT_CUSTOMREQUEST, NULL);
    t->at->error[0] = '\0';
}

/* The reply's status and type, known once its head came. */
static void note_status(struct transfer *t)
{
    const char *type = NULL;

    curl_easy_getinfo(t->at->curl, CURLINFO_RESPONSE_CODE, &t->r->status);
    curl_easy_getinfo(t->at->curl, CURLINFO_CONTENT_TYPE, &type);
    snprintf(t->r->content_type, sizeof t->r->content_type, "%s", type ? type : "");
    t->checked_status = 1;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct transfer *t = userp;
    size_t n = size * nmemb;
    int rc;

    t->last_data = now_ms();
    if (!t->checked_status)
        note_status(t);
    if (t->out) {
        if (t->out->len + n > MAX_FETCH_BODY)
            return CURL_WRITEFUNC_ERROR;
        buf_append(t->out, data, n);
        return n;
    }
    if (t->r->status < 200 || t->r->status >= 300) {
        if (t->r->error_body.len < MAX_ERROR_BODY)
            buf_append(&t->r->error_body, data, n < MAX_ERROR_BODY - t->r->error_body.len ? n
                                                                                   : MAX_ERROR_BODY - t->r->error_body.len);
        return n;
    }
    if (t->done)
        return n;
    rc = t->h->on_data(t->h->ctx, data, n);
    if (rc == UPSTREAM_ABORT) {
        t->r->aborted = 1;
        return CURL_WRITEFUNC_ERROR;
    }
    if (rc == UPSTREAM_DONE) {
        t->done = 1;
        t->done_at = t->last_data;
    }
    return n;
}

/* The wait's length: until the next tick, or sooner when the grace after the last line runs out. */
static int wait_ms(const struct transfer *t, long long now)
{
    long long left;

    if (!t->done)
        return UPSTREAM_TICK_MS;
    left = t->done_at + DONE_GRACE_MS - now;
    return left < 0 ? 0 : left > UPSTREAM_TICK_MS ? UPSTREAM_TICK_MS : (int)left;
}

/* Drives the transfer set up on the host's handle to its end. Returns its CURLcode. */
static CURLcode run(struct upstream *up, struct transfer *t)
{
    const struct upstream_handler *h = t->h;
    long long idle_ms = up->cfg->idle_timeout * 1000LL;
    struct curl_waitfd watch = { h ? h->watch_fd : -1, CURL_WAIT_POLLIN, 0 };
    CURLcode code = CURLE_OK;
    CURLMsg *msg;
    int running = 1, left;

    t->last_data = now_ms();
    if (curl_multi_add_handle(up->multi, t->at->curl) != CURLM_OK)
        return CURLE_FAILED_INIT;
    for (;;) {
        long long now;

        if (curl_multi_perform(up->multi, &running) != CURLM_OK) {
            code = CURLE_RECV_ERROR;
            break;
        }
        if (!running)
            break;
        now = now_ms();
        if (t->done && now >= t->done_at + DONE_GRACE_MS)
            break;
        if (!t->done && idle_ms > 0 && now - t->last_data >= idle_ms) {
            t->r->idle = 1;
            code = CURLE_OPERATION_TIMEDOUT;
            break;
        }
        watch.revents = 0;
        curl_multi_wait(up->multi, watch.fd >= 0 ? &watch : NULL, watch.fd >= 0 ? 1 : 0, wait_ms(t, now), NULL);
        if (h && h->on_tick && h->on_tick(h->ctx, watch.revents != 0)) {
            t->r->aborted = 1;
            break;
        }
        /* Readable without a hang-up (the web server sent something more): look at it on ticks only. */
        if (watch.revents)
            watch.fd = -1;
    }
    while ((msg = curl_multi_info_read(up->multi, &left)))
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == t->at->curl)
            code = msg->data.result;
    /* Removing an unfinished transfer closes its connection: Ollama sees the hang-up and stops. */
    curl_multi_remove_handle(up->multi, t->at->curl);
    if (!t->checked_status)
        note_status(t);
    return t->r->aborted || t->done ? CURLE_OK : code;
}

static int finish(struct upstream *up, const struct transfer *t, struct upstream_result *r, CURLcode code)
{
    r->code = code;
    if (code == CURLE_OK)
        return 0;
    if (r->idle)
        snprintf(r->message, sizeof r->message, "Ollama sent nothing for %lds (IDLE_TIMEOUT)", up->cfg->idle_timeout);
    else
        snprintf(r->message, sizeof r->message, "%s", t->at->error[0] ? t->at->error : curl_easy_strerror(code));
    return -1;
}

int upstream_chat(struct upstream *up, size_t host, const char *body, size_t len, const struct upstream_handler *h,
                  struct upstream_result *r)
{
    return upstream_stream(up, host, "POST", "/api/chat", body, len, h, r);
}

int upstream_stream(struct upstream *up, size_t host, const char *method, const char *path, const char *body, size_t len,
                    const struct upstream_handler *h, struct upstream_result *r)
{
    struct transfer t = { .up = up, .h = h, .r = r };
    CURL *curl;

    set_common(up, host, path, &t);
    curl = t.at->curl;
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    /* DELETE with a body (Ollama's /api/delete) is a POST under another name. */
    if (strcmp(method, "POST") != 0 && strcmp(method, "GET") != 0)
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, up->cfg->connect_timeout * 1000L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, up->cfg->upstream_timeout * 1000L);
    return finish(up, &t, r, run(up, &t));
}

int upstream_fetch(struct upstream *up, size_t host, const char *path, const char *body, long timeout_ms,
                   struct buf *out, struct upstream_result *r)
{
    struct transfer t = { .up = up, .r = r, .out = out };
    CURL *curl;

    set_common(up, host, path, &t);
    curl = t.at->curl;
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(curl, CURLOPT_POST, 1L);
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < up->cfg->connect_timeout * 1000L ? timeout_ms : up->cfg->connect_timeout * 1000L);
    return finish(up, &t, r, run(up, &t));
}
