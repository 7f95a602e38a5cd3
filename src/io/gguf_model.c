/* GGUF → lb_model: config from "{arch}.*" metadata, tensors pointing into the map, and the
 * tokenizer from "tokenizer.ggml.*". And back: lb_model_save writes lowbit's quantized GGUF.
 *
 * lowbit's group-quantized tensors (types LBQ2, LBQ3, LBQ4, LBQ8, LBW8A8 = ids 100..104, see
 * tensor.h; ggml's ids stay below 64) are stored as up to five GGUF tensors, so every byte
 * count follows from the GGUF tensor table alone:
 *   NAME            LBQk  [n_blocks * 32, rows]  codes, 32-code blocks as lb_qpack_block packs
 *                                               them, columns gathered into their groups
 *                                               (act-order) and each group padded to whole
 *                                               blocks (lb_qlayout_create decides the order)
 *   NAME.lb_scale   F32   [n_groups, rows]
 *   NAME.lb_zero    I8    [n_groups, rows]      zero points as unsigned bytes; absent when every
 *                                               zero is 2^(bits-1) (symmetric)
 *   NAME.lb_gidx    I32   [cols]                act-order group of each input column; absent
 *                                               when column c is in group c / group_size
 *   NAME.lb_meta    I32   [4]                   cols, group_size (0: per channel), n_groups,
 *                                               flags (1: zero points, 2: act-order index)
 * The loader rebuilds the layout and repacks each row as [scales][zeros][codes] for the
 * kernels. How the model was quantized is in "lowbit.quant.*" (method, bits, group_size, sym,
 * act_order, w8a8, alpha, damp, calib_samples, calib_seqlen, calib_file). */
#include "io/gguf.h"
#include "io/gguf_write.h"
#include "io/loaders.h"
#include "quant/pack.h"

#include <float.h>
#include <math.h>
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

/* ---- lowbit's quantized tensors ---------------------------------------------------------- */

static bool is_lb_type(int type) { return type >= LB_TYPE_LBQ2 && type <= LB_TYPE_LBW8A8; }

static int type_bits(int type)
{
    return type == LB_TYPE_LBQ2 ? 2 : type == LB_TYPE_LBQ3 ? 3 : type == LB_TYPE_LBQ4 ? 4 : 8;
}

static const char *const AUX[] = {".lb_scale", ".lb_zero", ".lb_gidx", ".lb_meta"};

/* The part tensor NAME + suffix with the expected type and shape (ne1 0: a vector), or NULL
 * with a message when required. */
static const lb_tensor *aux_tensor(const lb_model *m, const lb_tensor *t, int which, int type,
                                   int64_t ne0, int64_t ne1, bool required, lb_error *err,
                                   int *fail)
{
    char name[LB_MAX_NAME + 16];
    snprintf(name, sizeof name, "%s%s", t->name, AUX[which]);
    const lb_tensor *a = lb_model_find(m, name);
    if (!a) {
        if (required) {
            *fail = 1;
            lb_fail(err, "%s: tensor '%s' (%s) has no '%s' beside it", m->path, t->name,
                    lb_type_name(t->type), name);
        }
        return NULL;
    }
    bool shape_ok = ne1 ? a->n_dims == 2 && a->ne[0] == ne0 && a->ne[1] == ne1
                        : a->n_dims == 1 && a->ne[0] == ne0;
    if ((int)a->type != type || !shape_ok) {
        *fail = 1;
        if (ne1)
            lb_fail(err, "%s: tensor '%s' is %s [%" PRId64 ", %" PRId64 "], expected %s [%" PRId64
                    ", %" PRId64 "]", m->path, name, lb_type_name(a->type), a->ne[0],
                    a->n_dims > 1 ? a->ne[1] : 1, lb_type_name(type), ne0, ne1);
        else
            lb_fail(err, "%s: tensor '%s' is %s with %" PRId64 " elements in %d dimension(s), "
                    "expected %s [%" PRId64 "]", m->path, name, lb_type_name(a->type), a->ne[0],
                    a->n_dims, lb_type_name(type), ne0);
        return NULL;
    }
    return a;
}

