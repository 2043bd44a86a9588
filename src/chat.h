/* chat.h -- what every dialect shares: the neutral request, the helpers its translator builds it with,
 * the Ollama request body, the whole reply, and the dialect table. */
#ifndef OF_CHAT_H
#define OF_CHAT_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierr.h"
#include "buf.h"
#include "config.h"
#include "wire.h"

/* Thinking this adapter sent without its text (Anthropic's display "omitted", a Responses reasoning
 * item's encrypted_content) comes back after this mark, as base64, and reaches Ollama again. */
#define CHAT_THINKING_MARK "ollama-fcgi:"

/* The pieces of an Ollama /api/chat request, filled by a dialect's translator. All owned. */
struct ollama_parts {
    struct json_object *messages;  /* array, complete once chat_close_messages ran */
    struct json_object *tools;     /* array or NULL */
    struct json_object *options;   /* object */
    struct json_object *think;     /* boolean or level string, or NULL for "not said" */
    struct json_object *format;    /* "json", a schema, or NULL */
};

/* One Ollama message being built. Everything in it is owned until chat_push hands it to the request. */
struct chat_msg {
    const char *role;              /* a string constant */
    struct buf text;
    struct buf thinking;
    struct json_object *images;    /* array of base64 strings, or NULL */
    struct json_object *calls;     /* array of Ollama tool calls, or NULL */
    struct json_object *tool_name;     /* string, or NULL */
    struct json_object *tool_call_id;  /* string, or NULL */
};

struct chat_request {
    struct ollama_parts parts;
    struct chat_msg last;          /* the newest message, still open to system text placed after it */
    int has_last;
    char *client_model;            /* owned: the model the client named; replies carry it */
    char *ollama_model;            /* owned: after MODEL_MAP */
    int stream;                    /* the client wants a stream */
    const struct wire *wire;       /* how it is framed: the dialect's, unless the request chose another */
    char **stop;                   /* owned: stop sequences matched by the adapter */
    size_t n_stop;
    int include_usage;             /* OpenAI stream_options.include_usage */
    int logprobs;                  /* OpenAI logprobs: Ollama's top-level "logprobs" */
    long long top_logprobs;        /* OpenAI top_logprobs, 0 when not asked */
    long long max_tokens;          /* what the client allows the reply, 0 when it did not say */
    unsigned text_calls;           /* the textcall formats to recover from the reply's text, 0 for none */
    int thinking_omitted;          /* the client wants thinking blocks without their text (display "omitted") */
    char dropped[96];              /* block types the request held that nothing could be made of, for the log */
    struct json_object *extra;     /* owned: what a dialect keeps from the request for its reply, or NULL */
    struct json_object *call_names;    /* owned: tool-call id -> tool name, for the results that answer them */
    size_t parse_budget;           /* what every parse of the client's JSON may take, body and tool calls'
                                    * arguments strings together (jsonx_parse_counted) */
    size_t parse_used;             /* what they took so far */
    long long raw_estimate;        /* the prompt's size as tokens_estimate counts it */
    long long estimated_tokens;    /* the same, scaled by what the model's real counts taught */
    long long window;              /* the context window the request is sent with, 0 if unknown */
    char id[64];                   /* msg_… or chatcmpl-…, set by the caller */
    long long created;             /* unix time, set by the caller */
};

/* What Ollama's /api/show taught us about a model, and what its replies taught since. */
struct model_facts {
    int known;
    int can_think;
    int think_levels;              /* think takes "low", "medium" or "high" (gpt-oss), not only a boolean */
    int can_see;                   /* "vision" among its capabilities: it reads images */
    long long context_length;      /* 0 when not said */
    double correction;             /* real prompt tokens / estimate; 1.0 until learned */
};

void chat_request_init(struct chat_request *req);
void chat_request_free(struct chat_request *req);

/* The request as its route saw it, for a translator: what the URL says beside the body. */
struct dialect_call {
    const struct dialect_route *route;
    const char *model;             /* the model named in the path (decoded), or NULL */
    const char *query;             /* the query string without its "?", or "" */
};

/* The start of every dialect's body: a JSON object naming a model (unless the path did), and maybe asking
 * for a stream (unless the route says). Sets client_model, ollama_model (after MODEL_MAP) and stream.
 * Returns 0, or -1 with err set. */
