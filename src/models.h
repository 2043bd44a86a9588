/* models.h -- what each worker learns about Ollama's models: capabilities, context length, and how far
 * the token estimate is from the model's real counts; and Ollama's model list in each dialect. */
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

/* Ollama's /api/tags as {"object":"list","data":[...]} (OpenAI) or Anthropic's paged list. With id,
 * the one model of that name, or NULL when it is not there. The caller puts the result. */
struct json_object *models_list_openai(struct json_object *tags, const char *id);
struct json_object *models_list_anthropic(struct json_object *tags, const char *id);

#endif
