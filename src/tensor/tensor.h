/* Tensors and the type-traits table.
 *
 * A tensor is a name, a type, a shape and a pointer to its data (usually inside a memory-mapped
 * file). Shapes follow GGUF/ggml order: ne[0] is the innermost, contiguous dimension, so a
 * linear layer's weight W[out][in] has ne[0] = in and ne[1] = out.
 *
 * Type ids are GGUF's, so a GGUF tensor's type maps directly. Each type has one row in the
 * traits table (tensor.c): block size, bytes per block, and its kernels. Adding a format means
 * adding a row and its kernels, nothing else. */
#ifndef LB_TENSOR_H
#define LB_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LB_TYPE_F32 = 0,
    LB_TYPE_F16 = 1,
    LB_TYPE_Q4_0 = 2,
    LB_TYPE_Q4_1 = 3,
    LB_TYPE_Q8_0 = 8,
    LB_TYPE_I8 = 24,     /* plain integers: lowbit's quantized files keep zero points and */
    LB_TYPE_I32 = 26,    /* act-order indexes in them */
    LB_TYPE_BF16 = 30,
    /* lowbit's own group-quantized formats (pack.h): ids well above ggml's (< 64), so a GGUF
     * written by lowbit can never be mistaken for a ggml type. A tensor of these types carries
     * an lb_qlayout describing its groups; rows are [scales][zeros][32-code blocks]. */
    LB_TYPE_LBQ2 = 100,
    LB_TYPE_LBQ3 = 101,
    LB_TYPE_LBQ4 = 102,
    LB_TYPE_LBQ8 = 103,
    LB_TYPE_LBW8A8 = 104,  /* int8 codes per output channel, activations int8 per token */
    LB_TYPE_COUNT = 128  /* table size; ids without a row are unsupported */
} lb_type;

