/* test_cases.c -- runs every case under tests/cases/<dialect>/<name>/ through the pipeline and the stream
 * driver the worker runs.
 *
 * A case is a set of files; adding one needs no code:
 *   request.json       the client's body
 *   env                optional settings, KEY=VALUE lines (THINK_MODELS, MODEL_MAP, NUM_CTX, KEEP_ALIVE)
 *   show.json          optional: Ollama's /api/show answer for the model
 *   upstream.json      the /api/chat body Ollama must receive (compared byte for byte after
 *                      re-serialising, so key order counts)
 *   ollama.ndjson      optional: Ollama's reply, one line each
 *   status             optional: the HTTP status Ollama answers with; ollama.ndjson is then its body
 *   expected.sse       the bytes the client must receive when the request streams
 *   expected.json      the reply the client must receive when it does not
 *   error.json         {"status": N, "body": {...}}: the error the client must get instead
 * Ids are fixed for comparison: msg_test / chatcmpl-test, created 1700000000, request id req_test.
 * Ollama's reply is fed whole, then again in two pieces split at every byte: the client must get the same
 * bytes every time. With CASES_WRITE=1, an expected file that is missing or empty is written from what
 * the core produced, for a new case's author to read and check before committing it. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "anthropic.h"
#include "jsonx.h"
#include "models.h"
#include "ollama.h"
#include "openai.h"
#include "pipeline.h"
#include "responses.h"
#include "stream.h"
#include "testfiles.h"

struct case_param {
    char *dialect;
    char *dir;
};

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[512];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return testfiles_read(path, len);
}

ParameterizedTestParameters(cases, translate)
{
    static const char *const dialects[] = { "anthropic", "openai", "responses", "count_tokens" };
    struct case_param *params = NULL;
    size_t n = 0, cap = 0;

    for (size_t d = 0; d < sizeof dialects / sizeof *dialects; d++) {
        char root[128];
        struct dirent **list;
        int k;

        snprintf(root, sizeof root, "cases/%s", dialects[d]);
        k = scandir(root, &list, NULL, testfiles_by_name);
        for (int i = 0; i < k; i++) {
            char dir[512];
            struct stat st;

            snprintf(dir, sizeof dir, "%s/%s", root, list[i]->d_name);
            if (list[i]->d_name[0] != '.' && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
                if (n == cap) {
                    struct case_param *grown = cr_malloc((cap = cap ? cap * 2 : 64) * sizeof *grown);

                    if (params)
                        memcpy(grown, params, n * sizeof *grown);
                    params = grown;
                }
                params[n].dialect = testfiles_cr_strdup(dialects[d]);
                params[n].dir = testfiles_cr_strdup(dir);
                n++;
            }
            free(list[i]);
        }
        if (k >= 0)
            free(list);
    }
    return cr_make_param_array(struct case_param, params, n);
}

/* Settings from the case's env file. */
struct env_table {
    char *text;
};

static const char *env_get(const char *name, void *ctx)
{
    struct env_table *t = ctx;
    static char value[4096];
    size_t nl = strlen(name);

    for (char *line = t->text; line && *line;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (len > nl && strncmp(line, name, nl) == 0 && line[nl] == '=') {
            snprintf(value, sizeof value, "%.*s", (int)(len - nl - 1), line + nl + 1);
            return value;
        }
        line = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Under CASES_WRITE=1, fills an empty or missing expected file; returns 1 when it did. */
static int write_missing(const char *dir, const char *name, const char *got, size_t len)
{
    char path[512];
    struct stat st;
    FILE *f;

    if (!getenv("CASES_WRITE"))
        return 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st) == 0 && st.st_size > 0)
        return 0;
    f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fwrite(got, 1, len, f);
    if (len && got[len - 1] != '\n' && strstr(name, ".json"))
        fputc('\n', f);
    fclose(f);
    return 1;
}

static char *canonical(const char *text, size_t len, const char *what)
{
    struct apierr e;
    struct json_object *o = jsonx_parse(text, len, &e);
    char *out;

    cr_assert_not_null(o, "%s is not valid JSON: %s", what, e.message);
    out = xstrdup(jsonx_text(o, NULL));
    json_object_put(o);
    return out;
}

static void expect_json(const char *dir, const char *file, const char *got, size_t got_len)
{
    size_t len;
    char *want, *w, *g;

    if (write_missing(dir, file, got, got_len))
        return;
    want = read_file(dir, file, &len);
    cr_assert_not_null(want, "%s: missing %s", dir, file);
    w = canonical(want, len, file);
    g = canonical(got, got_len, "the adapter's output");
    cr_expect_str_eq(g, w, "%s/%s differs:\n got: %s\nwant: %s", dir, file, g, w);
    free(want);
    free(w);
    free(g);
}

static int error_compared;   /* one case per test process: Criterion forks each */

static void expect_error(const char *dir, const struct dialect *d, const struct apierr *e)
{
    struct buf body, full;

    buf_init(&body);
    buf_init(&full);
    d->error_body(d, e, "req_test", &body);
    buf_printf(&full, "{\"status\":%d,\"body\":%s}", chat_error_status(d, e), body.data);
    expect_json(dir, "error.json", full.data, full.len);
    error_compared = 1;
    buf_free(&body);
    buf_free(&full);
}

static int frame_to_buf(void *ctx, const char *bytes, size_t len)
{
    buf_append(ctx, bytes, len);
    return 0;
}

