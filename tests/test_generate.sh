#!/usr/bin/env bash
# Greedy generation from BOS prints the documented TinyStories text.
source "$(dirname "$0")/lib.sh"

EXPECTED="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high."

out=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 61 --temp 0 2>/dev/null)
expect_eq "gguf greedy text" "$out" "$EXPECTED"

out=$(LOWBIT_KERNELS=scalar "$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 61 --temp 0 2>/dev/null)
expect_eq "gguf greedy text, portable kernels" "$out" "$EXPECTED"

out=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 61 --temp 0 --threads 1 2>/dev/null)
expect_eq "gguf greedy text, one thread" "$out" "$EXPECTED"

# Seeded sampling repeats exactly; a different seed gives different text.
a=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 40 --temp 1 --seed 7 2>/dev/null)
b=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 40 --temp 1 --seed 7 2>/dev/null)
c=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 40 --temp 1 --seed 8 2>/dev/null)
expect_eq "same seed, same text" "$a" "$b"
[ "$a" != "$c" ] && pass "different seed, different text" || fail "seeds 7 and 8 gave the same text"

# A prompt continues; a stop string ends the text before it.
out=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -p "Once upon a time" -n 60 --temp 0 --stop "Lily" 2>/dev/null)
expect_eq "stop string" "$out" "Once upon a time, there was a little girl named "

json=$("$BIN" generate -m "$SHARED/models/stories260K.gguf" -n 20 --temp 0 --json)
expect_contains "json output" "$json" '"generated_tokens": 20'
expect_contains "json text" "$json" '"text": "Once upon a time'

finish
