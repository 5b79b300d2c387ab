#!/usr/bin/env bash
# `make bench`: sluice, nginx and HAProxy side by side in one run.
# Quick check: ROUNDS=1 DURATION=3 bash bench/run.sh; filters: ONLY=sluice,nginx
# (targets: direct,sluice,sluice-nosplice,nginx,haproxy) and
# SCENARIOS=small64,small256,paired,large,huge,tls_small,tls_handshake,idle,reload,stats,streams,skewed,policy,jwt;
# one scenario alone: SCENARIOS=tls_handshake ROUNDS=1 bash bench/run.sh.
# Method and environment variables: see bench/bench.py. Results: stdout and
# build/bench/results.md. A full run (3 rounds, every scenario) took 793 s on
# this host in the ninth session; TIME_LIMIT (default
# 1200 s) bounds it.
# stats: sluice under the small64 load with and without 1,000 kept-alive admin
# connections polling GET /stats (bench/stats_poll, built here): once a second
# each (dashboards) and back to back (a flood); p99 and req/s against none.
# streams: STREAMS (10,000) concurrent SSE streams from sluice-echo, one event
# a second each for STREAM_SECONDS (30), through each proxy (nginx with
# proxy_buffering off) and direct: RSS per stream, proxy CPU per event, and
# each event's delay from the backend's send to the client's read
# (bench/sse_streams.c).
# huge: 64 MiB responses (a static file on the backend), MiB/s and proxy CPU
# per MiB for direct, sluice, sluice with splice off (sluice-nosplice), nginx
# and HAProxy.
# tls_small / tls_handshake: every server terminates TLS with the same ECDSA
# P-256 certificate (generated here with the openssl CLI); tls_small is the
# small64 load over https with wrk, tls_handshake runs bench/tls_hs (built
# here): full TLS 1.3 handshakes, never resumed, one GET each; the figure
# that decides is the proxy's CPU per handshake.
# reload: sluice alone with a generated 10,000-route document under the small64
# load, without and with a PUT /config (admin API, with a token) every 500 ms
# by bench/put_client (built here), in many short cells; reports PUT
# round-trip times, p99 and req/s against no reloads, PUT answers other than
# 200 and wrk errors.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in wrk nginx haproxy taskset python3 cc openssl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool not found" >&2; exit 1; }
done

# 10,000 idle connections need as many descriptors in the client and in the
# proxy; take what the hard limit allows when 65536 is refused.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

mkdir -p build/bench
if [ ! -x build/bench/idle_conns ] || [ bench/idle_conns.c -nt build/bench/idle_conns ]; then
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wmissing-prototypes -g -O2 \
	   -o build/bench/idle_conns bench/idle_conns.c
fi

if [ ! -x build/bench/put_client ] || [ bench/put_client.c -nt build/bench/put_client ]; then
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wmissing-prototypes -g -O2 \
	   -o build/bench/put_client bench/put_client.c
fi

if [ ! -x build/bench/stats_poll ] || [ bench/stats_poll.c -nt build/bench/stats_poll ]; then
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wmissing-prototypes -g -O2 \
	   -o build/bench/stats_poll bench/stats_poll.c
fi

if [ ! -x build/bench/sse_streams ] || [ bench/sse_streams.c -nt build/bench/sse_streams ]; then
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wmissing-prototypes -g -O2 \
	   -o build/bench/sse_streams bench/sse_streams.c
fi

if [ ! -x build/bench/tls_hs ] || [ bench/tls_hs.c -nt build/bench/tls_hs ]; then
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wmissing-prototypes -g -O2 \
	   -o build/bench/tls_hs bench/tls_hs.c -lssl -lcrypto
fi

# The router micro-benchmark (bench/router_bench.c, another engineer's) builds
# standalone; a failure to build is reported and the rest still runs.
if [ -f bench/router_bench.c ] && { [ ! -x build/bench/router_bench ] ||
	[ -n "$(find bench/router_bench.c router -newer build/bench/router_bench 2>/dev/null | head -1)" ]; }; then
	# shellcheck disable=SC2046
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wno-missing-prototypes -g -O2 \
	   $(pkg-config --cflags libcjson 2>/dev/null) \
	   -o build/bench/router_bench bench/router_bench.c \
	   $(pkg-config --libs libcjson 2>/dev/null) -lm ||
	{ echo "bench: bench/router_bench.c did not build; skipping it" >&2; rm -f build/bench/router_bench; }
fi

# The balancer micro-benchmark (bench/balance_bench.c): ns per pick among
# 1,000 targets for each balancer; a failure to build is reported, the rest runs.
if [ ! -x build/bench/balance_bench ] ||
	[ -n "$(find bench/balance_bench.c upstream health -newer build/bench/balance_bench 2>/dev/null | head -1)" ]; then
	# shellcheck disable=SC2046
	cc -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	   -Wstrict-prototypes -Wno-missing-prototypes -g -O2 \
	   $(pkg-config --cflags libcares libcjson 2>/dev/null) \
	   -o build/bench/balance_bench bench/balance_bench.c \
	   $(pkg-config --libs libcares 2>/dev/null) -lssl -lcrypto -lpthread ||
	{ echo "bench: bench/balance_bench.c did not build; skipping it" >&2; rm -f build/bench/balance_bench; }
fi

# bench.py bounds itself (TIME_LIMIT); this is the backstop, and TERM lets it
# stop the servers it started.
limit=${TIME_LIMIT:-1200}
# Debian's interpreter, which sees the Debian packages (python3-jwt for the
# jwt scenario); another python3 first on PATH (pyenv) would not.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
exec timeout -s TERM -k 30 "$((${limit%.*} + 120))" "$PY" bench/bench.py
