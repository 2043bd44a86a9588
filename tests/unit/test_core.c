/* test_core.c -- the core's rules that are not request/response mappings: strict JSON, globs, settings,
 * stop-sequence matching across chunks, model facts and lists, the token estimate, the stream driver's
 * limits and repairs. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dialect.h"
#include "config.h"
#include "jsonx.h"
#include "models.h"
#include "openai.h"
#include "pipeline.h"
#include "stopseq.h"
#include "stream.h"
#include "tokens.h"

static const char *no_env(const char *name, void *ctx)
{
    (void)name;
    (void)ctx;
    return NULL;
}

static int rejects(const char *text, size_t len, const char *needle)
{
    struct apierr e;
    struct json_object *o = jsonx_parse(text, len, &e);

    if (o) {
        json_object_put(o);
        return 0;
    }
    return e.status == 400 && strstr(e.message, needle) != NULL;
}

Test(jsonx, rejects_what_json_does_not_allow)
{
    char deep[400];

    cr_expect(rejects("", 0, "empty"));
    cr_expect(rejects("{\"a\":1,}", 8, "not valid JSON"));
    cr_expect(rejects("{\"a\":1} x", 9, "not valid JSON"));
    cr_expect(rejects("{\"a\":\"\xff\"}", 9, "not valid JSON"));
    cr_expect(rejects("{'a':1}", 7, "not valid JSON"));
    cr_expect(rejects("{\"a\":1}\0", 8, "NUL"));
    cr_expect(rejects("{\"a\":", 5, "unexpected end"));
    memset(deep, '[', sizeof deep);
    cr_expect(rejects(deep, sizeof deep, "not valid JSON"));
}

Test(jsonx, accepts_json_with_trailing_space_and_bare_numbers)
{
    struct apierr e;
    struct json_object *o = jsonx_parse("{\"a\":[1,2.5,\"\\u00e9\"]}\n  ", 24, &e);

    cr_assert_not_null(o, "%s", e.message);
    json_object_put(o);
    o = jsonx_parse("42", 2, &e);
    cr_assert_not_null(o);
    cr_expect_eq(json_object_get_int(o), 42);
    json_object_put(o);
}

Test(jsonx, escapes_every_control_character)
{
    struct buf b;

    buf_init(&b);
    jsonx_put_string(&b, "a\"b\\c\n\x01\x1f/\xc3\xa9", 11);
    cr_expect_str_eq(b.data, "\"a\\\"b\\\\c\\n\\u0001\\u001f/\xc3\xa9\"");
    buf_free(&b);
}

Test(jsonx, write_gives_the_bytes_json_c_gives)
{
    const char *docs[] = {
        "{\"a\":[1,-2,3.25,1e5,true,false,null],\"b\":{\"c\":\"q\\\"uote\\\\ \\n\\t\\u0001 /\\u00e9\"}}",
        "[]", "{}", "\"\"", "[{\"x\":[[],{}]}]", "{\"k\\\"ey\":0.1}",
    };
    struct apierr e;
    struct buf b;

    buf_init(&b);
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) {
        struct json_object *o = jsonx_parse(docs[i], strlen(docs[i]), &e);

        cr_assert_not_null(o, "%s: %s", docs[i], e.message);
        buf_reset(&b);
        jsonx_write(&b, o);
        cr_expect_str_eq(b.data, jsonx_text(o, NULL));
        json_object_put(o);
    }
    buf_free(&b);
}

Test(config, glob_patterns)
{
    cr_expect(config_same_model("claude-*haiku*", "claude-haiku-4-5-20251001"));
    cr_expect(config_same_model("claude-*haiku*", "claude-3-5-haiku-20241022"));
    cr_expect(!config_same_model("claude-*haiku*", "claude-opus-4-8"));
    cr_expect(config_same_model("*", "anything"));
    cr_expect(config_same_model("a*b*c", "aXXbYYc"));
    cr_expect(!config_same_model("a*b*c", "aXXbYY"));
    cr_expect(config_same_model("exact", "exact"));
    cr_expect(!config_same_model("exact", "exactly"));
}

static const char *map_env(const char *name, void *ctx)
{
    (void)ctx;
    if (strcmp(name, "MODEL_MAP") == 0)
        return "claude-*haiku*=qwen3:4b, claude-*=qwen3-coder:30b";
    if (strcmp(name, "THINK_MODELS") == 0)
        return "qwen3:4b, deepseek-r1, gpt-oss*";
    if (strcmp(name, "OLLAMA_BASE_URL") == 0)
        return "http://gpu:11434/";
    return NULL;
}

Test(config, model_map_first_match_wins_and_defaults)
{
    struct config cfg;
    char err[256];

    cr_assert_eq(config_load(&cfg, map_env, NULL, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(config_map_model(&cfg, "claude-haiku-4-5-20251001"), "qwen3:4b");
    cr_expect_str_eq(config_map_model(&cfg, "claude-opus-4-8"), "qwen3-coder:30b");
    cr_expect_str_eq(config_map_model(&cfg, "llama3"), "llama3");
    cr_expect(config_is_think_model(&cfg, "deepseek-r1"));
    cr_expect(config_is_think_model(&cfg, "deepseek-r1:latest"), "deepseek-r1 names deepseek-r1:latest");
    cr_expect(!config_is_think_model(&cfg, "deepseek-r1:70b"));
    cr_expect(!config_is_think_model(&cfg, "llama3"));
    cr_expect(config_is_think_model(&cfg, "gpt-oss:20b"), "globs in THINK_MODELS");
    cr_expect_str_eq(cfg.ollama_url, "http://gpu:11434");
    cr_expect_eq(cfg.num_ctx, 65536);
    cr_expect_eq(cfg.ping_interval, 10);
    cr_expect_eq(cfg.max_body, 32u * 1024 * 1024);
    config_free(&cfg);
    cr_assert_eq(config_load(&cfg, no_env, NULL, err, sizeof err), 0);
    cr_expect_str_eq(cfg.ollama_url, "http://localhost:11434");
    config_free(&cfg);
}

static const char *bad_env(const char *name, void *ctx)
{
    return strcmp(name, (const char *)ctx) == 0 ? "nonsense" : NULL;
}

Test(config, bad_settings_are_named)
{
    static const char *const names[] = { "NUM_CTX", "PING_INTERVAL", "MAX_BODY_BYTES", "MODEL_MAP",
                                         "OLLAMA_BASE_URL", "WORKERS" };
    struct config cfg;
    char err[256];

    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        cr_expect_eq(config_load(&cfg, bad_env, (void *)names[i], err, sizeof err), -1, "%s accepted", names[i]);
        cr_expect(strstr(err, names[i]) != NULL, "error does not name %s: %s", names[i], err);
        config_free(&cfg);
    }
}

/* Feeds chunks; returns everything emitted, with "|STOP:<seq>" where a sequence matched. */
static char *run_stop(char *const *seqs, size_t n, const char *const *chunks, size_t k)
{
    struct stopseq m;
    struct buf out;
    const char *s;
    size_t len;

    buf_init(&out);
    stopseq_init(&m, seqs, n);
    for (size_t i = 0; i < k; i++) {
        int hit = stopseq_feed(&m, chunks[i], strlen(chunks[i]), &s, &len);

        buf_append(&out, s, len);
        if (hit >= 0) {
            buf_printf(&out, "|STOP:%s", seqs[hit]);
            goto done;
        }
    }
    stopseq_flush(&m, &s, &len);
    buf_append(&out, s, len);
done:
    stopseq_free(&m);
    return buf_steal(&out);
}

