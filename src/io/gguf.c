/* GGUF reader. Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the
 * metadata key/values, the tensor infos (name, dims, shape, type, offset), padding to the
 * alignment, then the data. Every read goes through a cursor that refuses to pass the end;
 * counts and lengths are checked against the bytes left before anything is allocated, and
 * tables grow with what is actually read, never with what the header claims. */
#include "io/gguf.h"
#include "core/strmap.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits on sizes a file claims. Real models have a few dozen keys and a few thousand
 * tensors; the limits only keep hash-table indices and lengths inside int. */
#define MAX_KEY_LEN 65536
#define MAX_ENTRIES (1 << 24)
#define MAX_DEPTH 2
#define MAX_DIM (1ULL << 40)
#define MAX_ELEMENTS (1ULL << 50)

typedef struct {
    const uint8_t *p;
    uint64_t pos, size;
    const char *path;
    lb_error *err;
} cursor;

const char *gguf_printable(const char *s, size_t len, char *buf, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 8) {   /* too small for one escape and the "..." */
        if (cap)
            buf[0] = '\0';
        return buf;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        /* Room for the longest form (\xNN) and "..." + NUL. */
        if (o + 4 + 4 > cap) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (ch < 0x20 || ch == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hex[ch >> 4];
            buf[o++] = hex[ch & 15];
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o] = '\0';
    return buf;
}

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
    if (read_u64(c, &len, what))
        return -1;
    if (len > c->size - c->pos)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": %s claims a string of %" PRIu64
                       " bytes, but only %" PRIu64 " are left in the file", c->path,
                       c->pos - 8, what, len, c->size - c->pos);
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

/* ggml's tensor type ids, so an error can say which format a file uses even when lowbit does
 * not read it. Ids without a name were retired from ggml. */
static const char *ggml_type_name(uint32_t t)
{
    static const char *names[] = {
        "F32", "F16", "Q4_0", "Q4_1", NULL, NULL, "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
        "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K", "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",
        "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
        "BF16", NULL, NULL, NULL, "TQ1_0", "TQ2_0", NULL, NULL, NULL, "MXFP4"};
    return t < sizeof names / sizeof names[0] ? names[t] : NULL;
}

/* "F32, F16, ..." from the traits table, so the message follows the formats lowbit has. */
static void supported_types(char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = '\0';
    for (int t = 0; t < LB_TYPE_COUNT && o < cap; t++) {
        const lb_type_traits *tr = lb_type_traits_of(t);
        if (tr)
            o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", tr->name);
    }
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
    char key[96], what[160];
    gguf_printable(kv->key, strlen(kv->key), key, sizeof key);
    snprintf(what, sizeof what, "the value of '%s'", key);
    if ((unsigned)t >= GGUF_TYPE_COUNT)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": key '%s' has unknown value type %u "
                       "(expected 0 to %d)", c->path, c->pos - 4, key, (unsigned)t,
                       GGUF_TYPE_COUNT - 1);
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
    uint64_t at = c->pos;
    if (read_u32(c, &et, what) || read_u64(c, &n, what))
        return -1;
    if (et >= GGUF_TYPE_COUNT)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": key '%s': array element type %u is not "
                       "a GGUF type (expected 0 to %d)", c->path, at, key, et,
                       GGUF_TYPE_COUNT - 1);
    if (et == GGUF_ARRAY && depth >= MAX_DEPTH)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": key '%s': arrays nested more than %d "
                       "deep", c->path, at, key, MAX_DEPTH);
    kv->arr_type = (gguf_type)et;
    kv->arr_n = n;
    /* The smallest an element can take: a string its 8-byte length, an array its 12-byte
     * header. Checking the count against the bytes left bounds every loop and allocation. */
    uint64_t min_elem = et == GGUF_STRING ? 8 : et == GGUF_ARRAY ? 12 : scalar_size[et];
    if (n > (c->size - c->pos) / min_elem)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": key '%s': array of %" PRIu64 " %s "
                       "elements does not fit in the %" PRIu64 " bytes left in the file",
                       c->path, at + 4, key, n, gguf_type_name((gguf_type)et), c->size - c->pos);
    if (et == GGUF_STRING) {
        if (n > (uint64_t)MAX_ENTRIES * 16)
            return lb_fail(c->err, "%s: key '%s': array of %" PRIu64 " strings (lowbit reads at "
                           "most %d)", c->path, key, n, MAX_ENTRIES * 16);
        kv->arr_strs = lb_malloc((size_t)(n ? n : 1) * sizeof(gguf_str));
        for (uint64_t i = 0; i < n; i++)
            if (read_str(c, &kv->arr_strs[i], what))
                return -1;
    } else if (et == GGUF_ARRAY) {
        /* Nested arrays carry no meaning for models; walk over them. */
        for (uint64_t i = 0; i < n; i++) {
            gguf_kv inner = {.key = kv->key};
            int rc = read_value(c, &inner, GGUF_ARRAY, depth + 1);
            free(inner.arr_strs);
            if (rc)
                return -1;
        }
    } else {
        kv->arr_data = c->p + c->pos;
        c->pos += n * scalar_size[et];
    }
    return 0;
}