static int32_t read_i32(const void *p, int64_t i)
{
    int32_t v;
    memcpy(&v, (const char *)p + i * 4, 4);   /* GGUF only promises 2-byte alignment here */
    return v;
}

/* Turns tensor t (codes as stored) into a runtime tensor with its lb_qlayout. */
static int unpack_lb_tensor(lb_model *m, lb_tensor *t, lb_error *err)
{
    int fail = 0;
    if (t->n_dims != 2 || t->ne[1] < 1 || t->ne[1] > (1 << 24))
        return lb_fail(err, "%s: tensor '%s' (%s) has %d dimension(s), expected [codes, rows]",
                       m->path, t->name, lb_type_name(t->type), t->n_dims);
    const lb_tensor *meta = aux_tensor(m, t, 3, LB_TYPE_I32, 4, 0, true, err, &fail);
    if (!meta)
        return -1;
    int32_t cols = read_i32(meta->data, 0), group = read_i32(meta->data, 1);
    int32_t n_groups = read_i32(meta->data, 2), flags = read_i32(meta->data, 3);
    if (flags & ~3)
        return lb_fail(err, "%s: tensor '%s.lb_meta': flags %d (expected 0 to 3)", m->path,
                       t->name, flags);
    int rows = (int)t->ne[1], bits = type_bits(t->type);
    bool has_zero = flags & 1, act = flags & 2;
    const lb_tensor *gidx = NULL;
    if (act && cols > 0 && !(gidx = aux_tensor(m, t, 2, LB_TYPE_I32, cols, 0, true, err, &fail)))
        return -1;
    int32_t *g = NULL;
    if (gidx) {
        g = lb_malloc((size_t)cols * sizeof(int32_t));
        memcpy(g, gidx->data, (size_t)cols * sizeof(int32_t));
    }
    lb_qlayout *L = lb_qlayout_create(rows, cols, bits, group, n_groups, has_zero,
                                      t->type == LB_TYPE_LBW8A8, g, err);
    free(g);
    if (!L)
        return lb_fail_prefix(err, "%s: tensor '%s.lb_meta': ", m->path, t->name);
    lb_model_own(m, L);
    if (t->ne[0] != (int64_t)L->n_blocks * 32)
        return lb_fail(err, "%s: tensor '%s' has rows of %" PRId64 " codes, expected %d (%d "
                       "blocks of 32 for %d columns in %d groups)", m->path, t->name, t->ne[0],
                       L->n_blocks * 32, L->n_blocks, cols, n_groups);
    const lb_tensor *sc = aux_tensor(m, t, 0, LB_TYPE_F32, n_groups, rows, true, err, &fail);
    const lb_tensor *zp = has_zero && sc ? aux_tensor(m, t, 1, LB_TYPE_I8, n_groups, rows, true,
                                                      err, &fail) : NULL;
    if (fail)
        return -1;
    int maxq = (1 << bits) - 1;
    size_t ng = (size_t)rows * (size_t)n_groups;
    for (size_t i = 0; zp && i < ng; i++)
        if (((const uint8_t *)zp->data)[i] > maxq)
            return lb_fail(err, "%s: tensor '%s.lb_zero': zero point %d at row %zu, group %zu "
                           "(expected at most %d for %d bits)", m->path, t->name,
                           ((const uint8_t *)zp->data)[i], i / (size_t)n_groups,
                           i % (size_t)n_groups, maxq, bits);
    uint8_t *data = lb_malloc((size_t)rows * L->row_bytes);
    lb_model_own(m, data);
    size_t codes = (size_t)L->n_blocks * (size_t)bits * 4;
    for (int r = 0; r < rows; r++) {
        uint8_t *row = data + (size_t)r * L->row_bytes;
        memset(row, 0, L->codes_offset);
        memcpy(row, (const char *)sc->data + (size_t)r * n_groups * 4, (size_t)n_groups * 4);
        for (int k = 0; k < n_groups; k++) {
            float v;
            memcpy(&v, row + (size_t)k * 4, 4);
            if (!isfinite(v))
                return lb_fail(err, "%s: tensor '%s.lb_scale': scale at row %d, group %d is not "
                               "finite", m->path, t->name, r, k);
        }
        if (zp)
            memcpy(row + (size_t)n_groups * 4, (const char *)zp->data + (size_t)r * n_groups,
                   (size_t)n_groups);
        memcpy(row + L->codes_offset, (const char *)t->data + (size_t)r * codes, codes);
    }
    t->ne[0] = cols;
    t->data = data;
    t->nbytes = (size_t)rows * L->row_bytes;
    t->qlayout = L;
    return 0;
}

