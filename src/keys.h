/* keys.h -- the pool's API keys: ADAPTER_API_KEY, and API_KEYS_FILE's key per person with the models it
 * may use and the streams it may hold at once. Only hashes are kept; a presented key is hashed and
 * compared with every one. */
#ifndef OF_KEYS_H
#define OF_KEYS_H

#include <stddef.h>

#include "sha256.h"

#define KEYS_NAME_MAX 63          /* a key's name: letters, digits, '.', '_', '@' and '-' */
#define KEYS_MAX_STREAMS 1024
#define KEYS_FILE_MAX (1u << 20)
#define KEYS_DEFAULT_NAME "default"   /* ADAPTER_API_KEY's name in the log and /metrics */

struct key_entry {
    char name[KEYS_NAME_MAX + 1];
    unsigned char hash[SHA256_BYTES];
    char **models;                /* globs over the Ollama model (config_same_model); NULL: every model */
    size_t n_models;
    long max_streams;             /* requests it may have in flight on this pool host; 0: no limit */
};

struct keys {
    struct key_entry *entries;    /* owned */
    size_t n;
    int required;                 /* a key is needed: ADAPTER_API_KEY or API_KEYS_FILE is set (even empty) */
};

/* API_KEYS_FILE's text into k (emptied first): one "NAME sha256:HEX [models=GLOB,...] [max_streams=N]"
 * a line, '#' to the line's end a comment. Returns 0, or -1 with "line N: what is wrong" in err, which
 * never quotes a field that could be a key or its hash. */
int keys_parse(const char *text, size_t len, struct keys *k, char *err, size_t errlen);
/* The keys of API_KEYS_FILE (file, or NULL) and ADAPTER_API_KEY (api_key, or NULL) into k. Returns 0, or -1
 * with the file's name and the fault in err. */
int keys_load(const char *file, const char *api_key, struct keys *k, char *err, size_t errlen);
void keys_free(struct keys *k);

/* The entry whose hash is the presented key's, or NULL. Every entry is compared, each in constant time. */
const struct key_entry *keys_find(const struct keys *k, const char *presented);
/* Whether the key may use the Ollama model. */
int keys_allow_model(const struct key_entry *e, const char *model);

/* Whether name may name a key; -1 with the rule in why when not. */
int keys_check_name(const char *name, char *why, size_t size);
/* A fresh random key, "ofk_" and 40 letters and digits, into out (at least KEYS_NEW_SIZE). Returns 0, or
 * -1 when the system has no randomness to give. */
#define KEYS_NEW_SIZE 48
int keys_generate(char *out, size_t size);
/* The key's SHA-256 as 64 lowercase hex digits. */
void keys_hash_hex(const char *key, char out[2 * SHA256_BYTES + 1]);

/* The process's keys, as last loaded; workers get the master's at fork. */
const struct keys *keys_active(void);
/* Loads as keys_load and, on success only, makes them the active keys. */
int keys_reload(const char *file, const char *api_key, char *err, size_t errlen);
/* Frees the active keys (at exit). */
void keys_clear(void);

#endif
