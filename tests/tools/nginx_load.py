#!/usr/bin/python3
"""A bounded load through nginx onto lowbit replicas, with one replica killed part-way.

  nginx_load.py PORT REQUESTS CONCURRENCY KILL_PID KILL_AFTER

Sends REQUESTS requests (CONCURRENCY at a time) to 127.0.0.1:PORT, cycling through
/generate, /v1/completions, /v1/chat/completions and a streamed /v1/completions. When
KILL_AFTER requests have completed it sends SIGKILL to KILL_PID (one replica). Every request
is checked: a plain answer must be a 200 with the completion in it; a stream must end with
[DONE]. Prints one line per kind of outcome and a last line

  requests N ok N failed N cut-streams N

where cut-streams counts streams that had started and then broke: their 200 and headers
had reached the client (with or without an event after them), so nginx had committed the
response to the killed replica and could not move it. Any other failure is a request lost by
the deployment. Exit status 0 when no request other than a cut
stream failed.
"""
import http.client
import json
import os
import signal
import sys
import threading
import time

port, total, concurrency, kill_pid, kill_after = (int(a) for a in sys.argv[1:6])

BODIES = [
    ("/generate", {"prompt": "Once upon a time", "max_new_tokens": 24, "temperature": 0}),
    ("/v1/completions", {"prompt": "The little dog", "max_tokens": 24, "temperature": 0}),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Tell me a story"}],
                              "max_tokens": 24, "temperature": 0}),
    ("/v1/completions", {"prompt": "One day", "max_tokens": 200, "temperature": 0, "stream": True}),
]

lock = threading.Lock()
state = {"next": 0, "done": 0, "killed": False}
outcomes = {"ok": 0, "failed": 0, "cut": 0}
failures = []


def one(i):
    path, body = BODIES[i % len(BODIES)]
    stream = body.get("stream", False)
    started = False
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return "failed", f"{path}: HTTP {resp.status} {resp.read()[:200]!r}"
        # A stream's headers go out before its first token (proxy_buffering off passes them
        # on at once): from here on nginx can no longer retry it elsewhere.
        started = stream
        if not stream:
            doc = json.loads(resp.read())
            text = doc.get("completion") if path == "/generate" else (
                doc["choices"][0].get("text") if "text" in doc["choices"][0]
                else doc["choices"][0]["message"]["content"])
            if not isinstance(text, str) or not text:
                return "failed", f"{path}: no completion in {doc}"
            return "ok", None
        done = False
        while True:
            line = resp.readline()
            if not line:
                break
            if line.startswith(b"data: "):
                if line.strip() == b"data: [DONE]":
                    done = True
                    break
        if done:
            return "ok", None
        return "cut", f"{path}: stream ended without [DONE]"
    except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
        if stream and started:
            return "cut", f"{path}: {e}"
        return "failed", f"{path}: {type(e).__name__}: {e}"


def worker():
    while True:
        with lock:
            i = state["next"]
            if i >= total:
                return
            state["next"] += 1
        kind, why = one(i)
        with lock:
            outcomes[kind] += 1
            if kind == "failed":
                failures.append(why)
            state["done"] += 1
            if not state["killed"] and state["done"] >= kill_after and kill_pid > 0:
                state["killed"] = True
                os.kill(kill_pid, signal.SIGKILL)
                print(f"killed replica {kill_pid} after {state['done']} requests", flush=True)


t0 = time.time()
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
secs = time.time() - t0
for why in failures[:10]:
    print("lost:", why)
print(f"{total / secs:.1f} requests/s over {secs:.1f} s")
print(f"requests {total} ok {outcomes['ok']} failed {outcomes['failed']} cut-streams {outcomes['cut']}")
sys.exit(1 if outcomes["failed"] else 0)
