/* Hugging Face checkpoints: tests/tools/hf_reference.py writes tiny random-weight models in
 * the real layout (GPT-2 with Conv1D weights, a "transformer."-prefixed F16 GPT-2, Qwen2 with
 * q/k/v biases, a tied BF16 Llama with llama3 RoPE scaling, a sharded F16 Llama) together with
 * logits from its own numpy forward passes. Each model is loaded through lb_model_load and run
 * as one batch and token by token through the KV cache; every logit must match the reference.
 * Also checks the config read, the tokenizer found beside the weights, the safetensors reader
 * on its own, and config.json parsing details. */
#include "check.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/engine.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOLERANCE 1e-4

static const char *const MODELS[] = {"gpt2", "gpt2_f16_prefixed", "qwen2", "llama_tied_bf16",
                                     "llama_sharded", "gpt2_real_vocab"};

typedef struct {
    json_t *root;
    int *tokens;
    int n_tokens;
    int vocab;
    double *logits;   /* [n_tokens][vocab] */
} reference;

static int load_reference(const char *dir, reference *r)
{
    memset(r, 0, sizeof *r);
    char path[4096];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t jerr;
    r->root = json_load_file(path, 0, &jerr);
    if (!r->root) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return -1;
    }
    json_t *toks = json_object_get(r->root, "tokens");
    r->n_tokens = (int)json_array_size(toks);
    r->tokens = calloc((size_t)r->n_tokens, sizeof(int));
    for (int i = 0; i < r->n_tokens; i++)
        r->tokens[i] = (int)json_integer_value(json_array_get(toks, (size_t)i));
    r->vocab = (int)json_integer_value(json_object_get(r->root, "vocab_size"));
    snprintf(path, sizeof path, "%s/%s", dir,
             json_string_value(json_object_get(r->root, "logits_file")));
    size_t n = (size_t)r->n_tokens * (size_t)r->vocab;
    r->logits = calloc(n, sizeof(double));
    FILE *fp = fopen(path, "rb");
    size_t got = fp ? fread(r->logits, sizeof(double), n, fp) : 0;
    if (fp)
        fclose(fp);
    if (got != n || n == 0) {
        fprintf(stderr, "%s: expected %zu doubles, read %zu\n", path, n, got);
        return -1;
    }
    return 0;
}

static void free_reference(reference *r)
{
    json_decref(r->root);
    free(r->tokens);
    free(r->logits);
}

static int expect_int(const reference *r, const char *key)
{
    return (int)json_integer_value(json_object_get(json_object_get(r->root, "expect"), key));
}

static double expect_num(const reference *r, const char *key)
{
    return json_number_value(json_object_get(json_object_get(r->root, "expect"), key));
}

static const char *expect_str(const reference *r, const char *key)
{
    const char *s = json_string_value(json_object_get(json_object_get(r->root, "expect"), key));
    return s ? s : "";
}

static double max_diff(const float *got, const double *want, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= m))   /* NaN counts as a failure */
            m = isnan(d) ? INFINITY : d;
    }
    return m;
}

static void check_config(const char *name, const lb_model *m, const reference *r)
{
    const lb_config *c = &m->cfg;
    CHECK(strcmp(c->arch_name, expect_str(r, "arch")) == 0, "%s: arch %s", name, c->arch_name);
    CHECK(strcmp(m->format, "safetensors") == 0, "%s: format %s", name, m->format);
    CHECK(c->dim == expect_int(r, "dim"), "%s: dim %d", name, c->dim);
    CHECK(c->n_layers == expect_int(r, "layers"), "%s: layers %d", name, c->n_layers);
    CHECK(c->n_heads == expect_int(r, "heads"), "%s: heads %d", name, c->n_heads);
    CHECK(c->n_kv_heads == expect_int(r, "kv_heads"), "%s: kv heads %d", name, c->n_kv_heads);
    CHECK(c->head_dim == expect_int(r, "head_dim"), "%s: head_dim %d", name, c->head_dim);
    CHECK(c->hidden_dim == expect_int(r, "ffn"), "%s: ffn %d", name, c->hidden_dim);
    CHECK(c->max_ctx == expect_int(r, "context"), "%s: context %d", name, c->max_ctx);
    CHECK(c->vocab_size == r->vocab, "%s: vocab %d", name, c->vocab_size);
    bool none = strcmp(expect_str(r, "rope_style"), "none") == 0;
    CHECK(c->rope_style == (none ? LB_ROPE_NONE : LB_ROPE_HALF), "%s: rope style %d", name,
          c->rope_style);
    if (!none)
        CHECK(fabs(c->rope_theta - expect_num(r, "rope_theta")) <= 1e-3 * c->rope_theta,
              "%s: rope theta %g", name, c->rope_theta);
    CHECK(fabs(c->rope_scaling_factor - expect_num(r, "rope_scaling_factor")) < 1e-6,
          "%s: rope scaling factor %g", name, c->rope_scaling_factor);
    CHECK(c->rope_orig_ctx == expect_int(r, "rope_orig_ctx"), "%s: rope original context %d",
          name, c->rope_orig_ctx);
}

