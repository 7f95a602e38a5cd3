/* The model container: tensors, storage ownership, and binding canonical names to layers. */
#include "model/model.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/strmap.h"
#include "tensor/repack.h"

lb_model *lb_model_new(const char *path, const char *format)
{
    lb_model *m = lb_calloc(1, sizeof *m);
    snprintf(m->path, sizeof m->path, "%s", path);
    snprintf(m->format, sizeof m->format, "%s", format);
    return m;
}

void lb_model_free(lb_model *m)
{
    if (!m)
        return;
    tok_free(m->tok);
    if (m->src_meta && m->src_meta_free)
        m->src_meta_free(m->src_meta);
    free(m->layers);
    free(m->tensors);
    for (int i = 0; i < m->n_maps; i++)
        lb_unmap(&m->maps[i]);
    free(m->maps);
    for (int i = 0; i < m->n_buffers; i++)
        free(m->buffers[i]);
    free(m->buffers);
    free(m);
}

void lb_model_own(lb_model *m, void *buffer)
{
    m->buffers = lb_realloc(m->buffers, (size_t)(m->n_buffers + 1) * sizeof(void *));
    m->buffers[m->n_buffers++] = buffer;
}

void lb_model_own_map(lb_model *m, const lb_mapping *map)
{
    m->maps = lb_realloc(m->maps, (size_t)(m->n_maps + 1) * sizeof(lb_mapping));
    m->maps[m->n_maps++] = *map;
}

void lb_model_get_row(const lb_model *m, const lb_tensor *t, int64_t r, float *dst)
{
    size_t rb = lb_tensor_row_bytes(t);
    const char *row = (const char *)t->data + (size_t)r * rb;
    lb_to_float_fn to_float = lb_type_traits_of(t->type)->to_float;
    const lb_mapping *map = NULL;
    if (!lb_tensor_packed(t) && !t->qlayout && to_float)
        for (int i = 0; i < m->n_maps && !map; i++)
            if (lb_mapping_holds(&m->maps[i], row, rb))
                map = &m->maps[i];
    if (map && t->type == LB_TYPE_F32 && lb_mapping_read(map, row, dst, rb) == 0)
        return;   /* the row is its own fp32 values */
    if (map && t->type != LB_TYPE_F32) {
        uint8_t small[16384];
        void *bytes = rb <= sizeof small ? small : lb_malloc(rb);
        bool read = lb_mapping_read(map, row, bytes, rb) == 0;
        if (read)
            to_float(bytes, dst, t->ne[0]);
        if (bytes != small)
            free(bytes);
        if (read)
            return;
    }
    /* not in a mapping, or the read failed: the mapped bytes themselves */
    lb_tensor_get_row(t, r, dst);
}

int lb_model_add_tensor(lb_model *m, const lb_tensor *t)
{
    m->tensors = lb_realloc(m->tensors, (size_t)(m->n_tensors + 1) * sizeof(lb_tensor));
    m->tensors[m->n_tensors] = *t;
    return m->n_tensors++;
}

lb_tensor *lb_model_find(const lb_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return &m->tensors[i];
    return NULL;
}

/* Both count what a saved file would hold: views once, in their owner, and a fused qkv whose
 * parts were all replaced (quantized one by one) not at all. */
size_t lb_model_bytes(const lb_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (lb_model_tensor_stored(m, &m->tensors[i]))
            n += m->tensors[i].nbytes;
    return n;
}

int64_t lb_model_params(const lb_model *m)
{
    int64_t n = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (lb_model_tensor_stored(m, &m->tensors[i]))
            n += lb_tensor_nelements(&m->tensors[i]);
    return n;
}

int lb_model_set_f32(lb_model *m, const char *name, const float *values, lb_error *err)
{
    lb_tensor *t = lb_model_find(m, name);
    if (!t)
        return lb_fail(err, "%s: no tensor named '%s'", m->path, name);
    int64_t n = lb_tensor_nelements(t);
    float *copy = lb_malloc((size_t)n * sizeof(float));
    memcpy(copy, values, (size_t)n * sizeof(float));
    lb_model_own(m, copy);
    t->type = LB_TYPE_F32;
    t->data = copy;
    t->nbytes = (size_t)n * sizeof(float);
    t->view = false;
    t->packed = NULL;
    return 0;
}

