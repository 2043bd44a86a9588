/* jsonx.c -- strict JSON parsing with limits, typed field access that names the field on error, plain output. */
#include "jsonx.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

struct json_tokener *jsonx_tokener_new(void)
{
    struct json_tokener *tok = json_tokener_new_ex(JSONX_MAX_DEPTH);

    /* No JSON_TOKENER_VALIDATE_UTF8: it doubles the parse time. Client bodies get a stricter check
     * (first_non_json) first; a line from Ollama with invalid UTF-8 in it is repaired on the way out
     * (jsonx_put_string). */
    if (tok)
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    return tok;
}

static int only_space(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

static int hex4(const char *s, size_t len, size_t at, unsigned *out)
{
    unsigned v = 0;

    if (at + 4 > len)
        return -1;
    for (size_t i = at; i < at + 4; i++) {
        char c = s[i];

        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* The length of the well-formed UTF-8 character at s (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0. */
size_t jsonx_utf8_char(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned c = s[0], cp;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t jsonx_utf8_prefix(const char *s, size_t len, size_t max)
{
    size_t cut;

    if (len <= max)
        return len;
    cut = max;
    /* Back off over continuation bytes to the start of the character the cut would split. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80 && max - cut < 3)
        cut--;
    return cut;
}

/* Bytes inside a string that need a closer look: controls, the quote, the backslash, non-ASCII. */
static const unsigned char string_special[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 1,
};

/* What json-c 0.16 spends holding a parsed document, by the punctuation that brings each thing in
 * (measured on x86-64): an object and its hash table about 800 bytes, an array 160, each further value
 * about 96 with its slot, each member's key and entry 112 more; strings also take their text. A body of
 * "[{},{},...]" would cost 260 times its size; it is refused before it is built. */
static const unsigned short structure_cost[256] = { ['{'] = 800, ['['] = 160, [','] = 96, [':'] = 112 };

size_t jsonx_budget(size_t len)
{
    return JSONX_BUDGET_BASE + JSONX_BUDGET_PER_BYTE * len;
}

size_t jsonx_cost(const char *s, size_t len)
{
    size_t cost = len;
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!in_string)
            cost += structure_cost[c];
        if (c == '"')
            in_string = !in_string;
        else if (c == '\\' && in_string)
            i++;
    }
    return cost;
}

/* What json-c's strict mode still lets through: single quotes, NaN and Infinity, raw control characters
 * in strings, "1.", malformed UTF-8 (overlong forms, encoded surrogates) and unpaired \u surrogates --
 * rejected before parsing. Returns the offset of the first bad byte, or len; adds what the document
 * would cost once parsed to *cost. */
static size_t first_non_json(const char *s, size_t len, size_t *cost)
{
    int in_string = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (in_string) {
            unsigned u, low;
            size_t n;

            /* Most of a body is plain text inside strings: skip it a byte at a time, nothing more. */
            while (!string_special[c] && i + 1 < len)
                c = (unsigned char)s[++i];
            if (c < 0x20)
                return i;
            if (c >= 0x80) {
                n = jsonx_utf8_char(s + i, len - i);
                if (n == 0)
                    return i;
                i += n - 1;
            } else if (c == '"') {
                in_string = 0;
            } else if (c == '\\' && i + 1 < len && s[i + 1] == 'u') {
                if (hex4(s, len, i + 2, &u) < 0)
                    return i;
                if (u >= 0xdc00 && u <= 0xdfff)
                    return i;
                if (u >= 0xd800 && u <= 0xdbff) {
                    if (i + 12 > len || s[i + 6] != '\\' || s[i + 7] != 'u' || hex4(s, len, i + 8, &low) < 0 ||
                        low < 0xdc00 || low > 0xdfff)
                        return i;
                    i += 6;
                }
                i += 5;
            } else if (c == '\\') {
                i++;
            }
            continue;
        }
        *cost += structure_cost[c];
        if (c == '"')
            in_string = 1;
        else if (c == '.' && (i + 1 >= len || s[i + 1] < '0' || s[i + 1] > '9'))
            return i;
        else if (!strchr(" \t\r\n{}[]:,0123456789+-.eEtrufalsn", c) || c == '\0')
            return i;
    }
    return len;
}

static struct json_object *parse(struct json_tokener *tok, const char *text, size_t len)
{
    struct json_object *o;
    size_t end;

    if (len > 0x7ffffff0u)
        return NULL;
    json_tokener_reset(tok);
    o = json_tokener_parse_ex(tok, text, (int)len);
    if (!o && json_tokener_get_error(tok) == json_tokener_continue) {
        /* A bare number at the very end needs the terminator to be complete. */
        o = json_tokener_parse_ex(tok, "", 1);
        if (!o)
            return NULL;
        return o;
    }
    if (!o)
        return NULL;
    end = json_tokener_get_parse_end(tok);
    if (end < len && !only_space(text + end, len - end)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

struct json_object *jsonx_parse_with(struct json_tokener *tok, const char *text, size_t len)
{
    if (len > JSONX_COSTLY && jsonx_cost(text, len) > jsonx_budget(len))
        return NULL;
    return parse(tok, text, len);
}

struct json_object *jsonx_parse_counted(const char *text, size_t len, size_t budget, size_t *used,
                                        struct apierr *err)
{
    struct json_tokener *tok = jsonx_tokener_new();
    struct json_object *o = NULL;
    enum json_tokener_error jerr;
    size_t bad, cost = len;

    if (!tok) {
        apierr_set(err, APIERR_API, 500, "out of memory");
        return NULL;
    }
    if (len == 0) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body is empty; expected a JSON object");
        goto out;
    }
    if (memchr(text, '\0', len)) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body is not valid JSON: it contains a NUL byte");
        goto out;
    }
    bad = first_non_json(text, len, &cost);
    if (bad < len) {
        apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body is not valid JSON or not valid UTF-8: unexpected byte at offset %zu",
                   bad);
        goto out;
    }
    if (*used > budget || cost > budget - *used) {
        if (*used == 0)
            apierr_set(err, APIERR_TOO_LARGE, 413, "request body holds too many JSON values for its size: parsed, "
                       "its %zu bytes would take about %zu MiB, more than the %zu MiB a body of this size may use "
                       "(%d MiB and %d bytes for each byte)", len, cost >> 20, budget >> 20,
                       JSONX_BUDGET_BASE >> 20, JSONX_BUDGET_PER_BYTE);
        else
            apierr_set(err, APIERR_TOO_LARGE, 413, "request body holds too many JSON values for its size: parsed "
                       "with the tool calls' arguments in it, it would take more than the %zu MiB a body of this "
                       "size may use (%d MiB and %d bytes for each byte)", budget >> 20, JSONX_BUDGET_BASE >> 20,
                       JSONX_BUDGET_PER_BYTE);
        goto out;
    }
    *used += cost;
    o = parse(tok, text, len);
    if (!o) {
        jerr = json_tokener_get_error(tok);
        if (jerr == json_tokener_success || jerr == json_tokener_continue)
            apierr_set(err, APIERR_INVALID_REQUEST, 400,
                       "request body is not valid JSON: %s at byte %zu",
                       jerr == json_tokener_continue ? "unexpected end of data" : "unexpected data after the value",
                       json_tokener_get_parse_end(tok));
        else
            apierr_set(err, APIERR_INVALID_REQUEST, 400, "request body is not valid JSON: %s at byte %zu",
                       json_tokener_error_desc(jerr), json_tokener_get_parse_end(tok));
    }
out:
    json_tokener_free(tok);
    return o;
}

struct json_object *jsonx_parse(const char *text, size_t len, struct apierr *err)
{
    size_t used = 0;

    return jsonx_parse_counted(text, len, jsonx_budget(len), &used, err);
}

/* Held values are at most JSONX_MAX_DEPTH deep (they were parsed, or built from parsed ones). */
size_t jsonx_held(struct json_object *o)
{
    size_t cost = structure_cost[','], n;

    switch (json_object_get_type(o)) {
    case json_type_string:
        return cost + (size_t)json_object_get_string_len(o);
    case json_type_array:
        n = json_object_array_length(o);
        cost += structure_cost['['];
        for (size_t i = 0; i < n; i++)
            cost += jsonx_held(json_object_array_get_idx(o, i));
        return cost;
    case json_type_object:
        cost += structure_cost['{'];
        json_object_object_foreach(o, key, val)
            cost += structure_cost[':'] + strlen(key) + jsonx_held(val);
        return cost;
    default:
        return cost + 8;
    }
}

const char *jsonx_string_at(struct json_object *obj, const char *key)
{
    struct json_object *v;

    return json_object_object_get_ex(obj, key, &v) && json_object_is_type(v, json_type_string)
           ? json_object_get_string(v) : NULL;
}

const char *jsonx_type_name(enum json_type t)
{
    switch (t) {
    case json_type_null: return "null";
    case json_type_boolean: return "boolean";
    case json_type_double:
    case json_type_int: return "number";
    case json_type_object: return "object";
    case json_type_array: return "array";
    case json_type_string: return "string";
    }
    return "value";
}

/* buf may also be path: the result is built aside first. */
const char *jsonx_path(char *buf, size_t size, const char *path, const char *key)
{
    char tmp[512];

    if (path && *path)
        snprintf(tmp, sizeof tmp, "%s.%s", path, key);
    else
        snprintf(tmp, sizeof tmp, "%s", key);
    snprintf(buf, size, "%s", tmp);
    return buf;
}

const char *jsonx_path_idx(char *buf, size_t size, const char *path, size_t idx)
{
    char tmp[512];

    snprintf(tmp, sizeof tmp, "%s.%zu", path, idx);
    snprintf(buf, size, "%s", tmp);
    return buf;
}

static int type_matches(struct json_object *v, enum json_type want)
{
    enum json_type t = json_object_get_type(v);

    if (want == json_type_double)
        return t == json_type_double || t == json_type_int;
    return t == want;
}

int jsonx_opt(struct json_object *obj, const char *key, enum json_type type, const char *path,
              struct json_object **out, struct apierr *err)
{
    struct json_object *v = NULL;
    char name[256];

    *out = NULL;
    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return 0;
    if (!type_matches(v, type)) {
        apierr_field(err, jsonx_path(name, sizeof name, path, key), "expected %s, got %s",
                     type == json_type_double ? "a number" : jsonx_type_name(type),
                     jsonx_type_name(json_object_get_type(v)));
        return -1;
    }
    *out = v;
    return 0;
}

int jsonx_req(struct json_object *obj, const char *key, enum json_type type, const char *path,
              struct json_object **out, struct apierr *err)
{
    char name[256];

    if (jsonx_opt(obj, key, type, path, out, err) < 0)
        return -1;
    if (!*out) {
        apierr_field(err, jsonx_path(name, sizeof name, path, key), "Field required");
        return -1;
    }
    return 0;
}

int jsonx_opt_string(struct json_object *obj, const char *key, const char *path, const char **out,
                     struct apierr *err)
{
    struct json_object *v;

    if (jsonx_opt(obj, key, json_type_string, path, &v, err) < 0)
        return -1;
    *out = v ? json_object_get_string(v) : NULL;
    return 0;
}

int jsonx_opt_number(struct json_object *obj, const char *key, const char *path, struct json_object **out,
                     struct apierr *err)
{
    char name[256];
    double d;

    if (jsonx_opt(obj, key, json_type_double, path, out, err) < 0)
        return -1;
    if (*out && json_object_is_type(*out, json_type_double)) {
        d = json_object_get_double(*out);
        if (!isfinite(d)) {
            apierr_field(err, jsonx_path(name, sizeof name, path, key), "expected a finite number");
            return -1;
        }
    }
    return 0;
}

int jsonx_opt_int(struct json_object *obj, const char *key, const char *path, long long *out, int *present,
                  struct apierr *err)
{
    struct json_object *v;
    char name[256];
    double d;

    if (present)
        *present = 0;
    if (jsonx_opt(obj, key, json_type_double, path, &v, err) < 0)
        return -1;
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        *out = (long long)json_object_get_int64(v);
    } else {
        d = json_object_get_double(v);
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e15) {
            apierr_field(err, jsonx_path(name, sizeof name, path, key), "expected an integer");
            return -1;
        }
        *out = (long long)d;
    }
    if (present)
        *present = 1;
    return 0;
}

