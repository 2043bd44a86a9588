/* jsonx.h -- strict JSON parsing with limits, typed field access that names the field on error, plain output. */
#ifndef OF_JSONX_H
#define OF_JSONX_H

#include <json-c/json.h>
#include <stddef.h>

#include "apierr.h"

#define JSONX_MAX_DEPTH 64
/* A document of len bytes may take JSONX_BUDGET_BASE + JSONX_BUDGET_PER_BYTE × len bytes once parsed; one
 * whose shape would cost more (a great many tiny values) is refused before it is built. */
#define JSONX_BUDGET_BASE (24 << 20)
#define JSONX_BUDGET_PER_BYTE 4
/* Documents shorter than this cannot cost much, whatever their shape: Ollama's lines are not measured. */
#define JSONX_COSTLY 65536

/* Parses one complete JSON text, strictly (no comments, no trailing garbage) and with valid UTF-8 only.
 * Returns a new reference the caller puts, or NULL with a 400 set in err. */
struct json_object *jsonx_parse(const char *text, size_t len, struct apierr *err);
/* The same, for one of several documents a request holds (its body, then each tool call's arguments
 * string in it): what this one would cost once parsed is added to *used, and a document that would take
 * *used past budget is refused with a 413 before it is built. Every parse of one request shares one
 * budget, so many small documents cannot each spend a whole allowance. */
struct json_object *jsonx_parse_counted(const char *text, size_t len, size_t budget, size_t *used,
                                        struct apierr *err);

/* A reusable strict parser, for many small documents (Ollama's NDJSON lines); a long one whose shape is
 * over its budget gives NULL like any other that does not parse. */
struct json_tokener *jsonx_tokener_new(void);
struct json_object *jsonx_parse_with(struct json_tokener *tok, const char *text, size_t len);
/* What a document would take once parsed, and what one of its size may take. */
size_t jsonx_cost(const char *text, size_t len);
size_t jsonx_budget(size_t len);
/* What o, already built, holds in memory by the same measure as jsonx_cost: for a reply that keeps
 * parsed values (tool calls' arguments) within its cap. */
size_t jsonx_held(struct json_object *o);

/* Field access. All return borrowed references. The "opt" variants accept an absent key or JSON null
 * (returning NULL, or leaving *out untouched); every variant rejects a wrong type with a 400 naming
 * "path.key". Return 0 on success, -1 with err set. */
int jsonx_opt(struct json_object *obj, const char *key, enum json_type type, const char *path,
              struct json_object **out, struct apierr *err);
int jsonx_req(struct json_object *obj, const char *key, enum json_type type, const char *path,
              struct json_object **out, struct apierr *err);
int jsonx_opt_string(struct json_object *obj, const char *key, const char *path, const char **out,
                     struct apierr *err);
int jsonx_opt_number(struct json_object *obj, const char *key, const char *path, struct json_object **out,
                     struct apierr *err);
int jsonx_opt_int(struct json_object *obj, const char *key, const char *path, long long *out, int *present,
                  struct apierr *err);
int jsonx_opt_bool(struct json_object *obj, const char *key, const char *path, int *out, struct apierr *err);

/* "path.key" or "path.N" into buf. */
const char *jsonx_path(char *buf, size_t size, const char *path, const char *key);
const char *jsonx_path_idx(char *buf, size_t size, const char *path, size_t idx);

const char *jsonx_type_name(enum json_type t);

/* obj[key] when it is a string, else NULL (obj may be anything): for reading what is only ever optional.
 * Borrowed. */
const char *jsonx_string_at(struct json_object *obj, const char *key);

/* Compact output, "/" unescaped. The string belongs to obj. */
const char *jsonx_text(struct json_object *obj, size_t *len);

/* A string object that copies len bytes (strings may hold NUL). */
struct json_object *jsonx_string(const char *s, size_t len);

/* The length of the well-formed UTF-8 character at s (RFC 3629), or 0 when the bytes there are not one. */
size_t jsonx_utf8_char(const char *s, size_t len);
/* The longest prefix of s[0..len) of at most max bytes that does not end inside a character. */
size_t jsonx_utf8_prefix(const char *s, size_t len, size_t max);

#include "buf.h"
/* Appends s as a quoted JSON string, for frames written by hand on the per-event path. Bytes that are not
 * UTF-8 (from an Ollama that sent them) become U+FFFD, so every output is valid JSON text. */
void jsonx_put_string(struct buf *b, const char *s, size_t n);
/* The length jsonx_put_string would give s (if it is valid UTF-8), without writing it. */
size_t jsonx_string_len(const char *s, size_t n);
/* Appends o as compact JSON, as jsonx_text would give it (but for invalid UTF-8), several times faster. */
void jsonx_write(struct buf *b, struct json_object *o);
/* ,"key": -- a member after the first, its value to follow. */
void jsonx_put_key(struct buf *out, const char *key);

#endif