bool lb_model_tensor_stored(const lb_model *m, const lb_tensor *t)
{
    if (t->view)
        return false;
    const char *p = strstr(t->name, ".attn_qkv.weight");
    if (!p || p[16] || strncmp(t->name, "blk.", 4) != 0)
        return true;
    /* GPT-2's fused qkv is dead once q, k and v are tensors of their own */
    const char *part[] = {"attn_q", "attn_k", "attn_v"};
    for (int i = 0; i < 3; i++) {
        char name[LB_MAX_NAME + 16];
        snprintf(name, sizeof name, "%.*s.%s.weight", (int)(p - t->name), t->name, part[i]);
        const lb_tensor *v = lb_model_find(m, name);
        if (!v || v->view)
            return true;
    }
    return false;
}

bool lb_model_is_quantized(const lb_model *m)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].qlayout)
            return true;
    return false;
}

/* ---- binding ---------------------------------------------------------------------------- */

/* "[64, 32]": a tensor's shape as the file gives it, for messages. */
static const char *shape_str(const lb_tensor *t, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < t->n_dims && d < LB_MAX_DIMS && o < cap; d++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, d ? ", " : "", t->ne[d]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
    return buf;
}

/* Checks a tensor's shape: expected ne0 x ne1 (ne1 == 0 for a vector). */
static int check_shape(const lb_model *m, const lb_tensor *t, int64_t ne0, int64_t ne1,
                       lb_error *err)
{
    bool ok = t->ne[0] == ne0 && t->ne[2] == 1 && t->ne[3] == 1 &&
              (ne1 ? t->ne[1] == ne1 : t->ne[1] == 1);
    if (ok)
        return 0;
    char have[128];
    shape_str(t, have, sizeof have);
    if (ne1)
        return lb_fail(err, "%s: tensor '%s' has shape %s, expected [%" PRId64 ", %" PRId64
                       "] from the model's config", m->path, t->name, have, ne0, ne1);
    return lb_fail(err, "%s: tensor '%s' has shape %s, expected [%" PRId64 "] from the model's "
                   "config", m->path, t->name, have, ne0);
}

/* Weights go through lb_matmul (and the embedding through lb_tensor_get_row): their type
 * needs a dot kernel, or a group layout that matches the shape. */
static int check_matmul(const lb_model *m, const lb_tensor *t, lb_error *err)
{
    const lb_type_traits *tr = lb_type_traits_of(t->type);
    const lb_qlayout *L = t->qlayout;
    if (L ? L->cols == t->ne[0] && L->rows == t->ne[1] : tr && tr->dot && tr->to_float)
        return 0;
    return lb_fail(err, "%s: tensor '%s' is %s%s, which lowbit cannot use as a weight matrix",
                   m->path, t->name, lb_type_name(t->type),
                   tr && tr->quantized && !L ? " without its group layout" : "");
}

/* Norms and biases are read as fp32 vectors by the forward pass. */
static int check_f32(const lb_model *m, const lb_tensor *t, lb_error *err)
{
    if (t && t->type != LB_TYPE_F32)
        return lb_fail(err, "%s: tensor '%s' is %s, expected F32 (norms and biases are read as "
                       "fp32)", m->path, t->name, lb_type_name(t->type));
    return 0;
}

/* Name -> index of every tensor, so binding stays linear in the tensor count however many
 * tensors a file lists. */
typedef struct {
    const lb_model *m;
    lb_strmap *names;
} tensor_index;

static void index_add(tensor_index *ix, int i)
{
    const char *name = ix->m->tensors[i].name;
    int prev;
    if (!lb_strmap_get(ix->names, name, strlen(name), &prev))   /* the first one wins */
        lb_strmap_put(ix->names, name, strlen(name), i);
}

static lb_tensor *index_find(const tensor_index *ix, const char *name)
{
    int i;
    return lb_strmap_get(ix->names, name, strlen(name), &i) ? &ix->m->tensors[i] : NULL;
}

