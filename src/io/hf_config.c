/* config.json → lb_config. The architecture comes from architectures[0] (or model_type when
 * that list is absent); the field names differ between the Llama family and GPT-2. Fields that
 * transformers always writes for a model class are required; the ones older configs omit take
 * the library's defaults (num_key_value_heads = heads, rope_theta 10000, …). */
#include "io/hf_config.h"

#include "core/file.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CONFIG_BYTES (16u << 20)
#define MAX_SIZE_FIELD (1 << 30)
#define MAX_LAYERS 4096

static const struct {
    const char *class_name, *model_type, *arch_name;
    lb_arch arch;
} KNOWN[] = {
    {"LlamaForCausalLM", "llama", "llama", LB_ARCH_LLAMA},
    {"MistralForCausalLM", "mistral", "mistral", LB_ARCH_LLAMA},
    {"Qwen2ForCausalLM", "qwen2", "qwen2", LB_ARCH_LLAMA},
    {"GPT2LMHeadModel", "gpt2", "gpt2", LB_ARCH_GPT2},
};
#define N_KNOWN (sizeof KNOWN / sizeof KNOWN[0])

typedef struct {
    const char *path;
    json_t *root;
    lb_error *err;
} reader;

/* A positive integer field; absent or null takes fallback when fallback > 0. */
static int get_int(const reader *r, const char *key, int fallback, int *out)
{
    json_t *v = json_object_get(r->root, key);
    if ((!v || json_is_null(v)) && fallback > 0) {
        *out = fallback;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
        json_integer_value(v) > MAX_SIZE_FIELD)
        return lb_fail(r->err, "%s: %s must be a positive integer%s", r->path, key,
                       v ? "" : " (it is missing)");
    *out = (int)json_integer_value(v);
    return 0;
}

/* A positive number field (integer or real) of obj; absent or null takes fallback when
 * fallback > 0. where prefixes the key in messages ("rope_scaling."). */
static int get_positive(const reader *r, json_t *obj, const char *where, const char *key,
                        double fallback, float *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (fallback > 0) {
            *out = (float)fallback;
            return 0;
        }
        return lb_fail(r->err, "%s: %s%s must be a positive number (it is missing)", r->path,
                       where, key);
    }
    double d = json_number_value(v);
    if (!json_is_number(v) || !(d > 0) || !isfinite((float)d))
        return lb_fail(r->err, "%s: %s%s must be a positive number", r->path, where, key);
    *out = (float)d;
    return 0;
}

static int get_bool(const reader *r, const char *key, bool fallback, bool *out)
{
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return 0;
    }
    if (!json_is_boolean(v))
        return lb_fail(r->err, "%s: %s must be true or false", r->path, key);
    *out = json_is_true(v);
    return 0;
}

