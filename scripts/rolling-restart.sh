#!/usr/bin/env bash
# Rolling restart under load: restarts every node of the local cluster
# (cluster/local.sh) one at a time, each ready again before the next goes
# down, while kahuna-bench drives it as a client that retries 101 and
# connection errors within a per-operation deadline. Prints the latency of a
# steady window against that of the roll, and the operations that failed;
# exits 1 if any did.
#
#   scripts/rolling-restart.sh [kahuna-bench flags...]
#   e.g. scripts/rolling-restart.sh -workers 32 -route leader
#
# A cluster that runs (all nodes ready) is rolled and left running; if none
# of its nodes runs, one is started with cluster/local.sh start and stopped
# at the end. Each node is restarted with cluster/local.sh start, which
# brings back the nodes that are not running and waits until every node is
# ready; so the restarted node runs bin/kahunad as built now.
# kahuna-bench's -duration, -warmup, -retry and -format are set here.
#
# Environment:
#   KAHUNA_ROLL_ROUNDS   steady window and roll pairs, interleaved (1)
#   KAHUNA_ROLL_STEADY   seconds of each steady window, after 2 s of warm-up (10)
#   KAHUNA_ROLL_SIGNAL   how a node goes down: TERM, a clean shutdown that
#                        hands its leaderships over (default), or KILL (kill -9)
#   KAHUNA_ROLL_RETRY    the client's deadline per operation (10s)
#   KAHUNA_ROLL_SETTLE   seconds of load after the last node is ready, still
#                        counted in the roll (2)
#   KAHUNA_CLUSTER_DIR, KAHUNA_CLUSTER_*_BASE, ... pick the cluster as for
#                        cluster/local.sh (default cluster/data, ports 8082...)
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$PWD

rounds=${KAHUNA_ROLL_ROUNDS:-1}
steady=${KAHUNA_ROLL_STEADY:-10}
sig=${KAHUNA_ROLL_SIGNAL:-TERM}
retry=${KAHUNA_ROLL_RETRY:-10s}
settle=${KAHUNA_ROLL_SETTLE:-2}

die() {
	echo "rolling-restart.sh: $*" >&2
	exit 1
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
if ! is_uint "$rounds" || [ "$rounds" -lt 1 ]; then
	die "KAHUNA_ROLL_ROUNDS: \"$rounds\" is not a number of rounds"
fi
if ! is_uint "$steady" || [ "$steady" -lt 1 ]; then
	die "KAHUNA_ROLL_STEADY: \"$steady\" is not a number of seconds"
fi
is_uint "$settle" || die "KAHUNA_ROLL_SETTLE: \"$settle\" is not a number of seconds"
case $sig in
TERM | KILL) ;;
*) die "KAHUNA_ROLL_SIGNAL: \"$sig\" is neither TERM nor KILL" ;;
esac

