/* SentencePiece-style BPE (Llama 2, TinyStories), as SentencePiece's own BPE model encodes.
 *
 * The text is normalized the way Llama's tokenizer.model asks (identity rules, no whitespace
 * trimming): one "▁" is prepended (add_dummy_prefix) and every ' ' becomes "▁". It is split into
 * symbols: a user-defined piece where one starts (longest match, never merged further), else one
 * Unicode character. Then, repeatedly, the adjacent pair whose concatenation is the best-scoring
 * piece is merged — the leftmost pair on ties — until no pair forms a piece. A heap of candidate
 * pairs keeps this O(n log n). Only normal, user-defined and unused pieces can be formed this way;
 * control, unknown and byte pieces are reserved. An unused piece (SentencePiece's restricted
 * vocabulary) that survives is split back into the two pieces it was made of. A symbol that is no
 * piece becomes <0xXX> byte tokens, or, without byte pieces, one <unk> for each run of them.
 * When the vocabulary came with merge ranks (tokenizer.json), rank replaces score.
 *
 * Deliberate difference: SentencePiece replaces invalid UTF-8 with U+FFFD; here such bytes stay
 * single-byte symbols and come out as their byte tokens, so any input decodes back to itself. */
#include "tokenizer/internal.h"

#include <stdlib.h>
#include <string.h>

static const char SPACE_MARK[] = "\xe2\x96\x81";   /* U+2581 "▁" */

