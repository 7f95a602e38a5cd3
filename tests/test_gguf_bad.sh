#!/usr/bin/env bash
# Broken GGUF files and bad generate options: each is refused with exit status 1 and exactly
# one line on stderr naming the file and the field, offset or tensor at fault. The files come
# from tests/tools/make_gguf.py (an independent writer), from cutting stories260K.gguf short,
# and from random byte changes in headers (fixed seeds), which must never crash or hang.
source "$(dirname "$0")/lib.sh"

MAKE=(python3 "$TESTS/tools/make_gguf.py")
MODEL="$SHARED/models/stories260K.gguf"
D="$SCRATCH/bad"
mkdir -p "$D"
"${MAKE[@]}" --all "$D" || fail "make_gguf.py --all"

# Runs lowbit with a time limit; a crash, abort or sanitizer report shows as a status above 1.
lb() { timeout 60 "$BIN" "$@"; }

# ---- the valid tiny model loads and generates ----------------------------------------------
json=$(lb generate -m "$D/valid.gguf" -n 5 --temp 0 --json 2>/dev/null)
expect_contains "tiny model generates" "$json" '"generated_tokens": 5'
info=$(lb info "$D/valid.gguf" 2>/dev/null)
expect_contains "tiny model info" "$info" "vocab         273"