/* An optional string field that, when present, must be one of the accepted values. */
static int check_choice(const reader *r, const char *key, const char *const *ok, size_t n_ok)
{
    json_t *v = json_object_get(r->root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return lb_fail(r->err, "%s: %s must be a string", r->path, key);
    for (size_t i = 0; i < n_ok; i++)
        if (strcmp(json_string_value(v), ok[i]) == 0)
            return 0;
    return lb_fail(r->err, "%s: %s is '%.64s'; lowbit's forward pass uses '%s'", r->path, key,
                   json_string_value(v), ok[0]);
}

static int find_architecture(const reader *r, hf_config *out)
{
    json_t *archs = json_object_get(r->root, "architectures");
    json_t *type = json_object_get(r->root, "model_type");
    const char *name = NULL;
    bool by_class = false;
    if (archs && !json_is_null(archs)) {
        if (!json_is_array(archs) || json_array_size(archs) == 0 ||
            !json_is_string(json_array_get(archs, 0)))
            return lb_fail(r->err, "%s: architectures must be a non-empty array of strings",
                           r->path);
        name = json_string_value(json_array_get(archs, 0));
        by_class = true;
    } else if (json_is_string(type)) {
        name = json_string_value(type);
    } else {
        return lb_fail(r->err, "%s: neither architectures nor model_type says what the model is",
                       r->path);
    }
    for (size_t i = 0; i < N_KNOWN; i++) {
        if (strcmp(name, by_class ? KNOWN[i].class_name : KNOWN[i].model_type) == 0) {
            out->cfg.arch = KNOWN[i].arch;
            snprintf(out->cfg.arch_name, sizeof out->cfg.arch_name, "%s", KNOWN[i].arch_name);
            snprintf(out->architecture, sizeof out->architecture, "%s", name);
            return 0;
        }
    }
    return lb_fail(r->err, "%s: %s '%.64s' is not supported (lowbit loads LlamaForCausalLM, "
                   "MistralForCausalLM, Qwen2ForCausalLM and GPT2LMHeadModel)", r->path,
                   by_class ? "architecture" : "model_type", name);
}

/* rope_scaling: null, {"rope_type": "default"} or Llama 3.1's {"rope_type": "llama3", …}. */
static int read_rope_scaling(const reader *r, lb_config *c)
{
    json_t *rs = json_object_get(r->root, "rope_scaling");
    if (!rs || json_is_null(rs))
        return 0;
    if (!json_is_object(rs))
        return lb_fail(r->err, "%s: rope_scaling must be an object or null", r->path);
    json_t *type = json_object_get(rs, "rope_type");
    if (!type)
        type = json_object_get(rs, "type");   /* the older spelling */
    if (!json_is_string(type))
        return lb_fail(r->err, "%s: rope_scaling.rope_type must be a string", r->path);
    const char *t = json_string_value(type);
    if (strcmp(t, "default") == 0)
        return 0;
    if (strcmp(t, "llama3") != 0)
        return lb_fail(r->err, "%s: rope_scaling.rope_type '%.64s' is not supported (lowbit "
                       "applies 'llama3' scaling)", r->path, t);
    const char *w = "rope_scaling.";
    if (get_positive(r, rs, w, "factor", 0, &c->rope_scaling_factor) ||
        get_positive(r, rs, w, "low_freq_factor", 0, &c->rope_low_freq_factor) ||
        get_positive(r, rs, w, "high_freq_factor", 0, &c->rope_high_freq_factor))
        return -1;
    json_t *orig = json_object_get(rs, "original_max_position_embeddings");
    if (!json_is_integer(orig) || json_integer_value(orig) <= 0 ||
        json_integer_value(orig) > MAX_SIZE_FIELD)
        return lb_fail(r->err, "%s: rope_scaling.original_max_position_embeddings must be a "
                       "positive integer", r->path);
    c->rope_orig_ctx = (int)json_integer_value(orig);
    if (c->rope_high_freq_factor < c->rope_low_freq_factor)
        return lb_fail(r->err, "%s: rope_scaling.high_freq_factor (%g) is below "
                       "low_freq_factor (%g)", r->path, c->rope_high_freq_factor,
                       c->rope_low_freq_factor);
    return 0;
}

static int read_llama(const reader *r, hf_config *out)
{
    lb_config *c = &out->cfg;
    if (get_int(r, "hidden_size", 0, &c->dim) ||
        get_int(r, "intermediate_size", 0, &c->hidden_dim) ||
        get_int(r, "num_hidden_layers", 0, &c->n_layers) ||
        get_int(r, "num_attention_heads", 0, &c->n_heads) ||
        get_int(r, "num_key_value_heads", c->n_heads, &c->n_kv_heads) ||
        get_int(r, "vocab_size", 0, &c->vocab_size) ||
        get_int(r, "max_position_embeddings", 2048, &c->max_ctx))
        return -1;
    if (c->n_layers > MAX_LAYERS)
        return lb_fail(r->err, "%s: num_hidden_layers is %d, more than the %d lowbit allows",
                       r->path, c->n_layers, MAX_LAYERS);
    if (c->dim % c->n_heads && !json_integer_value(json_object_get(r->root, "head_dim")))
        return lb_fail(r->err, "%s: hidden_size (%d) is not a multiple of num_attention_heads "
                       "(%d) and head_dim is not given", r->path, c->dim, c->n_heads);
    if (get_int(r, "head_dim", c->dim / c->n_heads, &c->head_dim))
        return -1;
    if (c->n_heads % c->n_kv_heads)
        return lb_fail(r->err, "%s: num_attention_heads (%d) is not a multiple of "
                       "num_key_value_heads (%d)", r->path, c->n_heads, c->n_kv_heads);
    if (get_positive(r, r->root, "", "rms_norm_eps", 1e-6, &c->norm_eps) ||
        get_positive(r, r->root, "", "rope_theta", 10000.0, &c->rope_theta) ||
        read_rope_scaling(r, c) ||
        get_bool(r, "tie_word_embeddings", true, &out->tie_word_embeddings))
        return -1;
    static const char *const act[] = {"silu", "swish"};
    if (check_choice(r, "hidden_act", act, 2))
        return -1;
    bool mlp_bias = false;
    if (get_bool(r, "mlp_bias", false, &mlp_bias))
        return -1;
    if (mlp_bias)
        return lb_fail(r->err, "%s: mlp_bias is true; lowbit's Llama forward pass has no "
                       "feed-forward biases", r->path);
    /* Hugging Face stores q and k un-permuted: RoPE rotates the two halves of each head. */
    c->rope_style = LB_ROPE_HALF;
    return 0;
}

static int read_gpt2(const reader *r, hf_config *out)
{
    lb_config *c = &out->cfg;
    if (get_int(r, "n_embd", 0, &c->dim) || get_int(r, "n_layer", 0, &c->n_layers) ||
        get_int(r, "n_head", 0, &c->n_heads) || get_int(r, "vocab_size", 0, &c->vocab_size))
        return -1;
    int positions_fallback = 1024;
    json_t *n_ctx = json_object_get(r->root, "n_ctx");   /* very old configs */
    if (json_is_integer(n_ctx) && json_integer_value(n_ctx) > 0 &&
        json_integer_value(n_ctx) <= MAX_SIZE_FIELD)
        positions_fallback = (int)json_integer_value(n_ctx);
    if (get_int(r, "n_positions", positions_fallback, &c->max_ctx))
        return -1;
    if (c->n_layers > MAX_LAYERS)
        return lb_fail(r->err, "%s: n_layer is %d, more than the %d lowbit allows", r->path,
                       c->n_layers, MAX_LAYERS);
    if (c->dim > MAX_SIZE_FIELD / 4)
        return lb_fail(r->err, "%s: n_embd must be a positive integer below 2^28", r->path);
    if (get_int(r, "n_inner", 4 * c->dim, &c->hidden_dim))
        return -1;
    if (c->dim % c->n_heads)
        return lb_fail(r->err, "%s: n_embd (%d) is not a multiple of n_head (%d)", r->path,
                       c->dim, c->n_heads);
    c->n_kv_heads = c->n_heads;
    c->head_dim = c->dim / c->n_heads;
    if (get_positive(r, r->root, "", "layer_norm_epsilon", 1e-5, &c->norm_eps) ||
        get_bool(r, "tie_word_embeddings", true, &out->tie_word_embeddings))
        return -1;
    static const char *const act[] = {"gelu_new", "gelu_pytorch_tanh"};
    if (check_choice(r, "activation_function", act, 2))
        return -1;
    c->rope_style = LB_ROPE_NONE;
    c->rope_theta = 0;
    return 0;
}

/* "quantization_config" of GPTQ, AWQ and compressed-tensors checkpoints (export_hf.h). */
static int read_quantization(reader *r, hf_config *out)
{
    json_t *q = json_object_get(r->root, "quantization_config");
    if (!q || json_is_null(q))
        return 0;
    json_t *method = json_object_get(q, "quant_method");
    if (!json_is_object(q) || !json_is_string(method))
        return lb_fail(r->err, "%s: quantization_config.quant_method must be a string",
                       r->path);
    const char *mth = json_string_value(method);
    if (strcmp(mth, "gptq") != 0 && strcmp(mth, "awq") != 0 &&
        strcmp(mth, "compressed-tensors") != 0)
        return lb_fail(r->err, "%s: quantization_config.quant_method is '%.40s' (lowbit reads "
                       "gptq, awq and compressed-tensors)", r->path, mth);
    snprintf(out->quant_method, sizeof out->quant_method, "%s", mth);
    if (strcmp(mth, "compressed-tensors") == 0)
        return 0;
    json_t *bits = json_object_get(q, "bits"), *group = json_object_get(q, "group_size");
    if (!bits)
        bits = json_object_get(q, "w_bit");
    if (!group)
        group = json_object_get(q, "q_group_size");
    json_int_t b = json_integer_value(bits), g = json_integer_value(group);
    if (!json_is_integer(bits) || (b != 2 && b != 3 && b != 4 && b != 8))
        return lb_fail(r->err, "%s: quantization_config.bits must be 2, 3, 4 or 8", r->path);
    if (!json_is_integer(group) || g < -1 || g == 0 || g > (1 << 24))
        return lb_fail(r->err, "%s: quantization_config.group_size must be -1 (per channel) or "
                       "a positive integer", r->path);
    out->quant_bits = (int)b;
    out->quant_group = g < 0 ? 0 : (int)g;
    return 0;
}

int hf_config_parse(const char *path, const char *text, size_t len, hf_config *out,
                    lb_error *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    if (!root)
        return lb_fail(err, "%s: line %d, column %d: %s", path, jerr.line, jerr.column,
                       jerr.text);
    reader r = {path, root, err};
    int rc = -1;
    if (!json_is_object(root)) {
        lb_fail(err, "%s: the top level must be an object", path);
        goto done;
    }
    if (find_architecture(&r, out))
        goto done;
    if (out->cfg.arch == LB_ARCH_GPT2 ? read_gpt2(&r, out) : read_llama(&r, out))
        goto done;
    json_t *name = json_object_get(root, "_name_or_path");
    if (json_is_string(name))
        snprintf(out->cfg.name, sizeof out->cfg.name, "%s", json_string_value(name));
    if (read_quantization(&r, out))
        goto done;
    rc = 0;
done:
    json_decref(root);
    return rc;
}

int hf_config_load(const char *path, hf_config *out, lb_error *err)
{
    char *text;
    size_t len;
    memset(out, 0, sizeof *out);
    if (lb_read_file(path, MAX_CONFIG_BYTES, &text, &len, err))
        return -1;
    int rc = hf_config_parse(path, text, len, out, err);
    free(text);
    return rc;
}
