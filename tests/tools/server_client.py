#!/usr/bin/python3
"""Test client for `lowbit serve` (tests/test_server*.sh): real HTTP over 127.0.0.1 with the
standard library only. Each subcommand runs one group of checks against a running server and
prints `ok: ...` / `FAIL: ...` lines; the exit status is the number of failures (capped)."""
import http.client
import json
import os
import socket
import sys
import threading
import time

LILY = ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
        "park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.")

FAILS = 0


def ok(name):
    print("ok: " + name, flush=True)


def fail(name):
    global FAILS
    FAILS += 1
    print("FAIL: " + name, flush=True)


def check(name, cond, detail=""):
    if cond:
        ok(name)
    else:
        fail(name + (": " + str(detail) if detail != "" else ""))
    return cond


class Server:
    def __init__(self, port, key=None):
        self.port = port
        self.key = key

    def request(self, method, path, body=None, headers=None, raw=None, timeout=60):
        """Returns (status, headers, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = {}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        if headers:
            h.update(headers)
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), out

    def json(self, method, path, body=None, **kw):
        st, h, b = self.request(method, path, body, **kw)
        try:
            return st, json.loads(b)
        except ValueError:
            return st, {"_raw": b.decode("latin-1")}

    def stream(self, path, body, stop_after=None, on_first=None):
        """POSTs with stream: true; returns (status, list of parsed events, raw text). With
        stop_after=N it closes the connection after N events (a client that goes away)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        h = {"Content-Type": "application/json"}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        c.request("POST", path, body=json.dumps(body).encode(), headers=h)
        r = c.getresponse()
        if r.status != 200:
            b = r.read()
            c.close()
            return r.status, [], b.decode()
        events, raw, buf = [], "", b""
        while True:
            chunk = r.read1(4096) if hasattr(r, "read1") else r.read(1)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                ev, buf = buf.split(b"\n\n", 1)
                text = ev.decode()
                raw += text + "\n\n"
                assert text.startswith("data: "), text
                data = text[6:]
                events.append(data if data == "[DONE]" else json.loads(data))
                if on_first and len(events) == 1:
                    on_first()
                if stop_after is not None and len(events) >= stop_after:
                    c.sock.close()
                    c.close()
                    return 200, events, raw
        c.close()
        return 200, events, raw


def metric(server, name):
    st, h, b = server.request("GET", "/metrics")
    total = 0.0
    found = False
    for line in b.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_idle(server, timeout=10):
    """Until no slot is busy and nothing is queued (a cancelled request's slot is free)."""
    end = time.time() + timeout
    while time.time() < end:
        if metric(server, "lowbit_slots_busy") == 0 and metric(server, "lowbit_queue_depth") == 0:
            return True
        time.sleep(0.05)
    return False


# ---- endpoints ------------------------------------------------------------------------------

