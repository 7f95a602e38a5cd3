/* safetensors reader: maps the file, parses the JSON header with jansson, and checks every
 * entry (dtype known, shape non-negative without overflow, offsets inside the data section and
 * consistent with shape × dtype size, no two tensors sharing bytes) before anything points
 * into the data. */
#include "io/safetensors.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    int size;
} DTYPES[] = {
    {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
    {"I8", 1}, {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1},
    {"F8_E5M2", 1},
};

int safetensors_dtype_size(const char *dtype)
{
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (strcmp(DTYPES[i].name, dtype) == 0)
            return DTYPES[i].size;
    return 0;
}

void safetensors_close(safetensors_file *f)
{
    if (!f)
        return;
    lb_unmap(&f->map);
    for (int i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta[i].key);
        free(f->meta[i].value);
    }
    free(f->meta);
    lb_strmap_free(f->index);
    free(f->path);
    free(f);
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    int i;
    if (!f->index || !lb_strmap_get(f->index, name, strlen(name), &i))
        return NULL;
    return &f->tensors[i];
}

const char *safetensors_meta_get(const safetensors_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}

static int read_metadata(safetensors_file *f, json_t *meta, lb_error *err)
{
    if (!json_is_object(meta))
        return lb_fail(err, "%s: __metadata__ must be an object of strings", f->path);
    const char *key;
    json_t *v;
    f->meta = lb_calloc(json_object_size(meta) + 1, sizeof *f->meta);
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return lb_fail(err, "%s: __metadata__[\"%.64s\"] must be a string", f->path, key);
        f->meta[f->n_meta].key = lb_strdup(key);
        f->meta[f->n_meta].value = lb_strndup(json_string_value(v), json_string_length(v));
        f->n_meta++;
    }
    return 0;
}

/* Parses one header entry; begin/end are relative to the start of the data section. */
static int read_entry(safetensors_file *f, const char *name, json_t *e, uint64_t data_size,
                      safetensors_tensor *t, uint64_t *begin, uint64_t *end, lb_error *err)
{
    if (!json_is_object(e))
        return lb_fail(err, "%s: tensor '%.200s': header entry must be an object with dtype, "
                       "shape and data_offsets", f->path, name);
    json_t *dtype = json_object_get(e, "dtype"), *shape = json_object_get(e, "shape");
    json_t *offsets = json_object_get(e, "data_offsets");
    if (!json_is_string(dtype))
        return lb_fail(err, "%s: tensor '%.200s': dtype must be a string", f->path, name);
    t->dtype_size = safetensors_dtype_size(json_string_value(dtype));
    if (!t->dtype_size)
        return lb_fail(err, "%s: tensor '%.200s' has unknown dtype '%.32s'", f->path, name,
                       json_string_value(dtype));
    snprintf(t->dtype, sizeof t->dtype, "%s", json_string_value(dtype));

    if (!json_is_array(shape) || json_array_size(shape) > SAFETENSORS_MAX_DIMS)
        return lb_fail(err, "%s: tensor '%.200s': shape must be an array of at most %d sizes",
                       f->path, name, SAFETENSORS_MAX_DIMS);
    t->n_dims = (int)json_array_size(shape);
    /* Elements are bounded by the bytes there are, which keeps every product below overflow. */
    uint64_t limit = data_size / (uint64_t)t->dtype_size, n = 1;
    bool empty = false;
    for (int d = 0; d < t->n_dims; d++) {
        json_t *s = json_array_get(shape, (size_t)d);
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            return lb_fail(err, "%s: tensor '%.200s': shape[%d] must be a non-negative integer",
                           f->path, name, d);
        uint64_t v = (uint64_t)json_integer_value(s);
        t->shape[d] = (int64_t)v;
        if (v == 0)
            empty = true;
        else if (!empty && n > limit / v)
            return lb_fail(err, "%s: tensor '%.200s': shape needs more bytes than the file's "
                           "%" PRIu64 " bytes of data", f->path, name, data_size);
        else if (!empty)
            n *= v;
    }
    if (empty)
        n = 0;
    t->n_elements = (int64_t)n;

    json_t *b = json_array_get(offsets, 0), *en = json_array_get(offsets, 1);
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 || !json_is_integer(b) ||
        !json_is_integer(en) || json_integer_value(b) < 0 || json_integer_value(en) < 0)
        return lb_fail(err, "%s: tensor '%.200s': data_offsets must be two non-negative "
                       "integers [begin, end]", f->path, name);
    *begin = (uint64_t)json_integer_value(b);
    *end = (uint64_t)json_integer_value(en);
    if (*begin > *end)
        return lb_fail(err, "%s: tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64 "] end "
                       "before they begin", f->path, name, *begin, *end);
    if (*end > data_size)
        return lb_fail(err, "%s: tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64 "] run "
                       "past the end of the data (%" PRIu64 " bytes; is the file truncated?)",
                       f->path, name, *begin, *end, data_size);
    uint64_t want = n * (uint64_t)t->dtype_size;
    if (*end - *begin != want) {
        char shape_s[160];
        size_t used = 0;
        for (int d = 0; d < t->n_dims && used < sizeof shape_s; d++)
            used += (size_t)snprintf(shape_s + used, sizeof shape_s - used, "%s%" PRId64,
                                     d ? ", " : "", t->shape[d]);
        if (t->n_dims == 0)
            shape_s[0] = '\0';
        return lb_fail(err, "%s: tensor '%.200s': data_offsets [%" PRIu64 ", %" PRIu64 "] hold "
                       "%" PRIu64 " bytes, but %s [%s] needs %" PRIu64, f->path, name, *begin,
                       *end, *end - *begin, t->dtype, shape_s, want);
    }
    return 0;
}