Test(stopseq, matches_across_chunks_and_releases_false_starts)
{
    char *seqs[] = { "END", "\n\nHuman:" };
    const char *a[] = { "Hello E", "N", "D and more" };
    const char *b[] = { "Hello E", "NX", " world" };
    const char *c[] = { "text\n", "\nHum", "an: hi" };
    const char *d[] = { "no stop at all" };
    char *r;

    r = run_stop(seqs, 2, a, 3);
    cr_expect_str_eq(r, "Hello |STOP:END");
    free(r);
    r = run_stop(seqs, 2, b, 3);
    cr_expect_str_eq(r, "Hello ENX world");
    free(r);
    r = run_stop(seqs, 2, c, 3);
    cr_expect_str_eq(r, "text|STOP:\n\nHuman:");
    free(r);
    r = run_stop(seqs, 2, d, 1);
    cr_expect_str_eq(r, "no stop at all");
    free(r);
}

Test(stopseq, holds_back_only_a_possible_start)
{
    char *seqs[] = { "STOP" };
    struct stopseq m;
    const char *s;
    size_t len;

    stopseq_init(&m, seqs, 1);
    cr_expect_eq(stopseq_feed(&m, "abcST", 5, &s, &len), -1);
    cr_expect_eq(len, 3);
    cr_expect_eq(strncmp(s, "abc", 3), 0);
    cr_expect_eq(stopseq_feed(&m, "x", 1, &s, &len), -1);
    cr_expect_eq(len, 3);
    cr_expect_eq(strncmp(s, "STx", 3), 0);
    stopseq_free(&m);
}

