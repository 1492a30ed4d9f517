#!/usr/bin/env bash
# What TLS and tokens cost: the usual kahuna-bench workload (64 workers,
# persistent locks) against nodes with and without the security layers,
# interleaved, on nodes of its own (docs/performance.md, "Security: what TLS
# and tokens cost").
#
#   scripts/bench-tls.sh [single|cluster|all] [kahuna-bench flags...]
#
#   single    one node: plain HTTP, HTTPS on the API, HTTPS and a bearer
#             token (--auth-file)
#   cluster   three nodes: no TLS, mutual TLS on the internal port only,
#             everything (HTTPS on the API, peer mTLS, gossip key, token);
#             on each cluster -route leader, then -route endpoint (whose
#             forwarded requests cross the internal port)
#   all       both (the default)
#   report DIR/results.tsv
#             print the tables again from a kept work folder
#
# A round measures every variant once, in an order rotated from round to
# round, each on nodes started fresh for it (data in a temporary folder)
# and stopped after it; the ratios to the variant without security are
# taken within a round, so a machine whose speed drifts still compares
# like with like. Single-node runs have 2 s of warm-up; cluster runs start
# 3 s after every node answered /readyz 200, without warm-up (as in
# "Three nodes"). Certificates come from cluster/make-certs.sh, the token
# reaches kahuna-bench in KAHUNA_TOKEN. Per run it prints req/s, p50, p99,
# the CPU per request of the servers (user + system of every node over the
# measured period, from /proc) and of the load tool (its own report), and
# the TLS handshakes of the load tool's connections; at the end, tables of
# ranges and of ratios to the plain run of the same round.
#
# Environment:
#   BENCH_TLS_ROUNDS      rounds (3)
#   BENCH_TLS_DURATION    measured period of each run (8s)
#   BENCH_TLS_WARMUP      single-node warm-up (2s)
#   BENCH_TLS_SETTLE      seconds between a cluster's readiness and its load (3)
#   BENCH_TLS_HTTP_BASE   HTTP port of the first node (38082); node i uses base + 2i
#   BENCH_TLS_RAFT_BASE   internal port (39082)
#   BENCH_TLS_GOSSIP_BASE gossip port (37946)
#   BENCH_TLS_DIR         work folder for binaries, certificates, node data
#                         and logs, and each run's JSON; kept at the end
#                         (default: a new one under $TMPDIR or /tmp, removed
#                         at the end unless BENCH_TLS_KEEP=1)
set -euo pipefail

cd "$(dirname "$0")/.."

die() {
	echo "bench-tls.sh: $*" >&2
	exit 1
}
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# report RESULTS: the tables of a results.tsv. Ranges per variant, then
# each variant against the plain run of its round: req/s, p99, and CPU per
# request (servers and load tool together), round by round.
report() {
	awk -F '\t' '
function comma(x,   s) { s = sprintf("%.0f", x); while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s }
function ms(us) { return sprintf("%.1f", us / 1000) }
function span(lo, hi) { return lo == hi ? lo : lo " – " hi }
function note(k, c, v) {
	if (!((k, c) in min) || v < min[k, c]) min[k, c] = v
	if (!((k, c) in max) || v > max[k, c]) max[k, c] = v
}
function label(k,   a) { split(k, a, SUBSEP); return (a[1] == "single" ? "1 node" : "3 nodes, -route " a[2]) ", " a[3] }
{
	key = $2 SUBSEP $4 SUBSEP $3
	if (!(key in seen)) { seen[key] = 1; order[++keys] = key }
	for (c = 5; c <= 9; c++) note(key, c, $c)
	v[$1, key, 1] = $5; v[$1, key, 2] = $7; v[$1, key, 3] = $8 + $9
	if ($1 > rounds) rounds = $1
}
END {
	print "| 64 workers, persistent | req/s | p50 (ms) | p99 (ms) | CPU per request, servers (µs) | CPU per request, load tool (µs) |"
	print "|---|---|---|---|---|---|"
	for (i = 1; i <= keys; i++) {
		k = order[i]
		printf "| %s | %s | %s | %s | %s | %s |\n", label(k), span(comma(min[k, 5]), comma(max[k, 5])),
			span(ms(min[k, 6]), ms(max[k, 6])), span(ms(min[k, 7]), ms(max[k, 7])),
			span(sprintf("%.0f", min[k, 8]), sprintf("%.0f", max[k, 8])), span(sprintf("%.0f", min[k, 9]), sprintf("%.0f", max[k, 9]))
	}
	print ""
	hdr = "| against plain, same round |"; sep = "|---|"
	for (r = 1; r <= rounds; r++) { hdr = hdr " " r " |"; sep = sep "---|" }
	print hdr; print sep
	split("req/s,p99,CPU per request", what, ",")
	for (i = 1; i <= keys; i++) {
		k = order[i]; split(k, a, SUBSEP)
		if (a[3] == "plain") continue
		base = a[1] SUBSEP a[2] SUBSEP "plain"
		for (m = 1; m <= 3; m++) {
			line = "| " label(k) ": " what[m] " |"
			for (r = 1; r <= rounds; r++)
				if (((r, base, m) in v) && ((r, k, m) in v) && v[r, base, m] > 0)
					line = line sprintf(" %.2f× |", v[r, k, m] / v[r, base, m])
				else
					line = line " – |"
			print line
		}
	}
}' "$1"
}

