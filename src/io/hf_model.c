/* A Hugging Face model directory → lb_model: config.json for the shape, model.safetensors (or
 * the shards named by model.safetensors.index.json) for the weights, tokenizer.json (or GPT-2's
 * vocab.json + merges.txt) for the vocabulary.
 *
 * Tensor names are rewritten to the canonical GGUF names lb_model_bind expects, and each is
 * checked against the shape config.json implies before binding, so errors name the tensor as
 * the checkpoint spells it. Matrices stay in the map in their own dtype; norms and biases become
 * F32 copies; GPT-2's Conv1D weights, stored [in][out], are transposed into [out][in] copies. */
#include "io/export_hf.h"
#include "io/hf_config.h"
#include "io/loaders.h"
#include "quant/pack.h"
#include "io/safetensors.h"
#include "tokenizer/loaders.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INDEX_BYTES (64u << 20)

/* Sizes a tensor's shape is checked against, resolved from the config. */
typedef enum { S_NONE, S_DIM, S_Q, S_KV, S_QKV, S_FFN, S_VOCAB, S_POS } size_sym;

enum {
    R_REQUIRED = 1,   /* the model cannot run without it */
    R_CONV1D = 2,     /* GPT-2 Conv1D: stored [in][out] */
    R_SKIP = 4,       /* a buffer, not a weight (causal masks, cached RoPE frequencies) */
    R_HEAD = 8,       /* lm_head: required unless tied, skipped when tied */
};

typedef struct {
    const char *hf;      /* name in the checkpoint, after the layer prefix for layer rules */
    const char *gguf;    /* canonical name, after "blk.N." for layer rules */
    size_sym rows, cols; /* expected shape as the checkpoint lists it; cols S_NONE: a vector */
    int flags;
} name_rule;

static const name_rule LLAMA_GLOBAL[] = {
    {"model.embed_tokens.weight", "token_embd.weight", S_VOCAB, S_DIM, R_REQUIRED},
    {"model.norm.weight", "output_norm.weight", S_DIM, S_NONE, R_REQUIRED},
    {"lm_head.weight", "output.weight", S_VOCAB, S_DIM, R_HEAD},
};

static const name_rule LLAMA_LAYER[] = {
    {"input_layernorm.weight", "attn_norm.weight", S_DIM, S_NONE, R_REQUIRED},
    {"self_attn.q_proj.weight", "attn_q.weight", S_Q, S_DIM, R_REQUIRED},
    {"self_attn.k_proj.weight", "attn_k.weight", S_KV, S_DIM, R_REQUIRED},
    {"self_attn.v_proj.weight", "attn_v.weight", S_KV, S_DIM, R_REQUIRED},
    {"self_attn.o_proj.weight", "attn_output.weight", S_DIM, S_Q, R_REQUIRED},
    {"self_attn.q_proj.bias", "attn_q.bias", S_Q, S_NONE, 0},
    {"self_attn.k_proj.bias", "attn_k.bias", S_KV, S_NONE, 0},
    {"self_attn.v_proj.bias", "attn_v.bias", S_KV, S_NONE, 0},
    {"self_attn.o_proj.bias", "attn_output.bias", S_DIM, S_NONE, 0},
    {"post_attention_layernorm.weight", "ffn_norm.weight", S_DIM, S_NONE, R_REQUIRED},
    {"mlp.gate_proj.weight", "ffn_gate.weight", S_FFN, S_DIM, R_REQUIRED},
    {"mlp.up_proj.weight", "ffn_up.weight", S_FFN, S_DIM, R_REQUIRED},
    {"mlp.down_proj.weight", "ffn_down.weight", S_DIM, S_FFN, R_REQUIRED},
    {"self_attn.rotary_emb.inv_freq", NULL, S_NONE, S_NONE, R_SKIP},
};

static const name_rule GPT2_GLOBAL[] = {
    {"wte.weight", "token_embd.weight", S_VOCAB, S_DIM, R_REQUIRED},
    {"wpe.weight", "position_embd.weight", S_POS, S_DIM, R_REQUIRED},
    {"ln_f.weight", "output_norm.weight", S_DIM, S_NONE, R_REQUIRED},
    {"ln_f.bias", "output_norm.bias", S_DIM, S_NONE, R_REQUIRED},
    {"lm_head.weight", "output.weight", S_VOCAB, S_DIM, R_HEAD},
};

