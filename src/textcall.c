/* textcall.c -- tool calls a model wrote as text instead of calling them, recovered as real calls at the
 * end of its reply, while every byte that cannot belong to one streams on at once.
 *
 * Ollama parses only the call format of a model's template, and only where the reply begins with it;
 * models often write a call another way (bare JSON, Hermes tags, qwen3-coder XML without its opening
 * tag, llama's python tag, Mistral's marker, a ```json fence) and the agent then shows it and stops.
 *
 * A false call is worse than a missed one, so a call is recovered only when its name is an offered tool,
 * its arguments are a JSON object, and nothing but spaces and the format's own markers follows it to the
 * end of the reply. Text goes out as it comes; from a byte that may open a call (a '{' or '[' at the start
 * of a word, a '<', a '`' at the start of a line) the text is held and read by a byte-at-a-time parser,
 * and released the moment it cannot be a call: a key no call has, a name no tool starts with, text after
 * a complete call. The released text is sent byte for byte, and reading resumes at the byte that failed,
 * so each byte is read at most twice and the cost stays linear in the reply. */
#include "textcall.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonx.h"

static const char *const format_names[TEXTCALL_N_FORMATS] = { "json", "hermes", "qwen3", "llama", "mistral",
                                                               "fence" };

enum state {
    S_SCAN,          /* no call possible: text goes out */
    S_LIT,           /* the rest of a marker, then the action lit_next */
    S_LT,            /* '<' of <tool_call>, </tool_call>, <function= or <|python_tag|> */
    S_BRACKET,       /* '[' of a JSON array of calls, or of [TOOL_CALLS] */
    S_JSON,          /* a JSON call, an array of them, or Mistral's arguments */
    S_UNIT_START,    /* after a marker that calls follow */
    S_FENCE_LANG,    /* after "```": the language, to the end of the line */
    S_FN_NAME,       /* after "<function=" */
    S_XML_BODY,      /* between a function's parameters */
    S_XML_LT,        /* '<' in a function */
    S_XML_LT_SLASH,  /* "</" in a function */
    S_PARAM_NAME,    /* after "<parameter=" */
    S_PARAM_VALUE,   /* up to "</parameter>" */
    S_MISTRAL_NAME,  /* [TOOL_CALLS]NAME, up to [ARGS] */
    S_ARGS_OPEN,     /* after [ARGS]: the arguments object */
    S_AFTER,         /* complete calls held: only spaces, closing markers or more calls may follow */
};

/* What a matched marker leads to. */
enum action {
    A_TOOL_CALL_OPEN, A_TOOL_CALL_CLOSE, A_FUNCTION_OPEN, A_FUNCTION_CLOSE, A_FUNCTION_CLOSE_WRAP, A_PARAM_OPEN,
    A_PYTHON_TAG, A_TOOL_CALLS, A_ARGS, A_FENCE_OPEN, A_FENCE_CLOSE,
};

enum wrap { W_NONE, W_HERMES, W_FENCE };
enum unit { K_CALL, K_CALLS, K_ARGS };
enum opener_at { O_SCAN, O_START, O_AFTER };
enum { T_HOLD, T_FAIL };
enum { J_MORE, J_DONE, J_FAIL };
enum json_state { J_VALUE, J_OBJ_OPEN, J_KEY, J_COLON, J_NEXT, J_ARR_OPEN, J_STR, J_ESC, J_HEX, J_NUM, J_LIT };
enum call_key { KEY_OTHER, KEY_NAME };

#define MAX_NAME 256
#define MAX_FENCE_LANG 16

int textcall_parse_formats(const char *list, unsigned *mask, char *err, size_t errlen)
{
    const char *p = list;

    if (strcmp(list, "auto") == 0) {
        *mask = TEXTCALL_ALL;
        return 0;
    }
    *mask = 0;
    if (strcmp(list, "off") == 0)
        return 0;
    while (*p) {
        size_t n = strcspn(p, ", ");
        int i = 0;

        while (i < TEXTCALL_N_FORMATS && !(strlen(format_names[i]) == n && strncmp(format_names[i], p, n) == 0))
            i++;
        if (n && i == TEXTCALL_N_FORMATS) {
            snprintf(err, errlen, "TEXT_TOOL_CALLS: unknown format \"%.*s\" (expected auto, off, or a list of "
                     "json, hermes, qwen3, llama, mistral, fence)", (int)(n > 40 ? 40 : n), p);
            return -1;
        }
        if (n)
            *mask |= 1u << i;
        p += n;
        p += strspn(p, ", ");
    }
    return 0;
}

