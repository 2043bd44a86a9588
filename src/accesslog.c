/* accesslog.c -- one line per request, to stderr (the web server's error log) or LOG_FILE. */
#include "accesslog.h"

#include <stdio.h>
#include <time.h>

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

void accesslog_write(const struct access_entry *e)
{
    struct timespec now;
    struct tm tm;
    char stamp[32];

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    /* One write per line, so lines of concurrent workers never interleave. */
    fprintf(log_out ? log_out : stderr,
            "%s.%03ldZ %s %s %s model=%s upstream_model=%s status=%d duration_ms=%.1f ttft_ms=%.1f "
            "input_tokens=%lld output_tokens=%lld outcome=%s\n",
            stamp, now.tv_nsec / 1000000, e->request_id, e->method, e->path, e->model ? e->model : "-",
            e->upstream_model ? e->upstream_model : "-", e->status, e->duration_ms, e->ttft_ms, e->input_tokens,
            e->output_tokens, e->outcome ? e->outcome : "ok");
    fflush(log_out ? log_out : stderr);
}