def cmd_endpoints(s):
    st, j = s.json("GET", "/health")
    check("health 200 ok", st == 200 and j.get("status") == "ok", (st, j))
    check("health: both models loaded", j.get("models") == {"baseline": True, "quantized": True}, j)

    # The original API, greedy: the documented TinyStories text.
    st, j = s.json("POST", "/generate", {"prompt": "", "max_new_tokens": 61, "temperature": 0})
    check("generate 200", st == 200, (st, j))
    check("generate: Lily text", j.get("completion") == LILY, j.get("completion"))
    check("generate: exact response fields",
          sorted(j.keys()) == sorted(["prompt", "completion", "tokens_generated", "total_time_ms",
                                      "tokens_per_second", "model"]), sorted(j.keys()))
    check("generate: tokens counted", j.get("tokens_generated") == 61, j.get("tokens_generated"))
    check("generate: timing", j.get("total_time_ms", 0) > 0 and
          abs(j["tokens_per_second"] - 61 / (j["total_time_ms"] / 1e3)) < 1e-6 * j["tokens_per_second"] + 1e-9, j)
    m = j.get("model", {})
    check("generate: model block (quantized)", sorted(m.keys()) == ["dtype", "name", "quantized", "size_bytes"]
          and m["quantized"] is True and m["size_bytes"] == 292800 * 4 and m["dtype"] == "F32", m)

    st, j = s.json("POST", "/generate/baseline", {"prompt": "", "max_new_tokens": 61, "temperature": 0})
    check("generate/baseline: Lily text", st == 200 and j.get("completion") == LILY, (st, j))
    check("generate/baseline: model block says baseline", j.get("model", {}).get("quantized") is False, j)

    # A prompt continues; a stop string ends the text before it (as `lowbit generate` does).
    st, j = s.json("POST", "/generate", {"prompt": "Once upon a time", "max_new_tokens": 60,
                                         "temperature": 0, "stop": "Lily"})
    check("generate: stop string", j.get("completion") == ", there was a little girl named ", j)
    # Seeded sampling repeats; defaults apply when fields are left out.
    a = s.json("POST", "/generate", {"prompt": "Tom", "max_new_tokens": 30, "temperature": 1, "seed": 7})[1]
    b = s.json("POST", "/generate", {"prompt": "Tom", "max_new_tokens": 30, "temperature": 1, "seed": 7})[1]
    c = s.json("POST", "/generate", {"prompt": "Tom", "max_new_tokens": 30, "temperature": 1, "seed": 8})[1]
    check("generate: same seed same text", a["completion"] == b["completion"], (a, b))
    check("generate: other seed other text", a["completion"] != c["completion"], (a, c))
    st, j = s.json("POST", "/generate", {"prompt": "Tom"})
    check("generate: default max_new_tokens is MAX_NEW_TOKENS", st == 200 and 0 < j["tokens_generated"] <= 24, j)

    st, j = s.json("GET", "/metadata")
    check("metadata 200", st == 200, st)
    for role in ("baseline", "quantized"):
        md = j.get(role, {})
        check("metadata %s fields" % role, all(k in md for k in (
            "architecture", "parameters", "method", "bits", "group_size", "bits_per_weight",
            "size_bytes", "context_length", "load_time_ms", "kernels")), md)
        check("metadata %s figures" % role, md.get("architecture") == "llama" and md.get("parameters") == 292800
              and md.get("bits") == 32 and abs(md.get("bits_per_weight", 0) - 32.0) < 1e-9
              and md.get("size_bytes") == 292800 * 4 and md.get("context_length") == 2048
              and md.get("kernels") in ("scalar", "avx2", "avx512") and md.get("kv_cache_type") == "f32", md)

    st, j = s.json("GET", "/v1/models")
    ids = [d["id"] for d in j.get("data", [])]
    check("v1/models lists both", st == 200 and j.get("object") == "list" and ids == ["quantized", "baseline"], j)

    # OpenAI completions: whole, then streamed; the stream adds up to the same text.
    body = {"prompt": "Once upon a time", "max_tokens": 40, "temperature": 0}
    st, j = s.json("POST", "/v1/completions", body)
    want = s.json("POST", "/generate", {"prompt": "Once upon a time", "max_new_tokens": 40, "temperature": 0})[1]["completion"]
    check("v1/completions 200", st == 200 and j.get("object") == "text_completion", (st, j))
    check("v1/completions text = /generate text", j["choices"][0]["text"] == want, (j, want))
    check("v1/completions usage", j.get("usage") == {"prompt_tokens": 5, "completion_tokens": 40, "total_tokens": 45}, j.get("usage"))
    check("v1/completions finish_reason length", j["choices"][0]["finish_reason"] == "length", j)
    st, evs, raw = s.stream("/v1/completions", dict(body, stream=True, stream_options={"include_usage": True}))
    check("stream ends with [DONE]", st == 200 and evs and evs[-1] == "[DONE]", raw[-200:])
    text = "".join(e["choices"][0]["text"] for e in evs[:-1] if isinstance(e, dict) and e.get("choices"))
    check("stream text = whole text", text == want, (text, want))
    check("stream has many chunks", len(evs) > 10, len(evs))
    fin = [e for e in evs if isinstance(e, dict) and e.get("choices") and e["choices"][0]["finish_reason"]]
    check("stream finish chunk", len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == "length", fin)
    usage = [e for e in evs if isinstance(e, dict) and e.get("usage")]
    check("stream usage chunk", len(usage) == 1 and usage[0]["usage"]["completion_tokens"] == 40, usage)
    st, j = s.json("POST", "/v1/completions", dict(body, echo=True, max_tokens=5))
    check("echo", j["choices"][0]["text"].startswith("Once upon a time" + want[:3]), j)

    # logprobs: one entry per token; greedy picks the most likely token, whose logprob is the
    # largest alternative; probabilities are at most 1 and the texts add up to the completion.
    st, j = s.json("POST", "/v1/completions", dict(body, max_tokens=12, logprobs=3))
    lp = j["choices"][0]["logprobs"]
    check("logprobs: one per token", len(lp["tokens"]) == 12 and len(lp["token_logprobs"]) == 12 and len(lp["top_logprobs"]) == 12, lp)
    check("logprobs: tokens add up to the text", "".join(lp["tokens"]) == j["choices"][0]["text"], lp["tokens"])
    check("logprobs: greedy token is the best alternative",
          all(abs(max(t.values()) - l) < 1e-6 and len(t) == 3 and l <= 0 for t, l in zip(lp["top_logprobs"], lp["token_logprobs"])), lp)
    check("logprobs: text offsets", lp["text_offset"][0] == 0 and lp["text_offset"][1] == len(lp["tokens"][0]), lp["text_offset"])

    st, evs, raw = s.stream("/v1/completions", dict(body, max_tokens=12, logprobs=1, stream=True))
    toks = [t for e in evs[:-1] if e["choices"] and e["choices"][0]["logprobs"] for t in e["choices"][0]["logprobs"]["tokens"]]
    check("stream logprobs: every token once, in order", toks == lp["tokens"], (toks, lp["tokens"]))

    # Chat: ChatML for a model without a template; stream and whole agree.
    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell a story."}],
            "max_tokens": 20, "temperature": 0}
    st, j = s.json("POST", "/v1/chat/completions", chat)
    check("chat 200", st == 200 and j.get("object") == "chat.completion", (st, j))
    msg = j["choices"][0]["message"]
    check("chat message", msg["role"] == "assistant" and isinstance(msg["content"], str) and len(msg["content"]) > 0, msg)
    check("chat usage", j["usage"]["completion_tokens"] >= 1 and j["usage"]["prompt_tokens"] > 20, j["usage"])
    st, evs, raw = s.stream("/v1/chat/completions", dict(chat, stream=True))
    check("chat stream: role first, [DONE] last", evs[0]["choices"][0]["delta"].get("role") == "assistant" and evs[-1] == "[DONE]", raw[:300])
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in evs[:-1])
    check("chat stream text = whole text", text == msg["content"], (text, msg["content"]))
    check("chat stream chunk object", all(e["object"] == "chat.completion.chunk" for e in evs[:-1]), raw[:200])
    st, j = s.json("POST", "/v1/chat/completions", dict(chat, logprobs=True, top_logprobs=2, max_tokens=5))
    content = j["choices"][0]["logprobs"]["content"]
    check("chat logprobs", len(content) == j["usage"]["completion_tokens"] and all(
        len(c["top_logprobs"]) == 2 and abs(c["top_logprobs"][0]["logprob"] - c["logprob"]) < 1e-6 and
        bytes(c["bytes"]).decode() == c["token"] for c in content), content)
    st, j = s.json("POST", "/v1/chat/completions", dict(chat, model="baseline"))
    check("chat on the baseline by name", st == 200 and j["model"] == "baseline", (st, j))
    st, j = s.json("POST", "/v1/completions", dict(body, model="gpt-4"))
    check("unknown model 404 naming the field", st == 404 and j["error"]["param"] == "model", (st, j))

    # /evaluate: a background job, polled until done.
    st, j = s.json("POST", "/evaluate", {"runs": 4, "max_new_tokens": 16})
    check("evaluate 202 with id", st == 202 and j.get("id") and j.get("poll") == "/evaluate/" + j["id"], (st, j))
    job = j.get("id")
    end = time.time() + 60
    while time.time() < end:
        st, j = s.json("GET", "/evaluate/" + job)
        if j.get("status") != "running":
            break
        time.sleep(0.05)
    check("evaluate done", st == 200 and j.get("status") == "done" and j.get("progress") == 1.0, j)
    r = j.get("result", {})
    for role in ("baseline", "quantized"):
        f = r.get(role) or {}
        check("evaluate %s percentiles" % role, 0 < f.get("latency_p50_ms", 0) <= f.get("latency_p95_ms", 0) <= f.get("latency_p99_ms", 0), f)
        check("evaluate %s tokens" % role, f.get("tokens") == 4 * 16 and f.get("tokens_per_second", 0) > 0, f)
    check("evaluate latency task", r.get("task") == "latency", r.get("task"))
    check("evaluate speedup", r.get("speedup") and abs(r["speedup"] - r["quantized"]["tokens_per_second"] / r["baseline"]["tokens_per_second"]) < 1e-9, r.get("speedup"))
    rows = r.get("results", [])
    check("evaluate rows in the result schema", len(rows) == 10 and all(
        set(x.keys()) == {"model", "format", "task", "metric", "value", "stderr", "n", "seconds", "params"} for x in rows), rows[:1])
    # Perplexity through /evaluate, against llama.cpp on the same file and settings:
    #   llama-perplexity -m stories260K.gguf -f tinystories/validation_head.txt -c 128 --chunks 4
    #   -> [1]3.5357,[2]4.0841,[3]4.0441,[4]3.8580  Final estimate: PPL = 3.8580 +/- 0.42252
    st, j = s.json("POST", "/evaluate", {"dataset": "tinystories", "limit": 4, "ctx": 128})
    check("evaluate perplexity 202", st == 202, (st, j))
    job = j.get("id")
    end = time.time() + 120
    while time.time() < end:
        st, j = s.json("GET", "/evaluate/" + str(job))
        if j.get("status") != "running":
            break
        time.sleep(0.05)
    r = j.get("result") or {}
    for role in ("baseline", "quantized"):
        f = r.get(role) or {}
        check("evaluate perplexity %s = llama.cpp's 3.8580" % role, abs(f.get("perplexity", 0) - 3.8580) < 6e-4
              and abs(f.get("stderr", 0) - 0.42252) < 6e-5 and f.get("chunks") == 4 and f.get("tokens_scored") == 4 * 63, (j.get("status"), j.get("error"), f))
    check("evaluate perplexity increase 0 for the same weights", r.get("perplexity_increase_pct") == 0.0, r.get("perplexity_increase_pct"))
    rows = r.get("results", [])
    check("evaluate perplexity rows", len(rows) == 2 and rows[0]["metric"] == "perplexity" and rows[0]["task"] == "tinystories"
          and abs(rows[0]["stderr"] - 0.42252) < 6e-5, rows)
    st, j = s.json("POST", "/evaluate", {"dataset": "/etc/passwd", "limit": 2})
    check("evaluate: only named datasets", st == 400 and j["error"]["param"] == "dataset", j)
    st, j = s.json("POST", "/evaluate", {"limit": 2})
    check("evaluate: limit needs a dataset", st == 400 and j["error"]["param"] == "dataset", j)
    st, j = s.json("GET", "/evaluate/eval-999")
    check("evaluate unknown id 404", st == 404, (st, j))

    # metrics after all that
    st, h, b = s.request("GET", "/metrics")
    text = b.decode()
    check("metrics 200 text", st == 200 and h.get("content-type", "").startswith("text/plain"), h)
    check("metrics: /generate 200 counted", metric(s, 'lowbit_requests_total{endpoint="/generate",status="200"}') >= 7, text[:500])
    check("metrics: tokens out", metric(s, "lowbit_generated_tokens_total") >= 61 * 2, text)
    check("metrics: histograms", "lowbit_time_to_first_token_seconds_bucket{le=\"+Inf\"}" in text and
          "lowbit_time_per_output_token_seconds_count" in text, text)
    for g in ("lowbit_queue_depth", "lowbit_slots_busy", "lowbit_kv_cache_tokens", "lowbit_kv_cache_usage_ratio"):
        check("metrics: " + g, metric(s, g) is not None, g)

    st, h, b = s.request("GET", "/")
    check("playground page", st == 200 and h.get("content-type", "").startswith("text/html") and b"lowbit playground" in b, st)