static int read_tensor_info(cursor *c, gguf_tensor_info *ti, int64_t index)
{
    char what[64], name_p[96];
    uint64_t start = c->pos;
    snprintf(what, sizeof what, "tensor info #%" PRId64, index);
    gguf_str name;
    if (read_str(c, &name, what))
        return -1;
    if (name.len == 0 || name.len >= LB_MAX_NAME)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor #%" PRId64 ": name of %" PRIu64
                       " bytes (expected 1 to %d)", c->path, start, index, name.len,
                       LB_MAX_NAME - 1);
    if (memchr(name.s, '\0', name.len))
        return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor #%" PRId64 ": name contains a NUL "
                       "byte", c->path, start, index);
    memcpy(ti->name, name.s, name.len);
    ti->name[name.len] = '\0';
    gguf_printable(ti->name, name.len, name_p, sizeof name_p);
    uint32_t n_dims, type;
    if (read_u32(c, &n_dims, what))
        return -1;
    if (n_dims == 0 || n_dims > LB_MAX_DIMS)
        return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor '%s': %u dimensions (expected 1 "
                       "to %d)", c->path, c->pos - 4, name_p, n_dims, LB_MAX_DIMS);
    ti->n_dims = (int)n_dims;
    uint64_t total = 1;
    for (int d = 0; d < LB_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if ((uint32_t)d < n_dims && read_u64(c, &ne, what))
            return -1;
        if (ne == 0 || ne > MAX_DIM)
            return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor '%s': dimension %d is %" PRIu64
                           " (expected 1 to 2^40)", c->path, c->pos - 8, name_p, d, ne);
        if (total > MAX_ELEMENTS / ne)
            return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor '%s': dimensions 0..%d "
                           "multiply to more than 2^50 elements", c->path, c->pos - 8, name_p,
                           d);
        total *= ne;
        ti->ne[d] = (int64_t)ne;
    }
    if (read_u32(c, &type, what))
        return -1;
    const lb_type_traits *tr = lb_type_traits_of((int)type);
    if (!tr) {
        char have[160];
        supported_types(have, sizeof have);
        const char *gname = ggml_type_name(type);
        if (gname)
            return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor '%s': type %u (%s) is not "
                           "supported (lowbit reads %s)", c->path, c->pos - 4, name_p, type,
                           gname, have);
        return lb_fail(c->err, "%s: offset %" PRIu64 ": tensor '%s': type %u is not a GGML "
                       "tensor type (lowbit reads %s)", c->path, c->pos - 4, name_p, type, have);
    }
    ti->type = (int)type;
    if (ti->ne[0] % tr->block_size)
        return lb_fail(c->err, "%s: tensor '%s': row of %" PRId64
                       " elements is not a multiple of the %s block size %d", c->path, name_p,
                       ti->ne[0], tr->name, tr->block_size);
    if (read_u64(c, &ti->offset, what))
        return -1;
    ti->nbytes = (size_t)(total / (uint64_t)tr->block_size) * tr->block_bytes;
    return 0;
}

/* The data of each tensor must lie inside the file, on the file's alignment, and where its
 * element type can be loaded directly from the map (F32 on 4 bytes, fp16 scales on 2). */
static int check_tensor_data(const gguf_file *f, const gguf_tensor_info *ti, lb_error *err)
{
    char name_p[96];
    gguf_printable(ti->name, strlen(ti->name), name_p, sizeof name_p);
    uint64_t size = f->map.size;
    if (ti->offset % f->alignment)
        return lb_fail(err, "%s: tensor '%s': data offset %" PRIu64 " is not a multiple of the "
                       "alignment %u", f->path, name_p, ti->offset, f->alignment);
    if (f->data_offset > size || ti->offset > size - f->data_offset ||
        ti->nbytes > size - f->data_offset - ti->offset)
        return lb_fail(err, "%s: tensor '%s': %zu bytes at data offset %" PRIu64 " (data starts "
                       "at file offset %" PRIu64 ") run past the end of the %" PRIu64
                       "-byte file", f->path, name_p, ti->nbytes, ti->offset, f->data_offset,
                       size);
    uint64_t at = f->data_offset + ti->offset;
    unsigned need_align = ti->type == LB_TYPE_F32 ? 4 : 2;
    if (at % need_align)
        return lb_fail(err, "%s: tensor '%s': %s data at file offset %" PRIu64 " is not on a "
                       "%u-byte boundary (general.alignment %u)", f->path, name_p,
                       lb_type_name(ti->type), at, need_align, f->alignment);
    return 0;
}

