/* KL divergence on stories260K over TinyStories text: a model against itself gives 0 and 100 %
 * top-1 agreement exactly; round-to-nearest 4-bit (groups of 32, zero point) is further from
 * the baseline than 8-bit; the baseline perplexity lb_kld reports is lb_perplexity's; the
 * figures for RTN 4-bit agree with llama-perplexity --kl-divergence on the same weights. A
 * mismatched vocabulary is refused.
 *
 * With LOWBIT_KLD_SAVE=FILE the test also writes its RTN 4-bit model as GGUF (F32 values), the
 * file the llama.cpp figures below were measured on. */
#include "check.h"
#include "core/file.h"
#include "eval/kld.h"
#include "quant/qweight.h"

#include <math.h>
#include <string.h>

#define CTX 128
#define CHUNKS 16

/* Replaces every block linear weight with its RTN round trip. */
static void fake_quantize(lb_model *m, int bits, int group)
{
    lb_error err;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        lb_layer *L = &m->layers[l];
        lb_tensor *ws[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            lb_tensor *t = ws[i];
            if (!t || t->type != LB_TYPE_F32)
                continue;
            int cols = (int)t->ne[0], rows = (int)t->ne[1];
            lb_qweight q;
            lb_qweight_rtn(t->data, rows, cols, bits, group, false, &q);
            float *deq = malloc((size_t)rows * cols * sizeof(float));
            lb_qweight_dequant(&q, deq);
            CHECK(lb_model_set_f32(m, t->name, deq, &err) == 0, "%s", err.msg);
            free(deq);
            lb_qweight_free(&q);
        }
    }
}

