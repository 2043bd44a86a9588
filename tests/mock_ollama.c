/* mock_ollama.c -- a scripted stand-in for Ollama's HTTP API that the tests drive, hold back and inspect.
 *
 * Usage: mock-ollama PORT [SCENARIO_DIR]. PORT 0 takes any free port; "listening PORT" on stdout says
 * which, once connections are accepted. SIGINT or SIGTERM ends it.
 *
 * POST /api/chat (and /api/generate, whose scripts hold "response" lines) plays the script of the request's
 * model: one installed with PUT /_mock/scenario/<model>, else SCENARIO_DIR/<model>.ndjson (characters of the
 * name other than A-Z a-z 0-9 . _ - read as _). A script is NDJSON lines, sent as they are, and directives:
 *
 *   @status N          answer status N (200-599) instead of 200; a reply other than 200 is not streamed,
 *                      its body is the script's lines
 *   @reject-think      answer 400 "does not support thinking" when the request asks for thinking
 *   @hold              wait here until POST /_mock/release lets one hold go on
 *   @sleep MS          wait MS milliseconds
 *   @close             close the connection here, leaving the reply unfinished
 *   @raw TEXT          send TEXT as a line, even when it starts with @ or is empty
 *   @chunks SIZES [MS] from here on, cut the reply's bytes into pieces whose sizes go round the comma-
 *                      separated SIZES (@chunks 1: every byte alone; @chunks 3,1,7: 3, 1, 7, 3, 1, ...
 *                      bytes), each piece its own send() and its own HTTP chunk, MS milliseconds apart
 *                      (default 1, so the reader takes them in separate reads). Pieces cut anywhere:
 *                      inside a line, inside a UTF-8 character, across lines (two lines' bytes in one
 *                      piece). A piece still short when the script pauses (@hold, @sleep, @close, @chunks)
 *                      or ends goes out short, so nothing said waits on what comes after.
 *   @chunks off        back to one HTTP chunk per line, the default
 *   @repeat N          send the next line (plain or @raw) N times, up to 10^12: a reply without end
 *   @next              the end of this request's reply: the model's next request plays the script from
 *                      here to the next @next, and so on; the last part plays for every request after
 *   @prompt-cache      play a prompt cache: the last line with "done":true gets prompt_eval_count (the
 *                      request body's bytes / 4) and prompt_eval_cached_count (the bytes it shares from its
 *                      start with the most alike of the last MOCK_CACHE_SLOTS (default 4) bodies for the
 *                      same model on this mock, / 4; at most prompt_eval_count - 1), as a real Ollama
 *                      with that many parallel slots would reuse its KV cache (a body takes the slot it
 *                      goes on from, sharing at least half of it, else the least recently used one)
 *   @when TEXT         (first line of a part) the part plays only for a request whose body holds TEXT:
 *                      each request plays the first part not yet played whose @when it meets (a part
 *                      without one meets any), else the last part it meets again -- so concurrent
 *                      requests (a main session and its subagent) each get their own answer
 *
 * @status and @reject-think hold for the whole reply wherever they stand; the others act where they stand.
 * Blank lines are skipped. A directive the mock does not understand makes the reply a 500 naming it.
 * When the request's "stream" is not false, each line goes out as it comes, one HTTP chunk per line as
 * Ollama's are; otherwise the lines are folded into one object, Ollama's non-streamed reply, sent in the
 * pieces of the @chunks in force at the end of the script.
 *
 * POST /api/show answers a document installed with PUT /_mock/show/<model>, else SCENARIO_DIR/show/<model>.json,
 * else, for a model with a script, one made up with "thinking" among the capabilities when the name holds
 * "think". GET /api/tags lists SCENARIO_DIR/tags.json or else every model with a script; GET /api/version,
 * GET /api/ps (nothing loaded) and GET / answer as Ollama does. POST /api/embed and /api/embeddings answer
 * made-up vectors for any model; POST /api/pull streams Ollama's progress lines. Every request outside /_mock/ is recorded.
 *
 * The control API under /_mock/:
 *   PUT  scenario/<model>     install a script, replacing the model's
 *   PUT  show/<model>         install an /api/show document
 *   POST release[?all=1]      let one @hold go on (banked for the next when none is waiting), or all waiting
 *   POST reset                forget scripts, show documents, recorded requests, banked releases and the
 *                             completed, aborted and chat counts
 *   GET  requests             the recorded requests: method, path, body (parsed when JSON) and raw body
 *   GET  stats                connections_open, streams_active, streams_completed, streams_aborted,
 *                             holding, chat_requests, and the prompt cache's prompt_tokens and cached_tokens */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (64 * 1024 * 1024)
#define POLL_MS 20                  /* how soon a waiting reply notices its client is gone */
#define SLEEP_MAX 86400000L         /* @sleep's limit: a day */
#define REPEAT_MAX 1000000000000L   /* @repeat's limit: as good as endless */
#define PATTERN_MAX 64              /* piece sizes in one @chunks */
#define PIECE_MAX (1024L * 1024)
#define PAUSE_MAX 1000L             /* ms between pieces */
#define JSON_CT "application/json; charset=utf-8"
#define JSON_OUT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct buf {
    char *p;
    size_t len, cap;
};

/* A script or show document installed through the control API. */
struct entry {
    struct entry *next;
    char *name, *text;
    size_t len;
    uint64_t played;            /* the parts of a script with @next already played, one bit each */
};

/* A request as received, for GET /_mock/requests. */
struct record {
    struct record *next;
    char *method, *target, *body;
    size_t len;
};

struct conn {
    int fd;
    char *in;                   /* received bytes not yet consumed */
    size_t len, cap;
    bool closing;               /* the reply says Connection: close, and the connection ends after it */
    bool head;                  /* a HEAD request: the reply has no body */
};

struct request {
    char method[16];
    char *target, *path;
    const char *query;          /* what follows the ? in target, or "" */
    long long length;
    bool keep_alive, chunked, expect_continue;
    struct buf body;
};

/* How a reply's bytes leave: with no sizes, a piece per line; else pieces of sizes[0], sizes[1], ... round
 * and round, pause_ms apart. */
struct pacing {
    size_t sizes[PATTERN_MAX];
    size_t n_sizes;
    long pause_ms;
};

enum step_kind {
    STEP_LINE, STEP_STATUS, STEP_REJECT_THINK, STEP_PROMPT_CACHE, STEP_HOLD, STEP_SLEEP, STEP_CLOSE, STEP_RAW, STEP_CHUNKS, STEP_REPEAT,
    STEP_BAD
};

/* One script line, read. */
struct step {
    enum step_kind kind;
    const char *text;           /* what a plain line or @raw sends */
    size_t len;
    long num;                   /* @status's status, @sleep's milliseconds, @repeat's count */
    struct pacing pacing;       /* @chunks's */
};

/* The directives that hold for the whole reply. */
struct plan {
    int status;
    bool reject_think;
    bool prompt_cache;
};

/* One slot of the simulated prompt cache: the body a model's last request in it had. */
struct cache_slot {
    char *model, *body;
    size_t len;
    uint64_t used;              /* when, in requests: the least recently used slot is taken */
};

