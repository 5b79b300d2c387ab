#!/usr/bin/env bash
# `make run`: two sluice-echo backends behind sluice on examples/demo.json.
# Ctrl-C stops all three.
cd "$(dirname "$0")/.." || exit 1
for p in 8080 8443 8081 8082; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
        echo "run: port $p is in use; stop what listens there first" >&2
        exit 1
    fi
done 2>/dev/null
sh examples/demo-cert.sh || exit 1
build/sluice --check --config examples/demo.json || exit 1
build/sluice-echo --port 8081 --id echo-a >/dev/null &
A=$!
build/sluice-echo --port 8082 --id echo-b >/dev/null &
B=$!
trap 'kill $A $B 2>/dev/null; wait $A $B 2>/dev/null' EXIT INT TERM
cat <<'MSG'

sluice is starting on http://127.0.0.1:8080 and https://127.0.0.1:8443 (a self-signed
certificate in build/demo/) with two echo backends (8081, 8082).
Try, in another terminal:

  curl -s localhost:8080/ping                      # answered by sluice itself: pong
  curl -s localhost:8080/api/users?id=7            # prefix /api stripped: backend sees /users?id=7
  curl -s localhost:8080/hello | grep -o "\"id\":\"[^\"]*\""   # repeat: echo-a and echo-b take turns (round robin)
  curl -s -H 'x-canary: 1' localhost:8080/         # header match: always echo-b
  curl -s -b session=alice localhost:8080/sticky | grep -o "\"id\":\"[^\"]*\""   # hash on a cookie: the same backend every time
  curl -s localhost:8080/least | grep -o "\"id\":\"[^\"]*\""   # least_request, weights 3:1: echo-a three times in four when idle
  curl -si localhost:8080/old | head -3            # 301 Location: http://localhost:8080/api/new
  curl -sN 'localhost:8080/sse?n=5&ms=300'         # server-sent events, one every 300 ms
  # an LLM stream, routed by the body's "model": llama-* to echo-a, gpt-* to echo-b
  curl -sN localhost:8080/v1/chat/completions -d '{"model":"llama-3","stream":true,"messages":[{"role":"user","content":"hello sluice"}]}'
  curl -s localhost:8080/v1/chat/completions -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}' | grep -o '"id":"[^"]*"'
  curl -s localhost:8080/status/503 -o /dev/null -w '%{http_code}\n'
  curl -s --cacert build/demo/demo.pem https://localhost:8443/api/tls | grep -o '"X-Forwarded-Proto","https"'

Access log lines appear below. Ctrl-C stops the demo.

MSG
build/sluice --config examples/demo.json
