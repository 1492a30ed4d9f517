#!/usr/bin/env bash
# A three-node Kahuna cluster of local processes, for trying things out and
# for tests.
#
#   cluster/local.sh start    build bin/kahunad, start n1 n2 n3, wait until ready
#   cluster/local.sh stop     SIGTERM the nodes, SIGKILL any still running after
#                             $KAHUNA_CLUSTER_STOP_TIMEOUT seconds
#   cluster/local.sh status   each node's readiness and the partition leaders
#                             (exit 0 only when all three are ready)
#   cluster/local.sh logs [-f] [n1|n2|n3 ...]
#                             the end of each node's log, or follow them
#
# `start` starts only the nodes that are not running, so it also brings back
# a node that was killed. Data, logs and pid files live in one folder:
#   $KAHUNA_CLUSTER_DIR/n1/       data directory of n1
#   $KAHUNA_CLUSTER_DIR/n1.log    its output
#   $KAHUNA_CLUSTER_DIR/n1.pid    its process ID
#   $KAHUNA_CLUSTER_DIR/nodes     the addresses the nodes were started with
#
# Settings (environment):
#   KAHUNA_BIN                    kahunad to run; unset: go build -o bin/kahunad
#   KAHUNA_CLUSTER_DIR            default cluster/data
#   KAHUNA_CLUSTER_HOST           default 127.0.0.1
#   KAHUNA_CLUSTER_HTTP_BASE      default 8082 (n1 8082, n2 8084, n3 8086)
#   KAHUNA_CLUSTER_RAFT_BASE      default 9082 (9082, 9084, 9086)
#   KAHUNA_CLUSTER_GOSSIP_BASE    default 7946 (7946, 7948, 7950)
#   KAHUNA_CLUSTER_PORT_STEP      default 2
#   KAHUNA_CLUSTER_HTTP_PORTS     three explicit ports, e.g. "31001 31007 31013"
#   KAHUNA_CLUSTER_RAFT_PORTS       (space or comma separated); they win over
#   KAHUNA_CLUSTER_GOSSIP_PORTS     the *_BASE variables
#   KAHUNA_CLUSTER_ARGS           extra kahunad flags for every node,
#                                 e.g. "--log-level debug"
#   KAHUNA_CLUSTER_TIMEOUT        seconds `start` waits for readiness (30)
#   KAHUNA_CLUSTER_STOP_TIMEOUT   seconds `stop` waits before SIGKILL (15)
# Other KAHUNA_* variables (KAHUNA_LOG_LEVEL, KAHUNA_PARTITIONS, ...) reach
# kahunad as usual; the per-node ones are set by this script.
#
# Needs bash and coreutils; `status` uses curl when it is installed and
# bash's /dev/tcp otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
nodes=(n1 n2 n3)