#define CACHE_SLOTS_MAX 64

/* One chat reply in progress. */
struct run {
    struct conn *c;
    bool streaming;
    struct pacing pacing;
    size_t next_size;           /* the index in pacing.sizes of the next piece's size */
    struct buf head;            /* the response head, until it goes out with the first piece */
    struct buf pending;         /* reply bytes not sent yet */
    struct buf kept;            /* the lines of a reply that is not streamed */
    bool prompt_cache;          /* @prompt-cache: the done line gets the counts below */
    long long prompt, cached;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t released;
    const char *dir;            /* SCENARIO_DIR or NULL; set before any thread starts */
    struct entry *scenarios, *shows;
    struct record *first, *last;
    long releases;              /* granted but not yet taken by a hold; a surplus is a banked release */
    long connections_open, streams_active, streams_completed, streams_aborted, holding, chat_requests;
    struct cache_slot cache[CACHE_SLOTS_MAX];
    size_t cache_slots;         /* MOCK_CACHE_SLOTS */
    uint64_t cache_clock;
    long long prompt_tokens, cached_tokens;
} state = { .lock = PTHREAD_MUTEX_INITIALIZER, .released = PTHREAD_COND_INITIALIZER };

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        fputs("mock-ollama: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *xmemdup(const void *p, size_t n)
{
    char *copy = xrealloc(NULL, n + 1);

    if (n)
        memcpy(copy, p, n);
    copy[n] = '\0';
    return copy;
}

static char *xstrdup(const char *s)
{
    return xmemdup(s, strlen(s));
}

/* Leaves the buffer allocated and NUL-terminated, so it can be handed to C string APIs. */
static void buf_add(struct buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static void buf_drop_front(struct buf *b, size_t n)
{
    if (n == 0)
        return;
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = '\0';
}

/* The JSON value that p[0..n) holds, whitespace around it aside; NULL when it holds anything else. */
static struct json_object *parse_json(const char *p, size_t n)
{
    struct json_tokener *tok = json_tokener_new();
    char *copy = xmemdup(p, n);
    /* Counting the NUL tells json-c the input ends here, so a bare number completes. */
    struct json_object *o = json_tokener_parse_ex(tok, copy, (int)n + 1);
    size_t end = json_tokener_get_parse_end(tok);

    while (o && end < n && memchr(" \t\r\n", copy[end], 4))
        end++;
    if (o && end < n) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    free(copy);
    return o;
}

static const char *string_field(struct json_object *o, const char *key)
{
    struct json_object *v;

    if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
        return json_object_get_string(v);
    return "";
}

static char *read_file(const char *path, size_t *len)
{
    struct buf b = { 0 };
    char chunk[8192];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (!f)
        return NULL;
    buf_add(&b, "", 0);         /* an empty file still exists */
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return b.p;
}

static char *read_dir_file(const char *name, size_t *len)
{
    char *path, *text;

    if (!state.dir || asprintf(&path, "%s/%s", state.dir, name) < 0)
        return NULL;
    text = read_file(path, len);
    free(path);
    return text;
}

/* ---- shared state: entry_*() and state_clear() expect state.lock held ---- */

static void entry_set(struct entry **list, const char *name, const char *text, size_t len)
{
    struct entry *e;

    for (e = *list; e && strcmp(e->name, name); e = e->next)
        ;
    if (e) {
        free(e->text);
    } else {
        e = xrealloc(NULL, sizeof *e);
        e->name = xstrdup(name);
        e->next = *list;
        *list = e;
    }
    e->text = xmemdup(text, len);
    e->len = len;
    e->played = 0;
}

/* The part of a script a request with this body plays (see @next and @when): scripts split at lines
 * "@next"; the chosen part's @when line is left out. */
static void script_part(const char *text, size_t len, uint64_t *played, const struct buf *body, const char **part,
                        size_t *part_len)
{
    const char *end = text + len, *start = text, *chosen = NULL, *chosen_end = NULL, *again = NULL, *again_end = NULL;
    const char *last = text, *last_end = end;
    int index = 0, chosen_index = -1, again_index = -1;

    while (start <= end) {
        const char *at = start, *stop = end, *body_start = start;
        bool meets = true;

        /* This part ends at the next "@next" line. */
        for (;;) {
            const char *nl = memchr(at, '\n', (size_t)(end - at)), *line_end = nl ? nl : end;

            if ((size_t)(line_end - at) == 5 && !memcmp(at, "@next", 5)) {
                stop = at;
                break;
            }
            if (!nl)
                break;
            at = nl + 1;
        }
        if ((size_t)(stop - start) > 6 && !memcmp(start, "@when ", 6)) {
            const char *nl = memchr(start, '\n', (size_t)(stop - start)), *cond = start + 6;
            size_t cond_len = (size_t)((nl ? nl : stop) - cond);

            meets = body && cond_len && memmem(body->p, body->len, cond, cond_len);
            body_start = nl ? nl + 1 : stop;
        }
        last = body_start, last_end = stop;
        if (meets) {
            again = body_start, again_end = stop, again_index = index;
            if (index < 64 && !(*played & (UINT64_C(1) << index))) {
                chosen = body_start, chosen_end = stop, chosen_index = index;
                break;
            }
        }
        if (stop == end)
            break;
        start = memchr(stop, '\n', (size_t)(end - stop));
        start = start ? start + 1 : end;
        index++;
    }
    if (!chosen) {
        /* Every part it meets was played: the last of them again; it meets none: the script's last part. */
        chosen = again ? again : last, chosen_end = again ? again_end : last_end, chosen_index = again_index;
    }
    if (chosen_index >= 0 && chosen_index < 64)
        *played |= UINT64_C(1) << chosen_index;
    *part = chosen;
    *part_len = (size_t)(chosen_end - chosen);
}

/* A copy of the entry named name: for a script, the part a request with this body plays. */
static char *entry_copy(struct entry *e, const char *name, const struct buf *body, bool turns, size_t *len)
{
    for (; e; e = e->next) {
        if (!strcmp(e->name, name)) {
            const char *part = e->text;

            *len = e->len;
            if (turns)
                script_part(e->text, e->len, &e->played, body, &part, len);
            return xmemdup(part, *len);
        }
    }
    return NULL;
}

static void entries_free(struct entry **list)
{
    while (*list) {
        struct entry *e = *list;

        *list = e->next;
        free(e->name);
        free(e->text);
        free(e);
    }
}

static void state_clear(void)
{
    while (state.first) {
        struct record *rec = state.first;

        state.first = rec->next;
        free(rec->method);
        free(rec->target);
        free(rec->body);
        free(rec);
    }
    state.last = NULL;
    entries_free(&state.scenarios);
    entries_free(&state.shows);
    state.releases = 0;
    state.streams_completed = state.streams_aborted = state.chat_requests = 0;
    for (size_t i = 0; i < CACHE_SLOTS_MAX; i++) {
        free(state.cache[i].model);
        free(state.cache[i].body);
        memset(&state.cache[i], 0, sizeof state.cache[i]);
    }
    state.prompt_tokens = state.cached_tokens = 0;
}

static void counter_add(long *counter, long delta)
{
    pthread_mutex_lock(&state.lock);
    *counter += delta;
    pthread_mutex_unlock(&state.lock);
}

/* An installed entry, else SCENARIO_DIR/<sub><model><ext> with the model's unsafe characters as _. */
static char *load(struct entry **list, const char *sub, const char *model, const char *ext, const struct buf *body,
                  bool turn, size_t *len)
{
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
    char *text, *name, *p;

    pthread_mutex_lock(&state.lock);
    text = entry_copy(*list, model, body, turn, len);
    pthread_mutex_unlock(&state.lock);
    if (text)
        return text;
    name = xstrdup(model);
    for (p = name; *p; p++) {
        if (!strchr(safe, *p))
            *p = '_';
    }
    if (asprintf(&p, "%s%s%s", sub, name, ext) >= 0) {
        text = read_dir_file(p, len);
        free(p);
    }
    free(name);
    return text;
}

static void record_request(const struct request *r)
{
    struct record *rec = xrealloc(NULL, sizeof *rec);

    rec->next = NULL;
    rec->method = xstrdup(r->method);
    rec->target = xstrdup(r->target);
    rec->body = xmemdup(r->body.p, r->body.len);
    rec->len = r->body.len;
    pthread_mutex_lock(&state.lock);
    if (state.last)
        state.last->next = rec;
    else
        state.first = rec;
    state.last = rec;
    pthread_mutex_unlock(&state.lock);
}

/* ---- socket I/O ---- */

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static bool peer_gone(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };
    char ch;
    ssize_t n;

    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR))
        return true;
    n = recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static int conn_fill(struct conn *c)
{
    ssize_t n;

    if (c->cap - c->len < 4096) {
        c->cap = c->cap ? c->cap * 2 : 16384;
        c->in = xrealloc(c->in, c->cap);
    }
    do
        n = recv(c->fd, c->in + c->len, c->cap - c->len, 0);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    c->len += (size_t)n;
    return 0;
}

