/* GGUF reader. Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
 * metadata key/values, the tensor infos (name, dims, shape, type, offset), padding to the
 * alignment, then the data. Every read goes through a cursor that refuses to pass the end. */
#include "io/gguf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits on sizes a file claims, checked before anything is allocated. */
#define MAX_KEY_LEN 65536
#define MAX_DEPTH 2

typedef struct {
    const uint8_t *p;
    uint64_t pos, size;
    const char *path;
    lb_error *err;
} cursor;

static int need(cursor *c, uint64_t n, const char *what)
{
    if (n > c->size - c->pos)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": file ends while reading %s (%" PRIu64
                       " bytes needed, %" PRIu64 " left)", c->path, c->pos, what, n,
                       c->size - c->pos);
    return 0;
}

static int read_bytes(cursor *c, void *dst, uint64_t n, const char *what)
{
    if (need(c, n, what))
        return -1;
    memcpy(dst, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

static int read_u32(cursor *c, uint32_t *v, const char *what) { return read_bytes(c, v, 4, what); }
static int read_u64(cursor *c, uint64_t *v, const char *what) { return read_bytes(c, v, 8, what); }

static int read_str(cursor *c, gguf_str *s, const char *what)
{
    uint64_t len;
    if (read_u64(c, &len, what) || need(c, len, what))
        return -1;
    s->s = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

static const size_t scalar_size[GGUF_TYPE_COUNT] = {
    [GGUF_UINT8] = 1, [GGUF_INT8] = 1, [GGUF_UINT16] = 2, [GGUF_INT16] = 2, [GGUF_UINT32] = 4,
    [GGUF_INT32] = 4, [GGUF_FLOAT32] = 4, [GGUF_BOOL] = 1, [GGUF_UINT64] = 8, [GGUF_INT64] = 8,
    [GGUF_FLOAT64] = 8,
};

const char *gguf_type_name(gguf_type t)
{
    static const char *names[GGUF_TYPE_COUNT] = {
        "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "bool", "string",
        "array", "uint64", "int64", "float64"};
    return (unsigned)t < GGUF_TYPE_COUNT ? names[t] : "invalid";
}

/* Decodes one little-endian scalar into the kv's union. */
static void set_scalar(gguf_kv *kv, gguf_type t, const uint8_t *p)
{
    switch (t) {
    case GGUF_UINT8: kv->v.u = p[0]; break;
    case GGUF_BOOL: kv->v.u = p[0] != 0; break;
    case GGUF_INT8: kv->v.i = (int8_t)p[0]; break;
    case GGUF_UINT16: { uint16_t x; memcpy(&x, p, 2); kv->v.u = x; break; }
    case GGUF_INT16: { int16_t x; memcpy(&x, p, 2); kv->v.i = x; break; }
    case GGUF_UINT32: { uint32_t x; memcpy(&x, p, 4); kv->v.u = x; break; }
    case GGUF_INT32: { int32_t x; memcpy(&x, p, 4); kv->v.i = x; break; }
    case GGUF_UINT64: { uint64_t x; memcpy(&x, p, 8); kv->v.u = x; break; }
    case GGUF_INT64: { int64_t x; memcpy(&x, p, 8); kv->v.i = x; break; }
    case GGUF_FLOAT32: { float x; memcpy(&x, p, 4); kv->v.f = x; break; }
    case GGUF_FLOAT64: { double x; memcpy(&x, p, 8); kv->v.f = x; break; }
    default: break;
    }
}

static int read_value(cursor *c, gguf_kv *kv, gguf_type t, int depth)
{
    char what[160];
    snprintf(what, sizeof what, "the value of '%s'", kv->key);
    if ((unsigned)t >= GGUF_TYPE_COUNT)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": key '%s' has unknown value type %u",
                       c->path, c->pos, kv->key, (unsigned)t);
    if (t == GGUF_STRING)
        return read_str(c, &kv->v.str, what);
    if (t != GGUF_ARRAY) {
        if (need(c, scalar_size[t], what))
            return -1;
        set_scalar(kv, t, c->p + c->pos);
        c->pos += scalar_size[t];
        return 0;
    }
    uint32_t et;
    uint64_t n;
    if (read_u32(c, &et, what) || read_u64(c, &n, what))
        return -1;
    if (et >= GGUF_TYPE_COUNT || (et == GGUF_ARRAY && depth >= MAX_DEPTH))
        return lb_fail(c->err, "%s: key '%s': unsupported array element type %u", c->path,
                       kv->key, et);
    kv->arr_type = (gguf_type)et;
    kv->arr_n = n;
    if (et == GGUF_STRING) {
        /* Each string takes at least its 8-byte length: bound n before allocating. */
        if (n > (c->size - c->pos) / 8)
            return lb_fail(c->err, "%s: key '%s': array claims %" PRIu64
                           " strings, more than the file can hold", c->path, kv->key, n);
        kv->arr_strs = lb_malloc((size_t)(n ? n : 1) * sizeof(gguf_str));
        for (uint64_t i = 0; i < n; i++)
            if (read_str(c, &kv->arr_strs[i], what))
                return -1;
    } else if (et == GGUF_ARRAY) {
        /* Nested arrays carry no meaning for models; walk over them. Each takes >= 12 bytes. */
        if (n > (c->size - c->pos) / 12)
            return lb_fail(c->err, "%s: key '%s': array claims %" PRIu64
                           " arrays, more than the file can hold", c->path, kv->key, n);
        for (uint64_t i = 0; i < n; i++) {
            gguf_kv inner = {.key = kv->key};
            int rc = read_value(c, &inner, GGUF_ARRAY, depth + 1);
            free(inner.arr_strs);
            if (rc)
                return -1;
        }
    } else {
        if (n > (c->size - c->pos) / scalar_size[et])
            return lb_fail(c->err, "%s: key '%s': array of %" PRIu64
                           " %s elements runs past the end of the file", c->path, kv->key, n,
                           gguf_type_name((gguf_type)et));
        kv->arr_data = c->p + c->pos;
        c->pos += n * scalar_size[et];
    }
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor_info *ti, int64_t index)
{
    char what[64];
    snprintf(what, sizeof what, "tensor info #%" PRId64, index);
    gguf_str name;
    if (read_str(c, &name, what))
        return -1;
    if (name.len == 0 || name.len >= LB_MAX_NAME)
        return lb_fail(c->err, "%s: tensor #%" PRId64 ": name of %" PRIu64
                       " bytes (expected 1 to %d)", c->path, index, name.len, LB_MAX_NAME - 1);
    memcpy(ti->name, name.s, name.len);
    ti->name[name.len] = '\0';
    uint32_t n_dims, type;
    if (read_u32(c, &n_dims, what))
        return -1;
    if (n_dims == 0 || n_dims > LB_MAX_DIMS)
        return lb_fail(c->err, "%s: tensor '%s': %u dimensions (expected 1 to %d)", c->path,
                       ti->name, n_dims, LB_MAX_DIMS);
    ti->n_dims = (int)n_dims;
    uint64_t total = 1;
    for (int d = 0; d < LB_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if ((uint32_t)d < n_dims && read_u64(c, &ne, what))
            return -1;
        if (ne == 0 || ne > (1ULL << 40) || total > (1ULL << 50) / ne)
            return lb_fail(c->err, "%s: tensor '%s': dimension %d of size %" PRIu64
                           " is zero or too large", c->path, ti->name, d, ne);
        total *= ne;
        ti->ne[d] = (int64_t)ne;
    }
    if (read_u32(c, &type, what) || read_u64(c, &ti->offset, what))
        return -1;
    const lb_type_traits *tr = lb_type_traits_of((int)type);
    if (!tr)
        return lb_fail(c->err, "%s: tensor '%s': unsupported tensor type %u (lowbit reads F32, "
                       "F16, BF16, Q8_0, Q4_0, Q4_1)", c->path, ti->name, type);
    ti->type = (int)type;
    if (ti->ne[0] % tr->block_size)
        return lb_fail(c->err, "%s: tensor '%s': row of %" PRId64
                       " elements is not a multiple of the %s block size %d", c->path, ti->name,
                       ti->ne[0], tr->name, tr->block_size);
    ti->nbytes = (size_t)(total / (uint64_t)tr->block_size) * tr->block_bytes;
    return 0;
}

int gguf_open(const char *path, gguf_file **out, lb_error *err)
{
    *out = NULL;
    gguf_file *f = lb_calloc(1, sizeof *f);
    f->path = lb_strdup(path);
    if (lb_map_file(path, &f->map, err)) {
        gguf_close(f);
        return -1;
    }
    cursor c = {f->map.data, 0, f->map.size, path, err};
    char magic[4];
    uint64_t n_tensors, n_kv;
    if (read_bytes(&c, magic, 4, "the magic"))
        goto fail;
    if (memcmp(magic, "GGUF", 4) != 0) {
        lb_fail(err, "%s: offset 0: not a GGUF file (magic is not \"GGUF\")", path);
        goto fail;
    }
    if (read_u32(&c, &f->version, "the version"))
        goto fail;
    if (f->version < 2 || f->version > 3) {
        lb_fail(err, "%s: offset 4: GGUF version %u (lowbit reads versions 2 and 3)", path,
                f->version);
        goto fail;
    }
    if (read_u64(&c, &n_tensors, "the tensor count") || read_u64(&c, &n_kv, "the metadata count"))
        goto fail;
    /* A key/value takes at least 12 bytes and a tensor info at least 28. */
    if (n_kv > c.size / 12 || n_tensors > c.size / 28) {
        lb_fail(err, "%s: offset 8: header claims %" PRIu64 " tensors and %" PRIu64
                " metadata entries, more than a %" PRIu64 "-byte file can hold", path, n_tensors,
                n_kv, c.size);
        goto fail;
    }
    f->kv = lb_calloc((size_t)n_kv + 1, sizeof(gguf_kv));
    for (uint64_t i = 0; i < n_kv; i++) {
        gguf_kv *kv = &f->kv[i];
        gguf_str key;
        uint32_t t;
        if (read_str(&c, &key, "a metadata key"))
            goto fail;
        if (key.len == 0 || key.len > MAX_KEY_LEN) {
            lb_fail(err, "%s: offset %" PRIu64 ": metadata key of %" PRIu64 " bytes", path,
                    c.pos, key.len);
            goto fail;
        }
        kv->key = lb_strndup(key.s, key.len);
        f->n_kv = (int64_t)i + 1;
        if (read_u32(&c, &t, "a metadata type"))
            goto fail;
        kv->type = (gguf_type)t;
        if (read_value(&c, kv, (gguf_type)t, 0))
            goto fail;
    }
    f->alignment = 32;
    const gguf_kv *al = gguf_find(f, "general.alignment");
    if (al) {
        if (al->type != GGUF_UINT32 || al->v.u == 0 || (al->v.u & (al->v.u - 1))) {
            lb_fail(err, "%s: general.alignment must be a power-of-two uint32", path);
            goto fail;
        }
        f->alignment = (uint32_t)al->v.u;
    }
    f->tensors = lb_calloc((size_t)n_tensors + 1, sizeof(gguf_tensor_info));
    for (uint64_t i = 0; i < n_tensors; i++) {
        if (read_tensor_info(&c, &f->tensors[i], (int64_t)i))
            goto fail;
        f->n_tensors = (int64_t)i + 1;
    }
    f->data_offset = (c.pos + f->alignment - 1) / f->alignment * f->alignment;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor_info *ti = &f->tensors[i];
        if (ti->offset % f->alignment) {
            lb_fail(err, "%s: tensor '%s': data offset %" PRIu64 " is not aligned to %u", path,
                    ti->name, ti->offset, f->alignment);
            goto fail;
        }
        if (f->data_offset > c.size || ti->offset > c.size - f->data_offset ||
            ti->nbytes > c.size - f->data_offset - ti->offset) {
            lb_fail(err, "%s: tensor '%s': data at offset %" PRIu64 " + %zu bytes runs past the "
                    "end of the file (%" PRIu64 " bytes)", path, ti->name,
                    f->data_offset + ti->offset, ti->nbytes, c.size);
            goto fail;
        }
        for (int64_t j = 0; j < i; j++)
            if (strcmp(f->tensors[j].name, ti->name) == 0) {
                lb_fail(err, "%s: tensor '%s' appears twice", path, ti->name);
                goto fail;
            }
    }
    *out = f;
    return 0;
fail:
    gguf_close(f);
    return -1;
}

void gguf_close(gguf_file *f)
{
    if (!f)
        return;
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].arr_strs);
    }
    /* The entry being read when an error struck may hold a key or strings too. */
    if (f->kv) {
        free(f->kv[f->n_kv].key);
        free(f->kv[f->n_kv].arr_strs);
    }
    free(f->kv);
    free(f->tensors);
    lb_unmap(&f->map);
    free(f->path);
    free(f);
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    for (int64_t i = 0; i < f->n_kv; i++)
        if (strcmp(f->kv[i].key, key) == 0)
            return &f->kv[i];
    return NULL;
}

