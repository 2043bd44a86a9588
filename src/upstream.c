/* upstream.c -- the one libcurl handle a worker keeps to Ollama: streamed chat POSTs split into NDJSON
 * lines, small GETs and POSTs, and aborts when the client is gone. */
#include "upstream.h"

#include <stdio.h>
#include <string.h>

#define MAX_LINE (64u * 1024 * 1024)
#define MAX_ERROR_BODY (64u * 1024)

#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR 0xFFFFFFFF
#endif

struct transfer {
    struct upstream *up;
    const struct upstream_handler *h;
    struct upstream_result *r;
    struct buf partial;       /* an unfinished line, carried to the next write */
    int checked_status;
    int ignore_rest;
};

static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);

int upstream_init(struct upstream *up, const struct config *cfg)
{
    memset(up, 0, sizeof *up);
    up->cfg = cfg;
    up->curl = curl_easy_init();
    if (!up->curl)
        return -1;
    up->json_headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip for big bodies. */
    up->json_headers = curl_slist_append(up->json_headers, "Expect:");
    if (!up->json_headers)
        return -1;
    curl_easy_setopt(up->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(up->curl, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(up->curl, CURLOPT_HTTPHEADER, up->json_headers);
    curl_easy_setopt(up->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    return 0;
}

void upstream_free(struct upstream *up)
{
    if (up->curl)
        curl_easy_cleanup(up->curl);
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
static void set_common(struct upstream *up, const char *path, struct upstream_result *r)
{
    char url[2048];

    snprintf(url, sizeof url, "%s%s", up->cfg->ollama_url, path);
    curl_easy_setopt(up->curl, CURLOPT_URL, url);
    curl_easy_setopt(up->curl, CURLOPT_ERRORBUFFER, r->message);
    r->message[0] = '\0';
}

static int deliver(struct transfer *t, const char *line, size_t len)
{
    int rc;

    if (t->ignore_rest)
        return 0;
    rc = t->h->on_line(t->h->ctx, line, len);
    if (rc == UPSTREAM_ABORT) {
        t->r->aborted = 1;
        return -1;
    }
    if (rc == UPSTREAM_IGNORE_REST)
        t->ignore_rest = 1;
    return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct transfer *t = userp;
    size_t n = size * nmemb, start = 0;

    if (!t->checked_status) {
        curl_easy_getinfo(t->up->curl, CURLINFO_RESPONSE_CODE, &t->r->status);
        t->checked_status = 1;
    }
    if (t->r->status < 200 || t->r->status >= 300) {
        if (t->r->error_body.len < MAX_ERROR_BODY)
            buf_append(&t->r->error_body, data, n);
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        if (data[i] != '\n')
            continue;
        if (t->partial.len) {
            buf_append(&t->partial, data + start, i - start);
            if (deliver(t, t->partial.data, t->partial.len) < 0)
                return CURL_WRITEFUNC_ERROR;
            buf_reset(&t->partial);
        } else if (deliver(t, data + start, i - start) < 0) {
            return CURL_WRITEFUNC_ERROR;
        }
        start = i + 1;
    }
    if (start < n) {
        if (t->partial.len + (n - start) > MAX_LINE) {
            snprintf(t->r->message, sizeof t->r->message, "Ollama sent a line longer than %u bytes", MAX_LINE);
            return CURL_WRITEFUNC_ERROR;
        }
        buf_append(&t->partial, data + start, n - start);
    }
    return n;
}

static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct transfer *t = userp;

    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    if (t->h->on_tick && t->h->on_tick(t->h->ctx) != 0) {
        t->r->aborted = 1;
        return 1;
    }
    return 0;
}

int upstream_chat(struct upstream *up, const char *body, size_t len, const struct upstream_handler *h,
                  struct upstream_result *r)
{
    struct transfer t = { up, h, r, { NULL, 0, 0 }, 0, 0 };
    CURLcode code;
    int rc = 0;

    set_common(up, "/api/chat", r);
    curl_easy_setopt(up->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(up->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(up->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(up->curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(up->curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(up->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(up->curl, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(up->curl, CURLOPT_CONNECTTIMEOUT_MS, up->cfg->connect_timeout * 1000L);
    curl_easy_setopt(up->curl, CURLOPT_TIMEOUT_MS, up->cfg->upstream_timeout * 1000L);
    code = curl_easy_perform(up->curl);
    if (!t.checked_status)
        curl_easy_getinfo(up->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->code = code;
    if (code == CURLE_OK && t.partial.len && r->status >= 200 && r->status < 300)
        deliver(&t, t.partial.data, t.partial.len);   /* a last line without its newline */
    if (code != CURLE_OK && !r->aborted) {
        if (!r->message[0])
            snprintf(r->message, sizeof r->message, "%s", curl_easy_strerror(code));
        rc = -1;
    }
    buf_free(&t.partial);
    return rc;
}

static size_t on_fetch_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct buf *out = userp;
    size_t n = size * nmemb;

    if (out->len + n > MAX_LINE)
        return CURL_WRITEFUNC_ERROR;
    buf_append(out, data, n);
    return n;
}

int upstream_fetch(struct upstream *up, const char *path, const char *body, long timeout_ms, struct buf *out,
                   struct upstream_result *r)
{
    CURLcode code;

    set_common(up, path, r);
    if (body) {
        curl_easy_setopt(up->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(up->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
        curl_easy_setopt(up->curl, CURLOPT_POST, 1L);
    } else {
        curl_easy_setopt(up->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(up->curl, CURLOPT_WRITEFUNCTION, on_fetch_write);
    curl_easy_setopt(up->curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(up->curl, CURLOPT_NOPROGRESS, 1L);
    curl_easy_setopt(up->curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(up->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < up->cfg->connect_timeout * 1000L ? timeout_ms : up->cfg->connect_timeout * 1000L);
    code = curl_easy_perform(up->curl);
    curl_easy_getinfo(up->curl, CURLINFO_RESPONSE_CODE, &r->status);
    r->code = code;
    if (code != CURLE_OK) {
        if (!r->message[0])
            snprintf(r->message, sizeof r->message, "%s", curl_easy_strerror(code));
        return -1;
    }
    return 0;
}