Test(models, facts_from_api_show)
{
    const char *show = "{\"capabilities\":[\"completion\",\"tools\",\"thinking\"],\"model_info\":"
                       "{\"general.architecture\":\"qwen3\",\"qwen3.context_length\":40960}}";
    struct model_facts f;

    cr_assert_eq(models_parse_show(show, strlen(show), &f), 0);
    cr_expect(f.known);
    cr_expect(f.can_think);
    cr_expect_eq(f.context_length, 40960);
    cr_expect_eq(models_parse_show("nope", 4, &f), -1);
}

/* The estimate a request gets once the model's facts are applied. */
static long long scaled(const struct model_facts *f, long long raw)
{
    struct chat_request req;
    struct config cfg;
    char err[64];
    long long n;

    cr_assert_eq(config_load(&cfg, no_env, NULL, err, sizeof err), 0);
    chat_request_init(&req);
    req.raw_estimate = raw;
    chat_apply_facts(&req, f, &cfg);
    n = req.estimated_tokens;
    chat_request_free(&req);
    config_free(&cfg);
    return n;
}

Test(models, estimate_learns_from_real_counts)
{
    struct models_cache c = { NULL, 0 };
    struct model_facts f = { .known = 1, .correction = 1.0 }, unknown = { .known = 0 };
    struct models_entry *e = models_put(&c, "m", &f);

    cr_expect_eq(scaled(&e->facts, 1000), 1000);
    models_learn(e, 1000, 1500);
    cr_expect_eq(scaled(&e->facts, 1000), 1250);
    models_learn(e, 1000, 1500);
    cr_expect_eq(scaled(&e->facts, 1000), 1375);
    models_learn(e, 1000, 10);   /* a cache-hit count from an older Ollama teaches nothing */
    cr_expect_eq(scaled(&e->facts, 1000), 1375);
    e = models_put(&c, "m", &f);   /* /api/show asked again: what the replies taught stays */
    cr_expect_eq(scaled(&e->facts, 1000), 1375);
    cr_expect_eq(scaled(&unknown, 1000), 1000);
    models_cache_free(&c);
}

Test(models, lists_in_both_shapes)
{
    const char *tags = "{\"models\":[{\"name\":\"llama3:latest\",\"modified_at\":\"2025-05-04T17:37:44.7-07:00\"},"
                       "{\"name\":\"qwen3:4b\",\"modified_at\":\"2026-01-01T00:00:00Z\"}]}";
    struct apierr e;
    struct json_object *t = jsonx_parse(tags, strlen(tags), &e), *o;

    cr_assert_not_null(t);
    o = dialect_named("openai")->models(t, NULL);
    cr_expect_str_eq(jsonx_text(o, NULL),
                     "{\"object\":\"list\",\"data\":[{\"id\":\"llama3:latest\",\"object\":\"model\",\"created\":1746405464,"
                     "\"owned_by\":\"ollama\"},{\"id\":\"qwen3:4b\",\"object\":\"model\",\"created\":1767225600,"
                     "\"owned_by\":\"ollama\"}]}");
    json_object_put(o);
    o = dialect_named("anthropic")->models(t, NULL);
    cr_expect_str_eq(jsonx_text(o, NULL),
                     "{\"data\":[{\"type\":\"model\",\"id\":\"llama3:latest\",\"display_name\":\"llama3:latest\","
                     "\"created_at\":\"2025-05-04T17:37:44.7-07:00\"},{\"type\":\"model\",\"id\":\"qwen3:4b\","
                     "\"display_name\":\"qwen3:4b\",\"created_at\":\"2026-01-01T00:00:00Z\"}],\"has_more\":false,"
                     "\"first_id\":\"llama3:latest\",\"last_id\":\"qwen3:4b\"}");
    json_object_put(o);
    o = dialect_named("openai")->models(t, "llama3");
    cr_assert_not_null(o, "llama3 is llama3:latest");
    json_object_put(o);
    cr_expect_null(dialect_named("anthropic")->models(t, "missing"));
    json_object_put(t);
}

