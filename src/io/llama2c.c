/* llama2.c checkpoints (karpathy/llama2.c, the "legacy" version 0 export) → lb_model.
 *
 * The file is a header of seven int32 — dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 * vocab_size, seq_len — then fp32 arrays, each layer's matrices stored back to back:
 * token embeddings, attention norms, wq, wk, wv, wo, ffn norms, w1 (gate), w2 (down), w3 (up),
 * the final norm, two RoPE tables of seq_len x head_size/2 (unused: RoPE is computed), and, when
 * vocab_size is negative, a separate classifier. Matrices are row-major [out][in], which is
 * ggml's order with ne[0] = in, so every tensor is a view into the memory map. The file carries
 * no vocabulary: it comes from llama2.c's tokenizer.bin. */
#include "core/file.h"
#include "io/loaders.h"
#include "tokenizer/loaders.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_BYTES 28
#define V1_MAGIC 0x616b3432u   /* "ak42": llama2.c's later export versions */

typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} header;

/* Sizes past these are not a real model, and keep every product below 2^63. */
static const struct {
    const char *name;
    size_t offset;
    int32_t max;
} LIMITS[] = {
    {"dim", offsetof(header, dim), 1 << 16},
    {"hidden_dim", offsetof(header, hidden_dim), 1 << 18},
    {"n_layers", offsetof(header, n_layers), 4096},
    {"n_heads", offsetof(header, n_heads), 4096},
    {"n_kv_heads", offsetof(header, n_kv_heads), 4096},
    {"vocab_size", offsetof(header, vocab_size), 1 << 22},
    {"seq_len", offsetof(header, seq_len), 1 << 22},
};

static int check_header(const char *path, header *h, bool *shared, lb_error *err)
{
    if ((uint32_t)h->dim == V1_MAGIC)
        return lb_fail(err, "%s: offset 0: magic \"ak42\" marks a llama2.c version 1/2 export; "
                       "lowbit reads the legacy version 0 (export.py --version 0)", path);
    *shared = h->vocab_size > 0;
    if (h->vocab_size < 0 && h->vocab_size != INT32_MIN)
        h->vocab_size = -h->vocab_size;
    for (size_t i = 0; i < sizeof LIMITS / sizeof LIMITS[0]; i++) {
        int32_t v;
        memcpy(&v, (const char *)h + LIMITS[i].offset, sizeof v);
        if (v <= 0 || v > LIMITS[i].max)
            return lb_fail(err, "%s: offset %zu: header field %s is %" PRId32 ", expected "
                           "1..%" PRId32, path, LIMITS[i].offset, LIMITS[i].name, v,
                           LIMITS[i].max);
    }
    if (h->n_heads > h->dim || h->dim % h->n_heads)
        return lb_fail(err, "%s: header: dim %d is not a multiple of n_heads %d", path, h->dim,
                       h->n_heads);
    if (h->n_kv_heads > h->n_heads || h->n_heads % h->n_kv_heads)
        return lb_fail(err, "%s: header: n_heads %d is not a multiple of n_kv_heads %d", path,
                       h->n_heads, h->n_kv_heads);
    if ((h->dim / h->n_heads) % 2)
        return lb_fail(err, "%s: header: head size %d (dim %d / n_heads %d) is odd; RoPE needs "
                       "an even size", path, h->dim / h->n_heads, h->dim, h->n_heads);
    return 0;
}

/* Walks the float arrays in file order, making one tensor per array and layer. */
typedef struct {
    lb_model *m;
    const float *base;
    uint64_t pos;   /* in floats from base */
} cursor;

static void add_tensor(cursor *c, const char *name, int64_t ne0, int64_t ne1)
{
    lb_tensor t = {0};
    snprintf(t.name, sizeof t.name, "%s", name);
    t.type = LB_TYPE_F32;
    t.n_dims = ne1 > 1 ? 2 : 1;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = t.ne[3] = 1;
    t.data = (void *)(c->base + c->pos);
    t.nbytes = (size_t)(ne0 * ne1) * sizeof(float);
    c->pos += (uint64_t)(ne0 * ne1);
    lb_model_add_tensor(c->m, &t);
}

/* One tensor per layer for a stacked array "blk.N.<suffix>" of ne0 x ne1 each. */
static void add_layers(cursor *c, int n_layers, const char *suffix, int64_t ne0, int64_t ne1)
{
    for (int l = 0; l < n_layers; l++) {
        char name[LB_MAX_NAME];
        snprintf(name, sizeof name, "blk.%d.%s", l, suffix);
        add_tensor(c, name, ne0, ne1);
    }
}

