/* apierr.h -- a dialect-neutral API error: what went wrong, with which status; each dialect renders it. */
#ifndef OF_APIERR_H
#define OF_APIERR_H

enum apierr_kind {
    APIERR_NONE = 0,
    APIERR_INVALID_REQUEST,   /* 400 */
    APIERR_AUTHENTICATION,    /* 401 */
    APIERR_PERMISSION,        /* 403 */
    APIERR_NOT_FOUND,         /* 404 */
    APIERR_TOO_LARGE,         /* 413 */
    APIERR_RATE_LIMIT,        /* 429 */
    APIERR_API,               /* 500, 502: the adapter or Ollama failed */
    APIERR_TIMEOUT,           /* 504 */
    APIERR_OVERLOADED,        /* Ollama's queue is full: 529 (Anthropic) or 503 (OpenAI) */
    APIERR_N
};

struct apierr {
    enum apierr_kind kind;
    int status;               /* the HTTP status, chosen by whoever sets the error */
    char message[1024];
    char param[128];          /* the offending field, "" when none */
    const char *code;         /* OpenAI's error code (e.g. "model_not_found"), or NULL */
    int retry_after;          /* seconds the client should wait before trying again (a retry-after header), or 0 */
};

void apierr_set(struct apierr *e, enum apierr_kind kind, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A 400 naming the field at fault. */
void apierr_field(struct apierr *e, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