what=all
case ${1:-} in
single | cluster | all)
	what=$1
	shift
	;;
report)
	if [ $# -ne 2 ] || [ ! -f "$2" ]; then die "usage: scripts/bench-tls.sh report DIR/results.tsv"; fi
	report "$2"
	exit 0
	;;
esac
bench_flags=("$@")

rounds=${BENCH_TLS_ROUNDS:-3}
duration=${BENCH_TLS_DURATION:-8s}
warmup=${BENCH_TLS_WARMUP:-2s}
settle=${BENCH_TLS_SETTLE:-3}
http_base=${BENCH_TLS_HTTP_BASE:-38082}
raft_base=${BENCH_TLS_RAFT_BASE:-39082}
gossip_base=${BENCH_TLS_GOSSIP_BASE:-37946}
{ is_uint "$rounds" && [ "$rounds" -ge 1 ]; } || die "BENCH_TLS_ROUNDS: \"$rounds\" is not a number of rounds"
is_uint "$settle" || die "BENCH_TLS_SETTLE: \"$settle\" is not a number of seconds"
for p in "$http_base" "$raft_base" "$gossip_base"; do
	if ! is_uint "$p" || [ "$p" -lt 1 ] || [ "$p" -gt 65530 ]; then die "\"$p\" is not a port"; fi
done
# seconds DURATION: whole seconds of a Go duration such as 8s or 1500ms.
seconds() {
	case $1 in
	*ms) echo $((${1%ms} / 1000)) ;;
	*s) echo "${1%s}" ;;
	*) die "\"$1\": give a duration in s or ms" ;;
	esac
}
warmup_s=$(seconds "$warmup")
seconds "$duration" >/dev/null

keep=${BENCH_TLS_KEEP:-0}
if [ -n "${BENCH_TLS_DIR:-}" ]; then
	work=$BENCH_TLS_DIR keep=1 # never removed: it may hold more than this script's files
else
	work=$(mktemp -d "${TMPDIR:-/tmp}/kahuna-bench-tls.XXXXXX")
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)
bin=$work/bin
certs=$work/certs
results=$work/results.tsv

