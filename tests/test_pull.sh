#!/usr/bin/env bash
# lowbit pull against a local stand-in for the Hugging Face hub (tests/tools/fake_hub.py):
# the default file set and --include, byte-identical copies of real model files, redirects to
# a CDN, resume after a dropped or stalled connection (in the same run and in a later one),
# a server that ignores Range, SHA-256 failures (from the listing and from X-Linked-ETag),
# tokens, 404s, refused connections, malformed listings, and "up to date" re-runs.
source "$(dirname "$0")/lib.sh"

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
ROOT=$SCRATCH/hub
CONTROL=$SCRATCH/control.json
LOG=$SCRATCH/requests.log
REPO=$ROOT/acme/tiny
mkdir -p "$REPO/extra" "$ROOT/acme/gguf-only"
cp "$SHARED/models/stories260K.gguf" "$REPO/"
cp "$SHARED/models/tokenizer.model" "$REPO/"
cp "$SHARED/models/stories260K.gguf" "$ROOT/acme/gguf-only/stories260K-F32.gguf"
cat > "$REPO/config.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
 "num_attention_heads": 8, "num_hidden_layers": 5, "vocab_size": 512}
EOF
echo "# tiny" > "$REPO/README.md"
echo "not part of the model" > "$REPO/extra/notes.txt"
GGUF_SHA=$(sha256sum "$REPO/stories260K.gguf" | cut -d' ' -f1)
GGUF_SIZE=$(stat -c %s "$REPO/stories260K.gguf")

# Each control file gets a new run number, so the server starts its fault counters again.
RUN=0
set_control() { RUN=$((RUN + 1)); printf '{"run": %d%s}' "$RUN" "${1:+, $1}" > "$CONTROL"; }
set_control

"$PY" "$TESTS/tools/fake_hub.py" --root "$ROOT" --control "$CONTROL" --log "$LOG" \
  --watch-pid $$ > "$SCRATCH/port" 2> "$SCRATCH/server.err" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$SCRATCH"' EXIT
for _ in $(seq 100); do [ -s "$SCRATCH/port" ] && break; sleep 0.1; done
PORT=$(head -n1 "$SCRATCH/port")
[ -n "$PORT" ] || { echo "FAIL: fake hub did not start: $(cat "$SCRATCH/server.err")" >&2; exit 1; }
export HF_ENDPOINT=http://127.0.0.1:$PORT
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN

# No pull may hang: every run is bounded.
pull() { timeout 60 "$BIN" pull "$@"; }
requests() { grep -c -- "$1" "$LOG" || true; }
DL=$SCRATCH/dl

# --- default selection: configs and tokenizer, not GGUF, README or subfolders --------------
out=$(pull acme/tiny --dir "$DL/a" 2> "$SCRATCH/err"); rc=$?
expect_eq "default pull exit status" "$rc" 0
expect_eq "no stderr without a terminal" "$(cat "$SCRATCH/err")" ""
cmp -s "$DL/a/config.json" "$REPO/config.json" && pass "config.json identical" || fail "config.json differs"
cmp -s "$DL/a/tokenizer.model" "$REPO/tokenizer.model" && pass "tokenizer.model identical" || fail "tokenizer.model differs"
expect_eq "default set" "$(cd "$DL/a" && find . -type f | sort | tr '\n' ' ')" "./config.json ./tokenizer.model "
expect_contains "LFS file verified" "$out" "tokenizer.model: 499.7 kB downloaded"
expect_contains "sha256 reported" "$out" "sha256 verified"
expect_contains "summary" "$out" "done: 2 files in $DL/a (2 downloaded, 0 up to date)"
expect_eq "LFS file went through the CDN redirect" "$(requests 'resolve/[0-9a-f]*/tokenizer.model range=- auth=no status=302')" 1

