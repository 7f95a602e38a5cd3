/* lowbit quantize: RTN, GPTQ, AWQ or SmoothQuant over a float model, calibrated on text, written
 * as lowbit's quantized GGUF (atomically: nothing is left at the output path on failure). */
#include "cli/args.h"
#include "cli/commands.h"
#include "core/dist.h"
#include "core/file.h"
#include "core/log.h"
#include "core/timer.h"
#include "eval/result.h"
#include "quant/calib.h"
#include "quant/quantize.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* "gptq-int4-g128", "smoothquant-w8a8", "rtn-int8" */
static void format_name(const lb_quant_opts *o, char *buf, size_t cap)
{
    if (o->method == LB_QM_SMOOTHQUANT) {
        snprintf(buf, cap, "%s-w8a8", o->alpha > 0 ? "smoothquant" : "naive");
        return;
    }
    if (o->group_size)
        snprintf(buf, cap, "%s-int%d-g%d", lb_qmethod_name(o->method), o->bits, o->group_size);
    else
        snprintf(buf, cap, "%s-int%d", lb_qmethod_name(o->method), o->bits);
}

static void print_json(const char *model, const char *out, const lb_quant_opts *o,
                       const lb_quant_report *rep, double bpw, long long file_bytes)
{
    char fmt[64];
    format_name(o, fmt, sizeof fmt);
    lb_result r;
    lb_result_init(&r, out, fmt, "quantize", "seconds", rep->seconds);
    r.n = rep->n_weights;
    r.seconds = rep->seconds;
    lb_result_param(&r, "source", json_string(model));
    lb_result_param(&r, "method", json_string(lb_qmethod_name(o->method)));
    lb_result_param(&r, "bits", json_integer(o->bits));
    lb_result_param(&r, "group_size", json_integer(o->group_size));
    lb_result_param(&r, "sym", json_boolean(o->sym));
    lb_result_param(&r, "act_order", json_boolean(o->act_order));
    lb_result_param(&r, "static_groups", json_boolean(o->static_groups));
    if (o->method == LB_QM_GPTQ)
        lb_result_param(&r, "true_sequential", json_boolean(!o->all_sites_float));
    if (o->method == LB_QM_GPTQ)
        lb_result_param(&r, "damp", json_real(o->damp));
    if (o->method == LB_QM_SMOOTHQUANT)
        lb_result_param(&r, "alpha", json_real(o->alpha));
    if (o->calib) {
        lb_result_param(&r, "calib_samples", json_integer(o->calib->n_samples));
        lb_result_param(&r, "calib_seqlen", json_integer(o->calib->seqlen));
    }
    lb_result_param(&r, "bits_per_weight", json_real(bpw));
    lb_result_param(&r, "file_bytes", json_integer(file_bytes));
    json_t *layers = json_array();
    for (int i = 0; i < rep->n_layers; i++) {
        const lb_quant_layer *q = &rep->layers[i];
        json_t *l = json_object();
        json_object_set_new(l, "name", json_string(q->name));
        json_object_set_new(l, "rows", json_integer(q->rows));
        json_object_set_new(l, "cols", json_integer(q->cols));
        json_object_set_new(l, "rel_error", isfinite(q->rel_error) ? json_real(q->rel_error)
                                                                   : json_null());
        json_object_set_new(l, "gptq_loss", isfinite(q->gptq_loss) ? json_real(q->gptq_loss)
                                                                   : json_null());
        json_array_append_new(layers, l);
    }
    lb_result_param(&r, "layers", layers);
    lb_results_write_json(stdout, &r, 1);
    lb_result_free(&r);
}

/* Bits per weight of the quantized linears, scales and zero points included. */
static double linear_bpw(const lb_model *m)
{
    double bytes = 0, n = 0;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        const lb_layer *L = &m->layers[l];
        const lb_tensor *ts[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
            if (ts[i]) {
                bytes += (double)ts[i]->nbytes;
                n += (double)lb_tensor_nelements(ts[i]);
            }
    }
    return n > 0 ? 8.0 * bytes / n : 0;
}

