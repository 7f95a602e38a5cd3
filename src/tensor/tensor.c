/* The type-traits table, format conversions, and start-up kernel dispatch. */
#include "tensor/tensor.h"
#include "tensor/repack.h"
#include "tensor/kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <cpuid.h>
#include <string.h>

/* ---- fp16 / bf16 ---------------------------------------------------------------------- */

float lb_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {   /* subnormal: renormalize */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lb_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffff;
    if (absx >= 0x7f800000)   /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000 ? 0x200 : 0));
    if (absx >= 0x477ff000)   /* rounds to >= 65520: overflow to inf */
        return (uint16_t)(sign | 0x7c00);
    if (absx < 0x38800000) {  /* below the smallest normal half: subnormal or zero */
        float a;
        memcpy(&a, &absx, 4);
        /* Adding 0.5 shifts the value's bits so the FPU rounds at 2^-24 (nearest-even). */
        float r = a + 0.5f;
        uint32_t rb;
        memcpy(&rb, &r, 4);
        return (uint16_t)(sign | (rb - 0x3f000000));
    }
    uint32_t mant_odd = (absx >> 13) & 1;
    absx += 0xc8000fff + mant_odd;   /* rebias exponent (-112 << 23) and round to nearest even */
    return (uint16_t)(sign | (absx >> 13));
}

float lb_bf16_to_fp32(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t lb_fp32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((x >> 16) | 0x40);   /* keep NaN a NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- conversions per type ------------------------------------------------------------- */

static void f32_to_float(const void *src, float *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }
static void f32_from_float(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * 4); }

static void f16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = lb_fp16_to_fp32(s[i]);
}

static void f16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++)
        d[i] = lb_fp32_to_fp16(src[i]);
}

static void bf16_to_float(const void *src, float *dst, int64_t n)
{
    const uint16_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = lb_bf16_to_fp32(s[i]);
}

static void bf16_from_float(const float *src, void *dst, int64_t n)
{
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++)
        d[i] = lb_fp32_to_bf16(src[i]);
}

static void q8_0_to_float(const void *src, float *dst, int64_t n)
{
    const lb_block_q8_0 *b = src;
    for (int64_t i = 0; i < n / LB_QK; i++) {
        float d = lb_fp16_to_fp32(b[i].d);
        for (int j = 0; j < LB_QK; j++)
            dst[i * LB_QK + j] = d * (float)b[i].qs[j];
    }
}

