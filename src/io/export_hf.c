/* Hugging Face quantized checkpoints (GPTQ, AWQ, compressed-tensors W8A8), written from a
 * lowbit-quantized model and read back into lb_qweight: see export_hf.h for the layouts. */
#include "io/export_hf.h"
#include "quant/pack.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* AutoAWQ's order of the eight outputs in a packed word. */
static const int AWQ_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* ---- a small safetensors writer ---------------------------------------------------------- */

typedef struct {
    char name[256];
    const char *dtype;
    int n_dims;
    int64_t shape[2];
    void *data;   /* owned */
    size_t nbytes;
} st_entry;

typedef struct {
    st_entry *e;
    int n;
} st_list;

static void st_add(st_list *l, const char *name, const char *dtype, int n_dims, int64_t s0,
                   int64_t s1, void *data, size_t nbytes)
{
    l->e = lb_realloc(l->e, (size_t)(l->n + 1) * sizeof *l->e);
    st_entry *e = &l->e[l->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->dtype = dtype;
    e->n_dims = n_dims;
    e->shape[0] = s0;
    e->shape[1] = s1;
    e->data = data;
    e->nbytes = nbytes;
}

static void st_free(st_list *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->e[i].data);
    free(l->e);
}

static int st_write(const st_list *l, const char *path, lb_error *err)
{
    json_t *root = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(root, "__metadata__", meta);
    uint64_t off = 0;
    for (int i = 0; i < l->n; i++) {
        const st_entry *e = &l->e[i];
        json_t *t = json_object(), *shape = json_array();
        for (int d = 0; d < e->n_dims; d++)
            json_array_append_new(shape, json_integer(e->shape[d]));
        json_object_set_new(t, "dtype", json_string(e->dtype));
        json_object_set_new(t, "shape", shape);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + e->nbytes)));
        json_object_set_new(t, "data_offsets", offs);
        json_object_set_new(root, e->name, t);
        off += e->nbytes;
    }
    char *header = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    size_t hl = strlen(header), padded = (hl + 7) & ~(size_t)7;
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(header);
        return lb_fail(err, "%s: cannot create: %s", path, strerror(errno));
    }
    uint64_t n = padded;
    unsigned char le[8];
    for (int k = 0; k < 8; k++)
        le[k] = (unsigned char)(n >> (8 * k));
    bool ok = fwrite(le, 1, 8, f) == 8 && fwrite(header, 1, hl, f) == hl;
    for (size_t k = hl; k < padded && ok; k++)
        ok = fputc(' ', f) != EOF;
    for (int i = 0; i < l->n && ok; i++)
        ok = fwrite(l->e[i].data, 1, l->e[i].nbytes, f) == l->e[i].nbytes;
    free(header);
    if (fclose(f) != 0 || !ok)
        return lb_fail(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* ---- names --------------------------------------------------------------------------------- */

/* GGUF name -> Hugging Face Llama name; NULL when the tensor has none. is_linear: a block
 * matrix (quantized in the checkpoint). */
static bool hf_name(const char *g, char *out, size_t cap, bool *is_linear)
{
    static const char *const GLOBAL[][2] = {{"token_embd.weight", "model.embed_tokens.weight"},
                                            {"output_norm.weight", "model.norm.weight"},
                                            {"output.weight", "lm_head.weight"}};
    static const char *const LAYER[][2] = {
        {"attn_norm.weight", "input_layernorm.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"},
        {"attn_q.weight", "self_attn.q_proj.weight"}, {"attn_k.weight", "self_attn.k_proj.weight"},
        {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_gate.weight", "mlp.gate_proj.weight"}, {"ffn_up.weight", "mlp.up_proj.weight"},
        {"ffn_down.weight", "mlp.down_proj.weight"}, {"attn_q.bias", "self_attn.q_proj.bias"},
        {"attn_k.bias", "self_attn.k_proj.bias"}, {"attn_v.bias", "self_attn.v_proj.bias"},
        {"attn_output.bias", "self_attn.o_proj.bias"}};
    *is_linear = false;
    for (size_t i = 0; i < sizeof GLOBAL / sizeof GLOBAL[0]; i++)
        if (strcmp(g, GLOBAL[i][0]) == 0) {
            snprintf(out, cap, "%s", GLOBAL[i][1]);
            return true;
        }
    int layer, used = 0;
    if (sscanf(g, "blk.%d.%n", &layer, &used) != 1 || used == 0)
        return false;
    for (size_t i = 0; i < sizeof LAYER / sizeof LAYER[0]; i++)
        if (strcmp(g + used, LAYER[i][0]) == 0) {
            snprintf(out, cap, "model.layers.%d.%s", layer, LAYER[i][1]);
            *is_linear = i >= 2 && i <= 8;
            return true;
        }
    return false;
}

/* ---- packing -------------------------------------------------------------------------------- */

/* Row order of the checkpoint: GGUF Llama q/k rows pair RoPE dimensions (2i, 2i+1); Hugging
 * Face pairs i with i + head_dim/2. perm[r] = the GGUF row that becomes checkpoint row r. */
static int *rope_perm(const lb_model *m, const char *gguf, int rows)
{
    int *perm = lb_malloc((size_t)rows * sizeof(int));
    for (int r = 0; r < rows; r++)
        perm[r] = r;
    bool qk = strstr(gguf, ".attn_q.") || strstr(gguf, ".attn_k.");
    int hd = m->cfg.head_dim, half = hd / 2;
    if (qk && m->cfg.rope_style == LB_ROPE_ADJACENT && hd % 2 == 0 && rows % hd == 0)
        for (int r = 0; r < rows; r++) {
            int h = r / hd, k = r % hd;
            perm[r] = h * hd + (k < half ? 2 * k : 2 * (k - half) + 1);
        }
    return perm;
}

static uint16_t *f16_of(const float *v, size_t n)
{
    uint16_t *o = lb_malloc(n * 2 + 1);
    for (size_t i = 0; i < n; i++)
        o[i] = lb_fp32_to_fp16(v[i]);
    return o;
}

/* Writes `count` values of `bits` bits as one little-endian stream into words. */
static void pack_stream(const uint32_t *vals, int count, int bits, uint32_t *words)
{
    int nw = count * bits / 32;
    memset(words, 0, (size_t)nw * 4);
    for (int k = 0; k < count; k++) {
        int bit = k * bits;
        uint64_t v = (uint64_t)vals[k] << (bit % 32);
        words[bit / 32] |= (uint32_t)v;
        if (bit % 32 + bits > 32)
            words[bit / 32 + 1] |= (uint32_t)(v >> 32);
    }
}

static void unpack_stream(const uint32_t *words, int count, int bits, uint32_t *vals)
{
    uint32_t mask = (1u << bits) - 1;
    for (int k = 0; k < count; k++) {
        int bit = k * bits;
        uint64_t w = words[bit / 32];
        if (bit % 32 + bits > 32)
            w |= (uint64_t)words[bit / 32 + 1] << 32;
        vals[k] = (uint32_t)(w >> (bit % 32)) & mask;
    }
}

static int gptq_pack(const char *mod, const lb_qweight *qw, const int *perm, st_list *out,
                     lb_error *err)
{
    int in = qw->cols, outf = qw->rows, bits = qw->bits, ng = qw->n_groups;
    if (in % 32 || outf % 32)
        return lb_fail(err, "%s: GPTQ needs both sizes a multiple of 32, this layer is %d x %d "
                       "(in x out)", mod, in, outf);
    for (size_t i = 0; i < (size_t)outf * ng; i++)
        if (qw->zero[i] == 0)
            return lb_fail(err, "%s: a zero point of 0 (row %zu) cannot be stored in GPTQ's "
                           "zero-minus-one qzeros", mod, i / (size_t)ng);
    int32_t *qweight = lb_malloc((size_t)in / 32 * bits * (size_t)outf * 4);
    uint32_t vals[32], words[8];
    for (int o = 0; o < outf; o++) {
        const uint8_t *q = qw->q + (size_t)perm[o] * in;
        for (int i0 = 0; i0 < in; i0 += 32) {
            for (int k = 0; k < 32; k++)
                vals[k] = q[i0 + k];
            pack_stream(vals, 32, bits, words);
            for (int w = 0; w < bits; w++)
                qweight[((size_t)(i0 / 32) * bits + w) * outf + o] = (int32_t)words[w];
        }
    }
    int zw = outf / 32 * bits;
    int32_t *qzeros = lb_malloc((size_t)ng * zw * 4);
    float *sc = lb_malloc((size_t)ng * outf * sizeof(float));
    for (int g = 0; g < ng; g++) {
        for (int o0 = 0; o0 < outf; o0 += 32) {
            for (int k = 0; k < 32; k++)
                vals[k] = (uint32_t)qw->zero[(size_t)perm[o0 + k] * ng + g] - 1;
            pack_stream(vals, 32, bits, words);
            for (int w = 0; w < bits; w++)
                qzeros[(size_t)g * zw + (size_t)(o0 / 32) * bits + w] = (int32_t)words[w];
        }
        for (int o = 0; o < outf; o++)
            sc[(size_t)g * outf + o] = qw->scale[(size_t)perm[o] * ng + g];
    }
    int32_t *gidx = lb_malloc((size_t)in * 4);
    for (int i = 0; i < in; i++)
        gidx[i] = lb_qweight_group_of(qw, i);
    char name[256];
    snprintf(name, sizeof name, "%s.qweight", mod);
    st_add(out, name, "I32", 2, in / 32 * bits, outf, qweight, (size_t)in / 32 * bits * outf * 4);
    snprintf(name, sizeof name, "%s.qzeros", mod);
    st_add(out, name, "I32", 2, ng, zw, qzeros, (size_t)ng * zw * 4);
    snprintf(name, sizeof name, "%s.scales", mod);
    st_add(out, name, "F16", 2, ng, outf, f16_of(sc, (size_t)ng * outf), (size_t)ng * outf * 2);
    snprintf(name, sizeof name, "%s.g_idx", mod);
    st_add(out, name, "I32", 1, in, 0, gidx, (size_t)in * 4);
    free(sc);
    return 0;
}

static int awq_pack(const char *mod, const lb_qweight *qw, const int *perm, int group,
                    st_list *out, lb_error *err)
{
    int in = qw->cols, outf = qw->rows, gs = qw->group_size ? qw->group_size : group;
    int ng = qw->n_groups;
    if (qw->bits != 4)
        return lb_fail(err, "%s: AWQ holds 4-bit weights, this layer is %d-bit", mod, qw->bits);
    if (qw->g_idx)
        return lb_fail(err, "%s: AWQ has no act-order index (g_idx); export as gptq", mod);
    if (gs <= 0 || in % gs || outf % 8 || ng != in / gs)
        return lb_fail(err, "%s: AWQ needs groups that divide the %d inputs and outputs a "
                       "multiple of 8 (groups of %d, %d outputs)", mod, in, gs ? gs : in, outf);
    int32_t *qweight = lb_malloc((size_t)in * (outf / 8) * 4);
    int32_t *qzeros = lb_malloc((size_t)ng * (outf / 8) * 4);
    float *sc = lb_malloc((size_t)ng * outf * sizeof(float));
    for (int i = 0; i < in; i++)
        for (int c = 0; c < outf / 8; c++) {
            uint32_t w = 0;
            for (int j = 0; j < 8; j++)
                w |= (uint32_t)qw->q[(size_t)perm[8 * c + AWQ_ORDER[j]] * in + i] << (4 * j);
            qweight[(size_t)i * (outf / 8) + c] = (int32_t)w;
        }
    for (int g = 0; g < ng; g++) {
        for (int c = 0; c < outf / 8; c++) {
            uint32_t w = 0;
            for (int j = 0; j < 8; j++)
                w |= (uint32_t)qw->zero[(size_t)perm[8 * c + AWQ_ORDER[j]] * ng + g] << (4 * j);
            qzeros[(size_t)g * (outf / 8) + c] = (int32_t)w;
        }
        for (int o = 0; o < outf; o++)
            sc[(size_t)g * outf + o] = qw->scale[(size_t)perm[o] * ng + g];
    }
    char name[256];
    snprintf(name, sizeof name, "%s.qweight", mod);
    st_add(out, name, "I32", 2, in, outf / 8, qweight, (size_t)in * (outf / 8) * 4);
    snprintf(name, sizeof name, "%s.qzeros", mod);
    st_add(out, name, "I32", 2, ng, outf / 8, qzeros, (size_t)ng * (outf / 8) * 4);
    snprintf(name, sizeof name, "%s.scales", mod);
    st_add(out, name, "F16", 2, ng, outf, f16_of(sc, (size_t)ng * outf), (size_t)ng * outf * 2);
    free(sc);
    return 0;
}

static int w8a8_pack(const char *mod, const lb_qweight *qw, const int *perm, bool fp32,
                     st_list *out, lb_error *err)
{
    int in = qw->cols, outf = qw->rows;
    if (qw->bits != 8 || !qw->w8a8 || qw->n_groups != 1 || qw->g_idx)
        return lb_fail(err, "%s: W8A8 export needs SmoothQuant-style int8 weights per output "
                       "channel with int8 activations (this layer is %d-bit, %d group(s)%s%s)",
                       mod, qw->bits, qw->n_groups, qw->w8a8 ? "" : ", weight-only",
                       qw->g_idx ? ", act-order" : "");
    for (int o = 0; o < outf; o++)
        if (qw->zero[o] != 128)
            return lb_fail(err, "%s: W8A8 weights are symmetric; row %d has zero point %d", mod,
                           o, qw->zero[o]);
    int8_t *w = lb_malloc((size_t)in * outf);
    float *sc = lb_malloc((size_t)outf * sizeof(float));
    for (int o = 0; o < outf; o++) {
        for (int i = 0; i < in; i++)
            w[(size_t)o * in + i] = (int8_t)(qw->q[(size_t)perm[o] * in + i] - 128);
        sc[o] = qw->scale[perm[o]];
    }
    char name[256];
    snprintf(name, sizeof name, "%s.weight", mod);
    st_add(out, name, "I8", 2, outf, in, w, (size_t)in * outf);
    snprintf(name, sizeof name, "%s.weight_scale", mod);
    if (fp32)
        st_add(out, name, "F32", 2, outf, 1, sc, (size_t)outf * 4);
    else {
        st_add(out, name, "F16", 2, outf, 1, f16_of(sc, (size_t)outf), (size_t)outf * 2);
        free(sc);
    }
    return 0;
}

/* A tensor that stays dense: F16 or F32, rows in checkpoint order. */
static void dense(const lb_model *m, const lb_tensor *t, const char *name, bool fp32, st_list *out)
{
    int64_t cols = t->ne[0], rows = t->n_dims > 1 ? t->ne[1] : 1;
    int *perm = rope_perm(m, t->name, (int)rows);
    float *v = lb_malloc((size_t)(cols * rows) * sizeof(float));
    for (int64_t r = 0; r < rows; r++)
        lb_tensor_get_row(t, perm[r], v + (size_t)(r * cols));
    free(perm);
    int nd = t->n_dims > 1 ? 2 : 1;
    if (fp32) {
        st_add(out, name, "F32", nd, nd == 2 ? rows : cols, cols, v, (size_t)(cols * rows) * 4);
    } else {
        st_add(out, name, "F16", nd, nd == 2 ? rows : cols, cols, f16_of(v, (size_t)(cols * rows)),
               (size_t)(cols * rows) * 2);
        free(v);
    }
}

/* ---- config and tokenizer ------------------------------------------------------------------- */

/* The checkpoint's one bits / group size / act-order / symmetry, read off the layers (a layer
 * narrower than the group is one group, as the formats' loaders see it too). */
typedef struct {
    int bits, group;
    bool act_order, sym;
} common_q;

static int common_settings(const lb_model *m, common_q *c, lb_error *err)
{
    memset(c, 0, sizeof *c);
    c->sym = true;
    for (int i = 0; i < m->n_tensors; i++) {
        const lb_qlayout *L = m->tensors[i].qlayout;
        if (!L || !lb_model_tensor_stored(m, &m->tensors[i]))
            continue;
        if (c->bits && L->bits != c->bits)
            return lb_fail(err, "%s: layers are quantized to %d and %d bits; a checkpoint holds "
                           "one width", m->path, c->bits, L->bits);
        c->bits = L->bits;
        if (L->group_size > c->group)
            c->group = L->group_size;
        c->act_order |= L->g_idx != NULL;
        c->sym &= !L->has_zero;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const lb_tensor *t = &m->tensors[i];
        const lb_qlayout *L = t->qlayout;
        if (L && lb_model_tensor_stored(m, t) && L->group_size != c->group &&
            !(L->group_size == 0 && c->group && L->cols <= c->group))
            return lb_fail(err, "%s: tensor '%s' has groups of %d, others of %d; a checkpoint "
                           "holds one group size", m->path, t->name, L->group_size, c->group);
    }
    return 0;
}

static json_t *quant_config(const lb_model *m, const common_q *cq, lb_hf_format fmt)
{
    const lb_quant_info *q = &m->quant;
    json_t *c = json_object();
    if (fmt == LB_HF_GPTQ) {
        json_object_set_new(c, "quant_method", json_string("gptq"));
        json_object_set_new(c, "bits", json_integer(cq->bits));
        json_object_set_new(c, "group_size", json_integer(cq->group ? cq->group : -1));
        json_object_set_new(c, "desc_act", json_boolean(cq->act_order));
        json_object_set_new(c, "sym", json_boolean(cq->sym));
        json_object_set_new(c, "damp_percent", json_real(q->damp > 0 ? q->damp : 0.01));
        json_object_set_new(c, "static_groups", json_false());
        json_object_set_new(c, "true_sequential", json_true());
        json_object_set_new(c, "checkpoint_format", json_string("gptq"));
        json_object_set_new(c, "model_file_base_name", json_string("model"));
    } else if (fmt == LB_HF_AWQ) {
        json_object_set_new(c, "quant_method", json_string("awq"));
        json_object_set_new(c, "bits", json_integer(4));
        json_object_set_new(c, "group_size", json_integer(cq->group));
        json_object_set_new(c, "zero_point", json_true());
        json_object_set_new(c, "version", json_string("gemm"));
    } else {
        json_t *wq = json_object(), *aq = json_object(), *grp = json_object(), *groups = json_object();
        json_object_set_new(wq, "num_bits", json_integer(8));
        json_object_set_new(wq, "type", json_string("int"));
        json_object_set_new(wq, "symmetric", json_true());
        json_object_set_new(wq, "strategy", json_string("channel"));
        json_object_set_new(wq, "dynamic", json_false());
        json_object_set_new(aq, "num_bits", json_integer(8));
        json_object_set_new(aq, "type", json_string("int"));
        json_object_set_new(aq, "symmetric", json_true());
        json_object_set_new(aq, "strategy", json_string("token"));
        json_object_set_new(aq, "dynamic", json_true());
        json_t *targets = json_array();
        json_array_append_new(targets, json_string("Linear"));
        json_object_set_new(grp, "targets", targets);
        json_object_set_new(grp, "weights", wq);
        json_object_set_new(grp, "input_activations", aq);
        json_object_set_new(groups, "group_0", grp);
        json_object_set_new(c, "quant_method", json_string("compressed-tensors"));
        json_object_set_new(c, "format", json_string("int-quantized"));
        json_object_set_new(c, "quantization_status", json_string("compressed"));
        json_object_set_new(c, "config_groups", groups);
        json_t *ignore = json_array();
        json_array_append_new(ignore, json_string("lm_head"));
        json_object_set_new(c, "ignore", ignore);
        if (q->alpha > 0)
            json_object_set_new(c, "smoothquant_alpha", json_real(q->alpha));
    }
    return c;
}

static int write_json(json_t *j, const char *path, lb_error *err)
{
    int rc = json_dump_file(j, path, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    return rc ? lb_fail(err, "%s: write failed", path) : 0;
}

static json_t *config_json(const lb_model *m, const common_q *cq, lb_hf_format fmt, bool fp32)
{
    const lb_config *c = &m->cfg;
    bool qwen = strcmp(c->arch_name, "qwen2") == 0;
    json_t *j = json_object(), *archs = json_array();
    json_array_append_new(archs, json_string(qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"));
    json_object_set_new(j, "architectures", archs);
    json_object_set_new(j, "model_type", json_string(qwen ? "qwen2" : "llama"));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->hidden_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(c->n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->max_ctx));
    json_object_set_new(j, "rms_norm_eps", json_real(c->norm_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(m->output == m->tok_embd));
    json_object_set_new(j, "torch_dtype", json_string(fp32 ? "float32" : "float16"));
    if (m->tok->bos_id >= 0)
        json_object_set_new(j, "bos_token_id", json_integer(m->tok->bos_id));
    if (m->tok->eos_id >= 0)
        json_object_set_new(j, "eos_token_id", json_integer(m->tok->eos_id));
    if (c->name[0])
        json_object_set_new(j, "_name_or_path", json_string(c->name));
    json_object_set_new(j, "quantization_config", quant_config(m, cq, fmt));
    return j;
}

typedef struct {
    int merged, left;
    char *text;
} merge;

static int merge_cmp(const void *a, const void *b, void *scores)
{
    const merge *x = a, *y = b;
    const float *s = scores;
    if (s[x->merged] != s[y->merged])
        return s[x->merged] > s[y->merged] ? -1 : 1;
    if (x->merged != y->merged)
        return x->merged - y->merged;
    return x->left - y->left;
}

/* tokenizer.json for a SentencePiece-style vocabulary: BPE with byte fallback, whose merges
 * are every split of a piece into two pieces, ranked by the merged piece's score. */
static int tokenizer_json(const lb_model *m, const char *path, lb_error *err)
{
    const lb_tokenizer *t = m->tok;
    if (t->kind != LB_TOK_SPM)
        return lb_fail(err, "%s: writing a byte-level BPE tokenizer.json is not supported yet "
                       "(SentencePiece-style vocabularies only)", m->path);
    json_t *vocab = json_object(), *added = json_array();
    merge *ms = NULL;
    size_t nm = 0, cap = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        const char *p = t->pieces[id];
        json_object_set_new(vocab, p, json_integer(id));
        int ty = t->types[id];
        if (ty == LB_TOKEN_CONTROL || ty == LB_TOKEN_UNKNOWN || ty == LB_TOKEN_USER_DEFINED) {
            json_t *a = json_object();
            json_object_set_new(a, "id", json_integer(id));
            json_object_set_new(a, "content", json_string(p));
            json_object_set_new(a, "special", json_boolean(ty != LB_TOKEN_USER_DEFINED));
            json_array_append_new(added, a);
            continue;
        }
        if (ty != LB_TOKEN_NORMAL)
            continue;
        size_t len = (size_t)t->piece_len[id];
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)p[k] & 0xc0) == 0x80)
                continue;   /* inside a UTF-8 character */
            int l = tok_piece_id(t, p, k), r = tok_piece_id(t, p + k, len - k);
            if (l < 0 || r < 0 || t->types[l] != LB_TOKEN_NORMAL || t->types[r] != LB_TOKEN_NORMAL)
                continue;
            if (nm == cap) {
                cap = cap ? 2 * cap : 1024;
                ms = lb_realloc(ms, cap * sizeof *ms);
            }
            ms[nm].merged = id;
            ms[nm].left = l;
            ms[nm].text = lb_malloc(len + 2);
            snprintf(ms[nm].text, len + 2, "%.*s %s", (int)k, p, p + k);
            nm++;
        }
    }
    qsort_r(ms, nm, sizeof *ms, merge_cmp, t->scores);
    json_t *merges = json_array();
    for (size_t i = 0; i < nm; i++) {
        json_array_append_new(merges, json_string(ms[i].text));
        free(ms[i].text);
    }
    free(ms);
    json_t *model = json_object();
    json_object_set_new(model, "type", json_string("BPE"));
    json_object_set_new(model, "vocab", vocab);
    json_object_set_new(model, "merges", merges);
    json_object_set_new(model, "byte_fallback", json_boolean(t->byte_fallback));
    json_object_set_new(model, "fuse_unk", json_true());
    if (t->unk_id >= 0)
        json_object_set_new(model, "unk_token", json_string(t->pieces[t->unk_id]));
    json_t *norms = json_array(), *rep = json_object(), *pat = json_object();
    if (t->add_space_prefix) {
        json_t *pre = json_object();
        json_object_set_new(pre, "type", json_string("Prepend"));
        json_object_set_new(pre, "prepend", json_string("\xe2\x96\x81"));
        json_array_append_new(norms, pre);
    }
    json_object_set_new(pat, "String", json_string(" "));
    json_object_set_new(rep, "type", json_string("Replace"));
    json_object_set_new(rep, "pattern", pat);
    json_object_set_new(rep, "content", json_string("\xe2\x96\x81"));
    json_array_append_new(norms, rep);
    json_t *norm = json_object();
    json_object_set_new(norm, "type", json_string("Sequence"));
    json_object_set_new(norm, "normalizers", norms);
    json_t *root = json_object();
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "added_tokens", added);
    json_object_set_new(root, "normalizer", norm);
    json_object_set_new(root, "pre_tokenizer", json_null());
    if (t->add_bos && t->bos_id >= 0) {
        json_t *single = json_array(), *bos = json_object(), *bos_in = json_object();
        json_t *seq = json_object(), *seq_in = json_object(), *post = json_object();
        json_object_set_new(bos_in, "id", json_string(t->pieces[t->bos_id]));
        json_object_set_new(bos_in, "type_id", json_integer(0));
        json_object_set_new(bos, "SpecialToken", bos_in);
        json_object_set_new(seq_in, "id", json_string("A"));
        json_object_set_new(seq_in, "type_id", json_integer(0));
        json_object_set_new(seq, "Sequence", seq_in);
        json_array_append_new(single, bos);
        json_array_append_new(single, seq);
        json_object_set_new(post, "type", json_string("TemplateProcessing"));
        json_object_set_new(post, "single", single);
        json_object_set_new(root, "post_processor", post);
    }
    json_t *dec = json_object(), *decs = json_array(), *d1 = json_object(), *d1p = json_object();
    json_object_set_new(d1p, "String", json_string("\xe2\x96\x81"));
    json_object_set_new(d1, "type", json_string("Replace"));
    json_object_set_new(d1, "pattern", d1p);
    json_object_set_new(d1, "content", json_string(" "));
    json_array_append_new(decs, d1);
    json_t *d2 = json_object(), *d3 = json_object();
    json_object_set_new(d2, "type", json_string("ByteFallback"));
    json_object_set_new(d3, "type", json_string("Fuse"));
    json_array_append_new(decs, d2);
    json_array_append_new(decs, d3);
    json_object_set_new(dec, "type", json_string("Sequence"));
    json_object_set_new(dec, "decoders", decs);
    json_object_set_new(root, "decoder", dec);
    json_object_set_new(root, "model", model);
    return write_json(root, path, err);
}

