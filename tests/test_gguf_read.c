/* GGUF reader against the real stories260K.gguf: header, metadata of each type, the
 * vocabulary arrays, the tensor table and tensor bytes, all checked against facts read from
 * the file by an independent Python parse (struct, by hand) and typed in here; every typed
 * getter's mismatch message; the gguf_arr_* accessors in and out of range; every prefix of
 * the file's header (and a spread of prefixes through its data) refused with one line that
 * names the file; and thousands of copies with random bytes changed in the header, each of
 * which either loads and generates or is refused with one line. */
#include "check.h"
#include "core/file.h"
#include "core/rng.h"
#include "io/gguf.h"
#include "model/generate.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Facts of stories260K.gguf (python3 struct parse of the file). */
#define FILE_SIZE 1185376
#define N_TENSORS 48
#define N_KV 19
#define DATA_OFFSET 14176   /* tensor infos end at 14152, aligned up to 32 */
#define VOCAB_END 10660     /* the three vocabulary arrays; the scalar keys follow */
#define KV_END 11347        /* end of the metadata, start of the tensor infos */
#define INFOS_END 14152

static uint32_t bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static bool str_is(gguf_str s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.s, want, s.len) == 0;
}

static void test_header_and_metadata(const gguf_file *f)
{
    CHECK(f->version == 3, "version %u", f->version);
    CHECK(f->n_tensors == N_TENSORS, "%" PRId64 " tensors", f->n_tensors);
    CHECK(f->n_kv == N_KV, "%" PRId64 " keys", f->n_kv);
    CHECK(f->alignment == 32, "alignment %u", f->alignment);
    CHECK(f->data_offset == DATA_OFFSET, "data at %" PRIu64, f->data_offset);

    lb_error err = {{0}};
    gguf_str s;
    CHECK(gguf_get_str(f, "general.architecture", &s, &err) == 0 && str_is(s, "llama"),
          "architecture: %s", err.msg);
    CHECK(gguf_get_str(f, "general.name", &s, &err) == 0 && str_is(s, "llama"), "name");
    CHECK(gguf_get_str(f, "tokenizer.ggml.model", &s, &err) == 0 && str_is(s, "llama"),
          "tokenizer model");

    struct {
        const char *key;
        int64_t value;
    } ints[] = {
        {"llama.embedding_length", 64}, {"llama.feed_forward_length", 172},
        {"llama.attention.head_count", 8}, {"llama.attention.head_count_kv", 4},
        {"llama.block_count", 5}, {"llama.context_length", 2048},
        {"llama.rope.dimension_count", 8}, {"tokenizer.ggml.unknown_token_id", 0},
        {"tokenizer.ggml.bos_token_id", 1}, {"tokenizer.ggml.eos_token_id", 2},
        {"tokenizer.ggml.padding_token_id", 4294967295LL},
        {"tokenizer.ggml.seperator_token_id", 4294967295LL},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v = -7;
        int rc = gguf_get_int(f, ints[i].key, &v, &err);
        CHECK(rc == 0 && v == ints[i].value, "%s = %" PRId64 " (want %" PRId64 "): %s",
              ints[i].key, v, ints[i].value, rc ? err.msg : "");
        const gguf_kv *kv = gguf_find(f, ints[i].key);
        CHECK(kv && kv->type == GGUF_UINT32, "%s is stored as uint32", ints[i].key);
    }
    double d;
    CHECK(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &d, &err) == 0 &&
              bits((float)d) == 0x3727c5acu, "rms epsilon %g", d);
    /* Integers read as numbers too. */
    CHECK(gguf_get_float(f, "llama.embedding_length", &d, &err) == 0 && d == 64.0, "dim as float");
    CHECK(gguf_find(f, "no.such.key") == NULL, "absent key found");
}

