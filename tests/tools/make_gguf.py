#!/usr/bin/env python3
"""Writes small GGUF v3 files for the loader's tests: a tiny valid Llama model, and the same
model broken in one named way (bad magic, absurd counts and lengths, unknown types, bad
shapes, missing tensors or metadata ...). Written from the GGUF specification with the
standard library only, so it shares no code with lowbit's reader.

  make_gguf.py OUT.gguf                      the valid tiny model
  make_gguf.py OUT.gguf --break NAME         the model broken as NAME
  make_gguf.py --all DIR                     DIR/valid.gguf and DIR/NAME.gguf for every break
  make_gguf.py --list                        names of the breaks, one a line
  make_gguf.py OUT.gguf --truncate N         the valid model cut to its first N bytes
  make_gguf.py --sections FILE               offsets of the parts of any GGUF file
  make_gguf.py --mutate SRC OUT --seed S [--count K] [--range A:B ...] [--variants N]
                                             SRC with 1 to K random bytes changed, in byte
                                             ranges picked with equal odds; with --variants,
                                             N files OUT % 0 .. OUT % (N-1)
"""
import random
import struct
import sys

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
              U64: "Q", I64: "q", F64: "d"}
GGML_F32, GGML_Q8_0 = 0, 8

# The tiny model: small enough to write in milliseconds, complete enough to generate text.
DIM, LAYERS, HEADS, KV_HEADS, FFN, CTX = 32, 2, 4, 2, 64, 128
HEAD_DIM = DIM // HEADS
WORDS = ["\u2581", "\u2581a", "\u2581the", "\u2581cat", "\u2581sat", "\u2581on", "\u2581mat",
         "e", "t", "at", "he", "\u2581Once", "\u2581upon", "\u2581time"]


class Model:
    """A GGUF file as data: header fields, key/values and tensors, each of which a break may
    change before the file is encoded."""

    def __init__(self):
        self.magic = b"GGUF"
        self.version = 3
        self.n_tensors = None      # None: the real count
        self.n_kv = None
        self.alignment = 32
        self.kv = []               # [key, type, value]; arrays: (elem_type, items, n or None)
        self.tensors = []          # dicts: name, dims, type, data, offset (None: computed)

    def find_kv(self, key):
        for e in self.kv:
            if e[0] == key:
                return e
        raise KeyError(key)

    def drop_kv(self, key):
        self.kv = [e for e in self.kv if e[0] != key]

    def tensor(self, name):
        for t in self.tensors:
            if t["name"] == name:
                return t
        raise KeyError(name)


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def q8_0_bytes(values):
    """Q8_0 blocks of 32: an fp16 scale then 32 int8 quants."""
    out = b""
    for b in range(0, len(values), 32):
        block = values[b:b + 32]
        amax = max(abs(v) for v in block)
        d = amax / 127 if amax else 0.0
        qs = [int(round(v / d)) if d else 0 for v in block]
        out += struct.pack("<e", d) + struct.pack("<32b", *qs)
    return out


