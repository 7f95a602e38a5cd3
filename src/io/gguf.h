/* GGUF v2/v3 reader (llama.cpp's file format): metadata of every value type and the tensor
 * table, read from a memory map with every length and offset checked against the file.
 * Every malformed file is refused with one line naming the file, the offset, key or tensor,
 * and what was expected. */
#ifndef LB_GGUF_H
#define LB_GGUF_H

#include "core/error.h"
#include "core/file.h"
#include "core/strmap.h"
#include "tensor/tensor.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum {
    GGUF_UINT8 = 0, GGUF_INT8 = 1, GGUF_UINT16 = 2, GGUF_INT16 = 3, GGUF_UINT32 = 4,
    GGUF_INT32 = 5, GGUF_FLOAT32 = 6, GGUF_BOOL = 7, GGUF_STRING = 8, GGUF_ARRAY = 9,
    GGUF_UINT64 = 10, GGUF_INT64 = 11, GGUF_FLOAT64 = 12, GGUF_TYPE_COUNT
} gguf_type;

typedef struct {
    const char *s;   /* points into the file; not NUL-terminated */
    uint64_t len;
} gguf_str;

typedef struct {
    char *key;
    gguf_type type;
    union {
        uint64_t u;      /* unsigned integers and bool */
        int64_t i;       /* signed integers */
        double f;        /* floats */
        gguf_str str;
    } v;
    /* arrays */
    gguf_type arr_type;
    uint64_t arr_n;
    const void *arr_data;    /* raw little-endian elements for scalar element types */
    gguf_str *arr_strs;      /* string arrays: one entry per element (owned) */
} gguf_kv;

typedef struct {
    char name[LB_MAX_NAME];
    int n_dims;
    int64_t ne[LB_MAX_DIMS];
    int type;
    uint64_t offset;         /* relative to the data section */
    size_t nbytes;
} gguf_tensor_info;

typedef struct {
    char *path;
    lb_mapping map;
    uint32_t version;
    gguf_kv *kv;
    int64_t n_kv;
    gguf_tensor_info *tensors;
    int64_t n_tensors;
    uint32_t alignment;
    uint64_t data_offset;    /* start of the tensor data in the file */
    lb_strmap *kv_index;     /* key -> index into kv */
} gguf_file;

int gguf_open(const char *path, gguf_file **out, lb_error *err);
void gguf_close(gguf_file *f);

const gguf_kv *gguf_find(const gguf_file *f, const char *key);
/* Typed getters: 0 when found and convertible, -1 (with a message naming the key) otherwise.
 * Integer getters accept any integer type whose value fits. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, lb_error *err);
int gguf_get_float(const gguf_file *f, const char *key, double *out, lb_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, lb_error *err);
int gguf_get_str(const gguf_file *f, const char *key, gguf_str *out, lb_error *err);
/* Scalar element i of a numeric array as double / int64; 0 when kv is not a numeric array or
 * i is past its end. */
double gguf_arr_float(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i);

const char *gguf_type_name(gguf_type t);
/* Copies len bytes of s into buf (cap bytes) for an error message: control bytes become \xNN
 * so a message stays on one line, and a long text is cut with "...". Returns buf. */
const char *gguf_printable(const char *s, size_t len, char *buf, size_t cap);
/* A value's type for messages: "uint32", "string", "an array of int32". Returns buf. */
const char *gguf_kv_kind(const gguf_kv *kv, char *buf, size_t cap);
/* Pointer to a tensor's data inside the map. */
const void *gguf_tensor_data(const gguf_file *f, const gguf_tensor_info *t);

#endif
