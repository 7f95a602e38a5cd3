#!/usr/bin/python3
"""Reference SentencePiece ids for lowbit's differential test (tests/test_tokenizer_spm_ref.c).

Usage: /usr/bin/python3 spm_ref.py MODEL TEXT_FILE HEX_FILE TRAIN_TEXT

Prints, in this order:
  1. for every line of TEXT_FILE, one line of space-separated ids: the line is split off at
     "\\n" and encoded WITHOUT its newline and without BOS (a final "\\n" does not start an
     extra empty line);
  2. "WHOLE" followed by the ids of the whole file encoded as one string (newlines included);
  3. "EXTRA", then the ids of each line of HEX_FILE, a line being the hex of a UTF-8 string
     (so the strings may hold newlines and tabs);
  4. three vocabulary variants, each as
       "VARIANT name n_pieces unk_id bos_id eos_id add_dummy_prefix byte_fallback",
       n_pieces lines "hex(piece) score type" (types numbered as SentencePiece and GGUF do:
       1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte),
       then the ids of every HEX_FILE string and of the first WIKI_LINES lines of TEXT_FILE:
     - "unused": MODEL with its vocabulary restricted (set_vocabulary) to two thirds of the
       pieces, so the others are UNUSED and get split back into the pieces they merge from;
     - "userdef": a small BPE model trained here on TRAIN_TEXT with byte fallback,
       user-defined symbols, and control symbols that common pairs ("he", "\u2581t") would
       merge into were they normal pieces;
     - "nofallback": a small BPE model without byte fallback (unknown text is <unk>) and
       without the dummy prefix.

The ids come from Debian's python3-sentencepiece. A missing package is an error (exit 3),
never a silent skip: CI installs it.
"""
import io
import sys

WIKI_LINES = 1000


def ids_line(ids):
    return " ".join(map(str, ids)) + "\n"


def piece_type(sp, i, user_defined, was_byte):
    if was_byte and was_byte[i]:
        return 6
    if sp.is_unknown(i):
        return 2
    if sp.is_control(i):
        return 3
    if sp.is_unused(i):
        return 5
    if sp.is_byte(i):
        return 6
    return 4 if sp.id_to_piece(i) in user_defined else 1


def write_variant(out, name, sp, user_defined, dummy_prefix, byte_fallback, texts,
                  was_byte=None):
    n = sp.get_piece_size()
    out.write("VARIANT %s %d %d %d %d %d %d\n" % (name, n, sp.unk_id(), sp.bos_id(), sp.eos_id(),
                                                   int(dummy_prefix), int(byte_fallback)))
    for i in range(n):
        out.write("%s %r %d\n" % (sp.id_to_piece(i).encode("utf-8").hex(), sp.get_score(i),
                                  piece_type(sp, i, user_defined, was_byte)))
    for ids in sp.encode(texts):
        out.write(ids_line(ids))


def train(sentencepiece, lines, **options):
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, model_type="bpe",
        normalization_rule_name="identity", remove_extra_whitespaces=False, minloglevel=2,
        num_threads=1, **options)
    return sentencepiece.SentencePieceProcessor(model_proto=model.getvalue())


def main():
    if len(sys.argv) != 5:
        print("usage: spm_ref.py MODEL TEXT_FILE HEX_FILE TRAIN_TEXT", file=sys.stderr)
        return 2
    try:
        import sentencepiece
    except ImportError as e:
        print("spm_ref.py: the python package sentencepiece is missing (apt-get install "
              "python3-sentencepiece, run with /usr/bin/python3): %s" % e, file=sys.stderr)
        return 3
    model_path, text_path, hex_path, train_path = sys.argv[1:]
    sp = sentencepiece.SentencePieceProcessor(model_file=model_path)
    with open(text_path, "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    with open(hex_path, "r", encoding="ascii") as f:
        extra = [bytes.fromhex(h.strip()).decode("utf-8") for h in f]
    with open(train_path, "rb") as f:
        train_lines = f.read().decode("utf-8").split("\n")[:3000]

    out = sys.stdout
    for ids in sp.encode(lines):
        out.write(ids_line(ids))
    out.write("WHOLE " + ids_line(sp.encode(text)))
    out.write("EXTRA\n")
    for ids in sp.encode(extra):
        out.write(ids_line(ids))

    texts = extra + lines[:WIKI_LINES]
    # set_vocabulary retypes every piece it keeps as NORMAL, byte pieces included, although
    # they stay byte-fallback pieces inside the processor (its lookup tables are built at load
    # time): take the byte type from before.
    was_byte = [sp.is_byte(i) for i in range(sp.get_piece_size())]
    sp.set_vocabulary([sp.id_to_piece(i) for i in range(sp.get_piece_size()) if i % 3])
    write_variant(out, "unused", sp, set(), True, True, texts, was_byte)

    user = ["<|user|>", "<|", "@-@", "\u2581\u2581", "he said", "ab", "\u2581the\u2581"]
    sp = train(sentencepiece, train_lines, vocab_size=600, byte_fallback=True,
               user_defined_symbols=user, control_symbols=["<ctl>", "he", "\u2581t", "ou"])
    write_variant(out, "userdef", sp, set(user), True, True, texts)

    user = ["@-@", "\u2581=\u2581"]
    sp = train(sentencepiece, train_lines, vocab_size=300, byte_fallback=False,
               add_dummy_prefix=False, user_defined_symbols=user)
    write_variant(out, "nofallback", sp, set(user), False, False, texts)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
