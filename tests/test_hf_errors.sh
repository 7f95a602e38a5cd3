#!/usr/bin/env bash
# Hugging Face directories through the CLI: good checkpoints from tests/tools/hf_reference.py
# load and generate; each damaged one makes `lowbit info` exit 1 with one line on stderr naming
# the file and what is wrong with it. (Logits against the numpy reference: test_hf_models.c.)
source "$(dirname "$0")/lib.sh"

G=$SCRATCH/good
B=$SCRATCH/bad
/usr/bin/python3 "$TESTS/tools/hf_reference.py" "$G" || { fail "hf_reference.py could not write checkpoints"; finish; }
/usr/bin/python3 "$TESTS/tools/hf_reference.py" --broken "$B" || { fail "hf_reference.py --broken failed"; finish; }

# ---- good checkpoints ----------------------------------------------------------------------

out=$("$BIN" info "$G/qwen2")
expect_contains "qwen2 info: architecture" "$out" "architecture  qwen2"
expect_contains "qwen2 info: heads" "$out" "heads         4 (kv 2, size 16)"
expect_contains "qwen2 info: rope" "$out" "rope          half-split, theta 1e+06"
expect_contains "qwen2 info: padded vocabulary" "$out" "byte-level-bpe, 300 tokens"

json=$("$BIN" info --json "$G/llama_sharded")
expect_contains "sharded info: format" "$json" '"format": "safetensors"'
expect_contains "sharded info: layers" "$json" '"layers": 3'
expect_contains "sharded info: untied head" "$json" '{"name": "output.weight", "type": "F16", "shape": [64, 300]'

# Conv1D weights are stored [in][out]; transposed, their ggml shape is [in, out] too
# (ne[0] = in), and the fused qkv is split into views.
out=$("$BIN" info --tensors "$G/gpt2")
has_tensor() { printf '%s\n' "$out" | grep -Eq "^ +$1 +$2 +\[$3\]$" && pass "gpt2: $1 $2 [$3]" || fail "gpt2: no $1 $2 [$3] in: $out"; }
has_tensor blk.0.ffn_up.weight F32 "64, 256"
has_tensor blk.1.ffn_down.weight F32 "256, 64"
has_tensor blk.1.attn_qkv.weight F32 "64, 192"
has_tensor blk.1.attn_k.weight F32 "64, 64"
has_tensor blk.0.attn_norm.bias F32 "64"
has_tensor position_embd.weight F32 "64, 64"
case "$out" in *attn.bias*|*masked_bias*) fail "gpt2: causal-mask buffers listed as tensors" ;; *) pass "gpt2: causal-mask buffers skipped" ;; esac

out=$("$BIN" info "$G/gpt2_f16_prefixed/model.safetensors")
expect_contains "a .safetensors path loads its directory" "$out" "architecture  gpt2"

for m in gpt2 qwen2 llama_tied_bf16; do
  a=$("$BIN" generate -m "$G/$m" -p "hello world" -n 12 --temp 0 --json 2>/dev/null)
  b=$("$BIN" generate -m "$G/$m" -p "hello world" -n 12 --temp 0 --threads 1 --json 2>/dev/null)
  expect_contains "$m: generates 12 tokens" "$a" '"generated_tokens": 12'
  ta=$(printf '%s' "$a" | grep -o '"text": "[^"]*"'); tb=$(printf '%s' "$b" | grep -o '"text": "[^"]*"')
  expect_eq "$m: greedy text is the same with 1 thread" "$tb" "$ta"
done

# ---- damaged safetensors -------------------------------------------------------------------

info() { "$BIN" info "$B/$1"; }
ST="model\\.safetensors"
Q="'model\\.layers\\.0\\.self_attn\\.q_proj\\.weight'"

expect_error "truncated file" "truncated/$ST: tensor '[a-z_.0-9]+': data_offsets \\[[0-9]+, [0-9]+\\] run past the end of the data \\([0-9]+ bytes; is the file truncated\\?\\)" -- info truncated
expect_error "file shorter than the length field" "tiny_file/$ST: file is 3 bytes; a safetensors file starts with an 8-byte header length" -- info tiny_file
expect_error "header length past the end" "header_past_end/$ST: offset 0: header length 1000000 runs past the end of the file \\(200 bytes\\)" -- info header_past_end
expect_error "absurd header length" "header_huge/$ST: offset 0: header length 4611686018427387904 is more than the 104857600 bytes allowed" -- info header_huge
expect_error "header not JSON" "header_not_json/$ST: header line 1, column 12: " -- info header_not_json
expect_error "offsets past the end" "offsets_past_end/$ST: tensor $Q: data_offsets \\[[0-9]+, [0-9]+\\] run past the end of the data" -- info offsets_past_end
expect_error "offsets disagree with shape x dtype" "size_mismatch/$ST: tensor $Q: data_offsets \\[[0-9]+, [0-9]+\\] hold 16384 bytes, but F32 \\[64, 32\\] needs 8192" -- info size_mismatch
expect_error "overlapping tensors" "overlap/$ST: tensors $Q and 'model\\.layers\\.0\\.self_attn\\.k_proj\\.weight' overlap" -- info overlap
expect_error "unknown dtype" "unknown_dtype/$ST: tensor $Q has unknown dtype 'Q7'" -- info unknown_dtype
expect_error "unsupported dtype" "unsupported_dtype/$ST: tensor $Q has dtype I8; lowbit loads F32, F16 and BF16" -- info unsupported_dtype
expect_error "negative shape" "negative_shape/$ST: tensor $Q: shape\\[0\\] must be a non-negative integer" -- info negative_shape
expect_error "shape overflow" "huge_shape/$ST: tensor $Q: shape needs more bytes than the file's [0-9]+ bytes of data" -- info huge_shape
expect_error "metadata not strings" "bad_metadata/$ST: __metadata__\\[\"format\"\\] must be a string" -- info bad_metadata

