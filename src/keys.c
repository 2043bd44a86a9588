/* keys.c -- the pool's API keys: ADAPTER_API_KEY, and API_KEYS_FILE's key per person with the models it
 * may use and the streams it may hold at once. Only hashes are kept; a presented key is hashed and
 * compared with every one. */
#include "keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "buf.h"
#include "config.h"

#define KEY_PREFIX "ofk_"
#define KEY_CHARS 40

static struct keys active;

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One line's fields, each ended by a NUL in place of the space after it. At most max; *n says how many
 * there were, even past max. */
static void split_fields(char *line, char **fields, size_t max, size_t *n)
{
    char *p = line;

    *n = 0;
    for (;;) {
        p += strspn(p, " \t");
        if (!*p)
            return;
        if (*n < max)
            fields[*n] = p;
        (*n)++;
        p += strcspn(p, " \t");
        if (*p)
            *p++ = '\0';
    }
}

static int parse_name(const char *s, struct key_entry *e, char *why, size_t size)
{
    size_t n = strlen(s);

    /* A name that is a key pasted in the wrong place is refused without being repeated. */
    if (strncmp(s, KEY_PREFIX, strlen(KEY_PREFIX)) == 0) {
        snprintf(why, size, "the name looks like a key; the file holds only a key's hash (--new-key prints the line)");
        return -1;
    }
    if (n == 0 || n > KEYS_NAME_MAX || strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-") != n) {
        snprintf(why, size, "the name must be 1 to %d letters, digits, '.', '_', '@' or '-'", KEYS_NAME_MAX);
        return -1;
    }
    memcpy(e->name, s, n + 1);
    return 0;
}

int keys_check_name(const char *name, char *why, size_t size)
{
    struct key_entry e;

    return parse_name(name, &e, why, size);
}

static int parse_hash(const char *s, struct key_entry *e, char *why, size_t size)
{
    int ok = s && strncmp(s, "sha256:", 7) == 0 && strlen(s + 7) == 2 * SHA256_BYTES;

    for (size_t i = 0; ok && i < SHA256_BYTES; i++) {
        int hi = hex_value(s[7 + 2 * i]), lo = hex_value(s[8 + 2 * i]);

        ok = hi >= 0 && lo >= 0;
        e->hash[i] = (unsigned char)(hi << 4 | lo);
    }
    if (!ok)
        snprintf(why, size, "after the name comes sha256: and the key's SHA-256 in 64 hex digits");
    return ok ? 0 : -1;
}

static int parse_models(char *list, struct key_entry *e, char *why, size_t size)
{
    char *save = NULL, *glob;

    if (e->models) {
        snprintf(why, size, "models= is given twice");
        return -1;
    }
    /* An empty glob ("models=a,,b", "models=") is a slip, not "no model". */
    if (!*list || list[0] == ',' || list[strlen(list) - 1] == ',' || strstr(list, ",,")) {
        snprintf(why, size, "models= takes globs separated by commas, none empty");
        return -1;
    }
    for (glob = strtok_r(list, ",", &save); glob; glob = strtok_r(NULL, ",", &save)) {
        e->models = xrealloc(e->models, (e->n_models + 1) * sizeof *e->models);
        e->models[e->n_models++] = xstrdup(glob);
    }
    return 0;
}

static int parse_max_streams(const char *v, struct key_entry *e, char *why, size_t size)
{
    char *end;
    long n;

    if (e->max_streams) {
        snprintf(why, size, "max_streams= is given twice");
        return -1;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > KEYS_MAX_STREAMS) {
        snprintf(why, size, "max_streams= takes a number from 1 to %d", KEYS_MAX_STREAMS);
        return -1;
    }
    e->max_streams = n;
    return 0;
}

