/* lowbit info: what a model file holds. */
#include "cli/args.h"
#include "cli/commands.h"
#include "model/model.h"
#include "tensor/repack.h"

#include <inttypes.h>
#include <stdio.h>

/* "rtn, 4-bit, group 32, asym, act-order" */
static void quant_summary(const lb_quant_info *q, char *buf, size_t cap)
{
    char group[32];
    if (q->group_size)
        snprintf(group, sizeof group, "group %d", q->group_size);
    else
        snprintf(group, sizeof group, "per channel");
    snprintf(buf, cap, "%s, %d-bit, %s, %s%s%s", q->method, q->bits, group, q->sym ? "sym" : "asym",
             q->act_order ? ", act-order" : "", q->w8a8 ? ", W8A8 (int8 activations per token)" : "");
}

/* Bits per weight of one tensor, everything it stores included (scales, zero points). */
static double tensor_bpw(const lb_tensor *t)
{
    int64_t n = lb_tensor_nelements(t);
    return n ? 8.0 * (double)t->nbytes / (double)n : 0;
}

static const char *rope_name(lb_rope_style r)
{
    return r == LB_ROPE_ADJACENT ? "adjacent pairs" : r == LB_ROPE_HALF ? "half-split" : "none";
}

int cmd_info(int argc, char **argv)
{
    bool json = false, tensors = false;
    const char *tokenizer = NULL;
    const lb_opt opts[] = {
        {"json", 0, OPT_FLAG, &json, NULL, "print as JSON"},
        {"tensors", 0, OPT_FLAG, &tensors, NULL, "list every tensor"},
        {"tokenizer", 0, OPT_STRING, &tokenizer, "PATH", "llama2.c tokenizer.bin for a .bin model"},
    };
    const lb_cmd_spec spec = {"lowbit info MODEL [--json] [--tensors]",
                              "Shows a model's architecture, sizes, tokenizer and tensors.", opts,
                              (int)(sizeof opts / sizeof opts[0]), 1, 1};
    const char *path = NULL;
    int rc = lb_args_parse(&spec, argc, argv, &path, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    lb_error err;
    lb_model *m;
    lb_load_options lo = {tokenizer};
    if (lb_model_load(path, &lo, &m, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    const lb_config *c = &m->cfg;
    size_t bytes = lb_model_bytes(m);
    int64_t params = lb_model_params(m);
    double bpw = params ? 8.0 * (double)bytes / (double)params : 0;
    const char *tk = m->tok->kind == LB_TOK_SPM ? "sentencepiece-bpe" : "byte-level-bpe";
    if (json) {
        printf("{\"path\": \"%s\", \"format\": \"%s\", \"name\": \"%s\", \"architecture\": \"%s\", "
               "\"dim\": %d, \"layers\": %d, \"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, "
               "\"ffn_dim\": %d, \"vocab\": %d, \"context\": %d, \"rope_theta\": %g, "
               "\"norm_eps\": %g, \"params\": %" PRId64 ", \"bytes\": %zu, "
               "\"bits_per_weight\": %.3f, \"tokenizer\": \"%s\", \"tensors\": [",
               m->path, m->format, c->name, c->arch_name, c->dim, c->n_layers, c->n_heads,
               c->n_kv_heads, c->head_dim, c->hidden_dim, c->vocab_size, c->max_ctx,
               c->rope_theta, c->norm_eps, params, bytes, bpw, tk);
        for (int i = 0; i < m->n_tensors; i++) {
            const lb_tensor *t = &m->tensors[i];
            printf("%s{\"name\": \"%s\", \"type\": \"%s\", \"shape\": [", i ? ", " : "", t->name,
                   lb_type_name(t->type));
            for (int d = 0; d < t->n_dims; d++)
                printf("%s%" PRId64, d ? ", " : "", t->ne[d]);
            printf("], \"bytes\": %zu, \"bits_per_weight\": %.4f, \"packed\": %s", t->nbytes,
                   tensor_bpw(t), lb_tensor_packed(t) ? "true" : "false");
            if (t->qlayout)
                printf(", \"bits\": %d, \"group_size\": %d, \"groups\": %d, \"zero_points\": %s, "
                       "\"act_order\": %s, \"w8a8\": %s", t->qlayout->bits,
                       t->qlayout->group_size, t->qlayout->n_groups,
                       t->qlayout->has_zero ? "true" : "false",
                       t->qlayout->g_idx ? "true" : "false", t->qlayout->w8a8 ? "true" : "false");
            printf("}");
        }
        printf("]");
        const lb_quant_info *q = &m->quant;
        if (q->method[0])
            printf(", \"quant\": {\"method\": \"%s\", \"bits\": %d, \"group_size\": %d, "
                   "\"sym\": %s, \"act_order\": %s, \"w8a8\": %s, \"alpha\": %g, \"damp\": %g, "
                   "\"calib_samples\": %d, \"calib_seqlen\": %d}", q->method, q->bits, q->group_size,
                   q->sym ? "true" : "false", q->act_order ? "true" : "false",
                   q->w8a8 ? "true" : "false", q->alpha, q->damp, q->calib_samples,
                   q->calib_seqlen);
        else
            printf(", \"quant\": null");
        printf("}\n");
    } else {
        printf("%s (%s)\n", m->path, m->format);
        printf("  name          %s\n", c->name);
        printf("  architecture  %s\n", c->arch_name);
        printf("  dim           %d\n  layers        %d\n  heads         %d (kv %d, size %d)\n",
               c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim);
        printf("  ffn           %d\n  vocab         %d\n  context       %d\n", c->hidden_dim,
               c->vocab_size, c->max_ctx);
        printf("  rope          %s, theta %g\n  norm eps      %g\n", rope_name(c->rope_style),
               c->rope_theta, c->norm_eps);
        printf("  parameters    %" PRId64 "\n  size          %zu bytes (%.2f bits/weight)\n",
               params, bytes, bpw);
        printf("  tokenizer     %s, %d tokens, bos %d, eos %d\n", tk, m->tok->n_vocab,
               m->tok->bos_id, m->tok->eos_id);
        if (m->quant.method[0]) {
            char qs[160];
            quant_summary(&m->quant, qs, sizeof qs);
            printf("  quantization  %s\n", qs);
        }
        printf("  tensors       %d%s\n", m->n_tensors, tensors ? "" : " (--tensors lists them)");
        int packed = 0;
        for (int i = 0; i < m->n_tensors; i++)
            packed += lb_tensor_packed(&m->tensors[i]) != NULL;
        if (packed)
            printf("  packed        %d weight tensors, rows interleaved %d at a time for the "
                   "kernels\n", packed, LB_PACK_ROWS);
        for (int i = 0; tensors && i < m->n_tensors; i++) {
            const lb_tensor *t = &m->tensors[i];
            /* name, type, shape on the tensor's line (scripts match it); what it costs below */
            printf("    %-32s %-5s [", t->name, lb_type_name(t->type));
            for (int d = 0; d < t->n_dims; d++)
                printf("%s%" PRId64, d ? ", " : "", t->ne[d]);
            printf("]\n      %zu bytes, %.3f bits/weight", t->nbytes, tensor_bpw(t));
            if (t->qlayout) {
                if (t->qlayout->group_size)
                    printf("; %d-bit, group %d", t->qlayout->bits, t->qlayout->group_size);
                else
                    printf("; %d-bit, per channel", t->qlayout->bits);
                printf("%s%s%s", t->qlayout->has_zero ? ", zero points" : "",
                       t->qlayout->g_idx ? ", act-order" : "", t->qlayout->w8a8 ? ", W8A8" : "");
            }
            if (lb_tensor_packed(t))
                printf("; packed %d rows together", LB_PACK_ROWS);
            printf("\n");
        }
    }
    lb_model_free(m);
    return 0;
}