/* The stream driver's own rules, beyond what the cases show: the longest line, a line split across reads
 * that is longer than any one read, and the end of a reply. */
static int to_buf(void *ctx, const char *bytes, size_t len)
{
    buf_append(ctx, bytes, len);
    return 0;
}

static int no_flush(void *ctx)
{
    (void)ctx;
    return 0;
}

static void open_collector(struct stream *s, struct chat_request *req, struct chat_reply *r)
{
    chat_request_init(req);
    req->client_model = xstrdup("m");
    req->ollama_model = xstrdup("m");
    snprintf(req->id, sizeof req->id, "msg_test");
    chat_reply_init(r);
    stream_open(s, dialect_named("anthropic"), req, NULL, r, 1u << 20);
}

/* A line of Ollama's whose shape would cost far more than its size once parsed ("[{},{},...]" in a
 * tool call) is refused before it is built, as a client's body is. */
Test(stream, a_line_dense_past_its_parse_budget_ends_the_reply_with_an_error)
{
    static const char head[] = "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":"
                               "{\"name\":\"Write\",\"arguments\":{\"a\":[";
    static const char tail[] = "{}]}}}]},\"done\":false}\n";
    struct chat_request req;
    struct chat_reply r;
    struct stream s;
    struct buf line;

    buf_init(&line);
    buf_puts(&line, head);
    /* 200 KB of "{}," cost about 260 bytes a byte: 50 MiB against a budget of 25 MiB. */
    for (int i = 0; i < 200000 / 3; i++)
        buf_puts(&line, "{},");
    buf_puts(&line, tail);
    open_collector(&s, &req, &r);
    cr_expect_eq(stream_feed(&s, line.data, line.len), STREAM_DONE);
    cr_expect(r.failed, "the line was parsed whole");
    cr_expect(strstr(r.err.message, "not a chat chunk") != NULL, "%s", r.err.message);
    stream_close(&s);
    chat_reply_free(&r);
    chat_request_free(&req);
    buf_free(&line);
}

Test(stream, a_line_past_the_limit_ends_the_reply_with_an_error)
{
    struct chat_request req;
    struct chat_reply r;
    struct stream s;
    char *chunk = xmalloc(1u << 20);

    memset(chunk, ' ', 1u << 20);
    open_collector(&s, &req, &r);
    for (unsigned i = 0; i < STREAM_MAX_LINE / (1u << 20); i++)
        cr_assert_eq(stream_feed(&s, chunk, 1u << 20), STREAM_MORE);
    cr_expect_eq(stream_feed(&s, "x", 1), STREAM_DONE, "one byte past the limit must end the reply");
    cr_expect(r.failed);
    cr_expect(strstr(r.err.message, "longer than") != NULL, "%s", r.err.message);
    stream_close(&s);
    chat_reply_free(&r);
    chat_request_free(&req);
    free(chunk);
}

Test(stream, crlf_lines_a_last_line_without_newline_and_bytes_after_done)
{
    static const char reply[] =
        "{\"message\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"done\":false}\r\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"lo\"},\"done\":false}\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\","
        "\"prompt_eval_count\":9223372036854775807,\"eval_count\":9223372036854775807}";
    struct chat_request req;
    struct chat_reply r;
    struct stream s;

    open_collector(&s, &req, &r);
    cr_assert_eq(stream_feed(&s, reply, sizeof reply - 1), STREAM_MORE);
    cr_assert_eq(stream_eof(&s), 0);
    cr_expect(!r.failed, "%s", r.err.message);
    cr_expect_str_eq(r.text.data, "Hello");
    cr_expect_eq(r.finish.input_tokens, 9223372036854775807LL);
    cr_expect_eq(chat_sum_tokens(r.finish.input_tokens, r.finish.output_tokens), 9223372036854775807LL,
                 "token counts saturate instead of overflowing");
    cr_expect_eq(stream_feed(&s, "{\"garbage\n", 10), STREAM_DONE, "nothing after the last line is read");
    stream_close(&s);
    chat_reply_free(&r);
    chat_request_free(&req);
}

