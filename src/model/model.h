/* The in-memory model every loader produces and every engine consumes: a config, named typed
 * tensors (usually pointing into memory-mapped files), per-layer weight handles, and the
 * tokenizer. Loaders live in io/; model_load.c picks one by looking at the path. */
#ifndef LB_MODEL_H
#define LB_MODEL_H

#include "core/error.h"
#include "core/file.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>

typedef enum {
    LB_ARCH_LLAMA,   /* Llama 1/2/3, TinyLlama, SmolLM, Mistral, Qwen2 (with q/k/v bias) */
    LB_ARCH_GPT2,    /* gpt2, distilgpt2 */
} lb_arch;

/* How RoPE pairs the dimensions of a head. GGUF Llama and llama2.c pair neighbours (2i, 2i+1);
 * Hugging Face checkpoints, NeoX and Qwen2 pair i with i + head_dim/2. */
typedef enum {
    LB_ROPE_NONE,
    LB_ROPE_ADJACENT,
    LB_ROPE_HALF,
} lb_rope_style;

typedef struct {
    lb_arch arch;
    char arch_name[32];      /* as the file names it: "llama", "qwen2", "gpt2" */
    char name[128];          /* model name from metadata, else the file's base name */
    int dim;                 /* embedding width */
    int n_layers;
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int hidden_dim;          /* feed-forward width */
    int vocab_size;
    int max_ctx;             /* trained context length */
    float norm_eps;
    float rope_theta;
    lb_rope_style rope_style;
    /* Llama 3.1 frequency scaling; rope_scaling_factor == 0 means none. */
    float rope_scaling_factor;
    float rope_low_freq_factor;
    float rope_high_freq_factor;
    int rope_orig_ctx;
} lb_config;

typedef struct {
    lb_tensor *attn_norm, *attn_norm_b;  /* _b: LayerNorm bias (GPT-2) */
    lb_tensor *wq, *wk, *wv, *wo;
    lb_tensor *bq, *bk, *bv, *bo;        /* optional biases */
    lb_tensor *ffn_norm, *ffn_norm_b;
    lb_tensor *w_gate, *w_up, *w_down;   /* GPT-2 has no gate */
    lb_tensor *b_up, *b_down;
} lb_layer;

/* How a model was quantized, as a whole: the quantizer fills it, lb_model_save writes it as
 * "lowbit.quant.*" metadata, the GGUF loader reads it back, `lowbit info` shows it. Each
 * quantized tensor's own bits, group size, zero points and act-order index live in its
 * lb_qlayout (tensor.h); these are the run's settings. method[0] == 0: not quantized. */
typedef struct {
    char method[32];     /* "rtn", "gptq", "awq", "smoothquant", … */
    int bits;            /* 2, 3, 4, 8 */
    int group_size;      /* 0: per output channel */
    bool sym;
    bool act_order;      /* GPTQ: columns in order of decreasing Hessian diagonal */
    bool w8a8;           /* activations int8 per token at run time */
    float alpha;         /* SmoothQuant migration strength / AWQ grid exponent; 0 when unused */
    float damp;          /* GPTQ dampening (fraction of the mean diagonal); 0 when unused */
    int calib_samples, calib_seqlen;   /* 0 when uncalibrated (RTN) */
    char calib_file[256];              /* base name of the calibration file, "" when none */
} lb_quant_info;

typedef struct lb_model {
    lb_config cfg;
    char path[1024];
    char format[16];         /* "gguf", "safetensors", "llama2c" */
    lb_tensor *tok_embd;     /* [vocab][dim] */
    lb_tensor *pos_embd;     /* GPT-2 learned positions [max_ctx][dim] */
    lb_tensor *out_norm, *out_norm_b;
    lb_tensor *output;       /* [vocab][dim]; equals tok_embd when tied */
    lb_layer *layers;
    lb_tensor *tensors;      /* every tensor, owned array */
    int n_tensors;
    lb_tokenizer *tok;
    /* Backing storage, released by lb_model_free. */
    lb_mapping *maps;
    int n_maps;
    void **buffers;          /* heap blocks tensors point into */
    int n_buffers;
    lb_quant_info quant;     /* zeroed unless quantized */
    /* The source file's parsed GGUF header (a gguf_file *), kept so lb_model_save can copy
     * its metadata; freed with src_meta_free. NULL for other formats. */
    void *src_meta;
    void (*src_meta_free)(void *);
} lb_model;

