#!/usr/bin/env bash
# lowbit synth: stories15M-shaped random models in f32, q8_0 and q4_0 load with the right
# shapes, parameter count and tensor types, generate, tokenize like the real Llama 2 vocabulary,
# repeat byte for byte for a seed (whatever the thread count), and bad arguments or a failed
# write leave nothing behind.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

# stories15M's shapes, from which every expected count below is computed.
D=288; H=768; L=6; HEADS=6; KV=6; V=32000; CTX=256
HD=$((D / HEADS)); Q=$((HEADS * HD)); K=$((KV * HD))
MATRIX=$((L * (D * Q + 2 * D * K + Q * D + 3 * D * H)))   # attention + feed-forward
NORMS=$((L * 2 * D + D))
EMBD=$((V * D))
PARAMS_UNTIED=$((EMBD * 2 + MATRIX + NORMS))
PARAMS_TIED=$((EMBD + MATRIX + NORMS))

# json_get JSON EXPR: evaluates a Python expression over the parsed JSON `j`.
json_get() { "$PY" -c "import json,sys; j=json.loads(sys.argv[1]); print($2)" "$1"; }

for t in f32 q8_0 q4_0; do
  f="$SCRATCH/s15_$t.gguf"
  if ! "$BIN" synth --preset stories15M --type "$t" --seed 5 -o "$f" >"$SCRATCH/out" 2>"$SCRATCH/err"; then
    fail "synth $t: $(cat "$SCRATCH/err")"; continue
  fi
  pass "synth $t"
  expect_contains "synth $t summary" "$(cat "$SCRATCH/out")" "($PARAMS_UNTIED)"
  info=$("$BIN" info --json "$f")
  expect_eq "$t shapes" "$(json_get "$info" '[j[k] for k in ("architecture","dim","layers","heads","kv_heads","head_dim","ffn_dim","vocab","context")]')" \
    "['llama', $D, $L, $HEADS, $KV, $HD, $H, $V, $CTX]"
  expect_eq "$t params" "$(json_get "$info" 'j["params"]')" "$PARAMS_UNTIED"
  expect_eq "$t tensor count" "$(json_get "$info" 'len(j["tensors"])')" "$((3 + 9 * L))"
  # Norms stay F32, every matrix has the chosen type; bytes follow from the block sizes.
  T=$(echo "$t" | tr a-z A-Z)
  expect_eq "$t tensor types" "$(json_get "$info" 'sorted(set((len(x["shape"]), x["type"]) for x in j["tensors"]))')" \
    "[(1, 'F32'), (2, '$T')]"
  # Loading packs the Q8_0 / Q4_0 matrices the kernels multiply (7 per layer and the output
  # head) for them; the token embedding, read by rows, and F32 stay as they are.
  want_packed=$(( 7 * L + 1 )); [ "$t" = f32 ] && want_packed=0
  expect_eq "$t packed at load" "$(json_get "$info" 'sum(x["packed"] for x in j["tensors"])')" "$want_packed"
  expect_eq "$t embedding not packed" "$(json_get "$info" '[x["packed"] for x in j["tensors"] if x["name"] == "token_embd.weight"]')" "[False]"
  case $t in f32) num=4; den=1 ;; q8_0) num=34; den=32 ;; q4_0) num=18; den=32 ;; esac
  expect_eq "$t bytes" "$(json_get "$info" 'j["bytes"]')" "$(( (EMBD * 2 + MATRIX) * num / den + NORMS * 4 ))"
  # The rest of the file is the header (mostly the 32000 pieces) and alignment padding.
  extra=$(( $(stat -c %s "$f") - $(json_get "$info" 'j["bytes"]') ))
  [ "$extra" -gt 300000 ] && [ "$extra" -lt 1000000 ] && pass "$t header size" || fail "$t: $extra bytes besides the tensors"
  out=$("$BIN" generate -m "$f" -n 8 --temp 0 --json 2>"$SCRATCH/err")
  if [ -z "$out" ]; then fail "generate on $t: $(cat "$SCRATCH/err")"; continue; fi
  expect_eq "$t generates 8 tokens" "$(json_get "$out" 'j["generated_tokens"]')" "8"
