/* accesslog.h -- one line per request, to stderr (the web server's error log) or LOG_FILE. */
#ifndef OF_ACCESSLOG_H
#define OF_ACCESSLOG_H

struct access_entry {
    const char *request_id;
    const char *method;
    const char *path;
    const char *model;            /* as the client asked, or "-" */
    const char *upstream_model;   /* as sent to Ollama, or "-" */
    int status;
    double duration_ms;
    double ttft_ms;               /* time to the first token, -1 when none */
    long long input_tokens;
    long long output_tokens;
    const char *outcome;          /* ok, client_gone, upstream_error, rejected */
    unsigned text_tool_calls;     /* the textcall formats of tool calls recovered from the reply's text */
    const char *dropped;          /* block types of the request nothing could be made of, or NULL */
    int cache_said;               /* Ollama said how much of the prompt its cache read: cached_tokens */
    long long cached_tokens;
    const char *host;             /* the Ollama host that answered, when OLLAMA_BASE_URL names several, or NULL */
    const char *key;              /* the name of the key it carried, or NULL when the pool needs none */
};

/* Returns 0, or -1 when LOG_FILE cannot be opened. */
int accesslog_open(const char *path);
void accesslog_write(const struct access_entry *e);
/* A line for the operator among the requests' (the pool at its limit): time, "warning", the words. */
void accesslog_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