int chat_preamble(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                  struct chat_request *req, struct apierr *err);
/* The value of a query parameter (not decoded) into out, or -1 when the query does not have it. */
int chat_query_param(const char *query, const char *name, char *out, size_t size);
/* Fields Ollama has no use for are still type-checked, as the real APIs check them. */
struct chat_field {
    const char *name;
    enum json_type type;           /* json_type_int: a whole number; json_type_double: any finite number */
};
int chat_check_fields(struct json_object *body, const struct chat_field *fields, size_t n, struct apierr *err);
/* The fields that pass to Ollama's options under the same name (temperature, top_k, seed, ...). */
struct chat_option {
    const char *name;
    int integer;                   /* a whole number; otherwise any finite number */
    const char *ollama;            /* Ollama's name for it, when not the same ("topP" is "top_p"), else NULL */
};
/* Copies opts from body (whose path, for errors, is path: "" for the top level). */
int chat_copy_options(struct json_object *body, const char *path, const struct chat_option *opts, size_t n,
                      struct chat_request *req,
                      struct apierr *err);
/* The client's output limit, field (at least min), as Ollama's num_predict; *present says whether the
 * client gave it. Returns 0, or -1 with err set. */
int chat_max_tokens(struct json_object *body, const char *field, long long min, int *present,
                    struct chat_request *req, struct apierr *err);
/* Stop sequences from a JSON string or array of strings (empty strings ignored); at most max of them
 * and CHAT_MAX_STOP_BYTES in all, since every one is matched against every token. */
#define CHAT_MAX_STOP_BYTES 8192
int chat_set_stop(struct chat_request *req, struct json_object *v, const char *field, size_t max,
                  struct apierr *err);
/* THINK_MODELS: when the client did not say, models listed there think and others do not (Ollama would
 * otherwise turn thinking on by itself for every model that can). */
void chat_default_think(struct chat_request *req, const struct config *cfg);
void chat_drop_think(struct chat_request *req);
/* A block type that carried nothing the model could read was left out: noted for the access log. */
void chat_note_dropped(struct chat_request *req, const char *type);
int chat_think_requested(const struct chat_request *req);

/* ---- messages ---- */

/* Content that is a string or an array of objects ("blocks", "parts"): a string is appended to text;
 * each object of an array goes to each with its path ("messages.3.content.1"). Anything else, an array
 * member that is not an object included, is a 400 naming the field: "expected a string or an array of
 * <kind>s" or "expected a <kind>". Returns 0, or -1 with err set. */
int chat_each_block(struct json_object *content, const char *path, const char *kind, struct buf *text,
                    int (*each)(void *ctx, struct json_object *blk, const char *path), void *ctx, struct apierr *err);

/* Each member of a conversation list (messages, input) through one, with its path ("messages.3"); a
 * member that is not an object, or an empty list unless it may be empty, is a 400. Returns 0, or -1 with
 * err set. */
int chat_each_message(struct json_object *list, const char *field, int may_be_empty,
                      int (*one)(void *ctx, struct json_object *msg, const char *path), void *ctx, struct apierr *err);

/* A message's role (required) and content (optional, may be NULL), with the content's path for errors.
 * Returns 0, or -1 with err set. */
int chat_role_and_content(struct json_object *msg, const char *path, const char **role, struct json_object **content,
                          char *content_path, size_t size, struct apierr *err);
/* Whether a role is one whose text is system text: "system", or OpenAI's "developer". */
int chat_is_system_role(const char *role);

void chat_msg_init(struct chat_msg *m, const char *role);
void chat_msg_free(struct chat_msg *m);
/* Appends a JSON string's text, after a newline when the text is not empty. */
void chat_join_text(struct buf *b, struct json_object *str);
/* The same for n bytes of s. */
void chat_join_line(struct buf *b, const char *s, size_t n);
/* The "text" of each object in list (an array of parts; anything else holds none), joined the same way. */
void chat_join_texts(struct buf *b, struct json_object *list);
/* Borrows data (a base64 string). */
void chat_msg_image(struct chat_msg *m, struct json_object *data);
/* An Ollama tool call in m, whose id (when given) the request remembers for the result that answers it.
 * Borrows id (may be NULL) and name; takes arguments (an object). */
void chat_msg_call(struct chat_request *req, struct chat_msg *m, struct json_object *id, struct json_object *name,
                   struct json_object *arguments);
/* The name of the tool the call with this id called, or NULL. Borrowed. */
struct json_object *chat_call_name(const struct chat_request *req, const char *id);
/* m, a tool's result, answers the call with this id: it gets the call's tool name and the id, and becomes
 * the request's newest message. Borrows id. */
void chat_push_answer(struct chat_request *req, struct chat_msg *m, struct json_object *id);
/* Hands m to the request as its newest message; m is left empty. */
void chat_push(struct chat_request *req, struct chat_msg *m);
/* The newest message when it has this role, else a new empty one of the role: for dialects whose turns
 * come in pieces (the Responses API's reasoning, message and call items of one assistant turn). */
struct chat_msg *chat_open(struct chat_request *req, const char *role);
/* Places a system text that comes in the middle of a conversation (Claude Code's role "system" entries,
 * an OpenAI system or developer message after the first turn) where it stands. */
