/* The batched forward pass: one batch of many positions, many sequences at once, and one token
 * at a time must all give the same logits; thread counts must not change results; bad batches
 * are refused. Uses the real stories260K model. */
#include "check.h"
#include "model/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static float max_abs_diff(const float *a, const float *b, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* Counts the capture hook's calls per site. */
static void count_sites(void *user, int layer, lb_site site, const float *x, int n, int width)
{
    (void)layer, (void)x, (void)n, (void)width;
    ((int *)user)[site]++;
}

/* A block run in parts, stopping at every site (keeping the inputs of o and down in act, or
 * dropping them and resuming from the site before), must give the whole block's output bit
 * for bit, and show each site's input to the capture hook once. Between the parts, the block
 * runs over other inputs, as it does for the other windows of a calibration set, so that no
 * part can lean on what the engine's scratch still held from the part before. */
static void check_block_parts(lb_engine *e, const lb_batch *b, int dim, int act_width)
{
    lb_error err;
    size_t n = (size_t)b->n;
    float *whole = malloc(n * dim * sizeof(float)), *kept = malloc(n * dim * sizeof(float));
    float *redone = malloc(n * dim * sizeof(float)), *act = malloc(n * act_width * sizeof(float));
    CHECK(lb_engine_embed(e, b, whole, &err) == 0, "%s", err.msg);
    memcpy(kept, whole, n * dim * sizeof(float));
    memcpy(redone, whole, n * dim * sizeof(float));
    float *other = malloc(n * dim * sizeof(float));
    for (int l = 0; l < lb_engine_model(e)->cfg.n_layers; l++) {
        CHECK(lb_engine_block(e, l, b, whole, &err) == 0, "%s", err.msg);
        int seen[LB_SITE_COUNT] = {0};
        lb_engine_set_capture(e, count_sites, seen);
        const int stops[] = {LB_BLOCK_INPUT, LB_SITE_QKV, LB_SITE_O, LB_SITE_FFN, LB_SITE_DOWN,
                             LB_BLOCK_OUTPUT};
        for (int k = 0; k + 1 < 6; k++) {
            CHECK(lb_engine_block_part(e, l, b, kept, act, stops[k], stops[k + 1], &err) == 0,
                  "part %d..%d: %s", stops[k], stops[k + 1], err.msg);
            for (size_t i = 0; i < n * dim; i++)
                other[i] = 0.5f * kept[i] + 0.25f;
            lb_engine_set_capture(e, NULL, NULL);
            CHECK(lb_engine_block(e, l, b, other, &err) == 0, "%s", err.msg);
            lb_engine_set_capture(e, count_sites, seen);
        }
        for (int s = 0; s < LB_SITE_COUNT; s++)
            CHECK(seen[s] == 1, "block %d: site %d captured %d times", l, s, seen[s]);
        lb_engine_set_capture(e, NULL, NULL);
        const int from[] = {LB_BLOCK_INPUT, LB_SITE_QKV, LB_SITE_QKV, LB_SITE_FFN, LB_SITE_FFN};
        const int to[] = {LB_SITE_QKV, LB_SITE_O, LB_SITE_FFN, LB_SITE_DOWN, LB_BLOCK_OUTPUT};
        for (int k = 0; k < 5; k++) {
            CHECK(lb_engine_block_part(e, l, b, redone, NULL, from[k], to[k], &err) == 0,
                  "part %d..%d without act: %s", from[k], to[k], err.msg);
            for (size_t i = 0; i < n * dim; i++)
                other[i] = 0.5f * redone[i] - 0.25f;
            CHECK(lb_engine_block(e, l, b, other, &err) == 0, "%s", err.msg);
        }
    }
    CHECK(memcmp(whole, kept, n * dim * sizeof(float)) == 0,
          "block in parts (inputs of o and down kept) differs from the whole block");
    CHECK(memcmp(whole, redone, n * dim * sizeof(float)) == 0,
          "block in parts (inputs of o and down recomputed) differs from the whole block");
    CHECK(lb_engine_block_part(e, 0, b, kept, act, LB_SITE_O, LB_SITE_O, &err) != 0 &&
          strstr(err.msg, "before its end"), "empty part accepted: %s", err.msg);
    CHECK(lb_engine_block_part(e, 0, b, kept, NULL, LB_SITE_DOWN, LB_BLOCK_OUTPUT, &err) != 0 &&
          strstr(err.msg, "input rows"), "part from down without its input accepted: %s",
          err.msg);
    CHECK(lb_engine_block_part(e, 9, b, kept, act, LB_BLOCK_INPUT, LB_SITE_QKV, &err) != 0 &&
          strstr(err.msg, "outside"), "block 9 accepted: %s", err.msg);
    free(whole);
    free(kept);
    free(redone);
    free(other);
    free(act);
}

