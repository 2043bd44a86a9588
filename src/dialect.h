/* dialect.h -- the registry of dialects: every client API the pool speaks, and which of them a request's
 * method and path belong to. */
#ifndef OF_DIALECT_H
#define OF_DIALECT_H

#include <stddef.h>

#include "chat.h"

/* Every dialect, in the order routes are matched; ended by NULL. */
extern const struct dialect *const dialect_registry[];

#define DIALECT_LABEL_MAX 128

/* A request's route. */
struct dialect_match {
    const struct dialect *d;
    const struct dialect_route *route;
    char label[DIALECT_LABEL_MAX];   /* the route's name in /metrics */
    char model[512];              /* the text {model} matched, not yet decoded; "" when the path has none */
};

/* has_header(ctx, NAME) says whether the request carries a header (FastCGI name). */
typedef int (*dialect_has_header)(void *ctx, const char *name);

enum { DIALECT_FOUND = 0, DIALECT_NO_ROUTE = -1, DIALECT_WRONG_METHOD = -2 };

/* The route for method and path (normalised: no query, no trailing slash). DIALECT_WRONG_METHOD sets
 * *allowed to a method the path takes. */
int dialect_route(const char *method, const char *path, dialect_has_header has_header, void *ctx,
                  struct dialect_match *m, const char **allowed);
/* The dialect whose errors a path gets when no route takes it: the one with a base and a route's first
 * segment the path starts with ("/v1/chat/..."), else the one whose base no other dialect has
 * ("/v1beta/..."), else the first. */
const struct dialect *dialect_for_path(const char *path);
/* The dialect of this name, or NULL. */
const struct dialect *dialect_named(const char *name);
/* A route's name in /metrics: the dialect's first base and the route's path ("/v1/messages"). */
void dialect_label(const struct dialect *d, const struct dialect_route *r, char *out, size_t size);
/* Every route's label in registry order (a label two routes share comes twice): each(ctx, label). */
void dialect_labels(void (*each)(void *ctx, const char *label), void *ctx);

#endif
