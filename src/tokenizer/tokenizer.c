/* Tokenizer front: building the vocabulary, and dispatch to SPM or byte-level BPE. */
#include "tokenizer/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lb_tokenizer *tok_create(lb_tok_kind kind, int n_vocab)
{
    lb_tokenizer *t = lb_calloc(1, sizeof *t);
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->pieces = lb_calloc((size_t)n_vocab, sizeof(char *));
    t->piece_len = lb_calloc((size_t)n_vocab, sizeof(int));
    t->scores = lb_calloc((size_t)n_vocab, sizeof(float));
    t->types = lb_calloc((size_t)n_vocab, sizeof(int));
    t->bos_id = t->eos_id = t->unk_id = t->pad_id = -1;
    t->add_bos = kind == LB_TOK_SPM;
    t->add_space_prefix = kind == LB_TOK_SPM;
    t->byte_fallback = kind == LB_TOK_SPM;
    for (int i = 0; i < 256; i++)
        t->byte_ids[i] = -1;
    return t;
}

void tok_free(lb_tokenizer *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_vocab; i++)
        free(t->pieces[i]);
    free(t->pieces);
    free(t->piece_len);
    free(t->scores);
    free(t->types);
    lb_strmap_free(t->piece_ids);
    lb_strmap_free(t->merge_ranks);
    if (t->kind == LB_TOK_BPE)
        bpe_release(t);
    free(t->chat_template);
    free(t);
}

void tok_set_piece(lb_tokenizer *t, int id, const char *text, size_t len, float score, int type)
{
    free(t->pieces[id]);
    t->pieces[id] = lb_strndup(text, len);
    t->piece_len[id] = (int)len;
    t->scores[id] = score;
    t->types[id] = type;
}

void tok_add_merge(lb_tokenizer *t, const char *left, size_t left_len, const char *right,
                   size_t right_len)
{
    if (!t->merge_ranks)
        t->merge_ranks = lb_strmap_create(1024);
    char stack[256];
    size_t n = left_len + 1 + right_len;
    char *key = n <= sizeof stack ? stack : lb_malloc(n);
    memcpy(key, left, left_len);
    key[left_len] = ' ';
    memcpy(key + left_len + 1, right, right_len);
    int old;
    if (!lb_strmap_get(t->merge_ranks, key, n, &old))   /* the first (best) rank wins */
        lb_strmap_put(t->merge_ranks, key, n, t->n_merges++);
    if (key != stack)
        free(key);
}

int tok_finalize(lb_tokenizer *t, lb_error *err)
{
    if (t->n_vocab <= 0)
        return lb_fail(err, "tokenizer: empty vocabulary");
    t->piece_ids = lb_strmap_create((size_t)t->n_vocab);
    for (int i = 0; i < t->n_vocab; i++) {
        if (!t->pieces[i])
            return lb_fail(err, "tokenizer: token %d has no text", i);
        int prev;
        /* Duplicate pieces exist in real vocabularies; the lowest id keeps the text. */
        if (!lb_strmap_get(t->piece_ids, t->pieces[i], (size_t)t->piece_len[i], &prev))
            lb_strmap_put(t->piece_ids, t->pieces[i], (size_t)t->piece_len[i], i);
    }
    int *special[] = {&t->bos_id, &t->eos_id, &t->unk_id, &t->pad_id};
    const char *names[] = {"bos", "eos", "unk", "pad"};
    for (int i = 0; i < 4; i++)
        if (*special[i] >= t->n_vocab)
            return lb_fail(err, "tokenizer: %s token id %d is outside the vocabulary (%d tokens)",
                           names[i], *special[i], t->n_vocab);
    if (t->add_bos && t->bos_id < 0)
        t->add_bos = false;
    return t->kind == LB_TOK_SPM ? spm_finalize(t, err) : bpe_finalize(t, err);
}

size_t tok_utf8_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 1;
    if (len > n)
        return 1;
    for (size_t i = 1; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            return 1;
    return len;
}

int tok_encode(const lb_tokenizer *t, const char *text, size_t len, bool add_special, int **ids,
               int *n_ids, lb_error *err)
{
    lb_ivec out = {0};
    if (add_special && t->add_bos)
        lb_ivec_push(&out, t->bos_id);
    if (len) {
        if (t->kind == LB_TOK_SPM)
            spm_encode(t, text, len, &out);
        else
            bpe_encode(t, text, len, &out);
    }
    if (add_special && t->add_eos && t->eos_id >= 0)
        lb_ivec_push(&out, t->eos_id);
    *ids = out.v ? out.v : lb_malloc(sizeof(int));
    *n_ids = out.n;
    (void)err;
    return 0;
}

int tok_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap)
{
    if (id < 0 || id >= t->n_vocab)
        return 0;
    return t->kind == LB_TOK_SPM ? spm_decode_token(t, prev, id, buf, cap)
                                 : bpe_decode_token(t, prev, id, buf, cap);
}

char *tok_decode(const lb_tokenizer *t, const int *ids, int n_ids)
{
    lb_buf out = {0};
    char piece[1024];
    for (int i = 0; i < n_ids; i++) {
        int n = tok_decode_token(t, i ? ids[i - 1] : -1, ids[i], piece, sizeof piece);
        lb_buf_append(&out, piece, (size_t)n);
    }
    return lb_buf_cstr(&out);
}

int tok_piece_id(const lb_tokenizer *t, const char *piece, size_t len)
{
    int id;
    return t->piece_ids && lb_strmap_get(t->piece_ids, piece, len, &id) ? id : -1;
}
