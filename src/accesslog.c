/* accesslog.c -- one line per request, to stderr (the web server's error log) or LOG_FILE. */
#include "accesslog.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "textcall.h"

static FILE *log_out;

int accesslog_open(const char *path)
{
    if (!path) {
        log_out = stderr;
        return 0;
    }
    log_out = fopen(path, "a");
    if (!log_out) {
        log_out = stderr;
        return -1;
    }
    setvbuf(log_out, NULL, _IOLBF, 0);
    return 0;
}

/* A field as it may stand in a line: what a client chose (a path, a method, a model name) cannot start a
 * line of its own, split a field or reach a terminal as a control sequence. Bytes that are not printable
 * ASCII, spaces and backslashes become \xNN; an empty or absent field is "-". */
static const char *field(const char *s, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    if (!s || !*s)
        return "-";
    for (; *s && n + 5 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if (c > 0x20 && c < 0x7f && c != '\\') {
            out[n++] = (char)c;
        } else {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return out;
}

/* The time at the start of every line: 2026-01-01T10:00:00.123Z. */
static void stamp_now(char *out, size_t size)
{
    struct timespec now;
    struct tm tm;
    char secs[32];

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(secs, sizeof secs, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03ldZ", secs, now.tv_nsec / 1000000);
}

void accesslog_warn(const char *fmt, ...)
{
    char stamp[48], words[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(words, sizeof words, fmt, ap);
    va_end(ap);
    stamp_now(stamp, sizeof stamp);
    fprintf(log_out ? log_out : stderr, "%s warning %s\n", stamp, words);
    fflush(log_out ? log_out : stderr);
}

void accesslog_write(const struct access_entry *e)
{
    char stamp[48], method[64], path[1200], model[600], upstream[600], recovered[128] = "", dropped[400] = "";
    char cache[1200] = "";
    char key[80] = "";

    stamp_now(stamp, sizeof stamp);
    /* Only where keys are set: a pool without them keeps the line it always had. */
    if (e->key)
        snprintf(key, sizeof key, " key=%s", e->key);
    /* Marked only when it happened, so an operator can grep for the models and clients concerned. */
    if (e->dropped && *e->dropped) {
        char types[300];

        snprintf(dropped, sizeof dropped, " dropped_blocks=%s", field(e->dropped, types, sizeof types));
    }
    for (int f = 0, n = 0; f < TEXTCALL_N_FORMATS; f++)
        if (e->text_tool_calls & (1u << f))
            n += snprintf(recovered + n, sizeof recovered - (size_t)n, "%s%s", n ? "," : " text_tool_calls=",
                          textcall_format_name(f));
    /* Only when Ollama said, or when there are several hosts: lines of one Ollama without a prompt cache
     * keep the shape they always had. */
    if (e->cache_said || e->host) {
        char host[1100];
        int n = e->cache_said ? snprintf(cache, sizeof cache, " cached=%lld", e->cached_tokens) : 0;

        if (e->host)
            snprintf(cache + n, sizeof cache - (size_t)n, " host=%s", field(e->host, host, sizeof host));
    }
    /* One write per line, so lines of concurrent workers never interleave. */
    fprintf(log_out ? log_out : stderr,
            "%s %s %s %s model=%s upstream_model=%s status=%d duration_ms=%.1f ttft_ms=%.1f "
            "input_tokens=%lld output_tokens=%lld outcome=%s%s%s%s%s\n",
            stamp, e->request_id, field(e->method, method, sizeof method),
            field(e->path, path, sizeof path), field(e->model, model, sizeof model),
            field(e->upstream_model, upstream, sizeof upstream), e->status, e->duration_ms, e->ttft_ms,
            e->input_tokens, e->output_tokens, e->outcome ? e->outcome : "ok", key, recovered, dropped, cache);
    fflush(log_out ? log_out : stderr);
}
