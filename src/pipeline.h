/* pipeline.h -- one client request, whatever its dialect, to the body Ollama's /api/chat receives: the
 * steps the worker, the case runner, the benchmark and the fuzzers all run. */
#ifndef OF_PIPELINE_H
#define OF_PIPELINE_H

#include <stddef.h>

#include "apierr.h"
#include "buf.h"
#include "chat.h"
#include "config.h"

/* Where the pipeline learns a model's facts: Ollama's /api/show through the worker's cache, or a case's
 * show.json. facts returns 0 with f filled (f->known 0 when nothing is known), or -1 with err set. */
struct pipeline_models {
    int (*facts)(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err);
    void *ctx;
};

/* Parses body (strictly, within the memory its size allows), translates it in dialect d into req, applies
 * the model's facts, estimates the prompt and checks it against the window, and appends the Ollama body
 * to out -- except for a count-only dialect, which stops at the estimate. Returns 0, or -1 with err set
 * in words for the client. */
int pipeline_request(const struct dialect *d, const char *body, size_t len, const struct config *cfg,
                     const struct pipeline_models *models, struct chat_request *req, struct buf *out,
                     struct apierr *err);

#endif