static lb_model *load(const char *path)
{
    lb_model *m = NULL;
    lb_error err;
    if (lb_model_load(path, NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return m;
}

static lb_kld_result run_kld(lb_model *q, lb_model *base, const int *ids, int n,
                             const lb_ppl_options *o)
{
    lb_engine *eq, *eb;
    lb_error err;
    lb_kld_result r;
    memset(&r, 0, sizeof r);
    if (lb_engine_create(q, CTX, 4, 1, &eq, &err) || lb_engine_create(base, CTX, 4, 1, &eb, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    CHECK(lb_kld(eq, eb, ids, n, o, &r, &err) == 0, "%s", err.msg);
    lb_engine_free(eq);
    lb_engine_free(eb);
    return r;
}

static int near(double a, double b, double rel) { return fabs(a - b) <= rel * fabs(b); }

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    char model_path[1024], text_path[1024];
    snprintf(model_path, sizeof model_path, "%s/models/stories260K.gguf", shared);
    snprintf(text_path, sizeof text_path, "%s/datasets/tinystories/validation_head.txt", shared);
    lb_error err;
    char *text;
    size_t len;
    if (lb_read_file(text_path, (size_t)1 << 30, &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    lb_model *base = load(model_path), *same = load(model_path);
    int *ids, n;
    /* 40 kB is plenty for 16 chunks of 128 tokens. */
    CHECK(tok_encode(base->tok, text, len < 40000 ? len : 40000, true, &ids, &n, &err) == 0,
          "%s", err.msg);
    free(text);
    lb_ppl_options o = lb_ppl_defaults();
    o.ctx = CTX;
    o.max_chunks = CHUNKS;

    /* Against itself: every per-token divergence is 0 exactly, the top token always agrees. */
    lb_kld_result self = run_kld(same, base, ids, n, &o);
    int64_t want_n = (int64_t)CHUNKS * (CTX - 1 - CTX / 2);
    CHECK(self.n == want_n, "tokens scored %lld, expected %lld", (long long)self.n,
          (long long)want_n);
    CHECK(self.kld_mean == 0 && self.kld_max == 0 && self.kld_min == 0, "self KLD mean %g max %g",
          self.kld_mean, self.kld_max);
    CHECK(self.same_top == 1.0 && self.same_top_stderr == 0, "self top-1 %.6f", self.same_top);
    CHECK(self.ppl_q == self.ppl_base && self.ppl_diff == 0, "self PPL %.6f vs %.6f", self.ppl_q,
          self.ppl_base);
    CHECK(self.dp_rms == 0 && self.dp_max == 0, "self Δp rms %g", self.dp_rms);

    /* The baseline's perplexity is what lb_perplexity gives for the same chunks. */
    lb_engine *e;
    CHECK(lb_engine_create(base, CTX, 4, 1, &e, &err) == 0, "%s", err.msg);
    lb_ppl_result pr;
    CHECK(lb_perplexity(e, ids, n, &o, &pr, &err) == 0, "%s", err.msg);
    lb_engine_free(e);
    CHECK(near(self.ppl_base, pr.ppl, 1e-6), "KLD's base PPL %.8f, perplexity %.8f",
          self.ppl_base, pr.ppl);
    CHECK(near(self.ppl_base_stderr, pr.ppl_stderr, 1e-4), "base stderr %.8f vs %.8f",
          self.ppl_base_stderr, pr.ppl_stderr);

    /* RTN 8-bit and 4-bit, groups of 32 with zero points. */
    lb_model *q8 = load(model_path), *q4 = load(model_path);
    fake_quantize(q8, 8, 32);
    fake_quantize(q4, 4, 32);
    const char *save = getenv("LOWBIT_KLD_SAVE");
    if (save && *save)
        CHECK(lb_model_save(q4, save, &err) == 0, "%s", err.msg);
    lb_kld_result r8 = run_kld(q8, base, ids, n, &o);
    lb_kld_result r4 = run_kld(q4, base, ids, n, &o);
    printf("RTN8: KLD %.6f ± %.6f, top-1 %.3f %%, PPL %.4f vs %.4f\n", r8.kld_mean, r8.kld_stderr,
           100 * r8.same_top, r8.ppl_q, r8.ppl_base);
    printf("RTN4: KLD %.6f ± %.6f, median %.6f, p99 %.6f, max %.6f, top-1 %.3f ± %.3f %%, "
           "PPL %.4f (Δ %.4f ± %.4f)\n", r4.kld_mean, r4.kld_stderr, r4.kld_median, r4.kld_p99,
           r4.kld_max, 100 * r4.same_top, 100 * r4.same_top_stderr, r4.ppl_q, r4.ppl_diff,
           r4.ppl_diff_stderr);
    CHECK(r8.kld_mean > 0, "RTN8 KLD %g is positive", r8.kld_mean);
    CHECK(r4.kld_mean > r8.kld_mean, "RTN4 KLD %g > RTN8 %g", r4.kld_mean, r8.kld_mean);
    CHECK(r4.kld_mean > 10 * r4.kld_stderr, "RTN4 KLD %g well above its stderr %g", r4.kld_mean,
          r4.kld_stderr);
    CHECK(r4.same_top < r8.same_top || r8.same_top == 1, "top-1: RTN4 %.4f, RTN8 %.4f",
          r4.same_top, r8.same_top);
    CHECK(r4.ppl_q > r4.ppl_base, "RTN4 PPL %.4f above the baseline %.4f", r4.ppl_q, r4.ppl_base);
    /* llama-perplexity on the model this test writes with LOWBIT_KLD_SAVE=rtn4.gguf:
     *   llama-perplexity -m stories260K.gguf -f tinystories/validation_head.txt -c 128 -b 128
     *       --chunks 16 --kl-divergence-base base128.kld
     *   llama-perplexity -m rtn4.gguf -f tinystories/validation_head.txt -c 128 -b 128
     *       --kl-divergence-base base128.kld --kl-divergence
     * printed Mean PPL(Q) 4.173532 ± 0.237594, Mean PPL(base) 3.698338 ± 0.202688,
     * Mean PPL(Q)-PPL(base) 0.475194 ± 0.063267, Mean KLD 0.083862 ± 0.004259, Maximum KLD
     * 1.769780, 99.0% KLD 0.690459, Median KLD 0.045497, Same top p 84.127 ± 1.152 %.
     * llama.cpp stores the baseline's log-probabilities in 16 bits and drops terms below e^-16,
     * and keeps its KV cache in F16: hence the tolerances on the tails and the top-1 rate (one
     * token in 1008 is 0.1 %). */
    CHECK(near(r4.ppl_q, 4.173532, 0.001), "RTN4 PPL %.6f vs llama.cpp 4.173532", r4.ppl_q);
    CHECK(near(r4.ppl_base, 3.698338, 0.001), "base PPL %.6f vs llama.cpp 3.698338", r4.ppl_base);
    CHECK(near(r4.ppl_diff, 0.475194, 0.01), "ΔPPL %.6f vs llama.cpp 0.475194", r4.ppl_diff);
    CHECK(near(r4.ppl_diff_stderr, 0.063267, 0.01), "ΔPPL stderr %.6f vs 0.063267",
          r4.ppl_diff_stderr);
    CHECK(near(r4.kld_mean, 0.083862, 0.005), "KLD %.6f vs llama.cpp 0.083862", r4.kld_mean);
    CHECK(near(r4.kld_stderr, 0.004259, 0.01), "KLD stderr %.6f vs 0.004259", r4.kld_stderr);
    CHECK(near(r4.kld_max, 1.769780, 0.01), "max KLD %.6f vs 1.769780", r4.kld_max);
    CHECK(near(r4.kld_p99, 0.690459, 0.02), "99%% KLD %.6f vs 0.690459", r4.kld_p99);
    CHECK(near(r4.kld_median, 0.045497, 0.02), "median KLD %.6f vs 0.045497", r4.kld_median);
    CHECK(fabs(100 * r4.same_top - 84.127) <= 0.3, "top-1 %.3f %% vs 84.127 %%",
          100 * r4.same_top);
    CHECK(r4.kld_min >= -1e-12 && r4.kld_min <= r4.kld_p1 && r4.kld_p1 <= r4.kld_p5 &&
          r4.kld_p5 <= r4.kld_p10 && r4.kld_p10 <= r4.kld_median && r4.kld_median <= r4.kld_p90 &&
          r4.kld_p90 <= r4.kld_p95 && r4.kld_p95 <= r4.kld_p99 && r4.kld_p99 <= r4.kld_p999 &&
          r4.kld_p999 <= r4.kld_max, "percentiles ordered");

    /* A different vocabulary is refused before anything runs. */
    lb_model *other = load(model_path);
    other->cfg.vocab_size = 500;
    CHECK(lb_kld_check_vocab(other, base, &err) == -1 && strstr(err.msg, "vocabularies differ"),
          "vocab size: %s", err.msg);
    other->cfg.vocab_size = base->cfg.vocab_size;
    char *saved = other->tok->pieces[300];
    other->tok->pieces[300] = (char *)"\xe2\x96\x81zzzz";
    int saved_len = other->tok->piece_len[300];
    other->tok->piece_len[300] = 7;
    CHECK(lb_kld_check_vocab(other, base, &err) == -1 && strstr(err.msg, "token 300"),
          "piece: %s", err.msg);
    other->tok->pieces[300] = saved;
    other->tok->piece_len[300] = saved_len;
    lb_model_free(other);

    free(ids);
    lb_model_free(q4);
    lb_model_free(q8);
    lb_model_free(same);
    lb_model_free(base);
    return check_finish("test_kld");
}
