/* test_hosts.c -- several Ollama hosts: OLLAMA_BASE_URL's list, MODEL_MAP's fallbacks, the conversation key
 * and the rendezvous order that keeps a conversation on one host. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "affinity.h"
#include "capability.h"
#include "config.h"
#include "jsonx.h"

static const char *hosts_env(const char *name, void *ctx)
{
    if (strcmp(name, "OLLAMA_BASE_URL") == 0)
        return ctx;
    if (strcmp(name, "MODEL_MAP") == 0)
        return "claude-*=qwen3-coder:30b| qwen3:14b |llama3, gpt-4o=qwen3";
    return NULL;
}

Test(hosts, base_url_list_and_fallbacks)
{
    struct config cfg;
    char err[256];
    size_t n;
    char *const *fb;

    cr_assert_eq(config_load(&cfg, hosts_env, "http://a:11434/, https://u:p@b:11434 ,http://c", err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(cfg.n_hosts, 3);
    cr_expect_str_eq(cfg.hosts[0], "http://a:11434");
    cr_expect_str_eq(cfg.hosts[1], "https://u:p@b:11434");
    cr_expect_str_eq(cfg.hosts_shown[1], "https://***@b:11434");
    cr_expect_str_eq(cfg.ollama_url, "http://a:11434");
    cr_expect_str_eq(cfg.ollama_url_shown, "http://a:11434,https://***@b:11434,http://c");
    cr_expect_str_eq(config_map_model(&cfg, "claude-opus-4-8"), "qwen3-coder:30b");
    fb = config_model_fallbacks(&cfg, "claude-opus-4-8", &n);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(fb[0], "qwen3:14b");
    cr_expect_str_eq(fb[1], "llama3");
    config_model_fallbacks(&cfg, "gpt-4o", &n);
    cr_expect_eq(n, 0);
    config_model_fallbacks(&cfg, "other", &n);
    cr_expect_eq(n, 0);
    config_free(&cfg);
    cr_expect_eq(config_load(&cfg, hosts_env, "http://a, ftp://b", err, sizeof err), -1);
    cr_expect(strstr(err, "ftp://b") != NULL, "%s", err);
    config_free(&cfg);
    cr_expect_eq(config_load(&cfg, hosts_env, " , ", err, sizeof err), -1);
    config_free(&cfg);
    cr_expect_eq(config_load(&cfg, hosts_env, "http://a\"b", err, sizeof err), -1, "a quote would break a label");
    config_free(&cfg);
}

/* A request of messages given as [role, content, role, content, ...]. */
static uint64_t key_of(const char *const *m, size_t n)
{
    struct chat_request req;
    uint64_t k;

    chat_request_init(&req);
    for (size_t i = 0; i + 1 < n; i += 2) {
        struct json_object *o = json_object_new_object();

        json_object_object_add(o, "role", json_object_new_string(m[i]));
        json_object_object_add(o, "content", json_object_new_string(m[i + 1]));
        json_object_array_add(req.parts.messages, o);
    }
    k = affinity_key(&req);
    chat_request_free(&req);
    return k;
}

Test(hosts, a_conversation_keeps_its_key)
{
    const char *turn1[] = { "system", "You are terse.", "user", "fix the bug" };
    const char *turn3[] = { "system", "You are terse.", "user", "fix the bug", "assistant", "done", "user", "thanks",
                            "assistant", "ok", "user", "more" };
    const char *other_first[] = { "system", "You are terse.", "user", "fix the other bug" };
    const char *other_system[] = { "system", "You are verbose.", "user", "fix the bug" };
    const char *split[] = { "system", "You are terse.f", "user", "ix the bug" };

    cr_expect_eq(key_of(turn1, 4), key_of(turn3, 12), "later turns keep the key");
    cr_expect_neq(key_of(turn1, 4), key_of(other_first, 4));
    cr_expect_neq(key_of(turn1, 4), key_of(other_system, 4));
    cr_expect_neq(key_of(turn1, 4), key_of(split, 4), "fields are delimited");
}

