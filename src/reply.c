/* reply.c -- what goes back to the web server: status lines, headers, JSON bodies and errors in the
 * client's dialect, and a stream's events flushed one at a time. */
#include "reply.h"

#include <stdio.h>
#include <string.h>

#include "jsonx.h"

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Overloaded";
    }
    return "Unknown";
}

void reply_init(struct reply *r, FCGX_Stream *out, const char *request_id)
{
    memset(r, 0, sizeof *r);
    r->out = out;
    r->request_id = request_id;
}

static int check(struct reply *r)
{
    /* libfcgi's error is sticky while later writes may still look successful: ask every time. */
    if (FCGX_GetError(r->out) != 0)
        r->gone = 1;
    return r->gone ? -1 : 0;
}

int reply_headers(struct reply *r, int status, const char *content_type, const char *extra)
{
    if (r->headers_sent)
        return check(r);
    r->headers_sent = 1;
    r->status = status;
    FCGX_FPrintF(r->out, "Status: %d %s\r\nrequest-id: %s\r\nx-request-id: %s\r\n", status, reason(status),
                 r->request_id, r->request_id);
    if (content_type)
        FCGX_FPrintF(r->out, "Content-Type: %s\r\n", content_type);
    if (extra)
        FCGX_PutS(extra, r->out);
    FCGX_PutS("\r\n", r->out);
    return check(r);
}

int reply_body(struct reply *r, int status, const char *content_type, const char *body, size_t len)
{
    char extra[64];

    snprintf(extra, sizeof extra, "Content-Length: %zu\r\n", len);
    if (reply_headers(r, status, content_type, extra) < 0)
        return -1;
    if (len)
        FCGX_PutStr(body, (int)len, r->out);
    return check(r);
}

int reply_json(struct reply *r, int status, struct json_object *o)
{
    struct buf text;
    int rc;

    /* Written by jsonx_write, which turns any invalid UTF-8 from Ollama into U+FFFD. */
    buf_init(&text);
    jsonx_write(&text, o);
    rc = reply_body(r, status, "application/json", text.data, text.len);
    buf_free(&text);
    return rc;
}

int reply_error(struct reply *r, const struct dialect *d, const struct apierr *e)
{
    struct buf body;
    int status = chat_error_status(d, e), rc;
    char extra[160], wait[48] = "";

    buf_init(&body);
    d->error_body(d, e, r->request_id, &body);
    /* Anthropic's and OpenAI's SDKs retry what the server says is worth retrying, after retry-after. */
    if (e->retry_after > 0)
        snprintf(wait, sizeof wait, "retry-after: %d\r\n", e->retry_after);
    snprintf(extra, sizeof extra, "x-should-retry: %s\r\n%sContent-Length: %zu\r\n",
             status >= 500 || status == 429 || status == 408 ? "true" : "false", wait, body.len);
    rc = reply_headers(r, status, "application/json", extra);
    if (rc == 0) {
        FCGX_PutStr(body.data, (int)body.len, r->out);
        rc = check(r);
    }
    buf_free(&body);
    return rc;
}

/* The headers go out with the first bytes of a stream, in the same flush. */
int reply_put(struct reply *r, const char *content_type, const char *bytes, size_t len)
{
    /* X-Accel-Buffering: nginx streams this response even where fastcgi_buffering is on. */
    if (r->gone || reply_headers(r, 200, content_type, "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n") < 0)
        return -1;
    if (FCGX_PutStr(bytes, (int)len, r->out) < 0)
        r->gone = 1;
    return check(r);
}

int reply_flush(struct reply *r)
{
    if (!r->gone && FCGX_FFlush(r->out) < 0)
        r->gone = 1;
    return check(r);
}
