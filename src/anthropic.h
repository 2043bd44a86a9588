/* anthropic.h -- the Anthropic Messages dialect: request translation, the SSE stream machine, whole replies. */
#ifndef OF_ANTHROPIC_H
#define OF_ANTHROPIC_H

#include "chat.h"

extern const struct dialect anthropic_dialect;

/* The body of /v1/messages/count_tokens: the same translation as a message, max_tokens not needed. */
int anthropic_translate_count(struct json_object *body, const struct config *cfg, struct chat_request *req,
                              struct apierr *err);
const char *anthropic_error_type(enum apierr_kind kind);

#endif
