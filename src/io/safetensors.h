/* Reader for the safetensors format (Hugging Face): an 8-byte little-endian header length, a
 * JSON header mapping each tensor name to {dtype, shape, data_offsets} (plus an optional
 * "__metadata__" object of strings), then the raw tensor bytes. The file is memory-mapped and
 * every offset and size is checked against it when the header is parsed, so tensor data
 * pointers handed out later are always inside the map. */
#ifndef LB_SAFETENSORS_H
#define LB_SAFETENSORS_H

#include "core/error.h"
#include "core/file.h"
#include "core/strmap.h"

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8
/* Headers are small (a few hundred bytes a tensor); a larger claim means a corrupt file. */
#define SAFETENSORS_MAX_HEADER (100u << 20)

typedef struct {
    char *name;
    char dtype[16];                       /* as the file spells it: "F32", "BF16", … */
    int dtype_size;                       /* bytes per element */
    int n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];  /* outermost first, as in the file (row-major) */
    int64_t n_elements;
    const void *data;                     /* inside the file's map */
    size_t nbytes;
    uint64_t file_offset;                 /* of the first byte, for messages */
} safetensors_tensor;

typedef struct {
    char *key, *value;
} safetensors_meta;

typedef struct {
    char *path;
    lb_mapping map;
    safetensors_tensor *tensors;          /* in order of their data */
    int n_tensors;
    safetensors_meta *meta;               /* "__metadata__" entries with string values */
    int n_meta;
    lb_strmap *index;                     /* name → position in tensors */
} safetensors_file;

/* Maps and validates path. On failure *out is NULL and err names the file and the problem. */
int safetensors_open(const char *path, safetensors_file **out, lb_error *err);
/* Unmaps (unless the map was handed over: set f->map to empty first) and frees. */
void safetensors_close(safetensors_file *f);

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);
/* Value of a "__metadata__" key, or NULL. */
const char *safetensors_meta_get(const safetensors_file *f, const char *key);
/* Bytes per element of a dtype name, 0 when unknown. */
int safetensors_dtype_size(const char *dtype);

#endif
