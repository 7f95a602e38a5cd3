/* GGUF → lb_model: config from "{arch}.*" metadata, tensors pointing into the map, and the
 * tokenizer from "tokenizer.ggml.*". */
#include "io/gguf.h"
#include "io/loaders.h"

#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds that keep token ids and piece lengths inside int. */
#define MAX_VOCAB (1 << 24)
#define MAX_PIECE (1 << 16)
/* The most layers lb_model_bind accepts. */
#define MAX_LAYERS 4096

/* Reads "{arch}.{key}" as an integer in min..max; absent and not required: fallback. */
static int get_arch_int(const gguf_file *f, const char *arch, const char *key, bool required,
                        int fallback, int min, int max, int *out, lb_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    int64_t v;
    if (!gguf_find(f, full)) {
        if (required)
            return lb_fail(err, "%s: metadata key '%s' is missing (expected an integer)", f->path,
                           full);
        *out = fallback;
        return 0;
    }
    if (gguf_get_int(f, full, &v, err))
        return -1;
    if (v < min || v > max)
        return lb_fail(err, "%s: metadata key '%s' is %" PRId64 " (expected %d to %d)", f->path,
                       full, v, min, max);
    *out = (int)v;
    return 0;
}

/* Reads "{arch}.{key}" as a finite number in [min, max] (above min when open_min). */
static int get_arch_float(const gguf_file *f, const char *arch, const char *key, float fallback,
                          double min, bool open_min, double max, float *out, lb_error *err)
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    double v;
    if (!gguf_find(f, full)) {
        *out = fallback;
        return 0;
    }
    if (gguf_get_float(f, full, &v, err))
        return -1;
    if (!(v <= max && (open_min ? v > min : v >= min)))
        return lb_fail(err, "%s: metadata key '%s' is %g (expected a number in %c%g, %g])",
                       f->path, full, v, open_min ? '(' : '[', min, max);
    *out = (float)v;
    return 0;
}

static int read_config(const gguf_file *f, lb_model *m, lb_error *err)
{
    lb_config *c = &m->cfg;
    gguf_str arch;
    char shown[96];
    if (gguf_get_str(f, "general.architecture", &arch, err))
        return -1;
    if (arch.len >= sizeof c->arch_name)
        return lb_fail(err, "%s: general.architecture is '%s' (lowbit runs llama, mistral, qwen2, "
                       "gpt2)", f->path, gguf_printable(arch.s, arch.len, shown, sizeof shown));
    snprintf(c->arch_name, sizeof c->arch_name, "%.*s", (int)arch.len, arch.s);
    const char *a = c->arch_name;
    if (strlen(a) == arch.len && (strcmp(a, "llama") == 0 || strcmp(a, "mistral") == 0)) {
        c->arch = LB_ARCH_LLAMA;
        c->rope_style = LB_ROPE_ADJACENT;
    } else if (strlen(a) == arch.len && strcmp(a, "qwen2") == 0) {
        c->arch = LB_ARCH_LLAMA;
        c->rope_style = LB_ROPE_HALF;
    } else if (strlen(a) == arch.len && strcmp(a, "gpt2") == 0) {
        c->arch = LB_ARCH_GPT2;
        c->rope_style = LB_ROPE_NONE;
    } else {
        return lb_fail(err, "%s: general.architecture is '%s' (lowbit runs llama, mistral, qwen2, "
                       "gpt2)", f->path, gguf_printable(arch.s, arch.len, shown, sizeof shown));
    }
    gguf_str name;
    if (gguf_find(f, "general.name") && gguf_get_str(f, "general.name", &name, NULL) == 0)
        gguf_printable(name.s, name.len, c->name, sizeof c->name);

    /* Upper bounds only keep products in range; the tensors' shapes, checked against these
     * sizes when the model is bound, are what ties them to real data. */
    const int big = 1 << 30;
    if (get_arch_int(f, a, "embedding_length", true, 0, 1, big, &c->dim, err) ||
        get_arch_int(f, a, "block_count", true, 0, 1, MAX_LAYERS, &c->n_layers, err) ||
        get_arch_int(f, a, "feed_forward_length", true, 0, 1, big, &c->hidden_dim, err) ||
        get_arch_int(f, a, "attention.head_count", true, 0, 1, big, &c->n_heads, err) ||
        get_arch_int(f, a, "attention.head_count_kv", false, c->n_heads, 1, big, &c->n_kv_heads,
                     err) ||
        get_arch_int(f, a, "context_length", false, 2048, 1, big, &c->max_ctx, err))
        return -1;
    char key_len[64];
    snprintf(key_len, sizeof key_len, "%s.attention.key_length", a);
    if (!gguf_find(f, key_len) && c->dim % c->n_heads)
        return lb_fail(err, "%s: %s.embedding_length %d is not a multiple of "
                       "%s.attention.head_count %d", f->path, a, c->dim, a, c->n_heads);
    if (c->n_heads % c->n_kv_heads)
        return lb_fail(err, "%s: %s.attention.head_count %d is not a multiple of "
                       "%s.attention.head_count_kv %d", f->path, a, c->n_heads, a, c->n_kv_heads);
    c->head_dim = c->dim / c->n_heads;
    if (get_arch_int(f, a, "attention.key_length", false, c->head_dim, 1, big, &c->head_dim, err))
        return -1;
    const char *eps_key = c->arch == LB_ARCH_GPT2 ? "attention.layer_norm_epsilon"
                                                  : "attention.layer_norm_rms_epsilon";
    if (get_arch_float(f, a, eps_key, 1e-5f, 0.0, false, 1.0, &c->norm_eps, err) ||
        get_arch_float(f, a, "rope.freq_base", 10000.0f, 0.0, true, 1e12, &c->rope_theta, err) ||
        get_arch_float(f, a, "rope.scaling.factor", 0.0f, 0.0, false, 1e6,
                       &c->rope_scaling_factor, err))
        return -1;
    return 0;
}