# ---- tensors against config.json ----------------------------------------------------------

expect_error "shape disagrees with config" "shape_vs_config/$ST: tensor $Q has shape \\[32, 64\\], expected \\[64, 64\\] from config\\.json" -- info shape_vs_config
expect_error "missing tensor" "missing_tensor: tensor 'model\\.layers\\.0\\.mlp\\.down_proj\\.weight' is missing from the checkpoint" -- info missing_tensor
expect_error "layer past the config" "layer_out_of_range/$ST: tensor 'model\\.layers\\.5\\.mlp\\.up_proj\\.weight' belongs to layer 5, but config\\.json gives the model 1 layer" -- info layer_out_of_range
expect_error "unknown tensor" "unknown_tensor/$ST: tensor 'model\\.layers\\.0\\.self_attn\\.q_norm\\.weight' is not part of a LlamaForCausalLM model" -- info unknown_tensor
expect_error "untied without lm_head" "untied_no_head: tensor 'lm_head\\.weight' is missing from the checkpoint \\(config\\.json sets tie_word_embeddings to false\\)" -- info untied_no_head

# ---- config.json ---------------------------------------------------------------------------

expect_error "malformed config.json" "config_malformed/config\\.json: line 3, column [0-9]+: " -- info config_malformed
expect_error "missing config.json" "config_missing: no config\\.json" -- info config_missing
expect_error "unknown architecture" "config_unknown_arch/config\\.json: architecture 'BertForMaskedLM' is not supported" -- info config_unknown_arch
expect_error "wrong-typed field" "config_wrong_type/config\\.json: hidden_size must be a positive integer$" -- info config_wrong_type
expect_error "missing field" "config_missing_field/config\\.json: intermediate_size must be a positive integer \\(it is missing\\)" -- info config_missing_field
expect_error "heads vs kv heads" "config_heads_kv/config\\.json: num_attention_heads \\(4\\) is not a multiple of num_key_value_heads \\(3\\)" -- info config_heads_kv
expect_error "unsupported rope scaling" "config_rope_yarn/config\\.json: rope_scaling\\.rope_type 'yarn' is not supported" -- info config_rope_yarn
expect_error "incomplete llama3 scaling" "config_rope_incomplete/config\\.json: rope_scaling\\.low_freq_factor must be a positive number \\(it is missing\\)" -- info config_rope_incomplete
expect_error "config not an object" "config_not_object/config\\.json: the top level must be an object" -- info config_not_object

# ---- the rest of the directory -------------------------------------------------------------

expect_error "no weights" "no_weights: no model\\.safetensors \\(nor model\\.safetensors\\.index\\.json\\)" -- info no_weights
expect_error "no tokenizer" "no_tokenizer: no tokenizer\\.json \\(nor GPT-2's vocab\\.json \\+ merges\\.txt\\)" -- info no_tokenizer
expect_error "tokenizer larger than the embedding" "tokenizer_too_big/tokenizer\\.json: the tokenizer has 267 tokens, more than config\\.json's vocab_size 200" -- info tokenizer_too_big
expect_error "index names a missing shard" "index_missing_shard/model-00001-of-00002\\.safetensors: cannot open: .*\\(listed in .*index_missing_shard/model\\.safetensors\\.index\\.json\\)" -- info index_missing_shard
expect_error "index names the wrong shard" "index_wrong_shard/model\\.safetensors\\.index\\.json: tensor 'model\\.embed_tokens\\.weight' is listed in .*model-00002-of-00002\\.safetensors, but that file does not hold it" -- info index_wrong_shard
expect_error "tensor in two shards" "index_duplicate/model-00002-of-00002\\.safetensors: tensor 'model\\.embed_tokens\\.weight' is also in .*model-00001-of-00002\\.safetensors" -- info index_duplicate
expect_error "malformed index" "index_malformed/model\\.safetensors\\.index\\.json: line [0-9]+, column [0-9]+: " -- info index_malformed

finish
