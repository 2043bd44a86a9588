/* test_textcall.c -- the corpus of replies under tests/textcall/ through the text tool-call recovery,
 * fed whole, in two pieces cut at every byte, and one byte at a time.
 *
 * tools.json is what every reply was offered (Ollama's tools array). A reply in positive/NAME.txt must
 * become the calls in positive/NAME.json ({"text": the text sent before them, "calls": [{"name",
 * "arguments"}], "formats": [names]}); a reply in negative/NAME.txt must come out unchanged, byte for
 * byte, with no call. Adding a case needs no code. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"
#include "testfiles.h"
#include "textcall.h"

struct corpus_param {
    char *path;        /* the reply's .txt */
    int positive;
};

static struct json_object *parse_file(const char *path)
{
    size_t len;
    char *text = testfiles_read(path, &len);
    struct apierr err;
    struct json_object *o;

    cr_assert_not_null(text, "cannot read %s", path);
    o = jsonx_parse(text, len, &err);
    cr_assert_not_null(o, "%s: %s", path, err.message);
    free(text);
    return o;
}

/* Every reply in the corpus, however many: the list grows as it is read. A directory that cannot be read
 * stops the run, rather than leaving its replies silently untested. */
ParameterizedTestParameters(textcall, corpus)
{
    static const char *const dirs[] = { "textcall/negative", "textcall/positive" };
    struct corpus_param *params = NULL;
    size_t n = 0, cap = 0;

    for (int d = 0; d < 2; d++) {
        struct dirent **list;
        int k = scandir(dirs[d], &list, NULL, testfiles_by_name);

        if (k < 0) {
            perror(dirs[d]);
            abort();
        }
        for (int i = 0; i < k; i++) {
            size_t len = strlen(list[i]->d_name);

            if (len > 4 && strcmp(list[i]->d_name + len - 4, ".txt") == 0) {
                char *path = xmalloc(strlen(dirs[d]) + 1 + len + 1);

                if (n == cap) {
                    struct corpus_param *grown = cr_malloc((cap = cap ? cap * 2 : 64) * sizeof *grown);

                    if (params)
                        memcpy(grown, params, n * sizeof *grown);
                    params = grown;
                }
                sprintf(path, "%s/%s", dirs[d], list[i]->d_name);
                params[n].path = testfiles_cr_strdup(path);
                params[n++].positive = d;
                free(path);
            }
            free(list[i]);
        }
        free(list);
    }
    return cr_make_param_array(struct corpus_param, params, n);
}

struct outcome {
    struct buf text;
    struct json_object *calls;
    unsigned found;
};

/* The reply fed in pieces: at most `piece` bytes each, the first one cut at `split` when it is not 0. */
static void run(struct json_object *tools, const char *reply, size_t len, size_t split, size_t piece,
                struct outcome *o)
{
    struct textcall t;
    const char *out;
    size_t n, at = 0;

    textcall_init(&t, tools, TEXTCALL_ALL, 1 << 20);
    buf_init(&o->text);
    o->found = 0;
    while (at < len) {
        size_t take = split && at == 0 ? split : piece;

        if (take > len - at)
            take = len - at;
        textcall_feed(&t, reply + at, take, &out, &n);
        buf_append(&o->text, out, n);
        at += take;
    }
    o->calls = textcall_end(&t, &out, &n, &o->found);
    buf_append(&o->text, out, n);
    textcall_free(&t);
}

static unsigned formats_of(struct json_object *names)
{
    unsigned mask = 0;

    for (size_t i = 0; i < json_object_array_length(names); i++)
        for (int f = 0; f < TEXTCALL_N_FORMATS; f++)
            if (strcmp(json_object_get_string(json_object_array_get_idx(names, i)), textcall_format_name(f)) == 0)
                mask |= 1u << f;
    return mask;
}

/* Ollama-shaped calls compared with the expected [{"name", "arguments"}]. */
static void expect_calls(const char *what, struct json_object *got, struct json_object *want)
{
    size_t n = json_object_array_length(want);

    cr_assert_not_null(got, "%s: no call recovered", what);
    cr_assert_eq(json_object_array_length(got), n, "%s: %zu calls, expected %zu: %s", what,
                 json_object_array_length(got), n, json_object_to_json_string(got));
    for (size_t i = 0; i < n; i++) {
        struct json_object *fn, *name, *args, *wname, *wargs, *w = json_object_array_get_idx(want, i);

        cr_assert(json_object_object_get_ex(json_object_array_get_idx(got, i), "function", &fn));
        json_object_object_get_ex(fn, "name", &name);
        json_object_object_get_ex(fn, "arguments", &args);
        json_object_object_get_ex(w, "name", &wname);
        json_object_object_get_ex(w, "arguments", &wargs);
        cr_expect_str_eq(json_object_get_string(name), json_object_get_string(wname), "%s: call %zu", what, i);
        cr_expect(json_object_equal(args, wargs), "%s: call %zu arguments %s, expected %s", what, i,
                  json_object_to_json_string(args), json_object_to_json_string(wargs));
    }
}