int jsonx_opt_bool(struct json_object *obj, const char *key, const char *path, int *out, struct apierr *err)
{
    struct json_object *v;

    if (jsonx_opt(obj, key, json_type_boolean, path, &v, err) < 0)
        return -1;
    if (v)
        *out = json_object_get_boolean(v) ? 1 : 0;
    return 0;
}

const char *jsonx_text(struct json_object *obj, size_t *len)
{
    return json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
}

struct json_object *jsonx_string(const char *s, size_t len)
{
    return json_object_new_string_len(s, (int)len);
}

size_t jsonx_string_len(const char *s, size_t n)
{
    static const unsigned char extra[256] = {
        [0 ... 7] = 5, ['\b'] = 1, ['\t'] = 1, ['\n'] = 1, [11] = 5, ['\f'] = 1, ['\r'] = 1, [14 ... 0x1f] = 5,
        ['"'] = 1, ['\\'] = 1,
    };
    size_t len = n + 2;

    for (size_t i = 0; i < n; i++)
        len += extra[(unsigned char)s[i]];
    return len;
}

/* How jsonx_put_string treats each byte: 0 goes out as it is, 1 is escaped, 2 starts a character of
 * several bytes, which goes out as it is if it is well formed and as U+FFFD if not. */
static const unsigned char put_class[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x80 ... 0xff] = 2,
};

