/* pipeline.h -- one client request, whatever its dialect, to the body Ollama's /api/chat receives, and
 * the decisions about its outcome (a retry, an error, the whole reply, the count): the steps the worker,
 * the case runner, the benchmark and the fuzzers all run. */
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
 * the model's facts, estimates the prompt and checks it against the window, and appends to out the Ollama
 * body -- or, for a count route, the count reply. Returns 0, or -1 with err set in words for the client. */
int pipeline_request(const struct dialect *d, const struct dialect_call *call, const char *body, size_t len,
                     const struct config *cfg, const struct pipeline_models *models, struct chat_request *req,
                     struct buf *out, struct apierr *err);

/* The most a reply held in memory may hold: what the client's token limit allows, within MAX_REPLY_BYTES. */
size_t pipeline_reply_cap(const struct chat_request *req, const struct config *cfg);

enum { PIPELINE_RETRY = 1 };
/* Ollama answered status (not 2xx) with body. PIPELINE_RETRY: ask again with out, which now holds the
 * request without thinking (Ollama refused thinking to a model that cannot: not the client's fault; only
 * on the first attempt). Otherwise -1 with the client's error in err. */
int pipeline_refused(struct chat_request *req, const struct config *cfg, int attempt, long status, const char *body,
                     size_t len, struct buf *out, struct apierr *err);

/* A whole reply's body in dialect d appended to out; -1 with its error when the reply failed. */
int pipeline_whole(const struct dialect *d, const struct chat_request *req, const struct chat_reply *whole,
                   struct buf *out, struct apierr *err);

#endif
