/* Tokenizer files that stand on their own (GGUF carries its vocabulary inside the model). */
#ifndef LB_TOKENIZER_LOADERS_H
#define LB_TOKENIZER_LOADERS_H

#include "tokenizer/tokenizer.h"

/* llama2.c tokenizer.bin: SentencePiece-style, BOS 1, EOS 2, <0xXX> byte pieces. When
 * vocab_size > 0 it must match the file's token count as the model expects it. */
int tok_load_llama2c(const char *path, int vocab_size, lb_tokenizer **out, lb_error *err);

/* Hugging Face tokenizer.json: byte-level BPE (GPT-2, Llama 3, Qwen2) or SentencePiece-style
 * BPE with byte fallback (Llama 2, TinyLlama, Mistral). */
int tok_load_hf_json(const char *path, lb_tokenizer **out, lb_error *err);

/* GPT-2's vocab.json + merges.txt. */
int tok_load_gpt2_files(const char *vocab_json, const char *merges_txt, lb_tokenizer **out,
                        lb_error *err);

#endif