void jsonx_put_string(struct buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;

    buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *rep = NULL;
        char u[6];
        size_t k;

        if (!put_class[c])
            continue;
        if (put_class[c] == 2) {
            k = jsonx_utf8_char(s + i, n - i);
            if (k) {
                i += k - 1;
                continue;
            }
            buf_append(b, s + start, i - start);
            buf_append(b, "\xef\xbf\xbd", 3);
            start = i + 1;
            continue;
        }
        switch (c) {
        case '"': rep = "\\\""; break;
        case '\\': rep = "\\\\"; break;
        case '\n': rep = "\\n"; break;
        case '\r': rep = "\\r"; break;
        case '\t': rep = "\\t"; break;
        case '\b': rep = "\\b"; break;
        case '\f': rep = "\\f"; break;
        default:
            u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0'; u[4] = hex[c >> 4]; u[5] = hex[c & 15];
            break;
        }
        buf_append(b, s + start, i - start);
        if (rep)
            buf_puts(b, rep);
        else
            buf_append(b, u, 6);
        start = i + 1;
    }
    buf_append(b, s + start, n - start);
    buf_putc(b, '"');
}

/* json-c's own serializer is the slow part of a 76 KB request: this writes runs of plain bytes at once. */
void jsonx_write(struct buf *b, struct json_object *o)
{
    size_t n, i = 0;

    switch (json_object_get_type(o)) {
    case json_type_null:
        buf_append(b, "null", 4);
        return;
    case json_type_string:
        jsonx_put_string(b, json_object_get_string(o), (size_t)json_object_get_string_len(o));
        return;
    case json_type_array:
        n = json_object_array_length(o);
        buf_putc(b, '[');
        for (i = 0; i < n; i++) {
            if (i)
                buf_putc(b, ',');
            jsonx_write(b, json_object_array_get_idx(o, i));
        }
        buf_putc(b, ']');
        return;
    case json_type_object:
        buf_putc(b, '{');
        json_object_object_foreach(o, key, val) {
            if (i++)
                buf_putc(b, ',');
            jsonx_put_string(b, key, strlen(key));
            buf_putc(b, ':');
            jsonx_write(b, val);
        }
        buf_putc(b, '}');
        return;
    case json_type_boolean:
    case json_type_int:
    case json_type_double:
        /* Numbers keep the text they were parsed from. */
        buf_puts(b, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        return;
    }
}

void jsonx_put_key(struct buf *out, const char *key)
{
    buf_putc(out, ',');
    jsonx_put_string(out, key, strlen(key));
    buf_putc(out, ':');
}