static int hex_digit(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The byte a "<0xXX>" piece stands for (upper-case hex, as SentencePiece writes it), or -1. */
static int byte_piece(const char *p, int len)
{
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>')
        return -1;
    int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

int spm_finalize(lb_tokenizer *t, lb_error *err)
{
    bool any_byte = false;
    t->user_max_len = 0;
    for (int i = 0; i < t->n_vocab; i++) {
        int byte = byte_piece(t->pieces[i], t->piece_len[i]);
        /* tokenizer.bin stores no types: its <0xXX> pieces are byte tokens, which no merge
         * may form (SentencePiece keeps them apart from the normal pieces). */
        if (byte >= 0 && t->types[i] == LB_TOKEN_NORMAL)
            t->types[i] = LB_TOKEN_BYTE;
        if (byte >= 0 && t->types[i] == LB_TOKEN_BYTE && t->byte_ids[byte] < 0) {
            t->byte_ids[byte] = i;
            any_byte = true;
        }
        if (t->types[i] == LB_TOKEN_USER_DEFINED && t->piece_len[i] > t->user_max_len)
            t->user_max_len = t->piece_len[i];
    }
    /* A vocabulary without byte pieces cannot fall back to them: unknown text is <unk>. */
    if (!any_byte)
        t->byte_fallback = false;
    (void)err;
    return 0;
}

typedef struct {
    int start;        /* byte offset in the normalized text */
    int len;          /* 0 once merged into its left neighbour */
    int prev, next;   /* linked list of live symbols; -1 ends it */
    bool frozen;      /* a user-defined piece: takes part in no merge */
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

/* State of one encode call. */
typedef struct {
    const lb_tokenizer *t;
    const char *text;     /* normalized */
    symbol *sym;
    heap h;
    lb_strmap *splits;    /* unused piece → length of its left part, as last queued */
    bool last_unk;        /* the last id came from unknown text (runs share one <unk>) */
    lb_ivec *out;
} encoder;

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

/* Pieces a merge may produce: SentencePiece keeps control, unknown and byte pieces apart. */
static bool mergeable(int type)
{
    return type != LB_TOKEN_CONTROL && type != LB_TOKEN_UNKNOWN && type != LB_TOKEN_BYTE;
}

/* Queues the pair (left, right) if their concatenation is a piece a merge may form. */
static void try_pair(encoder *e, int left, int right)
{
    const lb_tokenizer *t = e->t;
    const symbol *sym = e->sym;
    if (left < 0 || right < 0 || sym[left].frozen || sym[right].frozen)
        return;
    const char *s = e->text + sym[left].start;   /* live neighbours are contiguous */
    int len = sym[left].len + sym[right].len;
    float priority;
    if (t->merge_ranks) {
        char key[512];
        size_t klen = (size_t)len + 1;
        if (klen > sizeof key)
            return;   /* no real merge is this long */
        memcpy(key, s, (size_t)sym[left].len);
        key[sym[left].len] = ' ';
        memcpy(key + sym[left].len + 1, s + sym[left].len, (size_t)sym[right].len);
        int rank;
        if (!lb_strmap_get(t->merge_ranks, key, klen, &rank))
            return;
        priority = -(float)rank;
    } else {
        int id;
        if (!lb_strmap_get(t->piece_ids, s, (size_t)len, &id) || !mergeable(t->types[id]))
            return;
        priority = t->scores[id];
        /* SentencePiece remembers how an unused piece was put together (the latest pair that
         * could form it) to take it apart again at the end. */
        if (t->types[id] == LB_TOKEN_UNUSED) {
            if (!e->splits)
                e->splits = lb_strmap_create(16);
            lb_strmap_put(e->splits, s, (size_t)len, sym[left].len);
        }
    }
    heap_push(&e->h, (candidate){left, right, len, priority});
}

static void push_id(encoder *e, int id, bool unknown)
{
    lb_ivec_push(e->out, id);
    e->last_unk = unknown;
}

/* Emits one final symbol (or a part of an unused piece). */
static void emit(encoder *e, const char *s, int len)
{
    const lb_tokenizer *t = e->t;
    int id, left;
    if (lb_strmap_get(t->piece_ids, s, (size_t)len, &id)) {
        if (t->types[id] == LB_TOKEN_UNUSED && e->splits &&
            lb_strmap_get(e->splits, s, (size_t)len, &left) && left > 0 && left < len) {
            emit(e, s, left);
            emit(e, s + left, len - left);
        } else {
            push_id(e, id, false);
        }
        return;
    }
    if (t->byte_fallback) {
        for (int i = 0; i < len; i++) {
            int b = t->byte_ids[(unsigned char)s[i]];
            if (b >= 0)
                push_id(e, b, false);
            else if (t->unk_id >= 0)
                push_id(e, t->unk_id, true);
        }
    } else if (t->unk_id >= 0 && !e->last_unk) {
        push_id(e, t->unk_id, true);   /* SentencePiece folds a run of unknown text into one */
    }
}

/* Length of the user-defined piece starting at s (longest one), or 0. */
static int user_piece_at(const lb_tokenizer *t, const char *s, int n)
{
    for (int len = n < t->user_max_len ? n : t->user_max_len; len > 0; len--) {
        int id;
        if (lb_strmap_get(t->piece_ids, s, (size_t)len, &id) &&
            t->types[id] == LB_TOKEN_USER_DEFINED)
            return len;
    }
    return 0;
}

void spm_encode(const lb_tokenizer *t, const char *text, size_t len, lb_ivec *out)
{
    if (len == 0)
        return;   /* SentencePiece adds no dummy prefix to empty text */
    /* Normalize: optional leading "▁", every ' ' → "▁". */
    size_t cap = 3 * len + 3, n = 0;
    char *s = lb_malloc(cap);
    if (t->add_space_prefix) {
        memcpy(s, SPACE_MARK, 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + n, SPACE_MARK, 3);
            n += 3;
        } else {
            s[n++] = text[i];
        }
    }

    encoder e = {.t = t, .text = s, .out = out};
    e.sym = lb_malloc(n * sizeof(symbol));
    int n_sym = 0;
    for (size_t i = 0; i < n;) {
        int rest = (int)(n - i);
        int ul = t->user_max_len ? user_piece_at(t, s + i, rest) : 0;
        int cl = ul ? ul : (int)tok_utf8_len(s + i, (size_t)rest);
        e.sym[n_sym] = (symbol){(int)i, cl, n_sym - 1, -1, ul > 0};
        if (n_sym > 0)
            e.sym[n_sym - 1].next = n_sym;
        n_sym++;
        i += (size_t)cl;
    }

    for (int i = 0; i + 1 < n_sym; i++)
        try_pair(&e, i, i + 1);
    while (e.h.n) {
        candidate c = heap_pop(&e.h);
        symbol *l = &e.sym[c.left], *r = &e.sym[c.right];
        /* Skip pairs an earlier merge invalidated: either side merged elsewhere or grew. */
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.len)
            continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0)
            e.sym[r->next].prev = c.left;
        try_pair(&e, l->prev, c.left);
        try_pair(&e, c.left, l->next);
    }
    for (int i = 0; i >= 0 && n_sym > 0; i = e.sym[i].next)
        emit(&e, s + e.sym[i].start, e.sym[i].len);

    lb_strmap_free(e.splits);
    free(e.h.v);
    free(e.sym);
    free(s);
}

int spm_decode_token(const lb_tokenizer *t, int prev, int id, char *buf, size_t cap)
{
    int type = t->types[id];
    if (type == LB_TOKEN_CONTROL)
        return 0;
    const char *p = t->pieces[id];
    int n = t->piece_len[id];
    int byte = type == LB_TOKEN_BYTE ? byte_piece(p, n) : -1;
    if (byte >= 0 && t->byte_ids[byte] == id) {
        buf[0] = (char)byte;
        return 1;
    }
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
