/* The llama2.c loader against the GGUF loader on the same model: stories260K.bin + tok512.bin
 * and stories260K.gguf hold the same weights and vocabulary, so the config, every tensor's
 * values, the tokenizer and the logits of a forward pass must agree. Also: a checkpoint with a
 * separate classifier (negative vocab_size) loads it as output.weight. */
#include "check.h"
#include "core/file.h"
#include "io/loaders.h"
#include "model/engine.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* Logits for every position of tokens (one batch, sequence 0). */
static float *forward_all(const lb_model *m, const int *tokens, int n)
{
    lb_error err;
    lb_engine *e;
    if (lb_engine_create(m, 64, 1, 1, &e, &err)) {
        CHECK(false, "engine for %s: %s", m->path, err.msg);
        return NULL;
    }
    int pos[64], seq[64];
    bool want[64];
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        seq[i] = 0;
        want[i] = true;
    }
    float *logits = malloc((size_t)n * (size_t)m->cfg.vocab_size * sizeof(float));
    lb_batch b = {n, tokens, pos, seq, want};
    if (lb_engine_forward(e, &b, logits, &err)) {
        CHECK(false, "forward on %s: %s", m->path, err.msg);
        free(logits);
        logits = NULL;
    }
    lb_engine_free(e);
    return logits;
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmaxf(d, fabsf(a[i] - b[i]));
    return d;
}

/* Writes stories260K.bin again with vocab_size negated and the embedding table appended as the
 * classifier: a checkpoint with unshared weights whose classifier happens to equal them. */
static int write_unshared(const char *src, const char *dst, int vocab, int dim)
{
    lb_error err;
    char *data;
    size_t size;
    if (lb_read_file(src, 64u << 20, &data, &size, &err))
        return -1;
    FILE *fp = fopen(dst, "wb");
    if (!fp) {
        free(data);
        return -1;
    }
    int32_t neg = -vocab;
    memcpy(data + 20, &neg, 4);
    size_t table = (size_t)vocab * (size_t)dim * sizeof(float);
    bool ok = fwrite(data, 1, size, fp) == size && fwrite(data + 28, 1, table, fp) == table;
    ok &= fclose(fp) == 0;
    free(data);
    return ok ? 0 : -1;
}

