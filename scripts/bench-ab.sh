#!/usr/bin/env bash
# One load run against fresh nodes of a given kahunad binary: the half of
# an A/B comparison of two builds. Run it under farm-bench, once per build,
# so that the two are interleaved on a machine whose speed drifts:
#
#   git worktree add /tmp/kahuna-a REV && (cd /tmp/kahuna-a && go build -o /tmp/kahunad-a ./cmd/kahunad)
#   go build -o /tmp/kahunad-b ./cmd/kahunad && go build -o /tmp/kahuna-bench ./cmd/kahuna-bench
#   farm-bench -n 6 --timeout 900 --vs 'scripts/bench-ab.sh /tmp/kahunad-a /tmp/a.tsv' \
#       -- scripts/bench-ab.sh /tmp/kahunad-b /tmp/b.tsv
#   paste /tmp/b.tsv /tmp/a.tsv    # run by run: b, then a
#
#   scripts/bench-ab.sh KAHUNAD RESULTS [kahuna-bench flags...]
#
# Each run starts BENCH_AB_NODES nodes (1 or 3; data in a temporary folder),
# waits until they answer /readyz and for BENCH_AB_SETTLE, loads them with
# kahuna-bench (64 workers, persistent locks, 2 s warm-up, then
# BENCH_AB_DURATION measured), stops them, and appends one line to RESULTS:
# requests per second, p99 latency (µs), requests measured, and the nodes'
# CPU seconds over their whole life (start-up is the same for both builds,
# the rest is the load). While the load runs, a scraper reads /metrics of
# the first node once a second (as a busy Prometheus would, 15 times more
# often than its default); a build without /metrics answers 404 cheaply.
#
# Environment: BENCH_AB_BENCH (kahuna-bench binary, default
# /tmp/kahuna-bench), BENCH_AB_NODES (1), BENCH_AB_DURATION (8s),
# BENCH_AB_SETTLE (seconds, 3), BENCH_AB_PORT (first HTTP port, 48082;
# node i uses port + 10i for HTTP, + 1 for Raft, + 2 for gossip).
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 KAHUNAD RESULTS [kahuna-bench flags...]" >&2; exit 2; }
kahunad=$1 results=$2
shift 2
bench=${BENCH_AB_BENCH:-/tmp/kahuna-bench}
nodes=${BENCH_AB_NODES:-1}
duration=${BENCH_AB_DURATION:-8s}
settle=${BENCH_AB_SETTLE:-3}
base=${BENCH_AB_PORT:-48082}
dir=$(mktemp -d)
pids=()
scraper=
cleanup() {
	[ -n "$scraper" ] && kill "$scraper" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT

joins=() endpoints=()
for i in $(seq 0 $((nodes - 1))); do
	joins+=("127.0.0.1:$((base + 10 * i + 2))")
	endpoints+=("http://127.0.0.1:$((base + 10 * i))")
done
for i in $(seq 0 $((nodes - 1))); do
	port=$((base + 10 * i))
	args=(--data-dir "$dir/n$i" --node-id "n$i" --http-addr "127.0.0.1:$port" --raft-addr "127.0.0.1:$((port + 1))")
	if [ "$nodes" -gt 1 ]; then
		args+=(--gossip-addr "127.0.0.1:$((port + 2))" --bootstrap-expect "$nodes" --join "$(IFS=,; echo "${joins[*]}")")
	fi
	"$kahunad" "${args[@]}" >"$dir/n$i.log" 2>&1 &
	pids+=($!)
done
for e in "${endpoints[@]}"; do
	for _ in $(seq 1 300); do
		curl -sf -o /dev/null "$e/readyz" && break
		sleep 0.1
	done
done
sleep "$settle"
(
	while sleep 1; do
		curl -s -o /dev/null "${endpoints[0]}/metrics" || true
	done
) &
scraper=$!

out=$("$bench" -endpoint "$(IFS=,; echo "${endpoints[*]}")" -duration "$duration" -warmup 2s -format json "$@")
field() { printf '%s\n' "$out" | sed -n "s/^ *\"$1\": \([0-9.]*\),*$/\1/p" | head -1; }
# Every node's CPU: user + system clock ticks, fields 14 and 15 of stat.
ticks=0
for p in "${pids[@]}"; do
	read -r utime stime < <(awk '{print $14, $15}' "/proc/$p/stat")
	ticks=$((ticks + utime + stime))
done
cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }')
printf '%s\t%s\t%s\t%s\n' "$(field requestsPerSec)" "$(field p99)" "$(field requests)" "$cpu" >>"$results"
