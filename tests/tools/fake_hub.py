#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub, for testing `lowbit pull` without a network.

Serves repositories from a directory (ROOT/ORG/NAME/<files>) the way huggingface.co does:
  GET /api/models/ORG/NAME/revision/REV[?blobs=true]   listing (siblings, sizes, lfs.sha256)
  GET /ORG/NAME/resolve/REV/PATH                       the file; LFS files (*.gguf,
      *.safetensors, *.bin, *.model, ...) answer 302 to /cdn/... with X-Linked-ETag and
      X-Linked-Size, like the hub's redirect to its CDN; small files carry the git blob id
      as ETag. Range requests get 206 with Content-Range, or 416 past the end.
Missing repositories, revisions and files get 404 with the hub's X-Error-Code.

Behaviour is steered by a JSON control file, re-read on every request (counters start again
whenever its text changes), so a test can change it between runs of the client:
  {"token": "T"}            requests without "Authorization: Bearer T" get 401
  {"redirect": false}       serve LFS files directly instead of a 302 to /cdn
  {"blobs": false}          ignore ?blobs=true (listing without sizes or hashes)
  {"no_range": true}        ignore Range headers (always 200 with the whole file)
  {"rate": BYTES_PER_S}     throttle file bodies
  {"faults": [{"file": "PATH", "action": "cut"|"stall"|"corrupt"|"status",
               "after": N, "seconds": S, "status": CODE, "times": K}]}
      cut: close the connection after N body bytes; stall: send N bytes then go silent for S
      seconds; corrupt: flip the byte at file offset N; status: answer CODE. Each fault fires
      on the first K matching file requests (all of them when times is absent).
  {"api_raw": "TEXT"}       answer the listing with this text (malformed-listing tests)

Every request is appended to the log file as one line:
  METHOD PATH range=<Range header or -> auth=<yes|no> status=<code>
