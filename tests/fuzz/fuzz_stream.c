/* fuzz_stream.c -- libFuzzer harness: any bytes as Ollama's NDJSON reply, in pieces of the fuzzer's choosing,
 * through every dialect's stream machine and the whole-reply collector. Each dialect's request comes from
 * its own translator (what its machine keeps from the request is then there), with stop sequences and
 * offered tools in play as the first byte says -- tools put text tool-call recovery on the path. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anthropic.h"
#include "jsonx.h"
#include "openai.h"
#include "pipeline.h"
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

#define TOOLS_SCHEMA "{\"type\":\"object\",\"properties\":{\"file_path\":{\"type\":\"string\"},\"limit\":{\"type\":\"integer\"}}}"

/* Each dialect's request, as [dialect][stops][tools]. */
static const char *const requests[3][2][2] = {
    { { "{\"model\":\"claude-opus-4-8\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"claude-opus-4-8\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"tools\":[{\"name\":\"Read\",\"input_schema\":" TOOLS_SCHEMA "},{\"name\":\"Write\",\"input_schema\":{}}]}" },
      { "{\"model\":\"claude-opus-4-8\",\"max_tokens\":64,\"stop_sequences\":[\"END\",\"\\n\\nHuman:\",\"x\"],"
        "\"thinking\":{\"type\":\"adaptive\",\"display\":\"omitted\"},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"claude-opus-4-8\",\"max_tokens\":64,\"stop_sequences\":[\"END\",\"\\n\\nHuman:\",\"x\"],"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"name\":\"Read\",\"input_schema\":" TOOLS_SCHEMA "}]}" } },
    { { "{\"model\":\"big\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"big\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"Read\",\"parameters\":" TOOLS_SCHEMA "}}]}" },
      { "{\"model\":\"big\",\"stop\":[\"END\",\"x\"],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        "{\"model\":\"big\",\"stop\":[\"END\",\"x\"],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"Read\",\"parameters\":" TOOLS_SCHEMA "}}]}" } },
    { { "{\"model\":\"big\",\"input\":\"hi\",\"reasoning\":{\"summary\":\"auto\"},\"include\":[\"reasoning.encrypted_content\"]}",
        "{\"model\":\"big\",\"input\":\"hi\",\"tools\":[{\"type\":\"function\",\"name\":\"Read\",\"parameters\":" TOOLS_SCHEMA "},"
        "{\"type\":\"custom\",\"name\":\"apply_patch\"}]}" },
      { "{\"model\":\"big\",\"input\":\"hi\"}",
        "{\"model\":\"big\",\"input\":\"hi\",\"tools\":[{\"type\":\"namespace\",\"name\":\"fs\",\"tools\":"
        "[{\"type\":\"function\",\"name\":\"read\",\"parameters\":" TOOLS_SCHEMA "}]}]}" } },
};

static const char *no_env(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return NULL;
}

static int no_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err)
{
    (void)ctx;
    (void)req;
    (void)err;
    *f = (struct model_facts){ .correction = 1.0 };
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct dialect *const dialects[] = { &anthropic_dialect, &openai_dialect, &responses_dialect };
    static const struct pipeline_models models = { no_facts, NULL };
    static struct config cfg;
    static int ready;
    char err[128];
    size_t piece;
    int stops, tools;

    if (!ready) {
        config_load(&cfg, no_env, NULL, err, sizeof err);
        ready = 1;
    }
    if (size == 0)
        return 0;
    /* The fuzzer chooses stop sequences, tools, and how the reply is cut. */
    stops = data[0] & 1;
    tools = (data[0] >> 1) & 1;
    piece = (size_t)(data[0] >> 2) + 1;
    data++;
    size--;
    for (size_t i = 0; i < sizeof dialects / sizeof *dialects; i++) {
        struct chat_request req;
        struct apierr e;
        struct buf body;
        const char *text = requests[i][stops][tools];

        chat_request_init(&req);
        buf_init(&body);
        if (pipeline_request(dialects[i], text, strlen(text), &cfg, &models, &req, &body, &e) < 0) {
            fprintf(stderr, "fuzz_stream: request %zu/%d/%d refused: %s\n", i, stops, tools, e.message);
            abort();
        }
        snprintf(req.id, sizeof req.id, "%sfuzz", dialects[i]->id_prefix);
        req.created = 1700000000;
        run(dialects[i], &req, data, size, piece);
        buf_free(&body);
        chat_request_free(&req);
    }
    return 0;
}