int cmd_quantize(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *method_name = NULL, *calib_path = NULL;
    int bits = -1, group = -1, samples = 128, seqlen = 512, seed = 0, threads = 0;
    float damp = 0.01f, alpha = -1;
    bool sym = false, asym = false, act_order = false, static_groups = false, naive = false;
    bool no_clip = false, json = false, quiet = false, fake = false, not_sequential = false;
    const lb_opt opts[] = {
        {"model", 'm', OPT_STRING, &model, "PATH", "float model: .gguf, llama2.c .bin, or a Hugging Face directory"},
        {"output", 'o', OPT_STRING, &out, "PATH", "quantized GGUF to write"},
        {"method", 0, OPT_STRING, &method_name, "M", "rtn, gptq, awq or smoothquant"},
        {"bits", 'b', OPT_INT, &bits, "B", "2, 3, 4 or 8 (default 4; smoothquant 8)"},
        {"group-size", 'g', OPT_INT, &group, "G", "32, 64, 128, or 0 for per channel (default 128; 8-bit 0)"},
        {"sym", 0, OPT_FLAG, &sym, NULL, "symmetric grid (default for 8 bits)"},
        {"asym", 0, OPT_FLAG, &asym, NULL, "asymmetric grid with zero points (default below 8 bits)"},
        {"act-order", 0, OPT_FLAG, &act_order, NULL, "gptq: columns in order of decreasing Hessian diagonal"},
        {"static-groups", 0, OPT_FLAG, &static_groups, NULL, "gptq: group grids fixed from the original weights"},
        {"no-true-sequential", 0, OPT_FLAG, &not_sequential, NULL, "gptq: every linear's Hessian from the float block (default: from the block with the linears before it quantized; one pass instead of two)"},
        {"damp", 0, OPT_FLOAT, &damp, "D", "gptq: dampening, fraction of the mean Hessian diagonal (default 0.01)"},
        {"alpha", 0, OPT_FLOAT, &alpha, "A", "smoothquant: migration strength in [0, 1] (default 0.5; 0 = naive W8A8)"},
        {"naive", 0, OPT_FLAG, &naive, NULL, "smoothquant: W8A8 without smoothing (same as --alpha 0)"},
        {"no-clip", 0, OPT_FLAG, &no_clip, NULL, "awq: skip the clipping search"},
        {"calib", 0, OPT_STRING, &calib_path, "FILE", "calibration text or .jsonl (default " LB_CALIB_DEFAULT_PATH ")"},
        {"calib-samples", 0, OPT_INT, &samples, "N", "calibration windows (default 128)"},
        {"calib-seqlen", 0, OPT_INT, &seqlen, "L", "tokens per window (default 512)"},
        {"seed", 's', OPT_INT, &seed, "S", "seed for drawing the windows (default 0)"},
        {"threads", 't', OPT_INT, &threads, "N", "threads (default: all cores)"},
        {"fake", 0, OPT_FLAG, &fake, NULL, "store dequantized F32 weights instead of packed ones (for comparisons)"},
        {"json", 0, OPT_FLAG, &json, NULL, "print a summary as JSON (the shared result schema)"},
        {"quiet", 'q', OPT_FLAG, &quiet, NULL, "no progress or per-layer report"},
    };
    const lb_cmd_spec spec = {
        "lowbit quantize -m MODEL --method rtn|gptq|awq|smoothquant [options] -o OUT",
        "Quantizes the linear layers of every block. GPTQ, AWQ and SmoothQuant are calibrated on "
        "text, block by block: each block sees the outputs of the blocks already quantized. "
        "The result is written atomically as a GGUF that lowbit runs without expanding it.",
        opts, (int)(sizeof opts / sizeof opts[0]), 0, 0};
    int rc = lb_args_parse(&spec, argc, argv, NULL, NULL);
    if (rc)
        return rc > 0 ? 0 : 1;
    if (!model || !out || !method_name) {
        fprintf(stderr, "quantize: -m MODEL, --method and -o OUT are required\n");
        return 1;
    }
    lb_quant_opts o = lb_quant_defaults();
    if (lb_qmethod_parse(method_name, &o.method)) {
        fprintf(stderr, "quantize: unknown method '%s' (expected rtn, gptq, awq or smoothquant)\n",
                method_name);
        return 1;
    }
    if (sym && asym) {
        fprintf(stderr, "quantize: --sym and --asym contradict each other\n");
        return 1;
    }
    if (naive && alpha > 0) {
        fprintf(stderr, "quantize: --naive and --alpha %g contradict each other\n", (double)alpha);
        return 1;
    }
    if ((naive || alpha >= 0) && o.method != LB_QM_SMOOTHQUANT) {
        fprintf(stderr, "quantize: --%s applies to smoothquant only\n", naive ? "naive" : "alpha");
        return 1;
    }
    if (no_clip && o.method != LB_QM_AWQ) {
        fprintf(stderr, "quantize: --no-clip applies to awq only\n");
        return 1;
    }
    if (threads < 0 || samples <= 0 || seqlen < 2 || seed < 0) {
        fprintf(stderr, "quantize: --%s is %d, expected %s\n",
                threads < 0 ? "threads" : samples <= 0 ? "calib-samples" : seqlen < 2 ? "calib-seqlen" : "seed",
                threads < 0 ? threads : samples <= 0 ? samples : seqlen < 2 ? seqlen : seed,
                samples <= 0 ? "1 or more" : seqlen < 2 ? "2 or more" : "0 or more");
        return 1;
    }
    o.bits = bits >= 0 ? bits : o.method == LB_QM_SMOOTHQUANT ? 8 : 4;
    o.group_size = group >= 0 ? group : o.bits == 8 ? 0 : 128;
    o.sym = sym || (!asym && o.bits == 8);
    o.act_order = act_order;
    o.static_groups = static_groups;
    o.all_sites_float = not_sequential;
    o.damp = damp;
    o.alpha = naive ? 0.0f : alpha >= 0 ? alpha : 0.5f;
    o.awq_clip = !no_clip;
    o.n_threads = threads;
    o.fake = fake;
    o.progress = !quiet && !json;
    lb_error err;
    if (lb_quant_check(&o, &err)) {
        fprintf(stderr, "quantize: %s\n", err.msg);
        return 1;
    }
    if (lb_is_dir(out)) {
        fprintf(stderr, "quantize: %s: is a directory, expected the output file's path\n", out);
        return 1;
    }
    if (quiet || json)
        lb_log_set_level(0);

    double t_load = lb_now_ms();
    lb_model *m;
    if (lb_model_load(model, NULL, &m, &err)) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
        return 1;
    }
    t_load = lb_now_ms() - t_load;
    double t_calib = lb_now_ms();
    lb_calib calib;
    memset(&calib, 0, sizeof calib);
    if (o.method != LB_QM_RTN) {
        const char *cp = calib_path ? calib_path : LB_CALIB_DEFAULT_PATH;
        if (lb_calib_load(cp, m->tok, samples, seqlen, (uint64_t)seed, &calib, &err)) {
            fprintf(stderr, "lowbit: %s\n", err.msg);
            lb_model_free(m);
            return 1;
        }
        o.calib = &calib;
        o.calib_name = base_name(cp);
    } else if (calib_path) {
        lb_log_info("quantize: rtn needs no calibration; %s is not read", calib_path);
    }
    t_calib = lb_now_ms() - t_calib;
    lb_quant_report rep;
    int status = lb_quantize_model(m, &o, &rep, &err);
    /* Under mpirun every process ends with the same model; the first one writes it. */
    double t_save = lb_now_ms();
    if (status == 0 && lb_dist_rank() == 0 && lb_model_save(m, out, &err))
        status = -1;
    t_save = lb_now_ms() - t_save;
    lb_dist_barrier();
    if (status) {
        fprintf(stderr, "lowbit: %s\n", err.msg);
    } else {
        struct stat st;
        long long fbytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
        double bpw = linear_bpw(m);
        if (!quiet && !json) {
            for (int i = 0; i < rep.n_layers; i++) {
                const lb_quant_layer *q = &rep.layers[i];
                if (isfinite(q->gptq_loss))
                    lb_log_info("%-28s %5d x %-5d  output error %.3e  gptq loss %.4g", q->name,
                                q->rows, q->cols, q->rel_error, q->gptq_loss);
                else if (isfinite(q->rel_error))
                    lb_log_info("%-28s %5d x %-5d  output error %.3e", q->name, q->rows,
                                q->cols, q->rel_error);
            }
            lb_log_info("load %.2f s, calibration windows %.2f s, save %.2f s (wall)",
                        t_load / 1e3, t_calib / 1e3, t_save / 1e3);
            for (int p = 0; p < LB_QP_COUNT; p++)
                if (rep.phase_s[p] > 0 || rep.phase_cpu_s[p] > 0)
                    lb_log_info("phase %-10s %8.2f s wall %8.2f s cpu", lb_quant_phase_name(p),
                                rep.phase_s[p], rep.phase_cpu_s[p]);
            lb_log_info("quantized %lld weights (%s) in %.2f s: %.3f bits per weight in the "
                        "linears, %s is %lld bytes", (long long)rep.n_weights,
                        lb_qmethod_name(o.method), rep.seconds, bpw, out, fbytes);
        }
        if (json)
            print_json(model, out, &o, &rep, bpw, fbytes);
    }
    lb_quant_report_free(&rep);
    lb_calib_free(&calib);
    lb_model_free(m);
    return status ? 1 : 0;
}
