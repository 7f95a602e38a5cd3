# lowbit perplexity against llama.cpp's llama-perplexity on the same model and files, the
# Hugging Face/GPTQ mode against llama-perplexity's strided mode where the two coincide,
# invariance to batching and threads, jsonl input, and every bad input (exit 1, one line).
source "$(dirname "$0")/lib.sh"
MODEL=$SHARED/models/stories260K.gguf
DATA=$SHARED/datasets
PY=/usr/bin/python3

# within NAME ACTUAL EXPECTED REL: |actual - expected| <= rel * |expected|
within() {
  if awk -v a="$2" -v e="$3" -v r="$4" 'BEGIN { d = a - e; if (d < 0) d = -d; m = e < 0 ? -e : e; exit !(a != "" && d <= r * m) }'; then
    pass "$1 ($2 vs $3)"
  else
    fail "$1: $2 is not within $4 of $3"
  fi
}
# field JSON KEY: a field of the first result ("value", "stderr", "n", or params.KEY)
field() { $PY -c 'import json,sys; r=json.load(sys.stdin)["results"][0]; k=sys.argv[1]; print(r["params"][k[7:]] if k.startswith("params.") else r[k])' "$2" <<<"$1"; }
# Heads of the files for most runs: the first chunks tokenize the same as in the whole file,
# and the tests spend their time scoring rather than tokenizing.
TS_HEAD=$SCRATCH/ts_head.txt
WT_HEAD=$SCRATCH/wiki_head.txt
head -c 100000 "$DATA/tinystories/validation_head.txt" > "$TS_HEAD"
head -c 100000 "$DATA/wikitext2/wiki.test.raw" > "$WT_HEAD"
# running OUTPUT K: the running estimate [K] printed as llama-perplexity prints it
running() { printf '%s' "$1" | tr ',' '\n' | sed -n "s/^\[$2\]//p"; }

# --- llama.cpp agreement ------------------------------------------------------------------
# /tmp/llamacpp/build/bin/llama-perplexity -m stories260K.gguf -f tinystories/validation_head.txt -c 256 -b 256 --chunks 8
#   [1]4.0450,[2]3.6460,[3]3.5399,[4]3.4300,[5]3.5181,[6]3.5886,[7]3.5561,[8]3.5798
#   Final estimate: PPL = 3.5798 +/- 0.19869
# (the whole file, 1535 chunks, without --chunks: PPL = 4.8752 +/- 0.02346)
LLAMA_TS=(4.0450 3.6460 3.5399 3.4300 3.5181 3.5886 3.5561 3.5798)
out=$("$BIN" perplexity -m "$MODEL" --threads 1 -f tinystories --data-dir "$DATA" --ctx 256 --chunks 8 2>/dev/null)
for k in 1 2 3 4 5 6 7 8; do
  within "tinystories ctx 256 running [$k]" "$(running "$out" $k)" "${LLAMA_TS[$((k - 1))]}" 0.001
done
within "final line" "$(printf '%s' "$out" | sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- .*/\1/p')" 3.5798 0.001
json=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --ctx 256 --chunks 8 --json)
within "tinystories ctx 256 ppl (json)" "$(field "$json" value)" 3.5798 0.001
within "tinystories ctx 256 stderr" "$(field "$json" stderr)" 0.19869 0.001
expect_eq "tokens scored: 8 chunks x 127" "$(field "$json" n)" 1016
expect_eq "task" "$(field "$json" task)" ts_head.txt
expect_eq "metric" "$(field "$json" metric)" perplexity
expect_eq "format" "$(field "$json" format)" F32
expect_eq "params.ctx" "$(field "$json" params.ctx)" 256
# An F16 KV cache (as llama.cpp keeps it) rounds keys and values: the fifth digit may move.
f16=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --ctx 256 --chunks 8 --kv-type f16 --json)
within "F16 KV cache, ctx 256" "$(field "$f16" value)" "$(field "$json" value)" 0.0005
f16=$(LOWBIT_KV_CACHE=f16 "$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --ctx 256 --chunks 8 --json)
within "F16 KV cache from LOWBIT_KV_CACHE" "$(field "$f16" value)" "$(field "$json" value)" 0.0005
# A Q8 cache (int8 head rows, a scale each): 3.5841 against F32's 3.5796 measured (+0.13 %).
q8=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --ctx 256 --chunks 8 --kv-type q8 --json)
within "Q8 KV cache, ctx 256" "$(field "$q8" value)" "$(field "$json" value)" 0.01
expect_eq "params.kv_cache, q8" "$(field "$q8" params.kv_cache)" q8
expect_eq "params.kv_cache, default" "$(field "$json" params.kv_cache)" f32
[ "$(field "$q8" value)" != "$(field "$json" value)" ] && pass "Q8 KV cache rounds" ||
  fail "Q8 KV cache gave F32's perplexity to the last digit: not quantized?"