def tiny_model():
    rng = random.Random(1234)
    vocab = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + WORDS
    types = [2, 3, 3] + [6] * 256 + [1] * len(WORDS)
    scores = [0.0] * 259 + [-float(i) for i in range(len(WORDS))]
    m = Model()
    m.kv = [
        ["general.architecture", STR, "llama"],
        ["general.name", STR, "tiny-broken-test"],
        ["general.alignment", U32, 32],
        ["llama.context_length", U32, CTX],
        ["llama.embedding_length", U32, DIM],
        ["llama.feed_forward_length", U32, FFN],
        ["llama.block_count", U32, LAYERS],
        ["llama.attention.head_count", U32, HEADS],
        ["llama.attention.head_count_kv", U32, KV_HEADS],
        ["llama.attention.layer_norm_rms_epsilon", F32, 1e-5],
        ["llama.rope.freq_base", F32, 10000.0],
        ["tokenizer.ggml.model", STR, "llama"],
        ["tokenizer.ggml.tokens", ARR, (STR, vocab, None)],
        ["tokenizer.ggml.scores", ARR, (F32, scores, None)],
        ["tokenizer.ggml.token_type", ARR, (I32, types, None)],
        ["tokenizer.ggml.bos_token_id", U32, 1],
        ["tokenizer.ggml.eos_token_id", U32, 2],
        ["tokenizer.ggml.unknown_token_id", U32, 0],
    ]

    def weight(*dims):
        n = 1
        for d in dims:
            n *= d
        return f32_bytes([rng.uniform(-0.4, 0.4) for _ in range(n)])

    def add(name, dims, data, typ=GGML_F32):
        m.tensors.append({"name": name, "dims": list(dims), "type": typ, "data": data,
                          "offset": None})

    nv = len(vocab)
    add("token_embd.weight", [DIM, nv], weight(DIM, nv))
    add("output_norm.weight", [DIM], f32_bytes([1.0] * DIM))
    add("output.weight", [DIM, nv], weight(DIM, nv))
    kv_dim = KV_HEADS * HEAD_DIM
    for l in range(LAYERS):
        p = "blk.%d." % l
        add(p + "attn_norm.weight", [DIM], f32_bytes([1.0] * DIM))
        add(p + "attn_q.weight", [DIM, DIM], weight(DIM, DIM))
        add(p + "attn_k.weight", [DIM, kv_dim], weight(DIM, kv_dim))
        add(p + "attn_v.weight", [DIM, kv_dim], weight(DIM, kv_dim))
        add(p + "attn_output.weight", [DIM, DIM], weight(DIM, DIM))
        add(p + "ffn_norm.weight", [DIM], f32_bytes([1.0] * DIM))
        add(p + "ffn_gate.weight", [DIM, FFN], weight(DIM, FFN))
        add(p + "ffn_up.weight", [DIM, FFN], weight(DIM, FFN))
        add(p + "ffn_down.weight", [FFN, DIM], weight(FFN, DIM))
    return m


# ---- encoding ------------------------------------------------------------------------------

def enc_str(s, n=None):
    b = s if isinstance(s, bytes) else s.encode("utf-8")
    return struct.pack("<Q", len(b) if n is None else n) + b


def enc_value(t, v):
    if t == STR:
        if isinstance(v, tuple):        # (text, claimed length)
            return enc_str(v[0], v[1])
        return enc_str(v)
    if t == ARR and isinstance(v, bytes):   # a hand-made array header
        return v
    if t == ARR:
        et, items, n = v
        head = struct.pack("<IQ", et, len(items) if n is None else n)
        return head + b"".join(enc_value(et, x) for x in items)
    if t in SCALAR_FMT:
        return struct.pack("<" + SCALAR_FMT[t], v)
    return v                            # a type id GGUF does not define: raw bytes follow


def pad_to(n, a):
    return (n + a - 1) // a * a


def encode(m):
    out = bytearray()
    out += m.magic + struct.pack("<I", m.version)
    out += struct.pack("<QQ", len(m.tensors) if m.n_tensors is None else m.n_tensors,
                       len(m.kv) if m.n_kv is None else m.n_kv)
    for key, t, v in m.kv:
        out += enc_str(key) + struct.pack("<I", t) + enc_value(t, v)
    # Data offsets follow each other, each aligned, unless a break fixed one.
    offsets, pos = [], 0
    for t in m.tensors:
        offsets.append(pos)
        pos = pad_to(pos + len(t["data"]), m.alignment)
    for t, off in zip(m.tensors, offsets):
        dims = t["dims"]
        out += enc_str(t["name"]) + struct.pack("<I", t.get("n_dims", len(dims)))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", t["type"], off if t["offset"] is None else t["offset"])
    out += b"\0" * (pad_to(len(out), m.alignment) - len(out))
    for t in m.tensors:
        out += t["data"]
        out += b"\0" * (pad_to(len(out), m.alignment) - len(out))
    return bytes(out)


# ---- breaks --------------------------------------------------------------------------------
# Each takes the valid model and changes one thing. The shell test pairs each name with the
# part of the error message it must produce.

def set_kv(key, t, v):
    def f(m):
        e = m.find_kv(key)
        e[1], e[2] = t, v
    return f


def set_dims(name, dims, n_dims=None):
    def f(m):
        t = m.tensor(name)
        t["dims"] = dims
        if n_dims is not None:
            t["n_dims"] = n_dims
    return f


