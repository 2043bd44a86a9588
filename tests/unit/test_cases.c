/* test_cases.c -- runs every case under tests/cases/<dialect>/<name>/ through the pipeline, the stream
 * driver and the outcome decisions the worker runs. The folders are the registry's dialect names; a folder
 * no dialect owns fails the run.
 *
 * A case is a set of files; adding one needs no code:
 *   url                optional: "METHOD /path?query" the request came to (default: the dialect's first
 *                      route, under its first base), which picks the route (chat, count) and may name the
 *                      model
 *   request.json       the client's body
 *   env                optional settings, KEY=VALUE lines (THINK_MODELS, MODEL_MAP, NUM_CTX, KEEP_ALIVE)
 *   show.json          optional: Ollama's /api/show answer for the model
 *   upstream.json      the /api/chat body Ollama must receive (compared byte for byte after
 *                      re-serialising, so key order counts)
 *   ollama.ndjson      optional: Ollama's reply, one line each
 *   status             optional: the HTTP status Ollama answers with; ollama.ndjson is then its body
 *   retry.json         when the core asks again after that status (thinking refused): the body it sends
 *   retry.ndjson       and Ollama's reply to it
 *   dropped            the block types the translator left out (the access log's dropped=); required when
 *                      it left any out
 *   expected.sse       the bytes the client must receive when the request streams
 *   expected.json      the reply the client must receive when it does not (a count route: the count)
 *   error.json         {"status": N, "body": {...}}: the error the client must get instead
 * A case on a route that passes to Ollama's own API (ROUTE_PASS) has request.json only when the route takes
 * a body, upstream.json the body Ollama gets, ollama.ndjson Ollama's reply, and the client's bytes in
 * expected.ndjson when Ollama streams (line by line through the dialect's pass_reply; the file's presence
 * says it does), else expected.json for a reply it sends whole; tokens, optional: "INPUT OUTPUT", the counts the access log gets (-1: none).
 * The reply cap is the product's (MAX_REPLY_BYTES and the client's token limit: set either to test it).
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

#include "dialect.h"
#include "jsonx.h"
#include "models.h"
#include "pass.h"
#include "pipeline.h"
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

static void add_param(struct case_param **params, size_t *n, size_t *cap, const char *dialect, const char *dir)
{
    if (*n == *cap) {
        struct case_param *grown = cr_malloc((*cap = *cap ? *cap * 2 : 64) * sizeof *grown);

        if (*params)
            memcpy(grown, *params, *n * sizeof *grown);
        *params = grown;
    }
    (*params)[*n].dialect = testfiles_cr_strdup(dialect);
    (*params)[*n].dir = testfiles_cr_strdup(dir);
    (*n)++;
}

static int is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Every folder under cases/<folder>/; a folder that names no dialect becomes one case that fails. */
ParameterizedTestParameters(cases, translate)
{
    struct case_param *params = NULL;
    size_t n = 0, cap = 0;
    struct dirent **folders, **list;
    int nf = scandir("cases", &folders, NULL, testfiles_by_name);

    for (int f = 0; f < nf; f++) {
        char root[300];
        int k;

        snprintf(root, sizeof root, "cases/%s", folders[f]->d_name);
        if (folders[f]->d_name[0] != '.' && is_dir(root)) {
            if (!dialect_named(folders[f]->d_name)) {
                add_param(&params, &n, &cap, folders[f]->d_name, root);
            } else {
                k = scandir(root, &list, NULL, testfiles_by_name);
                for (int i = 0; i < k; i++) {
                    char dir[600];

                    snprintf(dir, sizeof dir, "%s/%s", root, list[i]->d_name);
                    if (list[i]->d_name[0] != '.' && is_dir(dir))
                        add_param(&params, &n, &cap, folders[f]->d_name, dir);
                    free(list[i]);
                }
                if (k >= 0)
                    free(list);
            }
        }
        free(folders[f]);
    }
    if (nf >= 0)
        free(folders);
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

/* The error the client gets, against error.json. Returns 1: an error was compared. */
static int expect_error(const char *dir, const struct dialect *d, const struct apierr *e)
{
    struct buf body, full;

    buf_init(&body);
    buf_init(&full);
    d->error_body(d, e, "req_test", &body);
    buf_printf(&full, "{\"status\":%d,\"body\":%s}", chat_error_status(d, e), body.data);
    expect_json(dir, "error.json", full.data, full.len);
    buf_free(&body);
    buf_free(&full);
    return 1;
}

static int put_to_buf(void *ctx, const char *bytes, size_t len)
{
    buf_append(ctx, bytes, len);
    return 0;
}

static int flush_nothing(void *ctx)
{
    (void)ctx;
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
 * len): the stream's bytes or the whole reply's JSON; or 1 with the error in *failure. */
static char *client_bytes(const struct dialect *d, const struct chat_request *req, const struct config *cfg,
                          const char *ndjson, size_t len, size_t split, int *failed, struct apierr *failure)
{
    struct stream s;
    struct wire_sink sink;
    struct chat_reply whole;
    struct buf out;

    buf_init(&out);
    wire_sink_init(&sink, req->wire, put_to_buf, flush_nothing, &out);
    chat_reply_init(&whole);
    stream_open(&s, d, req, req->stream ? &sink : NULL, &whole, pipeline_reply_cap(req, cfg));
    if (stream_feed(&s, ndjson, split) == STREAM_MORE && split < len)
        stream_feed(&s, ndjson + split, len - split);
    stream_eof(&s);
    stream_close(&s);
    *failed = !req->stream && pipeline_whole(d, req, &whole, &out, failure) < 0;
    chat_reply_free(&whole);
    return buf_steal(&out);
}

/* Returns 1 when the client got an error. */
static int expect_reply(const char *dir, const struct dialect *d, const struct chat_request *req,
                        const struct config *cfg, const char *ndjson, size_t len)
{
    struct apierr failure;
    int failed;
    char *want = client_bytes(d, req, cfg, ndjson, len, len, &failed, &failure), *file;

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
        char *got = client_bytes(d, req, cfg, ndjson, len, split, &split_failed, &split_failure);

        cr_expect_str_eq(got, want, "%s: split at byte %zu gives other bytes:\n%s", dir, split, got);
        cr_expect_eq(split_failed, failed, "%s: split at byte %zu changes whether it fails", dir, split);
        if (failed && split_failed)
            cr_expect_str_eq(split_failure.message, failure.message, "%s: split at byte %zu", dir, split);
        free(got);
    }
    free(want);
    return failed;
}