static const name_rule GPT2_LAYER[] = {
    {"ln_1.weight", "attn_norm.weight", S_DIM, S_NONE, R_REQUIRED},
    {"ln_1.bias", "attn_norm.bias", S_DIM, S_NONE, R_REQUIRED},
    {"attn.c_attn.weight", "attn_qkv.weight", S_DIM, S_QKV, R_REQUIRED | R_CONV1D},
    {"attn.c_attn.bias", "attn_qkv.bias", S_QKV, S_NONE, R_REQUIRED},
    {"attn.c_proj.weight", "attn_output.weight", S_Q, S_DIM, R_REQUIRED | R_CONV1D},
    {"attn.c_proj.bias", "attn_output.bias", S_DIM, S_NONE, R_REQUIRED},
    {"ln_2.weight", "ffn_norm.weight", S_DIM, S_NONE, R_REQUIRED},
    {"ln_2.bias", "ffn_norm.bias", S_DIM, S_NONE, R_REQUIRED},
    {"mlp.c_fc.weight", "ffn_up.weight", S_DIM, S_FFN, R_REQUIRED | R_CONV1D},
    {"mlp.c_fc.bias", "ffn_up.bias", S_FFN, S_NONE, R_REQUIRED},
    {"mlp.c_proj.weight", "ffn_down.weight", S_FFN, S_DIM, R_REQUIRED | R_CONV1D},
    {"mlp.c_proj.bias", "ffn_down.bias", S_DIM, S_NONE, R_REQUIRED},
    {"attn.bias", NULL, S_NONE, S_NONE, R_SKIP},
    {"attn.masked_bias", NULL, S_NONE, S_NONE, R_SKIP},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* The rules for one architecture and where each tensor was found (to catch duplicates and
 * missing ones). */
typedef struct {
    const char *dir;
    const hf_config *hc;
    const name_rule *global, *layer;
    int n_global, n_layer;
    const char *layer_prefix;   /* "model.layers." or "h." */
    const char *strip_prefix;   /* GPT-2 names may start with "transformer." */
    const char **found_global;  /* file each rule's tensor came from, or NULL */
    const char **found_layer;   /* [n_layers][n_layer] */
    struct qpart *qparts;       /* parts of quantized layers, assembled after all are read */
    int n_qparts;
} mapper;

/* One tensor of a quantized linear layer (GPTQ/AWQ qweight, qzeros, scales, g_idx; W8A8's int8
 * weight and weight_scale), found under "<module>.<part>". */
enum { QP_QWEIGHT, QP_QZEROS, QP_SCALES, QP_GIDX, QP_I8WEIGHT, QP_WSCALE, QP_COUNT };
static const char *const QP_SUFFIX[QP_COUNT] = {".qweight", ".qzeros", ".scales", ".g_idx",
                                                ".weight", ".weight_scale"};
struct qpart {
    char module[LB_MAX_NAME];
    const safetensors_tensor *part[QP_COUNT];
    const safetensors_file *file;
};

static int64_t resolve(const lb_config *c, size_sym s)
{
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (s) {
    case S_DIM: return c->dim;
    case S_Q: return q;
    case S_KV: return kv;
    case S_QKV: return q + 2 * kv;
    case S_FFN: return c->hidden_dim;
    case S_VOCAB: return c->vocab_size;
    case S_POS: return c->max_ctx;
    case S_NONE: break;
    }
    return 0;
}

static void format_shape(char *buf, size_t cap, const int64_t *shape, int n)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%" PRId64, d ? ", " : "", shape[d]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
}

static int check_tensor_shape(const safetensors_file *f, const safetensors_tensor *t,
                              const name_rule *r, const lb_config *c, lb_error *err)
{
    int64_t want[2] = {resolve(c, r->rows), resolve(c, r->cols)};
    int n_want = r->cols == S_NONE ? 1 : 2;
    if (t->n_dims == n_want && t->shape[0] == want[0] && (n_want == 1 || t->shape[1] == want[1]))
        return 0;
    char have_s[128], want_s[64];
    format_shape(have_s, sizeof have_s, t->shape, t->n_dims);
    format_shape(want_s, sizeof want_s, want, n_want);
    return lb_fail(err, "%s: tensor '%.200s' has shape %s, expected %s from config.json",
                   f->path, t->name, have_s, want_s);
}