/* ---- the directory ------------------------------------------------------------------------- */

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = lb_path_join(dir, e->d_name);
        unlink(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static int fill(const lb_model *m, const common_q *cq, lb_hf_format fmt,
                const lb_export_hf_opts *o, st_list *st, lb_error *err)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const lb_tensor *t = &m->tensors[i];
        if (!lb_model_tensor_stored(m, t))
            continue;
        char name[128];
        bool linear;
        if (!hf_name(t->name, name, sizeof name, &linear))
            return lb_fail(err, "%s: tensor '%s' has no Hugging Face Llama name (the %s export "
                           "writes Llama-family models)", m->path, t->name,
                           fmt == LB_HF_GPTQ ? "gptq" : fmt == LB_HF_AWQ ? "awq" : "w8a8");
        if (!linear) {
            if (t->qlayout)
                return lb_fail(err, "%s: tensor '%s' is quantized, but the checkpoint keeps it "
                               "dense", m->path, t->name);
            dense(m, t, name, o->fp32, st);
            continue;
        }
        if (!t->qlayout)
            return lb_fail(err, "%s: tensor '%s' is not quantized; the checkpoint needs every "
                           "block linear layer quantized", m->path, t->name);
        char mod[160];
        snprintf(mod, sizeof mod, "%.*s", (int)(strlen(name) - 7), name);   /* drop ".weight" */
        lb_qweight qw;
        if (lb_tensor_to_qweight(t, &qw, err))
            return -1;
        int *perm = rope_perm(m, t->name, qw.rows);
        int rc = fmt == LB_HF_GPTQ  ? gptq_pack(mod, &qw, perm, st, err)
                 : fmt == LB_HF_AWQ ? awq_pack(mod, &qw, perm, cq->group, st, err)
                                    : w8a8_pack(mod, &qw, perm, o->fp32, st, err);
        free(perm);
        lb_qweight_free(&qw);
        if (rc)
            return lb_fail_prefix(err, "%s: ", m->path);
    }
    return 0;
}