dir=${KAHUNA_CLUSTER_DIR:-cluster/data}
case $dir in
/*) ;;
*) dir=$repo/$dir ;;
esac
dir=${dir%/}
export KAHUNA_CLUSTER_DIR=$dir

echo "building bin/kahunad and bin/kahuna-bench" >&2
mkdir -p bin
"${GO:-go}" build -o bin/kahunad ./cmd/kahunad
"${GO:-go}" build -o bin/kahuna-bench ./cmd/kahuna-bench
# cluster/local.sh runs this binary instead of building its own each time.
export KAHUNA_BIN=$repo/bin/kahunad

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kahuna-roll.XXXXXX")
started_here=0 bench_pid="" restore=0

# alive PID: the process exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		local stat
		stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
		stat=${stat##*) }
		[ "${stat%% *}" != Z ] || return 1
	fi
}

# pid_of ID: the PID of node ID of this cluster if it runs (its pid file
# names a live process with the node's data directory on its command line,
# as cluster/local.sh checks).
pid_of() {
	local pid
	pid=$(cat "$dir/$1.pid" 2>/dev/null) || return 1
	is_uint "$pid" && alive "$pid" || return 1
	if [ -r "/proc/$pid/cmdline" ]; then
		tr '\0' '\n' <"/proc/$pid/cmdline" | grep -Fxq -- "$dir/$1" || return 1
	fi
	echo "$pid"
}

local_sh() { bash "$repo/cluster/local.sh" "$@"; }

cleanup() {
	local rc=$?
	if [ -n "$bench_pid" ] && alive "$bench_pid"; then
		kill -TERM "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
	fi
	if [ $started_here -eq 1 ]; then
		echo "stopping the cluster this script started" >&2
		local_sh stop >&2 || true
	elif [ $restore -eq 1 ]; then
		echo "bringing back the nodes that are down" >&2
		local_sh start >&2 || true
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The cluster: the members cluster/local.sh wrote to its nodes file
# ("ID HTTP RAFT GOSSIP" per line).
members() {
	[ -f "$dir/nodes" ] || return 0
	local id http _
	while read -r id http _; do
		[[ $id =~ ^n[0-9]+$ ]] && echo "$id $http"
	done <"$dir/nodes"
}
running=0
while read -r id _; do
	[ -n "$id" ] || continue
	if pid_of "$id" >/dev/null; then running=$((running + 1)); fi
done < <(members)
if [ $running -eq 0 ]; then
	echo "no node of $dir runs; starting the cluster" >&2
	started_here=1
	local_sh start >&2 || die "cluster/local.sh start failed"
elif ! local_sh status >"$tmp/status" 2>&1; then
	cat "$tmp/status" >&2
	die "the cluster in $dir is not ready; a rolling restart starts from a healthy cluster"
fi

ids=() endpoints=()
while read -r id http; do
	ids+=("$id")
	endpoints+=("http://$http")
done < <(members)
[ ${#ids[@]} -ge 3 ] || die "$dir has ${#ids[@]} nodes; restarting one of fewer than 3 stops the cluster"
eps=$(
	IFS=,
	echo "${endpoints[*]}"
)
bench=(bin/kahuna-bench -endpoint "$eps" "$@" -retry "$retry" -format json)
echo "nodes: ${ids[*]}; load: ${bench[*]}" >&2

# json_num FILE KEY: the first number of KEY in kahuna-bench's JSON.
json_num() {
	grep -o "\"$2\": [0-9.e+-]*" "$1" | head -n 1 | sed 's/.*: //'
}

rows=() failed_total=0
# report NAME FILE: a row of the summary from a kahuna-bench JSON result.
report() {
	local name=$1 f=$2 ops secs p50 p99 max retries errors failed unfinished
	ops=$(json_num "$f" requests) || ops=""
	[ -n "$ops" ] || die "$name: kahuna-bench gave no result; its log:$(printf '\n')$(cat "$f.log")"
	secs=$(json_num "$f" durationSeconds)
	p50=$(json_num "$f" p50) p99=$(json_num "$f" p99) max=$(json_num "$f" max)
	retries=$(json_num "$f" retries) errors=$(json_num "$f" errors) failed=$(json_num "$f" failedOps)
	unfinished=$(json_num "$f" unfinishedOps) || true
	failed_total=$((failed_total + failed))
	rows+=("$(awk -v n="$name" -v o="$ops" -v s="$secs" -v a="$p50" -v b="$p99" -v c="$max" \
		-v r="$retries" -v e="$errors" -v f="$failed" -v u="${unfinished:-0}" \
		'BEGIN { printf "%-8s %8d %8.0f %8.1f %8.1f %8.1f %8d %8d %7d %11d", n, o, o / s, a / 1000, b / 1000, c / 1000, r, e, f, u }')")
}

# run_bench OUT ARGS...: kahuna-bench with the given window; exit 0, or 1
# when operations failed (the summary says how many).
run_bench() {
	local out=$1 rc=0
	shift
	"${bench[@]}" "$@" >"$out" 2>"$out.log" || rc=$?
	[ $rc -eq 0 ] || [ $rc -eq 1 ] || die "kahuna-bench exited $rc; its log:$(printf '\n')$(cat "$out.log")"
}

# restart ID: take node ID down with SIG, start it again and wait until
# every node is ready.
restart() {
	local id=$1 pid t0 t1 t2 deadline
	pid=$(pid_of "$id") || die "$id is not running"
	t0=$(date +%s.%N)
	restore=1
	kill "-$sig" "$pid"
	deadline=$((SECONDS + ${KAHUNA_CLUSTER_STOP_TIMEOUT:-15}))
	while alive "$pid"; do
		if [ $SECONDS -ge "$deadline" ]; then
			echo "$id (pid $pid) still runs after SIG$sig; sending SIGKILL" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		sleep 0.05
	done
	t1=$(date +%s.%N)
	local_sh start >"$tmp/start.log" 2>&1 || {
		cat "$tmp/start.log" >&2
		die "$id did not come back"
	}
	restore=0
	t2=$(date +%s.%N)
	awk -v id="$id" -v s="SIG$sig" -v a="$t0" -v b="$t1" -v c="$t2" \
		'BEGIN { printf "  %s: %s, down in %.2f s, every node ready %.2f s after its start\n", id, s, b - a, c - b }' >&2
}

for ((round = 1; round <= rounds; round++)); do
	echo "round $round: steady load, ${steady} s after 2 s of warm-up" >&2
	run_bench "$tmp/steady$round" -warmup 2s -duration "${steady}s"
	report "steady $round" "$tmp/steady$round"

	echo "round $round: rolling restart of ${ids[*]} under load" >&2
	# The load runs until SIGTERM ends it after the roll; it is measured
	# from its first request.
	"${bench[@]}" -warmup 0s -duration 24h >"$tmp/roll$round" 2>"$tmp/roll$round.log" &
	bench_pid=$!
	sleep 1
	alive "$bench_pid" || die "kahuna-bench exited at once; its log:$(printf '\n')$(cat "$tmp/roll$round.log")"
	for id in "${ids[@]}"; do
		restart "$id"
	done
	sleep "$settle"
	kill -TERM "$bench_pid"
	rc=0
	wait "$bench_pid" || rc=$?
	bench_pid=""
	# 130: interrupted, which is how this window ends.
	[ $rc -eq 130 ] || [ $rc -eq 0 ] || [ $rc -eq 1 ] ||
		die "kahuna-bench exited $rc; its log:$(printf '\n')$(cat "$tmp/roll$round.log")"
	report "roll $round" "$tmp/roll$round"
done

echo
echo "rolling restart (SIG$sig) of ${ids[*]}; client retries within $retry; latency per operation, retries included"
printf '%-8s %8s %8s %8s %8s %8s %8s %8s %7s %11s\n' window ops ops/s "p50 ms" "p99 ms" "max ms" retried errors failed unfinished
printf '%s\n' "${rows[@]}"
if [ $failed_total -gt 0 ]; then
	echo "rolling-restart.sh: $failed_total operations failed despite retrying within $retry" >&2
	exit 1
fi