done

# The vocabulary in the file tokenizes like SentencePiece with the real Llama 2 model
# (byte fallback included): compare the prompt's token count with sentencepiece's + BOS.
PROMPT="Once upon a time, Lily met 東京's ünïcode cat 🙂 at 3:45."
want=$("$PY" -c "import sentencepiece as s,sys; p=s.SentencePieceProcessor(model_file=sys.argv[1]); print(len(p.encode(sys.argv[2])) + 1)" \
  "$SHARED/models/tokenizer.model" "$PROMPT" 2>/dev/null)
if [ -n "$want" ]; then
  out=$("$BIN" generate -m "$SCRATCH/s15_q4_0.gguf" -p "$PROMPT" -n 1 --temp 0 --json 2>/dev/null)
  expect_eq "prompt tokens as sentencepiece counts them" "$(json_get "$out" 'j["prompt_tokens"]')" "$want"
else
  fail "sentencepiece reference unavailable"
fi

# Every piece, score and token type in the file is SentencePiece's own for tokenizer.model,
# and the metadata carries llama.cpp's keys with its types (read with an independent parser).
vocab=$("$PY" - "$SCRATCH/s15_q4_0.gguf" "$SHARED/models/tokenizer.model" <<'PYEOF' 2>&1
import struct, sys
import sentencepiece as spm
d = open(sys.argv[1], "rb").read()
p = 0
def take(fmt):
    global p
    v = struct.unpack_from("<" + fmt, d, p); p += struct.calcsize("<" + fmt); return v[0]
def s():
    global p
    n = take("Q"); v = d[p:p + n].decode("utf-8"); p += n; return v
SC = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
def val(t):
    if t == 8: return s()
    if t == 9:
        et, n = take("I"), take("Q")
        return [val(et) for _ in range(n)]
    return take(SC[t])
assert d[:4] == b"GGUF" and take("4xI") == 3
nt, nkv = take("Q"), take("Q")
kv, types = {}, {}
for _ in range(nkv):
    k = s(); t = take("I"); types[k] = t; kv[k] = val(t)
sp = spm.SentencePieceProcessor(model_file=sys.argv[2])
n = sp.get_piece_size()
def sptype(i):
    return 2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1
bad = [i for i in range(n) if kv["tokenizer.ggml.tokens"][i] != sp.id_to_piece(i)]
bad_s = [i for i in range(n) if kv["tokenizer.ggml.scores"][i] != sp.get_score(i)]
bad_t = [i for i in range(n) if kv["tokenizer.ggml.token_type"][i] != sptype(i)]
print("tokens", len(kv["tokenizer.ggml.tokens"]), n, "bad pieces", bad[:3], "bad scores", bad_s[:3], "bad types", bad_t[:3])
want = {"general.architecture": (8, "llama"), "general.file_type": (4, 2),
        "llama.context_length": (4, 256), "llama.embedding_length": (4, 288),
        "llama.block_count": (4, 6), "llama.feed_forward_length": (4, 768),
        "llama.attention.head_count": (4, 6), "llama.attention.head_count_kv": (4, 6),
        "llama.rope.dimension_count": (4, 48), "llama.rope.freq_base": (6, 10000.0),
        "tokenizer.ggml.model": (8, "llama"), "tokenizer.ggml.bos_token_id": (4, sp.bos_id()),
        "tokenizer.ggml.eos_token_id": (4, sp.eos_id()), "tokenizer.ggml.unknown_token_id": (4, sp.unk_id())}
print("keys", [k for k, (t, v) in want.items() if types.get(k) != t or kv.get(k) != v],
      abs(kv["llama.attention.layer_norm_rms_epsilon"] - 1e-5) < 1e-10)
PYEOF
)
expect_eq "vocabulary and keys as SentencePiece and llama.cpp have them" "$vocab" \
  "tokens 32000 32000 bad pieces [] bad scores [] bad types []
keys [] True"

# Same seed: identical files, with 1 or 2 threads; another seed: different weights.
"$BIN" synth --preset stories15M --type q4_0 --seed 5 --threads 1 -q -o "$SCRATCH/again.gguf"
cmp -s "$SCRATCH/s15_q4_0.gguf" "$SCRATCH/again.gguf" && pass "same seed, same bytes (1 vs 2 threads)" \
  || fail "seed 5 gave different files"