# ---- one file per break: name | what the message must say -----------------------------------
BREAKS=$(cat <<'EOF'
magic|offset 0: not a GGUF file
version1|offset 4: GGUF version 1 \(lowbit reads versions 2 and 3\)
version4|offset 4: GGUF version 4 \(lowbit reads versions 2 and 3\)
tensor_count_huge|offset 8: header claims 4611686018427387904 tensors
kv_count_huge|offset 8: header claims 21 tensors and 4611686018427387904 metadata entries
kv_count_short|offset [0-9]+: tensor 'llama\.feed_forward_length': dimension 1 is
string_len_huge|offset 93: the value of 'general\.name' claims a string of 9223372036854775808 bytes
key_len_huge|offset 69: a metadata key claims a string of 9223372036854775808 bytes
array_len_huge_strings|key 'tokenizer\.ggml\.tokens': array of 1152921504606846976 string elements does not fit
array_len_huge_floats|key 'tokenizer\.ggml\.scores': array of 1152921504606846976 float32 elements does not fit
nested_array_huge|key 'general\.nested': array of 1099511627776 array elements does not fit
unknown_value_type|key 'general\.mystery' has unknown value type 13 \(expected 0 to 12\)
unknown_array_type|key 'general\.mystery': array element type 42 is not a GGUF type
tensor_type_99|tensor 'blk\.0\.attn_q\.weight': type 99 is not a GGML tensor type \(lowbit reads F32
tensor_type_q5_k|tensor 'blk\.0\.attn_q\.weight': type 13 \(Q5_K\) is not supported \(lowbit reads F32
n_dims_0|tensor 'blk\.0\.attn_k\.weight': 0 dimensions \(expected 1 to 4\)
n_dims_5|tensor 'blk\.0\.attn_k\.weight': 5 dimensions \(expected 1 to 4\)
dim_zero|tensor 'blk\.0\.attn_k\.weight': dimension 1 is 0 \(expected 1 to 2\^40\)
dim_huge|tensor 'blk\.0\.attn_k\.weight': dimension 1 is 4611686018427387904 \(expected 1 to 2\^40\)
dims_overflow|tensor 'blk\.0\.attn_k\.weight': dimensions 0\.\.1 multiply to more than 2\^50 elements
elements_2e60|tensor 'blk\.0\.attn_k\.weight': dimensions 0\.\.2 multiply to more than 2\^50 elements
elements_2e60_4d|tensor 'blk\.0\.attn_k\.weight': dimensions 0\.\.3 multiply to more than 2\^50 elements
dims_wrap_zero|tensor 'blk\.0\.attn_k\.weight': dimensions 0\.\.1 multiply to more than 2\^50 elements
elements_max_past_end|tensor 'blk\.0\.attn_k\.weight': 4503599627370496 bytes at data offset [0-9]+ .*run past the end of the 152256-byte file
string_len_past_end|offset 93: the value of 'general\.name' claims a string of 1099511627776 bytes, but only [0-9]+ are left in the file
array_len_past_end|key 'tokenizer\.ggml\.tokens': array of 4294967296 string elements does not fit in the [0-9]+ bytes left in the file
tensor_count_past_end|offset 8: header claims 16777216 tensors and 18 metadata entries, more than a 152256-byte file can hold
kv_count_past_end|offset 8: header claims 21 tensors and 16777216 metadata entries, more than a 152256-byte file can hold
offset_past_end|tensor 'blk\.1\.ffn_down\.weight': 8192 bytes at data offset 1048576 .*run past the end of the 152256-byte file
offset_huge|tensor 'blk\.0\.attn_k\.weight': 2048 bytes at data offset 18446744073709551584 .*run past the end
offset_misaligned|tensor 'blk\.0\.attn_v\.weight': data offset [0-9]+ is not a multiple of the alignment 32
alignment_odd_data|tensor 'token_embd\.weight': F32 data at file offset [0-9]+ is not on a 4-byte boundary
alignment_not_pow2|metadata key 'general\.alignment' is 48 \(expected a power of two\)
alignment_zero|metadata key 'general\.alignment' is 0 \(expected a power of two\)
alignment_string|metadata key 'general\.alignment' is string \(expected uint32\)
duplicate_tensor|tensor 'blk\.0\.attn_q\.weight' appears twice \(tensors #4 and #13\)
duplicate_key|metadata key 'llama\.embedding_length' appears twice \(entries #4 and #18\)
shape_attn_q|tensor 'blk\.0\.attn_q\.weight' has shape \[32, 16\], expected \[32, 32\]
shape_embd_vocab|tensor 'token_embd\.weight' has shape \[32, 100\], expected \[32, 273\]
missing_ffn_down|tensor 'blk\.0\.ffn_down\.weight' is missing
missing_token_embd|tensor 'token_embd\.weight' is missing
missing_embedding_length|metadata key 'llama\.embedding_length' is missing \(expected an integer\)
missing_architecture|metadata key 'general\.architecture' is missing \(expected a string\)
missing_tokens|no vocabulary \(metadata key 'tokenizer\.ggml\.tokens' is missing
embedding_length_string|metadata key 'llama\.embedding_length' is string \(expected an integer\)
embedding_length_negative|metadata key 'llama\.embedding_length' is -32 \(expected 1 to
architecture_unknown|general\.architecture is 'mamba' \(lowbit runs llama
architecture_newline|general\.architecture is 'lla\\x0ama'
head_count_zero|metadata key 'llama\.attention\.head_count' is 0 \(expected 1 to
head_count_not_divisor|llama\.embedding_length 32 is not a multiple of llama\.attention\.head_count 5
head_count_kv_not_divisor|llama\.attention\.head_count 4 is not a multiple of llama\.attention\.head_count_kv 3
block_count_huge|metadata key 'llama\.block_count' is 1000000000 \(expected 1 to 4096\)
block_count_zero|metadata key 'llama\.block_count' is 0 \(expected 1 to 4096\)
context_length_zero|metadata key 'llama\.context_length' is 0 \(expected 1 to
rope_freq_base_negative|metadata key 'llama\.rope\.freq_base' is -1 \(expected a number in \(0,
norm_eps_nan|metadata key 'llama\.attention\.layer_norm_rms_epsilon' is nan \(expected a number in \[0, 1\]\)
tokens_wrong_type|metadata key 'tokenizer\.ggml\.tokens' is an array of int32 \(expected an array of strings\)
tokenizer_model_unknown|tokenizer\.ggml\.model is 'wordpiece' \(expected 'llama' or 'gpt2'\)
bos_outside_vocab|tokenizer\.ggml\.bos_token_id is 100000, outside the 273-token vocabulary
scores_short|metadata key 'tokenizer\.ggml\.scores' has 10 entries, expected 273 \(one per token\)
output_norm_q8_0|tensor 'output_norm\.weight' is Q8_0, expected F32
attn_norm_q8_0|tensor 'blk\.0\.attn_norm\.weight' is Q8_0, expected F32
tensor_name_empty|offset [0-9]+: tensor #5: name of 0 bytes \(expected 1 to 127\)
EOF
)

n_breaks=0
while IFS='|' read -r name pattern; do
  [ -n "$name" ] || continue
  n_breaks=$((n_breaks + 1))
  f="$D/$name.gguf"
  expect_error "info $name" "^lowbit: $f: (offset [0-9]+: )?$pattern" -- lb info "$f"
  expect_error "generate $name" "^lowbit: $f: (offset [0-9]+: )?$pattern" -- lb generate -m "$f" -n 1
done <<< "$BREAKS"

# Every break the tool can make has a row above, and every row names a break it makes.
listed=$("${MAKE[@]}" --list | sort)
tabled=$(printf '%s\n' "$BREAKS" | cut -d'|' -f1 | sort)
expect_eq "every break has an expected message" "$tabled" "$listed"

# Claims of huge sizes are refused before anything is allocated for them: the refusal costs
# no more memory than loading the valid tiny model does (peak RSS, with a wide margin).
if [ -x /usr/bin/time ]; then
  rss() { /usr/bin/time -f %M -o "$D/rss" timeout 60 "$BIN" info "$1" >/dev/null 2>&1; cat "$D/rss" | tail -1; }
  base=$(rss "$D/valid.gguf")
  for name in tensor_count_huge tensor_count_past_end kv_count_huge string_len_huge \
              string_len_past_end array_len_huge_strings array_len_past_end nested_array_huge \
              elements_2e60 dims_wrap_zero elements_max_past_end offset_huge; do
    kb=$(rss "$D/$name.gguf")
    if [ "$kb" -le $((base + 65536)) ]; then pass "$name refused in ${kb} KiB (valid model: ${base} KiB)"
    else fail "$name: peak RSS ${kb} KiB, the valid model needs ${base} KiB"; fi
  done
fi

# ---- cuts: stories260K.gguf at offsets spread through each part of the file ---------------
# Part boundaries from the independent parser; every prefix shorter than the file is refused
# (data running past the end included).
sections=$("${MAKE[@]}" --sections "$MODEL")
part() { printf '%s\n' "$sections" | awk -v k="$1" '$1 == k {print $2}'; }
header=$(part header); kv_end=$(part kv_end); infos_end=$(part infos_end)
data=$(part data); size=$(part size)
expect_eq "stories260K size from the parser" "$size" "$(stat -c %s "$MODEL")"
cuts="0 1 3 4 6 8 12 16 20 23"
for k in 0 1 2 3 4 5 6 7 8 9; do cuts="$cuts $((header + k * (kv_end - header) / 10))"; done
for k in 0 1 2 3 4; do cuts="$cuts $((kv_end + k * (infos_end - kv_end) / 5))"; done
cuts="$cuts $((infos_end - 1)) $infos_end $((data - 1)) $data $((data + 1))"
cuts="$cuts $((data + (size - data) / 3)) $((data + 2 * (size - data) / 3)) $((size - 4)) $((size - 1))"
n_cuts=0
for n in $cuts; do
  n_cuts=$((n_cuts + 1))
  head -c "$n" "$MODEL" > "$D/cut.gguf"
  if [ "$n" -lt "$infos_end" ]; then want="offset [0-9]+: "; else want="run past the end of the $n-byte file"; fi
  expect_error "info cut at $n" "^lowbit: $D/cut.gguf: .*$want" -- lb info "$D/cut.gguf"
  # generate goes through the same loader; every third cut is enough to show it.
  [ $((n_cuts % 3)) -eq 0 ] && \
    expect_error "generate cut at $n" "^lowbit: $D/cut.gguf: .*$want" -- lb generate -m "$D/cut.gguf" -n 1
done
# The tiny model cut inside its vocabulary and inside its tensor table.
tiny_sections=$("${MAKE[@]}" --sections "$D/valid.gguf")
tiny_kv_end=$(printf '%s\n' "$tiny_sections" | awk '$1 == "kv_end" {print $2}')
for n in 700 $((tiny_kv_end + 100)); do
  n_cuts=$((n_cuts + 1))
  "${MAKE[@]}" "$D/cut.gguf" --truncate "$n"
  expect_error "tiny cut at $n" "^lowbit: $D/cut.gguf: offset [0-9]+: " -- lb info "$D/cut.gguf"
done

# ---- random byte changes in the header region (fixed seeds) --------------------------------
# Each changed file either loads (and then generates) or is refused with one line; nothing
# else is allowed: no crash, no sanitizer report, no hang, no message spread over lines.
loaded=0; refused=0; n_mut=0
check_mutant() {
  local f=$1 out rc lines
  n_mut=$((n_mut + 1))
  out=$(lb info "$f" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s' "$out" | grep -c '')
  if [ $rc -eq 0 ] && [ "$lines" -eq 0 ]; then
    out=$(lb generate -m "$f" -n 2 --temp 0 --seed 1 2>&1 >/dev/null); rc=$?
    lines=$(printf '%s' "$out" | grep -c '')
    if [ $rc -eq 0 ] || { [ $rc -eq 1 ] && [ "$lines" -eq 1 ]; }; then loaded=$((loaded + 1)); return; fi
    fail "$f loads but generate gave status $rc: $out"
    return
  fi
  if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && printf '%s' "$out" | grep -q "^lowbit: $f: "; then
    refused=$((refused + 1))
    return
  fi
  fail "$f: status $rc, $lines stderr lines: $out"
}
# Tiny model: anywhere before the data, 1 to 3 bytes per file.
tiny_data=$(printf '%s\n' "$tiny_sections" | awk '$1 == "data" {print $2}')
"${MAKE[@]}" --mutate "$D/valid.gguf" "$D/tiny_mut%d.gguf" --seed 11 --count 3 --variants 60 \
  --range "0:$tiny_data"
for i in $(seq 0 59); do check_mutant "$D/tiny_mut$i.gguf"; rm -f "$D/tiny_mut$i.gguf"; done
# stories260K: the fixed header, the vocabulary arrays, the model's scalar keys and the tensor
# table, each picked with equal odds.
# The model's scalar keys follow the three vocabulary arrays, from "tokenizer.ggml.model" on.
tok_end=$(grep -obaF "tokenizer.ggml.model" "$MODEL" | head -1 | cut -d: -f1)
tok_end=$((tok_end - 8))
"${MAKE[@]}" --mutate "$MODEL" "$D/mut%d.gguf" --seed 100 --count 2 --variants 16 --range 0:24 \
  --range "24:$tok_end" --range "$tok_end:$kv_end" --range "$kv_end:$infos_end"
for i in $(seq 0 15); do check_mutant "$D/mut$i.gguf"; rm -f "$D/mut$i.gguf"; done
echo "byte changes: $n_mut files, $loaded loaded and generated, $refused refused with one line"
[ $((loaded + refused)) -eq $n_mut ] && pass "every changed file loaded or was refused" \
  || fail "$((n_mut - loaded - refused)) changed files misbehaved"

# ---- bad paths and options -------------------------------------------------------------------
expect_error "missing model file" "^lowbit: $D/nonexistent\.gguf: cannot open" -- \
  lb info "$D/nonexistent.gguf"
expect_error "generate, missing model file" "^lowbit: $D/nonexistent\.gguf: cannot open" -- \
  lb generate -m "$D/nonexistent.gguf" -n 1
mkdir -p "$D/emptydir"
expect_error "directory without config.json" "^lowbit: $D/emptydir: .*(config\.json|not supported)" -- \
  lb info "$D/emptydir"
: > "$D/empty.gguf"
expect_error "empty file" "^lowbit: $D/empty\.gguf: offset 0: " -- lb info "$D/empty.gguf"
expect_error "generate, empty file" "^lowbit: $D/empty\.gguf: offset 0: " -- \
  lb generate -m "$D/empty.gguf" -n 1

long="Once upon a time there was a little girl named Lily who loved to play outside in the park"
expect_error "prompt longer than the context" "prompt of [0-9]+ tokens does not fit the context of 16 tokens" -- \
  lb generate -m "$MODEL" --ctx 16 -p "$long" -n 4
expect_error "--ctx -1" "^generate: --ctx is -1, expected 0 or more" -- lb generate -m "$MODEL" --ctx -1
expect_error "-n abc" "^generate: --n-predict expects an integer, got 'abc'" -- lb generate -m "$MODEL" -n abc
expect_error "--temp -1" "^generate: --temp is -1, expected in 0\.\.100" -- lb generate -m "$MODEL" --temp -1
expect_error "--top-p 2" "^generate: --top-p is 2, expected in \(0, 1\]" -- lb generate -m "$MODEL" --top-p 2

echo "summary: $n_breaks breaks x 2 commands, $n_cuts cuts, $n_mut byte-changed files"
finish