/* Rebuilds every lowbit-quantized tensor and drops the parts stored beside them. */
static int unpack_lb_tensors(lb_model *m, lb_error *err)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (is_lb_type(m->tensors[i].type) && unpack_lb_tensor(m, &m->tensors[i], err))
            return -1;
    int kept = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const char *name = m->tensors[i].name;
        size_t len = strlen(name);
        bool part = false;
        for (int a = 0; a < 4 && !part; a++) {
            size_t al = strlen(AUX[a]);
            if (len > al && strcmp(name + len - al, AUX[a]) == 0) {
                char owner[LB_MAX_NAME];
                snprintf(owner, sizeof owner, "%.*s", (int)(len - al), name);
                const lb_tensor *o = lb_model_find(m, owner);
                if (!o || !o->qlayout)
                    return lb_fail(err, "%s: tensor '%s' belongs to no lowbit-quantized tensor "
                                   "'%s'", m->path, name, owner);
                part = true;
            }
        }
        if (!part)
            m->tensors[kept++] = m->tensors[i];
    }
    m->n_tensors = kept;
    return 0;
}

static int read_quant_info(const gguf_file *f, lb_model *m, lb_error *err)
{
    lb_quant_info *q = &m->quant;
    gguf_str s;
    if (!gguf_find(f, "lowbit.quant.method"))
        return 0;
    if (gguf_get_str(f, "lowbit.quant.method", &s, err))
        return -1;
    gguf_printable(s.s, s.len, q->method, sizeof q->method);
    struct {
        const char *key;
        int *slot;
        int max;
    } ints[] = {{"lowbit.quant.bits", &q->bits, 8},
                {"lowbit.quant.group_size", &q->group_size, 1 << 24},
                {"lowbit.quant.calib_samples", &q->calib_samples, 1 << 30},
                {"lowbit.quant.calib_seqlen", &q->calib_seqlen, 1 << 30}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        if (!gguf_find(f, ints[i].key))
            continue;
        if (gguf_get_int(f, ints[i].key, &v, err))
            return -1;
        if (v < 0 || v > ints[i].max)
            return lb_fail(err, "%s: metadata key '%s' is %" PRId64 " (expected 0 to %d)",
                           f->path, ints[i].key, v, ints[i].max);
        *ints[i].slot = (int)v;
    }
    struct {
        const char *key;
        bool *slot;
    } flags[] = {{"lowbit.quant.sym", &q->sym},
                 {"lowbit.quant.act_order", &q->act_order},
                 {"lowbit.quant.w8a8", &q->w8a8}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (gguf_find(f, flags[i].key) && gguf_get_bool(f, flags[i].key, flags[i].slot, err))
            return -1;
    struct {
        const char *key;
        float *slot;
    } floats[] = {{"lowbit.quant.alpha", &q->alpha}, {"lowbit.quant.damp", &q->damp}};
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        double v;
        if (!gguf_find(f, floats[i].key))
            continue;
        if (gguf_get_float(f, floats[i].key, &v, err))
            return -1;
        if (!(v >= -1e6 && v <= 1e6))
            return lb_fail(err, "%s: metadata key '%s' is %g (expected a finite number)",
                           f->path, floats[i].key, v);
        *floats[i].slot = (float)v;
    }
    if (gguf_find(f, "lowbit.quant.calib_file") &&
        gguf_get_str(f, "lowbit.quant.calib_file", &s, NULL) == 0)
        gguf_printable(s.s, s.len, q->calib_file, sizeof q->calib_file);
    return 0;
}

