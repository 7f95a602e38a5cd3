/* Perplexity of a model over a token stream, in the two conventions people compare against:
 *
 *  LB_PPL_LLAMACPP — as llama.cpp's llama-perplexity: the tokens (BOS first, as the tokenizer
 *    adds it) are cut into n = len / ctx non-overlapping chunks of ctx tokens; each chunk's first
 *    token is replaced by BOS; only the second half of a chunk is scored (the tokens at
 *    positions ctx/2 + 1 .. ctx - 1, predicted from all before them), ctx - 1 - ctx/2 per
 *    chunk. It needs at least 2 * ctx tokens, as llama.cpp does.
 *  LB_PPL_HF — as the GPTQ/AWQ papers and the Hugging Face "perplexity of fixed-length
 *    models" guide: the tokens as tokenized once, windows of ctx tokens; without a stride the
 *    windows do not overlap, the last partial one is dropped, and every token after a window's
 *    first is scored; with a stride S < ctx the windows start every S tokens (the last one ends
 *    at the end of the text) and each scores only the tokens the previous window did not.
 *
 * Both report exp(mean negative log-likelihood) over the scored tokens and its standard error
 * by the delta method, ppl * sqrt(var(nll) / (n - 1)), as llama.cpp prints it.
 * Several chunks run side by side as separate sequences of one batched forward pass; under
 * mpirun the passes are shared out among the processes (core/dist.h) and the figures equal the
 * single-process ones exactly. */
#ifndef LB_PERPLEXITY_H
#define LB_PERPLEXITY_H

#include "core/error.h"
#include "model/engine.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum { LB_PPL_LLAMACPP, LB_PPL_HF } lb_ppl_mode;

typedef struct {
    lb_ppl_mode mode;
    int ctx;          /* tokens per chunk/window; must be <= the engine's context */
    int stride;       /* hf mode only; 0 or ctx: non-overlapping windows */
    int max_chunks;   /* 0: all */
    int batch;        /* chunks per forward pass; 0: as many as the engine has sequences */
    bool progress;    /* progress bar on stderr */
    /* Called after each chunk with the running estimate (llama.cpp prints these as
     * [1]x,[2]y,...); may be NULL. */
    void (*on_chunk)(void *user, int chunk, double ppl_so_far);
    void *user;
} lb_ppl_options;

typedef struct {
    double ppl;
    double ppl_stderr;
    double nll_mean;      /* mean negative log-likelihood (nats) */
    int64_t n_scored;     /* tokens scored */
    int64_t n_tokens;     /* tokens evaluated (forward-passed), BOS included */
    int n_chunks;
    double seconds;
    double tokens_per_s;  /* n_tokens / seconds */
} lb_ppl_result;

lb_ppl_options lb_ppl_defaults(void);   /* llamacpp, ctx 512, everything else 0/false */

/* Checks ctx/stride/mode against each other and the engine; a one-line error names the option. */
int lb_ppl_check(const lb_engine *e, const lb_ppl_options *o, lb_error *err);

/* "llamacpp" or "hf" into *out; -1 for any other name. */
int lb_ppl_mode_parse(const char *name, lb_ppl_mode *out);

/* Fails, naming the first token and its id, when a token is outside 0 .. n_vocab - 1. */
int lb_ppl_check_tokens(const int *tokens, int64_t n_tokens, int n_vocab, lb_error *err);

/* The plan both perplexity and KL divergence follow: one window per chunk. A window feeds
 * tokens[start .. start+len) at positions 0 .. len-1 (the first replaced by bos when bos >= 0)
 * and scores the tokens at positions first .. len-1, each predicted from the row before it. */
typedef struct {
    int64_t start;
    int len;
    int first;   /* >= 1 */
} lb_ppl_window;

/* Plans the windows for n_tokens under o (max_chunks applied). *out is malloc'd. Fails when
 * the text is too short for one chunk, naming how many tokens the mode needs. */
int lb_ppl_plan(int64_t n_tokens, const lb_ppl_options *o, lb_ppl_window **out, int *n_out,
                lb_error *err);

/* Runs windows w[0..n) side by side (sequence i in slot i; n <= the engine's slots) and writes
 * the logits rows that predict the scored tokens, window by window, len - first rows each. */
int lb_ppl_forward(lb_engine *e, const int *tokens, const lb_ppl_window *w, int n, int bos,
                   float *logits, lb_error *err);

/* Where each window's scored tokens start in an array of all of them, window by window:
 * n + 1 entries, the last the total. malloc'd. */
int64_t *lb_ppl_scored_offsets(const lb_ppl_window *w, int n);

/* Tokens fed over windows w[0..n), in *total, and over those of the passes of per_pass
 * windows that this process runs under mpirun (lb_dist_mine of the pass), in *mine. */
void lb_ppl_count_tokens(const lb_ppl_window *w, int n, int per_pass, uint64_t *mine,
                         uint64_t *total);

/* -log softmax(row)[target] in the manner of llama.cpp (max-shifted, sum in double). */
double lb_nll_row(const float *row, int n_vocab, int target);

/* The BOS id each chunk starts with in llamacpp mode (-1 when the model adds none). */
int lb_ppl_bos(const lb_engine *e, const lb_ppl_options *o);

/* Scores tokens (as the tokenizer returned them for the whole text, BOS included when the
 * model adds one). Fails on options that do not fit, or text too short for one chunk (the
 * message says how many tokens were needed). */
int lb_perplexity(lb_engine *e, const int *tokens, int64_t n_tokens, const lb_ppl_options *opts,
                  lb_ppl_result *out, lb_error *err);

/* Tokenizes text with the model's tokenizer (BOS added when the tokenizer adds one) and runs
 * lb_perplexity. */
int lb_perplexity_text(lb_engine *e, const char *text, size_t len, const lb_ppl_options *opts,
                       lb_ppl_result *out, lb_error *err);

#endif