/* An option after the hash. Its text is not quoted back: it might be a key pasted in the wrong place. */
static int parse_option(char *field, size_t index, struct key_entry *e, char *why, size_t size)
{
    if (strncmp(field, "models=", 7) == 0)
        return parse_models(field + 7, e, why, size);
    if (strncmp(field, "max_streams=", 12) == 0)
        return parse_max_streams(field + 12, e, why, size);
    snprintf(why, size, "field %zu is neither models=GLOB,GLOB nor max_streams=N", index + 1);
    return -1;
}

static void entry_free(struct key_entry *e)
{
    for (size_t i = 0; i < e->n_models; i++)
        free(e->models[i]);
    free(e->models);
    memset(e, 0, sizeof *e);
}

/* A line already in k with this name or this hash; why says which. */
static int clash(const struct keys *k, const struct key_entry *e, const int *lines, char *why, size_t size)
{
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->entries[i].name, e->name) == 0) {
            snprintf(why, size, "the name is on line %d too", lines[i]);
            return -1;
        }
        if (memcmp(k->entries[i].hash, e->hash, SHA256_BYTES) == 0) {
            snprintf(why, size, "the same key as line %d", lines[i]);
            return -1;
        }
    }
    return 0;
}

/* One line without its comment, into e. Returns 1 for an entry, 0 for a blank line, -1 with why. */
static int parse_line(char *line, struct key_entry *e, char *why, size_t size)
{
    char *fields[8];
    size_t n;

    memset(e, 0, sizeof *e);
    split_fields(line, fields, sizeof fields / sizeof *fields, &n);
    if (n == 0)
        return 0;
    if (n > sizeof fields / sizeof *fields) {
        snprintf(why, size, "too many fields: NAME sha256:HEX [models=GLOB,GLOB] [max_streams=N]");
        return -1;
    }
    if (parse_name(fields[0], e, why, size) < 0 || parse_hash(n > 1 ? fields[1] : NULL, e, why, size) < 0)
        return -1;
    for (size_t i = 2; i < n; i++)
        if (parse_option(fields[i], i, e, why, size) < 0)
            return -1;
    return 1;
}

int keys_parse(const char *text, size_t len, struct keys *k, char *err, size_t errlen)
{
    char *copy = xmalloc(len + 1), *line, *next, why[256];
    int *lines = NULL, number = 0, rc = 0, got;
    struct key_entry e;

    memset(k, 0, sizeof *k);
    memset(&e, 0, sizeof e);
    memcpy(copy, text, len);
    copy[len] = '\0';
    for (line = copy; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        number++;
        if (strlen(line) != (size_t)((next ? next - 1 : copy + len) - line)) {
            snprintf(why, sizeof why, "a NUL byte");
            goto bad;
        }
        line[strcspn(line, "#\r")] = '\0';
        got = parse_line(line, &e, why, sizeof why);
        if (got > 0 && clash(k, &e, lines, why, sizeof why) < 0)
            got = -1;
        if (got < 0)
            goto bad;
        if (got == 0)
            continue;
        k->entries = xrealloc(k->entries, (k->n + 1) * sizeof *k->entries);
        lines = xrealloc(lines, (k->n + 1) * sizeof *lines);
        lines[k->n] = number;
        k->entries[k->n++] = e;   /* e's models now belong to k */
        memset(&e, 0, sizeof e);
    }
    goto out;
bad:
    entry_free(&e);
    keys_free(k);
    snprintf(err, errlen, "line %d: %s", number, why);
    rc = -1;
out:
    free(lines);
    free(copy);
    return rc;
}

void keys_free(struct keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        entry_free(&k->entries[i]);
    free(k->entries);
    memset(k, 0, sizeof *k);
}

