/* GGUF writer: a file with every metadata type and tensors of every writable type reads back
 * identically through gguf_open; data is aligned and padded with zeros; failures (bad
 * declarations, missing or extra data, an unwritable directory, a full disk) leave no file
 * behind and never replace a good one; and a copy of stories260K.gguf generates the same
 * greedy text as the original. */
#include "check.h"
#include "core/file.h"
#include "core/rng.h"
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "model/generate.h"

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static char g_dir[256];

static char *scratch(const char *name)
{
    return lb_path_join(g_dir, name);
}

/* Number of entries in the scratch directory whose name contains needle. */
static int count_files(const char *needle)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, needle))
            n++;
    if (d)
        closedir(d);
    return n;
}

static void remove_scratch(void)
{
    DIR *d = opendir(g_dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *p = scratch(e->d_name);
        unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    rmdir(g_dir);
}

/* ---- round trip of every metadata type and tensor type ---------------------------------- */

typedef struct {
    const char *name;
    lb_type type;
    int n_dims;
    int64_t ne[4];
    uint8_t *bytes;
    size_t nbytes;
} tensor_spec;

static const gguf_kv *find_kv(const gguf_file *f, const char *key)
{
    const gguf_kv *kv = gguf_find(f, key);
    CHECK(kv != NULL, "key %s missing after the round trip", key);
    return kv;
}

static void check_str(const gguf_str *s, const char *want, const char *what)
{
    CHECK(s->len == strlen(want) && memcmp(s->s, want, s->len) == 0, "%s: got '%.*s', want '%s'",
          what, (int)s->len, s->s, want);
}

static void test_round_trip(void)
{
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_u8(w, "t.u8", 200);
    gguf_writer_set_i8(w, "t.i8", -100);
    gguf_writer_set_u16(w, "t.u16", 60000);
    gguf_writer_set_i16(w, "t.i16", -30000);
    gguf_writer_set_u32(w, "t.u32", 4000000000u);
    gguf_writer_set_i32(w, "t.i32", -2000000000);
    gguf_writer_set_u64(w, "t.u64", UINT64_C(18000000000000000000));
    gguf_writer_set_i64(w, "t.i64", INT64_C(-9000000000000000000));
    gguf_writer_set_f32(w, "t.f32", 3.25f);
    gguf_writer_set_f64(w, "t.f64", -1.0 / 3.0);
    gguf_writer_set_bool(w, "t.bool", true);
    gguf_writer_set_bool(w, "t.bool_false", false);
    gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo");
    gguf_writer_set_strn(w, "t.str_nul", "a\0b", 3);
    gguf_writer_set_str(w, "t.str_empty", "");
    gguf_writer_set_str(w, "t.replaced", "first");

    const uint8_t au8[] = {0, 1, 255};
    const int8_t ai8[] = {-128, 0, 127};
    const uint16_t au16[] = {0, 65535};
    const int16_t ai16[] = {-32768, 32767};
    const uint32_t au32[] = {1, 2, 3, 4294967295u};
    const int32_t ai32[] = {-1, 2, -3};
    const uint64_t au64[] = {UINT64_MAX, 0};
    const int64_t ai64[] = {INT64_MIN, INT64_MAX};
    const float af32[] = {0.5f, -1e30f, 1e-30f};
    const double af64[] = {1e300, -2.5};
    const uint8_t abool[] = {1, 0, 7};
    gguf_writer_set_arr(w, "a.u8", GGUF_UINT8, au8, 3);
    gguf_writer_set_arr(w, "a.i8", GGUF_INT8, ai8, 3);
    gguf_writer_set_arr(w, "a.u16", GGUF_UINT16, au16, 2);
    gguf_writer_set_arr(w, "a.i16", GGUF_INT16, ai16, 2);
    gguf_writer_set_arr(w, "a.u32", GGUF_UINT32, au32, 4);
    gguf_writer_set_arr(w, "a.i32", GGUF_INT32, ai32, 3);
    gguf_writer_set_arr(w, "a.u64", GGUF_UINT64, au64, 2);
    gguf_writer_set_arr(w, "a.i64", GGUF_INT64, ai64, 2);
    gguf_writer_set_arr(w, "a.f32", GGUF_FLOAT32, af32, 3);
    gguf_writer_set_arr(w, "a.f64", GGUF_FLOAT64, af64, 2);
    gguf_writer_set_arr(w, "a.bool", GGUF_BOOL, abool, 3);
    gguf_writer_set_arr(w, "a.empty", GGUF_INT32, NULL, 0);
    const char *strs[] = {"one", "", "▁three"};
    gguf_writer_set_arr_str(w, "a.str", strs, NULL, 3);
    const char *raw[] = {"xyz\0w"};
    const size_t raw_len[] = {5};
    gguf_writer_set_arr_str(w, "a.str_len", raw, raw_len, 1);
    gguf_writer_set_str(w, "t.replaced", "second");   /* replaces, keeps its position */
    CHECK(gguf_writer_n_kv(w) == 30, "n_kv %" PRId64, gguf_writer_n_kv(w));

    /* Tensors of every type the traits can write, sizes chosen so some need padding. */
    tensor_spec ts[] = {
        {"f32.vec", LB_TYPE_F32, 1, {7, 1, 1, 1}, NULL, 0},
        {"f16.mat", LB_TYPE_F16, 2, {5, 3, 1, 1}, NULL, 0},
        {"q8_0.mat", LB_TYPE_Q8_0, 2, {64, 3, 1, 1}, NULL, 0},
        {"q4_0.mat", LB_TYPE_Q4_0, 2, {96, 2, 1, 1}, NULL, 0},
        {"q4_1.mat", LB_TYPE_Q4_1, 3, {32, 2, 3, 1}, NULL, 0},
        {"bf16.4d", LB_TYPE_BF16, 4, {3, 2, 2, 2}, NULL, 0},
    };
    const int nt = (int)(sizeof ts / sizeof ts[0]);
    lb_rng rng;
    lb_rng_seed(&rng, 42);
    lb_error err;
    size_t total = 0;
    for (int i = 0; i < nt; i++) {
        int64_t n = ts[i].ne[0] * ts[i].ne[1] * ts[i].ne[2] * ts[i].ne[3];
        float *x = malloc((size_t)n * sizeof(float));
        for (int64_t j = 0; j < n; j++)
            x[j] = lb_rng_normal(&rng);
        const lb_type_traits *tr = lb_type_traits_of(ts[i].type);
        ts[i].nbytes = lb_row_bytes(ts[i].type, ts[i].ne[0]) * (size_t)(n / ts[i].ne[0]);
        ts[i].bytes = malloc(ts[i].nbytes);
        tr->from_float(x, ts[i].bytes, n);
        free(x);
        total += ts[i].nbytes;
        CHECK(gguf_writer_add_tensor(w, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne, &err) == 0,
              "%s", err.msg);
    }
    CHECK(gguf_writer_n_tensors(w) == nt, "n_tensors");

    char *path = scratch("all.gguf");
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    CHECK(!lb_file_exists(path), "the final name must not exist before finishing");
    /* Stream all the data in 13-byte pieces so writes span tensor boundaries. */
    uint8_t *all = malloc(total);
    size_t pos = 0;
    for (int i = 0; i < nt; i++) {
        memcpy(all + pos, ts[i].bytes, ts[i].nbytes);
        pos += ts[i].nbytes;
    }
    for (size_t off = 0; off < total; off += 13) {
        size_t k = total - off < 13 ? total - off : 13;
        CHECK(gguf_writer_write(w, all + off, k, &err) == 0, "%s", err.msg);
    }
    free(all);
    uint64_t expect_size = gguf_writer_file_size(w);
    CHECK(gguf_writer_finish(w, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_bytes_written(w) == expect_size, "written %" PRIu64 " of %" PRIu64,
          gguf_writer_bytes_written(w), expect_size);
    gguf_writer_free(w);
    CHECK(count_files(".tmp.") == 0, "temporary file left behind");

    gguf_file *f;
    if (gguf_open(path, &f, &err)) {
        CHECK(0, "reading back: %s", err.msg);
        free(path);
        return;
    }
    CHECK(f->version == 3, "version %u", f->version);
    CHECK(f->n_kv == 30, "n_kv %" PRId64, f->n_kv);
    CHECK(f->map.size == expect_size, "size %zu vs %" PRIu64, f->map.size, expect_size);
    CHECK(strcmp(f->kv[15].key, "t.replaced") == 0, "replaced key moved: %s", f->kv[15].key);
    const gguf_kv *kv;
    if ((kv = find_kv(f, "t.u8"))) CHECK(kv->type == GGUF_UINT8 && kv->v.u == 200, "u8");
    if ((kv = find_kv(f, "t.i8"))) CHECK(kv->type == GGUF_INT8 && kv->v.i == -100, "i8");
    if ((kv = find_kv(f, "t.u16"))) CHECK(kv->type == GGUF_UINT16 && kv->v.u == 60000, "u16");
    if ((kv = find_kv(f, "t.i16"))) CHECK(kv->type == GGUF_INT16 && kv->v.i == -30000, "i16");
    if ((kv = find_kv(f, "t.u32"))) CHECK(kv->type == GGUF_UINT32 && kv->v.u == 4000000000u, "u32");
    if ((kv = find_kv(f, "t.i32"))) CHECK(kv->type == GGUF_INT32 && kv->v.i == -2000000000, "i32");
    if ((kv = find_kv(f, "t.u64")))
        CHECK(kv->type == GGUF_UINT64 && kv->v.u == UINT64_C(18000000000000000000), "u64");
    if ((kv = find_kv(f, "t.i64")))
        CHECK(kv->type == GGUF_INT64 && kv->v.i == INT64_C(-9000000000000000000), "i64");
    if ((kv = find_kv(f, "t.f32"))) CHECK(kv->type == GGUF_FLOAT32 && kv->v.f == 3.25, "f32");
    if ((kv = find_kv(f, "t.f64"))) CHECK(kv->type == GGUF_FLOAT64 && kv->v.f == -1.0 / 3.0, "f64");
    if ((kv = find_kv(f, "t.bool"))) CHECK(kv->type == GGUF_BOOL && kv->v.u == 1, "bool");
    if ((kv = find_kv(f, "t.bool_false"))) CHECK(kv->type == GGUF_BOOL && kv->v.u == 0, "bool false");
    if ((kv = find_kv(f, "t.str"))) check_str(&kv->v.str, "h\xc3\xa9llo", "str");
    if ((kv = find_kv(f, "t.str_nul")))
        CHECK(kv->v.str.len == 3 && memcmp(kv->v.str.s, "a\0b", 3) == 0, "string with a NUL");
    if ((kv = find_kv(f, "t.str_empty"))) CHECK(kv->type == GGUF_STRING && kv->v.str.len == 0, "empty");
    if ((kv = find_kv(f, "t.replaced"))) check_str(&kv->v.str, "second", "replaced value");

    struct {
        const char *key;
        gguf_type t;
        const void *data;
        uint64_t n;
        size_t size;
    } arrs[] = {
        {"a.u8", GGUF_UINT8, au8, 3, 1}, {"a.i8", GGUF_INT8, ai8, 3, 1},
        {"a.u16", GGUF_UINT16, au16, 2, 2}, {"a.i16", GGUF_INT16, ai16, 2, 2},
        {"a.u32", GGUF_UINT32, au32, 4, 4}, {"a.i32", GGUF_INT32, ai32, 3, 4},
        {"a.u64", GGUF_UINT64, au64, 2, 8}, {"a.i64", GGUF_INT64, ai64, 2, 8},
        {"a.f32", GGUF_FLOAT32, af32, 3, 4}, {"a.f64", GGUF_FLOAT64, af64, 2, 8},
        {"a.empty", GGUF_INT32, NULL, 0, 4},
    };
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        if (!(kv = find_kv(f, arrs[i].key)))
            continue;
        CHECK(kv->type == GGUF_ARRAY && kv->arr_type == arrs[i].t && kv->arr_n == arrs[i].n,
              "%s: type %d/%d n %" PRIu64, arrs[i].key, kv->type, kv->arr_type, kv->arr_n);
        CHECK(arrs[i].n == 0 || memcmp(kv->arr_data, arrs[i].data, arrs[i].n * arrs[i].size) == 0,
              "%s: elements differ", arrs[i].key);
    }
    if ((kv = find_kv(f, "a.i64")))
        CHECK(gguf_arr_int(kv, 0) == INT64_MIN && gguf_arr_int(kv, 1) == INT64_MAX, "i64 elements");
    if ((kv = find_kv(f, "a.bool"))) {
        CHECK(kv->arr_type == GGUF_BOOL && kv->arr_n == 3, "bool array");
        const uint8_t *b = kv->arr_data;
        CHECK(b[0] == 1 && b[1] == 0 && b[2] == 1, "bool array stored as 0/1: %d %d %d", b[0],
              b[1], b[2]);
    }
    if ((kv = find_kv(f, "a.str"))) {
        CHECK(kv->arr_type == GGUF_STRING && kv->arr_n == 3, "string array");
        for (int i = 0; i < 3 && kv->arr_n == 3; i++)
            check_str(&kv->arr_strs[i], strs[i], "string array element");
    }
    if ((kv = find_kv(f, "a.str_len")))
        CHECK(kv->arr_n == 1 && kv->arr_strs[0].len == 5 &&
              memcmp(kv->arr_strs[0].s, "xyz\0w", 5) == 0, "string array with lengths");

    CHECK(f->n_tensors == nt, "n_tensors %" PRId64, f->n_tensors);
    CHECK(f->alignment == 32 && f->data_offset % 32 == 0, "alignment %u, data at %" PRIu64,
          f->alignment, f->data_offset);
    for (int i = 0; i < nt && i < f->n_tensors; i++) {
        const gguf_tensor_info *ti = &f->tensors[i];
        CHECK(strcmp(ti->name, ts[i].name) == 0, "tensor %d name %s", i, ti->name);
        CHECK(ti->type == (int)ts[i].type && ti->n_dims == ts[i].n_dims, "%s: type/dims", ti->name);
        for (int d = 0; d < 4; d++)
            CHECK(ti->ne[d] == ts[i].ne[d], "%s: ne[%d] %" PRId64, ti->name, d, ti->ne[d]);
        CHECK(ti->offset % 32 == 0, "%s: offset %" PRIu64 " not aligned", ti->name, ti->offset);
        CHECK(ti->nbytes == ts[i].nbytes, "%s: %zu bytes", ti->name, ti->nbytes);
        CHECK(memcmp(gguf_tensor_data(f, ti), ts[i].bytes, ts[i].nbytes) == 0, "%s: data differs",
              ti->name);
        /* The gap up to the next tensor (or the end of the file) is zeros. */
        const uint8_t *end = (const uint8_t *)gguf_tensor_data(f, ti) + ti->nbytes;
        const uint8_t *next = i + 1 < f->n_tensors
                                  ? (const uint8_t *)gguf_tensor_data(f, &f->tensors[i + 1])
                                  : (const uint8_t *)f->map.data + f->map.size;
        CHECK(next - end >= 0 && next - end < 32, "%s: gap of %td bytes", ti->name, next - end);
        for (const uint8_t *p = end; p < next; p++)
            CHECK(*p == 0, "%s: padding byte %td is %d", ti->name, p - end, *p);
    }
    gguf_close(f);
    for (int i = 0; i < nt; i++)
        free(ts[i].bytes);
    free(path);
}

/* general.alignment other than 32 is honoured, and a file with no tensors is valid. */
static void test_alignment(void)
{
    lb_error err;
    char *path = scratch("align.gguf");
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_u32(w, "general.alignment", 128);
    int64_t ne[2] = {3, 1};
    const float v[3] = {1, 2, 3};
    CHECK(gguf_writer_add_tensor(w, "a", LB_TYPE_F32, 1, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "b", LB_TYPE_F32, 1, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_write(w, v, sizeof v, &err) == 0 && gguf_writer_write(w, v, sizeof v, &err) == 0,
          "%s", err.msg);
    CHECK(gguf_writer_finish(w, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);
    gguf_file *f;
    if (gguf_open(path, &f, &err) == 0) {
        CHECK(f->alignment == 128 && f->data_offset % 128 == 0, "alignment %u data %" PRIu64,
              f->alignment, f->data_offset);
        CHECK(f->n_tensors == 2 && f->tensors[1].offset == 128, "second tensor at %" PRIu64,
              f->tensors[1].offset);
        CHECK(f->map.size == f->data_offset + 256, "file of %zu bytes", f->map.size);
        gguf_close(f);
    } else {
        CHECK(0, "%s", err.msg);
    }

    w = gguf_writer_create();
    gguf_writer_set_str(w, "general.architecture", "none");
    CHECK(gguf_writer_open(w, path, &err) == 0 && gguf_writer_finish(w, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);
    if (gguf_open(path, &f, &err) == 0) {
        CHECK(f->n_tensors == 0 && f->n_kv == 1, "empty model");
        gguf_close(f);
    } else {
        CHECK(0, "empty model: %s", err.msg);
    }

    w = gguf_writer_create();
    gguf_writer_set_u32(w, "general.alignment", 48);
    CHECK(gguf_writer_open(w, path, &err) == -1 && strstr(err.msg, "power-of-two"),
          "alignment 48 accepted: %s", err.msg);
    gguf_writer_free(w);
    free(path);
}

/* Writes a small valid file at path (used to see that failures do not replace it). */
static void write_good(const char *path)
{
    lb_error err;
    gguf_writer *w = gguf_writer_create();
    gguf_writer_set_str(w, "general.name", "good");
    CHECK(gguf_writer_open(w, path, &err) == 0 && gguf_writer_finish(w, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);
}

static bool still_good(const char *path)
{
    gguf_file *f;
    lb_error err;
    if (gguf_open(path, &f, &err))
        return false;
    gguf_str s;
    bool ok = gguf_get_str(f, "general.name", &s, &err) == 0 && s.len == 4 &&
              memcmp(s.s, "good", 4) == 0;
    gguf_close(f);
    return ok;
}

static void test_errors(void)
{
    lb_error err;
    char *path = scratch("err.gguf");
    write_good(path);
    int64_t ne[2] = {32, 4}, bad[2] = {30, 4}, zero[2] = {0, 4};

    gguf_writer *w = gguf_writer_create();
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_Q8_0, 2, bad, &err) == -1 &&
          strstr(err.msg, "block size"), "row of 30 in Q8_0: %s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_F32, 2, zero, &err) == -1 &&
          strstr(err.msg, "dimension 0"), "zero dimension: %s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "x", (lb_type)7, 2, ne, &err) == -1 &&
          strstr(err.msg, "unsupported type"), "type 7: %s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_F32, 5, ne, &err) == -1, "5 dims accepted");
    CHECK(gguf_writer_add_tensor(w, "", LB_TYPE_F32, 2, ne, &err) == -1, "empty name accepted");
    char long_name[200];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    CHECK(gguf_writer_add_tensor(w, long_name, LB_TYPE_F32, 2, ne, &err) == -1, "long name accepted");
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_F32, 2, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_F32, 2, ne, &err) == -1 &&
          strstr(err.msg, "twice"), "duplicate: %s", err.msg);
    CHECK(gguf_writer_write(w, "x", 1, &err) == -1 && strstr(err.msg, "before"),
          "write before open: %s", err.msg);
    /* Too little data: finishing fails, names the tensor, and leaves the old file. */
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    float row[32] = {0};
    CHECK(gguf_writer_write(w, row, sizeof row, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_finish(w, &err) == -1 && strstr(err.msg, "'x'") &&
          strstr(err.msg, "128 of 512"), "short data: %s", err.msg);
    CHECK(gguf_writer_write(w, row, sizeof row, &err) == -1 && strstr(err.msg, "'x'"),
          "a failed writer repeats its error: %s", err.msg);
    gguf_writer_free(w);
    CHECK(still_good(path), "short data replaced the good file");
    CHECK(count_files(".tmp.") == 0, "temporary file left after short data");

    /* Too much data. */
    w = gguf_writer_create();
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_F32, 2, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    float big[32 * 5] = {0};
    CHECK(gguf_writer_write(w, big, sizeof big, &err) == -1 && strstr(err.msg, "more than"),
          "extra data: %s", err.msg);
    CHECK(gguf_writer_finish(w, &err) == -1, "finish after failure succeeded");
    gguf_writer_free(w);
    CHECK(still_good(path) && count_files(".tmp.") == 0, "extra data left a file or replaced one");

    /* Freed before finishing: the temporary file goes. */
    w = gguf_writer_create();
    CHECK(gguf_writer_add_tensor(w, "x", LB_TYPE_F32, 2, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    CHECK(count_files(".tmp.") == 1, "no temporary file while writing");
    gguf_writer_free(w);
    CHECK(still_good(path) && count_files(".tmp.") == 0, "abandoned writer left a file");

    /* Misuse of the setters is reported by open (or by finish when it happens later). */
    w = gguf_writer_create();
    gguf_writer_set_u32(w, "", 1);
    CHECK(gguf_writer_open(w, path, &err) == -1 && strstr(err.msg, "empty"), "empty key: %s", err.msg);
    gguf_writer_free(w);
    w = gguf_writer_create();
    gguf_writer_set_arr(w, "k", GGUF_STRING, NULL, 0);
    CHECK(gguf_writer_open(w, path, &err) == -1 && strstr(err.msg, "'k'"), "string via set_arr: %s",
          err.msg);
    gguf_writer_free(w);
    w = gguf_writer_create();
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    gguf_writer_set_u32(w, "late", 1);
    CHECK(gguf_writer_add_tensor(w, "y", LB_TYPE_F32, 2, ne, &err) == -1, "tensor after open");
    CHECK(gguf_writer_finish(w, &err) == -1 && strstr(err.msg, "'late'"), "late key: %s", err.msg);
    gguf_writer_free(w);
    CHECK(still_good(path) && count_files(".tmp.") == 0, "misuse left a file or replaced one");

    /* An unwritable place. */
    w = gguf_writer_create();
    CHECK(gguf_writer_open(w, "/nonexistent-dir/x.gguf", &err) == -1 &&
          strstr(err.msg, "/nonexistent-dir/x.gguf") && strstr(err.msg, "cannot create"),
          "missing directory: %s", err.msg);
    gguf_writer_free(w);
    free(path);
}

/* A full disk, simulated with a file-size limit: the write fails with a clear message, the
 * temporary file is removed, and the good file under the final name stays. */
static void test_disk_full(void)
{
    lb_error err;
    char *path = scratch("full.gguf");
    write_good(path);
    struct rlimit old;
    getrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {1 << 20, old.rlim_max};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
        printf("skipping the full-disk case: cannot lower RLIMIT_FSIZE\n");
        free(path);
        return;
    }
    gguf_writer *w = gguf_writer_create();
    int64_t ne[2] = {1024, 1024};   /* 4 MiB, beyond the 1 MiB limit */
    CHECK(gguf_writer_add_tensor(w, "big", LB_TYPE_F32, 2, ne, &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_open(w, path, &err) == 0, "%s", err.msg);
    float *row = calloc(1024 * 64, sizeof(float));
    int rc = 0;
    for (int i = 0; i < 16 && rc == 0; i++)
        rc = gguf_writer_write(w, row, 1024 * 64 * sizeof(float), &err);
    if (rc == 0)
        rc = gguf_writer_finish(w, &err);
    free(row);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == -1, "writing past the size limit succeeded");
    CHECK(rc == 0 || (strstr(err.msg, path) && strstr(err.msg, "write failed")),
          "message: %s", err.msg);
    printf("full disk: %s\n", err.msg);
    gguf_writer_free(w);
    CHECK(still_good(path), "a failed write replaced the good file");
    CHECK(count_files(".tmp.") == 0, "temporary file left after a failed write");
    free(path);
}

/* ---- copy of a real model ---------------------------------------------------------------- */

static char *greedy(const char *path, int n, lb_error *err)
{
    lb_model *m;
    if (lb_model_load(path, NULL, &m, err))
        return NULL;
    lb_engine *e;
    if (lb_engine_create(m, 256, 1, 1, &e, err)) {
        lb_model_free(m);
        return NULL;
    }
    lb_gen_params gp = lb_gen_defaults();
    gp.max_new_tokens = n;
    gp.sampling.temperature = 0;
    lb_gen_result res;
    char *text = NULL;
    if (lb_generate(e, 0, "", &gp, NULL, NULL, &res, err) == 0) {
        text = res.text;
        res.text = NULL;
        lb_gen_result_free(&res);
    }
    lb_engine_free(e);
    lb_model_free(m);
    return text;
}

static void test_copy_stories(void)
{
    lb_error err;
    char *src = lb_path_join(test_env("LOWBIT_SHARED"), "models/stories260K.gguf");
    char *dst = scratch("copy.gguf");
    gguf_file *f;
    if (gguf_open(src, &f, &err)) {
        CHECK(0, "%s", err.msg);
        free(src);
        free(dst);
        return;
    }
    gguf_writer *w = gguf_writer_create();
    for (int64_t i = 0; i < f->n_kv; i++)
        gguf_writer_copy_kv(w, &f->kv[i]);
    for (int64_t i = 0; i < f->n_tensors; i++)
        CHECK(gguf_writer_add_tensor(w, f->tensors[i].name, (lb_type)f->tensors[i].type,
                                     f->tensors[i].n_dims, f->tensors[i].ne, &err) == 0, "%s",
              err.msg);
    CHECK(gguf_writer_open(w, dst, &err) == 0, "%s", err.msg);
    for (int64_t i = 0; i < f->n_tensors; i++)
        CHECK(gguf_writer_write(w, gguf_tensor_data(f, &f->tensors[i]), f->tensors[i].nbytes,
                                &err) == 0, "%s", err.msg);
    CHECK(gguf_writer_finish(w, &err) == 0, "%s", err.msg);
    gguf_writer_free(w);

    lb_mapping a, b;
    if (lb_map_file(src, &a, &err) == 0 && lb_map_file(dst, &b, &err) == 0) {
        bool same = a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
        printf("stories260K copy: %zu bytes, original %zu bytes, byte-identical: %s\n", b.size,
               a.size, same ? "yes" : "no");
        /* The original was written by ggml with the same layout rules, so the copy matches. */
        CHECK(same, "copy differs from the original");
        lb_unmap(&a);
        lb_unmap(&b);
    }
    gguf_close(f);

    char *t1 = greedy(src, 61, &err);
    CHECK(t1 != NULL, "%s", err.msg);
    char *t2 = greedy(dst, 61, &err);
    CHECK(t2 != NULL, "%s", err.msg);
    const char *expected = "Once upon a time, there was a little girl named Lily. She loved to "
                           "play outside in the park. One day, she saw a big, red ball. She "
                           "wanted to play with it, but it was too high.";
    CHECK(t1 && strcmp(t1, expected) == 0, "original: %s", t1 ? t1 : "");
    CHECK(t1 && t2 && strcmp(t1, t2) == 0, "copy generates [%s], original [%s]", t2 ? t2 : "",
          t1 ? t1 : "");
    free(t1);
    free(t2);
    free(src);
    free(dst);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lowbit-gguf-write.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_alignment();
    test_errors();
    test_disk_full();
    test_copy_stories();
    remove_scratch();
    return check_finish("test_gguf_write");
}
