/* openai.h -- the OpenAI Chat Completions dialect: request translation, the SSE stream machine, whole replies;
 * and the pieces the Responses dialect shares with it. */
#ifndef OF_OPENAI_H
#define OF_OPENAI_H

#include "chat.h"

extern const struct dialect openai_dialect;

/* Both APIs take at most this many stop sequences. */
#define OPENAI_MAX_STOP 16
/* Where OpenAI's error type names differ from the ones every dialect shares (chat.c). */
extern const char *const openai_error_types[APIERR_N];

/* A data: URI image (the only kind Ollama can take) into m's images; any other URL is a 400 naming field. */
int openai_data_uri_image(struct chat_msg *m, const char *url, const char *field, struct apierr *err);
/* Tool-call arguments, a JSON string, as the object Ollama takes; NULL with a 400 naming field, or a 413
 * when parsing it would take req past its parse budget (the body's and its other arguments' share it). */
struct json_object *openai_arguments(struct chat_request *req, struct json_object *text, const char *field,
                                     struct apierr *err);
/* response_format (Chat Completions) or text.format (Responses) as Ollama's format. */
int openai_format(struct json_object *format, const char *field, struct chat_request *req, struct apierr *err);
/* tool_choice in either API's shape. */
int openai_tool_choice(struct json_object *body, struct chat_tools *t, struct apierr *err);
/* A reasoning effort as Ollama's think level. */
int openai_reasoning_effort(const char *effort, const char *field, struct chat_request *req, struct apierr *err);
/* OpenAI's error object, and the whole error body {"error": ...}. */
void openai_error_json(const struct dialect *d, const struct apierr *e, struct buf *out);
void openai_error_body(const struct dialect *d, const struct apierr *e, const char *request_id, struct buf *out);

#endif