/* The tokenizer beside the weights: padded up to the embedding, encoding as the reference's
 * byte-level BPE does. */
static void check_tokenizer(const char *name, const lb_model *m, const reference *r)
{
    CHECK(m->tok->n_vocab == m->cfg.vocab_size, "%s: tokenizer has %d tokens, model %d", name,
          m->tok->n_vocab, m->cfg.vocab_size);
    int listed = (int)json_integer_value(json_object_get(r->root, "tokenizer_tokens"));
    CHECK(listed <= m->cfg.vocab_size, "%s: tokenizer of %d tokens", name, listed);
    if (listed < m->cfg.vocab_size)
        CHECK(m->tok->types[listed] == LB_TOKEN_UNUSED && m->tok->piece_len[listed] == 0,
              "%s: id %d should be a padding token", name, listed);
    const char *text = json_string_value(json_object_get(r->root, "encode_text"));
    json_t *want = json_object_get(r->root, "encode_ids");
    int *ids = NULL, n = 0;
    lb_error err;
    CHECK(tok_encode(m->tok, text, strlen(text), false, &ids, &n, &err) == 0, "%s", err.msg);
    bool same = n == (int)json_array_size(want);
    for (int i = 0; same && i < n; i++)
        same = ids[i] == json_integer_value(json_array_get(want, (size_t)i));
    CHECK(same, "%s: \"%s\" encodes to %d tokens, not as the reference", name, text, n);
    char *back = tok_decode(m->tok, ids, n);
    CHECK(strcmp(back, text) == 0, "%s: decodes to \"%s\"", name, back);
    free(back);
    free(ids);
}

/* Logits at every position, from one batch and from one token at a time; returns the larger
 * of the two differences from the reference. */
static double check_logits(const char *name, const lb_model *m, const reference *r)
{
    lb_engine *e;
    lb_error err;
    if (lb_engine_create(m, 0, 2, 2, &e, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return INFINITY;
    }
    int n = r->n_tokens, v = r->vocab;
    int *pos = calloc((size_t)n, sizeof(int)), *seq = calloc((size_t)n, sizeof(int));
    bool *want = calloc((size_t)n, sizeof(bool));
    float *batch = calloc((size_t)n * v, sizeof(float)), *single = calloc((size_t)n * v, sizeof(float));
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        want[i] = true;
    }
    lb_batch b = {n, r->tokens, pos, seq, want};
    CHECK(lb_engine_forward(e, &b, batch, &err) == 0, "%s: %s", name, err.msg);
    int one = 1;
    for (int i = 0; i < n; i++) {
        lb_batch s = {1, &r->tokens[i], &pos[i], &one, NULL};
        CHECK(lb_engine_forward(e, &s, single + (size_t)i * v, &err) == 0, "%s: %s", name,
              err.msg);
    }
    double db = max_diff(batch, r->logits, (size_t)n * v);
    double ds = max_diff(single, r->logits, (size_t)n * v);
    double scale = 0;
    for (size_t i = 0; i < (size_t)n * v; i++)
        scale = fmax(scale, fabs(r->logits[i]));
    printf("%-20s max |logit| %6.3f   max |diff| batch %.3g, token by token %.3g\n", name, scale,
           db, ds);
    CHECK(db <= TOLERANCE, "%s: batch logits differ from the reference by %g", name, db);
    CHECK(ds <= TOLERANCE, "%s: token-by-token logits differ from the reference by %g", name,
          ds);
    /* A reference of near-zero logits would make the comparison meaningless. */
    CHECK(scale > 0.5, "%s: reference logits are too small (%g) to test anything", name, scale);
    lb_engine_free(e);
    free(pos);
    free(seq);
    free(want);
    free(batch);
    free(single);
    return fmax(db, ds);
}

static void check_model_dir(const char *root, const char *name)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    reference r;
    if (load_reference(dir, &r)) {
        CHECK(0, "%s: no reference", name);
        free_reference(&r);
        return;
    }
    lb_model *m;
    lb_error err;
    if (lb_model_load(dir, NULL, &m, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        free_reference(&r);
        return;
    }
    check_config(name, m, &r);
    check_tokenizer(name, m, &r);
    check_logits(name, m, &r);
    lb_model_free(m);
    free_reference(&r);
}

