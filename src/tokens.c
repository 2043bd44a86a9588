/* tokens.c -- the prompt-size estimate shared by count_tokens and the context-window check. */
#include "tokens.h"

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

static size_t json_len(struct json_object *v)
{
    size_t n = 0;

    if (v)
        jsonx_text(v, &n);
    return n;
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
    json += json_len(req->parts.tools);
    tokens += (long long)((prose + PROSE_BYTES_PER_TOKEN - 1) / PROSE_BYTES_PER_TOKEN);
    tokens += (long long)((json + JSON_BYTES_PER_TOKEN - 1) / JSON_BYTES_PER_TOKEN);
    return tokens;
}