static int read_alignment(gguf_file *f, lb_error *err)
{
    f->alignment = 32;
    const gguf_kv *al = gguf_find(f, "general.alignment");
    if (!al)
        return 0;
    if (al->type != GGUF_UINT32)
        return lb_fail(err, "%s: metadata key 'general.alignment' is %s (expected uint32)",
                       f->path, gguf_type_name(al->type));
    if (al->v.u == 0 || (al->v.u & (al->v.u - 1)))
        return lb_fail(err, "%s: metadata key 'general.alignment' is %" PRIu64 " (expected a "
                       "power of two)", f->path, al->v.u);
    f->alignment = (uint32_t)al->v.u;
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
    /* A key/value takes at least 13 bytes and a tensor info at least 29. */
    if (n_kv > c.size / 13 || n_tensors > c.size / 29) {
        lb_fail(err, "%s: offset 8: header claims %" PRIu64 " tensors and %" PRIu64
                " metadata entries, more than a %" PRIu64 "-byte file can hold", path, n_tensors,
                n_kv, c.size);
        goto fail;
    }
    if (n_kv > MAX_ENTRIES || n_tensors > MAX_ENTRIES) {
        lb_fail(err, "%s: offset 8: header claims %" PRIu64 " tensors and %" PRIu64
                " metadata entries (lowbit reads at most %d of each)", path, n_tensors, n_kv,
                MAX_ENTRIES);
        goto fail;
    }
    /* Tables grow as entries are read: a short file claiming many entries fails early
     * without first allocating for all of them. One zeroed spare entry is always kept so
     * gguf_close can free the entry that was being read when an error struck. */
    int64_t cap = 0;
    f->kv_index = lb_strmap_create(16);
    for (uint64_t i = 0; i < n_kv; i++) {
        if ((int64_t)i + 1 >= cap) {
            int64_t ncap = cap ? cap * 2 : 32;
            f->kv = lb_realloc(f->kv, (size_t)ncap * sizeof(gguf_kv));
            memset(f->kv + cap, 0, (size_t)(ncap - cap) * sizeof(gguf_kv));
            cap = ncap;
        }
        gguf_kv *kv = &f->kv[i];
        gguf_str key;
        uint32_t t;
        uint64_t at = c.pos;
        if (read_str(&c, &key, "a metadata key"))
            goto fail;
        char key_p[96];
        gguf_printable(key.s, key.len, key_p, sizeof key_p);
        if (key.len == 0 || key.len > MAX_KEY_LEN || memchr(key.s, '\0', key.len)) {
            lb_fail(err, "%s: offset %" PRIu64 ": metadata key #%" PRIu64 " '%s' of %" PRIu64
                    " bytes (expected 1 to %d bytes without NUL)", path, at, i, key_p, key.len,
                    MAX_KEY_LEN);
            goto fail;
        }
        int prev;
        if (lb_strmap_get(f->kv_index, key.s, key.len, &prev)) {
            lb_fail(err, "%s: offset %" PRIu64 ": metadata key '%s' appears twice (entries #%d "
                    "and #%" PRIu64 ")", path, at, key_p, prev, i);
            goto fail;
        }
        kv->key = lb_strndup(key.s, key.len);
        lb_strmap_put(f->kv_index, key.s, key.len, (int)i);
        f->n_kv = (int64_t)i + 1;
        if (read_u32(&c, &t, "a metadata type"))
            goto fail;
        kv->type = (gguf_type)t;
        if (read_value(&c, kv, (gguf_type)t, 0))
            goto fail;
    }
    if (!f->kv)
        f->kv = lb_calloc(1, sizeof(gguf_kv));
    if (read_alignment(f, err))
        goto fail;
    cap = 0;
    lb_strmap *names = lb_strmap_create(16);
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((int64_t)i >= cap) {
            cap = cap ? cap * 2 : 64;
            f->tensors = lb_realloc(f->tensors, (size_t)cap * sizeof(gguf_tensor_info));
        }
        gguf_tensor_info *ti = &f->tensors[i];
        memset(ti, 0, sizeof *ti);
        uint64_t at = c.pos;
        int prev;
        if (read_tensor_info(&c, ti, (int64_t)i)) {
            lb_strmap_free(names);
            goto fail;
        }
        if (lb_strmap_get(names, ti->name, strlen(ti->name), &prev)) {
            char name_p[96];
            lb_fail(err, "%s: offset %" PRIu64 ": tensor '%s' appears twice (tensors #%d and #%"
                    PRIu64 ")", path, at, gguf_printable(ti->name, strlen(ti->name), name_p,
                                                         sizeof name_p), prev, i);
            lb_strmap_free(names);
            goto fail;
        }
        lb_strmap_put(names, ti->name, strlen(ti->name), (int)i);
        f->n_tensors = (int64_t)i + 1;
    }
    lb_strmap_free(names);
    f->data_offset = (c.pos + f->alignment - 1) / f->alignment * f->alignment;
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (check_tensor_data(f, &f->tensors[i], err))
            goto fail;
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
    /* The entry being read when an error struck (index n_kv) may hold a key or strings too;
     * the table always has that spare, zeroed entry. */
    for (int64_t i = 0; f->kv && i <= f->n_kv; i++) {
        free(f->kv[i].key);
        free(f->kv[i].arr_strs);
    }
    free(f->kv);
    free(f->tensors);
    lb_strmap_free(f->kv_index);
    lb_unmap(&f->map);
    free(f->path);
    free(f);
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key)
{
    int i;
    if (f->kv_index && lb_strmap_get(f->kv_index, key, strlen(key), &i) && i < f->n_kv)
        return &f->kv[i];
    return NULL;
}