/* An error status from Ollama, with ollama.ndjson as its body: the client's error, or the core's retry
 * (retry.json) and the reply to it (retry.ndjson). Returns 1 when the client got an error. */
static int expect_status(const char *dir, const struct dialect *d, struct chat_request *req, const struct config *cfg,
                         const char *status, const char *body, size_t len)
{
    struct apierr e;
    struct buf again;
    char *reply;
    size_t n;
    int rc;

    buf_init(&again);
    if (pipeline_refused(req, cfg, 0, strtol(status, NULL, 10), body, len, &again, &e) != PIPELINE_RETRY) {
        cr_expect_null(read_file(dir, "retry.json", NULL), "%s: retry.json, but the core did not ask again", dir);
        buf_free(&again);
        return expect_error(dir, d, &e);
    }
    expect_json(dir, "retry.json", again.data, again.len);
    reply = read_file(dir, "retry.ndjson", &n);
    cr_assert_not_null(reply, "%s: the core asks again: missing retry.ndjson", dir);
    rc = expect_reply(dir, d, req, cfg, reply, n);
    free(reply);
    buf_free(&again);
    return rc;
}

/* The case's url file, or the dialect's first route: the route it picks and the model its path names. */
static void case_route(const char *dir, const struct dialect *d, struct dialect_match *m, const char **query)
{
    char *url = read_file(dir, "url", NULL), method[16], path[1024] = "", *q;
    const char *allowed;
    static char query_copy[1024];

    if (!url) {
        m->d = d;
        m->route = d->routes;
        m->model[0] = '\0';
        *query = "";
        return;
    }
    cr_assert_eq(sscanf(url, "%15s %1023s", method, path), 2, "%s: url is not \"METHOD /path\"", dir);
    free(url);
    q = strchr(path, '?');
    snprintf(query_copy, sizeof query_copy, "%s", q ? q + 1 : "");
    if (q)
        *q = '\0';
    *query = query_copy;
    cr_assert_eq(dialect_route(method, path, NULL, NULL, m, &allowed), DIALECT_FOUND, "%s: no route for %s %s", dir,
                 method, path);
    cr_assert_eq(m->d, d, "%s: %s %s is %s's route, not %s's", dir, method, path, m->d->name, d->name);
}