static void free_gguf_header(void *p) { gguf_close(p); }

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
    if (read_quant_info(f, m, err) || unpack_lb_tensors(m, err) || lb_model_bind(m, err))
        goto fail;
    /* The model keeps the map, and the parsed header for lb_model_save to copy. */
    lb_model_own_map(m, &f->map);
    f->map.data = NULL;
    f->map.size = 0;
    m->src_meta = f;
    m->src_meta_free = free_gguf_header;
    *out = m;
    return 0;
fail:
    lb_model_free(m);
    gguf_close(f);
    return -1;
}

/* ---- saving ------------------------------------------------------------------------------ */

static bool saved(const lb_model *m, const lb_tensor *t)
{
    return lb_model_tensor_stored(m, t);
}

static void set_quant_meta(gguf_writer *w, const lb_quant_info *q)
{
    if (!q->method[0])
        return;
    gguf_writer_set_str(w, "lowbit.quant.method", q->method);
    gguf_writer_set_u32(w, "lowbit.quant.bits", (uint32_t)q->bits);
    gguf_writer_set_u32(w, "lowbit.quant.group_size", (uint32_t)q->group_size);
    gguf_writer_set_bool(w, "lowbit.quant.sym", q->sym);
    gguf_writer_set_bool(w, "lowbit.quant.act_order", q->act_order);
    gguf_writer_set_bool(w, "lowbit.quant.w8a8", q->w8a8);
    gguf_writer_set_f32(w, "lowbit.quant.alpha", q->alpha);
    gguf_writer_set_f32(w, "lowbit.quant.damp", q->damp);
    gguf_writer_set_u32(w, "lowbit.quant.calib_samples", (uint32_t)q->calib_samples);
    gguf_writer_set_u32(w, "lowbit.quant.calib_seqlen", (uint32_t)q->calib_seqlen);
    if (q->calib_file[0])
        gguf_writer_set_str(w, "lowbit.quant.calib_file", q->calib_file);
}

static int declare(gguf_writer *w, const lb_tensor *t, lb_error *err)
{
    const lb_qlayout *L = t->qlayout;
    if (!L)
        return gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, err);
    char name[LB_MAX_NAME + 16];
    int64_t codes[2] = {(int64_t)L->n_blocks * 32, t->ne[1]};
    int64_t groups[2] = {L->n_groups, t->ne[1]};
    int64_t cols = L->cols, four = 4;
    if (gguf_writer_add_tensor(w, t->name, t->type, 2, codes, err))
        return -1;
    snprintf(name, sizeof name, "%s.lb_scale", t->name);
    if (gguf_writer_add_tensor(w, name, LB_TYPE_F32, 2, groups, err))
        return -1;
    snprintf(name, sizeof name, "%s.lb_zero", t->name);
    if (L->has_zero && gguf_writer_add_tensor(w, name, LB_TYPE_I8, 2, groups, err))
        return -1;
    snprintf(name, sizeof name, "%s.lb_gidx", t->name);
    if (L->g_idx && gguf_writer_add_tensor(w, name, LB_TYPE_I32, 1, &cols, err))
        return -1;
    snprintf(name, sizeof name, "%s.lb_meta", t->name);
    return gguf_writer_add_tensor(w, name, LB_TYPE_I32, 1, &four, err);
}

static int *rope_rows(const lb_model *m, const lb_tensor *t);

static int write_rows(gguf_writer *w, const lb_tensor *t, const int *perm, lb_error *err)
{
    int64_t rows = t->n_dims > 1 ? t->ne[1] : t->ne[0];   /* a vector's rows are elements */
    size_t rb = t->nbytes / (size_t)rows;
    for (int64_t r = 0; r < rows; r++)
        if (gguf_writer_write(w, (const char *)t->data + (size_t)perm[r] * rb, rb, err))
            return -1;
    return 0;
}