/* Logits for every position of tokens, fed one at a time into slot seq. */
static void one_by_one(lb_engine *e, int seq, const int *tokens, int n, float *out, int vocab)
{
    lb_error err;
    for (int i = 0; i < n; i++) {
        lb_batch b = {1, &tokens[i], &i, &seq, NULL};
        CHECK(lb_engine_forward(e, &b, out + (size_t)i * vocab, &err) == 0, "%s", err.msg);
    }
}

/* An engine with a KV cache of type t holds `bytes`, and its logits for the prompt, whole
 * (blocked attention over the run: the batch b, every position of one sequence, logits
 * everywhere) and one token at a time, are within `paths` of each other and within `f32` of
 * the F32 cache's (ref), but not equal to them. */
static void check_kv_type(const lb_model *m, lb_kv_type t, const char *name, size_t bytes,
                          const lb_batch *b, const float *ref, float paths, float f32)
{
    int n = b->n;
    lb_error err;
    int vocab = m->cfg.vocab_size;
    lb_engine_set_kv_type(t);
    lb_engine *h1, *h2;
    CHECK(lb_engine_create(m, 128, 3, 1, &h1, &err) == 0, "%s", err.msg);
    CHECK(lb_engine_create(m, 128, 3, 2, &h2, &err) == 0, "%s", err.msg);
    lb_engine_set_kv_type(LB_KV_F32);
    CHECK(lb_engine_kv_bytes(h1) == bytes, "%s cache: %zu bytes, expected %zu", name,
          lb_engine_kv_bytes(h1), bytes);
    float *h_one = malloc((size_t)n * vocab * sizeof(float));
    float *h_all = malloc((size_t)n * vocab * sizeof(float));
    one_by_one(h1, 0, b->token, n, h_one, vocab);
    CHECK(lb_engine_forward(h2, b, h_all, &err) == 0, "%s", err.msg);
    float dp = max_abs_diff(h_one, h_all, n * vocab);
    CHECK(dp < paths, "%s cache: batched prefill differs from one-by-one by %g", name, dp);
    float d = max_abs_diff(ref, h_one, n * vocab);
    CHECK(d > 0 && d < f32, "%s cache vs F32: logits differ by %g", name, d);
    printf("%s KV cache: logits within %g of F32, the two attention paths within %g\n", name,
           (double)d, (double)dp);
    lb_engine_free(h1);
    lb_engine_free(h2);
    free(h_one);
    free(h_all);
}