static lb_type tensor_type(const char *dtype)
{
    if (strcmp(dtype, "F32") == 0)
        return LB_TYPE_F32;
    if (strcmp(dtype, "F16") == 0)
        return LB_TYPE_F16;
    if (strcmp(dtype, "BF16") == 0)
        return LB_TYPE_BF16;
    return LB_TYPE_COUNT;
}

/* One element of a 2- or 4-byte type as fp32; memcpy keeps unaligned data legal. */
static float element_f32(lb_type type, const unsigned char *p)
{
    if (type == LB_TYPE_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, p, 2);
    return type == LB_TYPE_F16 ? lb_fp16_to_fp32(h) : lb_bf16_to_fp32(h);
}

/* Builds the lb_tensor for a checkpoint tensor: points into the map where it can, copies
 * where the layout or type must change. */
static void make_tensor(lb_model *m, const safetensors_tensor *st, const name_rule *r,
                        const char *gguf_name, lb_tensor *t)
{
    lb_type type = tensor_type(st->dtype);
    size_t esz = (size_t)st->dtype_size, n = (size_t)st->n_elements;
    const unsigned char *src = st->data;
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", gguf_name);
    t->ne[0] = t->ne[1] = t->ne[2] = t->ne[3] = 1;
    if (r->cols == S_NONE) {
        /* The forward pass reads norms and biases as fp32 arrays. */
        float *dst = lb_malloc(n ? n * sizeof(float) : 1);
        for (size_t i = 0; i < n; i++)
            dst[i] = element_f32(type, src + i * esz);
        lb_model_own(m, dst);
        t->type = LB_TYPE_F32;
        t->n_dims = 1;
        t->ne[0] = st->shape[0];
        t->data = dst;
        t->nbytes = n * sizeof(float);
        return;
    }
    t->type = type;
    t->n_dims = 2;
    t->nbytes = st->nbytes;
    if (r->flags & R_CONV1D) {
        /* [in][out] → [out][in]: ggml order ne[0] = in = the file's first size. */
        int64_t in = st->shape[0], out = st->shape[1];
        unsigned char *dst = lb_malloc(n ? n * esz : 1);
        for (int64_t o = 0; o < out; o++)
            for (int64_t i = 0; i < in; i++)
                memcpy(dst + ((size_t)o * (size_t)in + (size_t)i) * esz,
                       src + ((size_t)i * (size_t)out + (size_t)o) * esz, esz);
        lb_model_own(m, dst);
        t->ne[0] = in;
        t->ne[1] = out;
        t->data = dst;
        return;
    }
    /* Row-major [out][in] is ggml's ne[0] = in, ne[1] = out. */
    t->ne[0] = st->shape[1];
    t->ne[1] = st->shape[0];
    if ((uintptr_t)src % esz) {
        /* A header whose length is not a multiple of the element size leaves the data
         * unaligned; the kernels load whole elements, so such tensors are copied. */
        void *copy = lb_malloc(st->nbytes ? st->nbytes : 1);
        memcpy(copy, src, st->nbytes);
        lb_model_own(m, copy);
        t->data = copy;
    } else {
        t->data = (void *)src;
    }
}

/* Finds the rule for a checkpoint name; *layer is -1 for global tensors. 0: found, 1: not a
 * name this architecture has, -1: error (layer out of range). */