# --- --include, a subfolder, then a re-run that downloads nothing --------------------------
out=$(pull acme/tiny --dir "$DL/b" --include '*.gguf' --include 'extra/*')
expect_eq "include pull exit status" "$?" 0
cmp -s "$DL/b/stories260K.gguf" "$REPO/stories260K.gguf" && pass "gguf identical" || fail "gguf differs"
cmp -s "$DL/b/extra/notes.txt" "$REPO/extra/notes.txt" && pass "subfolder file identical" || fail "extra/notes.txt differs"
expect_eq "only included files" "$(cd "$DL/b" && find . -type f | sort | tr '\n' ' ')" "./extra/notes.txt ./stories260K.gguf "
before=$(requests '/resolve/\|/cdn/')
out=$(pull acme/tiny --dir "$DL/b" --include '*.gguf' --include 'extra/*')
expect_eq "re-run exit status" "$?" 0
expect_contains "re-run: gguf up to date" "$out" "stories260K.gguf: up to date (1.2 MB, sha256 verified)"
expect_contains "re-run: notes up to date" "$out" "extra/notes.txt: up to date"
expect_contains "re-run summary" "$out" "(0 downloaded, 2 up to date), 0 B received"
expect_eq "re-run made no file requests" "$(requests '/resolve/\|/cdn/')" "$before"

# A damaged local copy is noticed by its hash and replaced.
printf 'X' | dd of="$DL/b/stories260K.gguf" bs=1 seek=1000 conv=notrunc status=none
out=$(pull acme/tiny --dir "$DL/b" --include '*.gguf')
expect_contains "damaged copy noticed" "$out" "the local copy differs"
cmp -s "$DL/b/stories260K.gguf" "$REPO/stories260K.gguf" && pass "damaged copy replaced" || fail "damaged copy not replaced"

# --- resume: connection cut after 300000 bytes, retried within the same run ----------------
set_control '"faults": [{"file": "stories260K.gguf", "action": "cut", "after": 300000, "times": 1}]'
: > "$LOG"
out=$(pull acme/tiny --dir "$DL/c" --include '*.gguf')
expect_eq "resume in run: exit status" "$?" 0
cmp -s "$DL/c/stories260K.gguf" "$REPO/stories260K.gguf" && pass "resumed file identical" || fail "resumed file differs"
expect_contains "resume in run: retry said" "$out" "transfer closed with $((GGUF_SIZE - 300000)) bytes remaining"
expect_eq "resume in run: server saw the Range request" "$(requests '/cdn/.* range=bytes=300000- auth=no status=206')" 1
[ ! -e "$DL/c/stories260K.gguf.part" ] && pass "no .part left" || fail ".part left behind"

# --- resume in a later run: --retries 0 leaves a .part, the next pull continues it ---------
set_control '"faults": [{"file": "stories260K.gguf", "action": "cut", "after": 300000, "times": 1}]'
: > "$LOG"
expect_error "cut with --retries 0" "transfer closed with [0-9]+ bytes remaining" -- \
  pull acme/tiny --dir "$DL/d" --include '*.gguf' --retries 0
expect_eq ".part keeps what arrived" "$(stat -c %s "$DL/d/stories260K.gguf.part" 2>/dev/null)" 300000
[ ! -e "$DL/d/stories260K.gguf" ] && pass "no final file after the cut" || fail "final file after a cut"
out=$(pull acme/tiny --dir "$DL/d" --include '*.gguf')
expect_eq "later resume: exit status" "$?" 0
expect_contains "later resume: said so" "$out" "resumed at 300.0 kB, sha256 verified"
expect_eq "later resume: Range request answered 206" "$(requests 'range=bytes=300000- auth=no status=206')" 1
cmp -s "$DL/d/stories260K.gguf" "$REPO/stories260K.gguf" && pass "later resume identical" || fail "later resume differs"

# --- a stalled connection times out (no hang) and the next run resumes --------------------
set_control '"faults": [{"file": "stories260K.gguf", "action": "stall", "after": 200000, "seconds": 30, "times": 1}]'
t0=$(date +%s)
expect_error "stall times out" "timed out" -- pull acme/tiny --dir "$DL/e" --include '*.gguf' --retries 0 --timeout 1
elapsed=$(( $(date +%s) - t0 ))
[ "$elapsed" -lt 15 ] && pass "stall detected in ${elapsed} s" || fail "stall took ${elapsed} s"
expect_eq "stalled .part kept" "$(stat -c %s "$DL/e/stories260K.gguf.part" 2>/dev/null)" 200000
pull acme/tiny --dir "$DL/e" --include '*.gguf' > /dev/null
cmp -s "$DL/e/stories260K.gguf" "$REPO/stories260K.gguf" && pass "resume after stall identical" || fail "resume after stall differs"