/* The model's file path loads its directory; without tokenizer.json, GPT-2's vocab.json +
 * merges.txt give the same tokenizer. */
static void check_other_entry_points(const char *root)
{
    char path[4096], moved[4096];
    lb_model *m;
    lb_error err;
    reference r;
    snprintf(path, sizeof path, "%s/gpt2", root);
    if (load_reference(path, &r)) {
        CHECK(0, "gpt2: no reference");
        free_reference(&r);
        return;
    }
    snprintf(path, sizeof path, "%s/gpt2/model.safetensors", root);
    CHECK(lb_model_load(path, NULL, &m, &err) == 0, "%s", err.msg);
    if (m) {
        check_logits("gpt2 (file path)", m, &r);
        lb_model_free(m);
    }
    snprintf(path, sizeof path, "%s/gpt2/tokenizer.json", root);
    snprintf(moved, sizeof moved, "%s/gpt2/tokenizer.json.away", root);
    CHECK(rename(path, moved) == 0, "cannot move %s", path);
    snprintf(path, sizeof path, "%s/gpt2", root);
    CHECK(lb_model_load(path, NULL, &m, &err) == 0, "%s", err.msg);
    if (m) {
        check_tokenizer("gpt2 (vocab.json)", m, &r);
        CHECK(m->tok->bos_id == 266 && m->tok->eos_id == 266, "bos %d eos %d", m->tok->bos_id,
              m->tok->eos_id);
        lb_model_free(m);
    }
    free_reference(&r);
}