static int match_name(const mapper *mp, const safetensors_file *f, const char *name,
                      const name_rule **rule, int *layer, lb_error *err)
{
    const char *s = name;
    if (mp->strip_prefix && strncmp(s, mp->strip_prefix, strlen(mp->strip_prefix)) == 0)
        s += strlen(mp->strip_prefix);
    *layer = -1;
    for (int i = 0; i < mp->n_global; i++)
        if (strcmp(s, mp->global[i].hf) == 0) {
            *rule = &mp->global[i];
            return 0;
        }
    size_t pl = strlen(mp->layer_prefix);
    if (strncmp(s, mp->layer_prefix, pl) != 0)
        return 1;
    s += pl;
    char *end;
    if (*s < '0' || *s > '9')
        return 1;
    long l = strtol(s, &end, 10);
    if (*end != '.' || end - s > 6)
        return 1;
    for (int i = 0; i < mp->n_layer; i++)
        if (strcmp(end + 1, mp->layer[i].hf) == 0) {
            if (l >= mp->hc->cfg.n_layers)
                return lb_fail(err, "%s: tensor '%.200s' belongs to layer %ld, but config.json "
                               "gives the model %d layer%s", f->path, name, l,
                               mp->hc->cfg.n_layers, mp->hc->cfg.n_layers == 1 ? "" : "s");
            *rule = &mp->layer[i];
            *layer = (int)l;
            return 0;
        }
    return 1;
}

/* In a quantized checkpoint, sets quantized layers' parts aside; 1 when st was one. */
static int stash_qpart(mapper *mp, const safetensors_file *f, const safetensors_tensor *st,
                       lb_error *err)
{
    if (!mp->hc->quant_method[0])
        return 0;
    size_t len = strlen(st->name);
    for (int k = 0; k < QP_COUNT; k++) {
        size_t sl = strlen(QP_SUFFIX[k]);
        if (len <= sl || len - sl >= LB_MAX_NAME || strcmp(st->name + len - sl, QP_SUFFIX[k]))
            continue;
        if (k == QP_I8WEIGHT && strcmp(st->dtype, "I8") != 0)
            continue;   /* a dense weight */
        struct qpart *q = NULL;
        for (int i = 0; i < mp->n_qparts && !q; i++)
            if (strlen(mp->qparts[i].module) == len - sl &&
                strncmp(mp->qparts[i].module, st->name, len - sl) == 0)
                q = &mp->qparts[i];
        if (!q) {
            mp->qparts = lb_realloc(mp->qparts, (size_t)(mp->n_qparts + 1) * sizeof *q);
            q = &mp->qparts[mp->n_qparts++];
            memset(q, 0, sizeof *q);
            snprintf(q->module, sizeof q->module, "%.*s", (int)(len - sl), st->name);
        }
        if (q->part[k])
            return lb_fail(err, "%s: tensor '%.200s' appears twice", f->path, st->name);
        q->part[k] = st;
        q->file = f;
        return 1;
    }
    return 0;
}

static lb_hf_part hf_part(const safetensors_tensor *st)
{
    lb_hf_part p = {0};
    if (st) {
        p.dtype = st->dtype;
        p.n_dims = st->n_dims;
        p.shape = st->shape;
        p.data = st->data;
    }
    return p;
}