int lb_export_hf(const lb_model *m, const char *dir, lb_hf_format fmt,
                 const lb_export_hf_opts *opts, lb_error *err)
{
    lb_export_hf_opts local = {0};
    const lb_export_hf_opts *o = opts ? opts : &local;
    if (!lb_model_is_quantized(m))
        return lb_fail(err, "%s: the model is not quantized (no tensor in a lowbit group "
                       "format); quantize it first", m->path);
    if (m->cfg.arch != LB_ARCH_LLAMA)
        return lb_fail(err, "%s: %s models cannot be exported to Hugging Face layouts yet "
                       "(Llama family only)", m->path, m->cfg.arch_name);
    if (m->cfg.rope_scaling_factor != 0)
        return lb_fail(err, "%s: RoPE frequency scaling is not written to config.json yet; "
                       "this model cannot be exported to a Hugging Face layout", m->path);
    struct stat sb;
    if (stat(dir, &sb) == 0)
        return lb_fail(err, "%s: already exists; remove it or choose another output directory",
                       dir);
    common_q cq;
    if (common_settings(m, &cq, err))
        return -1;
    st_list st = {0};
    if (fill(m, &cq, fmt, o, &st, err)) {
        st_free(&st);
        return -1;
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", dir, (int)getpid());
    lb_atomic_clean_stale(dir, remove_tree);   /* left by an export that was killed */
    remove_tree(tmp);
    if (mkdir(tmp, 0777)) {
        st_free(&st);
        return lb_fail(err, "%s: cannot create directory: %s", tmp, strerror(errno));
    }
    char *p_model = lb_path_join(tmp, "model.safetensors");
    char *p_config = lb_path_join(tmp, "config.json");
    char *p_tok = lb_path_join(tmp, "tokenizer.json");
    char *p_qc = lb_path_join(tmp, fmt == LB_HF_AWQ ? "quant_config.json" : "quantize_config.json");
    int rc = st_write(&st, p_model, err);
    if (!rc)
        rc = write_json(config_json(m, &cq, fmt, o->fp32), p_config, err);
    if (!rc)
        rc = tokenizer_json(m, p_tok, err);
    if (!rc && fmt == LB_HF_GPTQ) {
        rc = write_json(quant_config(m, &cq, fmt), p_qc, err);
    } else if (!rc && fmt == LB_HF_AWQ) {
        json_t *q = json_object();   /* AutoAWQ's own spelling */
        json_object_set_new(q, "zero_point", json_true());
        json_object_set_new(q, "q_group_size", json_integer(cq.group));
        json_object_set_new(q, "w_bit", json_integer(4));
        json_object_set_new(q, "version", json_string("GEMM"));
        rc = write_json(q, p_qc, err);
    }
    if (!rc && rename(tmp, dir))
        rc = lb_fail(err, "%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
    if (rc) {
        remove_tree(tmp);
        /* the files are written under the temporary name; the message names where they go */
        size_t nt = strlen(tmp);
        if (err && strncmp(err->msg, tmp, nt) == 0) {
            lb_error named;
            snprintf(named.msg, sizeof named.msg, "%s%s", dir, err->msg + nt);
            *err = named;
        }
    }
    free(p_model);
    free(p_config);
    free(p_tok);
    free(p_qc);
    st_free(&st);
    return rc;
}

/* ---- reading --------------------------------------------------------------------------------- */

static int check_part(const char *name, const char *what, const lb_hf_part *p, const char *dtype,
                      int n_dims, int64_t s0, int64_t s1, lb_error *err)
{
    if (!p || !p->data)
        return lb_fail(err, "%s: the quantized layer has no %s", name, what);
    bool ok = strcmp(p->dtype, dtype) == 0 && p->n_dims == n_dims && p->shape[0] == s0 &&
              (n_dims == 1 || p->shape[1] == s1);
    if (ok)
        return 0;
    if (n_dims == 1)
        return lb_fail(err, "%s.%s: expected %s [%" PRId64 "], found %s with %d dimension(s), "
                       "first %" PRId64, name, what, dtype, s0, p->dtype, p->n_dims,
                       p->n_dims ? p->shape[0] : 0);
    return lb_fail(err, "%s.%s: expected %s [%" PRId64 ", %" PRId64 "], found %s [%" PRId64
                   ", %" PRId64 "]", name, what, dtype, s0, s1, p->dtype, p->shape[0],
                   p->n_dims > 1 ? p->shape[1] : 0);
}

static uint32_t word(const lb_hf_part *p, size_t i)
{
    uint32_t v;
    memcpy(&v, (const char *)p->data + i * 4, 4);
    return v;
}

static float scale_at(const lb_hf_part *p, size_t i)
{
    if (strcmp(p->dtype, "F32") == 0) {
        float v;
        memcpy(&v, (const char *)p->data + i * 4, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, (const char *)p->data + i * 2, 2);
    return strcmp(p->dtype, "BF16") == 0 ? lb_bf16_to_fp32(h) : lb_fp16_to_fp32(h);
}

static int check_scales(const char *name, const lb_qweight *qw, lb_error *err)
{
    for (size_t i = 0; i < (size_t)qw->rows * qw->n_groups; i++)
        if (!(qw->scale[i] == qw->scale[i]) || qw->scale[i] > 3e38f || qw->scale[i] < -3e38f)
            return lb_fail(err, "%s: scale %zu is not finite", name, i);
    return 0;
}

int lb_hf_gptq_to_qweight(const char *name, int bits, int group, int64_t in, int64_t out,
                          const lb_hf_part *qweight, const lb_hf_part *qzeros,
                          const lb_hf_part *scales, const lb_hf_part *g_idx, lb_qweight *qw,
                          lb_error *err)
{
    memset(qw, 0, sizeof *qw);
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return lb_fail(err, "%s: GPTQ bits %d (expected 2, 3, 4 or 8)", name, bits);
    if (in % 32 || out % 32 || group < 0 || group > in)
        return lb_fail(err, "%s: GPTQ layer %" PRId64 " x %" PRId64 " with groups of %d (sizes "
                       "must be multiples of 32)", name, in, out, group);
    int64_t ng = group ? (in + group - 1) / group : 1;
    const char *sd = scales ? scales->dtype : "F16";
    if (check_part(name, "qweight", qweight, "I32", 2, in / 32 * bits, out, err) ||
        check_part(name, "qzeros", qzeros, "I32", 2, ng, out / 32 * bits, err) ||
        check_part(name, "scales", scales, strcmp(sd, "F32") == 0 || strcmp(sd, "BF16") == 0 ? sd : "F16",
                   2, ng, out, err) ||
        (g_idx && g_idx->data && check_part(name, "g_idx", g_idx, "I32", 1, in, 0, err)))
        return -1;
    bool act = false;
    for (int64_t i = 0; g_idx && g_idx->data && i < in; i++) {
        int32_t g = (int32_t)word(g_idx, (size_t)i);
        if (g < 0 || g >= ng)
            return lb_fail(err, "%s.g_idx[%" PRId64 "] is %d (expected 0 to %" PRId64 ")", name,
                           i, g, ng - 1);
        act |= g != (group ? i / group : 0);
    }
    lb_qweight_init(qw, (int)out, (int)in, bits, group, false, act);
    uint32_t words[8], vals[32];
    for (int64_t i0 = 0; i0 < in; i0 += 32)
        for (int64_t o = 0; o < out; o++) {
            for (int w = 0; w < bits; w++)
                words[w] = word(qweight, (size_t)((i0 / 32 * bits + w) * out + o));
            unpack_stream(words, 32, bits, vals);
            for (int k = 0; k < 32; k++)
                qw->q[(size_t)o * in + (size_t)(i0 + k)] = (uint8_t)vals[k];
        }
    int64_t zw = out / 32 * bits;
    uint32_t maxq = (1u << bits) - 1;
    for (int64_t g = 0; g < ng; g++) {
        for (int64_t o0 = 0; o0 < out; o0 += 32) {
            for (int w = 0; w < bits; w++)
                words[w] = word(qzeros, (size_t)(g * zw + o0 / 32 * bits + w));
            unpack_stream(words, 32, bits, vals);
            for (int k = 0; k < 32; k++) {
                /* stored zero - 1; a stored maxq would mean a zero point past the grid */
                if (vals[k] >= maxq) {
                    lb_qweight_free(qw);
                    return lb_fail(err, "%s.qzeros: zero point %u + 1 at group %" PRId64
                                   ", output %" PRId64 " is past the %d-bit grid", name,
                                   vals[k], g, o0 + k, bits);
                }
                qw->zero[(size_t)(o0 + k) * ng + (size_t)g] = (uint8_t)(vals[k] + 1);
            }
        }
        for (int64_t o = 0; o < out; o++)
            qw->scale[(size_t)o * ng + (size_t)g] = scale_at(scales, (size_t)(g * out + o));
    }
    if (act)
        for (int64_t i = 0; i < in; i++)
            qw->g_idx[i] = (int32_t)word(g_idx, (size_t)i);
    bool sym = true;
    for (size_t i = 0; i < (size_t)out * ng; i++)
        sym &= qw->zero[i] == (1u << (bits - 1));
    qw->sym = sym;
    if (check_scales(name, qw, err)) {
        lb_qweight_free(qw);
        return -1;
    }
    return 0;
}

int lb_hf_awq_to_qweight(const char *name, int group, int64_t in, int64_t out,
                         const lb_hf_part *qweight, const lb_hf_part *qzeros,
                         const lb_hf_part *scales, lb_qweight *qw, lb_error *err)
{
    memset(qw, 0, sizeof *qw);
    if (group <= 0 || group > in || in % group || out % 8)
        return lb_fail(err, "%s: AWQ layer %" PRId64 " x %" PRId64 " with groups of %d (groups "
                       "must divide the inputs, outputs a multiple of 8)", name, in, out, group);
    int64_t ng = in / group;
    const char *sd = scales ? scales->dtype : "F16";
    if (check_part(name, "qweight", qweight, "I32", 2, in, out / 8, err) ||
        check_part(name, "qzeros", qzeros, "I32", 2, ng, out / 8, err) ||
        check_part(name, "scales", scales, strcmp(sd, "F32") == 0 || strcmp(sd, "BF16") == 0 ? sd : "F16",
                   2, ng, out, err))
        return -1;
    lb_qweight_init(qw, (int)out, (int)in, 4, group, false, false);
    for (int64_t i = 0; i < in; i++)
        for (int64_t c = 0; c < out / 8; c++) {
            uint32_t w = word(qweight, (size_t)(i * (out / 8) + c));
            for (int j = 0; j < 8; j++)
                qw->q[(size_t)(8 * c + AWQ_ORDER[j]) * in + (size_t)i] = (uint8_t)((w >> (4 * j)) & 15);
        }
    for (int64_t g = 0; g < ng; g++) {
        for (int64_t c = 0; c < out / 8; c++) {
            uint32_t w = word(qzeros, (size_t)(g * (out / 8) + c));
            for (int j = 0; j < 8; j++)
                qw->zero[(size_t)(8 * c + AWQ_ORDER[j]) * ng + (size_t)g] = (uint8_t)((w >> (4 * j)) & 15);
        }
        for (int64_t o = 0; o < out; o++)
            qw->scale[(size_t)o * ng + (size_t)g] = scale_at(scales, (size_t)(g * out + o));
    }
    if (check_scales(name, qw, err)) {
        lb_qweight_free(qw);
        return -1;
    }
    return 0;
}

int lb_hf_w8a8_to_qweight(const char *name, int64_t in, int64_t out, const lb_hf_part *weight,
                          const lb_hf_part *scale, lb_qweight *qw, lb_error *err)
{
    memset(qw, 0, sizeof *qw);
    const char *sd = scale ? scale->dtype : "F16";
    bool col = scale && scale->n_dims == 1;
    if (check_part(name, "weight", weight, "I8", 2, out, in, err) ||
        check_part(name, "weight_scale", scale,
                   strcmp(sd, "F32") == 0 || strcmp(sd, "BF16") == 0 ? sd : "F16", col ? 1 : 2,
                   out, 1, err))
        return -1;
    lb_qweight_init(qw, (int)out, (int)in, 8, 0, true, false);
    qw->w8a8 = true;
    const int8_t *w = weight->data;
    for (size_t i = 0; i < (size_t)(in * out); i++)
        qw->q[i] = (uint8_t)(w[i] + 128);
    for (int64_t o = 0; o < out; o++) {
        qw->scale[o] = scale_at(scale, (size_t)o);
        qw->zero[o] = 128;
    }
    if (check_scales(name, qw, err)) {
        lb_qweight_free(qw);
        return -1;
    }
    return 0;
}
