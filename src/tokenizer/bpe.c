/* Byte-level BPE (GPT-2, Llama 3, Qwen2).
 *
 * Encoding has three steps. A pre-tokenizer regex (PCRE2, Unicode properties) cuts the text
 * into words, so merges never cross a word boundary. Each byte of a word becomes one printable
 * character of GPT-2's byte alphabet (bytes that are printable Latin-1 stand for themselves,
 * the others take code points 256 and up), which is how vocabularies and merges are written.
 * Then the adjacent pair with the lowest merge rank merges, leftmost first among equals, until
 * no adjacent pair has a rank; a heap of candidate pairs keeps a word of n bytes O(n log n),
 * so a megabyte with no space in it does not stall.
 *
 * Bytes that are not valid UTF-8 never match the regex (PCRE2_MATCH_INVALID_UTF); the runs of
 * them between matches become words of their own, so every byte still reaches a token and
 * decode(encode(x)) == x for any input when the vocabulary holds all 256 byte characters, as
 * every byte-level vocabulary does.
 *
 * Special tokens written in the text ("<|endoftext|>") are encoded as plain text, not as their
 * control id: text from users must not be able to inject control tokens, and callers that want
 * one push its id themselves.
 *
 * Encoding keeps no state between calls (the match data and scratch buffers are per call), so
 * one tokenizer serves many threads. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "core/log.h"
#include "tokenizer/internal.h"

#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* HF tokenizers' forms of the three pre-tokenizer patterns (Llama 3's and Qwen2's differ only
 * in how many digits a number group takes). */
static const char PATTERN_GPT2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char PATTERN_LLAMA3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char PATTERN_QWEN2[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Code points of the byte alphabet end below this. */
#define BYTE_ALPHABET_END 324

/* What t->regex points to for a byte-level tokenizer. */
typedef struct {
    pcre2_code *re;
    char byte_char[256][2];          /* UTF-8 of the character standing for each byte */
    unsigned char byte_char_len[256];
    short char_byte[BYTE_ALPHABET_END]; /* inverse: code point → byte, or -1 */
    int byte_token[256];             /* id of the one-byte piece, or -1 */
    bool whole_word_first;           /* a word that is a piece is that piece (Llama 3) */
} bpe_state;

static void build_byte_alphabet(bpe_state *s)
{
    for (int c = 0; c < BYTE_ALPHABET_END; c++)
        s->char_byte[c] = -1;
    int next = 256;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        int cp = printable ? b : next++;
        s->char_byte[cp] = (short)b;
        if (cp < 0x80) {
            s->byte_char[b][0] = (char)cp;
            s->byte_char_len[b] = 1;
        } else {
            s->byte_char[b][0] = (char)(0xc0 | (cp >> 6));
            s->byte_char[b][1] = (char)(0x80 | (cp & 0x3f));
            s->byte_char_len[b] = 2;
        }
    }
}

int bpe_finalize(lb_tokenizer *t, lb_error *err)
{
    bpe_release(t);
    bpe_state *s = lb_calloc(1, sizeof *s);
    t->regex = s;
    build_byte_alphabet(s);
    for (int b = 0; b < 256; b++)
        s->byte_token[b] = tok_piece_id(t, s->byte_char[b], s->byte_char_len[b]);
    /* llama.cpp and HF (ignore_merges) take a whole word that is in the vocabulary as one
     * token for Llama 3, as its tiktoken original does; GPT-2 and Qwen2 always merge. */
    s->whole_word_first = t->pretok == LB_PRETOK_LLAMA3;

    const char *pattern = t->pretok == LB_PRETOK_LLAMA3  ? PATTERN_LLAMA3
                          : t->pretok == LB_PRETOK_QWEN2 ? PATTERN_QWEN2
                                                         : PATTERN_GPT2;
    int code;
    PCRE2_SIZE offset;
    s->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &offset, NULL);
    if (!s->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return lb_fail(err, "tokenizer: pre-tokenizer regex, offset %zu: %s", (size_t)offset,
                       (const char *)msg);
    }
    /* JIT is an optimization only: without it the interpreter gives the same splits. */
    if (pcre2_jit_compile(s->re, PCRE2_JIT_COMPLETE) != 0)
        lb_log_debug("tokenizer: PCRE2 JIT unavailable, using the interpreter");
    return 0;
}

void bpe_release(lb_tokenizer *t)
{
    bpe_state *s = t->regex;
    if (!s)
        return;
    pcre2_code_free(s->re);
    free(s);
    t->regex = NULL;
}

