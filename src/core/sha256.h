/* SHA-256 (FIPS 180-4), streaming: used to verify downloaded model files against the hub's
 * LFS hashes without holding a file in memory. */
#ifndef LB_SHA256_H
#define LB_SHA256_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t total;       /* bytes fed so far */
    uint8_t block[64];    /* pending bytes of an incomplete block */
    size_t pending;
} lb_sha256;

void lb_sha256_init(lb_sha256 *s);
void lb_sha256_update(lb_sha256 *s, const void *data, size_t n);
/* Pads, writes the 32-byte digest, and leaves s re-initialised for another message. */
void lb_sha256_final(lb_sha256 *s, uint8_t digest[32]);
/* Lower-case hex of a digest, NUL-terminated (65 bytes). */
void lb_sha256_hex(const uint8_t digest[32], char hex[65]);

/* Feeds the first `limit` bytes of path into s (all of it when limit is UINT64_MAX); *fed
 * receives the count. Fails when the file cannot be read or is shorter than a finite limit. */
int lb_sha256_file_into(lb_sha256 *s, const char *path, uint64_t limit, uint64_t *fed,
                        lb_error *err);
/* Hex SHA-256 of a whole file, read in chunks. */
int lb_sha256_file(const char *path, char hex[65], uint64_t *size, lb_error *err);

#endif
