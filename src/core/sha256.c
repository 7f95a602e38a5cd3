/* SHA-256 as FIPS 180-4 section 6.2 describes it: 64-byte blocks, a 64-word message schedule,
 * eight working variables, big-endian words, and padding with a 1 bit, zeros and the 64-bit
 * message length in bits. */
#include "core/sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* First 32 bits of the fractional parts of the cube roots of the first 64 primes (4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress(uint32_t H[8], const uint8_t *p)
{
    uint32_t W[64];
    for (int t = 0; t < 16; t++)
        W[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
               (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(W[t - 15], 7) ^ rotr(W[t - 15], 18) ^ (W[t - 15] >> 3);
        uint32_t s1 = rotr(W[t - 2], 17) ^ rotr(W[t - 2], 19) ^ (W[t - 2] >> 10);
        W[t] = W[t - 16] + s0 + W[t - 7] + s1;
    }
    uint32_t a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    for (int t = 0; t < 64; t++) {
        uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t T1 = h + S1 + ch + K[t] + W[t];
        uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t T2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + T1;
        d = c;
        c = b;
        b = a;
        a = T1 + T2;
    }
    H[0] += a;
    H[1] += b;
    H[2] += c;
    H[3] += d;
    H[4] += e;
    H[5] += f;
    H[6] += g;
    H[7] += h;
}

void lb_sha256_init(lb_sha256 *s)
{
    /* First 32 bits of the fractional parts of the square roots of the first 8 primes (5.3.3). */
    static const uint32_t H0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->state, H0, sizeof H0);
    s->total = 0;
    s->pending = 0;
}

void lb_sha256_update(lb_sha256 *s, const void *data, size_t n)
{
    const uint8_t *p = data;
    s->total += n;
    if (s->pending) {
        size_t take = 64 - s->pending < n ? 64 - s->pending : n;
        memcpy(s->block + s->pending, p, take);
        s->pending += take;
        p += take;
        n -= take;
        if (s->pending < 64)
            return;
        compress(s->state, s->block);
        s->pending = 0;
    }
    /* Whole blocks straight from the caller's buffer, no copy. */
    for (; n >= 64; p += 64, n -= 64)
        compress(s->state, p);
    memcpy(s->block, p, n);
    s->pending = n;
}

void lb_sha256_final(lb_sha256 *s, uint8_t digest[32])
{
    uint64_t bits = s->total * 8;
    s->block[s->pending++] = 0x80;
    if (s->pending > 56) {
        memset(s->block + s->pending, 0, 64 - s->pending);
        compress(s->state, s->block);
        s->pending = 0;
    }
    memset(s->block + s->pending, 0, 56 - s->pending);
    for (int i = 0; i < 8; i++)
        s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
    compress(s->state, s->block);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(s->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(s->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(s->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)s->state[i];
    }
    lb_sha256_init(s);
}

void lb_sha256_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

int lb_sha256_file_into(lb_sha256 *s, const char *path, uint64_t limit, uint64_t *fed,
                        lb_error *err)
{
    *fed = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return lb_fail(err, "%s: cannot open: %s", path, strerror(errno));
    static const size_t chunk = 1 << 20;
    uint8_t *buf = lb_malloc(chunk);
    uint64_t done = 0;
    while (done < limit) {
        size_t want = limit - done < chunk ? (size_t)(limit - done) : chunk;
        size_t got = fread(buf, 1, want, fp);
        lb_sha256_update(s, buf, got);
        done += got;
        if (got < want)
            break;
    }
    int bad = ferror(fp);
    free(buf);
    fclose(fp);
    *fed = done;
    if (bad)
        return lb_fail(err, "%s: read failed after %llu bytes", path, (unsigned long long)done);
    if (limit != UINT64_MAX && done < limit)
        return lb_fail(err, "%s: file has %llu bytes, expected at least %llu", path,
                       (unsigned long long)done, (unsigned long long)limit);
    return 0;
}

int lb_sha256_file(const char *path, char hex[65], uint64_t *size, lb_error *err)
{
    lb_sha256 s;
    lb_sha256_init(&s);
    uint64_t n;
    if (lb_sha256_file_into(&s, path, UINT64_MAX, &n, err))
        return -1;
    uint8_t d[32];
    lb_sha256_final(&s, d);
    lb_sha256_hex(d, hex);
    if (size)
        *size = n;
    return 0;
}