const char *gguf_kv_kind(const gguf_kv *kv, char *buf, size_t cap)
{
    if (kv->type == GGUF_ARRAY)
        snprintf(buf, cap, "an array of %s", gguf_type_name(kv->arr_type));
    else
        snprintf(buf, cap, "%s", gguf_type_name(kv->type));
    return buf;
}

static int mismatch(const gguf_file *f, const char *key, const char *want, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    char key_p[96], have[64];
    gguf_printable(key, strlen(key), key_p, sizeof key_p);
    if (!kv)
        return lb_fail(err, "%s: metadata key '%s' is missing (expected %s)", f->path, key_p, want);
    if (kv->type == GGUF_UINT64 && kv->v.u > INT64_MAX)
        return lb_fail(err, "%s: metadata key '%s' is uint64 %" PRIu64 " (expected %s up to "
                       "2^63-1)", f->path, key_p, kv->v.u, want);
    return lb_fail(err, "%s: metadata key '%s' is %s (expected %s)", f->path, key_p,
                   gguf_kv_kind(kv, have, sizeof have), want);
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
    return mismatch(f, key, "an integer", err);
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && (kv->type == GGUF_FLOAT32 || kv->type == GGUF_FLOAT64)) {
        *out = kv->v.f;
        return 0;
    }
    if (kv && is_signed(kv->type)) {
        *out = (double)kv->v.i;
        return 0;
    }
    if (kv && is_unsigned(kv->type)) {
        *out = (double)kv->v.u;
        return 0;
    }
    return mismatch(f, key, "a number", err);
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && kv->type == GGUF_BOOL) {
        *out = kv->v.u != 0;
        return 0;
    }
    return mismatch(f, key, "a bool", err);
}

int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, lb_error *err)
{
    const gguf_kv *kv = gguf_find(f, key);
    if (kv && kv->type == GGUF_STRING) {
        *out = kv->v.str;
        return 0;
    }
    return mismatch(f, key, "a string", err);
}

/* Element i decoded into a scratch kv; false when kv is not a numeric array or i is past its
 * end. */
static bool arr_elem(const gguf_kv *kv, uint64_t i, gguf_kv *tmp)
{
    if (kv->type != GGUF_ARRAY || !kv->arr_data || i >= kv->arr_n ||
        (unsigned)kv->arr_type >= GGUF_TYPE_COUNT || !scalar_size[kv->arr_type])
        return false;
    set_scalar(tmp, kv->arr_type, (const uint8_t *)kv->arr_data + i * scalar_size[kv->arr_type]);
    return true;
}

double gguf_arr_float(const gguf_kv *kv, uint64_t i)
{
    gguf_kv tmp = {0};
    if (!arr_elem(kv, i, &tmp))
        return 0.0;
    if (kv->arr_type == GGUF_FLOAT32 || kv->arr_type == GGUF_FLOAT64)
        return tmp.v.f;
    return is_signed(kv->arr_type) ? (double)tmp.v.i : (double)tmp.v.u;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i)
{
    gguf_kv tmp = {0};
    if (!arr_elem(kv, i, &tmp))
        return 0;
    if (kv->arr_type == GGUF_FLOAT32 || kv->arr_type == GGUF_FLOAT64) {
        /* Saturate: a float outside int64 would be undefined to convert. */
        double d = tmp.v.f;
        if (!(d == d))
            return 0;
        if (d >= 9223372036854775807.0)
            return INT64_MAX;
        if (d <= -9223372036854775808.0)
            return INT64_MIN;
        return (int64_t)d;
    }
    if (is_signed(kv->arr_type))
        return tmp.v.i;
    return tmp.v.u > INT64_MAX ? INT64_MAX : (int64_t)tmp.v.u;
}

const void *gguf_tensor_data(const gguf_file *f, const gguf_tensor_info *t)
{
    return (const uint8_t *)f->map.data + f->data_offset + t->offset;
}
