#!/usr/bin/python3
"""Independent dequantization of one linear layer of a GPTQ / AWQ / compressed-tensors W8A8
checkpoint, following the unpacking AutoGPTQ (QuantLinear, "cuda-old" torch path), AutoAWQ
(GEMM, reverse order 0 4 1 5 2 6 3 7) and compressed-tensors use. Prints W[out][in], one row
per line. Usage: hf_dequant.py DIR gptq|awq|w8a8 MODULE"""
import json
import struct
import sys

import numpy as np

DT = {"F32": np.float32, "F16": np.float16, "BF16": None, "I32": np.int32, "I8": np.int8}


def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[b:e], dtype=DT[t["dtype"]]).reshape(t["shape"])
    return out


def unpack_rows(words, bits):
    """AutoGPTQ: packed along dim 0, 32 / bits values per int32 (3-bit: 32 values in 3 words)."""
    w = words.view(np.uint32).astype(np.int64)
    if bits in (2, 4, 8):
        per = 32 // bits
        shifts = np.arange(0, 32, bits)
        v = (w[:, None, :] >> shifts[None, :, None]) & ((1 << bits) - 1)
        return v.reshape(w.shape[0] * per, w.shape[1])
    g = w.reshape(w.shape[0] // 3, 3, w.shape[1])
    w0, w1, w2 = g[:, 0], g[:, 1], g[:, 2]
    vals = []
    for k in range(10):
        vals.append((w0 >> (3 * k)) & 7)
    vals.append(((w0 >> 30) & 3) | ((w1 << 2) & 4))
    for k in range(10):
        vals.append((w1 >> (3 * k + 1)) & 7)
    vals.append(((w1 >> 31) & 1) | ((w2 << 1) & 6))
    for k in range(10):
        vals.append((w2 >> (3 * k + 2)) & 7)
    v = np.stack(vals, axis=1)           # [groups of 32, 32, out]
    return v.reshape(-1, w.shape[1])


def main():
    d, fmt, mod = sys.argv[1], sys.argv[2], sys.argv[3]
    t = load(d + "/model.safetensors")
    cfg = json.load(open(d + "/config.json"))["quantization_config"]
    if fmt == "gptq":
        bits = cfg["bits"]
        q = unpack_rows(t[mod + ".qweight"], bits)                        # [in, out]
        z = unpack_rows(t[mod + ".qzeros"].T.copy(), bits).T + 1         # [groups, out]
        s = t[mod + ".scales"].astype(np.float32)
        gi = t[mod + ".g_idx"]
        W = s[gi] * (q.astype(np.float32) - z[gi].astype(np.float32))   # [in, out]
        W = W.T
    elif fmt == "awq":
        rev = [0, 4, 1, 5, 2, 6, 3, 7]
        shifts = np.arange(0, 32, 4)

        def unpack(words):
            w = words.view(np.uint32).astype(np.int64)
            v = (w[:, :, None] >> shifts[None, None, :]) & 15       # [rows, out/8, 8]
            v = v[:, :, rev]
            return v.reshape(w.shape[0], -1)

        q = unpack(t[mod + ".qweight"])
        z = unpack(t[mod + ".qzeros"])
        s = t[mod + ".scales"].astype(np.float32)
        gs = cfg["group_size"]
        g = np.arange(q.shape[0]) // gs
        W = (s[g] * (q.astype(np.float32) - z[g].astype(np.float32))).T
    else:
        w = t[mod + ".weight"].astype(np.float32)
        s = t[mod + ".weight_scale"].astype(np.float32).reshape(-1, 1)
        W = s * w
    for row in W.astype(np.float32):
        print(" ".join("%.9g" % x for x in row))


main()