int main(void)
{
    const char *shared = test_env("LOWBIT_SHARED");
    char bin[4096], tok[4096], gguf[4096];
    snprintf(bin, sizeof bin, "%s/models/stories260K.bin", shared);
    snprintf(tok, sizeof tok, "%s/models/tok512.bin", shared);
    snprintf(gguf, sizeof gguf, "%s/models/stories260K.gguf", shared);

    lb_error err;
    lb_model *a, *g;
    lb_load_options opts = {tok};
    if (lb_model_load(bin, &opts, &a, &err)) {
        fprintf(stderr, "loading %s: %s\n", bin, err.msg);
        return 1;
    }
    if (lb_model_load(gguf, NULL, &g, &err)) {
        fprintf(stderr, "loading %s: %s\n", gguf, err.msg);
        return 1;
    }
    const lb_config *ca = &a->cfg, *cg = &g->cfg;
    CHECK(strcmp(a->format, "llama2c") == 0, "format is %s", a->format);
    CHECK(ca->dim == 64 && ca->hidden_dim == 172 && ca->n_layers == 5 && ca->n_heads == 8 &&
          ca->n_kv_heads == 4 && ca->vocab_size == 512 && ca->max_ctx == 512,
          "config dim %d hidden %d layers %d heads %d kv %d vocab %d ctx %d", ca->dim,
          ca->hidden_dim, ca->n_layers, ca->n_heads, ca->n_kv_heads, ca->vocab_size, ca->max_ctx);
    CHECK(ca->dim == cg->dim && ca->hidden_dim == cg->hidden_dim &&
          ca->n_layers == cg->n_layers && ca->n_heads == cg->n_heads &&
          ca->n_kv_heads == cg->n_kv_heads && ca->head_dim == cg->head_dim &&
          ca->vocab_size == cg->vocab_size && ca->rope_style == cg->rope_style &&
          ca->rope_theta == cg->rope_theta && ca->norm_eps == cg->norm_eps,
          "llama2.c and GGUF configs differ");
    CHECK(strcmp(ca->arch_name, "llama") == 0 && ca->arch == LB_ARCH_LLAMA, "arch %s",
          ca->arch_name);
    CHECK(a->output == a->tok_embd, "a positive vocab_size means a shared classifier");

    /* Every GGUF tensor exists in the .bin with the same shape and the same values. */
    int same = 0;
    for (int i = 0; i < g->n_tensors; i++) {
        const lb_tensor *tg = &g->tensors[i], *ta = lb_model_find(a, tg->name);
        /* The GGUF stores the tied classifier as its own copy. */
        if (!ta && strcmp(tg->name, "output.weight") == 0)
            ta = a->output;
        if (!ta) {
            CHECK(false, "tensor %s is missing from the llama2.c model", tg->name);
            continue;
        }
        bool shape = ta->type == tg->type && memcmp(ta->ne, tg->ne, sizeof ta->ne) == 0;
        CHECK(shape, "tensor %s: shape [%lld %lld] vs GGUF [%lld %lld]", tg->name,
              (long long)ta->ne[0], (long long)ta->ne[1], (long long)tg->ne[0],
              (long long)tg->ne[1]);
        if (shape && ta->type == LB_TYPE_F32) {
            float d = max_abs_diff(ta->data, tg->data, (size_t)lb_tensor_nelements(ta));
            CHECK(d == 0, "tensor %s differs from the GGUF by up to %g", tg->name, d);
            same += d == 0;
        }
    }
    bool gguf_copy = g->output != g->tok_embd;
    CHECK(a->n_tensors + gguf_copy == g->n_tensors, "%d tensors vs %d in the GGUF",
          a->n_tensors, g->n_tensors);
    int64_t copy = gguf_copy ? lb_tensor_nelements(g->output) : 0;
    CHECK(lb_model_params(a) + copy == lb_model_params(g), "%lld vs %lld parameters",
          (long long)lb_model_params(a), (long long)lb_model_params(g));

    /* The same vocabulary: pieces, scores, special ids. */
    const lb_tokenizer *ta = a->tok, *tg = g->tok;
    int piece_diff = 0;
    CHECK(ta->n_vocab == tg->n_vocab, "%d vs %d tokens", ta->n_vocab, tg->n_vocab);
    for (int i = 0; i < ta->n_vocab && i < tg->n_vocab; i++)
        piece_diff += ta->piece_len[i] != tg->piece_len[i] ||
                      memcmp(ta->pieces[i], tg->pieces[i], (size_t)ta->piece_len[i]) != 0 ||
                      ta->scores[i] != tg->scores[i] || ta->types[i] != tg->types[i];
    CHECK(piece_diff == 0, "%d tokens differ between tok512.bin and the GGUF vocabulary",
          piece_diff);
    CHECK(ta->bos_id == tg->bos_id && ta->eos_id == tg->eos_id && ta->unk_id == tg->unk_id,
          "special ids differ");

    /* Logits of a forward pass over a real prompt. */
    const char *text = "Once upon a time, there was a little dog named Max.";
    int *ids, n;
    tok_encode(ta, text, strlen(text), true, &ids, &n, &err);
    CHECK(n > 8 && n <= 64, "prompt has %d tokens", n);
    float *la = forward_all(a, ids, n), *lg = forward_all(g, ids, n);
    float d = -1;
    if (la && lg) {
        d = max_abs_diff(la, lg, (size_t)n * 512);
        CHECK(d <= 1e-5f, "logits of the .bin and the .gguf differ by up to %g", d);
    }
    printf("stories260K.bin vs .gguf: %d/%d tensors identical, %d tokens' logits differ by at "
           "most %g\n", same, g->n_tensors, n, d);

    /* A separate classifier: vocab_size negated, the table appended. */
    char unshared[] = "/tmp/lowbit-llama2c-XXXXXX";
    int fd = mkstemp(unshared);
    close(fd);
    CHECK(write_unshared(bin, unshared, 512, 64) == 0, "cannot write %s", unshared);
    lb_model *u;
    if (lb_model_load(unshared, &opts, &u, &err)) {
        CHECK(false, "loading the unshared checkpoint: %s", err.msg);
    } else {
        CHECK(u->output != u->tok_embd && strcmp(u->output->name, "output.weight") == 0,
              "a negative vocab_size must give a separate output.weight");
        CHECK(u->cfg.vocab_size == 512, "vocab %d", u->cfg.vocab_size);
        CHECK(u->output->data != u->tok_embd->data &&
                  memcmp(u->output->data, u->tok_embd->data, u->output->nbytes) == 0,
              "the classifier must be the appended copy");
        float *lu = forward_all(u, ids, n);
        if (lu && la)
            CHECK(max_abs_diff(lu, la, (size_t)n * 512) == 0,
                  "the unshared copy gives different logits");
        free(lu);
        lb_model_free(u);
    }
    unlink(unshared);

    free(ids);
    free(la);
    free(lg);
    lb_model_free(a);
    lb_model_free(g);
    return check_finish("test_llama2c_logits");
}