static void conn_consume(struct conn *c, size_t n)
{
    memmove(c->in, c->in + n, c->len - n);
    c->len -= n;
}

/* Reads until delim is buffered; *end is the offset just past it. */
static int conn_until(struct conn *c, const char *delim, size_t max, size_t *end)
{
    size_t delim_len = strlen(delim);

    for (;;) {
        char *p = c->len ? memmem(c->in, c->len, delim, delim_len) : NULL;

        if (p) {
            *end = (size_t)(p - c->in) + delim_len;
            return 0;
        }
        if (c->len > max || conn_fill(c) < 0)
            return -1;
    }
}

/* Moves n bytes to out, or drops them when out is NULL. */
static int conn_take(struct conn *c, size_t n, struct buf *out)
{
    while (n > 0) {
        size_t k;

        if (c->len == 0 && conn_fill(c) < 0)
            return -1;
        k = n < c->len ? n : c->len;
        if (out)
            buf_add(out, c->in, k);
        conn_consume(c, k);
        n -= k;
    }
    return 0;
}

/* ---- HTTP replies ---- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    }
    return "Status";
}

static void put_head(struct buf *out, const struct conn *c, int status, const char *type, size_t len)
{
    const char *connection = c->closing ? "Connection: close\r\n" : "";
    char head[256];

    if (status == 204)
        snprintf(head, sizeof head, "HTTP/1.1 204 No Content\r\n%s\r\n", connection);
    else
        snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
                 status, reason(status), type, len, connection);
    buf_str(out, head);
}

/* Appends o's text and lets go of o. */
static void put_json(struct buf *out, struct json_object *o)
{
    buf_str(out, json_object_to_json_string_ext(o, JSON_OUT));
    json_object_put(o);
}

/* Ollama's error document. */
static struct json_object *error_json(const char *message)
{
    struct json_object *o = json_object_new_object();

    json_object_object_add(o, "error", json_object_new_string(message));
    return o;
}

static int send_reply(struct conn *c, int status, const char *type, const char *body, size_t len)
{
    struct buf out = { 0 };
    int rc;

    put_head(&out, c, status, type, len);
    if (status != 204 && !c->head)
        buf_add(&out, body, len);
    rc = send_all(c->fd, out.p, out.len);
    free(out.p);
    return rc;
}

/* Takes ownership of o. */
static int send_json(struct conn *c, int status, struct json_object *o)
{
    struct buf body = { 0 };
    int rc;

    put_json(&body, o);
    rc = send_reply(c, status, JSON_CT, body.p, body.len);
    free(body.p);
    return rc;
}

