/* responses.h -- the OpenAI Responses dialect (Codex CLI, client.responses): request translation, the SSE
 * stream machine, whole replies. */
#ifndef OF_RESPONSES_H
#define OF_RESPONSES_H

#include "chat.h"

extern const struct dialect responses_dialect;

#endif
