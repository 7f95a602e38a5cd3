/* SentencePiece-style BPE (Llama 2, TinyStories).
 *
 * The text becomes a list of Unicode characters with spaces written as "▁" (and one "▁"
 * prepended). Then, repeatedly, the adjacent pair whose concatenation is the best-scoring
 * vocabulary piece is merged — leftmost first on ties — until no pair forms a piece. A heap of
 * candidate pairs keeps this O(n log n). Symbols that are not pieces fall back to <0xXX> tokens.
 * When the vocabulary came with merge ranks (tokenizer.json), rank replaces score. */
#include "tokenizer/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SPACE_MARK[] = "\xe2\x96\x81";   /* U+2581 "▁" */

int spm_finalize(lb_tokenizer *t, lb_error *err)
{
    for (int i = 0; i < t->n_vocab; i++) {
        unsigned byte;
        char tail;
        if (t->piece_len[i] == 6 && sscanf(t->pieces[i], "<0x%2X%c", &byte, &tail) == 2 &&
            tail == '>' && byte < 256 && t->byte_ids[byte] < 0)
            t->byte_ids[byte] = i;
    }
    (void)err;
    return 0;
}

typedef struct {
    int start;   /* byte offset in the normalized text */
    int len;
    int prev, next;   /* linked list of live symbols; -1 ends it */
} symbol;

typedef struct {
    int left, right;  /* symbol indices */
    int len;          /* combined length when queued: a stale entry no longer matches */
    float priority;   /* higher merges first */
} candidate;

typedef struct {
    candidate *v;
    int n, cap;
} heap;

static bool before(const candidate *a, const candidate *b)
{
    return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

static void heap_push(heap *h, candidate c)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = lb_realloc(h->v, (size_t)h->cap * sizeof(candidate));
    }
    int i = h->n++;
    while (i > 0 && before(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
}

static candidate heap_pop(heap *h)
{
    candidate top = h->v[0], last = h->v[--h->n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

/* Queues the pair (left, right) if their concatenation is a mergeable piece. */
static void try_pair(const lb_tokenizer *t, const char *text, const symbol *sym, int left,
                     int right, heap *h)
{
    if (left < 0 || right < 0)
        return;
    const char *s = text + sym[left].start;
    int len = sym[left].len + sym[right].len;
    float priority;
    if (t->merge_ranks) {
        char stack[512];
        size_t klen = (size_t)len + 1;
        if (klen > sizeof stack)
            return;   /* no real merge is this long */
        memcpy(stack, s, (size_t)sym[left].len);
        stack[sym[left].len] = ' ';
        memcpy(stack + sym[left].len + 1, text + sym[right].start, (size_t)sym[right].len);
        int rank;
        if (!lb_strmap_get(t->merge_ranks, stack, klen, &rank))
            return;
        priority = -(float)rank;
    } else {
        int id;
        if (!lb_strmap_get(t->piece_ids, s, (size_t)len, &id))
            return;
        priority = t->scores[id];
    }
    heap_push(h, (candidate){left, right, len, priority});
}

static void emit_symbol(const lb_tokenizer *t, const char *s, int len, lb_ivec *out)
{
    int id;
    if (lb_strmap_get(t->piece_ids, s, (size_t)len, &id)) {
        lb_ivec_push(out, id);
        return;
    }
    for (int i = 0; i < len; i++) {
        int b = t->byte_fallback ? t->byte_ids[(unsigned char)s[i]] : -1;
        if (b >= 0) {
            lb_ivec_push(out, b);
        } else {
            if (t->unk_id >= 0)
                lb_ivec_push(out, t->unk_id);
            break;   /* one unknown token for the whole symbol, as SentencePiece does */
        }
    }
}

void spm_encode(const lb_tokenizer *t, const char *text, size_t len, lb_ivec *out)
{
    /* Normalize: optional leading "▁", every ' ' → "▁". */
    lb_buf norm = {0};
    if (t->add_space_prefix)
        lb_buf_append(&norm, SPACE_MARK, 3);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            lb_buf_append(&norm, SPACE_MARK, 3);
        else
            lb_buf_append(&norm, &text[i], 1);
    }
    const char *s = norm.v;
    int n = (int)norm.n;

    symbol *sym = lb_malloc((size_t)n * sizeof(symbol));
    int n_sym = 0;
    for (int i = 0; i < n;) {
        int cl = (int)tok_utf8_len(s + i, (size_t)(n - i));
        sym[n_sym] = (symbol){i, cl, n_sym - 1, -1};
        if (n_sym > 0)
            sym[n_sym - 1].next = n_sym;
        n_sym++;
        i += cl;
    }

    heap h = {0};
    for (int i = 0; i + 1 < n_sym; i++)
        try_pair(t, s, sym, i, i + 1, &h);
    while (h.n) {
        candidate c = heap_pop(&h);
        symbol *l = &sym[c.left], *r = &sym[c.right];
        /* Skip pairs invalidated by an earlier merge. */
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.len)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = c.left;
        try_pair(t, s, sym, l->prev, c.left, &h);
        try_pair(t, s, sym, c.left, l->next, &h);
    }
    for (int i = 0; i >= 0 && n_sym > 0; i = sym[i].next)
        emit_symbol(t, s + sym[i].start, sym[i].len, out);

    free(h.v);
    free(sym);
    lb_buf_free(&norm);
}

int spm_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap)
{
    int type = t->types[id];
    if (type == LB_TOKEN_CONTROL)
        return 0;
    for (int b = 0; b < 256; b++)
        if (t->byte_ids[b] == id) {
            buf[0] = (char)b;
            return 1;
        }
    const char *p = t->pieces[id];
    int n = t->piece_len[id];
    if (type == LB_TOKEN_UNKNOWN) {
        p = " \xe2\x81\x87 ";   /* SentencePiece shows unknown text as " ⁇ " */
        n = 5;
    }
    /* The first piece of a text (at the start or after BOS) loses the space "▁" stands for. */
    bool at_start = prev < 0 || prev == t->bos_id;
    size_t w = 0;
    for (int i = 0; i < n && w < cap;) {
        if (i + 3 <= n && memcmp(p + i, SPACE_MARK, 3) == 0) {
            if (!(at_start && i == 0 && t->add_space_prefix))
                buf[w++] = ' ';
            i += 3;
        } else {
            buf[w++] = p[i++];
        }
    }
    return (int)w;
}
