#!/usr/bin/python3
"""Tiny random-weight Hugging Face checkpoints and their logits, computed independently.

    hf_reference.py OUTDIR [GPT2_VOCAB_DIR]   good checkpoints, each with reference.json +
                                              logits.bin (with GPT2_VOCAB_DIR, also one over
                                              GPT-2's real vocab.json + merges.txt)
    hf_reference.py --broken OUTDIR           damaged checkpoints for the error tests

Each good checkpoint is a directory in the layout transformers writes (config.json,
model.safetensors or shards + model.safetensors.index.json, tokenizer.json). The safetensors
bytes are written by hand (8-byte little-endian header length, JSON header, data), and the
logits come from a straightforward numpy implementation of each architecture as transformers
defines it (GPT-2: LayerNorm, Conv1D x @ W + b, gelu_new; Llama/Qwen2: RMSNorm, rotate-half
RoPE with optional llama3 frequency scaling, grouped-query attention, SwiGLU), in float64 from
the weights exactly as stored (after rounding to F16/BF16). Only numpy is needed.
"""
import json
import math
import os
import shutil
import struct
import sys

import numpy as np

TOKENS = [3, 256, 104, 299, 0, 42, 262]   # 299 is past the tokenizer: a padded embedding row
VOCAB = 300
ENCODE_TEXT = "hello world, hello"

# ---- safetensors ---------------------------------------------------------------------------


def to_bf16_bits(a):
    """float32 → bfloat16 bit patterns, rounding to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return bits.astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


class Checkpoint:
    """Collects tensors in a dtype; add() returns the value as stored, in float64."""

    def __init__(self, dtype="F32"):
        self.dtype = dtype
        self.tensors = {}   # name → (dtype string, raw little-endian array)

    def add(self, name, value, dtype=None):
        dtype = dtype or self.dtype
        value = np.asarray(value, dtype=np.float32)
        if dtype == "F32":
            raw = value.astype("<f4")
            stored = raw.astype(np.float64)
        elif dtype == "F16":
            raw = value.astype("<f2")
            stored = raw.astype(np.float64)
        elif dtype == "BF16":
            raw = to_bf16_bits(value).astype("<u2")
            stored = from_bf16_bits(raw).astype(np.float64)
        else:
            raise ValueError(dtype)
        self.tensors[name] = (dtype, raw)
        return stored

    def add_raw(self, name, dtype, raw):
        self.tensors[name] = (dtype, raw)


def safetensors_bytes(tensors, metadata=None, align=8, odd=False):
    """The file's bytes for name → (dtype, array); the header is padded with spaces to a
    multiple of align, or (odd) to an odd length, which leaves the data unaligned."""
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, (dtype, raw) in tensors.items():
        data = np.ascontiguousarray(raw).tobytes()
        header[name] = {"dtype": dtype, "shape": list(raw.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((-len(text)) % align if not odd else 1 - len(text) % 2)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")

# ---- a tiny byte-level BPE tokenizer -------------------------------------------------------


def byte_alphabet():
    """GPT-2's byte → printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + \
        list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), ("Ġ", "w"), ("o", "r"),
          ("Ġw", "or"), ("l", "d"), ("Ġwor", "ld"), ("Ġ", "h")]


def tokenizer_vocab():
    alpha = byte_alphabet()
    vocab = {alpha[b]: b for b in range(256)}
    for left, right in MERGES:
        vocab[left + right] = len(vocab)
    return vocab


def bpe_encode(text):
    """Reference encoding of plain ASCII words: GPT-2 splits before each space-led word and
    punctuation run; each piece merges its best-ranked pair until none applies."""
    alpha, vocab = byte_alphabet(), tokenizer_vocab()
    ranks = {pair: i for i, pair in enumerate(MERGES)}
    pieces, cur = [], ""
    for ch in text:
        starts = ch == " " or (cur and (cur[-1].isalpha() != ch.isalpha()) and cur.strip())
        if cur and starts:
            pieces.append(cur)
            cur = ""
        cur += ch
    pieces.append(cur)
    ids = []
    for piece in pieces:
        parts = [alpha[b] for b in piece.encode()]
        while len(parts) > 1:
            best = min(range(len(parts) - 1),
                       key=lambda i: ranks.get((parts[i], parts[i + 1]), 1 << 30))
            if (parts[best], parts[best + 1]) not in ranks:
                break
            parts[best:best + 2] = [parts[best] + parts[best + 1]]
        ids += [vocab[p] for p in parts]
    return ids