/* ---- tokenizer -------------------------------------------------------------------------- */

static int read_tokenizer(const gguf_file *f, lb_model *m, lb_error *err)
{
    const gguf_kv *tokens = gguf_find(f, "tokenizer.ggml.tokens");
    gguf_str model;
    char have[64], shown[96];
    if (!tokens)
        return lb_fail(err, "%s: no vocabulary (metadata key 'tokenizer.ggml.tokens' is missing)",
                       f->path);
    if (tokens->type != GGUF_ARRAY || tokens->arr_type != GGUF_STRING)
        return lb_fail(err, "%s: metadata key 'tokenizer.ggml.tokens' is %s (expected an array of "
                       "strings)", f->path, gguf_kv_kind(tokens, have, sizeof have));
    if (tokens->arr_n == 0 || tokens->arr_n > MAX_VOCAB)
        return lb_fail(err, "%s: metadata key 'tokenizer.ggml.tokens' has %" PRIu64 " tokens "
                       "(expected 1 to %d)", f->path, tokens->arr_n, MAX_VOCAB);
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, err))
        return -1;
    lb_tok_kind kind;
    if (model.len == 5 && memcmp(model.s, "llama", 5) == 0)
        kind = LB_TOK_SPM;
    else if (model.len == 4 && memcmp(model.s, "gpt2", 4) == 0)
        kind = LB_TOK_BPE;
    else
        return lb_fail(err, "%s: tokenizer.ggml.model is '%s' (expected 'llama' or 'gpt2')",
                       f->path, gguf_printable(model.s, model.len, shown, sizeof shown));

    int n = (int)tokens->arr_n;
    for (int i = 0; i < n; i++)
        if (tokens->arr_strs[i].len > MAX_PIECE)
            return lb_fail(err, "%s: tokenizer.ggml.tokens[%d] is %" PRIu64 " bytes long "
                           "(expected at most %d)", f->path, i, tokens->arr_strs[i].len,
                           MAX_PIECE);
    const gguf_kv *scores = gguf_find(f, "tokenizer.ggml.scores");
    const gguf_kv *types = gguf_find(f, "tokenizer.ggml.token_type");
    const gguf_kv *arrays[] = {scores, types};
    const char *names[] = {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"};
    for (int i = 0; i < 2; i++) {
        if (!arrays[i])
            continue;
        if (arrays[i]->type != GGUF_ARRAY || !arrays[i]->arr_data)
            return lb_fail(err, "%s: metadata key '%s' is %s (expected an array of numbers)",
                           f->path, names[i], gguf_kv_kind(arrays[i], have, sizeof have));
        if (arrays[i]->arr_n != tokens->arr_n)
            return lb_fail(err, "%s: metadata key '%s' has %" PRIu64 " entries, expected %d "
                           "(one per token)", f->path, names[i], arrays[i]->arr_n, n);
    }

    lb_tokenizer *t = tok_create(kind, n);
    m->tok = t;
    for (int i = 0; i < n; i++) {
        /* A float64 score beyond float's range would be undefined to convert: clamp it. */
        double score = scores ? gguf_arr_float(scores, (uint64_t)i) : 0.0;
        score = score > FLT_MAX ? FLT_MAX : score < -FLT_MAX ? -FLT_MAX : score;
        int64_t type = types ? gguf_arr_int(types, (uint64_t)i) : LB_TOKEN_NORMAL;
        tok_set_piece(t, i, tokens->arr_strs[i].s, tokens->arr_strs[i].len, (float)score,
                      type >= 0 && type <= 255 ? (int)type : 0);
    }

    const gguf_kv *merges = gguf_find(f, "tokenizer.ggml.merges");
    if (merges) {
        if (merges->type != GGUF_ARRAY || merges->arr_type != GGUF_STRING)
            return lb_fail(err, "%s: metadata key 'tokenizer.ggml.merges' is %s (expected an "
                           "array of strings)", f->path, gguf_kv_kind(merges, have, sizeof have));
        for (uint64_t i = 0; i < merges->arr_n; i++) {
            const gguf_str *s = &merges->arr_strs[i];
            const char *sp = memchr(s->s + (s->len > 0), ' ', s->len ? s->len - 1 : 0);
            if (!sp)
                return lb_fail(err, "%s: tokenizer.ggml.merges[%" PRIu64 "] has no space "
                               "separating the pair", f->path, i);
            tok_add_merge(t, s->s, (size_t)(sp - s->s), sp + 1, s->len - (size_t)(sp - s->s) - 1);
        }
    }
    if (kind == LB_TOK_BPE && !merges)
        return lb_fail(err, "%s: a gpt2-style tokenizer needs 'tokenizer.ggml.merges'", f->path);

    struct {
        const char *key;
        int *slot;
    } ids[] = {{"tokenizer.ggml.bos_token_id", &t->bos_id},
               {"tokenizer.ggml.eos_token_id", &t->eos_id},
               {"tokenizer.ggml.unknown_token_id", &t->unk_id},
               {"tokenizer.ggml.padding_token_id", &t->pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int64_t v;
        if (!gguf_find(f, ids[i].key))
            continue;
        if (gguf_get_int(f, ids[i].key, &v, err))
            return -1;
        if (v < 0 || v == UINT32_MAX)
            continue;   /* -1, stored signed or as uint32, means "none" */
        if (v >= n)
            return lb_fail(err, "%s: %s is %" PRId64 ", outside the %d-token vocabulary", f->path,
                           ids[i].key, v, n);
        *ids[i].slot = (int)v;
    }
    bool b;
    if (gguf_find(f, "tokenizer.ggml.add_bos_token") &&
        gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &b, NULL) == 0)
        t->add_bos = b;
    else
        t->add_bos = kind == LB_TOK_SPM;
    if (gguf_find(f, "tokenizer.ggml.add_eos_token") &&
        gguf_get_bool(f, "tokenizer.ggml.add_eos_token", &b, NULL) == 0)
        t->add_eos = b;
    if (gguf_find(f, "tokenizer.ggml.add_space_prefix") &&
        gguf_get_bool(f, "tokenizer.ggml.add_space_prefix", &b, NULL) == 0)
        t->add_space_prefix = b;
    gguf_str pre;
    t->pretok = LB_PRETOK_GPT2;
    if (gguf_find(f, "tokenizer.ggml.pre") &&
        gguf_get_str(f, "tokenizer.ggml.pre", &pre, NULL) == 0) {
        if ((pre.len == 9 && memcmp(pre.s, "llama-bpe", 9) == 0) ||
            (pre.len == 6 && memcmp(pre.s, "llama3", 6) == 0) ||
            (pre.len == 9 && memcmp(pre.s, "smaug-bpe", 9) == 0))
            t->pretok = LB_PRETOK_LLAMA3;
        else if (pre.len == 5 && memcmp(pre.s, "qwen2", 5) == 0)
            t->pretok = LB_PRETOK_QWEN2;
    }
    gguf_str tmpl;
    if (gguf_find(f, "tokenizer.chat_template") &&
        gguf_get_str(f, "tokenizer.chat_template", &tmpl, NULL) == 0)
        t->chat_template = lb_strndup(tmpl.s, tmpl.len);
    if (tok_finalize(t, err))
        return lb_fail_prefix(err, "%s: ", f->path);
    return 0;
}