static int send_error(struct conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int send_error(struct conn *c, int status, const char *fmt, ...)
{
    char *message;
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vasprintf(&message, fmt, ap);
    va_end(ap);
    if (n < 0)
        return send_json(c, status, error_json("mock: out of memory"));
    rc = send_json(c, status, error_json(message));
    free(message);
    return rc;
}

/* ---- HTTP requests ---- */

static void request_free(struct request *r)
{
    free(r->target);
    free(r->path);
    free(r->body.p);
    memset(r, 0, sizeof *r);
}

/* head: the request line and header fields, through the empty line that ends them. */
static int parse_head(char *head, struct request *r)
{
    char *next = strstr(head, "\r\n"), *sp1, *sp2;

    *next = '\0';
    sp1 = strchr(head, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp2 || (size_t)(sp1 - head) >= sizeof r->method || strncmp(sp2 + 1, "HTTP/1.", 7))
        return -1;
    memcpy(r->method, head, (size_t)(sp1 - head));
    *sp2 = '\0';
    r->target = xstrdup(sp1 + 1);
    r->path = xmemdup(r->target, strcspn(r->target, "?"));
    r->query = r->target[strlen(r->path)] ? r->target + strlen(r->path) + 1 : "";
    r->keep_alive = strcmp(sp2 + 1, "HTTP/1.0") != 0;
    for (;;) {
        char *line = next + 2, *colon, *value, *end;

        next = strstr(line, "\r\n");
        if (next == line)
            return 0;
        *next = '\0';
        colon = strchr(line, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        value = colon + 1 + strspn(colon + 1, " \t");
        for (end = value + strlen(value); end > value && (end[-1] == ' ' || end[-1] == '\t'); end--)
            end[-1] = '\0';
        if (!strcasecmp(line, "content-length")) {
            r->length = strtoll(value, &end, 10);
            if (end == value || *end || r->length < 0)
                return -1;
        } else if (!strcasecmp(line, "transfer-encoding")) {
            r->chunked = strcasestr(value, "chunked") != NULL;
        } else if (!strcasecmp(line, "connection")) {
            if (strcasestr(value, "close"))
                r->keep_alive = false;
            else if (strcasestr(value, "keep-alive"))
                r->keep_alive = true;
        } else if (!strcasecmp(line, "expect")) {
            r->expect_continue = !strcasecmp(value, "100-continue");
        }
    }
}

static int read_chunked(struct conn *c, struct buf *body)
{
    size_t end;

    for (;;) {
        char *e;
        unsigned long long n;

        if (conn_until(c, "\r\n", HEAD_MAX, &end) < 0)
            return -1;
        /* The buffered CRLF stops strtoull, so the unterminated buffer is safe to scan. */
        n = strtoull(c->in, &e, 16);
        if (e == c->in || n > BODY_MAX - body->len)
            return -1;
        conn_consume(c, end);
        if (n == 0)
            break;
        if (conn_take(c, n, body) < 0 || conn_take(c, 2, NULL) < 0)
            return -1;
    }
    /* Trailer fields, if any, end at an empty line. */
    do {
        if (conn_until(c, "\r\n", HEAD_MAX, &end) < 0)
            return -1;
        conn_consume(c, end);
    } while (end != 2);
    return 0;
}

/* 0 with a complete request, -1 when the connection is done (an error reply has been sent if one fits). */
static int read_request(struct conn *c, struct request *r)
{
    static const char proceed[] = "HTTP/1.1 100 Continue\r\n\r\n";
    size_t end;
    char *head = NULL;
    int rc = -1;

    memset(r, 0, sizeof *r);
    if (conn_until(c, "\r\n\r\n", HEAD_MAX, &end) < 0)
        goto out;
    head = xmemdup(c->in, end);
    conn_consume(c, end);
    /* Until the request is whole, a reply to it ends the connection. */
    c->closing = true;
    c->head = false;
    if (parse_head(head, r) < 0) {
        send_error(c, 400, "mock: malformed request");
        goto out;
    }
    if (r->length > BODY_MAX) {
        send_error(c, 413, "mock: body too large");
        goto out;
    }
    if (r->expect_continue && (r->chunked || r->length > 0) && send_all(c->fd, proceed, sizeof proceed - 1) < 0)
        goto out;
    if (r->chunked ? read_chunked(c, &r->body) : conn_take(c, (size_t)r->length, &r->body))
        goto out;
    buf_add(&r->body, "", 0);
    rc = 0;
out:
    free(head);
    if (rc < 0)
        request_free(r);
    return rc;
}

/* ---- scripts ---- */

static bool next_line(const char **cur, const char *end, const char **line, size_t *n)
{
    const char *nl;

    if (*cur >= end)
        return false;
    nl = memchr(*cur, '\n', (size_t)(end - *cur));
    *line = *cur;
    *n = nl ? (size_t)(nl - *cur) : (size_t)(end - *cur);
    *cur = nl ? nl + 1 : end;
    return true;
}

/* Reads the decimal number at *p, moving *p past it; false when there is none or it exceeds max. */
static bool take_number(const char **p, const char *end, long max, long *out)
{
    const char *s = *p;
    long value = 0;

    if (s == end || *s < '0' || *s > '9')
        return false;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (value > (max - (*s - '0')) / 10)
            return false;
        value = value * 10 + (*s - '0');
    }
    *p = s;
    *out = value;
    return true;
}

/* @chunks's argument: "off", or SIZES [MS]. */
static bool parse_pacing(const char *p, const char *end, struct pacing *pacing)
{
    long size;

    memset(pacing, 0, sizeof *pacing);
    pacing->pause_ms = 1;
    if (end - p == 3 && !memcmp(p, "off", 3))
        return true;
    for (;;) {
        if (pacing->n_sizes == PATTERN_MAX || !take_number(&p, end, PIECE_MAX, &size) || size == 0)
            return false;
        pacing->sizes[pacing->n_sizes++] = (size_t)size;
        if (p == end || *p != ',')
            break;
        p++;
    }
    if (p < end && *p == ' ') {
        p++;
        if (!take_number(&p, end, PAUSE_MAX, &pacing->pause_ms))
            return false;
    }
    return p == end;
}

/* Reads a script line into *step; returns its kind, STEP_BAD for a directive not understood. */
static enum step_kind parse_step(const char *line, size_t n, struct step *step)
{
    static const struct {
        const char *word;
        enum step_kind kind;
    } words[] = {
        { "@status", STEP_STATUS }, { "@reject-think", STEP_REJECT_THINK }, { "@hold", STEP_HOLD },
        { "@sleep", STEP_SLEEP }, { "@close", STEP_CLOSE }, { "@raw", STEP_RAW }, { "@chunks", STEP_CHUNKS },
        { "@repeat", STEP_REPEAT }, { "@prompt-cache", STEP_PROMPT_CACHE },
    };
    const char *end = line + n, *arg;
    size_t word_len = 0, i;

    step->kind = STEP_LINE;
    step->text = line;
    step->len = n;
    if (n == 0 || line[0] != '@')
        return step->kind;
    while (word_len < n && line[word_len] != ' ')
        word_len++;
    arg = word_len < n ? line + word_len + 1 : end;
    step->kind = STEP_BAD;
    for (i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strlen(words[i].word) == word_len && !memcmp(words[i].word, line, word_len))
            step->kind = words[i].kind;
    }
    switch (step->kind) {
    case STEP_RAW:
        step->text = arg;
        step->len = (size_t)(end - arg);
        break;
    case STEP_STATUS:
        if (!take_number(&arg, end, 599, &step->num) || arg != end || step->num < 200)
            step->kind = STEP_BAD;
        break;
    case STEP_SLEEP:
        if (!take_number(&arg, end, SLEEP_MAX, &step->num) || arg != end)
            step->kind = STEP_BAD;
        break;
    case STEP_REPEAT:
        if (!take_number(&arg, end, REPEAT_MAX, &step->num) || arg != end || step->num < 1)
            step->kind = STEP_BAD;
        break;
    case STEP_CHUNKS:
        if (!parse_pacing(arg, end, &step->pacing))
            step->kind = STEP_BAD;
        break;
    default:
        break;
    }
    return step->kind;
}

/* Reads the reply-wide directives; false, with *bad the line, when a directive is not understood. */
static bool plan_script(const char *text, size_t len, struct plan *plan, const char **bad, size_t *bad_len)
{
    const char *cur = text, *line;
    struct step step;
    size_t n;

    plan->status = 200;
    plan->reject_think = false;
    plan->prompt_cache = false;
    while (next_line(&cur, text + len, &line, &n)) {
        switch (parse_step(line, n, &step)) {
        case STEP_STATUS:
            plan->status = (int)step.num;
            break;
        case STEP_REJECT_THINK:
            plan->reject_think = true;
            break;
        case STEP_PROMPT_CACHE:
            plan->prompt_cache = true;
            break;
        case STEP_BAD:
            *bad = line;
            *bad_len = n;
            return false;
        default:
            break;
        }
    }
    return true;
}

/* Waits for a release, watching the client so an abandoned hold ends the stream. */
static int hold(int fd)
{
    int rc = 0;

    pthread_mutex_lock(&state.lock);
    state.holding++;
    while (state.releases == 0) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += POLL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&state.released, &state.lock, &until);
        if (state.releases == 0 && peer_gone(fd)) {
            rc = -1;
            break;
        }
    }
    if (rc == 0)
        state.releases--;
    state.holding--;
    pthread_mutex_unlock(&state.lock);
    return rc;
}

static void release(bool all)
{
    pthread_mutex_lock(&state.lock);
    if (!all)
        state.releases++;
    else if (state.releases < state.holding)
        state.releases = state.holding;
    pthread_cond_broadcast(&state.released);
    pthread_mutex_unlock(&state.lock);
}