# --- a server that ignores Range: the .part is replaced from zero --------------------------
set_control '"no_range": true'
mkdir -p "$DL/f"
head -c 100000 "$REPO/stories260K.gguf" > "$DL/f/stories260K.gguf.part"
out=$(pull acme/tiny --dir "$DL/f" --include '*.gguf')
expect_eq "no-range exit status" "$?" 0
expect_contains "no-range restart said" "$out" "starting again from zero"
cmp -s "$DL/f/stories260K.gguf" "$REPO/stories260K.gguf" && pass "no-range file identical" || fail "no-range file differs"

# --- a .part whose prefix is wrong: the hash catches it, and the next run starts clean -----
set_control
mkdir -p "$DL/g"
head -c 200000 /dev/zero > "$DL/g/stories260K.gguf.part"
expect_error "bad prefix caught" "stories260K.gguf: SHA-256 mismatch: expected $GGUF_SHA, got [0-9a-f]{64}" -- \
  pull acme/tiny --dir "$DL/g" --include '*.gguf'
[ ! -e "$DL/g/stories260K.gguf.part" ] && [ ! -e "$DL/g/stories260K.gguf" ] && pass "bad .part removed, no final file" || fail "files left after a bad prefix"
pull acme/tiny --dir "$DL/g" --include '*.gguf' > /dev/null
cmp -s "$DL/g/stories260K.gguf" "$REPO/stories260K.gguf" && pass "clean retry identical" || fail "clean retry differs"

# --- corrupted bodies: hash from the listing, and from X-Linked-ETag without one -----------
set_control '"faults": [{"file": "stories260K.gguf", "action": "corrupt", "after": 5000}]'
expect_error "corrupt body" "stories260K.gguf: SHA-256 mismatch: expected $GGUF_SHA, got [0-9a-f]{64} \(removed" -- \
  pull acme/tiny --dir "$DL/h" --include '*.gguf'
[ ! -e "$DL/h/stories260K.gguf" ] && [ ! -e "$DL/h/stories260K.gguf.part" ] && pass "corrupt: nothing left" || fail "corrupt: file left behind"
set_control '"blobs": false, "faults": [{"file": "stories260K.gguf", "action": "corrupt"}]'
expect_error "corrupt body, hash from X-Linked-ETag" "SHA-256 mismatch: expected $GGUF_SHA" -- \
  pull acme/tiny --dir "$DL/h" --include '*.gguf'
set_control '"blobs": false, "redirect": false'
out=$(pull acme/tiny --dir "$DL/h" --include '*.gguf' --include config.json)
expect_contains "no sizes in listing, direct serve: verified from ETag" "$out" "stories260K.gguf: 1.2 MB downloaded"
expect_contains "header hash checked" "$out" "sha256 verified"
cmp -s "$DL/h/stories260K.gguf" "$REPO/stories260K.gguf" && pass "header-hash download identical" || fail "header-hash download differs"
# config.json's ETag is its git blob id, not a sha256: it must not be taken for one.
cmp -s "$DL/h/config.json" "$REPO/config.json" && pass "small file with git ETag accepted" || fail "config.json with git ETag"

# --- a transient 503 is retried -------------------------------------------------------------
set_control '"faults": [{"file": "config.json", "action": "status", "status": 503, "times": 1}]'
out=$(pull acme/tiny --dir "$DL/i" --include config.json)
expect_eq "503 retried: exit status" "$?" 0
expect_contains "503 retried: said so" "$out" "HTTP 503"