/* The access log's dropped= note against the case's dropped file. */
static void expect_dropped(const char *dir, const struct chat_request *req)
{
    char *want = read_file(dir, "dropped", NULL);

    if (want)
        want[strcspn(want, "\n")] = '\0';
    cr_expect_str_eq(req->dropped, want ? want : "", "%s: dropped \"%s\", the case's dropped file says \"%s\"", dir,
                     req->dropped, want ? want : "");
    free(want);
}

/* What the client gets from Ollama's reply (cut at split) on a passed route: the stream's lines, or the
 * whole reply; its token counts into fin; failed with the error when a whole reply failed. */
static char *pass_bytes(const struct dialect *d, const struct chat_request *req, const struct config *cfg,
                        const char *ndjson, size_t len, size_t split, int streamed, struct chat_finish *fin,
                        int *failed, struct apierr *failure)
{
    struct pass p;
    struct wire_sink sink;
    struct buf out;

    buf_init(&out);
    wire_sink_init(&sink, d->wire, put_to_buf, flush_nothing, &out);
    pass_open(&p, d, req, streamed ? &sink : NULL, streamed ? STREAM_MAX_LINE : cfg->max_reply);
    if (pass_feed(&p, ndjson, split) == PASS_MORE && split < len)
        pass_feed(&p, ndjson + split, len - split);
    pass_end(&p, &out);
    *fin = p.fin;
    *failed = !streamed && p.failed;
    *failure = p.err;
    pass_close(&p);
    return buf_steal(&out);
}

/* Ollama's reply on a passed route, against expected.ndjson (streamed) or expected.json (whole), split at
 * every byte. Returns 1 when the client got an error. */
static int expect_passed(const char *dir, const struct dialect *d, const struct chat_request *req,
                         const struct config *cfg, const char *ndjson, size_t len)
{
    char *lines = read_file(dir, "expected.ndjson", NULL), *tokens = read_file(dir, "tokens", NULL), *want, *file;
    int streamed = lines != NULL, failed;
    struct chat_finish fin;
    struct apierr failure;

    want = pass_bytes(d, req, cfg, ndjson, len, len, streamed, &fin, &failed, &failure);
    if (failed) {
        expect_error(dir, d, &failure);
    } else if (streamed) {
        write_missing(dir, "expected.ndjson", want, strlen(want));
        file = read_file(dir, "expected.ndjson", NULL);
        cr_expect_str_eq(want, file, "%s/expected.ndjson differs; got:\n%s", dir, want);
        free(file);
    } else {
        expect_json(dir, "expected.json", want, strlen(want));
    }
    if (tokens) {
        long long in, out;

        cr_assert_eq(sscanf(tokens, "%lld %lld", &in, &out), 2, "%s: tokens is not \"INPUT OUTPUT\"", dir);
        cr_expect(fin.input_tokens == in && fin.output_tokens == out, "%s: tokens %lld %lld, the case says %lld %lld",
                  dir, fin.input_tokens, fin.output_tokens, in, out);
    }
    for (size_t split = 0; split < len; split++) {
        struct apierr split_failure;
        struct chat_finish split_fin;
        int split_failed;
        char *got = pass_bytes(d, req, cfg, ndjson, len, split, streamed, &split_fin, &split_failed, &split_failure);

        cr_expect_str_eq(got, want, "%s: split at byte %zu gives other bytes:\n%s", dir, split, got);
        cr_expect_eq(split_failed, failed, "%s: split at byte %zu changes whether it fails", dir, split);
        free(got);
    }
    free(want);
    free(lines);
    free(tokens);
    return failed;
}