# ---- authentication and fallback --------------------------------------------------------------

def cmd_auth(s):
    anon = Server(s.port)
    wrong = Server(s.port, "nope")
    for method, path, body in (("POST", "/generate", {"prompt": ""}), ("GET", "/metadata", None),
                               ("GET", "/v1/models", None), ("POST", "/evaluate", {}),
                               ("POST", "/v1/completions", {"prompt": ""}), ("GET", "/", None)):
        st, j = anon.json(method, path, body)
        check("401 without key: %s %s" % (method, path), st == 401 and j["error"]["type"] == "authentication_error", (st, j))
        st, j = wrong.json(method, path, body)
        check("401 with a wrong key: %s %s" % (method, path), st == 401, (st, j))
    for path in ("/health", "/metrics"):
        st, h, b = anon.request("GET", path)
        check("open without key: " + path, st == 200, st)
    st, j = s.json("POST", "/generate", {"prompt": "", "max_new_tokens": 61, "temperature": 0})
    check("with the key: Lily", st == 200 and j["completion"] == LILY, (st, j))


def cmd_fallback(s):
    st, j = s.json("GET", "/health")
    check("fallback: health ok, default baseline", st == 200 and j["models"]["quantized"] is False and j["default"] == "baseline", j)
    st, j = s.json("POST", "/generate", {"prompt": "", "max_new_tokens": 61, "temperature": 0})
    check("fallback: /generate serves the baseline", st == 200 and j["completion"] == LILY and j["model"]["quantized"] is False, j)
    st, j = s.json("GET", "/metadata")
    q = j.get("quantized", {})
    check("fallback: metadata says why", q.get("loaded") is False and "missing.gguf" in q.get("error", ""), q)
    st, j = s.json("POST", "/v1/completions", {"prompt": "", "model": "quantized"})
    check("fallback: the quantized model by name is 404", st == 404 and "not loaded" in j["error"]["message"], j)


