#!/usr/bin/env bash
# Builds kahunad and kahuna-bench, starts a throw-away single node on free
# ports with its data in a temp dir, benchmarks persistent then ephemeral
# locks, and tears the node down again. Arguments go to kahuna-bench, e.g.
#   scripts/bench.sh -duration 30s -workers 128 -format json
# Environment:
#   KAHUNA_BENCH_HTTP_PORT, KAHUNA_BENCH_RAFT_PORT, KAHUNA_BENCH_GOSSIP_PORT
#       ports to use as they are (default: the first free from 18082, 19082, 17946)
#   KAHUNA_PARTITIONS   passed to kahunad as --partitions when set
#   KAHUNA_BENCH_READY_TIMEOUT  seconds to wait for /readyz (default 30)
#   KAHUNA_BENCH_CEILING  0 skips the last run, against kahuna-ceiling (a
#       server that does no work on the same HTTP stack), which shows what
#       this machine can serve at most; its report goes to stderr
#   KAHUNA_BENCH_ENDPOINTS  comma-separated base URLs of nodes that are
#       already running, e.g. http://127.0.0.1:8082,http://127.0.0.1:8084;
#       when set, no server is built or started and the benchmark spreads its
#       workers over these endpoints (the port and partition settings above
#       are then ignored)
set -euo pipefail

cd "$(dirname "$0")/.."

ready_timeout=${KAHUNA_BENCH_READY_TIMEOUT:-30}

if [[ -n ${KAHUNA_BENCH_ENDPOINTS:-} ]]; then
	mkdir -p bin
	go build -o bin/kahuna-bench ./cmd/kahuna-bench
	echo "bench.sh: benchmarking the running nodes $KAHUNA_BENCH_ENDPOINTS" >&2
	# kahuna-bench waits up to the ready timeout for /readyz on every node.
	exec bin/kahuna-bench -endpoint "$KAHUNA_BENCH_ENDPOINTS" -durability both -ready-timeout "${ready_timeout}s" "$@"
fi

# port_in_use reports whether anything listens on TCP or UDP port $1
# (gossip uses both).
port_in_use() {
	if command -v ss >/dev/null 2>&1; then
		ss -Hltun | awk '{print $5}' | grep -Eq "[:.]$1\$"
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# free_port prints the first port from $1 upward that nothing listens on and
# that is not in the remaining arguments (ports already picked).
free_port() {
	local p=$1
	shift
	while port_in_use "$p" || [[ " $* " == *" $p "* ]]; do
		p=$((p + 1))
	done
	echo "$p"
}

http_port=${KAHUNA_BENCH_HTTP_PORT:-$(free_port 18082)}
raft_port=${KAHUNA_BENCH_RAFT_PORT:-$(free_port 19082 "$http_port")}
gossip_port=${KAHUNA_BENCH_GOSSIP_PORT:-$(free_port 17946 "$http_port" "$raft_port")}
endpoint="http://127.0.0.1:$http_port"

mkdir -p bin
go build -o bin/kahunad ./cmd/kahunad
go build -o bin/kahuna-bench ./cmd/kahuna-bench

tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/kahuna-bench.XXXXXX")
logfile=$(mktemp "${TMPDIR:-/tmp}/kahunad-log.XXXXXX")
server_pid=""

cleanup() {
	local rc=$?
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill -TERM "$server_pid" 2>/dev/null || true
		# Give it 10 s to shut down cleanly before pulling the plug.
		for _ in $(seq 100); do
			kill -0 "$server_pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$server_pid" 2>/dev/null; then
			echo "bench.sh: kahunad ignored SIGTERM, killing it" >&2
			kill -KILL "$server_pid" 2>/dev/null || true
		fi
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmpdir" "$logfile"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

server_args=(
	--data-dir "$tmpdir"
	--http-addr "127.0.0.1:$http_port"
	--raft-addr "127.0.0.1:$raft_port"
	--gossip-addr "127.0.0.1:$gossip_port"
)
if [[ -n ${KAHUNA_PARTITIONS:-} ]]; then
	server_args+=(--partitions "$KAHUNA_PARTITIONS")
fi

echo "bench.sh: starting kahunad on $endpoint (raft :$raft_port, gossip :$gossip_port, data $tmpdir)" >&2
# setsid keeps a Ctrl-C meant for the benchmark away from the server, so the
# partial results are not spoilt by the server going down under load; the
# EXIT trap stops it afterwards. (Not being a group leader, setsid execs in
# place and $! stays the server's pid.)
launcher=()
if command -v setsid >/dev/null 2>&1; then
	launcher=(setsid)
fi
${launcher[@]+"${launcher[@]}"} bin/kahunad "${server_args[@]}" >"$logfile" 2>&1 &
server_pid=$!

# Wait for readiness here rather than only in kahuna-bench so that a server
# that dies on start-up is reported at once, with its log. Without curl,
# kahuna-bench's own -ready-timeout does the waiting.
deadline=$((SECONDS + ready_timeout))
while command -v curl >/dev/null 2>&1 &&
	! curl -fsS -o /dev/null --max-time 1 "$endpoint/readyz" 2>/dev/null; do
	if ! kill -0 "$server_pid" 2>/dev/null; then
		echo "bench.sh: kahunad exited during start-up; its log:" >&2
		cat "$logfile" >&2
		exit 1
	fi
	if ((SECONDS >= deadline)); then
		echo "bench.sh: kahunad not ready after ${ready_timeout}s; its log ends:" >&2
		tail -n 50 "$logfile" >&2
		exit 1
	fi
	sleep 0.2
done

bin/kahuna-bench -endpoint "$endpoint" -durability both -ready-timeout "${ready_timeout}s" "$@"

[[ ${KAHUNA_BENCH_CEILING:-1} == 0 ]] && exit 0

# The same load against a server that does no work on the same HTTP stack:
# what this machine can serve at most, to read the numbers above against.
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""
go build -o bin/kahuna-ceiling ./cmd/kahuna-ceiling
ceiling_port=$(free_port "$http_port")
${launcher[@]+"${launcher[@]}"} bin/kahuna-ceiling -addr "127.0.0.1:$ceiling_port" >"$logfile" 2>&1 &
server_pid=$!
# On stderr, so that stdout stays one report (one JSON document with
# -format json) of Kahuna's runs.
{
	echo
	echo "HTTP ceiling of this machine: the same load against kahuna-ceiling, which answers"
	echo "every request without doing any work (net/http + chi, as kahunad):"
} >&2
bin/kahuna-bench -endpoint "http://127.0.0.1:$ceiling_port" -durability ephemeral -ready-timeout "${ready_timeout}s" "$@" >&2