ParameterizedTest(struct corpus_param *p, textcall, corpus)
{
    struct json_object *tools = parse_file("textcall/tools.json"), *want = NULL, *want_text = NULL, *want_calls = NULL,
                       *want_formats = NULL;
    size_t len;
    char *reply = testfiles_read(p->path, &len), what[600];

    cr_assert_not_null(reply, "cannot read %s", p->path);
    if (p->positive) {
        char json_path[512];

        snprintf(json_path, sizeof json_path, "%.*s.json", (int)strlen(p->path) - 4, p->path);
        want = parse_file(json_path);
        json_object_object_get_ex(want, "text", &want_text);
        json_object_object_get_ex(want, "calls", &want_calls);
        json_object_object_get_ex(want, "formats", &want_formats);
    }
    /* Whole (split 0, one piece), cut once at every byte, then a byte at a time. */
    for (size_t split = 0; split <= len; split++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            struct outcome o;

            if (bytewise && split > 0)
                break;
            run(tools, reply, len, split, bytewise ? 1 : len ? len : 1, &o);
            snprintf(what, sizeof what, "%s (%s %zu)", p->path, bytewise ? "a byte at a time" : "cut at", split);
            if (p->positive) {
                expect_calls(what, o.calls, want_calls);
                cr_expect_str_eq(o.text.data ? o.text.data : "", json_object_get_string(want_text),
                                 "%s: text sent", what);
                cr_expect_eq(o.found, formats_of(want_formats), "%s: formats %#x", what, o.found);
            } else {
                cr_expect_null(o.calls, "%s: recovered %s from a reply that is not a call", what,
                               o.calls ? json_object_to_json_string(o.calls) : "");
                cr_expect_eq(o.text.len, len, "%s: %zu bytes out of %zu", what, o.text.len, len);
                cr_expect(o.text.len == len && memcmp(o.text.data, reply, len) == 0, "%s: text changed:\n%s", what,
                          o.text.data);
            }
            json_object_put(o.calls);
            buf_free(&o.text);
        }
    }
    json_object_put(want);
    json_object_put(tools);
    free(reply);
}

/* ---- streaming stays live ---- */

struct live {
    struct textcall t;
    struct json_object *tools;
};

static void live_open(struct live *l, unsigned formats)
{
    l->tools = parse_file("textcall/tools.json");
    textcall_init(&l->t, l->tools, formats, 1 << 20);
}

static void live_close(struct live *l)
{
    textcall_free(&l->t);
    json_object_put(l->tools);
}

/* Feeds s and expects exactly `sent` to go out now. */
static void feed_expect(struct live *l, const char *s, const char *sent)
{
    const char *out;
    size_t n;

    textcall_feed(&l->t, s, strlen(s), &out, &n);
    cr_expect(n == strlen(sent) && memcmp(out, sent, n) == 0, "fed \"%s\": sent \"%.*s\", expected \"%s\"", s, (int)n,
              out, sent);
}

Test(textcall, prose_goes_out_at_once)
{
    struct live l;

    live_open(&l, TEXTCALL_ALL);
    feed_expect(&l, "The answer is 42, as the Read tool said", "The answer is 42, as the Read tool said");
    feed_expect(&l, " (see the \"name\" field).\n", " (see the \"name\" field).\n");
    live_close(&l);
}

Test(textcall, held_only_while_a_call_is_possible)
{
    struct live l;

    live_open(&l, TEXTCALL_ALL);
    feed_expect(&l, "Set it to {", "Set it to ");
    feed_expect(&l, "\"", "");
    /* No call has a key "a". */
    feed_expect(&l, "a\": 1}", "{\"a\": 1}");
    feed_expect(&l, " and {\"name\": \"Re", " and ");
    /* No tool's name starts with "Rex". */
    feed_expect(&l, "x\"}", "{\"name\": \"Rex\"}");
    feed_expect(&l, " <b", " <b");
    feed_expect(&l, "> [link](x)", "> [link](x)");
    live_close(&l);
}

Test(textcall, released_at_the_first_byte_after_a_complete_call)
{
    struct live l;

    live_open(&l, TEXTCALL_ALL);
    feed_expect(&l, "{\"name\": \"Read\", \"arguments\": {\"file_path\": \"a\"}}\n", "");
    feed_expect(&l, "D", "{\"name\": \"Read\", \"arguments\": {\"file_path\": \"a\"}}\nD");
    feed_expect(&l, "one.", "one.");
    live_close(&l);
}

