/* GGUF v3 writer. The header (metadata and tensor table) is kept in memory until
 * gguf_writer_open; tensor offsets follow from the declared shapes, so the data can be streamed
 * after the header without ever holding a whole tensor. Each tensor starts at a multiple of the
 * alignment and is followed by zero padding up to the next multiple, the last one included, as
 * ggml writes it. Output goes through lb_atomic_* so failures leave no file behind. */
#include "io/gguf_write.h"

#include "core/file.h"
#include "core/vec.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_DEFAULT_ALIGNMENT 32
#define MAX_KEY_LEN 65535

typedef struct {
    char *key;
    gguf_type type;
    lb_buf value;            /* the value as it appears in the file, after the type */
} wkv;

typedef struct {
    char name[LB_MAX_NAME];
    lb_type type;
    int n_dims;
    int64_t ne[LB_MAX_DIMS];
    uint64_t nbytes;
    uint64_t offset;         /* relative to the data section; set by gguf_writer_open */
} wtensor;

typedef enum { W_BUILDING, W_OPEN, W_DONE, W_FAILED } wstate;

struct gguf_writer {
    wkv *kv;
    int64_t n_kv, cap_kv;
    wtensor *tensors;
    int64_t n_tensors, cap_tensors;
    bool misused;
    lb_error misuse;         /* first misuse of a setter, reported by gguf_writer_open */

    wstate state;
    lb_atomic_file file;
    char *path;
    lb_error failure;        /* repeated by every call after a failed write */
    uint32_t alignment;
    uint64_t data_start;     /* file offset of the data section */
    uint64_t file_size;
    uint64_t written;        /* bytes written to the file so far */
    int64_t cur;             /* tensor receiving data */
    uint64_t cur_done;       /* bytes of it written */
};

static const size_t scalar_size[GGUF_TYPE_COUNT] = {
    [GGUF_UINT8] = 1, [GGUF_INT8] = 1, [GGUF_UINT16] = 2, [GGUF_INT16] = 2, [GGUF_UINT32] = 4,
    [GGUF_INT32] = 4, [GGUF_FLOAT32] = 4, [GGUF_BOOL] = 1, [GGUF_UINT64] = 8, [GGUF_INT64] = 8,
    [GGUF_FLOAT64] = 8,
};

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

gguf_writer *gguf_writer_create(void)
{
    return lb_calloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w)
{
    if (!w)
        return;
    if (w->state == W_OPEN)
        lb_atomic_abort(&w->file);
    for (int64_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        lb_buf_free(&w->kv[i].value);
    }
    free(w->kv);
    free(w->tensors);
    free(w->path);
    free(w);
}

/* ---- metadata --------------------------------------------------------------------------- */

static void misuse(gguf_writer *w, const char *fmt, const char *key)
{
    if (!w->misused)
        lb_fail(&w->misuse, fmt, key);
    w->misused = true;
}

/* Returns the entry for key, emptied for a new value, or NULL after a misuse. */
static lb_buf *begin_kv(gguf_writer *w, const char *key, gguf_type type)
{
    if (w->state != W_BUILDING) {
        misuse(w, "GGUF writer: metadata key '%s' set after the header was written", key);
        return NULL;
    }
    size_t len = strlen(key);
    if (len == 0 || len > MAX_KEY_LEN) {
        misuse(w, "GGUF writer: metadata key '%.64s' is empty or longer than 65535 bytes", key);
        return NULL;
    }
    for (int64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, key) == 0) {
            w->kv[i].type = type;
            w->kv[i].value.n = 0;
            return &w->kv[i].value;
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 16;
        w->kv = lb_realloc(w->kv, (size_t)w->cap_kv * sizeof(wkv));
    }
    wkv *kv = &w->kv[w->n_kv++];
    *kv = (wkv){lb_strdup(key), type, {0}};
    return &kv->value;
}

static void put_u32(lb_buf *b, uint32_t v) { lb_buf_append(b, &v, 4); }
static void put_u64(lb_buf *b, uint64_t v) { lb_buf_append(b, &v, 8); }

static void put_str(lb_buf *b, const char *s, size_t len)
{
    put_u64(b, len);
    lb_buf_append(b, s, len);
}

static void set_scalar(gguf_writer *w, const char *key, gguf_type type, const void *v)
{
    lb_buf *b = begin_kv(w, key, type);
    if (b)
        lb_buf_append(b, v, scalar_size[type]);
}

void gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v) { set_scalar(w, key, GGUF_UINT8, &v); }
void gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v) { set_scalar(w, key, GGUF_INT8, &v); }
void gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v) { set_scalar(w, key, GGUF_UINT16, &v); }
void gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v) { set_scalar(w, key, GGUF_INT16, &v); }
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) { set_scalar(w, key, GGUF_UINT32, &v); }
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) { set_scalar(w, key, GGUF_INT32, &v); }
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) { set_scalar(w, key, GGUF_UINT64, &v); }
void gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v) { set_scalar(w, key, GGUF_INT64, &v); }
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v) { set_scalar(w, key, GGUF_FLOAT32, &v); }
void gguf_writer_set_f64(gguf_writer *w, const char *key, double v) { set_scalar(w, key, GGUF_FLOAT64, &v); }

void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v)
{
    uint8_t b = v ? 1 : 0;
    set_scalar(w, key, GGUF_BOOL, &b);
}

void gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len)
{
    lb_buf *b = begin_kv(w, key, GGUF_STRING);
    if (b)
        put_str(b, s, len);
}

void gguf_writer_set_str(gguf_writer *w, const char *key, const char *s)
{
    gguf_writer_set_strn(w, key, s, strlen(s));
}

void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                         uint64_t n)
{
    if ((unsigned)elem_type >= GGUF_TYPE_COUNT || elem_type == GGUF_STRING ||
        elem_type == GGUF_ARRAY) {
        misuse(w, "GGUF writer: key '%s': array element type must be a scalar type", key);
        return;
    }
    lb_buf *b = begin_kv(w, key, GGUF_ARRAY);
    if (!b)
        return;
    put_u32(b, (uint32_t)elem_type);
    put_u64(b, n);
    if (elem_type == GGUF_BOOL) {
        /* Stored as 0/1 bytes whatever nonzero value the caller used. */
        const uint8_t *src = data;
        for (uint64_t i = 0; i < n; i++) {
            uint8_t v = src[i] != 0;
            lb_buf_append(b, &v, 1);
        }
    } else if (n) {
        lb_buf_append(b, data, (size_t)n * scalar_size[elem_type]);
    }
}

void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                             const size_t *lens, uint64_t n)
{
    lb_buf *b = begin_kv(w, key, GGUF_ARRAY);
    if (!b)
        return;
    put_u32(b, GGUF_STRING);
    put_u64(b, n);
    for (uint64_t i = 0; i < n; i++)
        put_str(b, strs[i], lens ? lens[i] : strlen(strs[i]));
}

void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv)
{
    gguf_type t = kv->type;
    switch (t) {
    case GGUF_UINT8: gguf_writer_set_u8(w, kv->key, (uint8_t)kv->v.u); break;
    case GGUF_INT8: gguf_writer_set_i8(w, kv->key, (int8_t)kv->v.i); break;
    case GGUF_UINT16: gguf_writer_set_u16(w, kv->key, (uint16_t)kv->v.u); break;
    case GGUF_INT16: gguf_writer_set_i16(w, kv->key, (int16_t)kv->v.i); break;
    case GGUF_UINT32: gguf_writer_set_u32(w, kv->key, (uint32_t)kv->v.u); break;
    case GGUF_INT32: gguf_writer_set_i32(w, kv->key, (int32_t)kv->v.i); break;
    case GGUF_UINT64: gguf_writer_set_u64(w, kv->key, kv->v.u); break;
    case GGUF_INT64: gguf_writer_set_i64(w, kv->key, kv->v.i); break;
    case GGUF_FLOAT32: gguf_writer_set_f32(w, kv->key, (float)kv->v.f); break;
    case GGUF_FLOAT64: gguf_writer_set_f64(w, kv->key, kv->v.f); break;
    case GGUF_BOOL: gguf_writer_set_bool(w, kv->key, kv->v.u != 0); break;
    case GGUF_STRING: gguf_writer_set_strn(w, kv->key, kv->v.str.s, kv->v.str.len); break;
    case GGUF_ARRAY:
        if (kv->arr_type == GGUF_STRING) {
            lb_buf *b = begin_kv(w, kv->key, GGUF_ARRAY);
            if (!b)
                return;
            put_u32(b, GGUF_STRING);
            put_u64(b, kv->arr_n);
            for (uint64_t i = 0; i < kv->arr_n; i++)
                put_str(b, kv->arr_strs[i].s, kv->arr_strs[i].len);
        } else if (kv->arr_type == GGUF_ARRAY || (kv->arr_n && !kv->arr_data)) {
            misuse(w, "GGUF writer: key '%s': nested arrays cannot be copied", kv->key);
        } else {
            gguf_writer_set_arr(w, kv->key, kv->arr_type, kv->arr_data, kv->arr_n);
        }
        break;
    default:
        misuse(w, "GGUF writer: key '%s' has an unknown value type", kv->key);
    }
}

