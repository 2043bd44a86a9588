/* mock-ollama: a scripted stand-in for Ollama's HTTP API that tests drive, hold back and inspect. */
#include <dirent.h>
#include <errno.h>
#include <json.h>
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

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (64 * 1024 * 1024)
#define POLL_MS 20
#define JSON_CT "application/json; charset=utf-8"
#define JSON_OUT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct buf {
	char *p;
	size_t len, cap;
};

/* A scenario or show document installed through the control API. */
struct entry {
	struct entry *next;
	char *name, *text;
	size_t len;
};

struct record {
	struct record *next;
	char *method, *target, *body;
	size_t len;
};

struct conn {
	int fd;
	char *in; /* received bytes not yet consumed */
	size_t len, cap;
	bool closing, head;
};

struct request {
	char method[16];
	char *target, *path;
	const char *query;
	long long length;
	bool keep_alive, chunked, expect_continue;
	struct buf body;
};

enum directive { D_NONE, D_STATUS, D_REJECT_THINK, D_HOLD, D_SLEEP, D_CLOSE, D_RAW, D_BAD };

struct plan {
	int status;
	bool reject_think;
};

/* One chat reply in progress: streamed lines go out at once, others are kept for a single body. */
struct run {
	struct conn *c;
	bool streaming, started;
	struct buf kept;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t released;
	const char *dir;
	struct entry *scenarios, *shows;
	struct record *first, *last;
	long releases; /* granted but not yet taken by a hold; a surplus is a banked release */
	long connections_open, streams_active, streams_completed, streams_aborted, holding, chat_requests;
} g = { .mu = PTHREAD_MUTEX_INITIALIZER, .released = PTHREAD_COND_INITIALIZER };

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p) {
		fputs("mock-ollama: out of memory\n", stderr);
		abort();
	}
	return p;
}

