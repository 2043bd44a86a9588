/* openai.h -- the OpenAI Chat Completions dialect: request translation, the SSE stream machine, whole replies. */
#ifndef OF_OPENAI_H
#define OF_OPENAI_H

#include "chat.h"

extern const struct dialect openai_dialect;

#endif