def set_field(**kw):
    def f(m):
        for k, v in kw.items():
            setattr(m, k, v)
    return f


def set_tensor(tname, **kw):
    def f(m):
        m.tensor(tname).update(kw)
    return f


def drop_tensor(name):
    def f(m):
        m.tensors = [t for t in m.tensors if t["name"] != name]
    return f


def drop_kv(key):
    return lambda m: m.drop_kv(key)


def dup_tensor(m):
    t = dict(m.tensor("blk.1.attn_q.weight"))
    t["name"] = "blk.0.attn_q.weight"
    m.tensor("blk.1.attn_q.weight").update(t)


def dup_kv(m):
    m.kv.append(["llama.embedding_length", U32, DIM])


def offset_past_end(m):
    m.tensor("blk.1.ffn_down.weight")["offset"] = 1 << 20


def offset_huge(m):
    m.tensor("blk.0.attn_k.weight")["offset"] = (1 << 64) - 32


def misaligned(m):
    m.tensor("blk.0.attn_v.weight")["offset"] = None
    # Encode once to learn the real offset, then move it off the 32-byte grid.
    data = encode(m)
    off = struct.unpack_from("<Q", data, tensor_info_offsets(data)["blk.0.attn_v.weight"])[0]
    m.tensor("blk.0.attn_v.weight")["offset"] = off + 4


def alignment_odd(m):
    # general.alignment 1 is legal, but then an F32 tensor can start at an odd file offset;
    # lowbit must refuse to read floats there. Lengthen the name until the data is odd.
    m.alignment = 1
    m.find_kv("general.alignment")[2] = 1
    for extra in range(8):
        m.find_kv("general.name")[2] = "tiny" + "x" * extra
        if sections(encode(m))["data"] % 4:
            return


def norm_q8(name):
    def f(m):
        t = m.tensor(name)
        t["type"] = GGML_Q8_0
        t["data"] = q8_0_bytes([1.0] * DIM)
    return f


def short_scores(m):
    e = m.find_kv("tokenizer.ggml.scores")
    e[2] = (F32, e[2][1][:10], None)


def tokens_as_ints(m):
    e = m.find_kv("tokenizer.ggml.tokens")
    e[2] = (I32, list(range(len(e[2][1]))), None)


def huge_string(m):
    m.find_kv("general.name")[2] = ("tiny", 1 << 63)


def huge_array(elem):
    def f(m):
        key = "tokenizer.ggml.tokens" if elem == STR else "tokenizer.ggml.scores"
        e = m.find_kv(key)
        e[2] = (e[2][0], e[2][1], 1 << 60)
    return f


def claimed_string(n):
    def f(m):
        m.find_kv("general.name")[2] = ("tiny", n)
    return f


def claimed_tokens(n):
    def f(m):
        e = m.find_kv("tokenizer.ggml.tokens")
        e[2] = (e[2][0], e[2][1], n)
    return f


def unknown_value_type(m):
    m.kv.insert(3, ["general.mystery", 13, struct.pack("<I", 7)])


def unknown_array_type(m):
    m.kv.insert(3, ["general.mystery", ARR, struct.pack("<IQ", 42, 1) + b"\0" * 8])


def nested_array_bomb(m):
    # An array of 2^40 arrays: the count must be checked before anything is walked.
    m.kv.insert(3, ["general.nested", ARR, struct.pack("<IQ", ARR, 1 << 40)])