/* Finds a formatted name; when required and absent, fails naming it. */
static int find(const tensor_index *ix, lb_tensor **out, bool required, lb_error *err,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int find(const tensor_index *ix, lb_tensor **out, bool required, lb_error *err,
                const char *fmt, ...)
{
    char name[LB_MAX_NAME];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    *out = index_find(ix, name);
    if (!*out && required)
        return lb_fail(err, "%s: tensor '%s' is missing", ix->m->path, name);
    return 0;
}

/* A view of rows [row0, row0 + rows) of a 2-D (or 1-D, as a vector slice) tensor. */
static lb_tensor view_rows(const lb_tensor *t, const char *name, int64_t row0, int64_t rows)
{
    lb_tensor v = *t;
    snprintf(v.name, sizeof v.name, "%s", name);
    if (t->n_dims == 1) {
        size_t eb = lb_row_bytes(t->type, 1);
        v.data = (char *)t->data + (size_t)row0 * eb;
        v.ne[0] = rows;
        v.nbytes = (size_t)rows * eb;
    } else {
        size_t rb = lb_tensor_row_bytes(t);
        v.data = (char *)t->data + (size_t)row0 * rb;
        v.ne[1] = rows;
        v.nbytes = (size_t)rows * rb;
    }
    return v;
}

/* GPT-2 checkpoints fuse q, k and v into one attn_qkv tensor; split it into three views so the
 * forward pass sees separate projections. Views share the fused tensor's storage and are
 * excluded from the byte and parameter counts by being zero-sized. */
static int split_fused_qkv(lb_model *m, tensor_index *ix, int layer, lb_error *err)
{
    const lb_config *c = &m->cfg;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    const char *suffix[] = {"weight", "bias"};
    for (int s = 0; s < 2; s++) {
        char name[LB_MAX_NAME];
        snprintf(name, sizeof name, "blk.%d.attn_qkv.%s", layer, suffix[s]);
        lb_tensor *fused = index_find(ix, name);
        if (!fused)
            continue;
        int64_t rows = fused->n_dims == 1 ? fused->ne[0] : fused->ne[1];
        if (rows != q + 2 * kv)
            return lb_fail(err, "%s: tensor '%s' has %" PRId64 " rows, expected %" PRId64
                           " (q + k + v)", m->path, name, rows, q + 2 * kv);
        const char *part[] = {"attn_q", "attn_k", "attn_v"};
        int64_t start[] = {0, q, q + kv}, len[] = {q, kv, kv};
        lb_tensor base = *fused;
        for (int p = 0; p < 3; p++) {
            char pn[LB_MAX_NAME];
            snprintf(pn, sizeof pn, "blk.%d.%s.%s", layer, part[p], suffix[s]);
            lb_tensor v = view_rows(&base, pn, start[p], len[p]);
            v.nbytes = 0;          /* counted once, in the fused tensor */
            v.view = true;
            v.ne[3] = 1;
            index_add(ix, lb_model_add_tensor(m, &v));
        }
    }
    return 0;
}

/* The most layers a config may claim; real models have at most a few hundred. */
#define MAX_LAYERS 4096

static int bind_tensors(lb_model *m, tensor_index *ix, lb_error *err)
{
    lb_config *c = &m->cfg;
    for (int l = 0; l < c->n_layers; l++)
        if (split_fused_qkv(m, ix, l, err))
            return -1;

    /* Pointers into m->tensors are stable from here: nothing more is appended. */
    bool gpt2 = c->arch == LB_ARCH_GPT2;
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    if (find(ix, &m->tok_embd, true, err, "token_embd.weight") ||
        check_shape(m, m->tok_embd, c->dim, c->vocab_size, err))
        return -1;
    if (find(ix, &m->out_norm, true, err, "output_norm.weight") ||
        check_shape(m, m->out_norm, c->dim, 0, err) || check_f32(m, m->out_norm, err))
        return -1;
    find(ix, &m->out_norm_b, false, err, "output_norm.bias");
    if (m->out_norm_b &&
        (check_shape(m, m->out_norm_b, c->dim, 0, err) || check_f32(m, m->out_norm_b, err)))
        return -1;
    if (check_matmul(m, m->tok_embd, err))
        return -1;
    find(ix, &m->output, false, err, "output.weight");
    if (m->output && check_matmul(m, m->output, err))
        return -1;
    if (!m->output)
        m->output = m->tok_embd;
    else if (check_shape(m, m->output, c->dim, c->vocab_size, err))
        return -1;
    if (gpt2) {
        if (find(ix, &m->pos_embd, true, err, "position_embd.weight") ||
            check_shape(m, m->pos_embd, c->dim, m->pos_embd->ne[1], err))
            return -1;
        if (m->pos_embd->ne[1] < c->max_ctx)
            c->max_ctx = (int)m->pos_embd->ne[1];
    }

    m->layers = lb_calloc((size_t)c->n_layers, sizeof(lb_layer));
    for (int l = 0; l < c->n_layers; l++) {
        lb_layer *L = &m->layers[l];
        struct {
            lb_tensor **slot;
            const char *name;
            bool required;
            int64_t ne0, ne1;
        } want[] = {
            {&L->attn_norm, "attn_norm.weight", true, c->dim, 0},
            {&L->attn_norm_b, "attn_norm.bias", false, c->dim, 0},
            {&L->wq, "attn_q.weight", true, c->dim, q},
            {&L->wk, "attn_k.weight", true, c->dim, kv},
            {&L->wv, "attn_v.weight", true, c->dim, kv},
            {&L->wo, "attn_output.weight", true, q, c->dim},
            {&L->bq, "attn_q.bias", false, q, 0},
            {&L->bk, "attn_k.bias", false, kv, 0},
            {&L->bv, "attn_v.bias", false, kv, 0},
            {&L->bo, "attn_output.bias", false, c->dim, 0},
            {&L->ffn_norm, "ffn_norm.weight", true, c->dim, 0},
            {&L->ffn_norm_b, "ffn_norm.bias", false, c->dim, 0},
            {&L->w_gate, "ffn_gate.weight", !gpt2, c->dim, c->hidden_dim},
            {&L->w_up, "ffn_up.weight", true, c->dim, c->hidden_dim},
            {&L->w_down, "ffn_down.weight", true, c->hidden_dim, c->dim},
            {&L->b_up, "ffn_up.bias", false, c->hidden_dim, 0},
            {&L->b_down, "ffn_down.bias", false, c->dim, 0},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            if (find(ix, want[i].slot, want[i].required, err, "blk.%d.%s", l, want[i].name))
                return -1;
            lb_tensor *t = *want[i].slot;
            if (t && check_shape(m, t, want[i].ne0, want[i].ne1, err))
                return -1;
            if (t && want[i].ne1 == 0 && check_f32(m, t, err))
                return -1;
            if (t && want[i].ne1 && check_matmul(m, t, err))
                return -1;
        }
    }
    return 0;
}

int lb_model_bind(lb_model *m, lb_error *err)
{
    lb_config *c = &m->cfg;
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->hidden_dim <= 0 || c->vocab_size <= 0 || c->head_dim <= 0 || c->max_ctx <= 0)
        return lb_fail(err, "%s: config has a zero or negative size (dim %d, layers %d, heads %d, "
                       "kv heads %d, head size %d, ffn %d, vocab %d, context %d)", m->path,
                       c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim,
                       c->hidden_dim, c->vocab_size, c->max_ctx);
    if (c->n_heads % c->n_kv_heads)
        return lb_fail(err, "%s: %d attention heads is not a multiple of %d kv heads", m->path,
                       c->n_heads, c->n_kv_heads);
    if (c->rope_style != LB_ROPE_NONE && c->head_dim % 2)
        return lb_fail(err, "%s: head size %d is odd; RoPE needs an even size", m->path,
                       c->head_dim);
    if (c->n_layers > MAX_LAYERS)
        return lb_fail(err, "%s: config has %d layers (expected 1 to %d)", m->path, c->n_layers,
                       MAX_LAYERS);
    tensor_index ix = {m, lb_strmap_create((size_t)m->n_tensors)};
    for (int i = 0; i < m->n_tensors; i++)
        index_add(&ix, i);
    int rc = bind_tensors(m, &ix, err);
    lb_strmap_free(ix.names);
    return rc;
}
