/* Placeholder until bpe.c lands. */
#include "tokenizer/internal.h"

__attribute__((weak)) int bpe_finalize(lb_tokenizer *t, lb_error *err)
{
    (void)t;
    return lb_fail(err, "byte-level BPE tokenizers are not supported yet");
}
__attribute__((weak)) void bpe_encode(const lb_tokenizer *t, const char *text, size_t len, lb_ivec *out) {}
__attribute__((weak)) int bpe_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap) { return 0; }
__attribute__((weak)) void bpe_release(lb_tokenizer *t) {}
