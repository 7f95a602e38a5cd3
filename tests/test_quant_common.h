/* Shared by the quantization-method tests: stories260K, perplexity as llama.cpp computes it at
 * context 256 on the first EVAL_BYTES of TinyStories validation text, and calibration windows
 * (32 × 256 tokens, seed 1) drawn from the rest of that file, so the two never overlap. */
#ifndef LB_TEST_QUANT_COMMON_H
#define LB_TEST_QUANT_COMMON_H

#include "check.h"
#include "core/file.h"
#include "eval/perplexity.h"
#include "quant/calib.h"
#include "quant/quantize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Small enough for a fast test under the sanitizers, large enough (74 chunks) that the
 * orderings the tests check are far outside the noise. */
#define EVAL_BYTES 40000
#define CTX 256

static const char *model_path;
static char *eval_text;
static size_t eval_len;
static lb_calib calib;

static double perplexity(const lb_model *m)
{
    lb_error err;
    lb_engine *e;
    if (lb_engine_create(m, CTX, 8, 1, &e, &err)) {
        CHECK(0, "%s", err.msg);
        return NAN;
    }
    lb_ppl_options o = lb_ppl_defaults();
    o.ctx = CTX;
    lb_ppl_result r;
    double ppl = NAN;
    if (lb_perplexity_text(e, eval_text, eval_len, &o, &r, &err) == 0)
        ppl = r.ppl;
    else
        CHECK(0, "%s", err.msg);
    lb_engine_free(e);
    return ppl;
}

/* Quantizes a fresh copy of the model and returns its perplexity. */
static double quantized_ppl(const lb_quant_opts *o, const char *label, lb_quant_report *keep)
{
    lb_error err;
    lb_model *m;
    if (lb_model_load(model_path, NULL, &m, &err)) {
        CHECK(0, "%s", err.msg);
        return NAN;
    }
    lb_quant_report rep;
    double ppl = NAN;
    if (lb_quantize_model(m, o, &rep, &err) == 0) {
        ppl = perplexity(m);
        printf("%-28s ppl %.4f  (%.2f s)\n", label, ppl, rep.seconds);
        if (keep)
            *keep = rep;
        else
            lb_quant_report_free(&rep);
    } else {
        CHECK(0, "%s: %s", label, err.msg);
    }
    lb_model_free(m);
    return ppl;
}

static lb_quant_opts opts(lb_qmethod method, int bits, int group)
{
    lb_quant_opts o = lb_quant_defaults();
    o.method = method;
    o.bits = bits;
    o.group_size = group;
    o.sym = bits == 8;
    o.n_threads = 1;   /* the tiny model gains nothing from more */
    o.calib = &calib;
    o.fake = getenv("LOWBIT_QUANT_FAKE") != NULL;
    return o;
}

static char *all_text;
static char calib_path[4096];

/* Loads the text, writes the calibration part to a temporary file, draws the windows, and
 * returns the float model's perplexity. */
static double quant_test_setup(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    static char mp[4096], tp[4096];
    snprintf(mp, sizeof mp, "%s/models/stories260K.gguf", shared);
    snprintf(tp, sizeof tp, "%s/datasets/tinystories/validation_head.txt", shared);
    snprintf(calib_path, sizeof calib_path, "%s/lowbit_quant_calib_%d.txt", tmp, (int)getpid());
    model_path = mp;
    lb_error err;
    size_t len;
    if (lb_read_file(tp, 1u << 24, &all_text, &len, &err) || len < 2 * EVAL_BYTES) {
        fprintf(stderr, "cannot read %s\n", tp);
        exit(1);
    }
    eval_text = all_text;
    eval_len = EVAL_BYTES;
    FILE *f = fopen(calib_path, "wb");
    if (!f || fwrite(all_text + EVAL_BYTES, 1, len - EVAL_BYTES, f) != len - EVAL_BYTES) {
        fprintf(stderr, "cannot write %s\n", calib_path);
        exit(1);
    }
    fclose(f);
    lb_model *m;
    if (lb_model_load(model_path, NULL, &m, &err) ||
        lb_calib_load(calib_path, m->tok, 32, CTX, 1, &calib, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    remove(calib_path);
    double base = perplexity(m);
    lb_model_free(m);
    printf("%-28s ppl %.4f\n", "f32", base);
    /* llama-perplexity -m stories260K.gguf -f <the first 40000 bytes> -c 256 prints
     * "Final estimate: PPL = 3.9243"; this guards the setup, perplexity is tested elsewhere. */
    CHECK(fabs(base - 3.9243) < 0.002, "baseline %.4f", base);
    return base;
}

static void quant_test_teardown(void)
{
    lb_calib_free(&calib);
    free(all_text);
}

#endif