BREAKS = {
    "magic": set_field(magic=b"GGUX"),
    "version1": set_field(version=1),
    "version4": set_field(version=4),
    "tensor_count_huge": set_field(n_tensors=1 << 62),
    "kv_count_huge": set_field(n_kv=1 << 62),
    "kv_count_short": set_field(n_kv=5),
    "string_len_huge": huge_string,
    "key_len_huge": None,               # encoded by hand, see encode_break
    "array_len_huge_strings": huge_array(STR),
    "array_len_huge_floats": huge_array(F32),
    "nested_array_huge": nested_array_bomb,
    "unknown_value_type": unknown_value_type,
    "unknown_array_type": unknown_array_type,
    "tensor_type_99": set_tensor("blk.0.attn_q.weight", type=99),
    "tensor_type_q5_k": set_tensor("blk.0.attn_q.weight", type=13),
    "n_dims_0": set_dims("blk.0.attn_k.weight", [], 0),
    "n_dims_5": set_dims("blk.0.attn_k.weight", [32, 16, 1, 1, 1]),
    "dim_zero": set_dims("blk.0.attn_k.weight", [32, 0]),
    "dim_huge": set_dims("blk.0.attn_k.weight", [32, 1 << 62]),
    "dims_overflow": set_dims("blk.0.attn_k.weight", [1 << 32, 1 << 32, 1 << 32]),
    "elements_2e60": set_dims("blk.0.attn_k.weight", [1 << 20, 1 << 20, 1 << 20]),
    "elements_2e60_4d": set_dims("blk.0.attn_k.weight", [1 << 15, 1 << 15, 1 << 15, 1 << 15]),
    "dims_wrap_zero": set_dims("blk.0.attn_k.weight", [1 << 40, 1 << 40, 1 << 40, 1 << 40]),
    "elements_max_past_end": set_dims("blk.0.attn_k.weight", [1 << 25, 1 << 25]),
    "string_len_past_end": claimed_string(1 << 40),
    "array_len_past_end": claimed_tokens(1 << 32),
    "tensor_count_past_end": set_field(n_tensors=1 << 24),
    "kv_count_past_end": set_field(n_kv=1 << 24),
    "offset_past_end": offset_past_end,
    "offset_huge": offset_huge,
    "offset_misaligned": misaligned,
    "alignment_odd_data": alignment_odd,
    "alignment_not_pow2": set_kv("general.alignment", U32, 48),
    "alignment_zero": set_kv("general.alignment", U32, 0),
    "alignment_string": set_kv("general.alignment", STR, "32"),
    "duplicate_tensor": dup_tensor,
    "duplicate_key": dup_kv,
    "shape_attn_q": set_dims("blk.0.attn_q.weight", [DIM, 16]),
    "shape_embd_vocab": set_dims("token_embd.weight", [DIM, 100]),
    "missing_ffn_down": drop_tensor("blk.0.ffn_down.weight"),
    "missing_token_embd": drop_tensor("token_embd.weight"),
    "missing_embedding_length": drop_kv("llama.embedding_length"),
    "missing_architecture": drop_kv("general.architecture"),
    "missing_tokens": drop_kv("tokenizer.ggml.tokens"),
    "embedding_length_string": set_kv("llama.embedding_length", STR, "32"),
    "embedding_length_negative": set_kv("llama.embedding_length", I32, -32),
    "architecture_unknown": set_kv("general.architecture", STR, "mamba"),
    "architecture_newline": set_kv("general.architecture", STR, "lla\nma"),
    "head_count_zero": set_kv("llama.attention.head_count", U32, 0),
    "head_count_not_divisor": set_kv("llama.attention.head_count", U32, 5),
    "head_count_kv_not_divisor": set_kv("llama.attention.head_count_kv", U32, 3),
    "block_count_huge": set_kv("llama.block_count", U32, 10 ** 9),
    "block_count_zero": set_kv("llama.block_count", U32, 0),
    "context_length_zero": set_kv("llama.context_length", U32, 0),
    "rope_freq_base_negative": set_kv("llama.rope.freq_base", F32, -1.0),
    "norm_eps_nan": set_kv("llama.attention.layer_norm_rms_epsilon", F32, float("nan")),
    "tokens_wrong_type": tokens_as_ints,
    "tokenizer_model_unknown": set_kv("tokenizer.ggml.model", STR, "wordpiece"),
    "bos_outside_vocab": set_kv("tokenizer.ggml.bos_token_id", U32, 100000),
    "scores_short": short_scores,
    "output_norm_q8_0": norm_q8("output_norm.weight"),
    "attn_norm_q8_0": norm_q8("blk.0.attn_norm.weight"),
    "tensor_name_empty": set_tensor("blk.0.attn_k.weight", name=""),
}


def encode_break(name):
    m = tiny_model()
    if name == "key_len_huge":
        data = bytearray(encode(m))
        # The second key's length field sits right after the first key/value.
        first = 24 + 8 + len("general.architecture") + 4 + 8 + len("llama")
        struct.pack_into("<Q", data, first, 1 << 63)
        return bytes(data)
    BREAKS[name](m)
    return encode(m)


