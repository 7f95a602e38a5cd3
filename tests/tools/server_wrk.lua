-- Load test for lowbit serve with wrk (not part of the suite; its figures go in the notes):
--   lowbit serve --baseline ../shared/models/stories260K.gguf --threads 1 --parallel 4 --addr 127.0.0.1:8080 &
--   wrk -t2 -c8 -d10s --latency -s tests/tools/server_wrk.lua http://127.0.0.1:8080/generate
-- Every request is a greedy 16-token /generate; a non-200 answer counts as an error.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt": "Once upon a time", "max_new_tokens": 16, "temperature": 0}'

function done(summary, latency, requests)
  io.write(string.format("non-200 responses: %d (socket errors: connect %d, read %d, write %d, timeout %d)\n",
    summary.errors.status, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout))
end