const char *textcall_format_name(int i)
{
    return i >= 0 && i < TEXTCALL_N_FORMATS ? format_names[i] : "?";
}

static void reset(struct textcall *t)
{
    t->state = S_SCAN;
    t->wrap = W_NONE;
    t->unit_format = TEXTCALL_JSON;
    buf_reset(&t->held);
    json_object_put(t->calls);
    t->calls = NULL;
    t->found = 0;
}

static int by_name(const void *a, const void *b)
{
    const struct textcall_tool *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : x->order < y->order ? -1 : x->order > y->order;
}

void textcall_init(struct textcall *t, struct json_object *tools, unsigned formats, size_t max_held)
{
    size_t n = tools ? json_object_array_length(tools) : 0;

    memset(t, 0, sizeof *t);
    t->formats = formats;
    t->max_held = max_held;
    t->prev = '\n';
    buf_init(&t->held);
    buf_init(&t->out);
    t->tools = xcalloc(n ? n : 1, sizeof *t->tools);
    for (size_t i = 0; i < n; i++) {
        struct json_object *fn, *name, *params, *props = NULL;

        if (!json_object_object_get_ex(json_object_array_get_idx(tools, i), "function", &fn) ||
            !json_object_object_get_ex(fn, "name", &name) || !json_object_is_type(name, json_type_string))
            continue;
        if (json_object_object_get_ex(fn, "parameters", &params) &&
            json_object_object_get_ex(params, "properties", &props) && !json_object_is_type(props, json_type_object))
            props = NULL;
        t->tools[t->n_tools].name = json_object_get_string(name);
        t->tools[t->n_tools].props = props;
        t->tools[t->n_tools].order = i;
        t->n_tools++;
    }
    qsort(t->tools, t->n_tools, sizeof *t->tools, by_name);
    reset(t);
}

