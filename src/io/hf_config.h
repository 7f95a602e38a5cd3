/* Hugging Face config.json → lb_config for the architectures lowbit runs (Llama, Mistral,
 * Qwen2, GPT-2). */
#ifndef LB_HF_CONFIG_H
#define LB_HF_CONFIG_H

#include "model/model.h"

typedef struct {
    lb_config cfg;
    bool tie_word_embeddings;   /* the output head is the embedding (no lm_head.weight) */
    char architecture[64];      /* as config.json names it, e.g. "Qwen2ForCausalLM" */
    /* "quantization_config": quant_method "gptq", "awq" or "compressed-tensors" ("" when the
     * checkpoint is not quantized); bits and group_size (0: per channel) for gptq and awq. */
    char quant_method[32];
    int quant_bits, quant_group;
} hf_config;

/* Reads and checks path (a config.json). Errors name the file and the field. */
int hf_config_load(const char *path, hf_config *out, lb_error *err);
/* The same from text already read; path is only used in messages. */
int hf_config_parse(const char *path, const char *text, size_t len, hf_config *out,
                    lb_error *err);

#endif
