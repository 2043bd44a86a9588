/* capability.h -- ROUTES: the model a request goes to instead of the one MODEL_MAP chose, when that one
 * cannot serve it well: a prompt longer than N tokens, images for a model without vision, thinking asked of
 * a model that cannot think. */
#ifndef OF_CAPABILITY_H
#define OF_CAPABILITY_H

#include "chat.h"
#include "config.h"

/* The ROUTES model for req, whose model has facts f (f->known 0 when nothing is known: then only the
 * prompt's length decides), or NULL to keep the model. The first that applies wins: long_context, images,
 * thinking. Borrowed from cfg. */
const char *capability_route(const struct config *cfg, const struct chat_request *req, const struct model_facts *f);

#endif
