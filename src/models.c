/* models.c -- what each worker learns about Ollama's models: capabilities, context length, and how far
 * the token estimate is from the model's real counts; and Ollama's model list in each dialect. */
#include "models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonx.h"

void models_cache_free(struct models_cache *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->entries[i].name);
    free(c->entries);
    c->entries = NULL;
    c->n = 0;
}

struct models_entry *models_find(struct models_cache *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->entries[i].name, name) == 0)
            return &c->entries[i];
    return NULL;
}

struct models_entry *models_put(struct models_cache *c, const char *name, const struct model_facts *f)
{
    struct models_entry *e = models_find(c, name);
    double correction = 1.0;

    if (!e) {
        c->entries = xrealloc(c->entries, (c->n + 1) * sizeof *c->entries);
        e = &c->entries[c->n++];
        e->name = xstrdup(name);
    } else {
        correction = e->facts.correction;
    }
    e->facts = *f;
    e->facts.correction = correction;
    return e;
}

int models_parse_show(const char *body, size_t len, struct model_facts *f)
{
    struct apierr ignored;
    struct json_object *o = jsonx_parse(body, len, &ignored), *caps, *info, *arch, *ctx;
    char key[160];

    memset(f, 0, sizeof *f);
    f->correction = 1.0;
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return -1;
    }
    f->known = 1;
    if (json_object_object_get_ex(o, "capabilities", &caps) && json_object_is_type(caps, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(caps); i++) {
            struct json_object *c = json_object_array_get_idx(caps, i);

            if (json_object_is_type(c, json_type_string) && strcmp(json_object_get_string(c), "thinking") == 0)
                f->can_think = 1;
            if (json_object_is_type(c, json_type_string) && strcmp(json_object_get_string(c), "vision") == 0)
                f->can_see = 1;
        }
    }
    /* The model's own context length is model_info["<architecture>.context_length"]. */
    if (json_object_object_get_ex(o, "model_info", &info) && json_object_is_type(info, json_type_object) &&
        json_object_object_get_ex(info, "general.architecture", &arch) &&
        json_object_is_type(arch, json_type_string)) {
        snprintf(key, sizeof key, "%s.context_length", json_object_get_string(arch));
        /* gpt-oss takes a think level (and cannot stop thinking); every other thinking model a boolean. */
        f->think_levels = strcmp(json_object_get_string(arch), "gptoss") == 0;
        if (json_object_object_get_ex(info, key, &ctx) && json_object_is_type(ctx, json_type_int))
            f->context_length = (long long)json_object_get_int64(ctx);
    }
    json_object_put(o);
    return 0;
}

void models_learn(struct models_entry *e, long long raw, long long real)
{
    double ratio;

    if (!e || raw <= 0 || real <= 0)
        return;
    ratio = (double)real / (double)raw;
    /* Older Ollama counts only uncached prompt tokens; a wild ratio says nothing about the estimate. */
    if (ratio < 0.25 || ratio > 4.0)
        return;
    e->facts.correction = 0.5 * e->facts.correction + 0.5 * ratio;
}

const char *models_name(struct json_object *m)
{
    struct json_object *v;

    if ((json_object_object_get_ex(m, "name", &v) || json_object_object_get_ex(m, "model", &v)) &&
        json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return NULL;
}

const char *models_modified(struct json_object *m)
{
    struct json_object *v;

    if (json_object_object_get_ex(m, "modified_at", &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return "1970-01-01T00:00:00Z";
}

long long models_unix_time(const char *rfc3339)
{
    struct tm tm;
    const char *p;
    int oh = 0, om = 0;

    memset(&tm, 0, sizeof tm);
    if (!(p = strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm)))
        return 0;
    p += strspn(p, ".0123456789");
    if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
        return (long long)timegm(&tm) - (*p == '+' ? 1 : -1) * (oh * 3600LL + om * 60LL);
    return (long long)timegm(&tm);
}

struct json_object *models_each(struct json_object *tags, const char *id, struct json_object *(*one)(struct json_object *m))
{
    struct json_object *models = NULL, *all = id ? NULL : json_object_new_array();
    size_t n;

    if (tags && (!json_object_object_get_ex(tags, "models", &models) || !json_object_is_type(models, json_type_array)))
        models = NULL;
    n = models ? json_object_array_length(models) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(models, i);
        const char *name = json_object_is_type(m, json_type_object) ? models_name(m) : NULL;

        if (!name)
            continue;
        if (!id)
            json_object_array_add(all, one(m));
        else if (config_same_model(id, name))
            return one(m);
    }
    return all;
}