void chat_place_system(struct chat_request *req, const char *text, size_t len);
/* The conversation is complete: the newest message joins parts.messages. */
void chat_close_messages(struct chat_request *req);

/* ---- tools ---- */

enum chat_tool_choice { CHAT_TOOLS_AUTO, CHAT_TOOLS_NONE, CHAT_TOOLS_REQUIRED, CHAT_TOOLS_ONE };

/* Which of the client's tools reach Ollama. Ollama cannot force a call, so "required" offers them all
 * and a named tool is offered alone. */
struct chat_tools {
    enum chat_tool_choice choice;
    const char *only;              /* CHAT_TOOLS_ONE: the name, borrowed from the body */
    const char *only_field;        /* where the client named it, for the error when it is not offered */
    int found;
};

void chat_tools_init(struct chat_tools *t);
/* Offers one function tool unless the choice names another. Takes parameters (an object, or NULL for
 * none); description may be NULL. */
void chat_offer_tool(struct chat_request *req, struct chat_tools *t, const char *name,
                     struct json_object *description, struct json_object *parameters);
/* After the last tool: a named tool that is not there is the client's mistake, "none" offers nothing.
 * Returns 0, or -1 with err set. */
int chat_tools_done(struct chat_request *req, struct chat_tools *t, struct apierr *err);

/* ---- the Ollama request ---- */

/* Applies the model's facts: no think for a model that cannot, a think level only for a model that takes
 * levels (true for the others), num_ctx capped at its own length and the same for every request to that
 * model, the estimate scaled. */
void chat_apply_facts(struct chat_request *req, const struct model_facts *f, const struct config *cfg);
/* Ollama would silently drop the start of a conversation longer than its window; refuse it instead,
 * in the words Claude Code answers by compacting. Returns 0, or -1 with a 400 in err. */
int chat_check_window(const struct chat_request *req, struct apierr *err);

/* ---- replies ---- */

/* How a reply ended, in neutral words the dialects map. */
struct chat_finish {
    const char *reason;            /* "stop", "length", "tool_calls" or "stop_sequence" */
    const char *stop_sequence;     /* the sequence matched, or NULL */
    long long input_tokens;        /* the whole prompt, cached tokens included */
    long long output_tokens;
    long long cached_tokens;       /* of the prompt, read from Ollama's cache (at most input_tokens); -1 when
                                    * Ollama did not say (an older one) */
};

struct chat_tool_call {
    char *id;
    char *name;
    struct json_object *args;      /* a reference owned: the arguments, an object, as Ollama's line held
                                    * it (never text parsed again) */
};

/* A whole reply, collected for a client that did not ask for a stream. */
struct chat_reply {
    struct buf thinking;
    struct buf text;
    struct chat_tool_call *calls;
    size_t n_calls;
    struct chat_finish finish;
    struct json_object *logprobs;  /* owned: the tokens' log probabilities Ollama sent (an array), or NULL */
    int failed;
    struct apierr err;
};

/* a + b for token counts, which come from Ollama and may be anything up to INT64_MAX: never overflows. */
long long chat_sum_tokens(long long a, long long b);

void chat_reply_init(struct chat_reply *r);
void chat_reply_free(struct chat_reply *r);

/* Where every dialect's stream machine begins its state: the stream driver makes the state (of the
 * dialect's state_size, zeroed) and frees it. */
struct stream_state {
    const struct chat_request *req;
    struct wire_sink *sink;
    struct buf data;               /* the frame being written, reused for every event */
    struct json_object *logprobs;  /* owned: log probabilities of tokens not yet sent (an array), or NULL; the
                                    * machine that sends them with a chunk empties it */
};

/* Sends data as one event of the dialect's framing, named (named SSE only) or not. Returns 0, or -1 once
 * the client is gone. */
int chat_send(struct stream_state *st, const char *event);

/* What a piece of the reply's words is. */
enum chat_part { CHAT_THINKING, CHAT_TEXT };

/* A dialect's stream machine, over its state. Each returns 0, or -1 once the client is gone. */
struct stream_ops {
    int (*begin)(void *st);
    int (*delta)(void *st, enum chat_part part, const char *s, size_t n);
    /* args is borrowed, an object; a machine that keeps it takes a reference. */
    int (*tool_call)(void *st, const char *id, const char *name, struct json_object *args);
    int (*finish)(void *st, const struct chat_finish *f);
    int (*error)(void *st, const struct apierr *e);
    int (*ping)(void *st);
};

/* What a route of a dialect does. */
enum dialect_route_kind {
    ROUTE_CHAT,        /* translated to /api/chat, streamed or whole */
    ROUTE_COUNT,       /* translated and estimated, never sent: the count reply */
    ROUTE_MODELS,      /* Ollama's /api/tags in the dialect's shape; with {model} in the path, one model */
    ROUTE_PASS,        /* passed to Ollama's own route (upstream) and its reply passed back, through the
                        * dialect's pass_request and pass_reply */
};

