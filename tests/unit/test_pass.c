/* test_pass.c -- the pass driver's rules that are not mappings (those are cases under tests/cases/ollama_api):
 * a line past the cap ends the stream with an error line, a client that left stops it, nothing follows the
 * last line. */
#include <criterion/criterion.h>
#include <string.h>

#include "dialect.h"
#include "pass.h"

struct sink_buf {
    struct buf out;
    int gone;                      /* put fails, as once the client has left */
    int flushes;
};

static int sink_put(void *ctx, const char *bytes, size_t len)
{
    struct sink_buf *s = ctx;

    if (s->gone)
        return -1;
    buf_append(&s->out, bytes, len);
    return 0;
}

static int sink_flush(void *ctx)
{
    ((struct sink_buf *)ctx)->flushes++;
    return 0;
}

struct fixture {
    struct chat_request req;
    struct sink_buf s;
    struct wire_sink sink;
    struct pass p;
};

static void open_stream(struct fixture *f, size_t cap)
{
    const struct dialect *d = dialect_named("ollama_api");

    cr_assert_not_null(d);
    memset(f, 0, sizeof *f);
    chat_request_init(&f->req);
    buf_init(&f->s.out);
    wire_sink_init(&f->sink, d->wire, sink_put, sink_flush, &f->s);
    pass_open(&f->p, d, &f->req, &f->sink, cap);
}

static void close_stream(struct fixture *f)
{
    pass_close(&f->p);
    buf_free(&f->s.out);
    chat_request_free(&f->req);
}

Test(pass, a_line_past_the_cap_ends_the_stream_with_an_error_line)
{
    struct fixture f;
    char line[100];

    open_stream(&f, 64);
    cr_expect_eq(pass_feed(&f.p, "{\"response\":\"a\",\"done\":false}\n", 31), PASS_MORE);
    memset(line, 'x', sizeof line);
    /* Held across two feeds: the cap counts what is held. */
    cr_expect_eq(pass_feed(&f.p, line, 40), PASS_MORE);
    cr_expect_eq(pass_feed(&f.p, line, 40), PASS_DONE);
    cr_expect(f.p.failed);
    buf_putc(&f.s.out, '\0');
    cr_expect_str_eq(f.s.out.data, "{\"response\":\"a\",\"done\":false}\n"
                                   "{\"error\":\"Ollama sent a line longer than 64 bytes\"}\n");
    cr_expect_eq(f.s.flushes, 2, "one flush per line");
    cr_expect_eq(pass_feed(&f.p, "{}\n", 3), PASS_DONE, "nothing passes after the error");
    close_stream(&f);
}

Test(pass, a_client_that_left_stops_the_stream)
{
    struct fixture f;

    open_stream(&f, 1024);
    f.s.gone = 1;
    cr_expect_eq(pass_feed(&f.p, "{\"response\":\"a\",\"done\":false}\n", 31), PASS_GONE);
    close_stream(&f);
}

Test(pass, nothing_passes_after_the_last_line)
{
    struct fixture f;
    static const char reply[] = "{\"response\":\"\",\"done\":true,\"prompt_eval_count\":5,\"eval_count\":2}\n{\"late\":1}\n";

    open_stream(&f, 1024);
    cr_expect_eq(pass_feed(&f.p, reply, sizeof reply - 1), PASS_DONE);
    cr_expect(f.p.last);
    cr_expect_eq(f.p.fin.input_tokens, 5);
    cr_expect_eq(f.p.fin.output_tokens, 2);
    cr_expect_eq(pass_end(&f.p, NULL), PASS_DONE);
    buf_putc(&f.s.out, '\0');
    cr_expect_str_eq(f.s.out.data, "{\"response\":\"\",\"done\":true,\"prompt_eval_count\":5,\"eval_count\":2}\n");
    close_stream(&f);
}
