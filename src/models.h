/* models.h -- what each worker learns about Ollama's models: capabilities, context length, and how far
 * the token estimate is from the model's real counts; and the pieces of a model list every dialect renders. */
#ifndef OF_MODELS_H
#define OF_MODELS_H

#include <json-c/json.h>
#include <stddef.h>

#include "chat.h"

struct models_entry {
    char *name;
    struct model_facts facts;
};

struct models_cache {
    struct models_entry *entries;
    size_t n;
};

void models_cache_free(struct models_cache *c);
struct models_entry *models_find(struct models_cache *c, const char *name);
/* Keeps f for the model; what its replies taught (the estimate's correction) is kept too. */
struct models_entry *models_put(struct models_cache *c, const char *name, const struct model_facts *f);
/* Facts from an /api/show body; returns 0, or -1 if it is not one. */
int models_parse_show(const char *body, size_t len, struct model_facts *f);
/* Learns from one reply: Ollama counted real tokens for a prompt we estimated at raw. */
void models_learn(struct models_entry *e, long long raw, long long real);

/* Each model of Ollama's /api/tags (borrowed) as one() makes it: with id, the one model of that name
 * (NULL when there is none), else a new array of them all. The caller puts the result. */
struct json_object *models_each(struct json_object *tags, const char *id, struct json_object *(*one)(struct json_object *m));
/* A model entry's name, or NULL; its modified_at (the epoch when absent). Borrowed from m. */
const char *models_name(struct json_object *m);
const char *models_modified(struct json_object *m);
/* Unix time of an RFC 3339 stamp such as "2025-05-04T17:37:44.7-07:00"; 0 when it is not one. */
long long models_unix_time(const char *rfc3339);

#endif
