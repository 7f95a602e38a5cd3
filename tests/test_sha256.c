/* SHA-256 against the NIST/FIPS 180-4 example vectors, against itself fed in pieces of every
 * size, and against coreutils' sha256sum on a large file hashed in streaming chunks. */
#include "check.h"
#include "core/sha256.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static void hex_of(const void *data, size_t n, char hex[65])
{
    lb_sha256 s;
    uint8_t d[32];
    lb_sha256_init(&s);
    lb_sha256_update(&s, data, n);
    lb_sha256_final(&s, d);
    lb_sha256_hex(d, hex);
}

static void test_vectors(void)
{
    static const struct {
        const char *msg, *hex;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char hex[65];
        hex_of(v[i].msg, strlen(v[i].msg), hex);
        CHECK(strcmp(hex, v[i].hex) == 0, "vector %zu ('%.20s...'): got %s, expected %s", i,
              v[i].msg, hex, v[i].hex);
    }

    /* One million 'a', fed 1000 at a time. */
    lb_sha256 s;
    lb_sha256_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    for (int i = 0; i < 1000; i++)
        lb_sha256_update(&s, a, sizeof a);
    uint8_t d[32];
    char hex[65];
    lb_sha256_final(&s, d);
    lb_sha256_hex(d, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0,
          "million a: got %s", hex);

    /* final re-initialises: the next message hashes as if fresh. */
    lb_sha256_update(&s, "abc", 3);
    lb_sha256_final(&s, d);
    lb_sha256_hex(d, hex);
    CHECK(strcmp(hex, v[1].hex) == 0, "hash after final: got %s", hex);
}

/* Messages of every length around the padding boundaries (55, 56, 63, 64 bytes...) split at
 * every point must hash the same as in one piece: exercises the pending-block paths. */
static void test_splits(void)
{
    uint8_t msg[200];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 37 + 11);
    int bad = 0;
    for (size_t len = 0; len <= sizeof msg; len++) {
        char whole[65];
        hex_of(msg, len, whole);
        for (size_t cut = 0; cut <= len; cut += len > 140 ? 7 : 1) {
            lb_sha256 s;
            uint8_t d[32];
            char hex[65];
            lb_sha256_init(&s);
            lb_sha256_update(&s, msg, cut);
            lb_sha256_update(&s, msg + cut, len - cut);
            lb_sha256_final(&s, d);
            lb_sha256_hex(d, hex);
            if (strcmp(hex, whole) != 0 && bad++ < 5)
                CHECK(0, "length %zu split at %zu: %s vs %s", len, cut, hex, whole);
        }
    }
    CHECK(bad == 0, "%d split mismatches", bad);
}

/* A 24 MiB file of pseudo-random bytes: the streaming file hash and a hash fed in odd-sized
 * pieces must both equal sha256sum's. */
static void test_large_file(void)
{
    const char *tmpdir = getenv("TMPDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/lowbit-sha256-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp %s", path);
    if (fd < 0)
        return;
    FILE *fp = fdopen(fd, "wb");
    const size_t total = 24u << 20, piece = 65537;
    uint8_t *buf = malloc(piece);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    lb_sha256 fed;
    lb_sha256_init(&fed);
    for (size_t done = 0; done < total;) {
        size_t n = total - done < piece ? total - done : piece;
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)(x >> 32);
        }
        fwrite(buf, 1, n, fp);
        lb_sha256_update(&fed, buf, n);
        done += n;
    }
    free(buf);
    CHECK(fclose(fp) == 0, "writing %s", path);

    char from_file[65], from_pieces[65], reference[65] = "";
    uint64_t size = 0;
    lb_error err;
    CHECK(lb_sha256_file(path, from_file, &size, &err) == 0, "%s", err.msg);
    CHECK(size == total, "file size %llu", (unsigned long long)size);
    uint8_t d[32];
    lb_sha256_final(&fed, d);
    lb_sha256_hex(d, from_pieces);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL, "popen sha256sum");
    if (p) {
        CHECK(fscanf(p, "%64s", reference) == 1, "reading sha256sum output");
        CHECK(pclose(p) == 0, "sha256sum failed");
    }
    CHECK(strlen(reference) == 64, "sha256sum printed '%s'", reference);
    CHECK(strcmp(from_file, reference) == 0, "file hash %s, sha256sum %s", from_file, reference);
    CHECK(strcmp(from_pieces, reference) == 0, "piecewise hash %s, sha256sum %s", from_pieces,
          reference);

    /* A prefix: the first 1,000,003 bytes match sha256sum of `head -c`. */
    lb_sha256 s;
    uint64_t n = 0;
    lb_sha256_init(&s);
    CHECK(lb_sha256_file_into(&s, path, 1000003, &n, &err) == 0 && n == 1000003, "prefix: %s",
          err.msg);
    lb_sha256_final(&s, d);
    char prefix[65], prefix_ref[65] = "";
    lb_sha256_hex(d, prefix);
    snprintf(cmd, sizeof cmd, "head -c 1000003 '%s' | sha256sum", path);
    p = popen(cmd, "r");
    if (p) {
        CHECK(fscanf(p, "%64s", prefix_ref) == 1, "reading head | sha256sum output");
        pclose(p);
    }
    CHECK(strcmp(prefix, prefix_ref) == 0, "prefix hash %s, reference %s", prefix, prefix_ref);

    /* Asking for more than the file holds, or a missing file, fails with the path named. */
    lb_sha256_init(&s);
    CHECK(lb_sha256_file_into(&s, path, (uint64_t)total + 1, &n, &err) == -1 &&
              strstr(err.msg, path) && strstr(err.msg, "expected at least"),
          "short file: %s", err.msg);
    unlink(path);
    CHECK(lb_sha256_file(path, from_file, NULL, &err) == -1 && strstr(err.msg, "cannot open"),
          "missing file: %s", err.msg);
}

int main(void)
{
    test_vectors();
    test_splits();
    test_large_file();
    return check_finish("test_sha256");
}