static void test_vocabulary(const gguf_file *f)
{
    const gguf_kv *tok = gguf_find(f, "tokenizer.ggml.tokens");
    CHECK(tok && tok->type == GGUF_ARRAY && tok->arr_type == GGUF_STRING && tok->arr_n == 512,
          "tokens: 512 strings");
    if (!tok || tok->arr_type != GGUF_STRING || tok->arr_n != 512)
        return;
    struct {
        int id;
        const char *text;
    } pieces[] = {{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}, {3, "<0x00>"}, {4, "<0x01>"},
                  {258, "<0xFF>"}, {259, "\xe2\x96\x81t"}, {260, "he"},
                  {265, "\xe2\x96\x81the"}, {300, "\xe2\x96\x81ha"}, {400, "\xe2\x96\x81" "do"},
                  {511, "\xe2\x80\x8a"}};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        CHECK(str_is(tok->arr_strs[pieces[i].id], pieces[i].text), "token %d is '%.*s'",
              pieces[i].id, (int)tok->arr_strs[pieces[i].id].len, tok->arr_strs[pieces[i].id].s);

    const gguf_kv *sc = gguf_find(f, "tokenizer.ggml.scores");
    CHECK(sc && sc->arr_type == GGUF_FLOAT32 && sc->arr_n == 512, "scores: 512 float32");
    if (sc) {
        CHECK(gguf_arr_float(sc, 0) == 0.0, "score 0");
        CHECK(gguf_arr_float(sc, 260) == -1.0, "score 260 %g", gguf_arr_float(sc, 260));
        CHECK(gguf_arr_float(sc, 300) == -41.0, "score 300 %g", gguf_arr_float(sc, 300));
        CHECK(gguf_arr_float(sc, 511) == -252.0, "score 511 %g", gguf_arr_float(sc, 511));
        CHECK(gguf_arr_int(sc, 300) == -41, "score 300 as int %" PRId64, gguf_arr_int(sc, 300));
        /* Out of range: 0, not a read past the array. */
        CHECK(gguf_arr_float(sc, 512) == 0.0 && gguf_arr_int(sc, UINT64_MAX) == 0, "past end");
    }
    const gguf_kv *ty = gguf_find(f, "tokenizer.ggml.token_type");
    CHECK(ty && ty->arr_type == GGUF_INT32 && ty->arr_n == 512, "token types: 512 int32");
    if (ty) {
        int64_t want[][2] = {{0, 2}, {1, 3}, {2, 3}, {3, 6}, {258, 6}, {259, 1}, {511, 1}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            CHECK(gguf_arr_int(ty, (uint64_t)want[i][0]) == want[i][1], "type of %" PRId64,
                  want[i][0]);
        CHECK(gguf_arr_float(ty, 1) == 3.0, "type as float");
        int byte_tokens = 0;
        for (uint64_t i = 0; i < ty->arr_n; i++)
            byte_tokens += gguf_arr_int(ty, i) == 6;
        CHECK(byte_tokens == 256, "%d byte tokens", byte_tokens);
    }
    /* A string array has no numeric elements, a scalar is not an array. */
    CHECK(gguf_arr_float(tok, 0) == 0.0 && gguf_arr_int(tok, 0) == 0, "string array as number");
    const gguf_kv *dim = gguf_find(f, "llama.embedding_length");
    CHECK(dim && gguf_arr_int(dim, 0) == 0, "scalar as array");
}

static void test_tensors(const gguf_file *f)
{
    const gguf_tensor_info *t = f->tensors;
    CHECK(strcmp(t[0].name, "token_embd.weight") == 0 && t[0].n_dims == 2 && t[0].ne[0] == 64 &&
              t[0].ne[1] == 512 && t[0].ne[2] == 1 && t[0].type == LB_TYPE_F32 &&
              t[0].offset == 0 && t[0].nbytes == 131072, "token_embd info");
    CHECK(strcmp(t[1].name, "output_norm.weight") == 0 && t[1].n_dims == 1 && t[1].ne[0] == 64 &&
              t[1].ne[1] == 1 && t[1].offset == 131072 && t[1].nbytes == 256, "output_norm info");
    CHECK(strcmp(t[9].name, "blk.0.ffn_down.weight") == 0 && t[9].ne[0] == 172 &&
              t[9].ne[1] == 64 && t[9].offset == 355840, "blk.0.ffn_down info");
    const gguf_tensor_info *last = &t[N_TENSORS - 1];
    CHECK(strcmp(last->name, "blk.4.ffn_norm.weight") == 0 && last->offset == 1170944, "last");
    CHECK(f->data_offset + last->offset + last->nbytes == FILE_SIZE, "last tensor ends the file");

    const float *e = gguf_tensor_data(f, &t[0]);
    uint32_t want_e[] = {0xbe96e950u, 0x3f0fd864u, 0x3e33a1f7u, 0x3eae5faau};
    for (int i = 0; i < 4; i++)
        CHECK(bits(e[i]) == want_e[i], "token_embd[%d] = %g", i, e[i]);
    const float *n = gguf_tensor_data(f, &t[1]);
    CHECK(bits(n[0]) == 0x401d54efu && bits(n[1]) == 0x3faf046eu, "output_norm %g %g", n[0],
          n[1]);
    const float *z = gguf_tensor_data(f, last);
    CHECK(bits(z[63]) == 0x3f9dfc45u, "last float of the file %g", z[63]);
}

static void expect_msg(int rc, const lb_error *err, const char *want)
{
    CHECK(rc == -1, "getter succeeded where '%s' was expected", want);
    CHECK(strcmp(err->msg, want) == 0, "message\n  got  [%s]\n  want [%s]", err->msg, want);
}

static void test_getter_errors(const gguf_file *f, const char *path)
{
    lb_error err;
    int64_t i;
    double d;
    bool b;
    gguf_str s;
    char want[1024];
#define WANT(key, what) \
    (snprintf(want, sizeof want, "%s: metadata key '%s' %s", path, key, what), want)
    expect_msg(gguf_get_int(f, "general.architecture", &i, &err), &err,
               WANT("general.architecture", "is string (expected an integer)"));
    expect_msg(gguf_get_int(f, "llama.attention.layer_norm_rms_epsilon", &i, &err), &err,
               WANT("llama.attention.layer_norm_rms_epsilon", "is float32 (expected an integer)"));
    expect_msg(gguf_get_int(f, "tokenizer.ggml.tokens", &i, &err), &err,
               WANT("tokenizer.ggml.tokens", "is an array of string (expected an integer)"));
    expect_msg(gguf_get_int(f, "llama.no_such_key", &i, &err), &err,
               WANT("llama.no_such_key", "is missing (expected an integer)"));
    expect_msg(gguf_get_float(f, "general.name", &d, &err), &err,
               WANT("general.name", "is string (expected a number)"));
    expect_msg(gguf_get_float(f, "tokenizer.ggml.scores", &d, &err), &err,
               WANT("tokenizer.ggml.scores", "is an array of float32 (expected a number)"));
    expect_msg(gguf_get_bool(f, "llama.block_count", &b, &err), &err,
               WANT("llama.block_count", "is uint32 (expected a bool)"));
    expect_msg(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b, &err), &err,
               WANT("tokenizer.ggml.add_bos_token", "is missing (expected a bool)"));
    expect_msg(gguf_get_str(f, "llama.block_count", &s, &err), &err,
               WANT("llama.block_count", "is uint32 (expected a string)"));
    expect_msg(gguf_get_str(f, "tokenizer.ggml.token_type", &s, &err), &err,
               WANT("tokenizer.ggml.token_type", "is an array of int32 (expected a string)"));
#undef WANT
    /* A NULL error is allowed. */
    CHECK(gguf_get_int(f, "general.name", &i, NULL) == -1, "NULL err");
}