/* The reader on its own: metadata, the 0-dim buffer, data order, lookups. */
static void check_reader(const char *root)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/gpt2/model.safetensors", root);
    safetensors_file *f;
    lb_error err;
    if (safetensors_open(path, &f, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const char *fmt = safetensors_meta_get(f, "format");
    CHECK(fmt && strcmp(fmt, "pt") == 0, "metadata format %s", fmt ? fmt : "(none)");
    CHECK(safetensors_meta_get(f, "missing") == NULL, "metadata lookup of an absent key");
    const safetensors_tensor *t = safetensors_find(f, "h.0.attn.masked_bias");
    CHECK(t && t->n_dims == 0 && t->n_elements == 1 && t->nbytes == 4, "0-dim tensor");
    t = safetensors_find(f, "h.1.attn.c_attn.weight");
    CHECK(t && t->n_dims == 2 && t->shape[0] == 64 && t->shape[1] == 192 &&
          strcmp(t->dtype, "F32") == 0 && t->nbytes == 64 * 192 * 4, "c_attn entry");
    CHECK(safetensors_find(f, "nope") == NULL, "lookup of an absent tensor");
    for (int i = 1; i < f->n_tensors; i++)
        CHECK(f->tensors[i].file_offset >= f->tensors[i - 1].file_offset + f->tensors[i - 1].nbytes,
              "tensors %d and %d out of data order", i - 1, i);
    CHECK(safetensors_dtype_size("BF16") == 2 && safetensors_dtype_size("F64") == 8 &&
          safetensors_dtype_size("Q4") == 0, "dtype sizes");
    safetensors_close(f);
}

static void expect_config_error(const char *text, const char *needle)
{
    hf_config hc;
    lb_error err = {{0}};
    int rc = hf_config_parse("x/config.json", text, strlen(text), &hc, &err);
    CHECK(rc == -1 && strstr(err.msg, needle) && !strchr(err.msg, '\n'),
          "config %s: got rc %d, [%s], wanted [%s]", text, rc, err.msg, needle);
}

static void check_config_parsing(void)
{
    hf_config hc;
    lb_error err;
    /* Old Llama configs: no num_key_value_heads, rope_theta, max_position_embeddings. */
    const char *old = "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 4096, "
                      "\"intermediate_size\": 11008, \"num_hidden_layers\": 32, "
                      "\"num_attention_heads\": 32, \"vocab_size\": 32000, "
                      "\"rms_norm_eps\": 1e-06, \"tie_word_embeddings\": false}";
    CHECK(hf_config_parse("c.json", old, strlen(old), &hc, &err) == 0, "%s", err.msg);
    CHECK(hc.cfg.n_kv_heads == 32 && hc.cfg.head_dim == 128 && hc.cfg.rope_theta == 10000.0f &&
          hc.cfg.max_ctx == 2048 && !hc.tie_word_embeddings && hc.cfg.rope_scaling_factor == 0,
          "old llama defaults: kv %d hd %d theta %g ctx %d", hc.cfg.n_kv_heads, hc.cfg.head_dim,
          hc.cfg.rope_theta, hc.cfg.max_ctx);
    /* model_type alone, the older "type" spelling of rope_scaling, Mistral. */
    const char *mistral = "{\"model_type\": \"mistral\", \"hidden_size\": 64, "
                          "\"intermediate_size\": 128, \"num_hidden_layers\": 2, "
                          "\"num_attention_heads\": 8, \"num_key_value_heads\": 2, "
                          "\"vocab_size\": 100, \"rope_theta\": 1e6, \"rope_scaling\": "
                          "{\"type\": \"llama3\", \"factor\": 32, \"low_freq_factor\": 1, "
                          "\"high_freq_factor\": 4, \"original_max_position_embeddings\": 8192}}";
    CHECK(hf_config_parse("c.json", mistral, strlen(mistral), &hc, &err) == 0, "%s", err.msg);
    CHECK(strcmp(hc.cfg.arch_name, "mistral") == 0 && hc.cfg.arch == LB_ARCH_LLAMA &&
          hc.cfg.head_dim == 8 && hc.cfg.rope_scaling_factor == 32.0f &&
          hc.cfg.rope_high_freq_factor == 4.0f && hc.cfg.rope_orig_ctx == 8192 &&
          hc.tie_word_embeddings, "mistral config");
    /* GPT-2: n_inner null means 4 * n_embd; n_positions defaults to 1024. */
    const char *gpt2 = "{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 768, "
                       "\"n_layer\": 12, \"n_head\": 12, \"n_inner\": null, "
                       "\"vocab_size\": 50257}";
    CHECK(hf_config_parse("c.json", gpt2, strlen(gpt2), &hc, &err) == 0, "%s", err.msg);
    CHECK(hc.cfg.hidden_dim == 3072 && hc.cfg.max_ctx == 1024 && hc.cfg.head_dim == 64 &&
          hc.cfg.rope_style == LB_ROPE_NONE && fabsf(hc.cfg.norm_eps - 1e-5f) < 1e-12f &&
          hc.tie_word_embeddings, "gpt2 defaults");

    expect_config_error("{\n  \"a\": 1,\n  \"b\" 2\n}", "x/config.json: line 3, column");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": -4}",
                        "x/config.json: hidden_size must be a positive integer");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}",
                        "intermediate_size must be a positive integer (it is missing)");
    expect_config_error("{\"architectures\": [\"T5ForConditionalGeneration\"]}",
                        "architecture 'T5ForConditionalGeneration' is not supported");
    expect_config_error("{\"model_type\": \"bert\"}", "model_type 'bert' is not supported");
    expect_config_error("{}", "neither architectures nor model_type");
    expect_config_error("{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 64, "
                        "\"n_layer\": 1, \"n_head\": 5, \"vocab_size\": 10}",
                        "n_embd (64) is not a multiple of n_head (5)");
    expect_config_error("{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 64, "
                        "\"n_layer\": 1, \"n_head\": 4, \"vocab_size\": 10, "
                        "\"activation_function\": \"relu\"}",
                        "activation_function is 'relu'");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                        "\"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 10, \"rms_norm_eps\": 0}",
                        "rms_norm_eps must be a positive number");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                        "\"intermediate_size\": 8, \"num_hidden_layers\": 1, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 10, \"rope_scaling\": "
                        "{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, "
                        "\"high_freq_factor\": 4}}",
                        "rope_scaling.original_max_position_embeddings must be a positive "
                        "integer");
    expect_config_error("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, "
                        "\"intermediate_size\": 8, \"num_hidden_layers\": 100000, "
                        "\"num_attention_heads\": 4, \"vocab_size\": 10}",
                        "num_hidden_layers is 100000");
}

int main(void)
{
    const char *tests = test_env("LOWBIT_TESTS");
    const char *tmp = getenv("TMPDIR");
    char root[1024], cmd[4096];
    snprintf(root, sizeof root, "%s/lowbit-hf.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tools/hf_reference.py' '%s/models' "
             "'%s/tokenizers/gpt2'", tests, root, test_env("LOWBIT_SHARED"));
    if (system(cmd) != 0) {
        fprintf(stderr, "failed: %s\n", cmd);
        return 1;
    }
    char models[1100];
    snprintf(models, sizeof models, "%s/models", root);
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++)
        check_model_dir(models, MODELS[i]);
    check_reader(models);
    check_other_entry_points(models);
    check_config_parsing();

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", root);
    return check_finish("test_hf_models");
}