/* ---- merging one word ---------------------------------------------------------------- */

typedef struct {
    int start, len;   /* bytes of the mapped text */
    int raw_start, raw_len;
    int prev, next;   /* live symbols form a list; -1 ends it */
} symbol;

typedef struct {
    int rank;
    int left, right;
    int len;          /* combined mapped length when queued: stale entries no longer match */
} pair;

/* Scratch space reused by all the words of one encode call. */
typedef struct {
    lb_buf mapped;
    lb_buf key;
    symbol *sym;
    int sym_cap;
    pair *heap;
    int heap_n, heap_cap;
} scratch;

static bool pair_before(const pair *a, const pair *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(scratch *w, pair p)
{
    if (w->heap_n == w->heap_cap) {
        w->heap_cap = w->heap_cap ? w->heap_cap * 2 : 64;
        w->heap = lb_realloc(w->heap, (size_t)w->heap_cap * sizeof(pair));
    }
    int i = w->heap_n++;
    while (i > 0 && pair_before(&p, &w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = p;
}

static pair heap_pop(scratch *w)
{
    pair top = w->heap[0], last = w->heap[--w->heap_n];
    int i = 0, n = w->heap_n;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && pair_before(&w->heap[c + 1], &w->heap[c]))
            c++;
        if (!pair_before(&w->heap[c], &last))
            break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n)
        w->heap[i] = last;
    return top;
}

/* Queues (left, right) when "left right" is a merge. */
static void try_pair(const lb_tokenizer *t, scratch *w, int left, int right)
{
    if (left < 0 || right < 0 || !t->merge_ranks)
        return;
    const symbol *l = &w->sym[left], *r = &w->sym[right];
    w->key.n = 0;
    lb_buf_append(&w->key, w->mapped.v + l->start, (size_t)l->len);
    lb_buf_append(&w->key, " ", 1);
    lb_buf_append(&w->key, w->mapped.v + r->start, (size_t)r->len);
    int rank;
    if (lb_strmap_get(t->merge_ranks, w->key.v, w->key.n, &rank))
        heap_push(w, (pair){rank, left, right, l->len + r->len});
}

static void emit_symbol(const lb_tokenizer *t, const bpe_state *s, const scratch *w,
                        const unsigned char *raw, const symbol *sym, lb_ivec *out)
{
    int id = tok_piece_id(t, w->mapped.v + sym->start, (size_t)sym->len);
    if (id >= 0) {
        lb_ivec_push(out, id);
        return;
    }
    /* A merge whose result is not in the vocabulary: fall back to single bytes. */
    for (int i = 0; i < sym->raw_len; i++) {
        int b = s->byte_token[raw[sym->raw_start + i]];
        if (b >= 0)
            lb_ivec_push(out, b);
        else if (t->unk_id >= 0)
            lb_ivec_push(out, t->unk_id);
    }
}

static void encode_word(const lb_tokenizer *t, const bpe_state *s, scratch *w,
                        const unsigned char *raw, int n, lb_ivec *out)
{
    w->mapped.n = 0;
    if (n > w->sym_cap) {
        w->sym_cap = n;
        w->sym = lb_realloc(w->sym, (size_t)n * sizeof(symbol));
    }
    for (int i = 0; i < n; i++) {
        w->sym[i] = (symbol){(int)w->mapped.n, s->byte_char_len[raw[i]], i, 1, i - 1, i + 1};
        lb_buf_append(&w->mapped, s->byte_char[raw[i]], s->byte_char_len[raw[i]]);
    }
    w->sym[n - 1].next = -1;

    if (s->whole_word_first) {
        int id = tok_piece_id(t, w->mapped.v, w->mapped.n);
        if (id >= 0) {
            lb_ivec_push(out, id);
            return;
        }
    }

    w->heap_n = 0;
    for (int i = 0; i + 1 < n; i++)
        try_pair(t, w, i, i + 1);
    while (w->heap_n) {
        pair p = heap_pop(w);
        symbol *l = &w->sym[p.left], *r = &w->sym[p.right];
        if (l->len == 0 || r->len == 0 || l->next != p.right || l->len + r->len != p.len)
            continue;   /* one side merged with something else since this was queued */
        l->len += r->len;
        l->raw_len += r->raw_len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            w->sym[r->next].prev = p.left;
        try_pair(t, w, l->prev, p.left);
        try_pair(t, w, p.left, l->next);
    }
    for (int i = 0; i >= 0; i = w->sym[i].next)
        emit_symbol(t, s, w, raw, &w->sym[i], out);
}

/* Words longer than this are cut (at a UTF-8 boundary where possible) so that symbol offsets
 * fit in int; no real text has such words, and merges across the cut are lost only there. */
#define MAX_WORD_BYTES (1 << 28)

static void encode_span(const lb_tokenizer *t, const bpe_state *s, scratch *w,
                        const unsigned char *p, size_t n, lb_ivec *out)
{
    while (n > 0) {
        size_t k = n < MAX_WORD_BYTES ? n : MAX_WORD_BYTES;
        encode_word(t, s, w, p, (int)k, out);
        p += k;
        n -= k;
    }
}

void bpe_encode(const lb_tokenizer *t, const char *text, size_t len, lb_ivec *out)
{
    const bpe_state *s = t->regex;
    if (!s || len == 0)
        return;
    lb_buf prefixed = {0};
    if (t->add_space_prefix && text[0] != ' ') {
        /* ByteLevel add_prefix_space: the first word reads as a word after a space. */
        lb_buf_append(&prefixed, " ", 1);
        lb_buf_append(&prefixed, text, len);
        text = prefixed.v;
        len = prefixed.n;
    }
    const unsigned char *subject = (const unsigned char *)text;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(s->re, NULL);
    pcre2_jit_stack *jit_stack = NULL;
    pcre2_match_context *mctx = NULL;
    bool retried = false;
    scratch w = {0};

    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match(s->re, subject, len, pos, 0, md, mctx);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH && !retried) {
            /* A very long run (e.g. megabytes of spaces) can exhaust the default 32 KiB JIT
             * stack; retry once with a large one before giving up on the regex. */
            retried = true;
            jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, NULL);
            mctx = pcre2_match_context_create(NULL);
            if (jit_stack && mctx)
                pcre2_jit_stack_assign(mctx, NULL, jit_stack);
            rc = pcre2_match(s->re, subject, len, pos, 0, md, mctx);
        }
        size_t start, end;
        if (rc == PCRE2_ERROR_NOMATCH) {
            start = end = len;   /* the rest is bytes that are not valid UTF-8 */
        } else if (rc < 0) {
            /* Regex failure (resource limits): take one character as a word and go on. */
            start = pos;
            end = pos + tok_utf8_len(text + pos, len - pos);
        } else {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            start = ov[0];
            end = ov[1];
            if (end <= start)   /* the patterns cannot match empty; guard anyway */
                end = start + tok_utf8_len(text + start, len - start);
        }
        if (start > pos)
            encode_span(t, s, &w, subject + pos, start - pos, out);
        if (end > start)
            encode_span(t, s, &w, subject + start, end - start, out);
        pos = end;
    }

    pcre2_match_data_free(md);
    pcre2_match_context_free(mctx);
    pcre2_jit_stack_free(jit_stack);
    lb_buf_free(&w.mapped);
    lb_buf_free(&w.key);
    free(w.sym);
    free(w.heap);
    lb_buf_free(&prefixed);
}