static void test_printable(void)
{
    char buf[32];
    CHECK(strcmp(gguf_printable("a\nb\x7f" "c", 5, buf, sizeof buf), "a\\x0ab\\x7fc") == 0,
          "escaped: %s", buf);
    CHECK(strcmp(gguf_printable("\xe2\x96\x81the", 6, buf, sizeof buf), "\xe2\x96\x81the") == 0,
          "UTF-8 kept: %s", buf);
    const char *longtext = "0123456789012345678901234567890123456789";
    gguf_printable(longtext, strlen(longtext), buf, sizeof buf);
    CHECK(strlen(buf) < sizeof buf && strcmp(buf + strlen(buf) - 3, "...") == 0, "cut: %s", buf);
}

/* Every prefix of the header, and prefixes spread through the data, must be refused with one
 * line naming the file. The copy is shortened step by step, so each length costs one
 * ftruncate. */
static void test_truncations(const char *src, const char *dir)
{
    char *copy = lb_path_join(dir, "truncated.gguf");
    lb_error err;
    char *data;
    size_t len;
    if (lb_read_file(src, 1 << 24, &data, &len, &err)) {
        CHECK(0, "%s", err.msg);
        free(copy);
        return;
    }
    FILE *fp = fopen(copy, "wb");
    CHECK(fp && fwrite(data, 1, len, fp) == len, "write copy");
    if (fp)
        fclose(fp);
    free(data);
    gguf_file *f = NULL;
    CHECK(gguf_open(copy, &f, &err) == 0, "whole copy opens: %s", err.msg);
    gguf_close(f);

    int refused = 0, tried = 0;
    const long dense = DATA_OFFSET + 64;   /* every length up to here, then every 4099th */
    for (long n = FILE_SIZE - 1; n >= 0;
         n -= n <= dense ? 1 : n - dense < 4099 ? n - dense : 4099) {
        if (truncate(copy, n) != 0) {
            CHECK(0, "truncate to %ld", n);
            break;
        }
        tried++;
        err.msg[0] = '\0';
        int rc = gguf_open(copy, &f, &err);
        if (rc == 0) {
            CHECK(0, "a copy cut to %ld bytes opened", n);
            gguf_close(f);
            continue;
        }
        bool one_line = strchr(err.msg, '\n') == NULL;
        bool names = strncmp(err.msg, copy, strlen(copy)) == 0;
        /* A cut inside the header is reported at an offset; one in the data, as a tensor
         * running past the end. */
        bool says = n == 0 || strstr(err.msg, n < DATA_OFFSET - 24 ? "offset" : "past the end");
        CHECK(one_line && names && says, "cut to %ld: [%s]", n, err.msg);
        refused += one_line && names && says;
    }
    CHECK(refused == tried, "%d of %d truncations refused clearly", refused, tried);
    printf("truncations: %d of %d refused with one line\n", refused, tried);
    unlink(copy);
    free(copy);
}

