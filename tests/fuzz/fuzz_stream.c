/* fuzz_stream.c -- libFuzzer harness: any bytes as Ollama's NDJSON reply, in pieces of the fuzzer's choosing,
 * through every dialect's stream machine and the whole-reply collector, with stop sequences in play. The
 * Responses machine needs what its translator keeps (req->extra): a small request gives it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic.h"
#include "jsonx.h"
#include "openai.h"
#include "responses.h"
#include "stream.h"

static int discard(void *ctx, const char *bytes, size_t len)
{
    (void)ctx;
    (void)bytes;
    (void)len;
    return 0;
}

/* The reply in pieces whose sizes come from the input's first byte, as reads from a socket would cut it. */
static void feed(struct stream *s, const uint8_t *data, size_t size, size_t piece)
{
    for (size_t at = 0; at < size; at += piece)
        if (stream_feed(s, (const char *)data + at, size - at < piece ? size - at : piece) != STREAM_MORE)
            return;
    stream_eof(s);
}

static void run(const struct dialect *d, const struct chat_request *req, const uint8_t *data, size_t size, size_t piece)
{
    struct sse_sink sink;
    struct stream s;
    struct chat_reply r;
    struct buf out;

    sse_sink_init(&sink, discard, NULL);
    chat_reply_init(&r);
    stream_open(&s, d, req, &sink, &r, 0);
    feed(&s, data, size, piece);
    stream_close(&s);
    stream_open(&s, d, req, NULL, &r, 4096);
    feed(&s, data, size, piece);
    if (!r.failed) {
        buf_init(&out);
        d->reply(req, &r, &out);
        buf_free(&out);
    }
    stream_close(&s);
    chat_reply_free(&r);
    sse_sink_free(&sink);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dialect *const dialects[] = { &anthropic_dialect, &openai_dialect, &responses_dialect };
    struct chat_request req;
    char *stops[] = { "END", "\n\nHuman:", "x" };
    size_t piece;

    if (size == 0)
        return 0;
    chat_request_init(&req);
    req.client_model = strdup("claude-opus-4-8");
    req.ollama_model = strdup("big");
    req.stop = malloc(sizeof stops);
    /* The fuzzer chooses whether stop sequences are in play, and how the reply is cut. */
    req.n_stop = data[0] & 1 ? 3 : 0;
    for (size_t i = 0; i < req.n_stop; i++)
        req.stop[i] = strdup(stops[i]);
    piece = (size_t)(data[0] >> 1) + 1;
    req.include_usage = 1;
    data++;
    size--;
    for (size_t i = 0; i < sizeof dialects / sizeof *dialects; i++) {
        snprintf(req.id, sizeof req.id, "%sfuzz", dialects[i]->id_prefix);
        run(dialects[i], &req, data, size, piece);
    }
    chat_request_free(&req);
    return 0;
}
