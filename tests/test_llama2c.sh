#!/usr/bin/env bash
# llama2.c checkpoints end to end: stories260K.bin + tok512.bin generate exactly the GGUF's
# greedy text, `lowbit info` describes them, and every broken file is refused with exit status 1
# and one line on stderr naming the problem.
source "$(dirname "$0")/lib.sh"

MODELS=$SHARED/models
EXPECTED="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high."

out=$("$BIN" generate -m "$MODELS/stories260K.bin" --tokenizer "$MODELS/tok512.bin" -n 61 --temp 0 2>/dev/null)
expect_eq "llama2.c greedy text" "$out" "$EXPECTED"
gguf=$("$BIN" generate -m "$MODELS/stories260K.gguf" -n 61 --temp 0 2>/dev/null)
expect_eq "llama2.c and GGUF print the same text" "$out" "$gguf"

out=$("$BIN" generate -m "$MODELS/stories260K.bin" --tokenizer "$MODELS/tok512.bin" -p "Once upon a time" -n 60 --temp 0 --stop "Lily" 2>/dev/null)
expect_eq "prompt through tok512.bin" "$out" "Once upon a time, there was a little girl named "

# Without --tokenizer, tokenizer.bin beside the model is used.
mkdir -p "$SCRATCH/beside"
cp "$MODELS/stories260K.bin" "$SCRATCH/beside/model.bin"
cp "$MODELS/tok512.bin" "$SCRATCH/beside/tokenizer.bin"
out=$("$BIN" generate -m "$SCRATCH/beside/model.bin" -n 61 --temp 0 2>/dev/null)
expect_eq "tokenizer.bin beside the model" "$out" "$EXPECTED"

info=$("$BIN" info "$MODELS/stories260K.bin" --tokenizer "$MODELS/tok512.bin")
expect_contains "info: format" "$info" "(llama2c)"
expect_contains "info: architecture" "$info" "architecture  llama"
expect_contains "info: heads" "$info" "heads         8 (kv 4, size 8)"
expect_contains "info: ffn" "$info" "ffn           172"
expect_contains "info: context" "$info" "context       512"
expect_contains "info: parameters" "$info" "parameters    260032"
expect_contains "info: tokenizer" "$info" "sentencepiece-bpe, 512 tokens, bos 1, eos 2"
json=$("$BIN" info "$MODELS/stories260K.bin" --tokenizer "$MODELS/tok512.bin" --json)
expect_contains "info --json" "$json" '"llama'

# ---- broken checkpoints --------------------------------------------------------------------

# le32 N: the four little-endian bytes of N as printf escapes.
le32() { local v=$(( $1 & 0xffffffff )); printf '\\x%02x\\x%02x\\x%02x\\x%02x' $((v & 255)) $((v >> 8 & 255)) $((v >> 16 & 255)) $((v >> 24 & 255)); }
# with_field NAME OFFSET VALUE: a copy of stories260K.bin with one header int32 replaced.
with_field() {
  cp "$MODELS/stories260K.bin" "$SCRATCH/$1.bin"
  printf "$(le32 "$3")" | dd of="$SCRATCH/$1.bin" bs=1 seek="$2" conv=notrunc status=none
}
gen() { "$BIN" generate -m "$1" --tokenizer "${2:-$MODELS/tok512.bin}" -n 4 --temp 0; }

head -c 1000000 "$MODELS/stories260K.bin" > "$SCRATCH/truncated.bin"
expect_error "truncated checkpoint" \
  "truncated.bin: file is 1000000 bytes, the header \(dim 64, hidden_dim 172, n_layers 5, n_heads 8, n_kv_heads 4, vocab_size 512, seq_len 512\) implies 1056540" \
  -- gen "$SCRATCH/truncated.bin"
cat "$MODELS/stories260K.bin" <(printf 'xyzw') > "$SCRATCH/long.bin"
expect_error "trailing bytes" "long.bin: file is 1056544 bytes, .* implies 1056540" -- gen "$SCRATCH/long.bin"
head -c 20 "$MODELS/stories260K.bin" > "$SCRATCH/short.bin"
expect_error "shorter than the header" "short.bin: file is 20 bytes, too short for a llama2.c header" -- gen "$SCRATCH/short.bin"
: > "$SCRATCH/empty.bin"
expect_error "empty file" "empty.bin: file is 0 bytes" -- gen "$SCRATCH/empty.bin"