expect_error "unknown KV cache type" "--kv-type q4: expected f32, f16 or q8" -- \
  "$BIN" perplexity -m "$MODEL" -f "$TS_HEAD" --kv-type q4

# /tmp/llamacpp/build/bin/llama-perplexity -m stories260K.gguf -f wikitext2/wiki.test.raw -c 512 -b 512 --chunks 4
#   [1]129.7129,[2]105.4780,[3]109.8712,[4]101.3693
#   Final estimate: PPL = 101.3693 +/- 10.34458
# (the whole file, 1580 chunks, without --chunks: PPL = 127.5575 +/- 0.74873; lowbit gives
#  127.5557 +/- 0.74872 — llama.cpp keeps its KV cache in F16, which moves the fifth digit)
LLAMA_WT=(129.7129 105.4780 109.8712 101.3693)
out=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$WT_HEAD" --ctx 512 --chunks 4 2>/dev/null)
for k in 1 2 3 4; do
  within "wikitext2 ctx 512 running [$k]" "$(running "$out" $k)" "${LLAMA_WT[$((k - 1))]}" 0.001
done
# The shortcut through $LOWBIT_DATA_DIR, pointed at a directory holding the head of the file.
mkdir -p "$SCRATCH/data/wikitext2" && cp "$WT_HEAD" "$SCRATCH/data/wikitext2/wiki.test.raw"
json=$(LOWBIT_DATA_DIR=$SCRATCH/data "$BIN" perplexity -m "$MODEL" --threads 1 -f wikitext2 --ctx 512 --chunks 4 --json)
within "wikitext2 ctx 512 stderr" "$(field "$json" stderr)" 10.34458 0.001
expect_eq "task of a shortcut" "$(field "$json" task)" wikitext2

# --- hf mode ------------------------------------------------------------------------------
# llama-perplexity's strided mode windows n_ctx + stride/2 tokens every stride tokens and scores
# the last stride of each, without BOS: with a window of 384 and stride 383 that is exactly hf
# mode's --ctx 384 --stride 383 (every window scores positions 1..383).
# /tmp/llamacpp/build/bin/llama-perplexity -m stories260K.gguf -f tinystories/validation_head.txt -c 193 -b 384 --ppl-stride 383 --chunks 6
#   [1]3.8924,[2]3.9306,[3]4.0119,[4]3.9032,[5]3.8744,[6]3.8787
LLAMA_V2=(3.8924 3.9306 4.0119 3.9032 3.8744 3.8787)
out=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --mode hf --ctx 384 --stride 383 --chunks 6 2>/dev/null)
for k in 1 2 3 4 5 6; do
  within "hf stride 383 running [$k]" "$(running "$out" $k)" "${LLAMA_V2[$((k - 1))]}" 0.001
done
json=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --mode hf --ctx 384 --stride 383 --chunks 6 --json)
expect_eq "hf stride: 6 windows x 383 scored" "$(field "$json" n)" 2298
a=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$TS_HEAD" --mode hf --ctx 128 --chunks 5 --json)
b=$("$BIN" perplexity -m "$MODEL" -f "$TS_HEAD" --mode hf --ctx 128 --stride 128 --chunks 5 --batch 1 --threads 1 --json)
expect_eq "hf: stride = ctx is no stride" "$(field "$a" value)" "$(field "$b" value)"
expect_eq "hf: every token after a window's first: 5 x 127" "$(field "$a" n)" 635