int64_t gguf_writer_n_kv(const gguf_writer *w) { return w->n_kv; }
int64_t gguf_writer_n_tensors(const gguf_writer *w) { return w->n_tensors; }

/* ---- tensors ---------------------------------------------------------------------------- */

int gguf_writer_add_tensor(gguf_writer *w, const char *name, lb_type type, int n_dims,
                           const int64_t *ne, lb_error *err)
{
    if (w->state != W_BUILDING)
        return lb_fail(err, "GGUF writer: tensor '%s' added after the header was written", name);
    size_t len = strlen(name);
    if (len == 0 || len >= LB_MAX_NAME)
        return lb_fail(err, "GGUF writer: tensor name '%.40s' has %zu bytes (expected 1 to %d)",
                       name, len, LB_MAX_NAME - 1);
    const lb_type_traits *tr = lb_type_traits_of((int)type);
    if (!tr)
        return lb_fail(err, "GGUF writer: tensor '%s': unsupported type %d", name, (int)type);
    if (n_dims < 1 || n_dims > LB_MAX_DIMS)
        return lb_fail(err, "GGUF writer: tensor '%s': %d dimensions (expected 1 to %d)", name,
                       n_dims, LB_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims};
    memcpy(t.name, name, len + 1);
    uint64_t total = 1;
    for (int d = 0; d < LB_MAX_DIMS; d++) {
        int64_t x = d < n_dims ? ne[d] : 1;
        if (x <= 0 || x > (INT64_C(1) << 40) || total > (UINT64_C(1) << 50) / (uint64_t)x)
            return lb_fail(err, "GGUF writer: tensor '%s': dimension %d of size %" PRId64
                           " is not positive or too large", name, d, x);
        t.ne[d] = x;
        total *= (uint64_t)x;
    }
    if (t.ne[0] % tr->block_size)
        return lb_fail(err, "GGUF writer: tensor '%s': row of %" PRId64 " elements is not a "
                       "multiple of the %s block size %d", name, t.ne[0], tr->name,
                       tr->block_size);
    t.nbytes = total / (uint64_t)tr->block_size * tr->block_bytes;
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return lb_fail(err, "GGUF writer: tensor '%s' added twice", name);
    if (w->n_tensors == w->cap_tensors) {
        w->cap_tensors = w->cap_tensors ? 2 * w->cap_tensors : 64;
        w->tensors = lb_realloc(w->tensors, (size_t)w->cap_tensors * sizeof(wtensor));
    }
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ---- output ----------------------------------------------------------------------------- */

/* Marks the writer failed, removes the temporary file, and keeps the message for later calls. */
static int fail_write(gguf_writer *w, lb_error *err)
{
    if (w->state == W_OPEN)
        lb_atomic_abort(&w->file);
    w->state = W_FAILED;
    if (err)
        w->failure = *err;
    return -1;
}

static int raw_write(gguf_writer *w, const void *p, size_t n, lb_error *err)
{
    if (n && fwrite(p, 1, n, w->file.fp) != n) {
        int e = errno;
        lb_fail(err, "%s: write failed at offset %" PRIu64 ": %s", w->path, w->written,
                e ? strerror(e) : "short write");
        return fail_write(w, err);
    }
    w->written += n;
    return 0;
}

static int write_zeros(gguf_writer *w, uint64_t n, lb_error *err)
{
    static const uint8_t zeros[256];
    while (n) {
        size_t k = n < sizeof zeros ? (size_t)n : sizeof zeros;
        if (raw_write(w, zeros, k, err))
            return -1;
        n -= k;
    }
    return 0;
}

static int state_error(gguf_writer *w, const char *what, lb_error *err)
{
    if (w->state == W_FAILED) {
        if (err)
            *err = w->failure;
        return -1;
    }
    return lb_fail(err, "GGUF writer: %s %s", what,
                   w->state == W_BUILDING ? "before gguf_writer_open"
                                          : "after the file was finished");
}

int gguf_writer_open(gguf_writer *w, const char *path, lb_error *err)
{
    if (w->state != W_BUILDING)
        return lb_fail(err, "%s: GGUF writer already opened", path);
    if (w->misused) {
        if (err)
            *err = w->misuse;
        return -1;
    }
    w->alignment = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kv[i].key, "general.alignment") == 0) {
            uint32_t a = 0;
            if (w->kv[i].type == GGUF_UINT32)
                memcpy(&a, w->kv[i].value.v, 4);
            if (a == 0 || (a & (a - 1)))
                return lb_fail(err, "%s: general.alignment must be a power-of-two uint32", path);
            w->alignment = a;
        }

    lb_buf h = {0};
    lb_buf_append(&h, "GGUF", 4);
    put_u32(&h, 3);
    put_u64(&h, (uint64_t)w->n_tensors);
    put_u64(&h, (uint64_t)w->n_kv);
    for (int64_t i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        put_u32(&h, (uint32_t)w->kv[i].type);
        lb_buf_append(&h, w->kv[i].value.v, w->kv[i].value.n);
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_tensors; i++) {
        wtensor *t = &w->tensors[i];
        t->offset = off;
        off = align_up(off + t->nbytes, w->alignment);
        put_str(&h, t->name, strlen(t->name));
        put_u32(&h, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++)
            put_u64(&h, (uint64_t)t->ne[d]);
        put_u32(&h, (uint32_t)t->type);
        put_u64(&h, t->offset);
    }
    w->data_start = align_up(h.n, w->alignment);
    w->file_size = w->data_start + off;
    w->path = lb_strdup(path);
    if (lb_atomic_open(&w->file, path, err)) {
        lb_buf_free(&h);
        free(w->path);
        w->path = NULL;
        return -1;
    }
    w->state = W_OPEN;
    w->written = 0;
    w->cur = 0;
    w->cur_done = 0;
    int rc = raw_write(w, h.v, h.n, err);
    lb_buf_free(&h);
    if (rc || write_zeros(w, w->data_start - w->written, err))
        return -1;
    return 0;
}