static void q8_0_from_float(const float *src, void *dst, int64_t n)
{
    lb_block_q8_0 *b = dst;
    for (int64_t i = 0; i < n / LB_QK; i++) {
        const float *x = src + i * LB_QK;
        float amax = 0;
        for (int j = 0; j < LB_QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = lb_fp32_to_fp16(d);
        for (int j = 0; j < LB_QK; j++)
            b[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static void q4_0_to_float(const void *src, float *dst, int64_t n)
{
    const lb_block_q4_0 *b = src;
    for (int64_t i = 0; i < n / LB_QK; i++) {
        float d = lb_fp16_to_fp32(b[i].d);
        for (int j = 0; j < LB_QK / 2; j++) {
            dst[i * LB_QK + j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
            dst[i * LB_QK + j + LB_QK / 2] = d * (float)((b[i].qs[j] >> 4) - 8);
        }
    }
}

/* Q4_0 maps the value of largest magnitude to -8, so the scale is signed (as ggml does). */
static void q4_0_from_float(const float *src, void *dst, int64_t n)
{
    lb_block_q4_0 *b = dst;
    for (int64_t i = 0; i < n / LB_QK; i++) {
        const float *x = src + i * LB_QK;
        float amax = 0, max = 0;
        for (int j = 0; j < LB_QK; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = lb_fp32_to_fp16(d);
        for (int j = 0; j < LB_QK / 2; j++) {
            int lo = (int)fminf(15.0f, floorf(x[j] * id + 8.5f));
            int hi = (int)fminf(15.0f, floorf(x[j + LB_QK / 2] * id + 8.5f));
            b[i].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

static void q4_1_to_float(const void *src, float *dst, int64_t n)
{
    const lb_block_q4_1 *b = src;
    for (int64_t i = 0; i < n / LB_QK; i++) {
        float d = lb_fp16_to_fp32(b[i].d), m = lb_fp16_to_fp32(b[i].m);
        for (int j = 0; j < LB_QK / 2; j++) {
            dst[i * LB_QK + j] = d * (float)(b[i].qs[j] & 0x0f) + m;
            dst[i * LB_QK + j + LB_QK / 2] = d * (float)(b[i].qs[j] >> 4) + m;
        }
    }
}

static void q4_1_from_float(const float *src, void *dst, int64_t n)
{
    lb_block_q4_1 *b = dst;
    for (int64_t i = 0; i < n / LB_QK; i++) {
        const float *x = src + i * LB_QK;
        float lo = x[0], hi = x[0];
        for (int j = 1; j < LB_QK; j++) {
            lo = fminf(lo, x[j]);
            hi = fmaxf(hi, x[j]);
        }
        float d = (hi - lo) / 15.0f, id = d ? 1.0f / d : 0.0f;
        b[i].d = lb_fp32_to_fp16(d);
        b[i].m = lb_fp32_to_fp16(lo);
        for (int j = 0; j < LB_QK / 2; j++) {
            int q0 = (int)fminf(15.0f, floorf((x[j] - lo) * id + 0.5f));
            int q1 = (int)fminf(15.0f, floorf((x[j + LB_QK / 2] - lo) * id + 0.5f));
            b[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

static void i8_to_float(const void *src, float *dst, int64_t n)
{
    const int8_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)s[i];
}

static void i32_to_float(const void *src, float *dst, int64_t n)
{
    const int32_t *s = src;
    for (int64_t i = 0; i < n; i++)
        dst[i] = (float)s[i];
}

/* ---- the table ------------------------------------------------------------------------ */

/* lowbit's group formats have no per-type conversions: a row needs its tensor's lb_qlayout,
 * so they go through lb_tensor_get_row and lb_matmul. Their block is the 32-code block. */

static lb_type_traits g_traits[LB_TYPE_COUNT] = {
    [LB_TYPE_F32] = {"F32", 1, 4, false, f32_to_float, f32_from_float, NULL},
    [LB_TYPE_F16] = {"F16", 1, 2, false, f16_to_float, f16_from_float, NULL},
    [LB_TYPE_BF16] = {"BF16", 1, 2, false, bf16_to_float, bf16_from_float, NULL},
    [LB_TYPE_Q8_0] = {"Q8_0", LB_QK, sizeof(lb_block_q8_0), true, q8_0_to_float, q8_0_from_float, NULL},
    [LB_TYPE_Q4_0] = {"Q4_0", LB_QK, sizeof(lb_block_q4_0), true, q4_0_to_float, q4_0_from_float, NULL},
    [LB_TYPE_Q4_1] = {"Q4_1", LB_QK, sizeof(lb_block_q4_1), true, q4_1_to_float, q4_1_from_float, NULL},
    [LB_TYPE_I8] = {"I8", 1, 1, false, i8_to_float, NULL, NULL},
    [LB_TYPE_I32] = {"I32", 1, 4, false, i32_to_float, NULL, NULL},
    [LB_TYPE_LBQ2] = {"LBQ2", 32, 8, true, NULL, NULL, NULL},
    [LB_TYPE_LBQ3] = {"LBQ3", 32, 12, true, NULL, NULL, NULL},
    [LB_TYPE_LBQ4] = {"LBQ4", 32, 16, true, NULL, NULL, NULL},
    [LB_TYPE_LBQ8] = {"LBQ8", 32, 32, true, NULL, NULL, NULL},
    [LB_TYPE_LBW8A8] = {"LBW8A8", 32, 32, true, NULL, NULL, NULL},
};

static const lb_kernel_set *g_kernels;
/* The AVX-512 level borrows AVX2's other float kernels; composed once at start-up. */
static lb_kernel_set g_composed;

static void install(const lb_kernel_set *k)
{
    g_kernels = k;
    g_traits[LB_TYPE_F32].dot = k->dot_f32;
    g_traits[LB_TYPE_F16].dot = k->dot_f16;
    g_traits[LB_TYPE_BF16].dot = k->dot_bf16;
    g_traits[LB_TYPE_Q8_0].dot = k->dot_q8_0;
    g_traits[LB_TYPE_Q4_0].dot = k->dot_q4_0;
    g_traits[LB_TYPE_Q4_1].dot = k->dot_q4_1;
}

/* F16C by CPUID: clang's __builtin_cpu_supports has no name for it. */
static bool cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

const lb_kernel_set *lb_kernels_level(const char *name)
{
    __builtin_cpu_init();
    bool avx2 = lb_kernels_avx2 && __builtin_cpu_supports("avx2") &&
                __builtin_cpu_supports("fma") && cpu_has_f16c();
    bool avx512 = avx2 && lb_kernels_avx512 && __builtin_cpu_supports("avx512f") &&
                  __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                  __builtin_cpu_supports("avx512vnni");
    if (strcmp(name, "scalar") == 0)
        return &lb_kernels_scalar;
    if (strcmp(name, "avx2") == 0)
        return avx2 ? lb_kernels_avx2 : NULL;
    if (strcmp(name, "avx512") == 0) {
        if (!avx512)
            return NULL;
        if (!g_composed.name) {
            lb_kernel_set k = *lb_kernels_avx2;
            k.name = lb_kernels_avx512->name;
            k.gemm_f32 = lb_kernels_avx512->gemm_f32;
            memcpy(k.qdot_blocks, lb_kernels_avx512->qdot_blocks, sizeof k.qdot_blocks);
            memcpy(k.qdot_tile, lb_kernels_avx512->qdot_tile, sizeof k.qdot_tile);
            k.pdot_q8_0 = lb_kernels_avx512->pdot_q8_0;
            k.pdot_q4_0 = lb_kernels_avx512->pdot_q4_0;
            k.quantize_q8 = lb_kernels_avx512->quantize_q8;
            g_composed = k;
        }
        return &g_composed;
    }
    return NULL;
}

void lb_kernels_init(void)
{
    if (g_kernels)
        return;
    const char *force = getenv("LOWBIT_KERNELS");
    const char *order[] = {"avx512", "avx2", "scalar"};
    int first = 0;
    for (int i = 0; force && i < 3; i++)
        if (strcmp(force, order[i]) == 0)
            first = i;
    for (int i = first; i < 3; i++) {
        const lb_kernel_set *k = lb_kernels_level(order[i]);
        if (k) {
            install(k);
            return;
        }
    }
}

const lb_kernel_set *lb_kernels_current(void)
{
    lb_kernels_init();
    return g_kernels;
}

const char *lb_kernels_name(void)
{
    lb_kernels_init();
    return g_kernels->name;
}

const lb_type_traits *lb_type_traits_of(int type)
{
    if (type < 0 || type >= LB_TYPE_COUNT || !g_traits[type].name)
        return NULL;
    lb_kernels_init();
    return &g_traits[type];
}

const char *lb_type_name(int type)
{
    const lb_type_traits *tr = lb_type_traits_of(type);
    return tr ? tr->name : "unknown";
}

size_t lb_row_bytes(lb_type type, int64_t n)
{
    const lb_type_traits *tr = lb_type_traits_of(type);
    if (!tr || n < 0 || n % tr->block_size)
        return 0;
    return (size_t)(n / tr->block_size) * tr->block_bytes;
}

int64_t lb_tensor_nelements(const lb_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < LB_MAX_DIMS; i++)
        n *= t->ne[i];
    return n;
}

size_t lb_tensor_row_bytes(const lb_tensor *t)
{
    if (t->qlayout)
        return t->qlayout->row_bytes;
    return lb_row_bytes(t->type, t->ne[0]);
}

void lb_qlayout_dequant_row(const lb_qlayout *L, const void *row, float *dst)
{
    const float *scale = row;
    const uint8_t *zero = (const uint8_t *)row + (size_t)L->n_groups * sizeof(float);
    const uint8_t *codes = (const uint8_t *)row + L->codes_offset;
    int mid = 1 << (L->bits - 1);
    uint8_t c[32];
    for (int b = 0; b < L->n_blocks; b++) {
        lb_qunpack_block(codes + (size_t)b * (size_t)L->bits * 4, L->bits, c);
        int g = L->block_group[b];
        float z = (float)(L->has_zero ? zero[g] : mid);
        for (int j = 0; j < 32; j++) {
            int col = L->src[b * 32 + j];
            if (col >= 0)
                dst[col] = scale[g] * ((float)c[j] - z);
        }
    }
}

void lb_tensor_get_row(const lb_tensor *t, int64_t r, float *dst)
{
    const lb_packed *packed = lb_tensor_packed(t);
    if (packed) {
        lb_packed_get_row(packed, r, dst);
        return;
    }
    size_t rb = lb_tensor_row_bytes(t);
    const char *row = (const char *)t->data + (size_t)r * rb;
    if (t->qlayout) {
        lb_qlayout_dequant_row(t->qlayout, row, dst);
        return;
    }
    lb_type_traits_of(t->type)->to_float(row, dst, t->ne[0]);
}

float lb_dot_f32(const float *a, const float *b, int64_t n)
{
    lb_kernels_init();
    return g_kernels->dot_f32(a, b, n);
}

void lb_fp16_row_to_fp32(const uint16_t *src, float *dst, int64_t n)
{
    lb_kernels_init();
    g_kernels->f16_to_f32(src, dst, n);
}

void lb_rows_dot_f32(const float *rows, size_t ld, int nrows, const float *x, int64_t n,
                     float *y)
{
    lb_kernels_init();
    g_kernels->gemm_f32(rows, ld, nrows, x, (size_t)n, 1, n, y, 1);
}

void lb_rows_dot_f16(const uint16_t *rows, size_t ld, int nrows, const float *x, int64_t n,
                     float *y)
{
    lb_kernels_init();
    g_kernels->rows_dot_f16(rows, ld, nrows, x, n, y);
}

void lb_rows_axpy_f32(const float *w, const float *rows, size_t ld, int nrows, int64_t n,
                      float *y)
{
    lb_kernels_init();
    g_kernels->rows_axpy_f32(w, rows, ld, nrows, n, y);
}

void lb_rows_axpy_f16(const float *w, const uint16_t *rows, size_t ld, int nrows, int64_t n,
                      float *y)
{
    lb_kernels_init();
    g_kernels->rows_axpy_f16(w, rows, ld, nrows, n, y);
}

void lb_rows_dot_q8(const int8_t *rows, const float *scale, size_t ld, int nrows,
                    const float *x, int64_t n, float *y)
{
    lb_kernels_init();
    g_kernels->rows_dot_q8(rows, scale, ld, nrows, x, n, y);
}

void lb_rows_axpy_q8(const float *w, const int8_t *rows, const float *scale, size_t ld, int nrows,
                     int64_t n, float *y)
{
    lb_kernels_init();
    g_kernels->rows_axpy_q8(w, rows, scale, ld, nrows, n, y);
}

void lb_fp32_row_to_fp16(const float *src, uint16_t *dst, int64_t n)
{
    lb_kernels_init();
    g_kernels->f32_to_f16(src, dst, n);
}

float lb_exp_sum(float *x, int64_t n, float sub)
{
    lb_kernels_init();
    return g_kernels->exp_sum(x, n, sub);
}

void lb_silu_mul(float *gate, const float *up, int64_t n)
{
    lb_kernels_init();
    g_kernels->silu_mul(gate, up, n);
}