pids=() bench_pid=""
stop_nodes() {
	local pid k
	for pid in ${pids[@]+"${pids[@]}"}; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in ${pids[@]+"${pids[@]}"}; do
		for ((k = 0; k < 150; k++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
}

cleanup() {
	local rc=$?
	[ -z "$bench_pid" ] || kill -TERM "$bench_pid" 2>/dev/null || true
	stop_nodes
	if [ "$keep" = 1 ]; then
		echo "bench-tls.sh: work folder kept: $work" >&2
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() { ss -Hltun 2>/dev/null | awk '{print $5}' | grep -Eq "[:.]$1\$"; }
for i in 0 1 2; do
	for p in $((http_base + 2 * i)) $((raft_base + 2 * i)) $((gossip_base + 2 * i)); do
		! port_in_use "$p" || die "port $p is in use; pick other BENCH_TLS_*_BASE ports"
	done
done

echo "bench-tls.sh: building kahunad and kahuna-bench into $bin, certificates into $certs" >&2
mkdir -p "$bin"
"${GO:-go}" build -o "$bin/kahunad" ./cmd/kahunad
"${GO:-go}" build -o "$bin/kahuna-bench" ./cmd/kahuna-bench
cluster/make-certs.sh "$certs" n1 n2 n3 >/dev/null
head -c 32 /dev/urandom | base64 >"$work/gossip.key"
token=$(head -c 32 /dev/urandom | base64 | tr -d '/+=')
printf '{"tokens":[{"name":"bench","token":"%s","role":"lock"}]}\n' "$token" >"$work/auth.json"
chmod 600 "$work/gossip.key" "$work/auth.json"

# Variants: the flags each node gets, and whether the load tool uses HTTPS
# and the token.
api_tls() { echo "--tls-cert-file $certs/$1.crt --tls-key-file $certs/$1.key"; }
peer_tls() {
	echo "--peer-tls-cert-file $certs/$1.crt --peer-tls-key-file $certs/$1.key --peer-tls-ca-file $certs/ca.crt"
}
node_flags() { # VARIANT NODE
	case $1 in
	plain) ;;
	https) api_tls "$2" ;;
	https+token) echo "$(api_tls "$2") --auth-file $work/auth.json" ;;
	peer-mtls) peer_tls "$2" ;;
	everything) echo "$(api_tls "$2") $(peer_tls "$2") --gossip-key-file $work/gossip.key --auth-file $work/auth.json" ;;
	*) die "unknown variant $1" ;;
	esac
}
uses_https() { [[ $1 == https* || $1 == everything ]]; }
uses_token() { [[ $1 == https+token || $1 == everything ]]; }

# start_nodes N VARIANT: N fresh nodes (n1 ... nN) in $work/data.
start_nodes() {
	local n=$1 variant=$2 i id join="" args
	rm -rf "$work/data"
	mkdir -p "$work/data"
	for ((i = 0; i < n; i++)); do
		join+="${join:+,}127.0.0.1:$((gossip_base + 2 * i))"
	done
	for ((i = 0; i < n; i++)); do
		id=n$((i + 1))
		args=(--node-id "$id" --data-dir "$work/data/$id"
			--http-addr "127.0.0.1:$((http_base + 2 * i))"
			--raft-addr "127.0.0.1:$((raft_base + 2 * i))"
			--gossip-addr "127.0.0.1:$((gossip_base + 2 * i))")
		if [ "$n" -gt 1 ]; then
			args+=(--join "$join" --bootstrap-expect "$n")
		fi
		# shellcheck disable=SC2207 # the flags are words without blanks
		args+=($(node_flags "$variant" "$id"))
		# Its own session, so a Ctrl-C meant for this script does not
		# take a node down under load; cleanup stops it.
		setsid "$bin/kahunad" "${args[@]}" </dev/null >>"$work/$id.log" 2>&1 &
		pids+=($!)
	done
}

# wait_ready N VARIANT: every node answers /readyz 200 within 60 s.
wait_ready() {
	local n=$1 variant=$2 deadline=$((SECONDS + 60)) i pending ca=()
	if uses_https "$variant"; then ca=(--cacert "$certs/ca.crt"); fi
	while :; do
		pending=0
		for ((i = 0; i < n; i++)); do
			kill -0 "${pids[i]}" 2>/dev/null || {
				tail -n 30 "$work/n$((i + 1)).log" >&2
				die "n$((i + 1)) exited during start-up ($variant)"
			}
			"$bin/kahunad" health --http-addr "127.0.0.1:$((http_base + 2 * i))" "${ca[@]}" >/dev/null 2>&1 ||
				pending=$((pending + 1))
		done
		[ "$pending" -eq 0 ] && return 0
		if [ $SECONDS -ge $deadline ]; then
			tail -n 30 "$work"/n*.log >&2
			die "$pending of $n nodes not ready after 60 s ($variant)"
		fi
		sleep 0.2
	done
}


