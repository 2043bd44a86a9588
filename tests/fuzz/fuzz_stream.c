/* fuzz_stream.c -- libFuzzer harness: any bytes as Ollama's NDJSON reply, through both dialects' stream
 * machines and the whole-reply collector, with stop sequences in play. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic.h"
#include "jsonx.h"
#include "openai.h"

static int discard(void *ctx, const char *bytes, size_t len)
{
    (void)ctx;
    (void)bytes;
    (void)len;
    return 0;
}

static void feed(struct chat_stream *cs, const char *data, size_t size)
{
    size_t start = 0;

    for (size_t i = 0; i <= size; i++) {
        if (i < size && data[i] != '\n')
            continue;
        if (chat_stream_line(cs, data + start, i - start) != CHAT_MORE)
            return;
        start = i + 1;
    }
    chat_stream_eof(cs);
}

static void run(const struct dialect *d, const struct chat_request *req, const char *data, size_t size)
{
    struct sse_sink sink;
    struct chat_stream cs;
    struct chat_reply r;
    void *st;
    struct json_object *o;

    sse_sink_init(&sink, discard, NULL);
    st = d->stream_new(req, &sink);
    chat_stream_init(&cs, req, d->ops, st, d->tool_prefix);
    feed(&cs, data, size);
    chat_stream_free(&cs);
    d->stream_free(st);
    sse_sink_free(&sink);

    chat_reply_init(&r);
    chat_stream_init(&cs, req, &chat_collect_ops, &r, d->tool_prefix);
    feed(&cs, data, size);
    if (!r.failed) {
        o = d->reply(req, &r);
        jsonx_text(o, NULL);
        json_object_put(o);
    }
    chat_stream_free(&cs);
    chat_reply_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chat_request req;
    char *stops[] = { "END", "\n\nHuman:", "x" };

    chat_request_init(&req);
    req.client_model = strdup("claude-opus-4-8");
    req.ollama_model = strdup("big");
    req.stop = malloc(sizeof stops);
    for (size_t i = 0; i < 3; i++)
        req.stop[i] = strdup(stops[i]);
    /* The fuzzer chooses whether stop sequences are in play. */
    req.n_stop = size > 0 && (data[0] & 1) ? 3 : 0;
    for (size_t i = req.n_stop; i < 3; i++)
        free(req.stop[i]);
    req.include_usage = 1;
    snprintf(req.id, sizeof req.id, "msg_fuzz");
    run(&anthropic_dialect, &req, (const char *)data, size);
    snprintf(req.id, sizeof req.id, "chatcmpl-fuzz");
    run(&openai_dialect, &req, (const char *)data, size);
    chat_request_free(&req);
    return 0;
}