Test(textcall, a_format_turned_off_is_text)
{
    struct live l;
    const char *out;
    size_t n;
    unsigned found = 0;
    const char *call = "<tool_call>{\"name\": \"Read\", \"arguments\": {}}</tool_call>";

    live_open(&l, TEXTCALL_ALL & ~(unsigned)TEXTCALL_HERMES);
    feed_expect(&l, call, call);
    cr_expect_null(textcall_end(&l.t, &out, &n, &found));
    live_close(&l);
}

Test(textcall, held_text_is_bounded)
{
    struct textcall t;
    struct json_object *tools = parse_file("textcall/tools.json");
    const char *head = "{\"name\": \"Write\", \"arguments\": {\"content\": \"", *out;
    size_t n, total = 0;
    char chunk[1000];

    textcall_init(&t, tools, TEXTCALL_ALL, 4096);
    textcall_feed(&t, head, strlen(head), &out, &n);
    total += n;
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 10; i++) {
        textcall_feed(&t, chunk, sizeof chunk, &out, &n);
        total += n;
    }
    /* Past 4096 bytes the call is given up: what was held goes out and no more is held. */
    cr_expect_geq(total, strlen(head) + 10 * sizeof chunk - 4096);
    cr_expect_leq(t.held.len, 4096);
    textcall_free(&t);
    json_object_put(tools);
}

Test(textcall, formats_setting)
{
    unsigned mask;
    char err[256];

    cr_expect_eq(textcall_parse_formats("auto", &mask, err, sizeof err), 0);
    cr_expect_eq(mask, TEXTCALL_ALL);
    cr_expect_eq(textcall_parse_formats("off", &mask, err, sizeof err), 0);
    cr_expect_eq(mask, 0);
    cr_expect_eq(textcall_parse_formats("qwen3, hermes", &mask, err, sizeof err), 0);
    cr_expect_eq(mask, TEXTCALL_QWEN3 | TEXTCALL_HERMES);
    cr_expect_eq(textcall_parse_formats("json,xml", &mask, err, sizeof err), -1);
    cr_expect(strstr(err, "\"xml\"") != NULL, "%s", err);
}

/* Names that begin alike, given in no order, one of them twice: each is recovered whole, and no prefix of
 * one passes for another. The typed value shows which of the two "Read"s counts: the first offered. */
Test(textcall, names_that_begin_alike)
{
    struct apierr err;
    const char *tools_json = "[{\"function\":{\"name\":\"ReadFile\"}},{\"function\":{\"name\":\"Read\",\"parameters\":"
                             "{\"properties\":{\"n\":{\"type\":\"integer\"}}}}},{\"function\":{\"name\":\"Re\"}},"
                             "{\"function\":{\"name\":\"Read\"}},{\"function\":{\"name\":\"Rea_d\"}}]";
    struct json_object *tools = jsonx_parse(tools_json, strlen(tools_json), &err);
    static const struct {
        const char *reply, *name, *arguments;
    } cases[] = {
        { "{\"name\": \"Read\", \"arguments\": {}}", "Read", "{ }" },
        { "{\"name\": \"Re\", \"arguments\": {}}", "Re", "{ }" },
        { "{\"name\": \"ReadFile\", \"arguments\": {}}", "ReadFile", "{ }" },
        { "{\"name\": \"Rea_d\", \"arguments\": {}}", "Rea_d", "{ }" },
        { "<function=Read><parameter=n>7</parameter></function>", "Read", "{ \"n\": 7 }" },
        { "{\"name\": \"Rea\", \"arguments\": {}}", NULL, NULL },
        { "{\"name\": \"ReadFil\", \"arguments\": {}}", NULL, NULL },
        { "{\"name\": \"ReadFiles\", \"arguments\": {}}", NULL, NULL },
        { "<function=R><parameter=n>7</parameter></function>", NULL, NULL },
    };

    cr_assert_not_null(tools);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct outcome o;

        run(tools, cases[i].reply, strlen(cases[i].reply), 0, 1, &o);
        if (!cases[i].name) {
            cr_expect_null(o.calls, "%s: recovered %s", cases[i].reply,
                           o.calls ? json_object_to_json_string(o.calls) : "");
            cr_expect_str_eq(o.text.data, cases[i].reply);
        } else {
            struct json_object *fn, *name, *args;

            cr_assert_not_null(o.calls, "%s: no call", cases[i].reply);
            cr_assert(json_object_object_get_ex(json_object_array_get_idx(o.calls, 0), "function", &fn));
            json_object_object_get_ex(fn, "name", &name);
            json_object_object_get_ex(fn, "arguments", &args);
            cr_expect_str_eq(json_object_get_string(name), cases[i].name, "%s", cases[i].reply);
            cr_expect_str_eq(json_object_to_json_string(args), cases[i].arguments, "%s", cases[i].reply);
        }
        json_object_put(o.calls);
        buf_free(&o.text);
    }
    json_object_put(tools);
}