# ---- reading back (offsets for truncation and mutation) -----------------------------------

def skip_value(data, pos, t):
    if t == STR:
        return pos + 8 + struct.unpack_from("<Q", data, pos)[0]
    if t == ARR:
        et, n = struct.unpack_from("<IQ", data, pos)
        pos += 12
        if et in SCALAR_FMT:
            return pos + n * struct.calcsize("<" + SCALAR_FMT[et])
        for _ in range(n):
            pos = skip_value(data, pos, et)
        return pos
    return pos + struct.calcsize("<" + SCALAR_FMT[t])


def walk(data):
    """Offsets of each key/value and tensor info, and where the data starts."""
    n_tensors, n_kv = struct.unpack_from("<QQ", data, 8)
    pos, kvs, infos, alignment = 24, [], {}, 32
    for _ in range(n_kv):
        klen = struct.unpack_from("<Q", data, pos)[0]
        key = data[pos + 8:pos + 8 + klen].decode("utf-8", "replace")
        kvs.append((key, pos))
        t = struct.unpack_from("<I", data, pos + 8 + klen)[0]
        vpos = pos + 12 + klen
        if key == "general.alignment" and t == U32:
            alignment = struct.unpack_from("<I", data, vpos)[0]
        pos = skip_value(data, vpos, t)
    kv_end = pos
    for _ in range(n_tensors):
        nlen = struct.unpack_from("<Q", data, pos)[0]
        name = data[pos + 8:pos + 8 + nlen].decode("utf-8", "replace")
        nd = struct.unpack_from("<I", data, pos + 8 + nlen)[0]
        off_pos = pos + 12 + nlen + 8 * nd + 4
        infos[name] = off_pos
        pos = off_pos + 8
    return {"kvs": kvs, "kv_end": kv_end, "infos": infos, "infos_end": pos,
            "data": pad_to(pos, alignment), "size": len(data)}


def tensor_info_offsets(data):
    """Where each tensor's 8-byte data offset field sits."""
    return walk(data)["infos"]


def sections(data):
    return walk(data)


# ---- command line --------------------------------------------------------------------------

def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main(argv):
    if argv[:1] == ["--list"]:
        print("\n".join(BREAKS))
        return 0
    if argv[:1] == ["--all"] and len(argv) == 2:
        write(argv[1] + "/valid.gguf", encode(tiny_model()))
        for name in BREAKS:
            write("%s/%s.gguf" % (argv[1], name), encode_break(name))
        return 0
    if argv[:1] == ["--sections"] and len(argv) == 2:
        with open(argv[1], "rb") as f:
            s = walk(f.read())
        print("header 24")
        print("kv_end %d" % s["kv_end"])
        print("infos_end %d" % s["infos_end"])
        print("data %d" % s["data"])
        print("size %d" % s["size"])
        return 0
    if argv[:1] == ["--mutate"]:
        src, out = argv[1], argv[2]
        seed, count, variants, ranges = 0, 1, None, []
        rest = argv[3:]
        while len(rest) >= 2:
            opt, val, rest = rest[0], rest[1], rest[2:]
            if opt == "--seed":
                seed = int(val)
            elif opt == "--count":
                count = int(val)
            elif opt == "--variants":
                variants = int(val)
            elif opt == "--range":
                a, b = val.split(":")
                ranges.append((int(a), int(b)))
        with open(src, "rb") as f:
            original = f.read()
        ranges = ranges or [(0, len(original))]
        for v in range(variants or 1):
            # Each variant has its own generator, so one can be remade alone from its number.
            rng = random.Random(seed * 1000003 + v)
            data = bytearray(original)
            for _ in range(rng.randint(1, count)):
                a, b = rng.choice(ranges)
                i = rng.randrange(a, b)
                data[i] ^= rng.randrange(1, 256)
            write(out % v if variants else out, bytes(data))
        return 0
    if len(argv) == 1:
        write(argv[0], encode(tiny_model()))
        return 0
    if len(argv) == 3 and argv[1] == "--break":
        write(argv[0], encode_break(argv[2]))
        return 0
    if len(argv) == 3 and argv[1] == "--truncate":
        write(argv[0], encode(tiny_model())[:int(argv[2])])
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