int main(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/models/stories260K.gguf", test_env("LOWBIT_SHARED"));
    lb_error err;
    lb_model *m;
    if (lb_model_load(path, NULL, &m, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int vocab = m->cfg.vocab_size;
    const char *text = "Once upon a time, there was a little dog named Max. He liked to run.";
    int *tok, n;
    CHECK(tok_encode(m->tok, text, strlen(text), true, &tok, &n, &err) == 0, "%s", err.msg);
    CHECK(n > 10, "only %d tokens", n);

    lb_engine *e1, *e2;
    CHECK(lb_engine_create(m, 128, 3, 1, &e1, &err) == 0, "%s", err.msg);
    CHECK(lb_engine_create(m, 128, 3, 2, &e2, &err) == 0, "%s", err.msg);

    /* Reference: one token at a time, one thread. */
    float *ref = malloc((size_t)n * vocab * sizeof(float));
    one_by_one(e1, 0, tok, n, ref, vocab);

    /* The whole prompt as one batch with logits everywhere, two threads. */
    int *pos = malloc((size_t)n * sizeof(int)), *seq = malloc((size_t)n * sizeof(int));
    bool *want = malloc((size_t)n * sizeof(bool));
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        seq[i] = 1;
        want[i] = true;
    }
    float *batch = malloc((size_t)n * vocab * sizeof(float));
    lb_batch b = {n, tok, pos, seq, want};
    CHECK(lb_engine_forward(e2, &b, batch, &err) == 0, "%s", err.msg);
    float d = max_abs_diff(ref, batch, n * vocab);
    CHECK(d < 1e-4f, "batched prefill differs from one-by-one by %g", d);

    /* A batched prefill gives the same logits bit for bit at one, two and three threads. */
    {
        float *other = malloc((size_t)n * vocab * sizeof(float));
        lb_engine *e3t;
        CHECK(lb_engine_create(m, 128, 2, 3, &e3t, &err) == 0, "%s", err.msg);
        lb_engine *threads[2] = {e1, e3t};
        for (int i = 0; i < 2; i++) {
            CHECK(lb_engine_forward(threads[i], &b, other, &err) == 0, "%s", err.msg);
            CHECK(memcmp(batch, other, (size_t)n * vocab * sizeof(float)) == 0,
                  "batched prefill at %d threads differs from 2 threads (by up to %g)",
                  i ? 3 : 1, max_abs_diff(batch, other, n * vocab));
        }
        lb_engine_free(e3t);
        free(other);
    }

    /* Without want_logits only the last token's row is written. */
    float *last = malloc((size_t)vocab * sizeof(float));
    b.want_logits = NULL;
    b.seq = seq;
    for (int i = 0; i < n; i++)
        seq[i] = 2;
    CHECK(lb_engine_forward(e2, &b, last, &err) == 0, "%s", err.msg);
    d = max_abs_diff(ref + (size_t)(n - 1) * vocab, last, vocab);
    CHECK(d < 1e-4f, "last-token logits differ by %g", d);

    /* Same threads count, same order of operations: bit-identical. */
    float *again = malloc((size_t)n * vocab * sizeof(float));
    lb_engine *e1b;
    CHECK(lb_engine_create(m, 128, 1, 2, &e1b, &err) == 0, "%s", err.msg);
    one_by_one(e1b, 0, tok, n, again, vocab);
    CHECK(memcmp(ref, again, (size_t)n * vocab * sizeof(float)) == 0,
          "one and two threads give different logits");

    /* Two sequences interleaved in one batch: positions 0..k of seq 0 and of seq 1 (with a
     * different prompt) must each match their own one-by-one run. */
    const char *text2 = "The sun was hot. Tom and Sue went to the beach";
    int *tok2, n2;
    CHECK(tok_encode(m->tok, text2, strlen(text2), true, &tok2, &n2, &err) == 0, "%s", err.msg);
    float *ref2 = malloc((size_t)n2 * vocab * sizeof(float));
    lb_engine *e3;
    CHECK(lb_engine_create(m, 128, 2, 2, &e3, &err) == 0, "%s", err.msg);
    one_by_one(e3, 1, tok2, n2, ref2, vocab);   /* slot 1 of e3, overwritten below */
    int k = n < n2 ? n : n2;
    int *mt = malloc(2 * (size_t)k * sizeof(int)), *mp = malloc(2 * (size_t)k * sizeof(int));
    int *ms = malloc(2 * (size_t)k * sizeof(int));
    bool *mw = malloc(2 * (size_t)k * sizeof(bool));
    for (int i = 0; i < k; i++) {
        mt[2 * i] = tok[i], mp[2 * i] = i, ms[2 * i] = 0, mw[2 * i] = true;
        mt[2 * i + 1] = tok2[i], mp[2 * i + 1] = i, ms[2 * i + 1] = 1, mw[2 * i + 1] = true;
    }
    float *mixed = malloc(2 * (size_t)k * vocab * sizeof(float));
    lb_batch mb = {2 * k, mt, mp, ms, mw};
    CHECK(lb_engine_forward(e3, &mb, mixed, &err) == 0, "%s", err.msg);
    float d0 = 0, d1 = 0;
    for (int i = 0; i < k; i++) {
        d0 = fmaxf(d0, max_abs_diff(mixed + (size_t)(2 * i) * vocab, ref + (size_t)i * vocab, vocab));
        d1 = fmaxf(d1, max_abs_diff(mixed + (size_t)(2 * i + 1) * vocab, ref2 + (size_t)i * vocab, vocab));
    }
    CHECK(d0 < 1e-4f && d1 < 1e-4f, "interleaved sequences differ by %g / %g", d0, d1);

    /* Then decode one more token for both sequences in one batch of two. */
    int nt[2] = {tok[k - 1], tok2[k - 1]}, np[2] = {k, k}, ns[2] = {0, 1};
    bool nw[2] = {true, true};
    float two[2 * 512];
    lb_batch db = {2, nt, np, ns, nw};
    CHECK(vocab <= 512, "vocab %d", vocab);
    CHECK(lb_engine_forward(e3, &db, two, &err) == 0, "%s", err.msg);
    CHECK(isfinite(two[0]) && isfinite(two[vocab]), "non-finite logits");

    /* An F16 KV cache: half the bytes; the whole prompt in one batch (the blocked attention
     * over a run of positions) and token by token (one query at a time) stay near each other
     * and near the F32 logits. Not as near as with F32: the two paths' last-bit differences in
     * a key or value can fall either side of an fp16 rounding, which moves it by 2^-11. */
    CHECK(n >= 16, "the prompt (%d tokens) is too short for the blocked attention", n);
    for (int i = 0; i < n; i++)
        seq[i] = 1;
    b.want_logits = want;
    size_t f32_bytes = lb_engine_kv_bytes(e1);
    check_kv_type(m, LB_KV_F16, "F16", f32_bytes / 2, &b, ref, 1e-2f, 2e-2f);
    /* A Q8 cache: int8 rows and a float scale per head row (stories260K's heads are 8 wide,
     * so 1 + 4/8 bytes an element). The same, with an int8 step of a row's max / 127 where a
     * last-bit difference can flip a rounding; 0.45 from F32 measured (F16: 0.011). */
    int hd = m->cfg.head_dim;
    check_kv_type(m, LB_KV_Q8, "Q8", f32_bytes / 4 + f32_bytes / 4 / (size_t)hd * 4, &b, ref,
                  5e-2f, 1.0f);

    /* The quantizers' partial block runs, on the interleaved batch. */
    const lb_config *c = &m->cfg;
    int act_width = c->hidden_dim > c->n_heads * c->head_dim ? c->hidden_dim
                                                             : c->n_heads * c->head_dim;
    check_block_parts(e3, &mb, c->dim, act_width);

    /* Bad batches are refused with a message, and change nothing. */
    int bad_tok = vocab, zero = 0, far = 128, slot = 3;
    lb_batch bad1 = {1, &bad_tok, &zero, &zero, NULL};
    CHECK(lb_engine_forward(e1, &bad1, last, &err) != 0 && strstr(err.msg, "vocabulary"),
          "token %d accepted: %s", bad_tok, err.msg);
    lb_batch bad2 = {1, &tok[0], &far, &zero, NULL};
    CHECK(lb_engine_forward(e1, &bad2, last, &err) != 0 && strstr(err.msg, "context"),
          "position 128 accepted: %s", err.msg);
    lb_batch bad3 = {1, &tok[0], &zero, &slot, NULL};
    CHECK(lb_engine_forward(e1, &bad3, last, &err) != 0 && strstr(err.msg, "slots"),
          "slot 3 accepted: %s", err.msg);
    lb_engine *none;
    CHECK(lb_engine_create(m, 128, 0, 1, &none, &err) != 0, "0 slots accepted");
    CHECK(lb_engine_create(m, 1 << 30, 64, 1, &none, &err) != 0 && strstr(err.msg, "GiB"),
          "absurd KV cache accepted: %s", err.msg);

    /* The same partial runs through GPT-2's block (a tiny one from tests/tools/hf_reference.py):
     * LayerNorm, biased projections, GELU. */
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char gdir[4096], cmd[8400];
    snprintf(gdir, sizeof gdir, "%s/test_engine.%d.hf", tmp, (int)getpid());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tools/hf_reference.py' '%s' > /dev/null",
             test_env("LOWBIT_TESTS"), gdir);
    CHECK(system(cmd) == 0, "%s", cmd);
    char gpath[4200];
    snprintf(gpath, sizeof gpath, "%s/gpt2", gdir);
    lb_model *g;
    CHECK(lb_model_load(gpath, NULL, &g, &err) == 0, "%s", err.msg);
    lb_engine *ge;
    CHECK(lb_engine_create(g, 32, 2, 2, &ge, &err) == 0, "%s", err.msg);
    int gt[40], gp[40], gs[40];
    for (int i = 0; i < 40; i++)
        gt[i] = (7 * i + 3) % g->cfg.vocab_size, gp[i] = i % 20, gs[i] = i / 20;
    lb_batch gb = {40, gt, gp, gs, NULL};
    const lb_config *gc = &g->cfg;
    int g_act = gc->hidden_dim > gc->n_heads * gc->head_dim ? gc->hidden_dim
                                                             : gc->n_heads * gc->head_dim;
    check_block_parts(ge, &gb, gc->dim, g_act);
    lb_engine_free(ge);
    lb_model_free(g);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", gdir);
    CHECK(system(cmd) == 0, "%s", cmd);

    lb_engine_free(e1);
    lb_engine_free(e1b);
    lb_engine_free(e2);
    lb_engine_free(e3);
    free(tok);
    free(tok2);
    free(ref);
    free(ref2);
    free(batch);
    free(last);
    free(again);
    free(pos);
    free(seq);
    free(want);
    free(mt);
    free(mp);
    free(ms);
    free(mw);
    free(mixed);
    lb_model_free(m);
    return check_finish("test_engine");
}
