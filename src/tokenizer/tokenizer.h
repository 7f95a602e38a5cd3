/* Tokenizers. Two kinds share one struct:
 *  - LB_TOK_SPM: SentencePiece-style BPE over Unicode characters with "▁" for spaces and
 *    <0xXX> byte fallback (Llama 2, TinyStories). Pairs merge by the score of the merged piece
 *    (GGUF/tokenizer.bin/tokenizer.model) or by merge rank (tokenizer.json).
 *  - LB_TOK_BPE: byte-level BPE (GPT-2, Llama 3, Qwen2): a regex splits the text, bytes map to
 *    printable characters, pairs merge by rank.
 * Loaders build a tokenizer with tok_create/tok_set_piece/tok_add_merge and then tok_finalize. */
#ifndef LB_TOKENIZER_H
#define LB_TOKENIZER_H

#include "core/error.h"
#include "core/strmap.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum { LB_TOK_SPM, LB_TOK_BPE } lb_tok_kind;

/* Token types as GGUF's tokenizer.ggml.token_type stores them. */
enum {
    LB_TOKEN_NORMAL = 1,
    LB_TOKEN_UNKNOWN = 2,
    LB_TOKEN_CONTROL = 3,
    LB_TOKEN_USER_DEFINED = 4,
    LB_TOKEN_UNUSED = 5,
    LB_TOKEN_BYTE = 6,
};

/* Pre-tokenizer regexes of the byte-level models. */
typedef enum { LB_PRETOK_GPT2, LB_PRETOK_LLAMA3, LB_PRETOK_QWEN2 } lb_pretok;

typedef struct lb_tokenizer {
    lb_tok_kind kind;
    int n_vocab;
    char **pieces;          /* token text as stored (▁ for space / byte-level characters) */
    int *piece_len;
    float *scores;          /* SPM merge priorities; may be all zero for BPE */
    int *types;             /* LB_TOKEN_* */
    lb_strmap *piece_ids;   /* piece text → id */
    lb_strmap *merge_ranks; /* "left right" → rank (BPE, and SPM from tokenizer.json) */
    int n_merges;
    int bos_id, eos_id, unk_id, pad_id;   /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix;  /* SPM: prepend "▁" to the text */
    bool byte_fallback;     /* SPM: unknown characters become <0xXX> tokens */
    int byte_ids[256];      /* SPM: id of <0xXX>, or -1 */
    int user_max_len;       /* SPM: bytes of the longest user-defined piece (0: none) */
    lb_pretok pretok;       /* BPE */
    void *regex;            /* BPE: compiled PCRE2 pattern */
    char *chat_template;    /* from metadata, may be NULL */
} lb_tokenizer;

lb_tokenizer *tok_create(lb_tok_kind kind, int n_vocab);
void tok_free(lb_tokenizer *t);
void tok_set_piece(lb_tokenizer *t, int id, const char *text, size_t len, float score, int type);
void tok_add_merge(lb_tokenizer *t, const char *left, size_t left_len, const char *right,
                   size_t right_len);
/* Builds lookup tables and checks the vocabulary (every piece set, special ids in range). */
int tok_finalize(lb_tokenizer *t, lb_error *err);

/* Encodes len bytes of text. With add_special, BOS (and EOS) are added as the tokenizer says.
 * *ids is malloc'd; the caller frees it. Invalid UTF-8 is encoded byte-wise, never rejected. */
int tok_encode(const lb_tokenizer *t, const char *text, size_t len, bool add_special, int **ids,
               int *n_ids, lb_error *err);

/* Bytes of one token when it follows token prev (-1 at the start): SPM drops the space that
 * "▁" stands for at the start of the text; byte tokens give their byte. Returns the length
 * written to buf (at most cap, which should be >= 256); control tokens give 0. */
int tok_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap);

/* Whole-sequence decode; malloc'd, NUL-terminated. */
char *tok_decode(const lb_tokenizer *t, const int *ids, int n_ids);

/* Token id of an exact piece, or -1. */
int tok_piece_id(const lb_tokenizer *t, const char *piece, size_t len);

#endif