/* The case's show.json, as the worker's cache would give it. */
static int case_facts(void *ctx, const struct chat_request *req, struct model_facts *f, struct apierr *err)
{
    const char *dir = ctx;
    size_t len;
    char *show = read_file(dir, "show.json", &len);

    (void)req;
    (void)err;
    memset(f, 0, sizeof *f);
    if (show) {
        cr_assert_eq(models_parse_show(show, len, f), 0, "%s: show.json is not an /api/show answer", dir);
        free(show);
    }
    return 0;
}

/* What the client gets from Ollama's reply fed in two pieces cut at split (or whole when split is
 * len): the SSE bytes or the whole reply's JSON; or 1 with the error in *failure. */
static char *client_bytes(const struct dialect *d, const struct chat_request *req, const char *ndjson, size_t len,
                          size_t split, int *failed, struct apierr *failure)
{
    struct stream s;
    struct sse_sink sink;
    struct chat_reply whole;
    struct buf out;

    buf_init(&out);
    sse_sink_init(&sink, frame_to_buf, &out);
    chat_reply_init(&whole);
    stream_open(&s, d, req, req->stream ? &sink : NULL, &whole, 1u << 20);
    if (stream_feed(&s, ndjson, split) == STREAM_MORE && split < len)
        stream_feed(&s, ndjson + split, len - split);
    stream_eof(&s);
    stream_close(&s);
    sse_sink_free(&sink);
    *failed = !req->stream && whole.failed;
    if (*failed) {
        *failure = whole.err;
    } else if (!req->stream) {
        d->reply(req, &whole, &out);
    }
    chat_reply_free(&whole);
    return buf_steal(&out);
}

static void expect_reply(const char *dir, const struct dialect *d, const struct chat_request *req, const char *ndjson,
                         size_t len)
{
    struct apierr failure;
    int failed;
    char *want = client_bytes(d, req, ndjson, len, len, &failed, &failure), *file;

    if (failed) {
        expect_error(dir, d, &failure);
    } else if (req->stream) {
        write_missing(dir, "expected.sse", want, strlen(want));
        file = read_file(dir, "expected.sse", NULL);
        cr_expect_not_null(file, "%s: missing expected.sse", dir);
        if (file)
            cr_expect_str_eq(want, file, "%s/expected.sse differs; got:\n%s", dir, want);
        free(file);
    } else {
        expect_json(dir, "expected.json", want, strlen(want));
    }
    /* Ollama's bytes come in pieces of any size: every split gives the client the same bytes. */
    for (size_t split = 0; split < len; split++) {
        struct apierr split_failure;
        int split_failed;
        char *got = client_bytes(d, req, ndjson, len, split, &split_failed, &split_failure);

        cr_expect_str_eq(got, want, "%s: split at byte %zu gives other bytes:\n%s", dir, split, got);
        cr_expect_eq(split_failed, failed, "%s: split at byte %zu changes whether it fails", dir, split);
        if (failed && split_failed)
            cr_expect_str_eq(split_failure.message, failure.message, "%s: split at byte %zu", dir, split);
        free(got);
    }
    free(want);
}

/* An error status from Ollama, with ollama.ndjson as its body. */
static void expect_status_error(const char *dir, const struct dialect *d, const struct chat_request *req,
                                const char *status, const char *body, size_t len)
{
    struct apierr e;

    ollama_status_error(strtol(status, NULL, 10), body, len, req, &e);
    expect_error(dir, d, &e);
}

static const struct dialect *case_dialect(const char *name)
{
    if (strcmp(name, "openai") == 0)
        return &openai_dialect;
    if (strcmp(name, "responses") == 0)
        return &responses_dialect;
    if (strcmp(name, "count_tokens") == 0)
        return &anthropic_count_dialect;
    return &anthropic_dialect;
}

ParameterizedTest(struct case_param *p, cases, translate)
{
    const struct dialect *d = case_dialect(p->dialect);
    struct env_table env = { read_file(p->dir, "env", NULL) };
    struct pipeline_models models = { case_facts, p->dir };
    struct chat_request req;
    struct config cfg;
    struct apierr e;
    struct buf sent;
    char cfg_err[256], *request, *ndjson, *status;
    size_t len;

    cr_assert_eq(config_load(&cfg, env_get, &env, cfg_err, sizeof cfg_err), 0, "%s: env: %s", p->dir, cfg_err);
    request = read_file(p->dir, "request.json", &len);
    cr_assert_not_null(request, "%s: missing request.json", p->dir);
    chat_request_init(&req);
    buf_init(&sent);
    if (pipeline_request(d, request, len, &cfg, &models, &req, &sent, &e) < 0) {
        expect_error(p->dir, d, &e);
        goto out;
    }
    snprintf(req.id, sizeof req.id, "%stest", d->id_prefix);
    req.created = 1700000000;
    if (d->count_only) {
        char got[64];

        snprintf(got, sizeof got, "{\"input_tokens\":%lld}", req.estimated_tokens);
        expect_json(p->dir, "expected.json", got, strlen(got));
        goto out;
    }
    /* The bytes the worker sends. */
    expect_json(p->dir, "upstream.json", sent.data, sent.len);
    ndjson = read_file(p->dir, "ollama.ndjson", &len);
    status = read_file(p->dir, "status", NULL);
    if (ndjson && status)
        expect_status_error(p->dir, d, &req, status, ndjson, len);
    else if (ndjson)
        expect_reply(p->dir, d, &req, ndjson, len);
    free(ndjson);
    free(status);
out:
    {
        char *refusal = read_file(p->dir, "error.json", NULL);

        /* A request that must be refused but was accepted fails here. */
        cr_expect(!refusal || error_compared, "%s: error.json says the client gets an error, but it did not", p->dir);
        free(refusal);
    }
    buf_free(&sent);
    free(request);
    free(env.text);
    chat_request_free(&req);
    config_free(&cfg);
}
