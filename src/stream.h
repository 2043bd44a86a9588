/* stream.h -- Ollama's NDJSON reply, as raw bytes arrive, turned into a dialect's events: the one stream
 * driver every dialect and every whole reply goes through. */
#ifndef OF_STREAM_H
#define OF_STREAM_H

#include <json-c/json.h>
#include <stddef.h>

#include "chat.h"
#include "stopseq.h"
#include "textcall.h"

/* The longest NDJSON line accepted from Ollama: a tool call writing a large file fits; a runaway line
 * ends the reply with an error instead of growing without bound. */
#define STREAM_MAX_LINE (16u * 1024 * 1024)

enum { STREAM_GONE = -1, STREAM_MORE = 0, STREAM_DONE = 1 };

struct stream {
    const struct dialect *d;
    const struct chat_request *req;
    const struct stream_ops *ops;
    void *st;                      /* owned: the dialect's stream machine, or the whole reply being collected */
    struct chat_reply *whole;      /* borrowed: where a whole reply is collected, or NULL */
    size_t bytes;                  /* what the reply has held so far */
    size_t cap;                    /* the most a reply held in memory may hold, in bytes */
    size_t logprobs_held;          /* bytes of log probabilities a stream machine has not sent yet */
    struct json_tokener *tok;
    struct buf line;               /* an unfinished line, carried to the next bytes */
    struct stopseq stop;
    struct textcall calls;         /* tool calls written as text, when the request recovers them */
    int recover;
    unsigned text_calls;           /* the textcall formats of the calls recovered */
    int begun;
    int ended;                     /* finish or error sent */
    int saw_done;                  /* Ollama's last line came: nothing left to stop */
    int failed;                    /* the reply ended with an error */
    int said;                      /* some text went out */
    int n_tools;
    long long output_tokens;
    long long prompt_tokens;       /* -1 until Ollama says */
    long long cached_tokens;       /* of them, read from Ollama's prompt cache; -1 until (unless) Ollama says */
};

/* Opens the stream for req: with a sink, the dialect's stream machine writing to it; without, the collector
 * filling whole. A reply held in memory (a whole one, or one whose dialect keeps its output) ends with an
 * error past cap bytes. stream_close frees what stream_open made. */
void stream_open(struct stream *s, const struct dialect *d, const struct chat_request *req, struct wire_sink *sink,
                 struct chat_reply *whole, size_t cap);
void stream_close(struct stream *s);
/* Bytes of Ollama's reply as they arrive, split anywhere. STREAM_DONE means stop reading: the reply is
 * complete (its last line came, a stop sequence matched, or an error was sent); STREAM_GONE that the
 * client left. */
int stream_feed(struct stream *s, const char *bytes, size_t n);
/* Ollama's reply ended; an end without "done" is a failure the client must see. */
int stream_eof(struct stream *s);
int stream_begin(struct stream *s);
int stream_fail(struct stream *s, const struct apierr *e);
int stream_ping(struct stream *s);

#endif