/* The whole file, at most KEYS_FILE_MAX bytes, into text. */
static int read_file(const char *file, struct buf *text, char *err, size_t errlen)
{
    FILE *f = fopen(file, "re");
    char chunk[4096];
    size_t n;
    int rc = 0;

    if (!f) {
        snprintf(err, errlen, "API_KEYS_FILE=%s: %s", file, strerror(errno));
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && text->len + n <= KEYS_FILE_MAX)
        buf_append(text, chunk, n);
    if (ferror(f) || n > 0) {
        snprintf(err, errlen, "API_KEYS_FILE=%s: %s", file, n > 0 ? "larger than 1 MiB" : strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* ADAPTER_API_KEY as one more key, named "default", with every model. */
static int add_default(struct keys *k, const char *api_key, char *err, size_t errlen)
{
    struct key_entry e;

    memset(&e, 0, sizeof e);
    strcpy(e.name, KEYS_DEFAULT_NAME);
    sha256(api_key, strlen(api_key), e.hash);
    for (size_t i = 0; i < k->n; i++) {
        if (strcmp(k->entries[i].name, e.name) == 0 || memcmp(k->entries[i].hash, e.hash, SHA256_BYTES) == 0) {
            snprintf(err, errlen, "API_KEYS_FILE: the key named %s is ADAPTER_API_KEY's: %s", k->entries[i].name,
                     "name it otherwise, or give it another key");
            return -1;
        }
    }
    k->entries = xrealloc(k->entries, (k->n + 1) * sizeof *k->entries);
    k->entries[k->n++] = e;
    return 0;
}

int keys_load(const char *file, const char *api_key, struct keys *k, char *err, size_t errlen)
{
    struct buf text;
    char why[300];
    int rc = 0;

    memset(k, 0, sizeof *k);
    buf_init(&text);
    if (file && read_file(file, &text, err, errlen) < 0) {
        rc = -1;
        goto out;
    }
    if (file && keys_parse(text.data ? text.data : "", text.len, k, why, sizeof why) < 0) {
        snprintf(err, errlen, "API_KEYS_FILE=%s: %s", file, why);
        rc = -1;
        goto out;
    }
    if (api_key && add_default(k, api_key, err, errlen) < 0) {
        keys_free(k);
        rc = -1;
        goto out;
    }
    k->required = file || api_key;
out:
    buf_free(&text);
    return rc;
}

const struct key_entry *keys_find(const struct keys *k, const char *presented)
{
    unsigned char h[SHA256_BYTES];
    const struct key_entry *found = NULL;

    sha256(presented, strlen(presented), h);
    for (size_t i = 0; i < k->n; i++) {
        unsigned char diff = 0;

        for (size_t b = 0; b < SHA256_BYTES; b++)
            diff |= (unsigned char)(h[b] ^ k->entries[i].hash[b]);
        if (diff == 0 && !found)
            found = &k->entries[i];
    }
    return found;
}

int keys_allow_model(const struct key_entry *e, const char *model)
{
    if (!e || !e->models)
        return 1;
    for (size_t i = 0; i < e->n_models; i++)
        if (config_same_model(e->models[i], model))
            return 1;
    return 0;
}

int keys_generate(char *out, size_t size)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    unsigned char raw[64];
    size_t n = strlen(KEY_PREFIX), k = sizeof raw;

    if (size < KEYS_NEW_SIZE)
        return -1;
    memcpy(out, KEY_PREFIX, n);
    while (n < strlen(KEY_PREFIX) + KEY_CHARS) {
        if (k == sizeof raw) {
            if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
                return -1;
            k = 0;
        }
        /* 248 is 4 times 62: bytes past it are dropped, so every character is as likely. */
        if (raw[k] < 248)
            out[n++] = alphabet[raw[k] % 62];
        k++;
    }
    out[n] = '\0';
    return 0;
}

void keys_hash_hex(const char *key, char out[2 * SHA256_BYTES + 1])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char h[SHA256_BYTES];

    sha256(key, strlen(key), h);
    for (size_t i = 0; i < SHA256_BYTES; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[2 * SHA256_BYTES] = '\0';
}

const struct keys *keys_active(void)
{
    return &active;
}

int keys_reload(const char *file, const char *api_key, char *err, size_t errlen)
{
    struct keys fresh;

    if (keys_load(file, api_key, &fresh, err, errlen) < 0)
        return -1;
    keys_free(&active);
    active = fresh;
    return 0;
}

void keys_clear(void)
{
    keys_free(&active);
}