int lb_load_gguf(const char *path, lb_model **out, lb_error *err)
{
    gguf_file *f;
    *out = NULL;
    if (gguf_open(path, &f, err))
        return -1;
    lb_model *m = lb_model_new(path, "gguf");
    if (read_config(f, m, err) || read_tokenizer(f, m, err))
        goto fail;
    if (m->cfg.vocab_size == 0)
        m->cfg.vocab_size = m->tok->n_vocab;
    if (!m->cfg.name[0]) {
        const char *base = strrchr(path, '/');
        snprintf(m->cfg.name, sizeof m->cfg.name, "%s", base ? base + 1 : path);
    }
    for (int64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor_info *ti = &f->tensors[i];
        lb_tensor t = {0};
        snprintf(t.name, sizeof t.name, "%s", ti->name);
        t.type = (lb_type)ti->type;
        t.n_dims = ti->n_dims;
        for (int d = 0; d < LB_MAX_DIMS; d++)
            t.ne[d] = ti->ne[d];
        t.data = (void *)gguf_tensor_data(f, ti);
        t.nbytes = ti->nbytes;
        lb_model_add_tensor(m, &t);
    }
    if (lb_model_bind(m, err))
        goto fail;
    /* The model keeps the map; the rest of the parsed header is released. */
    lb_model_own_map(m, &f->map);
    f->map.data = NULL;
    f->map.size = 0;
    gguf_close(f);
    *out = m;
    return 0;
fail:
    lb_model_free(m);
    gguf_close(f);
    return -1;
}