def write_tokenizer(d, vocab_files=False):
    """tokenizer.json (and optionally GPT-2's vocab.json + merges.txt) for the tiny BPE."""
    vocab = tokenizer_vocab()
    eot = len(vocab)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
    tok = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "single_word": False,
                          "lstrip": False, "rstrip": False, "normalized": True,
                          "special": True}],
        "normalizer": None, "pre_tokenizer": byte_level, "post_processor": byte_level,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                  "merges": [f"{a} {b}" for a, b in MERGES]},
    }
    write_json(os.path.join(d, "tokenizer.json"), tok)
    if vocab_files:
        write_json(os.path.join(d, "vocab.json"), dict(vocab, **{"<|endoftext|>": eot}))
        with open(os.path.join(d, "merges.txt"), "w") as f:
            f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    return eot + 1

# ---- reference forward passes --------------------------------------------------------------


def softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def causal_attention(q, k, v):
    """q [T, H, d], k/v [T, H, d] (already repeated for grouped heads) → [T, H*d]."""
    t, h, d = q.shape
    scores = np.einsum("thd,shd->hts", q, k) / math.sqrt(d)
    mask = np.triu(np.ones((t, t), dtype=bool), 1)
    scores[:, mask] = -np.inf
    out = np.einsum("hts,shd->thd", softmax(scores), v)
    return out.reshape(t, h * d)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope_inv_freq(head_dim, theta, scaling):
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    if not scaling:
        return inv
    factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    orig = scaling["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    scaled = np.where(wavelen > orig / lo, inv / factor, inv)
    smooth = (orig / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= orig / hi) & (wavelen <= orig / lo)
    return np.where(medium, smoothed, scaled)


def rotate_half_rope(x, inv_freq):
    """x [T, H, d]; HF's apply_rotary_pos_emb with rotate_half."""
    t = x.shape[0]
    ang = np.arange(t, dtype=np.float64)[:, None] * inv_freq[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
    half = x.shape[-1] // 2
    rot = np.concatenate([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


def gpt2_logits(w, cfg, tokens):
    e, nh = cfg["n_embd"], cfg["n_head"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    x = w["wte"][tokens] + w["wpe"][np.arange(len(tokens))]
    for lw in w["layers"]:
        h = layer_norm(x, lw["ln_1.w"], lw["ln_1.b"], eps)
        qkv = h @ lw["c_attn.w"] + lw["c_attn.b"]
        q, k, v = (a.reshape(len(tokens), nh, e // nh) for a in np.split(qkv, 3, axis=-1))
        x = x + causal_attention(q, k, v) @ lw["c_proj.w"] + lw["c_proj.b"]
        h = layer_norm(x, lw["ln_2.w"], lw["ln_2.b"], eps)
        x = x + gelu_new(h @ lw["c_fc.w"] + lw["c_fc.b"]) @ lw["mlp_proj.w"] + lw["mlp_proj.b"]
    return layer_norm(x, w["ln_f.w"], w["ln_f.b"], eps) @ w["wte"].T


def llama_logits(w, cfg, tokens, rope_scaling="config"):
    nh, nkv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg.get("head_dim", cfg["hidden_size"] // nh)
    eps = cfg["rms_norm_eps"]
    scaling = cfg.get("rope_scaling") if rope_scaling == "config" else None
    inv = rope_inv_freq(hd, cfg.get("rope_theta", 10000.0), scaling)
    t = len(tokens)
    x = w["embed"][tokens]
    for lw in w["layers"]:
        h = rms_norm(x, lw["in_norm"], eps)
        q = (h @ lw["q"].T + lw.get("q_b", 0)).reshape(t, nh, hd)
        k = (h @ lw["k"].T + lw.get("k_b", 0)).reshape(t, nkv, hd)
        v = (h @ lw["v"].T + lw.get("v_b", 0)).reshape(t, nkv, hd)
        q, k = rotate_half_rope(q, inv), rotate_half_rope(k, inv)
        rep = nh // nkv
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        x = x + causal_attention(q, k, v) @ lw["o"].T
        h = rms_norm(x, lw["post_norm"], eps)
        g = h @ lw["gate"].T
        x = x + (g / (1 + np.exp(-g)) * (h @ lw["up"].T)) @ lw["down"].T
    head = w["lm_head"] if "lm_head" in w else w["embed"]
    return rms_norm(x, w["norm"], eps) @ head.T

# ---- the checkpoints -----------------------------------------------------------------------


def randn(rng, *shape, scale=0.1):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def norm_weight(rng, n):
    return (1.0 + rng.standard_normal(n) * 0.1).astype(np.float32)


def build_gpt2(rng, cfg, ck, prefix=""):
    e, v, p = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"]
    f = cfg.get("n_inner") or 4 * e
    w = {"wte": ck.add(prefix + "wte.weight", randn(rng, v, e, scale=0.3)),
         "wpe": ck.add(prefix + "wpe.weight", randn(rng, p, e, scale=0.3)), "layers": []}
    for i in range(cfg["n_layer"]):
        n = f"{prefix}h.{i}."
        lw = {
            "ln_1.w": ck.add(n + "ln_1.weight", norm_weight(rng, e)),
            "ln_1.b": ck.add(n + "ln_1.bias", randn(rng, e)),
            # Conv1D stores [in][out].
            "c_attn.w": ck.add(n + "attn.c_attn.weight", randn(rng, e, 3 * e, scale=0.2)),
            "c_attn.b": ck.add(n + "attn.c_attn.bias", randn(rng, 3 * e)),
            "c_proj.w": ck.add(n + "attn.c_proj.weight", randn(rng, e, e)),
            "c_proj.b": ck.add(n + "attn.c_proj.bias", randn(rng, e)),
            "ln_2.w": ck.add(n + "ln_2.weight", norm_weight(rng, e)),
            "ln_2.b": ck.add(n + "ln_2.bias", randn(rng, e)),
            "c_fc.w": ck.add(n + "mlp.c_fc.weight", randn(rng, e, f)),
            "c_fc.b": ck.add(n + "mlp.c_fc.bias", randn(rng, f)),
            "mlp_proj.w": ck.add(n + "mlp.c_proj.weight", randn(rng, f, e)),
            "mlp_proj.b": ck.add(n + "mlp.c_proj.bias", randn(rng, e)),
        }
        # The causal-mask buffers old GPT-2 checkpoints carry; the loader must skip them.
        ck.add_raw(n + "attn.bias", "F32", np.tril(np.ones((1, 1, p, p), dtype="<f4")))
        ck.add_raw(n + "attn.masked_bias", "F32", np.array(-1e4, dtype="<f4"))
        w["layers"].append(lw)
    w["ln_f.w"] = ck.add(prefix + "ln_f.weight", norm_weight(rng, e))
    w["ln_f.b"] = ck.add(prefix + "ln_f.bias", randn(rng, e))
    return w


def build_llama(rng, cfg, ck, biases=False):
    d, v, f = cfg["hidden_size"], cfg["vocab_size"], cfg["intermediate_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim", d // nh)
    w = {"embed": ck.add("model.embed_tokens.weight", randn(rng, v, d, scale=0.5)), "layers": []}
    for i in range(cfg["num_hidden_layers"]):
        n = f"model.layers.{i}."
        lw = {
            "in_norm": ck.add(n + "input_layernorm.weight", norm_weight(rng, d)),
            "q": ck.add(n + "self_attn.q_proj.weight", randn(rng, nh * hd, d, scale=0.25)),
            "k": ck.add(n + "self_attn.k_proj.weight", randn(rng, nkv * hd, d, scale=0.25)),
            "v": ck.add(n + "self_attn.v_proj.weight", randn(rng, nkv * hd, d, scale=0.2)),
            "o": ck.add(n + "self_attn.o_proj.weight", randn(rng, d, nh * hd)),
        }
        if biases:
            lw["q_b"] = ck.add(n + "self_attn.q_proj.bias", randn(rng, nh * hd, scale=0.3))
            lw["k_b"] = ck.add(n + "self_attn.k_proj.bias", randn(rng, nkv * hd, scale=0.3))
            lw["v_b"] = ck.add(n + "self_attn.v_proj.bias", randn(rng, nkv * hd, scale=0.3))
        lw["post_norm"] = ck.add(n + "post_attention_layernorm.weight", norm_weight(rng, d))
        lw["gate"] = ck.add(n + "mlp.gate_proj.weight", randn(rng, f, d, scale=0.2))
        lw["up"] = ck.add(n + "mlp.up_proj.weight", randn(rng, f, d, scale=0.2))
        lw["down"] = ck.add(n + "mlp.down_proj.weight", randn(rng, d, f))
        w["layers"].append(lw)
    w["norm"] = ck.add("model.norm.weight", norm_weight(rng, d))
    if not cfg.get("tie_word_embeddings", True):
        w["lm_head"] = ck.add("lm_head.weight", randn(rng, v, d, scale=0.5))
    return w


def write_reference(d, cfg, logits, tok_vocab, expect, encode=None):
    logits = np.asarray(logits, dtype="<f8")
    assert logits.shape == (len(TOKENS), cfg["vocab_size"])
    write_file(os.path.join(d, "logits.bin"), logits.tobytes())
    text, ids = encode or (ENCODE_TEXT, bpe_encode(ENCODE_TEXT))
    ref = {"tokens": TOKENS, "vocab_size": cfg["vocab_size"], "tokenizer_tokens": tok_vocab,
           "encode_text": text, "encode_ids": ids,
           "logits_file": "logits.bin", "expect": expect}
    write_json(os.path.join(d, "reference.json"), ref)


def make_gpt2(out):
    d = os.path.join(out, "gpt2")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function":
           "gelu_new", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": None,
           "n_positions": 64, "n_ctx": 64, "layer_norm_epsilon": 1e-5, "vocab_size": VOCAB,
           "bos_token_id": 266, "eos_token_id": 266, "torch_dtype": "float32"}
    ck = Checkpoint("F32")
    w = build_gpt2(rng, cfg, ck)
    write_file(os.path.join(d, "model.safetensors"),
               safetensors_bytes(ck.tensors, {"format": "pt"}))
    write_json(os.path.join(d, "config.json"), cfg)
    n_tok = write_tokenizer(d, vocab_files=True)
    write_reference(d, cfg, gpt2_logits(w, cfg, TOKENS), n_tok,
                    {"arch": "gpt2", "dim": 64, "layers": 2, "heads": 4, "kv_heads": 4,
                     "head_dim": 16, "ffn": 256, "context": 64, "rope_style": "none"})


def make_gpt2_f16(out):
    """distilgpt2-style: "transformer." prefix, F16 throughout (norms too), a stored lm_head
    equal to wte, tie_word_embeddings left to its default, n_inner given."""
    d = os.path.join(out, "gpt2_f16_prefixed")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(2)
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 32,
           "n_layer": 3, "n_head": 2, "n_inner": 80, "n_positions": 32, "vocab_size": VOCAB,
           "layer_norm_epsilon": 1e-5}
    ck = Checkpoint("F16")
    w = build_gpt2(rng, cfg, ck, prefix="transformer.")
    ck.add_raw("lm_head.weight", *ck.tensors["transformer.wte.weight"])
    write_file(os.path.join(d, "model.safetensors"), safetensors_bytes(ck.tensors))
    write_json(os.path.join(d, "config.json"), cfg)
    n_tok = write_tokenizer(d)
    write_reference(d, cfg, gpt2_logits(w, cfg, TOKENS), n_tok,
                    {"arch": "gpt2", "dim": 32, "layers": 3, "heads": 2, "kv_heads": 2,
                     "head_dim": 16, "ffn": 80, "context": 32, "rope_style": "none"})


def make_qwen2(out):
    d = os.path.join(out, "qwen2")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(3)
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
           "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
           "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None,
           "tie_word_embeddings": False, "use_sliding_window": False, "vocab_size": VOCAB,
           "torch_dtype": "float32"}
    ck = Checkpoint("F32")
    w = build_llama(rng, cfg, ck, biases=True)
    write_file(os.path.join(d, "model.safetensors"), safetensors_bytes(ck.tensors))
    write_json(os.path.join(d, "config.json"), cfg)
    n_tok = write_tokenizer(d)
    write_reference(d, cfg, llama_logits(w, cfg, TOKENS), n_tok,
                    {"arch": "qwen2", "dim": 64, "layers": 2, "heads": 4, "kv_heads": 2,
                     "head_dim": 16, "ffn": 96, "context": 128, "rope_style": "half",
                     "rope_theta": 1e6})


def make_llama_tied_bf16(out):
    """Llama 3.2-style: tied embeddings, BF16 (norms too), llama3 rope_scaling, and a head_dim
    that is not hidden_size / heads."""
    d = os.path.join(out, "llama_tied_bf16")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(4)
    scaling = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "hidden_size": 48, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
           "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
           "rope_scaling": scaling, "tie_word_embeddings": True, "vocab_size": VOCAB,
           "attention_bias": False, "mlp_bias": False, "torch_dtype": "bfloat16"}
    ck = Checkpoint("BF16")
    w = build_llama(rng, cfg, ck)
    write_file(os.path.join(d, "model.safetensors"), safetensors_bytes(ck.tensors))
    write_json(os.path.join(d, "config.json"), cfg)
    n_tok = write_tokenizer(d)
    logits = llama_logits(w, cfg, TOKENS)
    # The scaling must matter at these positions, or the test could not see it missing.
    unscaled = llama_logits(w, cfg, TOKENS, rope_scaling=None)
    assert np.abs(logits - unscaled).max() > 1e-2, np.abs(logits - unscaled).max()
    write_reference(d, cfg, logits, n_tok,
                    {"arch": "llama", "dim": 48, "layers": 2, "heads": 4, "kv_heads": 2,
                     "head_dim": 16, "ffn": 128, "context": 256, "rope_style": "half",
                     "rope_theta": 500000.0, "rope_scaling_factor": 8.0, "rope_orig_ctx": 64})


def make_llama_sharded(out):
    """Two F16 shards and an index; a layer is split across the shards, and the second shard's
    header is left unpadded so its data starts at an odd offset."""
    d = os.path.join(out, "llama_sharded")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(5)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
           "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 3,
           "num_attention_heads": 4, "num_key_value_heads": 4,
           "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
           "vocab_size": VOCAB, "torch_dtype": "float16"}
    ck = Checkpoint("F16")
    w = build_llama(rng, cfg, ck)
    names = list(ck.tensors)
    cut = names.index("model.layers.1.post_attention_layernorm.weight")
    shard_names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    parts = [{n: ck.tensors[n] for n in names[:cut]}, {n: ck.tensors[n] for n in names[cut:]}]
    for i, (fname, part) in enumerate(zip(shard_names, parts)):
        data = safetensors_bytes(part, {"format": "pt"}, odd=i == 1)
        write_file(os.path.join(d, fname), data)
    total = sum(raw.nbytes for _, raw in ck.tensors.values())
    weight_map = {n: shard_names[0 if n in parts[0] else 1] for n in sorted(names)}
    write_json(os.path.join(d, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": weight_map})
    write_json(os.path.join(d, "config.json"), cfg)
    n_tok = write_tokenizer(d)
    write_reference(d, cfg, llama_logits(w, cfg, TOKENS), n_tok,
                    {"arch": "llama", "dim": 64, "layers": 3, "heads": 4, "kv_heads": 4,
                     "head_dim": 16, "ffn": 172, "context": 128, "rope_style": "half",
                     "rope_theta": 10000.0})


def make_gpt2_real_vocab(out, vocab_dir):
    """A small GPT-2 over the real 50257-token vocabulary, tokenized by GPT-2's own vocab.json +
    merges.txt (no tokenizer.json)."""
    d = os.path.join(out, "gpt2_real_vocab")
    os.makedirs(d, exist_ok=True)
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(os.path.join(vocab_dir, name), os.path.join(d, name))
    with open(os.path.join(vocab_dir, "vocab.json")) as f:
        vocab = json.load(f)
    rng = np.random.default_rng(6)
    cfg = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_embd": 16,
           "n_layer": 1, "n_head": 2, "n_inner": None, "n_positions": 16,
           "vocab_size": len(vocab), "layer_norm_epsilon": 1e-5}
    ck = Checkpoint("F32")
    w = build_gpt2(rng, cfg, ck, prefix="transformer.")
    write_file(os.path.join(d, "model.safetensors"), safetensors_bytes(ck.tensors))
    write_json(os.path.join(d, "config.json"), cfg)
    # Whole words that GPT-2's merges build completely, looked up in its vocabulary.
    write_reference(d, cfg, gpt2_logits(w, cfg, TOKENS), len(vocab),
                    {"arch": "gpt2", "dim": 16, "layers": 1, "heads": 2, "kv_heads": 2,
                     "head_dim": 8, "ffn": 64, "context": 16, "rope_style": "none"},
                    encode=("Hello world", [vocab["Hello"], vocab["\u0120world"]]))


def make_good(out, vocab_dir=None):
    os.makedirs(out, exist_ok=True)
    for make in (make_gpt2, make_gpt2_f16, make_qwen2, make_llama_tied_bf16, make_llama_sharded):
        make(out)
    if vocab_dir:
        make_gpt2_real_vocab(out, vocab_dir)

# ---- damaged checkpoints -------------------------------------------------------------------


SMALL_LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
               "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1,
               "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": VOCAB,
               "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "tie_word_embeddings": True}


def small_llama_tensors(cfg=SMALL_LLAMA):
    ck = Checkpoint("F32")
    build_llama(np.random.default_rng(9), cfg, ck)
    return ck.tensors


def broken_dir(out, name, config=SMALL_LLAMA, tensors=None, raw=None, tokenizer=True):
    """A directory with config (dict, or raw text), weights (tensor dict, or raw bytes) and the
    tokenizer; None leaves a file out."""
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    if isinstance(config, str):
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(config)
    elif config is not None:
        write_json(os.path.join(d, "config.json"), config)
    if raw is not None:
        write_file(os.path.join(d, "model.safetensors"), raw)
    elif tensors is not None:
        write_file(os.path.join(d, "model.safetensors"), safetensors_bytes(tensors))
    if tokenizer:
        write_tokenizer(d)
    return d


def with_header(tensors, edit):
    """The file's bytes after edit(header dict) changes the JSON header."""
    data = safetensors_bytes(tensors)
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    edit(header)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + n:]


def make_broken(out):
    os.makedirs(out, exist_ok=True)
    good = small_llama_tensors()
    full = safetensors_bytes(good)
    q = "model.layers.0.self_attn.q_proj.weight"

    broken_dir(out, "truncated", raw=full[:len(full) - 1000])
    broken_dir(out, "tiny_file", raw=b"\x10\x00\x00")
    broken_dir(out, "header_past_end", raw=struct.pack("<Q", 1000000) + full[8:200])
    broken_dir(out, "header_huge", raw=struct.pack("<Q", 1 << 62) + full[8:])
    broken_dir(out, "header_not_json", raw=struct.pack("<Q", 12) + b'{"a": [1, 2}' + full[8:])

    def past_end(h):
        h[q]["data_offsets"][1] += 1 << 30
    broken_dir(out, "offsets_past_end", raw=with_header(good, past_end))

    def size_mismatch(h):
        h[q]["shape"] = [64, 32]
    broken_dir(out, "size_mismatch", raw=with_header(good, size_mismatch))

    def overlap(h):
        k = "model.layers.0.self_attn.k_proj.weight"
        h[k]["data_offsets"] = list(h[q]["data_offsets"])
    broken_dir(out, "overlap", raw=with_header(good, overlap))

    def unknown_dtype(h):
        h[q]["dtype"] = "Q7"
    broken_dir(out, "unknown_dtype", raw=with_header(good, unknown_dtype))

    def negative_shape(h):
        h[q]["shape"] = [-64, -64]
    broken_dir(out, "negative_shape", raw=with_header(good, negative_shape))

    def huge_shape(h):
        h[q]["shape"] = [1 << 40, 1 << 40]
    broken_dir(out, "huge_shape", raw=with_header(good, huge_shape))

    def bad_metadata(h):
        h["__metadata__"] = {"format": 5}
    broken_dir(out, "bad_metadata", raw=with_header(good, bad_metadata))

    ints = dict(good)
    ints[q] = ("I8", np.zeros((64, 64), dtype="i1"))
    broken_dir(out, "unsupported_dtype", tensors=ints)

    # hidden_size 64, but q_proj is [32, 64].
    wrong = dict(good)
    wrong[q] = ("F32", np.zeros((32, 64), dtype="<f4"))
    broken_dir(out, "shape_vs_config", tensors=wrong)

    missing = {k: v for k, v in good.items() if "down_proj" not in k}
    broken_dir(out, "missing_tensor", tensors=missing)

    extra = dict(good)
    extra["model.layers.5.mlp.up_proj.weight"] = good["model.layers.0.mlp.up_proj.weight"]
    broken_dir(out, "layer_out_of_range", tensors=extra)

    unknown = dict(good)
    unknown["model.layers.0.self_attn.q_norm.weight"] = ("F32", np.ones(16, dtype="<f4"))
    broken_dir(out, "unknown_tensor", tensors=unknown)

    broken_dir(out, "untied_no_head", config=dict(SMALL_LLAMA, tie_word_embeddings=False),
               tensors=good)
    broken_dir(out, "config_malformed", config='{\n  "hidden_size": 64,\n  "vocab_size": ,\n}\n',
               tensors=good)
    broken_dir(out, "config_missing", config=None, tensors=good)
    broken_dir(out, "config_unknown_arch",
               config=dict(SMALL_LLAMA, architectures=["BertForMaskedLM"]), tensors=good)
    broken_dir(out, "config_wrong_type", config=dict(SMALL_LLAMA, hidden_size="64"),
               tensors=good)
    broken_dir(out, "config_missing_field",
               config={k: v for k, v in SMALL_LLAMA.items() if k != "intermediate_size"},
               tensors=good)
    broken_dir(out, "config_heads_kv", config=dict(SMALL_LLAMA, num_key_value_heads=3),
               tensors=good)
    broken_dir(out, "config_rope_yarn",
               config=dict(SMALL_LLAMA, rope_scaling={"rope_type": "yarn", "factor": 4.0}),
               tensors=good)
    broken_dir(out, "config_rope_incomplete",
               config=dict(SMALL_LLAMA, rope_scaling={"rope_type": "llama3", "factor": 8.0}),
               tensors=good)
    broken_dir(out, "config_not_object", config="[1, 2, 3]\n", tensors=good)
    broken_dir(out, "no_weights", tensors=None)
    broken_dir(out, "no_tokenizer", tensors=good, tokenizer=False)

    # The tokenizer has 267 tokens; an embedding of 200 rows cannot hold them.
    small_vocab = dict(SMALL_LLAMA, vocab_size=200)
    broken_dir(out, "tokenizer_too_big", config=small_vocab,
               tensors=small_llama_tensors(small_vocab))

    # Shards: an index naming a file that is not there, one naming the wrong shard, and a
    # tensor present in two shards.
    names = list(good)
    half = len(names) // 2
    a = {n: good[n] for n in names[:half]}
    b = {n: good[n] for n in names[half:]}
    for case in ("index_missing_shard", "index_wrong_shard", "index_duplicate",
                 "index_malformed"):
        d = broken_dir(out, case)
        sa, sb = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
        wm = {n: sa for n in a}
        wm.update({n: sb for n in b})
        write_file(os.path.join(d, sa), safetensors_bytes(a))
        second = dict(b)
        if case == "index_missing_shard":
            os.remove(os.path.join(d, sa))
        elif case == "index_wrong_shard":
            wm[names[0]] = sb
        elif case == "index_duplicate":
            second[names[0]] = good[names[0]]
        write_file(os.path.join(d, sb), safetensors_bytes(second))
        if case == "index_malformed":
            with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
                f.write('{"weight_map": {"a": "b"}\n')
        else:
            write_json(os.path.join(d, "model.safetensors.index.json"), {"weight_map": wm})


def main():
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "--broken":
        make_broken(args[1])
    elif len(args) in (1, 2) and not args[0].startswith("-"):
        make_good(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
