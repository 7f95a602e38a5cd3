/* Synthetic models: random weights in the exact shapes of real models, with a real
 * vocabulary, written as a complete GGUF that lowbit and llama.cpp load. They stand in for
 * models that cannot be downloaded here, so speed and memory can be measured at real sizes.
 *
 * Weights are normal with a small standard deviation (norm weights are 1), so activations stay
 * finite and generation runs; the text is of course meaningless. Generation streams row block
 * by row block, so memory stays a few MiB whatever the model's size, and the same seed gives
 * the same file bit for bit, whatever the thread count. */
#ifndef LB_SYNTH_H
#define LB_SYNTH_H

#include "core/error.h"
#include "tensor/tensor.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *name;       /* "stories15M" */
    const char *arch;       /* "llama" */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, max_ctx;
    int vocab_size;         /* of the real model; the file takes the tokenizer's */
    float rope_theta, norm_eps;
    bool tied;              /* output head shares token_embd (no output.weight) */
} lb_synth_preset;

/* NULL when there is no such preset. */
const lb_synth_preset *lb_synth_preset_find(const char *name);
/* The preset names, comma-separated, for help and error messages. */
const char *lb_synth_preset_names(void);

/* Called with the fraction of the file written, from 0 to 1. */
typedef void (*lb_synth_progress_fn)(double done, void *user);

typedef struct {
    const lb_synth_preset *preset;
    const lb_tokenizer *tok;   /* SentencePiece-style vocabulary written into the file */
    lb_type type;              /* of the matrices; norms stay F32 */
    uint64_t seed;
    float stddev;              /* of the matrix weights; <= 0 means 0.02 */
    int n_threads;             /* <= 0: every core */
    lb_synth_progress_fn progress;
    void *progress_user;
} lb_synth_params;

typedef struct {
    uint64_t file_bytes;
    int64_t n_params;
    int n_tensors;
} lb_synth_result;

/* llama.cpp's general.file_type for a model whose matrices are of type t (-1 if none). */
int lb_synth_file_type(lb_type t);

/* Writes the model to path atomically (temporary file, renamed when complete). */
int lb_synth_write(const lb_synth_params *p, const char *path, lb_synth_result *res,
                   lb_error *err);

#endif