Test(stream, invalid_utf8_from_ollama_becomes_u_fffd_on_the_wire)
{
    static const char reply[] =
        "{\"message\":{\"role\":\"assistant\",\"content\":\"a\xff" "b\xc3\"},\"done\":false}\n"
        "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n";
    struct chat_request req;
    struct wire_sink sink;
    struct stream s;
    struct buf out;

    buf_init(&out);
    chat_request_init(&req);
    req.client_model = xstrdup("m");
    req.ollama_model = xstrdup("m");
    req.stream = 1;
    snprintf(req.id, sizeof req.id, "msg_test");
    wire_sink_init(&sink, &wire_sse, to_buf, no_flush, &out);
    stream_open(&s, dialect_named("anthropic"), &req, &sink, NULL, 0);
    cr_assert_eq(stream_feed(&s, reply, sizeof reply - 1), STREAM_DONE);
    cr_expect(strstr(out.data, "\"text\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\"") != NULL, "%s", out.data);
    stream_close(&s);
    buf_free(&out);
    chat_request_free(&req);
}

Test(apierr, a_message_cut_short_never_ends_inside_a_character)
{
    struct apierr e;
    char long_text[2000];
    size_t n;

    /* "é" is two bytes: after "xy", 1021 bytes are left of the 1023 a message holds, an odd number. */
    for (size_t i = 0; i + 2 < sizeof long_text; i += 2)
        memcpy(long_text + i, "\xc3\xa9", 2);
    long_text[sizeof long_text - 2] = '\0';
    apierr_set(&e, APIERR_API, 500, "xy%s", long_text);
    n = strlen(e.message);
    cr_expect_eq(n, 1022, "the message keeps whole characters only: %zu bytes", n);
    cr_expect_eq(memcmp(e.message + n - 2, "\xc3\xa9", 2), 0);
}

/* The first place a sequence ends in text, and which (the longest of those ending there), or -1. */
static int naive_stop(char *const *seqs, size_t n, const char *text, size_t *at)
{
    size_t len = strlen(text);

    for (size_t end = 1; end <= len; end++) {
        int best = -1;

        for (size_t i = 0; i < n; i++) {
            size_t sl = strlen(seqs[i]);

            if (sl <= end && memcmp(text + end - sl, seqs[i], sl) == 0 &&
                (best < 0 || sl > strlen(seqs[best])))
                best = (int)i;
        }
        if (best >= 0) {
            *at = end - strlen(seqs[best]);
            return best;
        }
    }
    return -1;
}

Test(stopseq, the_sequence_that_ends_first_wins_in_any_chunking)
{
    char *seqs[] = { "abcd", "c", "bcx", "aab" }, text[40], want[48], *got;
    unsigned seed = 12345;

    for (int round = 0; round < 2000; round++) {
        const char *chunks[40];
        char pieces[40][40];
        size_t len = 0, k = 0, at = 0;
        int hit;

        for (size_t i = 0; i < 30; i++) {
            seed = seed * 1103515245 + 12345;
            text[len++] = "abcdx"[(seed >> 16) % 5];
        }
        text[len] = '\0';
        hit = naive_stop(seqs, 4, text, &at);
        if (hit >= 0)
            snprintf(want, sizeof want, "%.*s|STOP:%s", (int)at, text, seqs[hit]);
        else
            snprintf(want, sizeof want, "%s", text);
        for (size_t i = 0; i < len; k++) {
            size_t piece = 1 + (seed >> 20) % 4;

            seed = seed * 1103515245 + 12345;
            if (piece > len - i)
                piece = len - i;
            snprintf(pieces[k], sizeof pieces[k], "%.*s", (int)piece, text + i);
            chunks[k] = pieces[k];
            i += piece;
        }
        got = run_stop(seqs, 4, chunks, k);
        cr_assert_str_eq(got, want, "text %s", text);
        free(got);
    }
}

static int no_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err)
{
    (void)ctx;
    (void)req;
    (void)err;
    memset(f, 0, sizeof *f);
    return 0;
}