/* Floats the header implies; every factor is bounded by LIMITS, so nothing overflows. */
static uint64_t implied_floats(const header *h, bool shared)
{
    uint64_t dim = (uint64_t)h->dim, hid = (uint64_t)h->hidden_dim, L = (uint64_t)h->n_layers;
    uint64_t hs = dim / (uint64_t)h->n_heads, kv = hs * (uint64_t)h->n_kv_heads;
    uint64_t vocab = (uint64_t)h->vocab_size;
    uint64_t per_layer = dim /* attn norm */ + 2 * dim * dim /* wq, wo */ + 2 * dim * kv +
                         dim /* ffn norm */ + 3 * dim * hid;
    return vocab * dim + L * per_layer + dim + (uint64_t)h->seq_len * hs /* RoPE tables */ +
           (shared ? 0 : vocab * dim);
}

int lb_load_llama2c(const char *path, const char *tokenizer_path, lb_model **out, lb_error *err)
{
    *out = NULL;
    lb_mapping map;
    if (lb_map_file(path, &map, err))
        return -1;
    size_t size = map.size;
    if (size < HEADER_BYTES) {
        lb_unmap(&map);
        return lb_fail(err, "%s: file is %zu bytes, too short for a llama2.c header (28 bytes: "
                       "dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len)",
                       path, size);
    }
    header h;
    memcpy(&h, map.data, sizeof h);
    bool shared = false;
    if (check_header(path, &h, &shared, err)) {
        lb_unmap(&map);
        return -1;
    }
    uint64_t want = HEADER_BYTES + 4 * implied_floats(&h, shared);
    if ((uint64_t)size != want) {
        lb_unmap(&map);
        return lb_fail(err, "%s: file is %zu bytes, the header (dim %d, hidden_dim %d, n_layers "
                       "%d, n_heads %d, n_kv_heads %d, vocab_size %d%s, seq_len %d) implies %"
                       PRIu64, path, size, h.dim, h.hidden_dim, h.n_layers, h.n_heads,
                       h.n_kv_heads, h.vocab_size, shared ? "" : " with a separate classifier",
                       h.seq_len, want);
    }

    lb_model *m = lb_model_new(path, "llama2c");
    lb_model_own_map(m, &map);   /* freed with the model from here on */
    lb_config *c = &m->cfg;
    c->arch = LB_ARCH_LLAMA;
    snprintf(c->arch_name, sizeof c->arch_name, "llama");
    const char *base = strrchr(path, '/');
    snprintf(c->name, sizeof c->name, "%s", base ? base + 1 : path);
    c->dim = h.dim;
    c->hidden_dim = h.hidden_dim;
    c->n_layers = h.n_layers;
    c->n_heads = h.n_heads;
    c->n_kv_heads = h.n_kv_heads;
    c->head_dim = h.dim / h.n_heads;
    c->vocab_size = h.vocab_size;
    c->max_ctx = h.seq_len;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_style = LB_ROPE_ADJACENT;   /* llama2.c rotates neighbouring pairs */

    int64_t dim = h.dim, hid = h.hidden_dim, q = (int64_t)h.n_heads * c->head_dim;
    int64_t kv = (int64_t)h.n_kv_heads * c->head_dim;
    cursor cur = {m, (const float *)((const char *)map.data + HEADER_BYTES), 0};
    add_tensor(&cur, "token_embd.weight", dim, h.vocab_size);
    add_layers(&cur, h.n_layers, "attn_norm.weight", dim, 1);
    add_layers(&cur, h.n_layers, "attn_q.weight", dim, q);
    add_layers(&cur, h.n_layers, "attn_k.weight", dim, kv);
    add_layers(&cur, h.n_layers, "attn_v.weight", dim, kv);
    add_layers(&cur, h.n_layers, "attn_output.weight", q, dim);
    add_layers(&cur, h.n_layers, "ffn_norm.weight", dim, 1);
    add_layers(&cur, h.n_layers, "ffn_gate.weight", dim, hid);   /* w1 */
    add_layers(&cur, h.n_layers, "ffn_down.weight", hid, dim);   /* w2 */
    add_layers(&cur, h.n_layers, "ffn_up.weight", dim, hid);     /* w3 */
    add_tensor(&cur, "output_norm.weight", dim, 1);
    cur.pos += (uint64_t)h.seq_len * (uint64_t)c->head_dim;     /* freq_cis_real, _imag */
    if (!shared)
        add_tensor(&cur, "output.weight", dim, h.vocab_size);
    if (lb_model_bind(m, err))
        goto fail;

    char *beside = NULL;
    if (!tokenizer_path) {
        char *dir = lb_path_dir(path);
        beside = lb_path_join(dir, "tokenizer.bin");
        free(dir);
        tokenizer_path = beside;
    }
    int rc = tok_load_llama2c(tokenizer_path, h.vocab_size, &m->tok, err);
    if (rc && beside && !lb_file_exists(beside))
        lb_fail(err, "%s: no tokenizer.bin beside the model (%s); name one with --tokenizer",
                path, beside);
    free(beside);
    if (rc)
        goto fail;
    *out = m;
    return 0;
fail:
    lb_model_free(m);
    return -1;
}