/* A case on a ROUTE_PASS route. Returns 1 when the client got an error. */
static int pass_case(const char *dir, const struct dialect *d, const struct dialect_call *call,
                     const struct config *cfg, struct chat_request *req)
{
    struct apierr e;
    struct buf sent;
    size_t len;
    char *request = read_file(dir, "request.json", &len), *ndjson;
    int rc = 0;

    buf_init(&sent);
    if (request && d->pass_request(call, request, len, cfg, req, &sent, &e) < 0) {
        rc = expect_error(dir, d, &e);
        goto out;
    }
    if (request)
        expect_json(dir, "upstream.json", sent.data, sent.len);
    ndjson = read_file(dir, "ollama.ndjson", &len);
    if (ndjson)
        rc = expect_passed(dir, d, req, cfg, ndjson, len);
    free(ndjson);
out:
    free(request);
    buf_free(&sent);
    return rc;
}

ParameterizedTest(struct case_param *p, cases, translate)
{
    const struct dialect *d = dialect_named(p->dialect);
    struct env_table env;
    struct pipeline_models models = { case_facts, p->dir };
    struct dialect_match m;
    struct dialect_call call;
    struct chat_request req;
    struct config cfg;
    struct apierr e;
    struct buf sent;
    char cfg_err[256], *request, *ndjson, *status, *refusal;
    size_t len;
    int got_error = 0;

    cr_assert_not_null(d, "tests/%s: no dialect is named %s (the folders under tests/cases are the registry's "
                       "dialect names)", p->dir, p->dialect);
    env.text = read_file(p->dir, "env", NULL);
    cr_assert_eq(config_load(&cfg, env_get, &env, cfg_err, sizeof cfg_err), 0, "%s: env: %s", p->dir, cfg_err);
    case_route(p->dir, d, &m, &call.query);
    call.route = m.route;
    call.model = m.model[0] ? m.model : NULL;
    chat_request_init(&req);
    buf_init(&sent);
    request = NULL;
    if (m.route->kind == ROUTE_PASS) {
        got_error = pass_case(p->dir, d, &call, &cfg, &req);
        goto out;
    }
    request = read_file(p->dir, "request.json", &len);
    cr_assert_not_null(request, "%s: missing request.json", p->dir);
    if (pipeline_request(d, &call, request, len, &cfg, &models, &req, &sent, &e) < 0) {
        got_error = expect_error(p->dir, d, &e);
        goto out;
    }
    expect_dropped(p->dir, &req);
    snprintf(req.id, sizeof req.id, "%stest", d->id_prefix);
    req.created = 1700000000;
    if (m.route->kind == ROUTE_COUNT) {
        expect_json(p->dir, "expected.json", sent.data, sent.len);
        goto out;
    }
    /* The bytes the worker sends. */
    expect_json(p->dir, "upstream.json", sent.data, sent.len);
    ndjson = read_file(p->dir, "ollama.ndjson", &len);
    status = read_file(p->dir, "status", NULL);
    if (ndjson && status)
        got_error = expect_status(p->dir, d, &req, &cfg, status, ndjson, len);
    else if (ndjson)
        got_error = expect_reply(p->dir, d, &req, &cfg, ndjson, len);
    free(ndjson);
    free(status);
out:
    /* A request that must be refused but was accepted fails here. */
    refusal = read_file(p->dir, "error.json", NULL);
    cr_expect(!refusal || got_error, "%s: error.json says the client gets an error, but it did not", p->dir);
    free(refusal);
    buf_free(&sent);
    free(request);
    free(env.text);
    chat_request_free(&req);
    config_free(&cfg);
}