"$BIN" synth --preset stories15M --type q4_0 --seed 6 -q -o "$SCRATCH/other.gguf"
if cmp -s "$SCRATCH/s15_q4_0.gguf" "$SCRATCH/other.gguf"; then fail "seeds 5 and 6 gave the same file"
else pass "different seed, different bytes"; fi
expect_eq "different seed, same size" "$(stat -c %s "$SCRATCH/other.gguf")" "$(stat -c %s "$SCRATCH/s15_q4_0.gguf")"

# --tied drops output.weight: the parameter count of the shared-classifier llama2.c model.
"$BIN" synth --preset stories15M --type q8_0 --tied -q -o "$SCRATCH/tied.gguf"
info=$("$BIN" info --json "$SCRATCH/tied.gguf")
expect_eq "tied params" "$(json_get "$info" 'j["params"]')" "$PARAMS_TIED"
expect_eq "tied has no output.weight" "$(json_get "$info" '"output.weight" in [x["name"] for x in j["tensors"]]')" "False"
rm -f "$SCRATCH"/again.gguf "$SCRATCH"/other.gguf "$SCRATCH"/tied.gguf "$SCRATCH"/s15_f32.gguf

# Bad arguments: exit 1 with one line, and no file.
S=(synth --preset stories15M -q)
expect_error "unknown preset" "unknown --preset 'gpt5'" -- "$BIN" synth --preset gpt5 -o "$SCRATCH/x.gguf"
expect_error "unknown arch" "unknown --arch 'mamba'" -- "$BIN" "${S[@]}" --arch mamba -o "$SCRATCH/x.gguf"
expect_error "unknown type" "unknown --type 'q5_k'" -- "$BIN" "${S[@]}" --type q5_k -o "$SCRATCH/x.gguf"
expect_error "missing -o" "-o FILE is required" -- "$BIN" "${S[@]}"
expect_error "missing preset" "--preset NAME is required" -- "$BIN" synth -o "$SCRATCH/x.gguf"
expect_error "bad seed" "--seed expects an integer" -- "$BIN" "${S[@]}" --seed -3 -o "$SCRATCH/x.gguf"
expect_error "bad seed text" "--seed expects an integer" -- "$BIN" "${S[@]}" --seed 12abc -o "$SCRATCH/x.gguf"
expect_error "tied and untied" "exclude each other" -- "$BIN" "${S[@]}" --tied --untied -o "$SCRATCH/x.gguf"
expect_error "missing directory" "directory .*/no/such/dir does not exist" -- "$BIN" "${S[@]}" -o "$SCRATCH/no/such/dir/x.gguf"
expect_error "output is a directory" "is a directory" -- "$BIN" "${S[@]}" -o "$SCRATCH"
expect_error "missing tokenizer" "nope.bin: cannot open" -- "$BIN" "${S[@]}" --tokenizer "$SCRATCH/nope.bin" -o "$SCRATCH/x.gguf"
expect_error "unknown option" "--frobnicate" -- "$BIN" "${S[@]}" --frobnicate -o "$SCRATCH/x.gguf"
[ -e "$SCRATCH/x.gguf" ] && fail "a failed synth left x.gguf" || pass "no output after bad arguments"

# A write that fails half way (a file-size limit standing in for a full disk) reports it,
# removes the temporary file and leaves the good file under the final name untouched.
good="$SCRATCH/s15_q8_0.gguf"
sum_before=$(md5sum <"$good")
expect_error "full disk" "write failed" -- bash -c "trap '' XFSZ; ulimit -f 2048; exec \"\$@\"" _ \
  "$BIN" "${S[@]}" --type q8_0 --seed 9 -o "$good"
expect_eq "good file kept" "$(md5sum <"$good")" "$sum_before"
left=$(ls "$SCRATCH" | grep -c '\.tmp\.')
expect_eq "no temporary files left" "$left" "0"

# --help
out=$("$BIN" synth --help)
expect_contains "help" "$out" "stories110M"

finish