/* Chat Completions: n assistant tool calls whose arguments strings are each {"a":[{},{},...]} of bytes. */
static char *dense_arguments_body(int n, size_t bytes)
{
    struct buf b;

    buf_init(&b);
    buf_puts(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"tool_calls\":[");
    for (int i = 0; i < n; i++) {
        buf_printf(&b, "%s{\"id\":\"c%d\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":[{}",
                   i ? "," : "", i);
        for (size_t k = 0; k < bytes / 3; k++)
            buf_puts(&b, ",{}");
        buf_puts(&b, "]}\"}}");
    }
    buf_puts(&b, "]}]}");
    return buf_steal(&b);
}

/* Issue 19: each arguments string had an allowance of its own, so a small body of dense arguments took
 * hundreds of MiB. Every parse of one request shares the body's budget. */
Test(pipeline, tool_call_arguments_share_the_body_parse_budget)
{
    static const struct pipeline_models models = { no_facts, NULL };
    struct config cfg;
    char err[256];
    struct apierr e;
    /* Four calls of 64 KB: each alone is well inside 24 MiB, together about 70 MiB once parsed. */
    char *body = dense_arguments_body(4, 65536), *small = dense_arguments_body(4, 300);
    const struct dialect *d = dialect_named("openai");
    struct dialect_call call = { d->routes, NULL, "" };
    struct chat_request req;
    struct buf out;

    cr_assert_eq(config_load(&cfg, no_env, NULL, err, sizeof err), 0);
    buf_init(&out);
    chat_request_init(&req);
    cr_expect_eq(pipeline_request(d, &call, body, strlen(body), &cfg, &models, &req, &out, &e), -1);
    cr_expect_eq(e.status, 413, "%d %s", e.status, e.message);
    cr_expect(strstr(e.message, "tool calls' arguments") != NULL, "%s", e.message);
    chat_request_free(&req);
    chat_request_init(&req);
    cr_expect_eq(pipeline_request(d, &call, small, strlen(small), &cfg, &models, &req, &out, &e), 0, "%s",
                 e.message);
    chat_request_free(&req);
    buf_free(&out);
    config_free(&cfg);
    free(body);
    free(small);
}

static void feed_line(struct stream *s, struct buf *line, int *rc)
{
    buf_putc(line, '\n');
    *rc = stream_feed(s, line->data, line->len);
    buf_reset(line);
}

/* Issue 19: a whole reply kept each call's arguments as text, parsed them all again once Ollama was done,
 * and counted only the text against its cap. They are kept as the objects Ollama's line held, and what
 * those hold counts. */
Test(stream, kept_tool_calls_are_objects_counted_by_what_they_hold)
{
    struct chat_request req;
    struct chat_reply r;
    struct stream s;
    struct buf line;
    const char *v;
    int rc;

    open_collector(&s, &req, &r);
    req.parts.tools = json_object_new_array();
    json_object_array_add(req.parts.tools, json_tokener_parse("{\"type\":\"function\",\"function\":{\"name\":\"f\"}}"));
    buf_init(&line);
    buf_puts(&line, "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
                    "\"arguments\":{\"a\":\"x\"}}}]},\"done\":false}");
    feed_line(&s, &line, &rc);
    cr_assert_eq(rc, STREAM_MORE);
    cr_assert_eq(r.n_calls, 1);
    cr_assert(json_object_is_type(r.calls[0].args, json_type_object));
    v = jsonx_string_at(r.calls[0].args, "a");
    cr_expect(v && strcmp(v, "x") == 0);
    /* 60 KB of {"a":[{},{},...]}: inside the line's own budget, but about 18 MiB once built. */
    buf_puts(&line, "{\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":\"f\","
                    "\"arguments\":{\"a\":[{}");
    for (int i = 0; i < 20000; i++)
        buf_puts(&line, ",{}");
    buf_puts(&line, "]}}}]},\"done\":false}");
    feed_line(&s, &line, &rc);
    cr_expect_eq(rc, STREAM_DONE);
    cr_expect(r.failed);
    cr_expect(strstr(r.err.message, "grew past") != NULL, "%s", r.err.message);
    cr_expect_eq(r.n_calls, 1);
    buf_free(&line);
    stream_close(&s);
    chat_reply_free(&r);
    chat_request_free(&req);
}
