/* GGUF v3 writer: metadata of every value type, a tensor table, and the tensor data streamed
 * in after the header, so a model larger than memory can be written one row block at a time.
 *
 * Use: gguf_writer_create, then any number of gguf_writer_set_* and gguf_writer_add_tensor
 * (tensor offsets are computed from the shapes, so the header can be written before any data),
 * then gguf_writer_open(path), gguf_writer_write(...) with the tensors' bytes in the order they
 * were added (padding between tensors is inserted by the writer), and gguf_writer_finish.
 * The file is written under a temporary name and renamed into place by gguf_writer_finish; any
 * failure, or gguf_writer_free before finishing, removes the temporary file, so a failed write
 * never leaves a half-written file under the final name.
 *
 * The metadata setters cannot fail on good use. Misuse (an empty key, a key set after the
 * header was written, an unknown element type) is remembered, and gguf_writer_open reports
 * the first one. Setting a key twice replaces its value and keeps its first position. */
#ifndef LB_GGUF_WRITE_H
#define LB_GGUF_WRITE_H

#include "core/error.h"
#include "io/gguf.h"
#include "tensor/tensor.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_create(void);
/* Frees the writer; an unfinished file is aborted and its temporary file removed. */
void gguf_writer_free(gguf_writer *w);

void gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t v);
void gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t v);
void gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t v);
void gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t v);
void gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
void gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
void gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
void gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t v);
void gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
void gguf_writer_set_f64(gguf_writer *w, const char *key, double v);
void gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
void gguf_writer_set_str(gguf_writer *w, const char *key, const char *s);
void gguf_writer_set_strn(gguf_writer *w, const char *key, const char *s, size_t len);
/* Array of n scalars of elem_type (any type but STRING and ARRAY), given as their
 * little-endian bytes, e.g. a float[] for GGUF_FLOAT32 or a uint8_t[] of 0/1 for GGUF_BOOL. */
void gguf_writer_set_arr(gguf_writer *w, const char *key, gguf_type elem_type, const void *data,
                         uint64_t n);
/* Array of n strings; lens may be NULL for NUL-terminated strings. */
void gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                             const size_t *lens, uint64_t n);
/* Copies a key/value read by gguf_open (nested arrays, which the reader skips, are refused). */
void gguf_writer_copy_kv(gguf_writer *w, const gguf_kv *kv);
int64_t gguf_writer_n_kv(const gguf_writer *w);

/* Declares the next tensor: ne[0] is the innermost dimension and must be a multiple of the
 * type's block size. Fails on a bad name, a duplicate, an unsupported type or shape, or after
 * gguf_writer_open. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, lb_type type, int n_dims,
                           const int64_t *ne, lb_error *err);
int64_t gguf_writer_n_tensors(const gguf_writer *w);

/* Creates the temporary file and writes the header and the tensor table. */
int gguf_writer_open(gguf_writer *w, const char *path, lb_error *err);
/* Appends n bytes of tensor data: tensors in the order they were added, each exactly its size;
 * a write may span tensors. Refuses more bytes than the tensors hold. */
int gguf_writer_write(gguf_writer *w, const void *data, size_t n, lb_error *err);
/* Checks that every tensor's data was written, then flushes, syncs and renames into place. */
int gguf_writer_finish(gguf_writer *w, lb_error *err);

/* After gguf_writer_open: the size the finished file will have, and the bytes written so far
 * (both counting the header and padding). */
uint64_t gguf_writer_file_size(const gguf_writer *w);
uint64_t gguf_writer_bytes_written(const gguf_writer *w);

#endif