def cmd_quantized(s):
    """A real quantized model (RTN int8 from `lowbit quantize`) beside the F32 baseline."""
    st, j = s.json("GET", "/metadata")
    b, q = j.get("baseline", {}), j.get("quantized", {})
    check("quantized metadata: method and bits", q.get("method") == "rtn" and q.get("bits") == 8 and
          (q.get("quantization") or {}).get("method") == "rtn", q)
    check("quantized metadata: smaller, fewer bits per weight", 0 < q.get("size_bytes", 0) < b.get("size_bytes", 0) and
          q.get("bits_per_weight", 99) < 16 and b.get("bits_per_weight") == 32.0 and q.get("parameters") == b.get("parameters"), (b, q))
    st, j = s.json("POST", "/generate", {"prompt": "", "max_new_tokens": 61, "temperature": 0})
    want = os.environ["QUANT_TEXT"]
    check("quantized /generate = lowbit generate on the same file", st == 200 and j["completion"] == want, (j, want))
    check("quantized /generate model block", j.get("model", {}).get("quantized") is True and j["model"]["dtype"] != "F32"
          and j["model"]["size_bytes"] == q.get("size_bytes"), j.get("model"))
    st, j = s.json("POST", "/generate/baseline", {"prompt": "", "max_new_tokens": 61, "temperature": 0})
    check("baseline beside it: Lily", j.get("completion") == LILY and j["model"]["dtype"] == "F32", j)


