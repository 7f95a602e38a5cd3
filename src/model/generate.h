/* Text generation on one sequence slot of an engine: encode the prompt, prefill it, then
 * sample token by token, streaming each piece to a callback, until EOS, a stop string, the
 * token limit or the end of the context. */
#ifndef LB_GENERATE_H
#define LB_GENERATE_H

#include "model/engine.h"
#include "core/vec.h"
#include "model/sampler.h"

typedef struct {
    int max_new_tokens;
    lb_sampling sampling;
    const char *const *stop;   /* stop strings (not included in the output) */
    int n_stop;
    bool add_special;          /* BOS as the tokenizer says (default true) */
} lb_gen_params;

lb_gen_params lb_gen_defaults(void);

/* Receives text as it is produced; returning nonzero stops generation. */
typedef int (*lb_piece_fn)(const char *text, size_t len, void *user);

typedef enum { LB_STOP_EOS, LB_STOP_LENGTH, LB_STOP_STRING, LB_STOP_CONTEXT, LB_STOP_CALLER } lb_stop_reason;

typedef struct {
    int n_prompt;
    int n_generated;
    double prefill_ms, decode_ms, total_ms;
    char *text;                /* the completion, malloc'd */
    lb_stop_reason stop_reason;
} lb_gen_result;

const char *lb_stop_reason_name(lb_stop_reason r);

/* The text of one generation as it grows, with stop strings: each decoded piece is pushed, and
 * the push says which new bytes may be streamed (a possible start of a stop string is held
 * back until it is known not to be one). Shared by lb_generate and the server's scheduler. */
typedef struct {
    lb_buf text;               /* everything generated so far (cut at a stop string) */
    size_t emitted;            /* bytes of text already released for streaming */
    const char *const *stop;
    int n_stop;
} lb_textstream;

void lb_textstream_init(lb_textstream *ts, const char *const *stop, int n_stop);
/* Appends a piece; from and len give the text that may be streamed now (len may be 0). Returns
 * true when a stop string completed: text is cut before it and nothing more should follow. */
bool lb_textstream_push(lb_textstream *ts, const char *piece, size_t n, size_t *from, size_t *len);
/* At the end without a stop string: the held-back tail that may now be streamed. */
void lb_textstream_flush(lb_textstream *ts, size_t *from, size_t *len);
void lb_textstream_free(lb_textstream *ts);

/* True for tokens that end a generation: EOS and other control tokens except BOS. */
bool lb_token_ends_text(const lb_tokenizer *tok, int id);

int lb_generate(lb_engine *e, int seq, const char *prompt, const lb_gen_params *params,
                lb_piece_fn on_piece, void *user, lb_gen_result *result, lb_error *err);
void lb_gen_result_free(lb_gen_result *r);

#endif