/* Builds each quantized layer from its parts and packs it in lowbit's runtime format. */
static int add_quantized(lb_model *m, mapper *mp, lb_error *err)
{
    const hf_config *hc = mp->hc;
    for (int i = 0; i < mp->n_qparts; i++) {
        struct qpart *q = &mp->qparts[i];
        char name[LB_MAX_NAME + 16];
        snprintf(name, sizeof name, "%s.weight", q->module);
        const name_rule *r = NULL;
        int layer;
        int rc = match_name(mp, q->file, name, &r, &layer, err);
        if (rc < 0)
            return -1;
        if (rc > 0 || r->cols == S_NONE || (r->flags & (R_SKIP | R_CONV1D)) || layer < 0)
            return lb_fail(err, "%s: '%.200s' is not a linear layer lowbit can run quantized",
                           q->file->path, q->module);
        const char **found = &mp->found_layer[layer * mp->n_layer + (r - mp->layer)];
        if (*found)
            return lb_fail(err, "%s: layer '%.200s' is also in %s", q->file->path, q->module,
                           *found);
        *found = q->file->path;
        int64_t out = resolve(&hc->cfg, r->rows), in = resolve(&hc->cfg, r->cols);
        lb_hf_part p[QP_COUNT];
        for (int k = 0; k < QP_COUNT; k++)
            p[k] = hf_part(q->part[k]);
        lb_qweight qw;
        if (strcmp(hc->quant_method, "gptq") == 0)
            rc = lb_hf_gptq_to_qweight(name, hc->quant_bits, hc->quant_group, in, out,
                                       &p[QP_QWEIGHT], &p[QP_QZEROS], &p[QP_SCALES],
                                       &p[QP_GIDX], &qw, err);
        else if (strcmp(hc->quant_method, "awq") == 0)
            rc = hc->quant_bits != 4 ? lb_fail(err, "AWQ bits %d (expected 4)", hc->quant_bits)
                 : lb_hf_awq_to_qweight(name, hc->quant_group, in, out, &p[QP_QWEIGHT],
                                        &p[QP_QZEROS], &p[QP_SCALES], &qw, err);
        else
            rc = lb_hf_w8a8_to_qweight(name, in, out, &p[QP_I8WEIGHT], &p[QP_WSCALE], &qw, err);
        if (rc)
            return lb_fail_prefix(err, "%s: ", q->file->path);
        lb_tensor t = {.type = LB_TYPE_F32, .n_dims = 2, .ne = {in, out, 1, 1}};
        snprintf(t.name, sizeof t.name, "blk.%d.%s", layer, r->gguf);
        lb_model_add_tensor(m, &t);
        rc = lb_model_set_quantized(m, t.name, &qw, err);
        lb_qweight_free(&qw);
        if (rc)
            return -1;
    }
    if (mp->n_qparts) {
        lb_quant_info *qi = &m->quant;
        snprintf(qi->method, sizeof qi->method, "%.31s",
                 strcmp(hc->quant_method, "compressed-tensors") == 0 ? "w8a8" : hc->quant_method);
        qi->bits = hc->quant_bits ? hc->quant_bits : 8;
        qi->group_size = hc->quant_group;
        qi->w8a8 = strcmp(hc->quant_method, "compressed-tensors") == 0;
    }
    return 0;
}

static int add_tensor(lb_model *m, mapper *mp, const safetensors_file *f,
                      const safetensors_tensor *st, lb_error *err)
{
    int stashed = stash_qpart(mp, f, st, err);
    if (stashed)
        return stashed < 0 ? -1 : 0;
    const name_rule *r = NULL;
    int layer, rc = match_name(mp, f, st->name, &r, &layer, err);
    if (rc < 0)
        return -1;
    if (rc > 0)
        return lb_fail(err, "%s: tensor '%.200s' is not part of a %s model as lowbit knows it",
                       f->path, st->name, mp->hc->architecture);
    if ((r->flags & R_SKIP) || ((r->flags & R_HEAD) && mp->hc->tie_word_embeddings))
        return 0;
    const char **found = layer < 0 ? &mp->found_global[r - mp->global]
                                   : &mp->found_layer[layer * mp->n_layer + (r - mp->layer)];
    if (*found)
        return lb_fail(err, "%s: tensor '%.200s' is also in %s", f->path, st->name, *found);
    *found = f->path;
    if (tensor_type(st->dtype) == LB_TYPE_COUNT)
        return lb_fail(err, "%s: tensor '%.200s' has dtype %s; lowbit loads F32, F16 and BF16",
                       f->path, st->name, st->dtype);
    if (check_tensor_shape(f, st, r, &mp->hc->cfg, err))
        return -1;
    char gguf[LB_MAX_NAME];
    if (layer < 0)
        snprintf(gguf, sizeof gguf, "%s", r->gguf);
    else
        snprintf(gguf, sizeof gguf, "blk.%d.%s", layer, r->gguf);
    lb_tensor t;
    make_tensor(m, st, r, gguf, &t);
    lb_model_add_tensor(m, &t);
    return 0;
}

/* Every required tensor must have been found; names are given as the checkpoint spells them. */
static int check_complete(const mapper *mp, lb_error *err)
{
    for (int i = 0; i < mp->n_global; i++) {
        const name_rule *r = &mp->global[i];
        bool need = (r->flags & R_REQUIRED) ||
                    ((r->flags & R_HEAD) && !mp->hc->tie_word_embeddings);
        if (need && !mp->found_global[i])
            return lb_fail(err, "%s: tensor '%s' is missing from the checkpoint%s", mp->dir,
                           r->hf, (r->flags & R_HEAD) ? " (config.json sets "
                           "tie_word_embeddings to false)" : "");
    }
    for (int l = 0; l < mp->hc->cfg.n_layers; l++)
        for (int i = 0; i < mp->n_layer; i++)
            if ((mp->layer[i].flags & R_REQUIRED) && !mp->found_layer[l * mp->n_layer + i])
                return lb_fail(err, "%s: tensor '%s%d.%s' is missing from the checkpoint",
                               mp->dir, mp->layer_prefix, l, mp->layer[i].hf);
    return 0;
}