# --- batching and threads do not change the figure ---------------------------------------
a=$("$BIN" perplexity -m "$MODEL" -f "$TS_HEAD" --ctx 128 --chunks 7 --batch 1 --threads 1 --json)
b=$("$BIN" perplexity -m "$MODEL" -f "$TS_HEAD" --ctx 128 --chunks 7 --batch 3 --json)
expect_eq "batch 1 / 1 thread = batch 3" "$(field "$a" value)" "$(field "$b" value)"
expect_eq "stderr too" "$(field "$a" stderr)" "$(field "$b" stderr)"

# --- jsonl: one document holding the whole text scores as the plain file ----------------
$PY -c 'import json,sys; t=open(sys.argv[1]).read(); t=t[:-1] if t.endswith("\n") else t; print(json.dumps({"text": t, "id": 1}))' \
  "$TS_HEAD" > "$SCRATCH/one.jsonl"
json=$("$BIN" perplexity -m "$MODEL" --threads 1 -f "$SCRATCH/one.jsonl" --ctx 256 --chunks 8 --json)
within "jsonl document = plain file" "$(field "$json" value)" 3.5798 0.001

# --- bad input ---------------------------------------------------------------------------
TS=$DATA/tinystories/validation_head.txt
printf '' > "$SCRATCH/empty.txt"
head -c 600 "$TS" > "$SCRATCH/short.txt"
printf '{"text": "Once upon a time"}\n{"text": "there was"\n' > "$SCRATCH/bad.jsonl"
printf '{"text": "Once upon a time"}\n{"title": "x"}\n' > "$SCRATCH/notext.jsonl"
expect_error "missing file" "nothere.txt: no such file" -- "$BIN" perplexity -m "$MODEL" -f "$SCRATCH/nothere.txt"
expect_error "missing shortcut file" "nowhere/wikitext2/wiki.test.raw: no such file" -- "$BIN" perplexity -m "$MODEL" -f wikitext2 --data-dir "$SCRATCH/nowhere"
expect_error "empty file" "empty.txt: the file is empty" -- "$BIN" perplexity -m "$MODEL" -f "$SCRATCH/empty.txt"
expect_error "shorter than two chunks" "short.txt: the text has [0-9]+ tokens; llamacpp mode with --ctx 256 needs at least 512" -- "$BIN" perplexity -m "$MODEL" -f "$SCRATCH/short.txt" --ctx 256
expect_error "shorter than one window (hf)" "short.txt: the text has [0-9]+ tokens, fewer than one window of --ctx 512" -- "$BIN" perplexity -m "$MODEL" -f "$SCRATCH/short.txt" --mode hf
expect_error "jsonl bad line" "bad.jsonl: line 2: " -- "$BIN" perplexity -m "$MODEL" -f "$SCRATCH/bad.jsonl"
expect_error "jsonl without text" "notext.jsonl: line 2: no \"text\" field" -- "$BIN" perplexity -m "$MODEL" -f "$SCRATCH/notext.jsonl"
expect_error "ctx 0" "--ctx is 0, expected at least 4" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --ctx 0
expect_error "ctx negative" "--ctx is -5" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --ctx -5
expect_error "ctx not a number" "--ctx" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --ctx abc
expect_error "stride over ctx" "--stride is 300, expected 1..ctx \(256\)" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --mode hf --ctx 256 --stride 300
expect_error "stride negative" "--stride is -1" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --mode hf --stride -1
expect_error "stride in llamacpp mode" "--stride applies to --mode hf only" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --ctx 256 --stride 128
expect_error "bad mode" "--mode is 'gptq', expected llamacpp or hf" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --mode gptq
expect_error "bad chunks" "--chunks is -2" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --chunks -2
expect_error "bad batch" "--batch is -1" -- "$BIN" perplexity -m "$MODEL" -f "$TS" --batch -1
expect_error "no model" "-m MODEL and -f FILE are required" -- "$BIN" perplexity -f "$TS"
expect_error "missing model" "nomodel.gguf" -- "$BIN" perplexity -m "$SCRATCH/nomodel.gguf" -f "$TS"
expect_error "text as model" "short.txt" -- "$BIN" perplexity -m "$SCRATCH/short.txt" -f "$TS"
out=$("$BIN" perplexity --help); rc=$?
expect_eq "--help exits 0" "$rc" 0
expect_contains "--help lists --stride" "$out" "--stride"
finish