/* The message of a refused file: one line, starting with the file's name. */
static bool clear_error(const lb_error *err, const char *path)
{
    return strchr(err->msg, '\n') == NULL && strncmp(err->msg, path, strlen(path)) == 0 &&
           strncmp(err->msg + strlen(path), ": ", 2) == 0;
}

/* Changes 1 to 3 bytes of a copy of the file in place (pwrite), loads it through the whole
 * model loader, generates two tokens when it loads, and puts the bytes back. The regions (the
 * fixed header, the vocabulary, the scalar keys, the tensor table) are picked with equal
 * odds, so the structural fields are hit far more often than their share of bytes. */
static void test_byte_changes(const char *src, const char *dir, int n_files)
{
    char *copy = lb_path_join(dir, "changed.gguf");
    lb_error err;
    char *data;
    size_t len;
    if (lb_read_file(src, 1 << 24, &data, &len, &err)) {
        CHECK(0, "%s", err.msg);
        free(copy);
        return;
    }
    int fd = open(copy, O_CREAT | O_TRUNC | O_RDWR, 0644);
    CHECK(fd >= 0 && write(fd, data, len) == (ssize_t)len, "write copy");
    const uint64_t regions[][2] = {{0, 24}, {24, VOCAB_END}, {VOCAB_END, KV_END},
                                   {KV_END, INFOS_END}};
    lb_rng rng;
    lb_rng_seed(&rng, 20240611);
    int loaded = 0, refused = 0, generated = 0;
    for (int i = 0; fd >= 0 && i < n_files; i++) {
        uint64_t at[3];
        int n = 1 + (int)(lb_rng_next(&rng) % 3);
        for (int k = 0; k < n; k++) {
            const uint64_t *r = regions[lb_rng_next(&rng) % 4];
            at[k] = r[0] + lb_rng_next(&rng) % (r[1] - r[0]);
            uint8_t b = (uint8_t)(data[at[k]] ^ (1 + lb_rng_next(&rng) % 255));
            CHECK(pwrite(fd, &b, 1, (off_t)at[k]) == 1, "pwrite");
        }
        lb_model *m = NULL;
        err.msg[0] = '\0';
        if (lb_model_load(copy, NULL, &m, &err)) {
            CHECK(clear_error(&err, copy), "file %d: [%s]", i, err.msg);
            refused++;
        } else {
            loaded++;
            lb_engine *e;
            if (lb_engine_create(m, 32, 1, 1, &e, &err) == 0) {
                lb_gen_params gp = lb_gen_defaults();
                gp.max_new_tokens = 2;
                gp.sampling.temperature = 0;
                lb_gen_result res;
                if (lb_generate(e, 0, "", &gp, NULL, NULL, &res, &err) == 0) {
                    generated++;
                    lb_gen_result_free(&res);
                } else {
                    CHECK(strchr(err.msg, '\n') == NULL, "file %d generate: [%s]", i, err.msg);
                }
                lb_engine_free(e);
            } else {
                CHECK(strchr(err.msg, '\n') == NULL, "file %d engine: [%s]", i, err.msg);
            }
            lb_model_free(m);
        }
        for (int k = n - 1; k >= 0; k--)
            CHECK(pwrite(fd, data + at[k], 1, (off_t)at[k]) == 1, "restore");
    }
    printf("byte changes: %d files, %d loaded (%d generated), %d refused with one line\n",
           n_files, loaded, generated, refused);
    CHECK(loaded + refused == n_files, "every changed file loaded or was refused");
    if (fd >= 0)
        close(fd);
    unlink(copy);
    free(copy);
    free(data);
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    char *path = lb_path_join(shared, "models/stories260K.gguf");
    lb_error err;
    gguf_file *f = NULL;
    if (gguf_open(path, &f, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_header_and_metadata(f);
    test_vocabulary(f);
    test_tensors(f);
    test_getter_errors(f, path);
    gguf_close(f);
    test_printable();

    char dir[] = "/tmp/lowbit-gguf-read.XXXXXX";
    if (mkdtemp(dir)) {
        test_truncations(path, dir);
        test_byte_changes(path, dir, 10000);
        rmdir(dir);
    } else {
        CHECK(0, "mkdtemp");
    }
    free(path);
    return check_finish("test_gguf_read");
}
