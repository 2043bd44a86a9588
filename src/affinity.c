/* affinity.c -- which Ollama host a conversation goes to: a key from what stays the same over its turns
 * (its system text and first user message), and rendezvous hashing (highest random weight) of that key and
 * the model over the hosts, which every worker of every pool computes alike without sharing anything.
 *
 * Rendezvous hashing moves only the conversations of a host that leaves (they go to their second choice)
 * and, when one comes back, only those it wins back: the others keep their host and its prompt cache. */
#include "affinity.h"

#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* A field ends with a byte no text holds, so "ab"+"c" and "a"+"bc" differ. */
static uint64_t fnv_field(uint64_t h, const char *p, size_t n)
{
    return fnv(fnv(h, p, n), "\xff", 1);
}

/* FNV's low bits mix poorly; splitmix64's finalizer spreads every input bit over the weight. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_text(uint64_t h, struct json_object *msg)
{
    struct json_object *v;

    if (json_object_object_get_ex(msg, "content", &v) && json_object_is_type(v, json_type_string))
        return fnv_field(h, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    return fnv_field(h, "", 0);
}

uint64_t affinity_key(const struct chat_request *req)
{
    struct json_object *msgs = req->parts.messages, *m, *role;
    size_t n = msgs && json_object_is_type(msgs, json_type_array) ? json_object_array_length(msgs) : 0;
    uint64_t h = FNV_OFFSET;

    for (size_t i = 0; i < n; i++) {
        const char *r;

        m = json_object_array_get_idx(msgs, i);
        if (!json_object_object_get_ex(m, "role", &role) || !json_object_is_type(role, json_type_string))
            continue;
        r = json_object_get_string(role);
        if (strcmp(r, "system") == 0) {
            h = hash_text(fnv_field(h, "s", 1), m);
        } else if (strcmp(r, "user") == 0) {
            h = hash_text(fnv_field(h, "u", 1), m);
            break;
        }
    }
    return h;
}

uint64_t affinity_weight(uint64_t key, const char *model, const char *host)
{
    char bytes[8];
    uint64_t h;

    /* Byte by byte, least significant first: pools on machines of either byte order agree. */
    for (int i = 0; i < 8; i++)
        bytes[i] = (char)(key >> (8 * i));
    h = fnv_field(FNV_OFFSET, bytes, sizeof bytes);

    h = fnv_field(h, model, strlen(model));
    return mix(fnv_field(h, host, strlen(host)));
}

void affinity_order(uint64_t key, const char *model, char *const *hosts, size_t *order, size_t n)
{
    uint64_t w[64];

    if (n > sizeof w / sizeof *w)
        n = sizeof w / sizeof *w;
    for (size_t i = 0; i < n; i++)
        w[i] = affinity_weight(key, model, hosts[order[i]]);
    /* Insertion sort: a handful of hosts. */
    for (size_t i = 1; i < n; i++) {
        size_t o = order[i];
        uint64_t x = w[i];
        size_t j = i;

        for (; j > 0 && (w[j - 1] < x || (w[j - 1] == x && order[j - 1] > o)); j--) {
            w[j] = w[j - 1];
            order[j] = order[j - 1];
        }
        w[j] = x;
        order[j] = o;
    }
}
