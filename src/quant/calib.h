/* Calibration data for the quantizers: a text or jsonl ({"text": ...} per line) file,
 * tokenized whole, from which n windows of seqlen tokens are drawn at random positions with a
 * seeded generator, so that the same seed always picks the same windows. Each window starts
 * with BOS (when the tokenizer has one) followed by seqlen - 1 tokens of running text. */
#ifndef LB_CALIB_H
#define LB_CALIB_H

#include "core/error.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

/* The default calibration text, relative to the working directory (the project root). */
#define LB_CALIB_DEFAULT_PATH "../shared/datasets/wikitext2/train_subset.txt"

typedef struct {
    int n_samples;
    int seqlen;
    int *tokens;        /* [n_samples][seqlen] */
    int64_t n_source;   /* tokens in the whole file */
} lb_calib;

/* Reads path (jsonl when its name ends in .jsonl), tokenizes it and draws the windows.
 * Fails, naming the file, when it is missing, empty, malformed, or too short for one window. */
int lb_calib_load(const char *path, const lb_tokenizer *tok, int n_samples, int seqlen,
                  uint64_t seed, lb_calib *out, lb_error *err);
void lb_calib_free(lb_calib *c);

#endif
