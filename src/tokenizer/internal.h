/* Shared between the tokenizer front (tokenizer.c) and the two algorithms. */
#ifndef LB_TOKENIZER_INTERNAL_H
#define LB_TOKENIZER_INTERNAL_H

#include "core/vec.h"
#include "tokenizer/tokenizer.h"

/* spm.c */
int spm_finalize(lb_tokenizer *t, lb_error *err);
void spm_encode(const lb_tokenizer *t, const char *text, size_t len, lb_ivec *out);
int spm_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap);

/* bpe.c */
int bpe_finalize(lb_tokenizer *t, lb_error *err);
void bpe_encode(const lb_tokenizer *t, const char *text, size_t len, lb_ivec *out);
int bpe_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap);
void bpe_release(lb_tokenizer *t);

/* Length of the UTF-8 sequence starting at s (1 for invalid bytes), never past n. */
size_t tok_utf8_len(const char *s, size_t n);

#endif
