/* tokens.c -- the prompt-size estimate shared by count_tokens and the context-window check. */
#include "tokens.h"

#include <stdio.h>
#include <string.h>

#include "jsonx.h"

#define PROSE_BYTES_PER_TOKEN 4
#define JSON_BYTES_PER_TOKEN 3
#define TOKENS_PER_MESSAGE 4
#define TOKENS_PER_IMAGE 256

static size_t string_len(struct json_object *obj, const char *key)
{
    struct json_object *v;

    if (json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string))
        return (size_t)json_object_get_string_len(v);
    return 0;
}

/* The length of v as compact JSON text (as jsonx_write gives it), counted without writing it: tool
 * schemas are most of a coding agent's prompt, and serializing them twice per request would cost more
 * than the rest of the translation. */
static size_t json_len(struct json_object *v)
{
    size_t n = 0, i = 0, k;
    char num[32];

    switch (json_object_get_type(v)) {
    case json_type_string:
        return jsonx_string_len(json_object_get_string(v), (size_t)json_object_get_string_len(v));
    case json_type_array:
        k = json_object_array_length(v);
        for (n = 2; i < k; i++)
            n += json_len(json_object_array_get_idx(v, i)) + (i ? 1 : 0);
        return n;
    case json_type_object:
        n = 2;
        json_object_object_foreach(v, key, val) {
            n += jsonx_string_len(key, strlen(key)) + 1 + json_len(val) + (i++ ? 1 : 0);
        }
        return n;
    case json_type_null:
        return 4;
    case json_type_boolean:
        return json_object_get_boolean(v) ? 4 : 5;
    case json_type_int:
        return (size_t)snprintf(num, sizeof num, "%lld", (long long)json_object_get_int64(v));
    case json_type_double:
        return strlen(json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    }
    return 0;
}

long long tokens_estimate(const struct chat_request *req)
{
    size_t prose = 0, json = 0, n = json_object_array_length(req->parts.messages);
    long long tokens = 0;

    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(req->parts.messages, i), *v;

        prose += string_len(m, "content") + string_len(m, "thinking");
        if (json_object_object_get_ex(m, "tool_calls", &v))
            json += json_len(v);
        if (json_object_object_get_ex(m, "images", &v) && json_object_is_type(v, json_type_array))
            tokens += TOKENS_PER_IMAGE * (long long)json_object_array_length(v);
        tokens += TOKENS_PER_MESSAGE;
    }
    if (req->parts.tools)
        json += json_len(req->parts.tools);
    tokens += (long long)((prose + PROSE_BYTES_PER_TOKEN - 1) / PROSE_BYTES_PER_TOKEN);
    tokens += (long long)((json + JSON_BYTES_PER_TOKEN - 1) / JSON_BYTES_PER_TOKEN);
    return tokens;
}