/* Dot product of one weight row (n elements of the row's type) with an fp32 vector. */
typedef float (*lb_dot_fn)(const void *row, const float *x, int64_t n);
/* Expands n elements (a multiple of the block size) to fp32. */
typedef void (*lb_to_float_fn)(const void *src, float *dst, int64_t n);
/* Quantizes n fp32 values (a multiple of the block size) into the type's blocks. */
typedef void (*lb_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct {
    const char *name;
    int block_size;        /* elements per block */
    size_t block_bytes;    /* bytes per block */
    bool quantized;
    lb_to_float_fn to_float;
    lb_from_float_fn from_float;
    lb_dot_fn dot;         /* chosen at start-up: scalar, AVX2 … */
} lb_type_traits;

/* NULL when the id has no row (unknown or unsupported type). */
const lb_type_traits *lb_type_traits_of(int type);
const char *lb_type_name(int type);
/* Bytes of a row of n elements; 0 if n is not a multiple of the block size. */
size_t lb_row_bytes(lb_type type, int64_t n);

#define LB_MAX_DIMS 4
#define LB_MAX_NAME 128

/* Layout of a group-quantized weight W[rows][cols] (types LBQ2..LBW8A8), shared by all its rows
 * and by views of some of its rows. Codes sit in blocks of 32; every quantization group
 * occupies whole blocks (a short group's last block is padded with code 0 whose activation is
 * 0), so kernels only ever see full blocks. With an act-order g_idx, columns are gathered into
 * their groups: src[] says which input column feeds each code slot. One row, row_bytes long:
 *   float scale[n_groups] | uint8 zero[n_groups] (only when has_zero; padded to 4) | codes.
 * A row computes  y = Σ_g scale_g · Σ_{c in g} (code_c − zero_g) · x_c  with x quantized to
 * int8 per block of 32 (per whole row for W8A8), see matmul.c. */
typedef struct lb_qlayout {
    int bits;              /* 2, 3, 4 or 8 */
    int rows, cols;        /* cols == the tensor's ne[0] */
    int group_size;        /* as quantized; 0 = one group per row */
    int n_groups;          /* per row */
    int n_blocks;          /* 32-code blocks per row */
    bool has_zero;         /* zero points stored; else every zero is 2^(bits-1) */
    bool w8a8;             /* activations quantized per token, not per block */
    size_t codes_offset;   /* bytes of scales and zeros at the start of a row */
    size_t row_bytes;
    int32_t *block_group;  /* [n_blocks] group of each block (groups run in order) */
    int32_t *src;          /* [n_blocks * 32] input column of each code slot; -1: padding */
    int32_t *g_idx;        /* [cols] as quantized (act-order), or NULL */
} lb_qlayout;

/* GGUF Q8_0 / Q4_0 weights interleaved for the kernels, made at load (repack.h). */
typedef struct lb_packed lb_packed;

typedef struct {
    char name[LB_MAX_NAME];
    lb_type type;
    int n_dims;
    int64_t ne[LB_MAX_DIMS];   /* unused dimensions are 1 */
    void *data;
    size_t nbytes;
    bool view;    /* shares a larger tensor's storage (GPT-2's fused qkv); counted there */
    const lb_qlayout *qlayout; /* group-quantized types only; NULL otherwise */
    const lb_packed *packed;   /* Q8_0 / Q4_0 matmul weights of a loaded model; read it through
                                  lb_tensor_packed, which ignores a stale copy */
} lb_tensor;

/* Bytes of one row (ne[0] elements) of this tensor, layouts included. */
size_t lb_tensor_row_bytes(const lb_tensor *t);
/* Expands one row of a group-quantized tensor to fp32 (cols values). */
void lb_qlayout_dequant_row(const lb_qlayout *l, const void *row, float *dst);

int64_t lb_tensor_nelements(const lb_tensor *t);
/* Reads element-row r (a row of ne[0] values) as fp32 into dst. */
void lb_tensor_get_row(const lb_tensor *t, int64_t r, float *dst);

/* fp16 / bf16 conversion (portable; exact round-to-nearest-even). */
float lb_fp16_to_fp32(uint16_t h);
uint16_t lb_fp32_to_fp16(float f);
float lb_bf16_to_fp32(uint16_t h);
uint16_t lb_fp32_to_bf16(float f);

/* Picks the fastest kernels this CPU supports; called once at start-up (idempotent).
 * LOWBIT_KERNELS=scalar|avx2|avx512 in the environment forces a level (never one the CPU
 * lacks: a level it cannot run falls back to the best it can). */
void lb_kernels_init(void);
/* "avx512", "avx2" or "scalar": the kernels in use. */
const char *lb_kernels_name(void);

/* Plain fp32 dot product through the dispatched kernel. */
float lb_dot_f32(const float *a, const float *b, int64_t n);
/* Rows of fp16 to fp32 and back through the installed kernel level (F16C where present): the
 * values of lb_fp16_to_fp32 / lb_fp32_to_fp16, NaN payloads aside. */
void lb_fp16_row_to_fp32(const uint16_t *src, float *dst, int64_t n);
/* Attention over cached keys and values (rows of n elements, ld apart) at the installed
 * kernel level: y[r] = row_r · x for r < nrows, and y[j] += Σ_r w[r] · row_r[j] with the rows
 * added in order (see lb_kernel_set). */
void lb_rows_dot_f32(const float *rows, size_t ld, int nrows, const float *x, int64_t n,
                     float *y);
void lb_rows_dot_f16(const uint16_t *rows, size_t ld, int nrows, const float *x, int64_t n,
                     float *y);
void lb_rows_axpy_f32(const float *w, const float *rows, size_t ld, int nrows, int64_t n,
                      float *y);
void lb_rows_axpy_f16(const float *w, const uint16_t *rows, size_t ld, int nrows, int64_t n,
                      float *y);
/* The same for int8 rows with a float scale each (a Q8 KV cache). */
void lb_rows_dot_q8(const int8_t *rows, const float *scale, size_t ld, int nrows,
                    const float *x, int64_t n, float *y);
void lb_rows_axpy_q8(const float *w, const int8_t *rows, const float *scale, size_t ld, int nrows,
                     int64_t n, float *y);
void lb_fp32_row_to_fp16(const float *src, uint16_t *dst, int64_t n);
/* Softmax's exponentials in place, x[i] = e^(x[i] − sub), returning their sum; and SwiGLU's
 * gate[i] = silu(gate[i]) · up[i]. One exp recipe at every kernel level (lb_kernel_set). */
float lb_exp_sum(float *x, int64_t n, float sub);
void lb_silu_mul(float *gate, const float *up, int64_t n);

#endif
