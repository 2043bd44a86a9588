/* dialect.c -- the registry of dialects: every client API the pool speaks, and which of them a request's
 * method and path belong to. A dialect is its own file and one line here. */
#include "dialect.h"

#include <stdio.h>
#include <string.h>

extern const struct dialect anthropic_dialect, openai_dialect, responses_dialect, gemini_dialect, ollama_api_dialect;

const struct dialect *const dialect_registry[] = {
    &anthropic_dialect,
    &openai_dialect,
    &responses_dialect,
    &gemini_dialect,
    &ollama_api_dialect,
    NULL,
};

#define MODEL_SLOT "{model}"

/* path against base + pattern; the text {model} stands for goes to model. */
static int path_matches(const char *base, const char *pattern, const char *path, char *model, size_t size)
{
    size_t nb = strlen(base), np, ns, n;
    const char *slot, *suffix;

    if (strncmp(path, base, nb) != 0)
        return 0;
    path += nb;
    slot = strstr(pattern, MODEL_SLOT);
    if (!slot)
        return strcmp(path, pattern) == 0;
    np = (size_t)(slot - pattern);
    suffix = slot + sizeof MODEL_SLOT - 1;
    ns = strlen(suffix);
    n = strlen(path);
    if (n <= np + ns || strncmp(path, pattern, np) != 0 || strcmp(path + n - ns, suffix) != 0 ||
        n - np - ns >= size)
        return 0;
    memcpy(model, path + np, n - np - ns);
    model[n - np - ns] = '\0';
    return 1;
}

static int method_matches(const char *want, const char *method)
{
    return strcmp(want, method) == 0 || (strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

void dialect_label(const struct dialect *d, const struct dialect_route *r, char *out, size_t size)
{
    snprintf(out, size, "%s%s", d->bases[0], r->path);
}

int dialect_route(const char *method, const char *path, dialect_has_header has_header, void *ctx,
                  struct dialect_match *m, const char **allowed)
{
    *allowed = NULL;
    for (size_t i = 0; dialect_registry[i]; i++) {
        const struct dialect *d = dialect_registry[i];

        for (const struct dialect_route *r = d->routes; r->method; r++) {
            if (r->header && (!has_header || !has_header(ctx, r->header)))
                continue;
            for (size_t b = 0; d->bases[b]; b++) {
                if (!path_matches(d->bases[b], r->path, path, m->model, sizeof m->model))
                    continue;
                if (!method_matches(r->method, method)) {
                    *allowed = r->method;
                    continue;
                }
                m->d = d;
                m->route = r;
                if (!strstr(r->path, MODEL_SLOT))
                    m->model[0] = '\0';
                dialect_label(d, r, m->label, sizeof m->label);
                return DIALECT_FOUND;
            }
        }
    }
    return *allowed ? DIALECT_WRONG_METHOD : DIALECT_NO_ROUTE;
}

/* Whether path is under base and starts with the first segment of one of d's routes. */
static int owns(const struct dialect *d, const char *base, const char *path)
{
    size_t nb = strlen(base);

    if (strncmp(path, base, nb) != 0 || path[nb] != '/')
        return 0;
    for (const struct dialect_route *r = d->routes; r->method; r++) {
        size_t seg = strcspn(r->path + 1, "/{:") + 1;

        if (strncmp(path + nb, r->path, seg) == 0)
            return 1;
    }
    return 0;
}

/* Whether base is this dialect's alone ("/v1beta"): no other dialect's routes follow it. */
static int base_alone(size_t self, const char *base)
{
    if (!*base)
        return 0;
    for (size_t i = 0; dialect_registry[i]; i++)
        for (size_t b = 0; i != self && dialect_registry[i]->bases[b]; b++)
            if (strcmp(dialect_registry[i]->bases[b], base) == 0)
                return 0;
    return 1;
}

const struct dialect *dialect_for_path(const char *path)
{
    for (size_t i = 0; dialect_registry[i]; i++)
        for (size_t b = 0; dialect_registry[i]->bases[b]; b++)
            if (owns(dialect_registry[i], dialect_registry[i]->bases[b], path))
                return dialect_registry[i];
    /* Anything else under a base only one dialect has ("/v1beta/files") is that dialect's. */
    for (size_t i = 0; dialect_registry[i]; i++)
        for (size_t b = 0; dialect_registry[i]->bases[b]; b++) {
            const char *base = dialect_registry[i]->bases[b];
            size_t n = strlen(base);

            if (base_alone(i, base) && strncmp(path, base, n) == 0 && (path[n] == '/' || !path[n]))
                return dialect_registry[i];
        }
    return dialect_registry[0];
}

const struct dialect *dialect_named(const char *name)
{
    for (size_t i = 0; dialect_registry[i]; i++)
        if (strcmp(dialect_registry[i]->name, name) == 0)
            return dialect_registry[i];
    return NULL;
}

void dialect_labels(void (*each)(void *ctx, const char *label), void *ctx)
{
    for (size_t i = 0; dialect_registry[i]; i++)
        for (const struct dialect_route *r = dialect_registry[i]->routes; r->method; r++) {
            char label[DIALECT_LABEL_MAX];

            dialect_label(dialect_registry[i], r, label, sizeof label);
            each(ctx, label);
        }
}
