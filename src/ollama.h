/* ollama.h -- Ollama's /api/chat: the body a request becomes, one line of its NDJSON as a neutral chunk, and
 * its error statuses as the client's errors. */
#ifndef OF_OLLAMA_H
#define OF_OLLAMA_H

#include <json-c/json.h>
#include <stddef.h>

#include "chat.h"

struct ollama_chunk {
    struct json_object *root;   /* owned: the parsed line; the fields below borrow from it */
    const char *content;
    size_t content_len;
    const char *thinking;
    size_t thinking_len;
    struct json_object *tool_calls;  /* array or NULL */
    struct json_object *logprobs;    /* array of the tokens' log probabilities, asked for with "logprobs", or NULL */
    int done;
    const char *done_reason;    /* "" when absent */
    long long prompt_eval_count; /* -1 when absent */
    long long prompt_eval_cached_count; /* the prompt tokens read from Ollama's cache (prompt_eval_count
                                         * includes them), -1 when absent: an older Ollama */
    long long eval_count;        /* -1 when absent */
    const char *error;          /* a top-level "error" (Ollama's mid-stream failure), or NULL */
};

/* Parses one line with tok (see jsonx_tokener_new). Returns 0, or -1 for a line that is not an
 * Ollama chat chunk. On success the caller calls ollama_chunk_release. */
int ollama_chunk_parse(struct json_tokener *tok, const char *line, size_t len, struct ollama_chunk *c);
void ollama_chunk_release(struct ollama_chunk *c);

/* The message of an Ollama error body ({"error":"..."}), or the body itself when it is not that shape.
 * Writes at most size bytes into out, on one line. */
void ollama_error_message(const char *body, size_t len, char *out, size_t size);
/* A model Ollama does not have, as a 404 that says what to do. */
void ollama_model_not_found(const struct chat_request *req, const char *ollama_message, struct apierr *e);
/* What the client gets when /api/chat answers with an error status; body is Ollama's error body. */
void ollama_status_error(long status, const char *body, size_t len, const struct chat_request *req,
                         struct apierr *e);
/* Ollama refused to think for a model that cannot: not the client's fault, so the call is made again
 * without thinking. */
int ollama_refused_think(long status, const char *body, size_t len);

/* Appends the /api/chat body to out. Always streamed from Ollama (even for a whole reply: stop sequences
 * and client disconnects can then end the generation early). Keys in one fixed order, so the same
 * conversation prefix gives the same bytes. */
void ollama_write_chat_body(const struct chat_request *req, const struct config *cfg, struct buf *out);

#endif