/* Always leaves the buffer allocated and NUL-terminated, so it can be handed to C string APIs. */
static void buf_add(struct buf *b, const void *d, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xrealloc(b->p, b->cap);
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static char *xmemdup(const char *p, size_t n)
{
	struct buf b = { 0 };

	buf_add(&b, p, n);
	return b.p;
}

static json_object *parse_json(const char *p, size_t n)
{
	json_tokener *tok = json_tokener_new();
	char *copy = xmemdup(p, n);
	/* Counting the NUL tells json-c the input ends here, so a bare number completes. */
	json_object *o = json_tokener_parse_ex(tok, copy, (int)n + 1);
	size_t end = json_tokener_get_parse_end(tok);

	while (o && end < n && strchr(" \t\r\n", copy[end]))
		end++;
	if (o && end < n) {
		json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	free(copy);
	return o;
}

static const char *string_field(json_object *o, const char *key)
{
	json_object *v;

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
	buf_add(&b, "", 0); /* an empty file still exists */
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_add(&b, chunk, n);
	fclose(f);
	*len = b.len;
	return b.p;
}

static char *dir_file(const char *name, size_t *len)
{
	char *path, *text;

	if (!g.dir || asprintf(&path, "%s/%s", g.dir, name) < 0)
		return NULL;
	text = read_file(path, len);
	free(path);
	return text;
}

/* ---- shared state: entry_*() and state_clear() expect g.mu held ---- */

static void entry_set(struct entry **list, const char *name, const char *text, size_t len)
{
	struct entry *e;

	for (e = *list; e && strcmp(e->name, name); e = e->next)
		;
	if (!e) {
		e = xrealloc(NULL, sizeof *e);
		e->name = strdup(name);
		e->next = *list;
		*list = e;
	} else {
		free(e->text);
	}
	e->text = xmemdup(text, len);
	e->len = len;
}

static char *entry_copy(const struct entry *e, const char *name, size_t *len)
{
	for (; e; e = e->next) {
		if (!strcmp(e->name, name)) {
			*len = e->len;
			return xmemdup(e->text, e->len);
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
	while (g.first) {
		struct record *r = g.first;

		g.first = r->next;
		free(r->method);
		free(r->target);
		free(r->body);
		free(r);
	}
	g.last = NULL;
	entries_free(&g.scenarios);
	entries_free(&g.shows);
	g.releases = 0;
	g.streams_completed = g.streams_aborted = g.chat_requests = 0;
}

static void count(long *counter, long delta)
{
	pthread_mutex_lock(&g.mu);
	*counter += delta;
	pthread_mutex_unlock(&g.mu);
}

/* Runtime entries win; otherwise SCENARIO_DIR/<sub><model with unsafe characters as _><ext>. */
static char *load(struct entry **list, const char *sub, const char *model, const char *ext, size_t *len)
{
	char *text, *name, *p;

	pthread_mutex_lock(&g.mu);
	text = entry_copy(*list, model, len);
	pthread_mutex_unlock(&g.mu);
	if (text || asprintf(&name, "%s%s%s", sub, model, ext) < 0)
		return text;
	for (p = name + strlen(sub); p < name + strlen(sub) + strlen(model); p++) {
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p))
			*p = '_';
	}
	text = dir_file(name, len);
	free(name);
	return text;
}

static void record(const struct request *r)
{
	struct record *rec = xrealloc(NULL, sizeof *rec);

	rec->next = NULL;
	rec->method = strdup(r->method);
	rec->target = strdup(r->target);
	rec->body = xmemdup(r->body.p, r->body.len);
	rec->len = r->body.len;
	pthread_mutex_lock(&g.mu);
	if (g.last)
		g.last->next = rec;
	else
		g.first = rec;
	g.last = rec;
	pthread_mutex_unlock(&g.mu);
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
	size_t dlen = strlen(delim);

	for (;;) {
		char *p = c->len ? memmem(c->in, c->len, delim, dlen) : NULL;

		if (p) {
			*end = (size_t)(p - c->in) + dlen;
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
	default: return "Status";
	}
}

static int send_reply(struct conn *c, int status, const char *type, const char *body, size_t len)
{
	const char *conn_hdr = c->closing ? "Connection: close\r\n" : "";
	struct buf out = { 0 };
	char head[256];
	int rc;

	if (status == 204)
		snprintf(head, sizeof head, "HTTP/1.1 204 No Content\r\n%s\r\n", conn_hdr);
	else
		snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s\r\n",
			 status, reason(status), type, len, conn_hdr);
	buf_str(&out, head);
	if (status != 204 && !c->head)
		buf_add(&out, body, len);
	rc = send_all(c->fd, out.p, out.len);
	free(out.p);
	return rc;
}

/* Takes ownership of o. */
static int send_json(struct conn *c, int status, json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_OUT);
	int rc = send_reply(c, status, JSON_CT, s, strlen(s));

	json_object_put(o);
	return rc;
}

static int send_error(struct conn *c, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int send_error(struct conn *c, int status, const char *fmt, ...)
{
	json_object *o = json_object_new_object();
	char *msg;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	json_object_object_add(o, "error", json_object_new_string(n < 0 ? "mock: out of memory" : msg));
	if (n >= 0)
		free(msg);
	return send_json(c, status, o);
}

/* ---- HTTP requests ---- */

static void request_free(struct request *r)
{
	free(r->target);
	free(r->path);
	free(r->body.p);
	memset(r, 0, sizeof *r);
}

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
	r->target = strdup(sp1 + 1);
	r->path = strndup(r->target, strcspn(r->target, "?"));
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
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
	size_t end;
	char *head = NULL;
	int rc = -1;

	memset(r, 0, sizeof *r);
	if (conn_until(c, "\r\n\r\n", HEAD_MAX, &end) < 0)
		goto out;
	head = xmemdup(c->in, end);
	conn_consume(c, end);
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
	if (r->expect_continue && (r->chunked || r->length > 0) && send_all(c->fd, cont, sizeof cont - 1) < 0)
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

/* Classifies a script line; *arg is what follows the directive word and one space. */
static enum directive directive(const char *line, size_t n, const char **arg, long *num)
{
	static const struct {
		const char *word;
		enum directive d;
	} words[] = {
		{ "@status", D_STATUS }, { "@reject-think", D_REJECT_THINK }, { "@hold", D_HOLD },
		{ "@sleep", D_SLEEP }, { "@close", D_CLOSE }, { "@raw", D_RAW },
	};
	size_t w, i;
	char digits[24], *end;

	if (n == 0 || line[0] != '@')
		return D_NONE;
	for (w = 0; w < n && line[w] != ' '; w++)
		;
	*arg = line + (w < n ? w + 1 : n);
	for (i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (strlen(words[i].word) != w || memcmp(words[i].word, line, w))
			continue;
		if (words[i].d != D_STATUS && words[i].d != D_SLEEP)
			return words[i].d;
		if ((size_t)(line + n - *arg) >= sizeof digits)
			return D_BAD;
		memcpy(digits, *arg, (size_t)(line + n - *arg));
		digits[line + n - *arg] = '\0';
		*num = strtol(digits, &end, 10);
		if (end == digits || *end || *num < 0 || (words[i].d == D_STATUS && (*num < 200 || *num > 599)))
			return D_BAD;
		return words[i].d;
	}
	return D_BAD;
}

/* Reads the reply-wide directives up front; returns the first bad directive line, if any. */
static bool plan_script(const char *text, size_t len, struct plan *plan, const char **bad, size_t *bad_len)
{
	const char *cur = text, *line, *arg;
	size_t n;
	long num;

	plan->status = 200;
	plan->reject_think = false;
	while (next_line(&cur, text + len, &line, &n)) {
		switch (directive(line, n, &arg, &num)) {
		case D_STATUS:
			plan->status = (int)num;
			break;
		case D_REJECT_THINK:
			plan->reject_think = true;
			break;
		case D_BAD:
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

	pthread_mutex_lock(&g.mu);
	g.holding++;
	while (g.releases == 0) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&g.released, &g.mu, &until);
		if (g.releases == 0 && peer_gone(fd)) {
			rc = -1;
			break;
		}
	}
	if (rc == 0)
		g.releases--;
	g.holding--;
	pthread_mutex_unlock(&g.mu);
	return rc;
}

static int nap(int fd, long ms)
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

static void release(bool all)
{
	pthread_mutex_lock(&g.mu);
	if (!all)
		g.releases++;
	else if (g.releases < g.holding)
		g.releases = g.holding;
	pthread_cond_broadcast(&g.released);
	pthread_mutex_unlock(&g.mu);
}

/* A NULL line sends the terminating chunk. Headers go out with the first chunk, as Ollama's do. */
static int send_chunk(struct run *run, const char *line, size_t n)
{
	struct buf out = { 0 };
	char size[32];
	int rc;

	if (!run->started) {
		buf_str(&out, "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n");
		buf_str(&out, run->c->closing ? "Connection: close\r\n\r\n" : "\r\n");
		run->started = true;
	}
	if (line) {
		snprintf(size, sizeof size, "%zx\r\n", n + 1);
		buf_str(&out, size);
		buf_add(&out, line, n);
		buf_str(&out, "\n\r\n");
	} else {
		buf_str(&out, "0\r\n\r\n");
	}
	rc = send_all(run->c->fd, out.p, out.len);
	free(out.p);
	return rc;
}

static int emit(struct run *run, const char *line, size_t n)
{
	if (run->streaming)
		return send_chunk(run, line, n);
	if (run->kept.len)
		buf_add(&run->kept, "\n", 1);
	buf_add(&run->kept, line, n);
	return 0;
}

static void fold_message(json_object *o, struct buf *content, struct buf *thinking, json_object *calls)
{
	json_object *msg, *v;
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

/* Ollama's non-streaming reply: the final chunk with every chunk's message parts folded in. */
static int send_aggregate(struct conn *c, const char *text, size_t len)
{
	json_object *base = NULL, *calls = json_object_new_array(), *msg;
	struct buf content = { 0 }, thinking = { 0 };
	const char *cur = text, *line;
	size_t n;
	int rc;

	buf_add(&content, "", 0);
	while (next_line(&cur, text + len, &line, &n)) {
		json_object *o = parse_json(line, n);

		if (!json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			continue;
		}
		if (json_object_object_get_ex(o, "error", NULL)) {
			json_object_put(o);
			rc = send_reply(c, 500, JSON_CT, line, n);
			goto out;
		}
		fold_message(o, &content, &thinking, calls);
		json_object_put(base);
		base = o;
	}
	if (!base) {
		rc = send_error(c, 500, "mock: scenario has no JSON object lines");
		goto out;
	}
	if (!json_object_object_get_ex(base, "message", &msg) || !json_object_is_type(msg, json_type_object)) {
		msg = json_object_new_object();
		json_object_object_add(base, "message", msg);
	}
	json_object_object_add(msg, "content", json_object_new_string_len(content.p, (int)content.len));
	/* Re-added rather than replaced so they follow content, in Go's field order. */
	json_object_object_del(msg, "thinking");
	json_object_object_del(msg, "tool_calls");
	if (thinking.len)
		json_object_object_add(msg, "thinking", json_object_new_string_len(thinking.p, (int)thinking.len));
	if (json_object_array_length(calls))
		json_object_object_add(msg, "tool_calls", json_object_get(calls));
	rc = send_json(c, 200, json_object_get(base));
out:
	json_object_put(base);
	json_object_put(calls);
	free(content.p);
	free(thinking.p);
	return rc;
}

/* Plays a script; -1 means the connection must close (client gone or @close). */
static int run_script(struct conn *c, const char *text, size_t len, int status, bool streaming)
{
	struct run run = { .c = c, .streaming = streaming };
	const char *cur = text, *line, *arg;
	bool aborted = false, closed = false;
	size_t n;
	long num;

	count(&g.streams_active, 1);
	while (!aborted && !closed && next_line(&cur, text + len, &line, &n)) {
		switch (directive(line, n, &arg, &num)) {
		case D_NONE:
			aborted = n && emit(&run, line, n) < 0;
			break;
		case D_RAW:
			aborted = emit(&run, arg, (size_t)(line + n - arg)) < 0;
			break;
		case D_HOLD:
			aborted = hold(c->fd) < 0;
			break;
		case D_SLEEP:
			aborted = nap(c->fd, num) < 0;
			break;
		case D_CLOSE:
			closed = true;
			break;
		default:
			break;
		}
	}
	if (!aborted && !closed) {
		if (streaming)
			aborted = send_chunk(&run, NULL, 0) < 0;
		else if (status != 200)
			aborted = send_reply(c, status, JSON_CT, run.kept.p, run.kept.len) < 0;
		else
			aborted = send_aggregate(c, run.kept.p, run.kept.len) < 0;
	}
	free(run.kept.p);
	pthread_mutex_lock(&g.mu);
	g.streams_active--;
	if (aborted)
		g.streams_aborted++;
	else
		g.streams_completed++;
	pthread_mutex_unlock(&g.mu);
	return aborted || closed ? -1 : 0;
}

/* ---- routes ---- */

static bool wants_thinking(json_object *req)
{
	json_object *t;

	if (!json_object_object_get_ex(req, "think", &t))
		return false;
	if (json_object_is_type(t, json_type_boolean))
		return json_object_get_boolean(t);
	return json_object_is_type(t, json_type_string) && json_object_get_string_len(t) > 0 &&
	       strcmp(json_object_get_string(t), "false") != 0;
}

static bool wants_stream(json_object *req)
{
	json_object *s;

	return !json_object_object_get_ex(req, "stream", &s) || !json_object_is_type(s, json_type_boolean) ||
	       json_object_get_boolean(s);
}

static int handle_chat(struct conn *c, const struct request *r)
{
	json_object *req = NULL;
	const char *model, *bad;
	char *script = NULL;
	size_t len, bad_len;
	struct plan plan;
	int rc;

	count(&g.chat_requests, 1);
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
	script = load(&g.scenarios, "", model, ".ndjson", &len);
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
	rc = run_script(c, script, len, plan.status, plan.status == 200 && wants_stream(req));
out:
	json_object_put(req);
	free(script);
	return rc;
}

static int handle_show(struct conn *c, const struct request *r)
{
	static const char fmt[] = "{\"capabilities\":[\"completion\",\"tools\"%s],\"model_info\":{\"general.architecture\":"
				  "\"llama\",\"llama.context_length\":131072},\"details\":{\"family\":\"llama\"}}";
	json_object *req = parse_json(r->body.p, r->body.len);
	const char *model = string_field(req, "model");
	char *doc;
	size_t len;
	int rc;

	if (!*model)
		model = string_field(req, "name");
	if (!*model) {
		rc = send_error(c, 400, "model is required");
		goto out;
	}
	if ((doc = load(&g.shows, "show/", model, ".json", &len))) {
		rc = send_reply(c, 200, JSON_CT, doc, len);
	} else if ((doc = load(&g.scenarios, "", model, ".ndjson", &len))) {
		free(doc);
		if (asprintf(&doc, fmt, strstr(model, "think") ? ",\"thinking\"" : "") < 0)
			doc = NULL;
		rc = doc ? send_reply(c, 200, JSON_CT, doc, strlen(doc)) : -1;
	} else {
		rc = send_error(c, 404, "model '%s' not found", model);
	}
	free(doc);
out:
	json_object_put(req);
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static json_object *tags_json(void)
{
	json_object *models = json_object_new_array(), *root = json_object_new_object();
	char **names = NULL;
	size_t n = 0, i;
	const struct entry *e;
	struct dirent *d;
	DIR *dir = g.dir ? opendir(g.dir) : NULL;

	while (dir && (d = readdir(dir))) {
		size_t len = strlen(d->d_name);

		if (len > 7 && !strcmp(d->d_name + len - 7, ".ndjson")) {
			names = xrealloc(names, (n + 1) * sizeof *names);
			names[n++] = strndup(d->d_name, len - 7);
		}
	}
	if (dir)
		closedir(dir);
	pthread_mutex_lock(&g.mu);
	for (e = g.scenarios; e; e = e->next) {
		names = xrealloc(names, (n + 1) * sizeof *names);
		names[n++] = strdup(e->name);
	}
	pthread_mutex_unlock(&g.mu);
	qsort(names, n, sizeof *names, cmp_names);
	for (i = 0; i < n; i++) {
		json_object *m, *details;

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
	char *doc = dir_file("tags.json", &len);
	int rc;

	if (!doc)
		return send_json(c, 200, tags_json());
	rc = send_reply(c, 200, JSON_CT, doc, len);
	free(doc);
	return rc;
}

static json_object *requests_json(void)
{
	json_object *list = json_object_new_array();
	const struct record *rec;

	pthread_mutex_lock(&g.mu);
	for (rec = g.first; rec; rec = rec->next) {
		json_object *o = json_object_new_object(), *body = parse_json(rec->body, rec->len);

		if (!body && rec->len)
			body = json_object_new_string_len(rec->body, (int)rec->len);
		json_object_object_add(o, "method", json_object_new_string(rec->method));
		json_object_object_add(o, "path", json_object_new_string(rec->target));
		json_object_object_add(o, "body", body);
		json_object_object_add(o, "raw", json_object_new_string_len(rec->body, (int)rec->len));
		json_object_array_add(list, o);
	}
	pthread_mutex_unlock(&g.mu);
	return list;
}

static json_object *stats_json(void)
{
	json_object *o = json_object_new_object();

	pthread_mutex_lock(&g.mu);
	json_object_object_add(o, "connections_open", json_object_new_int64(g.connections_open));
	json_object_object_add(o, "streams_active", json_object_new_int64(g.streams_active));
	json_object_object_add(o, "streams_completed", json_object_new_int64(g.streams_completed));
	json_object_object_add(o, "streams_aborted", json_object_new_int64(g.streams_aborted));
	json_object_object_add(o, "holding", json_object_new_int64(g.holding));
	json_object_object_add(o, "chat_requests", json_object_new_int64(g.chat_requests));
	pthread_mutex_unlock(&g.mu);
	return o;
}

static int hexval(char ch)
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

		if (ch == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
			ch = (char)(hexval(s[1]) * 16 + hexval(s[2]));
			s += 2;
		}
		buf_add(&b, &ch, 1);
	}
	return b.p;
}

static int install(struct conn *c, struct entry **list, const char *encoded, const struct request *r)
{
	char *name = url_decode(encoded);

	pthread_mutex_lock(&g.mu);
	entry_set(list, name, r->body.p, r->body.len);
	pthread_mutex_unlock(&g.mu);
	free(name);
	return send_reply(c, 204, NULL, NULL, 0);
}

static int control(struct conn *c, const struct request *r, const char *what)
{
	bool get = !strcmp(r->method, "GET"), post = !strcmp(r->method, "POST"), put = !strcmp(r->method, "PUT");

	if (put && !strncmp(what, "scenario/", 9))
		return install(c, &g.scenarios, what + 9, r);
	if (put && !strncmp(what, "show/", 5))
		return install(c, &g.shows, what + 5, r);
	if (post && !strcmp(what, "release")) {
		release(!strcmp(r->query, "all=1"));
		return send_reply(c, 204, NULL, NULL, 0);
	}
	if (post && !strcmp(what, "reset")) {
		pthread_mutex_lock(&g.mu);
		state_clear();
		pthread_mutex_unlock(&g.mu);
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
		return control(c, r, r->path + 7);
	record(r);
	if (post && !strcmp(r->path, "/api/chat"))
		return handle_chat(c, r);
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
	count(&g.connections_open, -1);
	return NULL;
}

/* Accepts until SIGINT/SIGTERM shows up on sfd; one detached thread per connection. */
static int accept_loop(int lfd, int sfd)
{
	struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
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
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
				continue;
			perror("mock-ollama: accept");
			goto out;
		}
		/* Go, and so Ollama, disables Nagle: each NDJSON line leaves at once. */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		count(&g.connections_open, 1);
		if (pthread_create(&t, &attr, serve, (void *)(intptr_t)fd)) {
			close(fd);
			count(&g.connections_open, -1);
		}
	}
out:
	pthread_attr_destroy(&attr);
	return rc;
}

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
	int lfd, sfd, bound, rc;

	if (argc < 2 || argc > 3 || (port = strtol(argv[1], &end, 10)) < 0 || port > 65535 || *end || end == argv[1]) {
		fputs("usage: mock-ollama PORT [SCENARIO_DIR]\n", stderr);
		return 2;
	}
	g.dir = argc == 3 ? argv[2] : NULL;
	signal(SIGPIPE, SIG_IGN);
	/* Blocked before any thread starts, so every thread inherits the mask and the signals only reach sfd. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	if ((sfd = signalfd(-1, &stop, SFD_CLOEXEC)) < 0 || (lfd = listen_on(port, &bound)) < 0)
		return 1;
	printf("listening %d\n", bound);
	fflush(stdout);
	rc = accept_loop(lfd, sfd);
	/* Exit still holding the lock, so no connection thread touches the state freed here. */
	pthread_mutex_lock(&g.mu);
	state_clear();
	return rc;
}
