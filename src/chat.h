/* chat.h -- what the two dialects share: the neutral request, the Ollama request assembly, the stream
 * driver that turns Ollama lines into neutral events for a dialect, and the collector for whole replies. */
#ifndef OF_CHAT_H
#define OF_CHAT_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierr.h"
#include "buf.h"
#include "config.h"
#include "sse.h"
#include "stopseq.h"

/* The pieces of an Ollama /api/chat request, filled by a dialect's translator. All owned. */
struct ollama_parts {
    struct json_object *messages;  /* array */
    struct json_object *tools;     /* array or NULL */
    struct json_object *options;   /* object */
    struct json_object *think;     /* boolean or level string, or NULL for "not said" */
    struct json_object *format;    /* "json", a schema, or NULL */
};

struct chat_request {
    struct ollama_parts parts;
    char *client_model;            /* owned: the model the client named; replies carry it */
    char *ollama_model;            /* owned: after MODEL_MAP */
    int stream;                    /* the client wants SSE */
    char **stop;                   /* owned: stop sequences matched by the adapter */
    size_t n_stop;
    int include_usage;             /* OpenAI stream_options.include_usage */
    long long estimated_tokens;    /* the prompt's size, estimated before the call */
    long long window;              /* the context window the request is sent with, 0 if unknown */
    char id[64];                   /* msg_… or chatcmpl-…, set by the caller */
    long long created;             /* unix time, set by the caller */
};

/* What Ollama's /api/show taught us about a model. */
struct model_facts {
    int known;
    int can_think;
    long long context_length;      /* 0 when not said */
};

void chat_request_init(struct chat_request *req);
void chat_request_free(struct chat_request *req);
/* THINK_MODELS: when the client did not say, models listed there think and others do not (Ollama would
 * otherwise turn thinking on by itself for every model that can). */
void chat_default_think(struct chat_request *req, const struct config *cfg);
/* Applies the model's facts: no think for a model that cannot, num_ctx capped at its own length and
 * the same for every request to that model. */
void chat_apply_facts(struct chat_request *req, const struct model_facts *f, const struct config *cfg);
void chat_drop_think(struct chat_request *req);
/* Ollama would silently drop the start of a conversation longer than its window; refuse it instead,
 * in the words Claude Code answers by compacting. Returns 0, or -1 with a 400 in err. */
int chat_check_window(const struct chat_request *req, struct apierr *err);
int chat_think_requested(const struct chat_request *req);
/* The /api/chat body, always streamed from Ollama (even for a whole reply: stop sequences and client
 * disconnects can then end the generation early). Keys in one fixed order, so the same conversation
 * prefix gives the same bytes. The caller puts the result. */
struct json_object *chat_ollama_body(const struct chat_request *req, const struct config *cfg);
/* A new Ollama message {"role": role}; the caller adds the content and owns it. */
struct json_object *chat_message(const char *role);
/* Appends a JSON string's text to b, after a newline when b holds text already. */
void chat_join_text(struct buf *b, struct json_object *str);
/* An Ollama function tool. Borrows name and description (may be NULL); takes parameters. */
struct json_object *chat_function_tool(struct json_object *name, struct json_object *description,
                                       struct json_object *parameters);
/* Places a system text that comes in the middle of a conversation (Claude Code's role "system" entries,
 * an OpenAI system or developer message after the first turn) where it stands. */
void chat_place_system(struct json_object *messages, const char *text, size_t len);
/* Stop sequences from a JSON string or array of strings (empty strings ignored). */
int chat_set_stop(struct chat_request *req, struct json_object *v, const char *field, size_t max,
                  struct apierr *err);

/* How a reply ended, in neutral words the dialects map. */
struct chat_finish {
    const char *reason;            /* "stop", "length", "tool_calls" or "stop_sequence" */
    const char *stop_sequence;     /* the sequence matched, or NULL */
    long long input_tokens;
    long long output_tokens;
};

/* A dialect's stream machine. Each returns 0, or -1 once the client is gone. */
struct stream_ops {
    int (*begin)(void *st);
    int (*thinking)(void *st, const char *s, size_t n);
    int (*text)(void *st, const char *s, size_t n);
    int (*tool_call)(void *st, const char *id, const char *name, const char *args, size_t args_len);
    int (*finish)(void *st, const struct chat_finish *f);
    int (*error)(void *st, const struct apierr *e);
    int (*ping)(void *st);
};

enum { CHAT_GONE = -1, CHAT_MORE = 0, CHAT_DONE = 1 };

struct chat_stream {
    const struct chat_request *req;
    const struct stream_ops *ops;
    void *st;
    struct json_tokener *tok;
    struct stopseq stop;
    const char *tool_prefix;
    int begun;
    int ended;                     /* finish or error sent */
    int saw_done;                  /* Ollama's last line came: nothing left to stop */
    int failed;                    /* the reply ended with an error */
    int n_tools;
    long long output_tokens;
    long long prompt_tokens;       /* -1 until Ollama says */
    struct buf scratch;
};

void chat_stream_init(struct chat_stream *cs, const struct chat_request *req, const struct stream_ops *ops,
                      void *st, const char *tool_prefix);
void chat_stream_free(struct chat_stream *cs);
int chat_stream_begin(struct chat_stream *cs);
/* One NDJSON line from Ollama (without its newline). CHAT_DONE means stop reading: the reply is
 * complete (a stop sequence matched, or an error was sent). */
int chat_stream_line(struct chat_stream *cs, const char *line, size_t len);
/* Ollama's stream ended; an end without "done" is a failure the client must see. */
int chat_stream_eof(struct chat_stream *cs);
int chat_stream_fail(struct chat_stream *cs, const struct apierr *e);
int chat_stream_ping(struct chat_stream *cs);

/* A whole reply, collected through the same driver for non-streamed requests. */
struct chat_tool_call {
    char *id;
    char *name;
    char *args;                    /* JSON text of the arguments object */
};

struct chat_reply {
    struct buf thinking;
    struct buf text;
    struct chat_tool_call *calls;
    size_t n_calls;
    struct chat_finish finish;
    int finished;
    int failed;
    struct apierr err;
};

extern const struct stream_ops chat_collect_ops;   /* st is a struct chat_reply */
void chat_reply_init(struct chat_reply *r);
void chat_reply_free(struct chat_reply *r);

/* A dialect: its translator, its stream machine and its whole-reply and error renderings. */
struct dialect {
    const char *name;
    const char *tool_prefix;       /* for tool-call ids Ollama did not give */
    const char *id_prefix;         /* for reply ids */
    int overloaded_status;         /* Anthropic says 529, OpenAI 503 */
    int (*translate)(struct json_object *body, const struct config *cfg, struct chat_request *req,
                     struct apierr *err);
    void *(*stream_new)(const struct chat_request *req, struct sse_sink *sink);
    void (*stream_free)(void *st);
    const struct stream_ops *ops;
    /* The whole reply as JSON; the caller puts it. */
    struct json_object *(*reply)(const struct chat_request *req, const struct chat_reply *r);
    /* The error body in this dialect. */
    void (*error_body)(const struct apierr *e, const char *request_id, struct buf *out);
};

#endif