/* ---- decoding ------------------------------------------------------------------------ */

int bpe_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap)
{
    (void)prev;
    const bpe_state *s = t->regex;
    int type = t->types[id];
    if (type == LB_TOKEN_CONTROL || type == LB_TOKEN_UNUSED)
        return 0;
    const char *p = t->pieces[id];
    size_t n = (size_t)t->piece_len[id], w = 0;
    if (type == LB_TOKEN_USER_DEFINED || !s) {
        /* Added tokens are stored as the text itself, not in the byte alphabet. */
        w = n < cap ? n : cap;
        memcpy(buf, p, w);
        return (int)w;
    }
    for (size_t i = 0; i < n && w < cap;) {
        size_t cl = tok_utf8_len(p + i, n - i);
        const unsigned char *u = (const unsigned char *)p + i;
        int cp = cl == 1 ? u[0] : cl == 2 ? ((u[0] & 0x1f) << 6) | (u[1] & 0x3f) : -1;
        if (cl == 1 && u[0] >= 0x80)
            cp = -1;   /* a stray byte in the piece: copy it as it is */
        if (cp >= 0 && cp < BYTE_ALPHABET_END && s->char_byte[cp] >= 0) {
            buf[w++] = (char)s->char_byte[cp];
        } else {
            /* Not in the byte alphabet: the character is its own text. */
            for (size_t k = 0; k < cl && w < cap; k++)
                buf[w++] = p[i + k];
        }
        i += cl;
    }
    return (int)w;
}