int gguf_writer_write(gguf_writer *w, const void *data, size_t n, lb_error *err)
{
    if (w->state != W_OPEN)
        return state_error(w, "tensor data written", err);
    const uint8_t *p = data;
    while (n) {
        if (w->cur >= w->n_tensors) {
            lb_fail(err, "%s: %zu bytes of tensor data more than the %" PRId64 " tensors hold",
                    w->path, n, w->n_tensors);
            return fail_write(w, err);
        }
        wtensor *t = &w->tensors[w->cur];
        uint64_t room = t->nbytes - w->cur_done;
        size_t k = n < room ? n : (size_t)room;
        if (raw_write(w, p, k, err))
            return -1;
        p += k;
        n -= k;
        w->cur_done += k;
        if (w->cur_done == t->nbytes) {
            uint64_t end = w->data_start + align_up(t->offset + t->nbytes, w->alignment);
            if (write_zeros(w, end - w->written, err))
                return -1;
            w->cur++;
            w->cur_done = 0;
        }
    }
    return 0;
}

int gguf_writer_finish(gguf_writer *w, lb_error *err)
{
    if (w->state != W_OPEN)
        return state_error(w, "finish", err);
    if (w->misused) {
        /* A key set after the header was written would silently be missing from the file. */
        if (err)
            *err = w->misuse;
        return fail_write(w, err);
    }
    if (w->cur < w->n_tensors) {
        const wtensor *t = &w->tensors[w->cur];
        lb_fail(err, "%s: tensor '%s': %" PRIu64 " of %" PRIu64 " bytes written before finishing",
                w->path, t->name, w->cur_done, t->nbytes);
        return fail_write(w, err);
    }
    int rc = lb_atomic_commit(&w->file, err);
    if (rc) {
        /* lb_atomic_commit has already removed the temporary file. */
        w->state = W_FAILED;
        if (err)
            w->failure = *err;
        return -1;
    }
    w->state = W_DONE;
    return 0;
}

uint64_t gguf_writer_file_size(const gguf_writer *w) { return w->file_size; }
uint64_t gguf_writer_bytes_written(const gguf_writer *w) { return w->written; }
