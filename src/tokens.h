/* tokens.h -- the prompt-size estimate shared by count_tokens and the context-window check. */
#ifndef OF_TOKENS_H
#define OF_TOKENS_H

#include "chat.h"

/* Ollama has no tokenizer endpoint, so the size is estimated from the bytes Ollama will template:
 * prose at 4 bytes a token, JSON (tool schemas, tool-call arguments) at 3, 4 tokens of template per
 * message and 256 per image. Callers scale it by what the model's real counts taught (models.h). */
long long tokens_estimate(const struct chat_request *req);

#endif
