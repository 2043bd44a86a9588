/* anthropic.h -- the Anthropic Messages dialect: request translation, the SSE stream machine, whole replies. */
#ifndef OF_ANTHROPIC_H
#define OF_ANTHROPIC_H

#include "chat.h"

extern const struct dialect anthropic_dialect;
/* /v1/messages/count_tokens: the body of a message, estimated and never sent. */
extern const struct dialect anthropic_count_dialect;

#endif