The server binds 127.0.0.1 on a port the OS picks and prints the port as its first line;
with --watch-pid it exits when that process (the test) is gone.
"""
import argparse
import hashlib
import http.server
import json
import os
import sys
import threading
import time
import urllib.parse

LFS_SUFFIXES = (".gguf", ".safetensors", ".bin", ".model", ".pt", ".pth", ".onnx")


class Hub:
    def __init__(self, root, control, log):
        self.root = os.path.abspath(root)
        self.control_path = control
        self.log_path = log
        self.lock = threading.Lock()
        self.control_text = None
        self.control = {}
        self.fired = {}

    def settings(self):
        """The control file's current content; fault counters restart when it changes."""
        text = ""
        if self.control_path and os.path.exists(self.control_path):
            with open(self.control_path) as f:
                text = f.read()
        with self.lock:
            if text != self.control_text:
                self.control_text = text
                self.control = json.loads(text) if text.strip() else {}
                self.fired = {}
            return self.control

    def take_fault(self, path):
        """The first fault for this file that still has firings left, counting this one."""
        for i, fault in enumerate(self.settings().get("faults", [])):
            if fault.get("file") != path:
                continue
            with self.lock:
                used = self.fired.get(i, 0)
                if "times" in fault and used >= fault["times"]:
                    continue
                self.fired[i] = used + 1
            return fault
        return None

    def log(self, line):
        if not self.log_path:
            return
        with self.lock, open(self.log_path, "a") as f:
            f.write(line + "\n")

    def repo_dir(self, repo):
        d = os.path.join(self.root, repo)
        return d if repo.count("/") == 1 and os.path.isdir(d) else None

    def files(self, repo):
        d = self.repo_dir(repo)
        out = []
        for base, dirs, names in os.walk(d):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(base, name)
                out.append(os.path.relpath(full, d).replace(os.sep, "/"))
        return out

    def file_info(self, repo, path):
        full = os.path.join(self.repo_dir(repo), path)
        with open(full, "rb") as f:
            data = f.read()
        git_blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        return {
            "data": data,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "md5": hashlib.md5(data).hexdigest(),
            "blob": git_blob,
            "lfs": path.endswith(LFS_SUFFIXES),
        }

    def commit(self, repo):
        h = hashlib.sha1()
        for p in self.files(repo):
            h.update(p.encode() + b"\0" + self.file_info(repo, p)["sha256"].encode())
        return h.hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-hub/1"

    def log_message(self, fmt, *args):
        pass

    # -- helpers ------------------------------------------------------------------------------
    def send(self, status, body=b"", headers=None, content_type="application/json"):
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, message):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self.send(status, json.dumps({"error": message}).encode(), headers)

    def authorised(self, settings):
        token = settings.get("token")
        return not token or self.headers.get("Authorization") == "Bearer " + token

    # -- routes -------------------------------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.status = 0
        hub = self.server.hub
        try:
            self.route(hub, hub.settings())
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            hub.log("%s %s range=%s auth=%s status=%s" % (
                self.command, self.path, self.headers.get("Range") or "-",
                "yes" if self.headers.get("Authorization") else "no", self.status))

    def route(self, hub, settings):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/")[1:]]
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] == "revision":
            return self.listing(hub, settings, parts[2] + "/" + parts[3], parts[5],
                                query.get("blobs") == ["true"])
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve(hub, settings, parts[0] + "/" + parts[1], parts[3],
                                "/".join(parts[4:]))
        if len(parts) >= 4 and parts[0] == "cdn":
            return self.body(hub, settings, parts[1] + "/" + parts[2], "/".join(parts[3:]),
                             cdn=True)
        self.error(404, None, "no such route")

    def check_repo(self, hub, settings, repo, revision):
        if not self.authorised(settings):
            self.error(401, None, "Invalid credentials in Authorization header")
            return False
        if not hub.repo_dir(repo):
            self.error(404, "RepoNotFound", "Repository not found")
            return False
        if revision not in ("main", hub.commit(repo)):
            self.error(404, "RevisionNotFound", "Invalid rev id: " + revision)
            return False
        return True

    def listing(self, hub, settings, repo, revision, blobs):
        if not self.check_repo(hub, settings, repo, revision):
            return
        if "api_raw" in settings:
            return self.send(200, settings["api_raw"].encode())
        siblings = []
        for path in hub.files(repo):
            entry = {"rfilename": path}
            if blobs and settings.get("blobs", True):
                info = hub.file_info(repo, path)
                entry["blobId"] = info["blob"]
                entry["size"] = info["size"]
                if info["lfs"]:
                    entry["lfs"] = {"sha256": info["sha256"], "size": info["size"],
                                    "pointerSize": 134}
            siblings.append(entry)
        doc = {"_id": "0" * 24, "id": repo, "modelId": repo, "sha": hub.commit(repo),
               "private": bool(settings.get("token")), "siblings": siblings}
        self.send(200, json.dumps(doc).encode())

    def resolve(self, hub, settings, repo, revision, path):
        if not self.check_repo(hub, settings, repo, revision):
            return
        if path not in hub.files(repo):
            return self.error(404, "EntryNotFound", "Entry not found")
        info = hub.file_info(repo, path)
        if info["lfs"] and settings.get("redirect", True):
            target = "/cdn/%s/%s?X-Amz-Signature=%s" % (repo, urllib.parse.quote(path),
                                                          info["md5"])
            return self.send(302, b"", {
                "Location": target, "X-Repo-Commit": hub.commit(repo),
                "X-Linked-ETag": '"%s"' % info["sha256"],
                "X-Linked-Size": str(info["size"]), "ETag": '"%s"' % info["sha256"]})
        self.body(hub, settings, repo, path, cdn=False)

    def body(self, hub, settings, repo, path, cdn):
        if not hub.repo_dir(repo) or path not in hub.files(repo):
            return self.error(404, None, "NoSuchKey")
        info = hub.file_info(repo, path)
        data = info["data"]
        size = len(data)
        fault = hub.take_fault(path) if self.command == "GET" else None
        action = fault.get("action") if fault else None
        if action == "status":
            return self.error(fault.get("status", 500), None, "injected failure")
        if action == "corrupt":
            at = min(fault.get("after", size // 2), size - 1)
            data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]

        headers = {"Accept-Ranges": "bytes"}
        if cdn:
            headers["ETag"] = '"%s"' % info["md5"]   # a CDN's ETag is not the sha256
        else:
            headers["ETag"] = '"%s"' % (info["sha256"] if info["lfs"] else info["blob"])
            headers["X-Repo-Commit"] = hub.commit(repo)
            if info["lfs"]:
                headers["X-Linked-ETag"] = '"%s"' % info["sha256"]
                headers["X-Linked-Size"] = str(size)

        start, end, status = 0, size, 200
        rng = self.headers.get("Range")
        if rng and not settings.get("no_range") and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            start = int(first)
            end = min(int(last) + 1, size) if last else size
            if start >= size:
                headers["Content-Range"] = "bytes */%d" % size
                return self.send(416, b"", headers)
            status = 206
            headers["Content-Range"] = "bytes %d-%d/%d" % (start, end - 1, size)

        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        limit = end - start
        if action in ("cut", "stall"):
            limit = min(limit, fault.get("after", 0))
        rate = settings.get("rate")
        sent, chunk = 0, 16384
        while sent < limit:
            n = min(chunk, limit - sent)
            self.wfile.write(data[start + sent:start + sent + n])
            sent += n
            if rate:
                time.sleep(n / rate)
        self.wfile.flush()
        if action == "stall":
            time.sleep(fault.get("seconds", 30))
        if action in ("cut", "stall"):
            self.close_connection = True


def watch(pid):
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        time.sleep(0.5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, help="directory holding ORG/NAME/<files>")
    ap.add_argument("--control", help="JSON control file, re-read on every request")
    ap.add_argument("--log", help="append one line per request here")
    ap.add_argument("--watch-pid", type=int,
                    help="exit when this process is gone (a killed test leaves no server)")
    args = ap.parse_args()
    if args.watch_pid:
        threading.Thread(target=watch, args=(args.watch_pid,), daemon=True).start()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.hub = Hub(args.root, args.control, args.log)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