static int write_tensor(const lb_model *m, gguf_writer *w, const lb_tensor *t, lb_error *err)
{
    const lb_qlayout *L = t->qlayout;
    int *perm = rope_rows(m, t);
    if (!L) {
        int rc = perm ? write_rows(w, t, perm, err) : gguf_writer_write(w, t->data, t->nbytes, err);
        free(perm);
        return rc;
    }
    int rows = (int)t->ne[1];
    size_t codes = (size_t)L->n_blocks * (size_t)L->bits * 4;
    const uint8_t *base = t->data;
#define ROW(r) (base + (size_t)(perm ? perm[r] : (r)) * L->row_bytes)
    int rc = 0;
    for (int r = 0; r < rows && !rc; r++)
        rc = gguf_writer_write(w, ROW(r) + L->codes_offset, codes, err);
    for (int r = 0; r < rows && !rc; r++)
        rc = gguf_writer_write(w, ROW(r), (size_t)L->n_groups * 4, err);
    for (int r = 0; L->has_zero && r < rows && !rc; r++)
        rc = gguf_writer_write(w, ROW(r) + (size_t)L->n_groups * 4, (size_t)L->n_groups, err);
#undef ROW
    free(perm);
    if (rc)
        return -1;
    if (L->g_idx && gguf_writer_write(w, L->g_idx, (size_t)L->cols * 4, err))
        return -1;
    int32_t meta[4] = {L->cols, L->group_size, L->n_groups,
                       (L->has_zero ? 1 : 0) | (L->g_idx ? 2 : 0)};
    return gguf_writer_write(w, meta, sizeof meta, err);
}

/* ---- metadata for models that did not come from GGUF ---------------------------------------- */

/* GGUF's "llama" architecture pairs RoPE dimensions (2i, 2i+1); a Hugging Face Llama pairs i
 * with i + head_dim/2. Saving such a model as "llama" re-pairs the rows of q and k: file row
 * (h, 2i + j) is the model's row (h, j * head_dim/2 + i). NULL when rows keep their order. */
static int *rope_rows(const lb_model *m, const lb_tensor *t)
{
    const lb_config *c = &m->cfg;
    bool qk = strstr(t->name, ".attn_q.") || strstr(t->name, ".attn_k.");
    int64_t rows = t->n_dims > 1 ? t->ne[1] : t->ne[0];
    if (!qk || m->src_meta || c->arch != LB_ARCH_LLAMA || strcmp(c->arch_name, "qwen2") == 0 ||
        c->rope_style != LB_ROPE_HALF || c->head_dim % 2 || rows % c->head_dim)
        return NULL;
    int hd = c->head_dim, half = hd / 2;
    int *perm = lb_malloc((size_t)rows * sizeof(int));
    for (int64_t r = 0; r < rows; r++) {
        int h = (int)(r / hd), k = (int)(r % hd);
        perm[r] = h * hd + (k % 2) * half + k / 2;
    }
    return perm;
}

/* SentencePiece scores for a vocabulary that came with merge ranks (tokenizer.json): a piece
 * scores minus the best rank of a merge forming it, so merging by score is merging by rank;
 * pieces no merge forms score below every merged one. */
static float *spm_scores(const lb_tokenizer *t)
{
    float *s = lb_malloc((size_t)t->n_vocab * sizeof(float) + 1);
    bool ranked = t->merge_ranks && lb_strmap_count(t->merge_ranks) > 0;
    for (int id = 0; id < t->n_vocab; id++) {
        s[id] = t->scores[id];
        if (!ranked)
            continue;
        const char *p = t->pieces[id];
        size_t len = (size_t)t->piece_len[id];
        int best = -1;
        char key[1024];
        for (size_t k = 1; k < len && len + 1 < sizeof key; k++) {
            memcpy(key, p, k);
            key[k] = ' ';
            memcpy(key + k + 1, p + k, len - k);
            int rank;
            if (lb_strmap_get(t->merge_ranks, key, len + 1, &rank) && (best < 0 || rank < best))
                best = rank;
        }
        s[id] = best >= 0 ? -(float)best : -1e9f;
    }
    return s;
}