typedef struct {
    const char *tokenizer_path;   /* llama2.c: tokenizer.bin (else tokenizer.bin beside model) */
} lb_load_options;

/* Loads a GGUF file, a Hugging Face directory (config.json + safetensors) or a llama2.c .bin,
 * chosen by the path. opts may be NULL. */
int lb_model_load(const char *path, const lb_load_options *opts, lb_model **out, lb_error *err);
void lb_model_free(lb_model *m);

/* Row r of t as fp32, as lb_tensor_get_row; but a row whose bytes are still those of the
 * mapped file (an embedding table of its own) is read from the file, not through the mapping:
 * the rows a long run looks up, a page or more each, would otherwise stay resident. */
void lb_model_get_row(const lb_model *m, const lb_tensor *t, int64_t r, float *dst);

/* Helpers for loaders. */
lb_model *lb_model_new(const char *path, const char *format);
lb_tensor *lb_model_find(const lb_model *m, const char *name);
/* Keeps a heap block alive for the model's lifetime. */
void lb_model_own(lb_model *m, void *buffer);
/* Keeps a mapping alive for the model's lifetime (the struct is copied). */
void lb_model_own_map(lb_model *m, const lb_mapping *map);
/* Appends a tensor; returns its index (pointers into m->tensors move until loading ends). */
int lb_model_add_tensor(lb_model *m, const lb_tensor *t);
/* After all tensors are added: fills the per-layer handles from the canonical GGUF names
 * (token_embd.weight, blk.N.attn_q.weight, …), checks every shape against the config, and
 * ties the output head when there is none. Errors name the tensor and the shapes. */
int lb_model_bind(lb_model *m, lb_error *err);

/* Packs the GGUF Q8_0 / Q4_0 linear weights into the matmul kernels' layout (tensor/repack.h)
 * and hands the file pages they came from back to the kernel; lb_model_load calls it. */
void lb_model_repack(lb_model *m);

/* Replaces a tensor's contents with fp32 values (same element count, copied into a buffer the
 * model owns): quantizers use it to fold smoothing factors into norms, or to write back
 * fake-quantized weights. Handles bound in m->layers keep pointing at the tensor. */
int lb_model_set_f32(lb_model *m, const char *name, const float *values, lb_error *err);

/* Writes the model as a GGUF v3 file lowbit loads back with identical logits: the source's
 * metadata (config and tokenizer; for a model not loaded from GGUF, written from m->cfg and a
 * SentencePiece-style m->tok, with a Hugging Face Llama's q/k rows re-paired for GGUF's RoPE),
 * "lowbit.quant.*" from m->quant, every tensor in its current type. Group-quantized tensors
 * are stored as lowbit's own types (ids 100..104) with their
 * scales, zero points and act-order index beside them (see gguf_model.c). Written under a
 * temporary name and renamed: a failure leaves nothing at path. */
int lb_model_save(const lb_model *m, const char *path, lb_error *err);

/* Whether a file written from the model holds this tensor: views are not (their owner is),
 * nor is GPT-2's fused attn_qkv.weight once q, k and v have all become tensors of their own. */
bool lb_model_tensor_stored(const lb_model *m, const lb_tensor *t);
/* Whether any tensor is in one of lowbit's group-quantized formats. */
bool lb_model_is_quantized(const lb_model *m);

/* Total bytes of tensor data and parameter count (views counted once, in their owner). */
size_t lb_model_bytes(const lb_model *m);
int64_t lb_model_params(const lb_model *m);

#endif