Test(hosts, rendezvous_spreads_and_moves_only_what_it_must)
{
    char *hosts[] = { "http://a:11434", "http://b:11434", "http://c:11434" };
    size_t first[1000], count[3] = { 0 }, moved = 0;

    for (uint64_t k = 0; k < 1000; k++) {
        size_t order[3] = { 0, 1, 2 }, again[3] = { 2, 0, 1 }, without_b[2] = { 0, 2 };

        affinity_order(k * 0x9e3779b97f4a7c15ULL, "qwen3", hosts, order, 3);
        affinity_order(k * 0x9e3779b97f4a7c15ULL, "qwen3", hosts, again, 3);
        cr_assert(memcmp(order, again, sizeof order) == 0, "the order does not depend on the list's order");
        first[k] = order[0];
        count[order[0]]++;
        /* b gone: only b's conversations move, each to its second choice. */
        affinity_order(k * 0x9e3779b97f4a7c15ULL, "qwen3", hosts, without_b, 2);
        if (first[k] != 1) {
            cr_assert_eq(without_b[0], first[k]);
        } else {
            cr_assert_eq(without_b[0], order[1]);
            moved++;
        }
    }
    for (int h = 0; h < 3; h++)
        cr_expect(count[h] > 250 && count[h] < 420, "host %d has %zu of 1000 conversations", h, count[h]);
    cr_expect_eq(moved, count[1]);
    cr_expect_neq(affinity_weight(1, "qwen3", "http://a"), affinity_weight(1, "llama3", "http://a"),
                  "the model is part of the weight");
}

static const char *routes_env(const char *name, void *ctx)
{
    return strcmp(name, "ROUTES") == 0 ? ctx : NULL;
}

/* A request of one user message, with an image or asking for thinking. */
static void request_of(struct chat_request *req, const char *text, int image, int think)
{
    struct json_object *m = json_object_new_object();

    chat_request_init(req);
    json_object_object_add(m, "role", json_object_new_string("user"));
    json_object_object_add(m, "content", json_object_new_string(text));
    if (image) {
        struct json_object *images = json_object_new_array();

        json_object_array_add(images, json_object_new_string("iVBORw0KGgo="));
        json_object_object_add(m, "images", images);
    }
    json_object_array_add(req->parts.messages, m);
    req->parts.think = json_object_new_boolean(think);
}

Test(hosts, routes_by_capability)
{
    struct config cfg;
    struct chat_request req;
    char err[256], big[4000];
    struct model_facts plain = { .known = 1 }, seeing = { .known = 1, .can_see = 1 },
                       thinker = { .known = 1, .can_think = 1 }, unknown = { .known = 0 };

    cr_assert_eq(config_load(&cfg, routes_env, "long_context>500=big:128k, images=llava, thinking=qwen3", err,
                             sizeof err), 0, "%s", err);
    request_of(&req, "hi", 0, 0);
    cr_expect_null(capability_route(&cfg, &req, &plain));
    chat_request_free(&req);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    request_of(&req, big, 1, 1);
    cr_expect_str_eq(capability_route(&cfg, &req, &plain), "big:128k", "long context first");
    chat_request_free(&req);
    request_of(&req, "what is this", 1, 1);
    cr_expect_str_eq(capability_route(&cfg, &req, &plain), "llava");
    cr_expect_str_eq(capability_route(&cfg, &req, &seeing), "qwen3", "it sees, but cannot think");
    cr_expect_null(capability_route(&cfg, &req, &(struct model_facts){ .known = 1, .can_see = 1, .can_think = 1 }));
    cr_expect_null(capability_route(&cfg, &req, &unknown), "nothing known: nothing but the length decides");
    chat_request_free(&req);
    request_of(&req, "think", 0, 1);
    cr_expect_null(capability_route(&cfg, &req, &thinker));
    chat_request_free(&req);
    config_free(&cfg);
    cr_expect_eq(config_load(&cfg, routes_env, "long_context>x=big", err, sizeof err), -1);
    cr_expect(strstr(err, "ROUTES") != NULL, "%s", err);
    config_free(&cfg);
    cr_expect_eq(config_load(&cfg, routes_env, "audio=whisper", err, sizeof err), -1);
    config_free(&cfg);
}
