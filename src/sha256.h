/* sha256.h -- SHA-256 (FIPS 180-4), for API keys: the pool keeps only their hashes. */
#ifndef OF_SHA256_H
#define OF_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_BYTES 32

struct sha256 {
    uint32_t h[8];
    uint64_t length;              /* bytes hashed so far */
    unsigned char block[64];
    size_t filled;                /* bytes of block waiting for the rest of it */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, unsigned char out[SHA256_BYTES]);
/* The digest of data, in one call. */
void sha256(const void *data, size_t len, unsigned char out[SHA256_BYTES]);

#endif
