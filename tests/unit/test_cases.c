/* test_cases.c -- runs every case under tests/cases/<dialect>/<name>/ through the translation core.
 *
 * A case is a set of files; adding one needs no code:
 *   request.json       the client's body
 *   env                optional settings, KEY=VALUE lines (THINK_MODELS, MODEL_MAP, NUM_CTX, KEEP_ALIVE)
 *   show.json          optional: Ollama's /api/show answer for the model
 *   upstream.json      the /api/chat body Ollama must receive (compared byte for byte after
 *                      re-serialising, so key order counts)
 *   ollama.ndjson      optional: Ollama's reply, one line each
 *   expected.sse       the bytes the client must receive when the request streams
 *   expected.json      the reply the client must receive when it does not
 *   error.json         {"status": N, "body": {...}}: the error the client must get instead
 * Ids are fixed for comparison: msg_test / chatcmpl-test, created 1700000000, request id req_test.
 * With CASES_WRITE=1, an expected file that is missing or empty is written from what the core produced,
 * for a new case's author to read and check before committing it. */
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
#include "openai.h"
#include "tokens.h"

struct case_param {
    char *dialect;
    char *dir;
};

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[512];
    FILE *f;
    struct buf b;
    char chunk[8192];
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    if (len)
        *len = b.len;
    return buf_steal(&b);
}

static char *cr_strdup_(const char *s)
{
    char *p = cr_malloc(strlen(s) + 1);

    strcpy(p, s);
    return p;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

ParameterizedTestParameters(cases, translate)
{
    static const char *const dialects[] = { "anthropic", "openai", "count_tokens" };
    struct case_param *params = NULL;
    size_t n = 0, cap = 0;

    for (size_t d = 0; d < sizeof dialects / sizeof *dialects; d++) {
        char root[128];
        struct dirent **list;
        int k;

        snprintf(root, sizeof root, "cases/%s", dialects[d]);
        k = scandir(root, &list, NULL, by_name);
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
                params[n].dialect = cr_strdup_(dialects[d]);
                params[n].dir = cr_strdup_(dir);
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
    int status = e->kind == APIERR_OVERLOADED ? d->overloaded_status : e->status;

    buf_init(&body);
    buf_init(&full);
    d->error_body(e, "req_test", &body);
    buf_printf(&full, "{\"status\":%d,\"body\":%s}", status, body.data);
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

static void feed(struct chat_stream *cs, const char *ndjson)
{
    const char *line = ndjson;

    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);

        if (chat_stream_line(cs, line, len) != CHAT_MORE)
            break;
        line = end ? end + 1 : NULL;
    }
    chat_stream_eof(cs);
}

ParameterizedTest(struct case_param *p, cases, translate)
{
    const struct dialect *d = strcmp(p->dialect, "openai") == 0 ? &openai_dialect : &anthropic_dialect;
    struct env_table env = { read_file(p->dir, "env", NULL) };
    struct chat_request req;
    struct config cfg;
    struct model_facts facts = { 0, 0, 0 };
    struct apierr e;
    struct json_object *body;
    char cfg_err[256], *request, *show, *ndjson, *upstream;
    size_t len;
    int rc;

    cr_assert_eq(config_load(&cfg, env_get, &env, cfg_err, sizeof cfg_err), 0, "%s: env: %s", p->dir, cfg_err);
    request = read_file(p->dir, "request.json", &len);
    cr_assert_not_null(request, "%s: missing request.json", p->dir);
    chat_request_init(&req);
    body = jsonx_parse(request, len, &e);
    if (!body) {
        expect_error(p->dir, d, &e);
        goto out;
    }
    if (strcmp(p->dialect, "count_tokens") == 0)
        rc = anthropic_translate_count(body, &cfg, &req, &e);
    else
        rc = d->translate(body, &cfg, &req, &e);
    json_object_put(body);
    if (rc < 0) {
        expect_error(p->dir, d, &e);
        goto out;
    }
    snprintf(req.id, sizeof req.id, "%stest", d->id_prefix);
    req.created = 1700000000;
    show = read_file(p->dir, "show.json", &len);
    if (show) {
        cr_assert_eq(models_parse_show(show, len, &facts), 0, "%s: show.json is not an /api/show answer", p->dir);
        free(show);
    }
    chat_apply_facts(&req, &facts, &cfg);
    req.estimated_tokens = tokens_estimate(&req);
    if (strcmp(p->dialect, "count_tokens") == 0) {
        char got[64];

        snprintf(got, sizeof got, "{\"input_tokens\":%lld}", req.estimated_tokens);
        expect_json(p->dir, "expected.json", got, strlen(got));
        goto out;
    }
    if (chat_check_window(&req, &e) < 0) {
        expect_error(p->dir, d, &e);
        goto out;
    }
    upstream = read_file(p->dir, "upstream.json", NULL);
    if (upstream) {
        struct json_object *o = chat_ollama_body(&req, &cfg);
        struct buf sent;

        /* The bytes the worker sends, written as it writes them. */
        buf_init(&sent);
        jsonx_write(&sent, o);
        expect_json(p->dir, "upstream.json", sent.data, sent.len);
        cr_expect_str_eq(sent.data, jsonx_text(o, NULL), "%s: jsonx_write and json-c disagree", p->dir);
        buf_free(&sent);
        json_object_put(o);
        free(upstream);
    }
    ndjson = read_file(p->dir, "ollama.ndjson", NULL);
    if (ndjson) {
        struct chat_stream cs;
        struct buf out;

        buf_init(&out);
        if (req.stream) {
            struct sse_sink sink;
            void *st;
            char *want;

            sse_sink_init(&sink, frame_to_buf, &out);
            st = d->stream_new(&req, &sink);
            chat_stream_init(&cs, &req, d->ops, st, d->tool_prefix);
            feed(&cs, ndjson);
            write_missing(p->dir, "expected.sse", out.data ? out.data : "", out.len);
            want = read_file(p->dir, "expected.sse", NULL);
            cr_expect_not_null(want, "%s: missing expected.sse", p->dir);
            if (want)
                cr_expect_str_eq(out.data ? out.data : "", want, "%s/expected.sse differs; got:\n%s", p->dir,
                                 out.data ? out.data : "");
            free(want);
            chat_stream_free(&cs);
            d->stream_free(st);
            sse_sink_free(&sink);
        } else {
            struct chat_reply r;

            chat_reply_init(&r);
            chat_stream_init(&cs, &req, &chat_collect_ops, &r, d->tool_prefix);
            feed(&cs, ndjson);
            if (r.failed) {
                expect_error(p->dir, d, &r.err);
            } else {
                struct json_object *o = d->reply(&req, &r);
                size_t olen;
                const char *text = jsonx_text(o, &olen);

                expect_json(p->dir, "expected.json", text, olen);
                json_object_put(o);
            }
            chat_stream_free(&cs);
            chat_reply_free(&r);
        }
        buf_free(&out);
        free(ndjson);
    }
out:
    {
        char *refusal = read_file(p->dir, "error.json", NULL);

        /* A request that must be refused but was accepted fails here. */
        cr_expect(!refusal || error_compared, "%s: error.json says the client gets an error, but it did not", p->dir);
        free(refusal);
    }
    free(request);
    free(env.text);
    chat_request_free(&req);
    config_free(&cfg);
}