static int missing(const gguf_file *f, const char *key, const char *want, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return lb_fail(err, "%s: metadata key '%s' is missing (expected %s)", f->path, key, want);
    return lb_fail(err, "%s: metadata key '%s' is %s (expected %s)", f->path, key,
                   gguf_type_name(kv->type), want);
}

static bool is_unsigned(gguf_type t)
{
    return t == GGUF_UINT8 || t == GGUF_UINT16 || t == GGUF_UINT32 || t == GGUF_UINT64;
}

static bool is_signed(gguf_type t)
{
    return t == GGUF_INT8 || t == GGUF_INT16 || t == GGUF_INT32 || t == GGUF_INT64;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && is_unsigned(kv->type) && kv->v.u <= INT64_MAX) {
        *out = (int64_t)kv->v.u;
        return 0;
    }
    if (kv && is_signed(kv->type)) {
        *out = kv->v.i;
        return 0;
    }
    return missing(f, key, "an integer", err);
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64)) {
        *out = kv->v.f;
        return 0;
    }
    int64_t i;
    if (kv && (is_signed(kv->type) || is_unsigned(kv->type)) && gguf_get_int(f, key, &i, err) == 0) {
        *out = (double)i;
        return 0;
    }
    return missing(f, key, "a number", err);
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && kv->type == GGUF_BOOL) {
        *out = kv->v.u != 0;
        return 0;
    }
    return missing(f, key, "a bool", err);
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && kv->type == GGUF_STRING) {
        *out = kv->v.str;
        return 0;
    }
    return missing(f, key, "a string", err);
}

double gguf_arr_float(const gguf_kv *kv, uint64_t i)
{
    gguf_kv tmp = {0};
    set_scalar(&tmp, kv->arr_type, (const uint8_t *)kv->arr_data + i * scalar_size[kv->arr_type]);
    if (kv->arr_type == GGUF_FLOAT32 || kv->arr_type == GGUF_FLOAT64)
        return tmp.v.f;
    return is_signed(kv->arr_type) ? (double)tmp.v.i : (double)tmp.v.u;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i)
{
    gguf_kv tmp = {0};
    set_scalar(&tmp, kv->arr_type, (const uint8_t *)kv->arr_data + i * scalar_size[kv->arr_type]);
    if (kv->arr_type == GGUF_FLOAT32 || kv->arr_type == GGUF_FLOAT64)
        return (int64_t)tmp.v.f;
    return is_signed(kv->arr_type) ? tmp.v.i : (int64_t)tmp.v.u;
}

const void *gguf_tensor_data(const gguf_file *f, const gguf_tensor_info *t)
{
    return (const uint8_t *)f->map.data + f->data_offset + t->offset;
}