void textcall_free(struct textcall *t)
{
    json_object_put(t->calls);
    buf_free(&t->held);
    buf_free(&t->out);
    free(t->tools);
    memset(t, 0, sizeof *t);
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* ---- tool names ----
 *
 * A name is checked as it is read, a byte at a time: the tools whose names begin with the bytes read so
 * far are a range of the sorted table, and each byte narrows it by a binary search. A byte costs the log of
 * the number of tools, not the tools times the name's length. */

/* A name is read from held's byte at: every tool may still be named. */
static void name_begin(struct textcall *t, size_t at)
{
    t->name_start = at;
    t->name_lo = 0;
    t->name_hi = t->n_tools;
    t->name_len = 0;
}

/* The first tool in [lo, hi) whose name's byte k is past c (above, 1) or at least c (above, 0); every
 * name there is at least k bytes long and begins alike, so their byte k only grows along the range. */
static size_t name_bound(const struct textcall *t, size_t lo, size_t hi, size_t k, unsigned char c, int above)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        unsigned char m = (unsigned char)t->tools[mid].name[k];

        if (above ? m <= c : m < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Narrows the range to the tools whose names begin with the n bytes read from name_start. */
static void name_prefix(struct textcall *t, size_t n)
{
    const unsigned char *s = (const unsigned char *)t->held.data + t->name_start;

    if (n < t->name_len)
        name_begin(t, t->name_start);
    for (; t->name_len < n && t->name_lo < t->name_hi; t->name_len++) {
        size_t lo;

        /* No name goes on past a NUL: the table is never read past a name's end. */
        if (s[t->name_len] == '\0') {
            t->name_hi = t->name_lo;
            break;
        }
        lo = name_bound(t, t->name_lo, t->name_hi, t->name_len, s[t->name_len], 0);

        t->name_hi = name_bound(t, lo, t->name_hi, t->name_len, s[t->name_len], 1);
        t->name_lo = lo;
    }
}

/* Some offered tool's name is the n bytes read from name_start (whole) or starts with them. */
static int name_viable(struct textcall *t, size_t n, int whole)
{
    name_prefix(t, n);
    if (t->name_lo >= t->name_hi)
        return 0;
    /* Of the names that begin so, the one that ends there sorts first. */
    return !whole || t->tools[t->name_lo].name[n] == '\0';
}

/* The first offered tool named so, by binary search; -1 when none is. */
static int tool_index(const struct textcall *t, const char *name)
{
    size_t lo = 0, hi = t->n_tools;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(t->tools[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->n_tools && strcmp(t->tools[lo].name, name) == 0 ? (int)lo : -1;
}

/* The next byte of a name being read from name_start: a name character some tool's name goes on with. */
static int name_char(struct textcall *t, unsigned char c)
{
    size_t n = t->held.len - t->name_start;

    if (c < 0x21 || c == '<' || c == '>' || c == '"' || n > MAX_NAME)
        return T_FAIL;
    return name_viable(t, n, 0) ? T_HOLD : T_FAIL;
}

/* The name read from name_start up to (not including) end is a whole tool name. */
static int name_whole(struct textcall *t, size_t end)
{
    return end > t->name_start && name_viable(t, end - t->name_start, 1);
}

/* ---- building calls ---- */

static void add_call(struct textcall *t, const char *name, struct json_object *arguments)
{
    struct json_object *fn = json_object_new_object(), *call = json_object_new_object();

    json_object_object_add(fn, "name", json_object_new_string(name));
    json_object_object_add(fn, "arguments", arguments);
    json_object_object_add(call, "function", fn);
    if (!t->calls)
        t->calls = json_object_new_array();
    json_object_array_add(t->calls, call);
}

/* Arguments as the model wrote them: an object, or a string holding one (as OpenAI's API sends them).
 * Returns a new reference, or NULL. */
static struct json_object *arguments_object(struct json_object *v)
{
    struct json_object *o;
    struct apierr err;

    if (json_object_is_type(v, json_type_object))
        return json_object_get(v);
    if (!json_object_is_type(v, json_type_string))
        return NULL;
    o = jsonx_parse(json_object_get_string(v), (size_t)json_object_get_string_len(v), &err);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* {"name": NAME, "arguments"|"parameters"|"input": {…}} with maybe "type": "function" and an "id". */
static int call_from_json(struct textcall *t, struct json_object *o)
{
    const char *name = NULL;
    struct json_object *args = NULL;
    int ok = json_object_is_type(o, json_type_object);

    if (!ok)
        return -1;
    json_object_object_foreach(o, key, v) {
        if (strcmp(key, "name") == 0 && json_object_is_type(v, json_type_string))
            name = json_object_get_string(v);
        else if ((strcmp(key, "arguments") == 0 || strcmp(key, "parameters") == 0 || strcmp(key, "input") == 0) &&
                 !args)
            ok = (args = arguments_object(v)) != NULL;
        else if (strcmp(key, "type") == 0)
            ok = json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "function") == 0;
        else if (strcmp(key, "id") != 0 || !json_object_is_type(v, json_type_string))
            ok = 0;
        if (!ok)
            break;
    }
    if (!ok || !name || !args || tool_index(t, name) < 0) {
        json_object_put(args);
        return -1;
    }
    add_call(t, name, args);
    return 0;
}

/* The JSON call unit that just ended: a call, an array of calls, or Mistral's arguments for a name. */
static int json_unit_done(struct textcall *t, int kind)
{
    struct apierr err;
    struct json_object *o = jsonx_parse(t->held.data + t->unit_start, t->held.len - t->unit_start, &err);
    int rc = -1;

    if (!o)
        return T_FAIL;
    if (kind == K_CALL) {
        rc = call_from_json(t, o);
    } else if (kind == K_CALLS) {
        size_t n = json_object_array_length(o);

        rc = n ? 0 : -1;
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = call_from_json(t, json_object_array_get_idx(o, i));
    } else if (json_object_is_type(o, json_type_object)) {
        char *name = xstrndup(t->held.data + t->name_start, t->unit_name_end - t->name_start);

        add_call(t, name, json_object_get(o));
        free(name);
        rc = 0;
    }
    json_object_put(o);
    if (rc < 0)
        return T_FAIL;
    t->found |= (unsigned)t->unit_format;
    t->state = S_AFTER;
    return T_HOLD;
}

/* The JSON Schema types a parameter may have, as a bit set; 0 when the schema does not say. */
enum { TY_STRING = 1, TY_INTEGER = 2, TY_NUMBER = 4, TY_BOOLEAN = 8, TY_NULL = 16, TY_OBJECT = 32, TY_ARRAY = 64 };

static unsigned type_bit(struct json_object *v)
{
    static const char *const names[] = { "string", "integer", "number", "boolean", "null", "object", "array" };
    const char *s = json_object_get_string(v);

    if (!json_object_is_type(v, json_type_string))
        return 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(s, names[i]) == 0)
            return 1u << i;
    return 0;
}

static unsigned param_types(struct json_object *props, const char *name)
{
    struct json_object *schema, *type;
    unsigned bits = 0;

    if (!props || !json_object_object_get_ex(props, name, &schema) ||
        !json_object_object_get_ex(schema, "type", &type))
        return 0;
    if (!json_object_is_type(type, json_type_array))
        return type_bit(type);
    for (size_t i = 0; i < json_object_array_length(type); i++)
        bits |= type_bit(json_object_array_get_idx(type, i));
    return bits;
}

/* A qwen3-coder parameter's text as the value its schema asks for; as text when it does not parse as one.
 * Returns a new reference, or NULL for JSON null. */
static struct json_object *typed_value(const char *s, size_t n, unsigned types)
{
    struct apierr err;
    char *text, *end;
    struct json_object *v = NULL;
    size_t a = 0, b = n;

    if (!(types & ~(unsigned)TY_STRING))
        return jsonx_string(s, n);
    while (a < b && is_space((unsigned char)s[a]))
        a++;
    while (b > a && is_space((unsigned char)s[b - 1]))
        b--;
    if (b == a)
        return jsonx_string(s, n);
    text = xstrndup(s + a, b - a);
    if ((types & TY_NULL) && strcmp(text, "null") == 0) {
        free(text);
        return NULL;
    }
    errno = 0;
    if (types & TY_INTEGER) {
        long long i = strtoll(text, &end, 10);

        if (!*end && !errno)
            v = json_object_new_int64(i);
    }
    if (!v && (types & TY_NUMBER)) {
        double d = strtod(text, &end);

        if (!*end && isfinite(d))
            v = json_object_new_double(d);
    }
    if (!v && (types & TY_BOOLEAN) && (strcmp(text, "true") == 0 || strcmp(text, "false") == 0))
        v = json_object_new_boolean(text[0] == 't');
    if (!v && (types & (TY_OBJECT | TY_ARRAY)) && (v = jsonx_parse(text, b - a, &err)) &&
        !((types & TY_OBJECT) && json_object_is_type(v, json_type_object)) &&
        !((types & TY_ARRAY) && json_object_is_type(v, json_type_array))) {
        json_object_put(v);
        v = NULL;
    }
    free(text);
    return v ? v : jsonx_string(s, n);
}

/* The bytes from p up to the marker m, or NULL when m does not come before end. */
static const char *upto(const char *p, const char *end, const char *m)
{
    size_t n = strlen(m);

    for (; p + n <= end; p++)
        if (memcmp(p, m, n) == 0)
            return p;
    return NULL;
}

/* <function=NAME> (<parameter=P>VALUE</parameter>)* </function>, already checked as it came: now read
 * into a call, each value typed by the tool's schema. */
static int xml_unit_done(struct textcall *t)
{
    const char *p = t->held.data + t->unit_start + strlen("<function="), *end = t->held.data + t->held.len;
    const char *gt = memchr(p, '>', (size_t)(end - p));
    char *name = xstrndup(p, (size_t)(gt - p));
    int tool = tool_index(t, name);
    struct json_object *props = tool >= 0 ? t->tools[tool].props : NULL, *args = json_object_new_object();

    for (p = gt + 1;;) {
        const char *pname, *pend, *value, *close;
        char *key;

        while (p < end && is_space((unsigned char)*p))
            p++;
        if ((size_t)(end - p) < strlen("<parameter=") || memcmp(p, "<parameter=", strlen("<parameter=")) != 0)
            break;
        pname = p + strlen("<parameter=");
        pend = memchr(pname, '>', (size_t)(end - pname));
        value = pend + 1;
        close = upto(value, end, "</parameter>");
        /* qwen3-coder puts each value on lines of its own. */
        if (close > value && value[0] == '\n')
            value++;
        key = xstrndup(pname, (size_t)(pend - pname));
        json_object_object_add(args, key, typed_value(value, (size_t)(close - value) - (close > value &&
                               close[-1] == '\n'), param_types(props, key)));
        free(key);
        p = close + strlen("</parameter>");
    }
    add_call(t, name, args);
    free(name);
    t->found |= TEXTCALL_QWEN3 | (t->wrap == W_FENCE ? TEXTCALL_FENCE : 0);
    t->state = S_AFTER;
    return T_HOLD;
}

/* ---- JSON, checked as it comes ---- */

static int is_call_key(const char *s, size_t n)
{
    static const char *const keys[] = { "name", "arguments", "parameters", "input", "type", "id" };

    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strlen(keys[i]) == n && memcmp(keys[i], s, n) == 0)
            return 1;
    return 0;
}

static int json_begin(struct textcall *t, int kind, int call_depth)
{
    struct textcall_json *j = &t->json;

    if (!(t->formats & (unsigned)t->unit_format))
        return T_FAIL;
    memset(j, 0, sizeof *j);
    j->st = J_VALUE;
    j->call_depth = call_depth;
    t->unit_kind = kind;
    t->state = S_JSON;
    return T_HOLD;
}

static int json_open(struct textcall_json *j, unsigned char kind)
{
    if ((size_t)j->depth >= sizeof j->kinds)
        return J_FAIL;
    j->kinds[j->depth++] = kind;
    j->st = kind == '{' ? J_OBJ_OPEN : J_ARR_OPEN;
    return J_MORE;
}

static int json_close(struct textcall_json *j)
{
    j->depth--;
    j->st = J_NEXT;
    return j->depth == 0 ? J_DONE : J_MORE;
}

static int json_value(struct textcall *t, unsigned char c)
{
    struct textcall_json *j = &t->json;

    /* The members of an array of calls are calls; the value of a call's "name" is a tool's name. */
    if (j->call_depth == 2 && j->depth == 1 && c != '{')
        return J_FAIL;
    if (j->call_depth && j->depth == j->call_depth && j->key == KEY_NAME) {
        if (c != '"')
            return J_FAIL;
        j->in_name = 1;
        name_begin(t, t->held.len);
    }
    if (c == '{' || c == '[')
        return json_open(j, c);
    if (c == '"') {
        j->is_key = 0;
        j->st = J_STR;
        return J_MORE;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        j->st = J_NUM;
        return J_MORE;
    }
    j->lit = c == 't' ? "rue" : c == 'f' ? "alse" : c == 'n' ? "ull" : NULL;
    j->st = J_LIT;
    return j->lit ? J_MORE : J_FAIL;
}

static int json_string_end(struct textcall *t)
{
    struct textcall_json *j = &t->json;

    if (j->is_key) {
        j->st = J_COLON;
        if (!j->call_depth || j->depth != j->call_depth)
            return J_MORE;
        if (!is_call_key(t->held.data + j->key_start, t->held.len - 1 - j->key_start))
            return J_FAIL;
        j->key = t->held.len - 1 - j->key_start == 4 && memcmp(t->held.data + j->key_start, "name", 4) == 0
                  ? KEY_NAME : KEY_OTHER;
        return J_MORE;
    }
    j->st = J_NEXT;
    if (j->in_name) {
        j->in_name = 0;
        return name_whole(t, t->held.len - 1) ? J_MORE : J_FAIL;
    }
    return J_MORE;
}

/* One byte of JSON, c already in held. A grammar check only: numbers and escapes are checked by the
 * parser once the unit is complete. */
static int json_step(struct textcall *t, unsigned char c)
{
    struct textcall_json *j = &t->json;

    switch (j->st) {
    case J_ARR_OPEN:
        if (c == ']')
            return json_close(j);
        /* fall through */
    case J_VALUE:
        return is_space(c) ? J_MORE : json_value(t, c);
    case J_OBJ_OPEN:
        if (c == '}')
            return json_close(j);
        /* fall through */
    case J_KEY:
        if (is_space(c))
            return J_MORE;
        if (c != '"')
            return J_FAIL;
        j->is_key = 1;
        j->key_start = t->held.len;
        j->st = J_STR;
        return J_MORE;
    case J_COLON:
        if (is_space(c))
            return J_MORE;
        j->st = J_VALUE;
        return c == ':' ? J_MORE : J_FAIL;
    case J_NUM:
        if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')
            return J_MORE;
        j->st = J_NEXT;
        /* fall through */
    case J_NEXT:
        if (is_space(c))
            return J_MORE;
        if (c == ',') {
            j->st = j->kinds[j->depth - 1] == '{' ? J_KEY : J_VALUE;
            j->key = KEY_OTHER;
            return J_MORE;
        }
        if (c == (j->kinds[j->depth - 1] == '{' ? '}' : ']'))
            return json_close(j);
        return J_FAIL;
    case J_STR:
        if (c == '"')
            return json_string_end(t);
        if (c < 0x20 || (c == '\\' && j->in_name))
            return J_FAIL;
        if (c == '\\')
            j->st = J_ESC;
        else if (j->in_name)
            return t->held.len - t->name_start <= MAX_NAME && name_viable(t, t->held.len - t->name_start, 0)
                   ? J_MORE : J_FAIL;
        return J_MORE;
    case J_ESC:
        if (c == 'u') {
            j->hex_left = 4;
            j->st = J_HEX;
            return J_MORE;
        }
        j->st = J_STR;
        return strchr("\"\\/bfnrt", c) && c ? J_MORE : J_FAIL;
    case J_HEX:
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return J_FAIL;
        if (--j->hex_left == 0)
            j->st = J_STR;
        return J_MORE;
    case J_LIT:
        if (c != (unsigned char)*j->lit)
            return J_FAIL;
        if (!*++j->lit)
            j->st = J_NEXT;
        return J_MORE;
    }
    return J_FAIL;
}

/* ---- markers ---- */

static int expect(struct textcall *t, const char *rest, int action)
{
    t->lit = rest;
    t->lit_next = action;
    t->state = S_LIT;
    return T_HOLD;
}

static int fence_lang_ok(const char *s, size_t n)
{
    static const char *const langs[] = { "", "json", "tool_call", "tool_calls", "xml" };

    while (n && s[n - 1] == ' ')
        n--;
    for (size_t i = 0; i < sizeof langs / sizeof *langs; i++)
        if (strlen(langs[i]) == n && strncmp(langs[i], s, n) == 0)
            return 1;
    return 0;
}

static int marker_done(struct textcall *t)
{
    switch (t->lit_next) {
    case A_TOOL_CALL_OPEN:
        t->wrap = W_HERMES;
        t->unit_format = TEXTCALL_HERMES;
        t->state = S_UNIT_START;
        return T_HOLD;
    case A_TOOL_CALL_CLOSE:
    case A_FENCE_CLOSE:
        t->wrap = W_NONE;
        t->unit_format = TEXTCALL_JSON;
        t->state = S_AFTER;
        return T_HOLD;
    case A_FUNCTION_OPEN:
    case A_PARAM_OPEN:
        name_begin(t, t->held.len);
        t->state = t->lit_next == A_FUNCTION_OPEN ? S_FN_NAME : S_PARAM_NAME;
        return T_HOLD;
    case A_FUNCTION_CLOSE_WRAP:
        if (t->wrap == W_HERMES)
            t->wrap = W_NONE;
        /* fall through */
    case A_FUNCTION_CLOSE:
        return xml_unit_done(t);
    case A_PYTHON_TAG:
    case A_TOOL_CALLS:
        t->unit_format = t->lit_next == A_PYTHON_TAG ? TEXTCALL_LLAMA : TEXTCALL_MISTRAL;
        t->state = S_UNIT_START;
        return T_HOLD;
    case A_ARGS:
        t->state = S_ARGS_OPEN;
        return T_HOLD;
    case A_FENCE_OPEN:
        t->fence_lang = t->held.len;
        t->state = S_FENCE_LANG;
        return T_HOLD;
    }
    return T_FAIL;
}

/* c may open a call, or a marker calls sit in: where a call may begin (at the start of a word when it is
 * in the middle of text). */
static int opener(struct textcall *t, unsigned char c, int at)
{
    switch (c) {
    case '{':
        if (at == O_SCAN && !is_space(t->prev))
            return T_FAIL;
        t->unit_start = t->held.len - 1;
        if (json_begin(t, K_CALL, 1) == T_FAIL)
            return T_FAIL;
        return json_step(t, c) == J_FAIL ? T_FAIL : T_HOLD;
    case '[':
        t->bracket_word = at != O_SCAN || is_space(t->prev);
        t->unit_start = t->held.len - 1;
        t->state = S_BRACKET;
        return T_HOLD;
    case '<':
        t->unit_start = t->held.len - 1;
        t->state = S_LT;
        return T_HOLD;
    case '`':
        if (at == O_START || t->wrap == W_HERMES || !(t->formats & TEXTCALL_FENCE))
            return T_FAIL;
        if (t->wrap == W_FENCE)
            return expect(t, "``", A_FENCE_CLOSE);
        return t->prev == '\n' ? expect(t, "``", A_FENCE_OPEN) : T_FAIL;
    }
    return T_FAIL;
}

static int after_lt(struct textcall *t, unsigned char c)
{
    switch (c) {
    case 't':
        if (t->wrap != W_NONE || !(t->formats & (TEXTCALL_HERMES | TEXTCALL_QWEN3)))
            return T_FAIL;
        return expect(t, "ool_call>", A_TOOL_CALL_OPEN);
    case 'f':
        return t->formats & TEXTCALL_QWEN3 ? expect(t, "unction=", A_FUNCTION_OPEN) : T_FAIL;
    case '|':
        if (t->wrap != W_NONE || !(t->formats & TEXTCALL_LLAMA))
            return T_FAIL;
        return expect(t, "python_tag|>", A_PYTHON_TAG);
    case '/':
        if (!t->calls || t->wrap == W_FENCE)
            return T_FAIL;
        return expect(t, "tool_call>", A_TOOL_CALL_CLOSE);
    }
    return T_FAIL;
}

static int after_bracket(struct textcall *t, unsigned char c)
{
    if (c == 'T') {
        if (t->wrap != W_NONE || !(t->formats & TEXTCALL_MISTRAL))
            return T_FAIL;
        return expect(t, "OOL_CALLS]", A_TOOL_CALLS);
    }
    if (!t->bracket_word || !(is_space(c) || c == '{') || json_begin(t, K_CALLS, 2) == T_FAIL)
        return T_FAIL;
    json_step(t, '[');
    return json_step(t, c) == J_FAIL ? T_FAIL : T_HOLD;
}

static int in_json(struct textcall *t, unsigned char c)
{
    switch (json_step(t, c)) {
    case J_MORE:
        return T_HOLD;
    case J_DONE:
        return json_unit_done(t, t->unit_kind);
    }
    return T_FAIL;
}

static int in_fence_lang(struct textcall *t, unsigned char c)
{
    size_t n = t->held.len - 1 - t->fence_lang;

    if (c == '\n') {
        if (!fence_lang_ok(t->held.data + t->fence_lang, n))
            return T_FAIL;
        t->wrap = W_FENCE;
        t->unit_format = TEXTCALL_FENCE;
        t->state = S_UNIT_START;
        return T_HOLD;
    }
    return n < MAX_FENCE_LANG && ((c >= 'a' && c <= 'z') || c == '_' || c == ' ') ? T_HOLD : T_FAIL;
}

static int in_xml(struct textcall *t, unsigned char c)
{
    switch (t->state) {
    case S_FN_NAME:
        if (c != '>')
            return name_char(t, c);
        if (!name_whole(t, t->held.len - 1))
            return T_FAIL;
        t->state = S_XML_BODY;
        return T_HOLD;
    case S_XML_BODY:
        if (is_space(c))
            return T_HOLD;
        t->state = S_XML_LT;
        return c == '<' ? T_HOLD : T_FAIL;
    case S_XML_LT:
        if (c == 'p')
            return expect(t, "arameter=", A_PARAM_OPEN);
        t->state = S_XML_LT_SLASH;
        return c == '/' ? T_HOLD : T_FAIL;
    case S_XML_LT_SLASH:
        if (c == 'f')
            return expect(t, "unction>", A_FUNCTION_CLOSE);
        /* A call closed by </tool_call> alone. */
        return c == 't' ? expect(t, "ool_call>", A_FUNCTION_CLOSE_WRAP) : T_FAIL;
    case S_PARAM_NAME:
        if (c == '>' && t->held.len - 1 > t->name_start) {
            t->close_match = 0;
            t->state = S_PARAM_VALUE;
            return T_HOLD;
        }
        return c >= 0x21 && c != '<' && c != '>' && t->held.len - t->name_start <= MAX_NAME ? T_HOLD : T_FAIL;
    case S_PARAM_VALUE: {
        static const char close[] = "</parameter>";

        /* No prefix of the closing tag recurs inside it, so a mismatch restarts the match at this byte. */
        if (c == (unsigned char)close[t->close_match])
            t->close_match++;
        else
            t->close_match = c == '<';
        if (t->close_match == sizeof close - 1)
            t->state = S_XML_BODY;
        return T_HOLD;
    }
    }
    return T_FAIL;
}

/* One byte of a possible call, already appended to held. */
static int step(struct textcall *t, unsigned char c)
{
    switch (t->state) {
    case S_LIT:
        if (c != (unsigned char)*t->lit)
            return T_FAIL;
        return *++t->lit ? T_HOLD : marker_done(t);
    case S_LT:
        return after_lt(t, c);
    case S_BRACKET:
        return after_bracket(t, c);
    case S_JSON:
        return in_json(t, c);
    case S_UNIT_START:
        if (is_space(c))
            return T_HOLD;
        if (t->unit_format == TEXTCALL_MISTRAL && c != '{' && c != '[') {
            name_begin(t, t->held.len - 1);
            t->state = S_MISTRAL_NAME;
            return name_char(t, c);
        }
        return opener(t, c, O_START);
    case S_FENCE_LANG:
        return in_fence_lang(t, c);
    case S_MISTRAL_NAME:
        if (c != '[')
            return name_char(t, c);
        if (!name_whole(t, t->held.len - 1))
            return T_FAIL;
        t->unit_name_end = t->held.len - 1;
        return expect(t, "ARGS]", A_ARGS);
    case S_ARGS_OPEN:
        if (is_space(c))
            return T_HOLD;
        t->unit_start = t->held.len - 1;
        if (c != '{' || json_begin(t, K_ARGS, 0) == T_FAIL)
            return T_FAIL;
        return json_step(t, c) == J_FAIL ? T_FAIL : T_HOLD;
    case S_AFTER:
        if (is_space(c) || c == ';')
            return T_HOLD;
        if (t->wrap == W_NONE && t->unit_format != TEXTCALL_LLAMA)
            t->unit_format = TEXTCALL_JSON;
        return opener(t, c, O_AFTER);
    default:
        return in_xml(t, c);
    }
}

/* Bytes that may open a call in the middle of text; every other byte goes out at once. */
static int may_open(const struct textcall *t, unsigned char c)
{
    switch (c) {
    case '{':
        return (t->formats & TEXTCALL_JSON) && is_space(t->prev);
    case '[':
        return (t->formats & (TEXTCALL_JSON | TEXTCALL_MISTRAL)) != 0;
    case '<':
        return (t->formats & (TEXTCALL_HERMES | TEXTCALL_QWEN3 | TEXTCALL_LLAMA)) != 0;
    case '`':
        return (t->formats & TEXTCALL_FENCE) && t->prev == '\n';
    }
    return 0;
}

/* What was held cannot be a call: it is text after all. */
static void release(struct textcall *t)
{
    buf_append(&t->out, t->held.data, t->held.len);
    if (t->held.len)
        t->prev = (unsigned char)t->held.data[t->held.len - 1];
    reset(t);
}

void textcall_feed(struct textcall *t, const char *s, size_t n, const char **out, size_t *out_len)
{
    size_t run = 0;   /* the start of text going out that is not yet copied to t->out */

    buf_reset(&t->out);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (t->state == S_SCAN) {
            if (!may_open(t, c)) {
                t->prev = c;
                continue;
            }
            buf_append(&t->out, s + run, i - run);
            run = i + 1;
            t->unit_format = TEXTCALL_JSON;
            buf_putc(&t->held, (char)c);
            if (opener(t, c, O_SCAN) == T_HOLD) {
                t->prev = c;
                continue;
            }
            reset(t);
            run = i;
            t->prev = c;
            continue;
        }
        buf_putc(&t->held, (char)c);
        if (t->held.len <= t->max_held && step(t, c) == T_HOLD) {
            t->prev = c;
            run = i + 1;
            continue;
        }
        /* The byte that failed is read again, as text or as the start of another call. */
        t->held.len--;
        release(t);
        run = i;
        i--;
    }
    if (t->state != S_SCAN)
        run = n;
    if (t->out.len == 0) {
        *out = s + run;
        *out_len = n - run;
        return;
    }
    buf_append(&t->out, s + run, n - run);
    *out = t->out.data;
    *out_len = t->out.len;
}

struct json_object *textcall_end(struct textcall *t, const char **out, size_t *out_len, unsigned *found)
{
    struct json_object *calls = NULL;

    buf_reset(&t->out);
    if (t->state == S_AFTER && t->calls && t->wrap != W_FENCE) {
        calls = t->calls;
        t->calls = NULL;
        *found = t->found;
        buf_reset(&t->held);
    }
    release(t);
    *out = t->out.data ? t->out.data : "";
    *out_len = t->out.len;
    return calls;
}