static int model_meta(gguf_writer *w, const lb_model *m, lb_error *err)
{
    const lb_config *c = &m->cfg;
    const lb_tokenizer *t = m->tok;
    if (t->kind != LB_TOK_SPM)
        return lb_fail(err, "%s: saving a %s model with a byte-level BPE tokenizer is not "
                       "supported yet (load it from GGUF to quantize it)", m->path, m->format);
    if (c->rope_scaling_factor != 0)
        return lb_fail(err, "%s: saving a model with RoPE frequency scaling from %s is not "
                       "supported yet", m->path, m->format);
    const char *a = c->arch == LB_ARCH_GPT2 ? "gpt2" : strcmp(c->arch_name, "qwen2") == 0
                                                          ? "qwen2" : "llama";
    char key[128];
#define AKEY(k) (snprintf(key, sizeof key, "%s.%s", a, k), key)
    gguf_writer_set_str(w, "general.architecture", a);
    gguf_writer_set_str(w, "general.name", c->name);
    gguf_writer_set_u32(w, AKEY("embedding_length"), (uint32_t)c->dim);
    gguf_writer_set_u32(w, AKEY("block_count"), (uint32_t)c->n_layers);
    gguf_writer_set_u32(w, AKEY("feed_forward_length"), (uint32_t)c->hidden_dim);
    gguf_writer_set_u32(w, AKEY("attention.head_count"), (uint32_t)c->n_heads);
    gguf_writer_set_u32(w, AKEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    gguf_writer_set_u32(w, AKEY("context_length"), (uint32_t)c->max_ctx);
    if (c->head_dim != c->dim / c->n_heads)
        gguf_writer_set_u32(w, AKEY("attention.key_length"), (uint32_t)c->head_dim);
    if (c->arch == LB_ARCH_GPT2) {
        gguf_writer_set_f32(w, AKEY("attention.layer_norm_epsilon"), c->norm_eps);
    } else {
        gguf_writer_set_f32(w, AKEY("attention.layer_norm_rms_epsilon"), c->norm_eps);
        gguf_writer_set_f32(w, AKEY("rope.freq_base"), c->rope_theta);
    }
#undef AKEY
    gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)t->pieces, NULL,
                            (uint64_t)t->n_vocab);
    float *scores = spm_scores(t);
    gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_FLOAT32, scores, (uint64_t)t->n_vocab);
    free(scores);
    int32_t *types = lb_malloc((size_t)t->n_vocab * sizeof(int32_t) + 1);
    for (int i = 0; i < t->n_vocab; i++)
        types[i] = t->types[i];
    gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_INT32, types, (uint64_t)t->n_vocab);
    free(types);
    const struct {
        const char *key;
        int id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", t->bos_id},
               {"tokenizer.ggml.eos_token_id", t->eos_id},
               {"tokenizer.ggml.unknown_token_id", t->unk_id},
               {"tokenizer.ggml.padding_token_id", t->pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].id >= 0)
            gguf_writer_set_u32(w, ids[i].key, (uint32_t)ids[i].id);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", t->add_bos);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", t->add_eos);
    gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", t->add_space_prefix);
    if (t->chat_template)
        gguf_writer_set_str(w, "tokenizer.chat_template", t->chat_template);
    return 0;
}

int lb_model_save(const lb_model *m, const char *path, lb_error *err)
{
    gguf_writer *w = gguf_writer_create();
    const gguf_file *src = m->src_meta;
    for (int64_t i = 0; src && i < src->n_kv; i++) {
        const gguf_kv *kv = &src->kv[i];
        /* the quantization keys are rewritten; nested arrays cannot be copied (and mean
         * nothing to lowbit) */
        if (strncmp(kv->key, "lowbit.quant.", 13) == 0 ||
            (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_ARRAY))
            continue;
        gguf_writer_copy_kv(w, kv);
    }
    if (!src && model_meta(w, m, err)) {
        gguf_writer_free(w);
        return -1;
    }
    set_quant_meta(w, &m->quant);
    int rc = 0;
    for (int i = 0; i < m->n_tensors && !rc; i++)
        if (saved(m, &m->tensors[i]))
            rc = declare(w, &m->tensors[i], err);
    if (!rc)
        rc = gguf_writer_open(w, path, err);
    for (int i = 0; i < m->n_tensors && !rc; i++)
        if (saved(m, &m->tensors[i]))
            rc = write_tensor(m, w, &m->tensors[i], err);
    if (!rc)
        rc = gguf_writer_finish(w, err);
    gguf_writer_free(w);
    return rc;
}