# ---- abuse ------------------------------------------------------------------------------------

BAD = [
    # (name, path, raw body, status, param)
    ("malformed JSON", "/generate", b'{"prompt": ', 400, None),
    ("not an object", "/generate", b'["prompt"]', 400, None),
    ("empty body", "/generate", b"", 400, None),
    ("trailing garbage", "/generate", b'{"prompt": "a"} x', 400, None),
    ("duplicate key", "/generate", b'{"prompt": "a", "prompt": "b"}', 400, None),
    ("invalid UTF-8", "/generate", b'{"prompt": "\xff\xfe"}', 400, None),
    ("prompt missing", "/generate", b'{"max_new_tokens": 5}', 400, "prompt"),
    ("prompt a number", "/generate", b'{"prompt": 5}', 400, "prompt"),
    ("prompt with NUL", "/generate", b'{"prompt": "a\\u0000b"}', 400, None),
    ("unknown field", "/generate", b'{"prompt": "a", "max_tokens_typo": 5}', 400, "max_tokens_typo"),
    ("max_new_tokens 0", "/generate", b'{"prompt": "a", "max_new_tokens": 0}', 400, "max_new_tokens"),
    ("max_new_tokens -5", "/generate", b'{"prompt": "a", "max_new_tokens": -5}', 400, "max_new_tokens"),
    ("max_new_tokens huge", "/generate", b'{"prompt": "a", "max_new_tokens": 99999999999}', 400, "max_new_tokens"),
    ("max_new_tokens a string", "/generate", b'{"prompt": "a", "max_new_tokens": "10"}', 400, "max_new_tokens"),
    ("max_new_tokens 1.5", "/generate", b'{"prompt": "a", "max_new_tokens": 1.5}', 400, "max_new_tokens"),
    ("temperature -1", "/generate", b'{"prompt": "a", "temperature": -1}', 400, "temperature"),
    ("temperature 1e308", "/generate", b'{"prompt": "a", "temperature": 1e308}', 400, "temperature"),
    ("temperature a bool", "/generate", b'{"prompt": "a", "temperature": true}', 400, "temperature"),
    ("top_k -1", "/generate", b'{"prompt": "a", "top_k": -1}', 400, "top_k"),
    ("top_p 0", "/generate", b'{"prompt": "a", "top_p": 0}', 400, "top_p"),
    ("top_p 2", "/generate", b'{"prompt": "a", "top_p": 2}', 400, "top_p"),
    ("seed -1", "/generate", b'{"prompt": "a", "seed": -1}', 400, "seed"),
    ("stop a number", "/generate", b'{"prompt": "a", "stop": 3}', 400, "stop"),
    ("stop five strings", "/generate", b'{"prompt": "a", "stop": ["a","b","c","d","e"]}', 400, "stop"),
    ("stop empty string", "/generate", b'{"prompt": "a", "stop": [""]}', 400, "stop"),
    ("prompt longer than the context", "/generate", json.dumps({"prompt": "once upon a time " * 700}).encode(), 400, "prompt"),
    ("v1 n=2", "/v1/completions", b'{"prompt": "a", "n": 2}', 400, "n"),
    ("v1 stream a string", "/v1/completions", b'{"prompt": "a", "stream": "yes"}', 400, "stream"),
    ("v1 logprobs 6", "/v1/completions", b'{"prompt": "a", "logprobs": 6}', 400, "logprobs"),
    ("v1 prompt an object", "/v1/completions", b'{"prompt": {"a": 1}}', 400, "prompt"),
    ("v1 max_tokens 0", "/v1/completions", b'{"prompt": "a", "max_tokens": 0}', 400, "max_tokens"),
    ("v1 logit_bias", "/v1/completions", b'{"prompt": "a", "logit_bias": {"1": 5}}', 400, "logit_bias"),
    ("v1 stream_options junk", "/v1/completions", b'{"prompt": "a", "stream_options": {"x": 1}}', 400, "stream_options"),
    ("v1 unknown field", "/v1/completions", b'{"prompt": "a", "frobnicate": 1}', 400, "frobnicate"),
    ("chat no messages", "/v1/chat/completions", b'{"max_tokens": 3}', 400, "messages"),
    ("chat messages empty", "/v1/chat/completions", b'{"messages": []}', 400, "messages"),
    ("chat bad role", "/v1/chat/completions", b'{"messages": [{"role": "wizard", "content": "x"}]}', 400, "messages[0].role"),
    ("chat content a number", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": 5}]}', 400, "messages[0].content"),
    ("chat message unknown field", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x", "mood": 1}]}', 400, "messages[0].mood"),
    ("chat top_logprobs without logprobs", "/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}', 400, "top_logprobs"),
    ("evaluate runs 0", "/evaluate", b'{"runs": 0}', 400, "runs"),
    ("evaluate unknown field", "/evaluate", b'{"model": "x"}', 400, "model"),
]


def cmd_abuse(s, pid):
    for name, path, raw, status, param in BAD:
        st, h, b = s.request("POST", path, raw=raw)
        try:
            j = json.loads(b)
            err = j["error"]
            shape = isinstance(err["message"], str) and err["type"] == "invalid_request_error" and "code" in err
        except (ValueError, KeyError, TypeError):
            err, shape = {}, False
        good = st == status and shape and (param is None or err.get("param") == param)
        if good and param:
            good = param.split("[")[0].split(".")[0] in err["message"]
        check("400 %s" % name, good, (st, b[:300]))

    st, j = s.json("GET", "/no/such/path")
    check("unknown path 404", st == 404 and j["error"]["type"] == "not_found_error", (st, j))
    for method, path in (("GET", "/generate"), ("DELETE", "/generate"), ("POST", "/health"),
                         ("PUT", "/v1/completions"), ("POST", "/v1/models"), ("POST", "/metrics")):
        st, h, b = s.request(method, path)
        check("wrong method 405: %s %s" % (method, path), st == 405 and "allow" in h, (st, h))

    # Content-Length over the limit: answered 413 before the body is read (the client may
    # still be sending, so it sends only the start and then reads).
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n{\"prompt\": \"aaaa" % (2 << 20))
    resp = b""
    while b"\r\n\r\n" not in resp or not resp.rstrip().endswith(b"}"):
        d = sock.recv(65536)
        if not d:
            break
        resp += d
    sock.close()
    check("oversized body 413", resp.startswith(b"HTTP/1.1 413") and b"limit" in resp, resp[:200])
    # chunked, no Content-Length: the limit holds while reading
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"a" * 65536
    try:
        for _ in range(40):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"0\r\n\r\n")
        resp = sock.recv(4096)
    except (ConnectionError, BrokenPipeError):
        resp = b"(closed)"
    sock.close()
    check("oversized chunked body 413", resp.startswith(b"HTTP/1.1 413"), resp[:100])

    gen = {"prompt": "", "max_new_tokens": 61, "temperature": 0}

    def still_serving(label):
        st, j = s.json("POST", "/generate", gen)
        check("still serving after " + label, st == 200 and j.get("completion") == LILY, (st, j))

    # A slow client sends its request a few bytes at a time; others are served meanwhile.
    slow = socket.create_connection(("127.0.0.1", s.port))
    req = b'POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n' % len(json.dumps(gen))
    req += json.dumps(gen).encode()
    t0 = time.time()
    for i in range(0, len(req), 16):
        slow.sendall(req[i:i + 16])
        if i == 64:
            st, j = s.json("POST", "/generate", {"prompt": "Tom", "max_new_tokens": 5})
            check("served while a slow client dribbles", st == 200, st)
        time.sleep(0.01)
    resp = b""
    while b"}\n" not in resp:
        d = slow.recv(65536)
        if not d:
            break
        resp += d
    slow.close()
    check("slow client answered", resp.startswith(b"HTTP/1.1 200") and LILY.encode() in resp, resp[:200])

    rss0 = None
    for rnd in range(3):
        # 1,000 connections opened and dropped: some idle, some mid-headers, some mid-body.
        socks = []
        for i in range(1000):
            try:
                c = socket.create_connection(("127.0.0.1", s.port), timeout=10)
            except OSError as e:
                fail("connection %d refused: %r" % (i, e))
                break
            if i % 3 == 1:
                c.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Le")
            elif i % 3 == 2:
                c.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"prompt\"")
            socks.append(c)
            if len(socks) >= 200:
                for c in socks:
                    c.close()
                socks = []
        for c in socks:
            c.close()
        still_serving("1,000 dropped connections (round %d)" % rnd)

        # Requests cancelled mid-stream: the slots come back at once.
        for i in range(8):
            st, evs, raw = s.stream("/v1/completions", {"prompt": "Once", "max_tokens": 1500, "temperature": 0.8, "stream": True}, stop_after=3)
            check("cancel mid-stream %d got chunks" % i, st == 200 and len(evs) == 3, (st, raw[:100])) if rnd == 0 else None
        # Non-streaming requests abandoned while generating.
        for i in range(4):
            c = socket.create_connection(("127.0.0.1", s.port))
            b = json.dumps({"prompt": "Once", "max_new_tokens": 1500, "temperature": 0.8}).encode()
            c.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
            time.sleep(0.02)
            c.close()
        check("slots free after cancels (round %d)" % rnd, wait_idle(s), metric(s, "lowbit_slots_busy"))
        if rnd == 0:
            # (one that happened to reach its end of text first was answered 200 instead)
            check("abandoned requests counted as 499", 1 <= (metric(s, 'lowbit_requests_total{endpoint="/generate",status="499"}') or 0) <= 4,
                  metric(s, 'lowbit_requests_total{endpoint="/generate",status="499"}'))
        still_serving("cancelled requests (round %d)" % rnd)
        if rnd == 0:
            rss0 = rss_kib(pid)
    rss1 = rss_kib(pid)
    print("RSS after round 1: %d KiB, after round 3: %d KiB" % (rss0, rss1))
    if os.environ.get("LOWBIT_SANITIZED"):
        # AddressSanitizer keeps freed blocks in quarantine, so RSS grows by design; its leak
        # check at the server's exit (a non-zero status) is the memory test there.
        ok("memory: RSS not compared under AddressSanitizer (LeakSanitizer checks at exit)")
    else:
        check("memory returns to its level (growth %d KiB)" % (rss1 - rss0), rss1 - rss0 < 8 * 1024, (rss0, rss1))


# ---- concurrency ------------------------------------------------------------------------------

WORDS = ["Lily", "Tom", "the dog", "a cat", "Mom", "the sun", "a bird", "Ben", "the tree", "Sue"]
VERBS = ["went", "saw", "wanted", "liked", "found", "said", "ran", "had", "was", "played"]


def prompts(n):
    out = []
    for i in range(n):
        out.append("%s %s" % (WORDS[i % 10], VERBS[(i // 10) % 10]) + (" and" if i >= 100 else ""))
    return out


def cmd_concurrency(s, clients=8, per_client=20, max_new=16):
    ps = prompts(clients * per_client)

    def gen(p):
        st, j = s.json("POST", "/generate", {"prompt": p, "max_new_tokens": max_new, "temperature": 0})
        return st, j.get("completion"), j.get("tokens_generated", 0)

    # Each request alone, one after another: the reference outputs and the sequential time.
    t0 = time.time()
    alone = {}
    tokens = 0
    for p in ps:
        st, text, n = gen(p)
        if st != 200:
            fail("sequential request %r: %d" % (p, st))
        alone[p] = text
        tokens += n
    t_seq = time.time() - t0

    results = {}
    errors = []

    def client(k):
        for i in range(per_client):
            p = ps[k * per_client + i]
            try:
                st, text, n = gen(p)
            except Exception as e:   # noqa: BLE001 - any failure is reported
                errors.append(repr(e))
                continue
            if st != 200:
                errors.append("%r -> %d" % (p, st))
            results[p] = text
    t0 = time.time()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_par = time.time() - t0
    check("%d clients x %d requests all succeed" % (clients, per_client), not errors and len(results) == len(ps), errors[:3])
    diff = [p for p in ps if results.get(p) != alone[p]]
    check("each batched output equals the request alone", not diff,
          [(p, results.get(p), alone[p]) for p in diff[:3]])
    check("outputs differ between prompts", len(set(alone.values())) > len(ps) // 2, len(set(alone.values())))
    print("sequential: %d requests, %d tokens in %.2f s (%.0f tokens/s); concurrent (%d clients): %.2f s "
          "(%.0f tokens/s); batched/sequential throughput ratio %.2f" % (
              len(ps), tokens, t_seq, tokens / t_seq, clients, t_par, tokens / t_par, t_seq / t_par))


def cmd_queue(s):
    """--parallel 1 --max-queue 1: of several long requests at once, some get 429 + Retry-After."""
    out = []
    n = 12
    start = threading.Barrier(n)

    def one():
        start.wait()
        st, h, b = s.request("POST", "/generate", {"prompt": "Once", "max_new_tokens": 400, "temperature": 0.8})
        out.append((st, h.get("retry-after"), b))
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(o[0] for o in out)
    check("queue full: some 429", 429 in codes and 200 in codes, codes)
    check("429 has Retry-After and an error body", all(o[1] for o in out if o[0] == 429) and
          all(json.loads(o[2])["error"]["type"] == "rate_limit_error" for o in out if o[0] == 429), out[:1])


def cmd_drain(s):
    """Starts a long stream and returns once it is flowing; the shell then sends SIGTERM and
    calls `drain_finish`. Here both happen in one process: the stream is read in a thread."""
    result = {}

    def reader():
        # SIGTERM as soon as the first piece arrives, so the request is surely in flight.
        result["r"] = s.stream("/v1/completions", {"prompt": "Once", "max_tokens": 1000, "temperature": 0, "stream": True},
                               on_first=lambda: os.kill(int(os.environ["SERVER_PID"]), 15))
    t = threading.Thread(target=reader)
    t.start()
    t.join(60)
    st, evs, raw = result.get("r", (0, [], ""))
    check("drain: the request in flight finished", st == 200 and evs and evs[-1] == "[DONE]" and
          any(isinstance(e, dict) and e["choices"] and e["choices"][0]["finish_reason"] for e in evs), raw[-300:])
    time.sleep(0.5)
    try:
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
        refused = False
    except OSError:
        refused = True
    check("drain: no new connections", refused)


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    key = os.environ.get("API_KEY")
    s = Server(port, key)
    if cmd == "endpoints":
        cmd_endpoints(s)
    elif cmd == "auth":
        cmd_auth(s)
    elif cmd == "quantized":
        cmd_quantized(s)
    elif cmd == "fallback":
        cmd_fallback(s)
    elif cmd == "abuse":
        cmd_abuse(s, int(os.environ["SERVER_PID"]))
    elif cmd == "concurrency":
        cmd_concurrency(s)
    elif cmd == "queue":
        cmd_queue(s)
    elif cmd == "drain":
        cmd_drain(s)
    else:
        print("unknown command " + cmd)
        return 2
    return min(FAILS, 100)


if __name__ == "__main__":
    sys.exit(main())