/* Sleeps, watching the client; -1 once it is gone. */
static int sleep_watching(int fd, long ms)
{
    for (;;) {
        long slice = ms < POLL_MS ? ms : POLL_MS;
        struct timespec ts = { 0, slice * 1000000L };

        if (peer_gone(fd))
            return -1;
        if (ms <= 0)
            return 0;
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

/* ---- playing a script ---- */

/* One send(): in a streamed reply an HTTP chunk, the empty one ending the body; in another, body bytes as
 * they are. The response head goes out with the first piece, as Ollama's goes with its first line. */
static int send_piece(struct run *run, const char *p, size_t n)
{
    struct buf out = { 0 };
    char size[32];
    int rc;

    buf_add(&out, run->head.p, run->head.len);
    run->head.len = 0;
    if (run->streaming) {
        snprintf(size, sizeof size, "%zx\r\n", n);
        buf_str(&out, size);
        buf_add(&out, p, n);
        buf_str(&out, "\r\n");
    } else {
        buf_add(&out, p, n);
    }
    rc = send_all(run->c->fd, out.p, out.len);
    free(out.p);
    return rc;
}

/* Sends the pending bytes in pieces. A piece the pattern wants longer than what is pending waits for the
 * next line, unless flush: the script pauses or ends here, and what it has said must not wait on that. */
static int drain(struct run *run, bool flush)
{
    const struct pacing *pacing = &run->pacing;
    size_t sent = 0;
    int rc = 0;

    while (rc == 0 && sent < run->pending.len) {
        size_t left = run->pending.len - sent, size = left;

        if (pacing->n_sizes) {
            size = pacing->sizes[run->next_size];
            if (size > left && !flush)
                break;
            if (size > left)
                size = left;
            run->next_size = (run->next_size + 1) % pacing->n_sizes;
        }
        rc = send_piece(run, run->pending.p + sent, size);
        sent += size;
        /* TCP_NODELAY sends each piece at once; the pause lets the reader take each in a read of its own. */
        if (rc == 0 && pacing->n_sizes)
            rc = sleep_watching(run->c->fd, pacing->pause_ms);
    }
    buf_drop_front(&run->pending, sent);
    return rc;
}

/* The done line with the prompt cache's counts in it; NULL for any other line. The caller frees it. */
static char *with_cache_counts(const struct run *run, const char *line, size_t n)
{
    struct json_object *o, *done;
    char *out = NULL;

    if (!run->prompt_cache)
        return NULL;
    o = parse_json(line, n);
    if (json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "done", &done) &&
        json_object_get_boolean(done)) {
        json_object_object_add(o, "prompt_eval_count", json_object_new_int64(run->prompt));
        json_object_object_add(o, "prompt_eval_cached_count", json_object_new_int64(run->cached));
        out = xstrdup(json_object_to_json_string_ext(o, JSON_OUT));
    }
    json_object_put(o);
    return out;
}

static int emit(struct run *run, const char *line, size_t n)
{
    char *counted = with_cache_counts(run, line, n);

    if (counted) {
        int rc;

        run->prompt_cache = false;
        rc = emit(run, counted, strlen(counted));
        free(counted);
        return rc;
    }
    if (!run->streaming) {
        if (run->kept.len)
            buf_add(&run->kept, "\n", 1);
        buf_add(&run->kept, line, n);
        return 0;
    }
    buf_add(&run->pending, line, n);
    buf_add(&run->pending, "\n", 1);
    return drain(run, false);
}

static void fold_message(struct json_object *o, struct buf *content, struct buf *thinking, struct json_object *calls)
{
    struct json_object *msg, *v;
    size_t i;

    if (!json_object_object_get_ex(o, "message", &msg))
        return;
    if (json_object_object_get_ex(msg, "content", &v) && json_object_is_type(v, json_type_string))
        buf_add(content, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    if (json_object_object_get_ex(msg, "thinking", &v) && json_object_is_type(v, json_type_string))
        buf_add(thinking, json_object_get_string(v), (size_t)json_object_get_string_len(v));
    if (json_object_object_get_ex(msg, "tool_calls", &v) && json_object_is_type(v, json_type_array)) {
        for (i = 0; i < json_object_array_length(v); i++)
            json_object_array_add(calls, json_object_get(json_object_array_get_idx(v, i)));
    }
}

/* Ollama's non-streamed reply into body: the last object line with every line's message parts (/api/chat)
 * or response text (/api/generate) folded in; a reply of neither (a pull's progress) is its last line.
 * Returns its status: 500 when a line is an error, which is then the whole body. */
static int aggregate(const char *text, size_t len, struct buf *body)
{
    struct json_object *last = NULL, *calls = json_object_new_array(), *msg, *v;
    struct buf content = { 0 }, thinking = { 0 }, response = { 0 };
    const char *cur = text, *line;
    bool chat = false, generate = false;
    size_t n;
    int status = 500;

    buf_add(&content, "", 0);
    buf_add(&response, "", 0);
    while (next_line(&cur, text + len, &line, &n)) {
        struct json_object *o = parse_json(line, n);

        if (!o || !json_object_is_type(o, json_type_object)) {
            json_object_put(o);
            continue;
        }
        if (json_object_object_get_ex(o, "error", NULL)) {
            json_object_put(o);
            buf_add(body, line, n);
            goto out;
        }
        chat |= json_object_object_get_ex(o, "message", NULL);
        if (json_object_object_get_ex(o, "response", &v) && json_object_is_type(v, json_type_string)) {
            generate = true;
            buf_add(&response, json_object_get_string(v), (size_t)json_object_get_string_len(v));
        }
        fold_message(o, &content, &thinking, calls);
        json_object_put(last);
        last = o;
    }
    if (!last) {
        put_json(body, error_json("mock: scenario has no JSON object lines"));
        goto out;
    }
    if (generate)
        json_object_object_add(last, "response", json_object_new_string_len(response.p, (int)response.len));
    if (!chat)
        goto whole;
    if (!json_object_object_get_ex(last, "message", &msg) || !json_object_is_type(msg, json_type_object)) {
        msg = json_object_new_object();
        json_object_object_add(last, "message", msg);
    }
    json_object_object_add(msg, "content", json_object_new_string_len(content.p, (int)content.len));
    /* Re-added rather than replaced so they follow content, in Go's field order. */
    json_object_object_del(msg, "thinking");
    json_object_object_del(msg, "tool_calls");
    if (thinking.len)
        json_object_object_add(msg, "thinking", json_object_new_string_len(thinking.p, (int)thinking.len));
    if (json_object_array_length(calls))
        json_object_object_add(msg, "tool_calls", json_object_get(calls));
whole:
    put_json(body, json_object_get(last));
    status = 200;
out:
    json_object_put(last);
    json_object_put(calls);
    free(content.p);
    free(thinking.p);
    free(response.p);
    return status;
}

/* A reply that is not streamed, its whole body pending. */
static int send_whole(struct run *run, int status)
{
    int rc;

    put_head(&run->head, run->c, status, JSON_CT, run->pending.len);
    if (status == 204)
        buf_drop_front(&run->pending, run->pending.len);
    rc = drain(run, true);
    /* No body, no piece: the head goes alone. */
    if (rc == 0 && run->head.len)
        rc = send_piece(run, "", 0);
    return rc;
}

/* Plays a script; -1 means the connection must close (client gone or @close). */
static int run_script(struct conn *c, const char *text, size_t len, int status, bool streaming,
                      const struct run *counts)
{
    struct run run = { .c = c, .streaming = streaming, .prompt_cache = counts->prompt_cache,
                       .prompt = counts->prompt, .cached = counts->cached };
    const char *cur = text, *line;
    bool aborted = false, closed = false;
    struct step step;
    long times = 1;
    size_t n;

    counter_add(&state.streams_active, 1);
    if (streaming) {
        buf_str(&run.head, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n");
        buf_str(&run.head, c->closing ? "Connection: close\r\n\r\n" : "\r\n");
    }
    while (!aborted && !closed && next_line(&cur, text + len, &line, &n)) {
        switch (parse_step(line, n, &step)) {
        case STEP_LINE:
            for (; times > 0 && !aborted && n > 0; times--)
                aborted = emit(&run, line, n) < 0;
            times = 1;
            break;
        case STEP_RAW:
            for (; times > 0 && !aborted; times--)
                aborted = emit(&run, step.text, step.len) < 0;
            times = 1;
            break;
        case STEP_REPEAT:
            times = step.num;
            break;
        case STEP_HOLD:
            aborted = drain(&run, true) < 0 || hold(c->fd) < 0;
            break;
        case STEP_SLEEP:
            aborted = drain(&run, true) < 0 || sleep_watching(c->fd, step.num) < 0;
            break;
        case STEP_CLOSE:
            aborted = drain(&run, true) < 0;
            closed = true;
            break;
        case STEP_CHUNKS:
            aborted = drain(&run, true) < 0;
            run.pacing = step.pacing;
            run.next_size = 0;
            break;
        default:
            break;              /* reply-wide: plan_script has read it */
        }
    }
    if (!aborted && !closed && streaming) {
        aborted = drain(&run, true) < 0 || send_piece(&run, "", 0) < 0;
    } else if (!aborted && !closed) {
        if (status == 200)
            status = aggregate(run.kept.p, run.kept.len, &run.pending);
        else
            buf_add(&run.pending, run.kept.p, run.kept.len);
        aborted = send_whole(&run, status) < 0;
    }
    free(run.head.p);
    free(run.pending.p);
    free(run.kept.p);
    pthread_mutex_lock(&state.lock);
    state.streams_active--;
    if (aborted)
        state.streams_aborted++;
    else
        state.streams_completed++;
    pthread_mutex_unlock(&state.lock);
    return aborted || closed ? -1 : 0;
}

/* ---- routes ---- */

static bool wants_thinking(struct json_object *req)
{
    struct json_object *think;

    if (!json_object_object_get_ex(req, "think", &think))
        return false;
    if (json_object_is_type(think, json_type_boolean))
        return json_object_get_boolean(think);
    return json_object_is_type(think, json_type_string) && json_object_get_string_len(think) > 0 &&
           strcmp(json_object_get_string(think), "false") != 0;
}

static bool wants_stream(struct json_object *req)
{
    struct json_object *stream;

    return !json_object_object_get_ex(req, "stream", &stream) || !json_object_is_type(stream, json_type_boolean) ||
           json_object_get_boolean(stream);
}

/* What the prompt cache reads of this body: its longest shared start with a slot of the same model. The
 * body then takes that slot when it goes on from it, else the least recently used one. */
static void cache_use(const char *model, const struct buf *body, struct run *counts)
{
    struct cache_slot *best = NULL, *lru = NULL;
    size_t best_len = 0;

    pthread_mutex_lock(&state.lock);
    for (size_t i = 0; i < state.cache_slots; i++) {
        struct cache_slot *s = &state.cache[i];
        size_t k = 0;

        if (!lru || s->used < lru->used)
            lru = s;
        if (!s->model || strcmp(s->model, model) != 0)
            continue;
        while (k < s->len && k < body->len && s->body[k] == body->p[k])
            k++;
        if (k > best_len) {
            best = s;
            best_len = k;
        }
    }
    counts->prompt_cache = true;
    counts->prompt = (long long)(body->len + 3) / 4;
    counts->cached = (long long)best_len / 4;
    if (counts->cached >= counts->prompt)
        counts->cached = counts->prompt > 0 ? counts->prompt - 1 : 0;
    state.prompt_tokens += counts->prompt;
    state.cached_tokens += counts->cached;
    /* Like llama.cpp's slots: a body that goes on from a slot's takes it; one that shares only a little
     * (the same system prompt) takes the least recently used slot and leaves the other conversation's. */
    if (!best || best_len * 2 < best->len)
        best = lru;
    if (best) {
        free(best->model);
        free(best->body);
        best->model = xstrdup(model);
        best->body = xmemdup(body->p, body->len);
        best->len = body->len;
        best->used = ++state.cache_clock;
    }
    pthread_mutex_unlock(&state.lock);
}

static int handle_chat(struct conn *c, const struct request *r)
{
    struct json_object *req = NULL;
    const char *model, *bad;
    char *script = NULL;
    size_t len, bad_len;
    struct plan plan;
    struct run counts = { .prompt_cache = false };
    int rc;

    counter_add(&state.chat_requests, 1);
    if (r->body.len == 0) {
        rc = send_error(c, 400, "missing request body");
        goto out;
    }
    req = parse_json(r->body.p, r->body.len);
    if (!json_object_is_type(req, json_type_object)) {
        rc = send_error(c, 400, "invalid JSON request body");
        goto out;
    }
    model = string_field(req, "model");
    if (!*model) {
        rc = send_error(c, 400, "model is required");
        goto out;
    }
    script = load(&state.scenarios, "", model, ".ndjson", &r->body, true, &len);
    if (!script) {
        rc = send_error(c, 404, "model '%s' not found", model);
        goto out;
    }
    if (!plan_script(script, len, &plan, &bad, &bad_len)) {
        rc = send_error(c, 500, "mock: bad directive line: %.*s", (int)bad_len, bad);
        goto out;
    }
    if (plan.reject_think && wants_thinking(req)) {
        rc = send_error(c, 400, "\"%s\" does not support thinking", model);
        goto out;
    }
    if (plan.prompt_cache)
        cache_use(model, &r->body, &counts);
    rc = run_script(c, script, len, plan.status, plan.status == 200 && wants_stream(req), &counts);
out:
    json_object_put(req);
    free(script);
    return rc;
}

static int handle_show(struct conn *c, const struct request *r)
{
    static const char made_up[] = "{\"capabilities\":[\"completion\",\"tools\"%s],\"model_info\":"
                                  "{\"general.architecture\":\"llama\",\"llama.context_length\":131072},"
                                  "\"details\":{\"family\":\"llama\"}}";
    struct json_object *req = parse_json(r->body.p, r->body.len);
    const char *model = string_field(req, "model");
    char *doc = NULL, made[sizeof made_up + 16];
    size_t len;
    int rc;

    if (!*model)
        model = string_field(req, "name");
    if (!*model) {
        rc = send_error(c, 400, "model is required");
        goto out;
    }
    doc = load(&state.shows, "show/", model, ".json", NULL, false, &len);
    if (doc) {
        rc = send_reply(c, 200, JSON_CT, doc, len);
        goto out;
    }
    doc = load(&state.scenarios, "", model, ".ndjson", NULL, false, &len);
    if (!doc) {
        rc = send_error(c, 404, "model '%s' not found", model);
        goto out;
    }
    snprintf(made, sizeof made, made_up, strstr(model, "think") ? ",\"thinking\"" : "");
    rc = send_reply(c, 200, JSON_CT, made, strlen(made));
out:
    json_object_put(req);
    free(doc);
    return rc;
}

/* A made-up embedding of text, the same every time: Ollama's vectors are normalised floats. */
static struct json_object *embedding_of(const char *text)
{
    struct json_object *v = json_object_new_array();
    size_t n = strlen(text);

    json_object_array_add(v, json_object_new_double((double)(n % 100) / 100.0));
    json_object_array_add(v, json_object_new_double(n ? (double)(unsigned char)text[0] / 256.0 : 0.0));
    json_object_array_add(v, json_object_new_double(-0.5));
    return v;
}

/* POST /api/embed: {"model", "embeddings": [...], durations, "prompt_eval_count"}, one vector per input
 * (a string or an array of them); the older /api/embeddings: {"embedding": [...]} for its "prompt". */
static int handle_embed(struct conn *c, const struct request *r, bool old)
{
    struct json_object *req = parse_json(r->body.p, r->body.len), *input = NULL, *o;
    const char *model = string_field(req, "model");
    long tokens = 0;
    int rc;

    if (!*model) {
        rc = send_error(c, 400, "model is required");
        goto out;
    }
    o = json_object_new_object();
    if (old) {
        json_object_object_add(o, "embedding", embedding_of(string_field(req, "prompt")));
        rc = send_json(c, 200, o);
        goto out;
    }
    json_object_object_add(o, "model", json_object_new_string(model));
    json_object_object_add(o, "embeddings", json_object_new_array());
    if (json_object_object_get_ex(req, "input", &input) && json_object_is_type(input, json_type_string)) {
        json_object_array_add(json_object_object_get(o, "embeddings"), embedding_of(json_object_get_string(input)));
        tokens = 1 + json_object_get_string_len(input) / 4;
    } else if (input && json_object_is_type(input, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(input); i++) {
            const char *text = json_object_get_string(json_object_array_get_idx(input, i));

            json_object_array_add(json_object_object_get(o, "embeddings"), embedding_of(text ? text : ""));
            tokens += 1 + (long)strlen(text ? text : "") / 4;
        }
    }
    json_object_object_add(o, "total_duration", json_object_new_int64(14143917));
    json_object_object_add(o, "load_duration", json_object_new_int64(1019500));
    json_object_object_add(o, "prompt_eval_count", json_object_new_int64(tokens));
    rc = send_json(c, 200, o);
out:
    json_object_put(req);
    return rc;
}

/* POST /api/pull: Ollama's progress lines, streamed unless "stream" is false (then its last line). */
static int handle_pull(struct conn *c, const struct request *r)
{
    static const char progress[] =
        "{\"status\":\"pulling manifest\"}\n"
        "{\"status\":\"pulling 6a0746a1ec1a\",\"digest\":\"sha256:6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa\","
        "\"total\":4661211808,\"completed\":1048576}\n"
        "{\"status\":\"pulling 6a0746a1ec1a\",\"digest\":\"sha256:6a0746a1ec1aef3e7ec53868f220ff6e389f6f8ef87a01d77c96807de94ca2aa\","
        "\"total\":4661211808,\"completed\":4661211808}\n"
        "{\"status\":\"verifying sha256 digest\"}\n"
        "{\"status\":\"writing manifest\"}\n"
        "{\"status\":\"success\"}\n";
    struct json_object *req = parse_json(r->body.p, r->body.len);
    int rc;

    if (!*string_field(req, "model") && !*string_field(req, "name"))
        rc = send_error(c, 400, "model is required");
    else
        rc = run_script(c, progress, sizeof progress - 1, 200, wants_stream(req), &(struct run){ .prompt_cache = false });
    json_object_put(req);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every model with a script, installed or in SCENARIO_DIR, as /api/tags lists models. */
static struct json_object *tags_json(void)
{
    struct json_object *models = json_object_new_array(), *root = json_object_new_object();
    char **names = NULL;
    size_t n = 0, i;
    const struct entry *e;
    struct dirent *d;
    DIR *dir = state.dir ? opendir(state.dir) : NULL;

    while (dir && (d = readdir(dir))) {
        size_t len = strlen(d->d_name);

        if (len > 7 && !strcmp(d->d_name + len - 7, ".ndjson")) {
            names = xrealloc(names, (n + 1) * sizeof *names);
            names[n++] = xmemdup(d->d_name, len - 7);
        }
    }
    if (dir)
        closedir(dir);
    pthread_mutex_lock(&state.lock);
    for (e = state.scenarios; e; e = e->next) {
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(e->name);
    }
    pthread_mutex_unlock(&state.lock);
    qsort(names, n, sizeof *names, compare_names);
    for (i = 0; i < n; i++) {
        struct json_object *m, *details;

        if (i > 0 && !strcmp(names[i], names[i - 1]))
            continue;
        m = json_object_new_object();
        details = json_object_new_object();
        json_object_object_add(m, "name", json_object_new_string(names[i]));
        json_object_object_add(m, "model", json_object_new_string(names[i]));
        json_object_object_add(m, "modified_at", json_object_new_string("2026-01-01T00:00:00Z"));
        json_object_object_add(m, "size", json_object_new_int(1));
        json_object_object_add(m, "digest", json_object_new_string("0"));
        json_object_object_add(details, "family", json_object_new_string("llama"));
        json_object_object_add(details, "parameter_size", json_object_new_string("1B"));
        json_object_object_add(details, "quantization_level", json_object_new_string("Q4_0"));
        json_object_object_add(m, "details", details);
        json_object_array_add(models, m);
    }
    for (i = 0; i < n; i++)
        free(names[i]);
    free(names);
    json_object_object_add(root, "models", models);
    return root;
}

static int handle_tags(struct conn *c)
{
    size_t len;
    char *doc = read_dir_file("tags.json", &len);
    int rc;

    if (!doc)
        return send_json(c, 200, tags_json());
    rc = send_reply(c, 200, JSON_CT, doc, len);
    free(doc);
    return rc;
}

static struct json_object *requests_json(void)
{
    struct json_object *list = json_object_new_array();
    const struct record *rec;

    pthread_mutex_lock(&state.lock);
    for (rec = state.first; rec; rec = rec->next) {
        struct json_object *o = json_object_new_object(), *body = parse_json(rec->body, rec->len);

        if (!body && rec->len)
            body = json_object_new_string_len(rec->body, (int)rec->len);
        json_object_object_add(o, "method", json_object_new_string(rec->method));
        json_object_object_add(o, "path", json_object_new_string(rec->target));
        json_object_object_add(o, "body", body);
        json_object_object_add(o, "raw", json_object_new_string_len(rec->body, (int)rec->len));
        json_object_array_add(list, o);
    }
    pthread_mutex_unlock(&state.lock);
    return list;
}

static struct json_object *stats_json(void)
{
    struct json_object *o = json_object_new_object();

    pthread_mutex_lock(&state.lock);
    json_object_object_add(o, "connections_open", json_object_new_int64(state.connections_open));
    json_object_object_add(o, "streams_active", json_object_new_int64(state.streams_active));
    json_object_object_add(o, "streams_completed", json_object_new_int64(state.streams_completed));
    json_object_object_add(o, "streams_aborted", json_object_new_int64(state.streams_aborted));
    json_object_object_add(o, "holding", json_object_new_int64(state.holding));
    json_object_object_add(o, "chat_requests", json_object_new_int64(state.chat_requests));
    json_object_object_add(o, "prompt_tokens", json_object_new_int64(state.prompt_tokens));
    json_object_object_add(o, "cached_tokens", json_object_new_int64(state.cached_tokens));
    pthread_mutex_unlock(&state.lock);
    return o;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static char *url_decode(const char *s)
{
    struct buf b = { 0 };

    buf_add(&b, "", 0);
    for (; *s; s++) {
        char ch = *s;

        if (ch == '%' && hex_digit(s[1]) >= 0 && hex_digit(s[2]) >= 0) {
            ch = (char)(hex_digit(s[1]) * 16 + hex_digit(s[2]));
            s += 2;
        }
        buf_add(&b, &ch, 1);
    }
    return b.p;
}

static int install(struct conn *c, struct entry **list, const char *encoded_name, const struct request *r)
{
    char *name = url_decode(encoded_name);

    pthread_mutex_lock(&state.lock);
    entry_set(list, name, r->body.p, r->body.len);
    pthread_mutex_unlock(&state.lock);
    free(name);
    return send_reply(c, 204, NULL, NULL, 0);
}

static int handle_control(struct conn *c, const struct request *r, const char *what)
{
    bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST"), put = !strcmp(r->method, "PUT");

    if (put && !strncmp(what, "scenario/", 9))
        return install(c, &state.scenarios, what + 9, r);
    if (put && !strncmp(what, "show/", 5))
        return install(c, &state.shows, what + 5, r);
    if (post && !strcmp(what, "release")) {
        release(!strcmp(r->query, "all=1"));
        return send_reply(c, 204, NULL, NULL, 0);
    }
    if (post && !strcmp(what, "reset")) {
        pthread_mutex_lock(&state.lock);
        state_clear();
        pthread_mutex_unlock(&state.lock);
        return send_reply(c, 204, NULL, NULL, 0);
    }
    if (get && !strcmp(what, "requests"))
        return send_json(c, 200, requests_json());
    if (get && !strcmp(what, "stats"))
        return send_json(c, 200, stats_json());
    return send_error(c, 404, "not found");
}

static int route(struct conn *c, const struct request *r)
{
    static const char version[] = "{\"version\":\"0.12.10\"}", banner[] = "Ollama is running";
    bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST");

    if (!strncmp(r->path, "/_mock/", 7))
        return handle_control(c, r, r->path + 7);
    record_request(r);
    if (post && (!strcmp(r->path, "/api/chat") || !strcmp(r->path, "/api/generate")))
        return handle_chat(c, r);
    if (post && (!strcmp(r->path, "/api/embed") || !strcmp(r->path, "/api/embeddings")))
        return handle_embed(c, r, !strcmp(r->path, "/api/embeddings"));
    if (post && !strcmp(r->path, "/api/pull"))
        return handle_pull(c, r);
    if (get && !strcmp(r->path, "/api/ps"))
        return send_reply(c, 200, JSON_CT, "{\"models\":[]}", 13);
    if (post && !strcmp(r->path, "/api/show"))
        return handle_show(c, r);
    if (get && !strcmp(r->path, "/api/tags"))
        return handle_tags(c);
    if (get && !strcmp(r->path, "/api/version"))
        return send_reply(c, 200, JSON_CT, version, sizeof version - 1);
    if ((get || c->head) && !strcmp(r->path, "/"))
        return send_reply(c, 200, "text/plain; charset=utf-8", banner, sizeof banner - 1);
    return send_error(c, 404, "not found");
}

/* ---- connections ---- */

static void *serve(void *arg)
{
    struct conn c = { .fd = (int)(intptr_t)arg };
    struct request r;

    while (read_request(&c, &r) == 0) {
        int rc;

        c.closing = !r.keep_alive;
        c.head = !strcmp(r.method, "HEAD");
        rc = route(&c, &r);
        request_free(&r);
        if (rc < 0 || c.closing)
            break;
    }
    close(c.fd);
    free(c.in);
    counter_add(&state.connections_open, -1);
    return NULL;
}

/* Accepts until SIGINT/SIGTERM shows up on signal_fd; one detached thread per connection. */
static int accept_loop(int listen_fd, int signal_fd)
{
    struct pollfd p[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = signal_fd, .events = POLLIN } };
    pthread_attr_t attr;
    int rc = 1, one = 1;

    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        pthread_t t;
        int fd;

        if (poll(p, 2, -1) < 0 && errno != EINTR) {
            perror("mock-ollama: poll");
            goto out;
        }
        if (p[1].revents) {
            rc = 0;
            goto out;
        }
        if (!(p[0].revents & POLLIN))
            continue;
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            perror("mock-ollama: accept");
            goto out;
        }
        /* Go, and so Ollama, disables Nagle: each NDJSON line leaves at once. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        counter_add(&state.connections_open, 1);
        if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd)) {
            close(fd);
            counter_add(&state.connections_open, -1);
        }
    }
out:
    pthread_attr_destroy(&attr);
    return rc;
}

/* A listening socket on 127.0.0.1:port (0: any free port), its port in *bound; -1 on failure. */
static int listen_on(long port, int *bound)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) < 0) {
        perror("mock-ollama: listen");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

int main(int argc, char **argv)
{
    sigset_t stop;
    char *end;
    long port;
    int listen_fd, signal_fd, bound, rc;

    if (argc < 2 || argc > 3 || (port = strtol(argv[1], &end, 10)) < 0 || port > 65535 || *end || end == argv[1]) {
        fputs("usage: mock-ollama PORT [SCENARIO_DIR]\n", stderr);
        return 2;
    }
    state.dir = argc == 3 ? argv[2] : NULL;
    state.cache_slots = getenv("MOCK_CACHE_SLOTS") ? strtoul(getenv("MOCK_CACHE_SLOTS"), NULL, 10) : 4;
    if (state.cache_slots > CACHE_SLOTS_MAX)
        state.cache_slots = CACHE_SLOTS_MAX;
    signal(SIGPIPE, SIG_IGN);
    /* Blocked before any thread starts, so every thread inherits the mask and the signals only reach signal_fd. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    if ((signal_fd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0 || (listen_fd = listen_on(port, &bound)) < 0)
        return 1;
    printf("listening %d\n", bound);
    fflush(stdout);
    rc = accept_loop(listen_fd, signal_fd);
    /* Exit still holding the lock, so no connection thread touches the state freed here. */
    pthread_mutex_lock(&state.lock);
    state_clear();
    return rc;
}