with_field zero_dim 0 0
expect_error "zero dim" "zero_dim.bin: offset 0: header field dim is 0, expected 1..65536" -- gen "$SCRATCH/zero_dim.bin"
with_field neg_layers 8 -1
expect_error "negative n_layers" "neg_layers.bin: offset 8: header field n_layers is -1" -- gen "$SCRATCH/neg_layers.bin"
with_field huge_hidden 4 2147483647
expect_error "huge hidden_dim" "huge_hidden.bin: offset 4: header field hidden_dim is 2147483647, expected 1..262144" -- gen "$SCRATCH/huge_hidden.bin"
with_field huge_vocab 20 -2147483648
expect_error "most negative vocab_size" "huge_vocab.bin: offset 20: header field vocab_size" -- gen "$SCRATCH/huge_vocab.bin"
with_field zero_seq 24 0
expect_error "zero seq_len" "zero_seq.bin: offset 24: header field seq_len is 0" -- gen "$SCRATCH/zero_seq.bin"
with_field big_dim 0 128
expect_error "dim that does not fit the file" "big_dim.bin: file is 1056540 bytes, the header \(dim 128, .*\) implies [0-9]+" -- gen "$SCRATCH/big_dim.bin"
with_field heads 12 7
expect_error "dim not a multiple of n_heads" "heads.bin: header: dim 64 is not a multiple of n_heads 7" -- gen "$SCRATCH/heads.bin"
with_field kv_heads 16 3
expect_error "n_heads not a multiple of n_kv_heads" "kv_heads.bin: header: n_heads 8 is not a multiple of n_kv_heads 3" -- gen "$SCRATCH/kv_heads.bin"
with_field odd_head 12 64
expect_error "odd head size" "odd_head.bin: header: head size 1 .* is odd" -- gen "$SCRATCH/odd_head.bin"
with_field v1 0 0x616b3432
expect_error "llama2.c version 1 export" "v1.bin: offset 0: magic \"ak42\" marks a llama2.c version 1/2 export" -- gen "$SCRATCH/v1.bin"
with_field unshared 20 -512
expect_error "negative vocab_size without the classifier" "unshared.bin: file is 1056540 bytes, .*vocab_size 512 with a separate classifier.* implies 1187612" -- gen "$SCRATCH/unshared.bin"

# ---- broken tokenizers ---------------------------------------------------------------------

expect_error "missing tokenizer file" "nonexistent/tokenizer.bin: cannot open" -- gen "$MODELS/stories260K.bin" "$SCRATCH/nonexistent/tokenizer.bin"
mkdir -p "$SCRATCH/alone"
cp "$MODELS/stories260K.bin" "$SCRATCH/alone/model.bin"
expect_error "no tokenizer.bin beside the model" "model.bin: no tokenizer.bin beside the model .*--tokenizer" -- "$BIN" generate -m "$SCRATCH/alone/model.bin" -n 4
head -c 3000 "$MODELS/tok512.bin" > "$SCRATCH/tok_truncated.bin"
expect_error "truncated tokenizer.bin" "tok_truncated.bin: offset [0-9]+: (file ends inside token [0-9]+'s header|token [0-9]+ has length)" -- gen "$MODELS/stories260K.bin" "$SCRATCH/tok_truncated.bin"
# A complete tokenizer.bin of three tokens (max length 5; score 0, length, bytes each).
printf '\x05\x00\x00\x00''\x00\x00\x00\x00\x05\x00\x00\x00<unk>''\x00\x00\x00\x00\x03\x00\x00\x00<s>''\x00\x00\x00\x00\x04\x00\x00\x00</s>' > "$SCRATCH/tok3.bin"
expect_error "tokenizer with fewer tokens than the vocab" "tok3.bin: holds 3 tokens, the model expects 512" -- gen "$MODELS/stories260K.bin" "$SCRATCH/tok3.bin"
printf '\x00\x00\x00\x00' > "$SCRATCH/tok_zero.bin"
expect_error "tokenizer max length 0" "tok_zero.bin: offset 0: max token length 0" -- gen "$MODELS/stories260K.bin" "$SCRATCH/tok_zero.bin"
expect_error "info on a broken checkpoint" "truncated.bin: file is 1000000 bytes" -- "$BIN" info "$SCRATCH/truncated.bin" --tokenizer "$MODELS/tok512.bin"

finish
