/* capability.c -- ROUTES: the model a request goes to instead of the one MODEL_MAP chose, when that one
 * cannot serve it well: a prompt longer than N tokens, images for a model without vision, thinking asked of
 * a model that cannot think. */
#include "capability.h"

#include "tokens.h"

static int has_images(const struct chat_request *req)
{
    struct json_object *msgs = req->parts.messages, *v;
    size_t n = msgs && json_object_is_type(msgs, json_type_array) ? json_object_array_length(msgs) : 0;

    for (size_t i = 0; i < n; i++)
        if (json_object_object_get_ex(json_object_array_get_idx(msgs, i), "images", &v) &&
            json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
            return 1;
    return 0;
}

const char *capability_route(const struct config *cfg, const struct chat_request *req, const struct model_facts *f)
{
    const struct config_routes *r = &cfg->routes;

    if (r->long_context_model && tokens_estimate(req) > r->long_context)
        return r->long_context_model;
    if (r->images_model && f->known && !f->can_see && has_images(req))
        return r->images_model;
    if (r->thinking_model && f->known && !f->can_think && chat_think_requested(req))
        return r->thinking_model;
    return NULL;
}