# --- tokens ---------------------------------------------------------------------------------
set_control '"token": "hf_test_secret"'
expect_error "401 without token" "HTTP 401 .*needs a token \(HF_TOKEN" -- pull acme/tiny --dir "$DL/j"
expect_error "401 with a wrong token" "token was refused" -- pull acme/tiny --dir "$DL/j" --token hf_wrong
: > "$LOG"
out=$(HF_TOKEN=hf_test_secret pull acme/tiny --dir "$DL/j")
expect_eq "HF_TOKEN accepted" "$?" 0
expect_eq "token sent on every request" "$(requests 'auth=no')" 0
out=$(pull acme/tiny --dir "$DL/k" --token hf_test_secret --include '*.gguf')
expect_eq "--token accepted" "$?" 0
cmp -s "$DL/k/stories260K.gguf" "$REPO/stories260K.gguf" && pass "private download identical" || fail "private download differs"
set_control

# --- missing things, unreachable servers, bad listings --------------------------------------
expect_error "unknown repository" "acme/absent: repository or revision not found \(HTTP 404" -- pull acme/absent --dir "$DL/l"
expect_error "unknown revision" "repository or revision not found .*Invalid rev id: v9" -- pull acme/tiny --dir "$DL/l" --revision v9
expect_error "bad repository name" "expected ORG/NAME" -- pull 'acme/../etc' --dir "$DL/l"
expect_error "include matching nothing" "no file of acme/tiny matches --include" -- pull acme/tiny --dir "$DL/l" --include '*.bin'
expect_error "GGUF-only repository" "choose among its GGUF files with --include.*stories260K-F32.gguf" -- pull acme/gguf-only --dir "$DL/l"
t0=$(date +%s)
expect_error "connection refused" "cannot download http://127.0.0.1:1/api/models/acme/tiny/.*(Couldn't connect|Failed to connect)" -- \
  pull acme/tiny --dir "$DL/l" --endpoint http://127.0.0.1:1
[ $(( $(date +%s) - t0 )) -lt 10 ] && pass "refused connection fails fast" || fail "refused connection was slow"
set_control '"api_raw": "{\"siblings\": [{\"rfilename\": \"../evil.txt\"}]}"'
expect_error "unsafe path in listing" "siblings\[0\]\.rfilename '../evil.txt' is not a safe relative path" -- \
  pull acme/tiny --dir "$DL/m/inner" --include '*'
[ ! -e "$DL/m/evil.txt" ] && pass "nothing written outside the destination" || fail "wrote outside the destination"
set_control '"api_raw": "{\"siblings\": [}"'
expect_error "malformed listing" "bad JSON at line 1" -- pull acme/tiny --dir "$DL/m"
set_control '"api_raw": "{\"siblings\": [{\"rfilename\": \"a.gguf\", \"lfs\": {\"sha256\": \"xyz\"}}]}"'
expect_error "bad lfs.sha256" "siblings\[0\]\.lfs\.sha256 is not 64 hex digits" -- pull acme/tiny --dir "$DL/m"
set_control

# --- default destination, --dry-run, the progress bar --------------------------------------
out=$(cd "$SCRATCH" && pull acme/tiny --dry-run --include '*.gguf')
expect_contains "dry run lists" "$out" "stories260K.gguf  1.2 MB  (LFS, sha256 known)"
[ ! -e "$SCRATCH/models/acme/tiny/stories260K.gguf" ] && pass "dry run downloads nothing" || fail "dry run downloaded"
(cd "$SCRATCH" && pull acme/tiny -q)
expect_eq "quiet default destination" "$?" 0
cmp -s "$SCRATCH/models/acme/tiny/config.json" "$REPO/config.json" && pass "default destination models/ORG/NAME" || fail "default destination"
set_control '"rate": 2000000'
pull acme/tiny --dir "$DL/n" --include '*.gguf' --progress > /dev/null 2> "$SCRATCH/bar"
bar=$(tr '\r' '\n' < "$SCRATCH/bar")
expect_contains "progress: percent and bar" "$bar" "% [="
expect_contains "progress: bytes of total" "$bar" "/ 1.2 MB"
expect_contains "progress: speed and ETA" "$bar" "/s ETA 0:0"
set_control

finish