enum { ROUTE_STREAM_BODY = -1 };   /* the body's "stream" says, false when absent */

/* One route. The path follows each of the dialect's bases ("/v1" + "/messages"); it may hold one
 * "{model}", which matches any non-empty text (Gemini's "/models/{model}:generateContent" takes the model
 * up to the last colon, since the literal after it must end the path). */
struct dialect_route {
    const char *method;            /* GET routes answer HEAD too */
    const char *path;
    enum dialect_route_kind kind;
    int stream;                    /* ROUTE_CHAT: 0, 1, or ROUTE_STREAM_BODY */
    const char *header;            /* the route is this dialect's only when the request has this header
                                    * (FastCGI name, "HTTP_ANTHROPIC_VERSION"); NULL: always */
    const char *upstream;          /* ROUTE_PASS: Ollama's path ("/api/chat"), where "{model}" is the text
                                    * the route's own {model} matched; NULL: the pool never passes it */
    int writes;                    /* ROUTE_PASS: it changes the server (pulls, deletes): refused with 403
                                    * unless OLLAMA_API_WRITES=1 */
};

/* A dialect: its routes, its key headers, its framing, its translator and stream machine, its whole-reply,
 * count, model-list and error renderings. A new dialect is a file that fills one of these, and one entry
 * in dialect.c's registry. */
struct dialect {
    const char *name;              /* for the case folders (tests/cases/NAME), the fuzzers and the bench */
    const char *const *bases;      /* path prefixes its routes follow, NULL-ended ("/v1", ""); the first
                                    * names its routes in /metrics; an unknown path under one of them
                                    * gets its errors in this dialect */
    const struct dialect_route *routes;    /* ended by a route without a method */
    const char *const *key_headers;        /* FastCGI names of the headers that may carry the key as it is
                                            * ("HTTP_X_API_KEY"), NULL-ended; Authorization: Bearer always */
    const char *key_query;         /* a query parameter that may carry the key ("key"), or NULL */
    const struct wire *wire;       /* how its streams are framed */
    const char *id_prefix;         /* for reply ids */
    const char *tool_prefix;       /* for tool-call ids Ollama did not give */
    int overloaded_status;         /* Anthropic says 529, OpenAI 503 */
    int keeps_output;              /* its stream machine holds the whole reply (for a last event that
                                    * repeats it), so a stream is capped like a whole reply */
    const char *const *error_types;    /* by enum apierr_kind, where the dialect's names differ from the
                                        * common ones; [APIERR_API] names any other failure */
    int (*translate)(const struct dialect_call *call, struct json_object *body, const struct config *cfg,
                     struct chat_request *req, struct apierr *err);
    size_t state_size;             /* the stream machine's state, which begins with a struct stream_state */
    const struct stream_ops *ops;
    /* Frees what the state holds beyond its stream_state, or NULL when it holds nothing more. */
    void (*state_free)(void *st);
    /* The whole reply, as JSON text appended to out. */
    void (*reply)(const struct chat_request *req, const struct chat_reply *r, struct buf *out);
    /* ROUTE_COUNT's reply: the estimate (req->estimated_tokens) as JSON text appended to out. */
    void (*count_reply)(const struct chat_request *req, struct buf *out);
    /* ROUTE_MODELS: Ollama's /api/tags (borrowed) as the dialect's list, or with id the one model of that
     * name (NULL when it is not there). The caller puts the result. */
    struct json_object *(*models)(struct json_object *tags, const char *id);
    /* ROUTE_PASS, for a route that takes a body: the client's body as Ollama gets it, appended to out, with
     * req->client_model and req->ollama_model set when it names a model. No I/O. Returns 0, or -1 with err
     * set. */
    int (*pass_request)(const struct dialect_call *call, const char *body, size_t len, const struct config *cfg,
                        struct chat_request *req, struct buf *out, struct apierr *err);
    /* ROUTE_PASS: one line of Ollama's reply (a whole reply is one line), without its newline, as the
     * client gets it, appended to out; the token counts it carries go to fin (left alone when it has none).
     * No I/O. Returns 1 when it is the reply's last line, else 0. */
    int (*pass_reply)(const struct chat_request *req, const char *line, size_t len, struct buf *out,
                      struct chat_finish *fin);
    /* The error body in this dialect. */
    void (*error_body)(const struct dialect *d, const struct apierr *e, const char *request_id, struct buf *out);
};

/* The dialect's name for an error kind. */
const char *chat_error_type(const struct dialect *d, enum apierr_kind kind);
/* The HTTP status an error gets in this dialect. */
int chat_error_status(const struct dialect *d, const struct apierr *e);

#endif