die() {
	echo "local.sh: $*" >&2
	exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# abspath DIR prints DIR as an absolute path without requiring it to exist.
abspath() {
	case $1 in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$PWD" "$1" ;;
	esac
}

dir=$(abspath "${KAHUNA_CLUSTER_DIR:-$here/data}")
dir=${dir%/}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ports KIND BASE: the three ports of KIND (HTTP, RAFT, GOSSIP), one per line.
ports() {
	local kind=$1 base=$2 list_var base_var step list p i
	list_var=KAHUNA_CLUSTER_${kind}_PORTS
	base_var=KAHUNA_CLUSTER_${kind}_BASE
	step=${KAHUNA_CLUSTER_PORT_STEP:-2}
	list=${!list_var:-}
	if [ -n "$list" ]; then
		# shellcheck disable=SC2206 # splitting on spaces and commas is the point
		local a=(${list//,/ })
		[ ${#a[@]} -eq 3 ] || die "$list_var must list 3 ports, got \"$list\""
		for p in "${a[@]}"; do
			is_uint "$p" && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "$list_var: \"$p\" is not a port"
			echo "$p"
		done
		return
	fi
	base=${!base_var:-$base}
	is_uint "$base" || die "$base_var: \"$base\" is not a port"
	is_uint "$step" || die "KAHUNA_CLUSTER_PORT_STEP: \"$step\" is not a number"
	for i in 0 1 2; do
		p=$((base + i * step))
		[ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "$base_var: port $p is out of range"
		echo "$p"
	done
}

# Node addresses: HTTP[i], RAFT[i], GOSSIP[i] for nodes[i]. A running
# cluster keeps the addresses it was started with (the nodes file); otherwise
# they come from the environment.
HTTP=() RAFT=() GOSSIP=()
config_from_env() {
	local host=${KAHUNA_CLUSTER_HOST:-127.0.0.1} h r g i
	h=$(ports HTTP 8082) || exit 1
	r=$(ports RAFT 9082) || exit 1
	g=$(ports GOSSIP 7946) || exit 1
	# shellcheck disable=SC2206 # one port per line
	h=($h) r=($r) g=($g)
	for i in 0 1 2; do
		HTTP[i]=$host:${h[i]}
		RAFT[i]=$host:${r[i]}
		GOSSIP[i]=$host:${g[i]}
	done
}
config_from_file() {
	local id http raft gossip i=0
	while read -r id http raft gossip; do
		[ "$id" = "${nodes[i]}" ] || die "$dir/nodes is damaged (line $((i + 1)): \"$id\"); delete it"
		HTTP[i]=$http RAFT[i]=$raft GOSSIP[i]=$gossip
		i=$((i + 1))
		[ $i -lt 3 ] || break
	done <"$dir/nodes"
	[ $i -eq 3 ] || die "$dir/nodes is damaged (fewer than 3 nodes); delete it"
}
write_config() {
	local i
	for i in 0 1 2; do
		echo "${nodes[i]} ${HTTP[i]} ${RAFT[i]} ${GOSSIP[i]}"
	done >"$dir/nodes"
}

cmdline_of() {
	if [ -r "/proc/$1/cmdline" ]; then
		tr '\0' '\n' <"/proc/$1/cmdline"
	else
		ps -p "$1" -o command= 2>/dev/null | tr ' ' '\n'
	fi
}

# alive PID: the process exists and is not a zombie.
alive() {
	kill -0 "$1" 2>/dev/null || return 1
	if [ -r "/proc/$1/stat" ]; then
		local stat
		stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
		stat=${stat##*) }
		[ "${stat%% *}" != Z ] || return 1
	fi
	return 0
}

# pid_of NODE prints the PID of NODE if it runs: the pid file names a live
# process whose command line has this cluster's data directory of NODE, so a
# recycled PID is never mistaken for a node.
pid_of() {
	local f=$dir/$1.pid pid
	[ -f "$f" ] || return 1
	pid=$(cat "$f" 2>/dev/null) || return 1
	is_uint "$pid" || return 1
	alive "$pid" || return 1
	cmdline_of "$pid" | grep -Fxq -- "$dir/$1" || return 1
	echo "$pid"
}

any_running() {
	local n
	for n in "${nodes[@]}"; do
		pid_of "$n" >/dev/null && return 0
	done
	return 1
}

load_config() {
	if [ -f "$dir/nodes" ] && any_running; then
		config_from_file
	else
		config_from_env
	fi
}

# http_get ADDR PATH prints the reply body; it succeeds on HTTP 200 only.
http_get() {
	local addr=$1 path=$2 out code
	if have curl; then
		out=$(curl -s -m 3 -w '\n%{http_code}' "http://$addr$path" 2>/dev/null) || return 1
		code=${out##*$'\n'}
		printf '%s\n' "${out%$'\n'*}"
	else
		out=$(timeout 3 bash -c '
			exec 3<>"/dev/tcp/$0/$1" || exit 1
			printf "GET %s HTTP/1.0\r\nHost: %s:%s\r\nConnection: close\r\n\r\n" "$2" "$0" "$1" >&3
			cat <&3' "${addr%:*}" "${addr##*:}" "$path" 2>/dev/null) || return 1
		code=$(printf '%s\n' "$out" | head -n 1 | cut -d ' ' -f 2)
		printf '%s\n' "$out" | sed '1,/^\r\{0,1\}$/d'
	fi
	[ "$code" = 200 ]
}

log_tail() {
	local n
	for n in "$@"; do
		echo "--- last lines of $dir/$n.log ---"
		tail -n "${KAHUNA_CLUSTER_LOG_LINES:-25}" "$dir/$n.log" 2>/dev/null || echo "(no log)"
	done
}

build() {
	if [ -n "${KAHUNA_BIN:-}" ]; then
		bin=$(abspath "$KAHUNA_BIN")
		[ -x "$bin" ] || die "KAHUNA_BIN=$KAHUNA_BIN is not an executable file"
		return
	fi
	have "${GO:-go}" || die "go is not installed; install Go or set KAHUNA_BIN to a kahunad binary"
	echo "building bin/kahunad"
	(cd "$repo" && "${GO:-go}" build -o bin/kahunad ./cmd/kahunad) || die "go build failed"
	bin=$repo/bin/kahunad
}

start_node() {
	local i=$1 n=${nodes[$1]} join pid
	join=$(
		IFS=,
		echo "${GOSSIP[*]}"
	)
	mkdir -p "$dir/$n"
	{
		echo
		echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) local.sh starting $n"
	} >>"$dir/$n.log"
	# The node gets its own session (setsid), so it outlives this script and
	# a Ctrl-C in the terminal that started it; stdin and stdout are not the
	# caller's, so a caller reading this script's output is not held open.
	# shellcheck disable=SC2086 # KAHUNA_CLUSTER_ARGS is a list of flags
	(
		unset KAHUNA_ADVERTISE_HTTP KAHUNA_ADVERTISE_RAFT KAHUNA_ADVERTISE_GOSSIP KAHUNA_DEBUG_ADDR
		setsid=()
		if have setsid; then setsid=(setsid); fi
		exec "${setsid[@]}" "$bin" \
			--node-id "$n" \
			--data-dir "$dir/$n" \
			--http-addr "${HTTP[i]}" \
			--raft-addr "${RAFT[i]}" \
			--gossip-addr "${GOSSIP[i]}" \
			--join "$join" \
			--bootstrap-expect 3 \
			${KAHUNA_CLUSTER_ARGS:-}
	) </dev/null >>"$dir/$n.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/$n.pid"
	echo "started $n (pid $pid), log $dir/$n.log"
}

cmd_start() {
	local timeout=${KAHUNA_CLUSTER_TIMEOUT:-30} i n pid deadline pending reason why=()
	is_uint "$timeout" || die "KAHUNA_CLUSTER_TIMEOUT: \"$timeout\" is not a number of seconds"
	build
	mkdir -p "$dir"
	load_config
	write_config
	for i in 0 1 2; do
		n=${nodes[i]}
		if pid=$(pid_of "$n"); then
			echo "$n is already running (pid $pid)"
		else
			start_node "$i"
		fi
	done

	echo "waiting up to ${timeout}s for the cluster to be ready"
	deadline=$((SECONDS + timeout))
	while :; do
		pending=()
		for i in 0 1 2; do
			n=${nodes[i]}
			# (alive, not pid_of: a node just started may not have
			# exec'd kahunad yet.)
			pid=$(cat "$dir/$n.pid" 2>/dev/null) || pid=""
			if ! is_uint "$pid" || ! alive "$pid"; then
				echo "local.sh: $n exited before the cluster was ready" >&2
				log_tail "$n" >&2
				die "start failed; the other nodes may still run: cluster/local.sh status, cluster/local.sh stop"
			fi
			# kahunad health prints /readyz's reply (or why there is none).
			if reason=$("$bin" health --http-addr "${HTTP[i]}" 2>&1); then
				continue
			fi
			pending+=("$i")
			why[i]=$reason
		done
		[ ${#pending[@]} -eq 0 ] && break
		if [ $SECONDS -ge "$deadline" ]; then
			echo "local.sh: the cluster is not ready after ${timeout}s:" >&2
			for i in "${pending[@]}"; do
				echo "  ${nodes[i]}: ${why[i]}" >&2
			done
			log_tail "${nodes[@]}" >&2
			die "start failed; the nodes are still running: cluster/local.sh status, cluster/local.sh logs, cluster/local.sh stop"
		fi
		sleep 0.2
	done

	echo
	echo "Kahuna cluster ready; data and logs in $dir"
	for i in 0 1 2; do
		echo "  ${nodes[i]}  http://${HTTP[i]}  (raft ${RAFT[i]}, gossip ${GOSSIP[i]}, pid $(pid_of "${nodes[i]}"))"
	done
	echo
	echo "Try:  curl -s -XPOST ${HTTP[0]}/v1/locks/try-lock -d '{\"resource\":\"db-migration\",\"owner\":\"host-a\",\"expiresMs\":60000}'"
	echo "      curl -s ${HTTP[2]}/v1/cluster/status"
	echo "Then: cluster/local.sh status | logs | stop   (or make cluster-status, make cluster-stop)"
}

cmd_stop() {
	local timeout=${KAHUNA_CLUSTER_STOP_TIMEOUT:-15} i n pid deadline sent=() left
	is_uint "$timeout" || die "KAHUNA_CLUSTER_STOP_TIMEOUT: \"$timeout\" is not a number of seconds"
	for i in 0 1 2; do
		n=${nodes[i]}
		if pid=$(pid_of "$n"); then
			sent[i]=$pid
			kill -TERM "$pid" 2>/dev/null || true
			echo "sent SIGTERM to $n (pid $pid)"
		else
			rm -f "$dir/$n.pid"
		fi
	done
	if [ ${#sent[@]} -eq 0 ]; then
		echo "no node of $dir is running"
		return 0
	fi
	deadline=$((SECONDS + timeout))
	while :; do
		left=()
		for i in "${!sent[@]}"; do
			if alive "${sent[i]}"; then
				left+=("$i")
			fi
		done
		[ ${#left[@]} -eq 0 ] && break
		if [ $SECONDS -ge "$deadline" ]; then
			for i in "${left[@]}"; do
				echo "${nodes[i]} (pid ${sent[i]}) still runs after ${timeout}s; sending SIGKILL"
				kill -KILL "${sent[i]}" 2>/dev/null || true
			done
			sleep 0.5
			break
		fi
		sleep 0.1
	done
	for i in "${!sent[@]}"; do
		if alive "${sent[i]}"; then
			die "${nodes[i]} (pid ${sent[i]}) survived SIGKILL"
		fi
		rm -f "$dir/${nodes[i]}.pid"
	done
	echo "stopped"
}

# json_str JSON KEY / json_num JSON KEY: the first value of KEY in a flat
# JSON object (good enough for kahunad's replies; no jq needed).
json_str() { [[ $1 =~ \"$2\":\"([^\"]*)\" ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }
json_num() { [[ $1 =~ \"$2\":(-?[0-9]+) ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }

cmd_status() {
	local i n pid body ready=0 source="" status="" part parts item leader
	load_config
	echo "cluster in $dir"
	for i in 0 1 2; do
		n=${nodes[i]}
		pid=$(pid_of "$n") || pid=""
		if [ -z "$pid" ]; then
			printf '  %-3s %-28s %-12s %s\n' "$n" "http://${HTTP[i]}" "-" "not running"
			continue
		fi
		if body=$(http_get "${HTTP[i]}" /readyz); then
			ready=$((ready + 1))
			printf '  %-3s %-28s %-12s %s\n' "$n" "http://${HTTP[i]}" "pid $pid" "ready"
			if [ -z "$source" ] && body=$(http_get "${HTTP[i]}" /v1/cluster/status); then
				source=$n status=$body
			fi
		else
			printf '  %-3s %-28s %-12s %s\n' "$n" "http://${HTTP[i]}" "pid $pid" \
				"not ready: $(json_str "$body" reason || echo "${body:-no answer}")"
		fi
	done
	if [ -n "$source" ]; then
		echo "members as $source sees them:"
		part=${status#*\"nodes\":[}
		part=${part%%]*}
		while IFS= read -r item; do
			[ -n "$item" ] || continue
			printf '  %-3s %-8s http://%s\n' "$(json_str "$item" id)" "$(json_str "$item" state)" "$(json_str "$item" httpAddr)"
		done < <(printf '%s\n' "$part" | sed 's/},{/}\n{/g')
		echo "partition leaders as $source sees them:"
		parts=${status#*\"partitions\":[}
		while IFS= read -r item; do
			[ -n "$item" ] || continue
			leader=$(json_str "$item" leader) || leader=""
			printf '  partition %-3s leader %-6s term %-4s locks %s\n' "$(json_num "$item" id)" \
				"${leader:-none}" "$(json_num "$item" term || echo '?')" "$(json_num "$item" locks || echo '?')"
		done < <(printf '%s\n' "$parts" | sed 's/},{/}\n{/g' | grep '"leader"')
	fi
	[ "$ready" -eq 3 ]
}

cmd_logs() {
	local follow=0 n files=()
	while [ $# -gt 0 ]; do
		case $1 in
		-f | --follow) follow=1 ;;
		n1 | n2 | n3) files+=("$dir/$1.log") ;;
		*) die "logs: unknown argument \"$1\" (use -f and n1, n2, n3)" ;;
		esac
		shift
	done
	if [ ${#files[@]} -eq 0 ]; then
		for n in "${nodes[@]}"; do files+=("$dir/$n.log"); done
	fi
	if [ $follow -eq 1 ]; then
		exec tail -n "${KAHUNA_CLUSTER_LOG_LINES:-10}" -F "${files[@]}"
	fi
	for n in "${files[@]}"; do
		[ -f "$n" ] || die "no log at $n (has the cluster been started?)"
	done
	tail -n "${KAHUNA_CLUSTER_LOG_LINES:-25}" "${files[@]}"
}

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
logs)
	shift
	cmd_logs "$@"
	;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