/* ---- shards ----------------------------------------------------------------------------- */

typedef struct {
    safetensors_file **files;
    int n;
} shard_set;

static void shards_close(shard_set *s)
{
    for (int i = 0; i < s->n; i++)
        safetensors_close(s->files[i]);
    free(s->files);
    s->files = NULL;
    s->n = 0;
}

/* Opens a shard and hands its map to the model, which then outlives the parsed header. */
static int open_shard(lb_model *m, shard_set *s, const char *path, lb_error *err)
{
    safetensors_file *f;
    if (safetensors_open(path, &f, err))
        return -1;
    lb_model_own_map(m, &f->map);
    f->map.data = NULL;
    f->map.size = 0;
    s->files = lb_realloc(s->files, (size_t)(s->n + 1) * sizeof *s->files);
    s->files[s->n++] = f;
    return 0;
}

/* model.safetensors.index.json: {"metadata": {…}, "weight_map": {tensor: shard file}}. Each
 * shard is opened once, and every tensor the index lists must be in the shard it names. */
static int open_index(lb_model *m, shard_set *s, const char *dir, const char *index_path,
                      lb_error *err)
{
    char *text;
    size_t len;
    if (lb_read_file(index_path, MAX_INDEX_BYTES, &text, &len, err))
        return -1;
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root)
        return lb_fail(err, "%s: line %d, column %d: %s", index_path, jerr.line, jerr.column,
                       jerr.text);
    int rc = -1;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        lb_fail(err, "%s: weight_map must be a non-empty object of tensor name → shard file",
                index_path);
        goto done;
    }
    const char *name;
    json_t *v;
    json_object_foreach(wm, name, v) {
        const char *file = json_string_value(v);
        if (!file || !file[0] || strchr(file, '/') || strcmp(file, "..") == 0) {
            lb_fail(err, "%s: weight_map[\"%.200s\"] must be a file name in the model's "
                    "directory", index_path, name);
            goto done;
        }
        int k;
        for (k = 0; k < s->n; k++) {
            const char *base = strrchr(s->files[k]->path, '/');
            if (strcmp(base ? base + 1 : s->files[k]->path, file) == 0)
                break;
        }
        if (k == s->n) {
            char *path = lb_path_join(dir, file);
            int orc = open_shard(m, s, path, err);
            free(path);
            if (orc) {
                if (err) {
                    char why[sizeof err->msg];
                    snprintf(why, sizeof why, "%s", err->msg);
                    lb_fail(err, "%.700s (listed in %s)", why, index_path);
                }
                goto done;
            }
        }
        if (!safetensors_find(s->files[k], name)) {
            lb_fail(err, "%s: tensor '%.200s' is listed in %s, but that file does not hold it",
                    index_path, name, s->files[k]->path);
            goto done;
        }
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- tokenizer -------------------------------------------------------------------------- */

/* Embedding tables are often rounded up past the tokenizer's last id (Qwen2: 151936 rows for
 * 151665 tokens). The extra ids get empty, unused pieces so that every id the model can emit
 * is an id the tokenizer knows. */
static void pad_vocabulary(lb_tokenizer *t, int n)
{
    size_t sn = (size_t)n;
    t->pieces = lb_realloc(t->pieces, sn * sizeof *t->pieces);
    t->piece_len = lb_realloc(t->piece_len, sn * sizeof *t->piece_len);
    t->scores = lb_realloc(t->scores, sn * sizeof *t->scores);
    t->types = lb_realloc(t->types, sn * sizeof *t->types);
    for (int i = t->n_vocab; i < n; i++) {
        t->pieces[i] = lb_strdup("");
        t->piece_len[i] = 0;
        t->scores[i] = 0;
        t->types[i] = LB_TOKEN_UNUSED;
    }
    t->n_vocab = n;
}

static int load_tokenizer(lb_model *m, const char *dir, lb_error *err)
{
    char *json = lb_path_join(dir, "tokenizer.json");
    char *vocab = lb_path_join(dir, "vocab.json"), *merges = lb_path_join(dir, "merges.txt");
    char *what = NULL;
    int rc;
    if (lb_file_exists(json)) {
        rc = tok_load_hf_json(json, &m->tok, err);
        what = json;
    } else if (lb_file_exists(vocab) && lb_file_exists(merges)) {
        rc = tok_load_gpt2_files(vocab, merges, &m->tok, err);
        what = vocab;
    } else {
        rc = lb_fail(err, "%s: no tokenizer.json (nor GPT-2's vocab.json + merges.txt)", dir);
    }
    if (rc == 0 && m->tok->n_vocab > m->cfg.vocab_size)
        rc = lb_fail(err, "%s: the tokenizer has %d tokens, more than config.json's vocab_size "
                     "%d", what, m->tok->n_vocab, m->cfg.vocab_size);
    if (rc == 0 && m->tok->n_vocab < m->cfg.vocab_size)
        pad_vocabulary(m->tok, m->cfg.vocab_size);
    free(json);
    free(vocab);
    free(merges);
    return rc;
}

/* ---- the directory ---------------------------------------------------------------------- */

static void default_name(lb_config *c, const char *dir)
{
    if (c->name[0])
        return;
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/')
        start--;
    snprintf(c->name, sizeof c->name, "%.*s", (int)(len - start), dir + start);
}

int lb_load_hf_dir(const char *dir, lb_model **out, lb_error *err)
{
    *out = NULL;
    char *config_path = lb_path_join(dir, "config.json");
    char *single = lb_path_join(dir, "model.safetensors");
    char *index = lb_path_join(dir, "model.safetensors.index.json");
    lb_model *m = NULL;
    shard_set shards = {0};
    mapper mp = {0};
    hf_config hc;
    int rc = -1;

    if (!lb_file_exists(config_path)) {
        lb_fail(err, "%s: no config.json (a Hugging Face model directory holds config.json, "
                "model.safetensors and tokenizer.json)", dir);
        goto done;
    }
    if (hf_config_load(config_path, &hc, err))
        goto done;
    m = lb_model_new(dir, "safetensors");
    m->cfg = hc.cfg;
    default_name(&m->cfg, dir);

    if (lb_file_exists(index)) {
        if (open_index(m, &shards, dir, index, err))
            goto done;
    } else if (lb_file_exists(single)) {
        if (open_shard(m, &shards, single, err))
            goto done;
    } else {
        lb_fail(err, "%s: no model.safetensors (nor model.safetensors.index.json)", dir);
        goto done;
    }

    bool gpt2 = hc.cfg.arch == LB_ARCH_GPT2;
    mp.dir = dir;
    mp.hc = &hc;
    mp.global = gpt2 ? GPT2_GLOBAL : LLAMA_GLOBAL;
    mp.n_global = gpt2 ? COUNT(GPT2_GLOBAL) : COUNT(LLAMA_GLOBAL);
    mp.layer = gpt2 ? GPT2_LAYER : LLAMA_LAYER;
    mp.n_layer = gpt2 ? COUNT(GPT2_LAYER) : COUNT(LLAMA_LAYER);
    mp.layer_prefix = gpt2 ? "h." : "model.layers.";
    mp.strip_prefix = gpt2 ? "transformer." : NULL;
    mp.found_global = lb_calloc((size_t)mp.n_global, sizeof(char *));
    mp.found_layer = lb_calloc((size_t)mp.n_layer * (size_t)hc.cfg.n_layers, sizeof(char *));
    for (int s = 0; s < shards.n; s++)
        for (int i = 0; i < shards.files[s]->n_tensors; i++)
            if (add_tensor(m, &mp, shards.files[s], &shards.files[s]->tensors[i], err))
                goto done;
    if (add_quantized(m, &mp, err) || check_complete(&mp, err) || load_tokenizer(m, dir, err) ||
        lb_model_bind(m, err))
        goto done;
    rc = 0;
done:
    free(mp.qparts);
    free(mp.found_global);
    free(mp.found_layer);
    shards_close(&shards);
    free(config_path);
    free(single);
    free(index);
    if (rc) {
        lb_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}