# cpu_ticks: user + system clock ticks of the running nodes, summed.
cpu_ticks() {
	local pid sum=0 stat f
	for pid in "${pids[@]}"; do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		# shellcheck disable=SC2206 # fields after the command name
		f=(${stat##*) })
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}

# json_num FILE KEY: the first number of "KEY": in a kahuna-bench JSON report.
json_num() { sed -n "s/^ *\"$2\": \([0-9.]*\).*/\1/p" "$1" | head -n 1; }

# measure ROUND SETUP VARIANT ROUTE N WARMUP_S: one kahuna-bench run
# against the running nodes; a line of results.tsv and one on stderr.
measure() {
	local round=$1 setup=$2 variant=$3 route=$4 n=$5 wsec=$6 scheme=http endpoints="" i out before after
	local flags=(-durability persistent -duration "$duration" -warmup "${wsec}s" -route "$route" -format json)
	if uses_https "$variant"; then
		scheme=https
		flags+=(-cacert "$certs/ca.crt")
	fi
	for ((i = 0; i < n; i++)); do
		endpoints+="${endpoints:+,}$scheme://127.0.0.1:$((http_base + 2 * i))"
	done
	out=$work/r$round-$setup-$variant-$route.json
	(
		if uses_token "$variant"; then export KAHUNA_TOKEN=$token; else unset KAHUNA_TOKEN; fi
		exec "$bin/kahuna-bench" -endpoint "$endpoints" "${flags[@]}" ${bench_flags[@]+"${bench_flags[@]}"}
	) >"$out" 2>>"$work/bench.log" &
	bench_pid=$!
	sleep "$wsec"
	before=$(cpu_ticks)
	wait "$bench_pid" || die "kahuna-bench failed ($setup $variant $route); see $work/bench.log"
	bench_pid=""
	after=$(cpu_ticks)
	local rps p50 p99 reqs hs res entries cpu client
	rps=$(json_num "$out" requestsPerSec)
	p50=$(json_num "$out" p50)
	p99=$(json_num "$out" p99)
	reqs=$(json_num "$out" requests)
	hs=$(json_num "$out" tlsHandshakes)
	res=$(json_num "$out" tlsResumed)
	entries=$(json_num "$out" raftEntries)
	client=$(json_num "$out" clientCpuSeconds)
	cpu=$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$reqs" 'BEGIN { printf "%.1f", (r > 0 ? t * 1e6 / hz / r : 0) }')
	client=$(awk -v c="${client:-0}" -v r="$reqs" 'BEGIN { printf "%.1f", (r > 0 ? c * 1e6 / r : 0) }')
	printf '%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$setup" "$variant" "$route" "$rps" "$p50" "$p99" \
		"$cpu" "$client" "${hs:-0}" "${res:-0}" "${entries:-}" >>"$results"
	printf 'round %s  %-7s %-11s %-8s %6.0f req/s  p50 %5.1f ms  p99 %6.1f ms  CPU/req: servers %5.1f us, load tool %4.1f us  TLS handshakes %s (%s resumed)\n' \
		"$round" "$setup" "$variant" "$route" "$rps" "$(awk -v v="$p50" 'BEGIN{print v/1000}')" \
		"$(awk -v v="$p99" 'BEGIN{print v/1000}')" "$cpu" "$client" "${hs:-0}" "${res:-0}" >&2
}

# rotated ROUND ITEMS...: the items rotated left by ROUND-1.
rotated() {
	local r=$1 k
	shift
	local items=("$@") n=$#
	for ((k = 0; k < n; k++)); do
		echo "${items[(k + r - 1) % n]}"
	done
}

: >"$results"
echo "bench-tls.sh: $rounds rounds of $what, $duration each; load average $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2
for ((round = 1; round <= rounds; round++)); do
	if [ "$what" != cluster ]; then
		for v in $(rotated "$round" plain https https+token); do
			start_nodes 1 "$v"
			wait_ready 1 "$v"
			measure "$round" single "$v" endpoint 1 "$warmup_s"
			stop_nodes
		done
	fi
	if [ "$what" != single ]; then
		for v in $(rotated "$round" plain peer-mtls everything); do
			start_nodes 3 "$v"
			wait_ready 3 "$v"
			sleep "$settle"
			measure "$round" cluster "$v" leader 3 0
			measure "$round" cluster "$v" endpoint 3 0
			stop_nodes
		done
	fi
done
echo "bench-tls.sh: done; load average $(cut -d ' ' -f 1-3 /proc/loadavg)" >&2

report "$results"
