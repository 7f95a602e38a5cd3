/* One entry point per file format; model_load.c chooses among them. */
#ifndef LB_LOADERS_H
#define LB_LOADERS_H

#include "model/model.h"

int lb_load_gguf(const char *path, lb_model **out, lb_error *err);
/* A Hugging Face directory: config.json + model.safetensors (or an index) + tokenizer.json. */
int lb_load_hf_dir(const char *dir, lb_model **out, lb_error *err);
/* llama2.c checkpoint + tokenizer.bin (tokenizer_path NULL: tokenizer.bin beside the model). */
int lb_load_llama2c(const char *path, const char *tokenizer_path, lb_model **out, lb_error *err);

#endif