typedef struct {
    uint64_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int parse_header(safetensors_file *f, const char *text, size_t len, uint64_t data_off,
                        lb_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return lb_fail(err, "%s: header line %d, column %d: %s", f->path, jerr.line, jerr.column,
                       jerr.text);
    int rc = -1;
    span *spans = NULL;
    if (!json_is_object(root)) {
        lb_fail(err, "%s: the header must be a JSON object", f->path);
        goto done;
    }
    uint64_t data_size = f->map.size - data_off;
    size_t cap = json_object_size(root);
    f->tensors = lb_calloc(cap + 1, sizeof *f->tensors);
    spans = lb_calloc(cap + 1, sizeof *spans);
    safetensors_tensor *tmp = lb_calloc(cap + 1, sizeof *tmp);
    const char *name;
    json_t *e;
    int n = 0;
    json_object_foreach(root, name, e) {
        if (strcmp(name, "__metadata__") == 0) {
            if (read_metadata(f, e, err))
                goto fail_tmp;
            continue;
        }
        safetensors_tensor *t = &tmp[n];
        if (read_entry(f, name, e, data_size, t, &spans[n].begin, &spans[n].end, err))
            goto fail_tmp;
        t->name = lb_strdup(name);
        t->nbytes = (size_t)(spans[n].end - spans[n].begin);
        t->file_offset = data_off + spans[n].begin;
        t->data = (const char *)f->map.data + t->file_offset;
        spans[n].idx = n;
        n++;
    }
    /* Tensors may list in any order; in data order, each must start where the last ended
     * or later, or two would share bytes. */
    qsort(spans, (size_t)n, sizeof *spans, span_cmp);
    uint64_t last_end = 0;
    int last = -1;
    for (int i = 0; i < n; i++) {
        if (spans[i].begin == spans[i].end)
            continue;
        if (last >= 0 && spans[i].begin < last_end) {
            lb_fail(err, "%s: tensors '%.200s' and '%.200s' overlap (data_offsets [%" PRIu64
                    ", %" PRIu64 "] and [%" PRIu64 ", %" PRIu64 "])", f->path,
                    tmp[spans[last].idx].name, tmp[spans[i].idx].name, spans[last].begin,
                    last_end, spans[i].begin, spans[i].end);
            goto fail_tmp;
        }
        last_end = spans[i].end;
        last = i;
    }
    f->index = lb_strmap_create((size_t)n + 1);
    for (int i = 0; i < n; i++) {
        f->tensors[i] = tmp[spans[i].idx];
        lb_strmap_put(f->index, f->tensors[i].name, strlen(f->tensors[i].name), i);
    }
    f->n_tensors = n;
    free(tmp);
    rc = 0;
    goto done;
fail_tmp:
    for (int i = 0; i < n; i++)
        free(tmp[i].name);
    free(tmp);
done:
    free(spans);
    json_decref(root);
    return rc;
}

int safetensors_open(const char *path, safetensors_file **out, lb_error *err)
{
    *out = NULL;
    safetensors_file *f = lb_calloc(1, sizeof *f);
    f->path = lb_strdup(path);
    if (lb_map_file(path, &f->map, err))
        goto fail;
    if (f->map.size < 8) {
        lb_fail(err, "%s: file is %zu bytes; a safetensors file starts with an 8-byte header "
                "length", path, f->map.size);
        goto fail;
    }
    const unsigned char *p = f->map.data;
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--)
        header_len = header_len << 8 | p[i];
    if (header_len > SAFETENSORS_MAX_HEADER) {
        lb_fail(err, "%s: offset 0: header length %" PRIu64 " is more than the %u bytes allowed",
                path, header_len, SAFETENSORS_MAX_HEADER);
        goto fail;
    }
    if (header_len > f->map.size - 8) {
        lb_fail(err, "%s: offset 0: header length %" PRIu64 " runs past the end of the file "
                "(%zu bytes)", path, header_len, f->map.size);
        goto fail;
    }
    if (parse_header(f, (const char *)p + 8, (size_t)header_len, 8 + header_len, err))
        goto fail;
    *out = f;
    return 0;
fail:
    safetensors_close(f);
    return -1;
}
