#!/usr/bin/env bash
# A three-node Kahuna cluster of local processes, for trying things out and
# for tests, that can grow and shrink.
#
#   cluster/local.sh start    build bin/kahunad, start n1 n2 n3 (and the nodes
#                             added since), wait until ready
#   cluster/local.sh stop     SIGTERM the nodes, SIGKILL any still running after
#                             $KAHUNA_CLUSTER_STOP_TIMEOUT seconds
#   cluster/local.sh status   each node's readiness, the members and the
#                             partition leaders (exit 0 only when all are ready)
#   cluster/local.sh logs [-f] [n1|n2|n3|n4 ...]
#                             the end of each node's log, or follow them
#   cluster/local.sh add [N]  start N more nodes (default 1), n4, n5, ..., each
#                             with an empty data directory, joining the running
#                             cluster; wait until each is ready (a voter)
#   cluster/local.sh remove ID
#                             bin/kahuna-cli --remove-node ID against the
#                             running nodes, then stop node ID if it is one of
#                             these local nodes; start never restarts it
#
# `start` starts only the nodes that are not running, so it also brings back
# a node that was killed. Data, logs and pid files live in one folder:
#   $KAHUNA_CLUSTER_DIR/n1/       data directory of n1
#   $KAHUNA_CLUSTER_DIR/n1.log    its output
#   $KAHUNA_CLUSTER_DIR/n1.pid    its process ID
#   $KAHUNA_CLUSTER_DIR/n1.removed  present once `remove n1` took it out
#   $KAHUNA_CLUSTER_DIR/nodes     the members and the addresses they run on
# A node ID is never used twice: `add` after `remove n4` starts n5.
#
# A secure cluster: `KAHUNA_CLUSTER_SECURE=1 cluster/local.sh start` (make
# cluster-secure). The first such start makes, with cluster/make-secrets.sh,
#   $KAHUNA_CLUSTER_DIR/secure/   (mode 0700) a throw-away CA, a certificate
#                                 per node, kahuna-cli.crt, gossip.key, a
#                                 random admin token (admin.token, 0600) and
#                                 auth.json admitting it
# prints the token once, and every node then runs with HTTPS on its API,
# mutual TLS on its internal port, encrypted gossip and --auth-file. The
# folder marks the cluster secure: start, stop, status, add (which signs the
# new node's certificate) and remove keep using it without the variable.
# Then: kahuna-cli -c https://... --cacert secure/ca.crt, token in
# KAHUNA_TOKEN=$(cat secure/admin.token); curl --cacert secure/ca.crt
# -H "Authorization: Bearer $(cat secure/admin.token)" https://...
# To also require client certificates, add
# KAHUNA_CLUSTER_ARGS="--tls-client-ca-file $KAHUNA_CLUSTER_DIR/secure/ca.crt"
# (the script presents secure/kahuna-cli.crt itself).
#
# Settings (environment):
#   KAHUNA_BIN                    kahunad to run; unset: go build -o bin/kahunad
#   KAHUNA_CLUSTER_DIR            default cluster/data
#   KAHUNA_CLUSTER_HOST           default 127.0.0.1
#   KAHUNA_CLUSTER_HTTP_BASE      default 8082 (n1 8082, n2 8084, n3 8086, n4 8088, ...)
#   KAHUNA_CLUSTER_RAFT_BASE      default 9082 (9082, 9084, 9086, 9088, ...)
#   KAHUNA_CLUSTER_GOSSIP_BASE    default 7946 (7946, 7948, 7950, 7952, ...)
#   KAHUNA_CLUSTER_PORT_STEP      default 2
#   KAHUNA_CLUSTER_HTTP_PORTS     explicit ports of n1, n2, n3 (and n4, ... if
#   KAHUNA_CLUSTER_RAFT_PORTS       listed), e.g. "31001 31007 31013", space or
#   KAHUNA_CLUSTER_GOSSIP_PORTS     comma separated; they win over the *_BASE
#                                   variables. `add` takes a node's port from
#                                   this scheme (after a list: its last port
#                                   plus a step per node), stepping on past a
#                                   port that a member uses or something
#                                   listens on.
#   KAHUNA_CLUSTER_ARGS           extra kahunad flags for every node,
#                                 e.g. "--log-level debug"
#   KAHUNA_CLUSTER_TIMEOUT        seconds `start` waits for readiness (30), and
#                                 `add` for each new node's (60)
#   KAHUNA_CLUSTER_STOP_TIMEOUT   seconds `stop` and `remove` wait before
#                                 SIGKILL (15)
#   KAHUNA_CLI                    kahuna-cli for `remove`; unset: the one next
#                                 to KAHUNA_BIN, else go build -o bin/kahuna-cli
#   KAHUNA_CLUSTER_SECURE         1: `start` makes the cluster secure (above);
#                                 0: `start` refuses a secure cluster folder;
#                                 unset: as the folder is
# Other KAHUNA_* variables (KAHUNA_LOG_LEVEL, KAHUNA_PARTITIONS, ...) reach
# kahunad as usual; the per-node ones are set by this script.
#
# Needs bash (3.2 or later) and coreutils; `status` uses curl when it is
# installed and bash's /dev/tcp otherwise (a secure cluster's status needs
# curl, and making its certificates needs Go).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
base_nodes=(n1 n2 n3)

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

# A secure cluster keeps its certificates, gossip key and admin token in
# $sdir; that folder is what makes it secure (see secure_setup).
sdir=$dir/secure
secure=0 scheme=http tls_cli=() new_token=0
use_secure() {
	secure=1 scheme=https
	# The script presents kahuna-cli.crt too, so that it still gets in when
	# the nodes also require client certificates (--tls-client-ca-file).
	tls_cli=(--cacert "$sdir/ca.crt" --cert "$sdir/kahuna-cli.crt" --key "$sdir/kahuna-cli.key")
}
if [ -d "$sdir" ]; then use_secure; fi

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_node_id() { [[ $1 =~ ^n[0-9]+$ ]]; }
is_base() { [ "$1" = n1 ] || [ "$1" = n2 ] || [ "$1" = n3 ]; }

# removed NODE: `remove` took NODE out of the cluster; it never runs again.
removed() { [ -f "$dir/$1.removed" ]; }

# ports KIND BASE [K]: the ports of KIND (HTTP, RAFT, GOSSIP) of n1 ... nK
# (K defaults to 3), one per line: those listed in KAHUNA_CLUSTER_KIND_PORTS
# and, beyond the list, its last port plus a step per node; without a list
# BASE, BASE+STEP, BASE+2*STEP, ...
ports() {
	local kind=$1 base=$2 count=${3:-3} list_var base_var step list p i n last
	list_var=KAHUNA_CLUSTER_${kind}_PORTS
	base_var=KAHUNA_CLUSTER_${kind}_BASE
	step=${KAHUNA_CLUSTER_PORT_STEP:-2}
	list=${!list_var:-}
	is_uint "$step" || die "KAHUNA_CLUSTER_PORT_STEP: \"$step\" is not a number"
	if [ -n "$list" ]; then
		# shellcheck disable=SC2206 # splitting on spaces and commas is the point
		local a=(${list//,/ })
		n=${#a[@]}
		[ "$n" -ge 3 ] || die "$list_var must list at least 3 ports, got \"$list\""
		for p in "${a[@]}"; do
			is_uint "$p" && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "$list_var: \"$p\" is not a port"
		done
		last=${a[n - 1]}
		for ((i = 0; i < count; i++)); do
			if [ "$i" -lt "$n" ]; then
				p=${a[i]}
			else
				p=$((last + (i - n + 1) * step))
			fi
			[ "$p" -le 65535 ] || die "$list_var: port $p (of n$((i + 1))) is out of range"
			echo "$p"
		done
		return
	fi
	base=${!base_var:-$base}
	is_uint "$base" || die "$base_var: \"$base\" is not a port"
	for ((i = 0; i < count; i++)); do
		p=$((base + i * step))
		[ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "$base_var: port $p is out of range"
		echo "$p"
	done
}

# The members: nodes[i] with addresses HTTP[i], RAFT[i], GOSSIP[i]. n1 n2 n3
# (less those removed), then the nodes `add` started. A running cluster
# keeps the addresses it was started with (the nodes file); otherwise n1 n2
# n3 take theirs from the environment and added nodes keep theirs.
nodes=() HTTP=() RAFT=() GOSSIP=()
member() {
	nodes+=("$1") HTTP+=("$2") RAFT+=("$3") GOSSIP+=("$4")
}

# file_members calls FUNC ID HTTP RAFT GOSSIP for each line of the nodes file.
file_members() {
	local fn=$1 id http raft gossip line=0
	[ -f "$dir/nodes" ] || return 0
	while read -r id http raft gossip; do
		line=$((line + 1))
		is_node_id "$id" && [ -n "$gossip" ] || die "$dir/nodes is damaged (line $line: \"$id\"); delete it"
		"$fn" "$id" "$http" "$raft" "$gossip"
	done <"$dir/nodes"
}

config_from_env() {
	local host=${KAHUNA_CLUSTER_HOST:-127.0.0.1} h r g i
	h=$(ports HTTP 8082) || exit 1
	r=$(ports RAFT 9082) || exit 1
	g=$(ports GOSSIP 7946) || exit 1
	# shellcheck disable=SC2206 # one port per line
	h=($h) r=($r) g=($g)
	for i in 0 1 2; do
		removed "${base_nodes[i]}" || member "${base_nodes[i]}" "$host:${h[i]}" "$host:${r[i]}" "$host:${g[i]}"
	done
	file_members added_member
}
added_member() { is_base "$1" || removed "$1" || member "$@"; }

config_from_file() {
	file_members kept_member
	[ ${#nodes[@]} -gt 0 ] || die "$dir/nodes lists no node; delete it"
}
kept_member() { removed "$1" || member "$@"; }

write_config() {
	local i
	for i in "${!nodes[@]}"; do
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

# any_running: a node of n1 n2 n3 or of the nodes file runs.
any_running() {
	local n id _
	for n in "${base_nodes[@]}"; do
		pid_of "$n" >/dev/null && return 0
	done
	[ -f "$dir/nodes" ] || return 1
	while read -r id _; do
		is_node_id "$id" && pid_of "$id" >/dev/null && return 0
	done <"$dir/nodes"
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
# For a secure cluster it asks over HTTPS with the admin token (given to curl
# on stdin, not on its command line) and needs curl.
http_get() {
	local addr=$1 path=$2 out code
	if [ $secure -eq 1 ]; then
		out=$(printf 'header = "Authorization: Bearer %s"\n' "$(cat "$sdir/admin.token")" |
			curl -K - -s -m 3 "${tls_cli[@]}" -w '\n%{http_code}' "https://$addr$path" 2>/dev/null) || return 1
		code=${out##*$'\n'}
		printf '%s\n' "${out%$'\n'*}"
	elif have curl; then
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

# build_cli sets cli to kahuna-cli: $KAHUNA_CLI, the one next to
# $KAHUNA_BIN, or bin/kahuna-cli built now.
build_cli() {
	if [ -n "${KAHUNA_CLI:-}" ]; then
		cli=$(abspath "$KAHUNA_CLI")
		[ -x "$cli" ] || die "KAHUNA_CLI=$KAHUNA_CLI is not an executable file"
		return
	fi
	if [ -n "${KAHUNA_BIN:-}" ] && [ -x "$(dirname "$(abspath "$KAHUNA_BIN")")/kahuna-cli" ]; then
		cli=$(dirname "$(abspath "$KAHUNA_BIN")")/kahuna-cli
		return
	fi
	have "${GO:-go}" || die "go is not installed; install Go or set KAHUNA_CLI to a kahuna-cli binary"
	echo "building bin/kahuna-cli"
	(cd "$repo" && "${GO:-go}" build -o bin/kahuna-cli ./cmd/kahuna-cli) || die "go build failed"
	cli=$repo/bin/kahuna-cli
}

# start_node I JOIN [FLAGS...]: start nodes[I], joining the gossip
# addresses JOIN (comma-separated), with extra kahunad FLAGS.
start_node() {
	local i=$1 n=${nodes[$1]} join=$2 pid sec=()
	shift 2
	mkdir -p "$dir/$n"
	if [ $secure -eq 1 ]; then
		# HTTPS on the API and mutual TLS on the internal port, both with
		# the node's certificate; encrypted gossip; tokens.
		sec=(--tls-cert-file "$sdir/$n.crt" --tls-key-file "$sdir/$n.key"
			--peer-tls-cert-file "$sdir/$n.crt" --peer-tls-key-file "$sdir/$n.key"
			--peer-tls-ca-file "$sdir/ca.crt"
			--gossip-key-file "$sdir/gossip.key" --auth-file "$sdir/auth.json")
	fi
	{
		echo
		echo "=== $(date -u +%Y-%m-%dT%H:%M:%SZ) local.sh starting $n"
	} >>"$dir/$n.log"
	# The node gets its own session (setsid), so it outlives this script and
	# a Ctrl-C in the terminal that started it; stdin and stdout are not the
	# caller's, so a caller reading this script's output is not held open.
	# shellcheck disable=SC2086 # KAHUNA_CLUSTER_ARGS is a list of flags
	(
		unset KAHUNA_ADVERTISE_HTTP KAHUNA_ADVERTISE_RAFT KAHUNA_ADVERTISE_GOSSIP KAHUNA_DEBUG_ADDR KAHUNA_BOOTSTRAP_EXPECT
		setsid=()
		if have setsid; then setsid=(setsid); fi
		exec ${setsid[@]+"${setsid[@]}"} "$bin" \
			--node-id "$n" \
			--data-dir "$dir/$n" \
			--http-addr "${HTTP[i]}" \
			--raft-addr "${RAFT[i]}" \
			--gossip-addr "${GOSSIP[i]}" \
			--join "$join" \
			${sec[@]+"${sec[@]}"} \
			"$@" \
			${KAHUNA_CLUSTER_ARGS:-}
	) </dev/null >>"$dir/$n.log" 2>&1 &
	pid=$!
	echo "$pid" >"$dir/$n.pid"
	echo "started $n (pid $pid), log $dir/$n.log"
}

# wait_ready SECONDS WHAT EXITED LATE I...: wait until nodes[I]... are
# ready (/readyz 200, asked through kahunad health). If one exits first, say
# so, show its log and die with EXITED; if they are not ready in time, say
# why, show the logs and die with LATE.
wait_ready() {
	local timeout=$1 what=$2 exited=$3 late=$4 i n pid deadline pending reason why=()
	shift 4
	echo "waiting up to ${timeout}s for $what to be ready"
	deadline=$((SECONDS + timeout))
	while :; do
		pending=()
		for i in "$@"; do
			n=${nodes[i]}
			# (alive, not pid_of: a node just started may not have
			# exec'd kahunad yet.)
			pid=$(cat "$dir/$n.pid" 2>/dev/null) || pid=""
			if ! is_uint "$pid" || ! alive "$pid"; then
				if [ "$what" = "$n" ]; then
					echo "local.sh: $n exited before it was ready" >&2
				else
					echo "local.sh: $n exited before $what was ready" >&2
				fi
				log_tail "$n" >&2
				die "$exited"
			fi
			# kahunad health prints /readyz's reply (or why there is none).
			if reason=$("$bin" health --http-addr "${HTTP[i]}" ${tls_cli[@]+"${tls_cli[@]}"} 2>&1); then
				continue
			fi
			pending+=("$i")
			why[i]=$reason
		done
		[ ${#pending[@]} -eq 0 ] && return 0
		if [ $SECONDS -ge "$deadline" ]; then
			echo "local.sh: $what is not ready after ${timeout}s:" >&2
			for i in "${pending[@]}"; do
				echo "  ${nodes[i]}: ${why[i]}" >&2
			done
			for i in "$@"; do log_tail "${nodes[i]}" >&2; done
			die "$late"
		fi
		sleep 0.2
	done
}

# gossip_of I...: the gossip addresses of nodes[I]..., comma-separated.
gossip_of() {
	local i out=()
	for i in "$@"; do out+=("${GOSSIP[i]}"); done
	(
		IFS=,
		echo "${out[*]}"
	)
}

# secure_setup: KAHUNA_CLUSTER_SECURE=1 makes the cluster secure (a stopped
# plain one too: its data carries over), =0 refuses a secure one; then a
# secure cluster gets whatever it misses of its material.
secure_setup() {
	local want=${KAHUNA_CLUSTER_SECURE:-}
	case $want in
	"") ;;
	1 | yes | true | on) want=1 ;;
	0 | no | false | off) want=0 ;;
	*) die "KAHUNA_CLUSTER_SECURE: \"$want\" is not 1 or 0" ;;
	esac
	if [ "$want" = 0 ] && [ $secure -eq 1 ]; then
		die "$dir is a secure cluster ($sdir); to run it on plain HTTP, stop it and delete $sdir (the data stays)"
	fi
	if [ "$want" = 1 ] && [ $secure -eq 0 ]; then
		if any_running; then
			die "nodes of $dir run without security; stop them first (cluster/local.sh stop), then start again with KAHUNA_CLUSTER_SECURE=1 (the data stays)"
		fi
		use_secure
	fi
	[ $secure -eq 0 ] || make_secrets "${nodes[@]}"
}

# make_secrets NODE...: run cluster/make-secrets.sh when $sdir misses a file
# the cluster or NODE... needs; it only adds what is missing. Sets new_token
# when it made the admin token.
make_secrets() {
	local n f missing=() host san=() out
	for f in ca.crt kahuna-cli.crt kahuna-cli.key gossip.key admin.token auth.json; do
		[ -f "$sdir/$f" ] || missing+=("$f")
	done
	for n in "$@"; do
		for f in "$n.crt" "$n.key"; do
			[ -f "$sdir/$f" ] || missing+=("$f")
		done
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	[ -f "$sdir/admin.token" ] && [ -f "$sdir/auth.json" ] || new_token=1
	have "${GO:-go}" || die "making certificates needs Go (cluster/make-certs.sh); install it, or run cluster/make-secrets.sh $sdir $* where Go is"
	# Node certificates name the node, 127.0.0.1, ::1 and localhost; a
	# cluster on another address needs it named too.
	host=${HTTP[0]%:*}
	host=${host#[}
	host=${host%]}
	case $host in 127.0.0.1 | localhost | ::1) ;; *) san=(--san "$host") ;; esac
	if [ -f "$sdir/ca.crt" ]; then
		echo "adding ${missing[*]} to $sdir"
	else
		echo "making a CA, certificates, a gossip key and an admin token in $sdir"
	fi
	out=$(GO=${GO:-go} bash "$here/make-secrets.sh" ${san[@]+"${san[@]}"} "$sdir" "$@" 2>&1) || {
		printf '%s\n' "$out" >&2
		die "cluster/make-secrets.sh failed"
	}
}

cmd_start() {
	local timeout=${KAHUNA_CLUSTER_TIMEOUT:-30} i n pid join last
	is_uint "$timeout" || die "KAHUNA_CLUSTER_TIMEOUT: \"$timeout\" is not a number of seconds"
	build
	mkdir -p "$dir"
	load_config
	[ ${#nodes[@]} -gt 0 ] || die "every node of $dir was removed; delete $dir to start a new cluster"
	secure_setup
	write_config
	join=$(gossip_of "${!nodes[@]}")
	for i in "${!nodes[@]}"; do
		n=${nodes[i]}
		if pid=$(pid_of "$n"); then
			echo "$n is already running (pid $pid)"
		elif is_base "$n"; then
			start_node "$i" "$join" --bootstrap-expect 3
		else
			# An added node restarts on its data; it formed nothing.
			start_node "$i" "$join"
		fi
	done

	wait_ready "$timeout" "the cluster" \
		"start failed; the other nodes may still run: cluster/local.sh status, cluster/local.sh stop" \
		"start failed; the nodes are still running: cluster/local.sh status, cluster/local.sh logs, cluster/local.sh stop" \
		"${!nodes[@]}"

	echo
	if [ $secure -eq 1 ]; then
		echo "Secure Kahuna cluster ready (HTTPS, mutual TLS between nodes, encrypted gossip, tokens); data and logs in $dir, certificates and token in $sdir"
	else
		echo "Kahuna cluster ready; data and logs in $dir"
	fi
	for i in "${!nodes[@]}"; do
		echo "  ${nodes[i]}  $scheme://${HTTP[i]}  (raft ${RAFT[i]}, gossip ${GOSSIP[i]}, pid $(pid_of "${nodes[i]}"))"
	done
	last=$((${#nodes[@]} - 1))
	echo
	if [ $secure -eq 1 ]; then
		if [ $new_token -eq 1 ]; then
			echo "Admin token (shown this once; it stays in $sdir/admin.token, mode 0600):"
			echo "  $(cat "$sdir/admin.token")"
			echo
		fi
		echo "Try:  export KAHUNA_TOKEN=\$(cat $sdir/admin.token)"
		echo "      curl -s --cacert $sdir/ca.crt -H \"Authorization: Bearer \$KAHUNA_TOKEN\" -XPOST https://${HTTP[0]}/v1/locks/try-lock -d '{\"resource\":\"db-migration\",\"owner\":\"host-a\",\"expiresMs\":60000}'"
		echo "      bin/kahuna-cli -c https://${HTTP[last]} --cacert $sdir/ca.crt --cluster"
	else
		echo "Try:  curl -s -XPOST ${HTTP[0]}/v1/locks/try-lock -d '{\"resource\":\"db-migration\",\"owner\":\"host-a\",\"expiresMs\":60000}'"
		echo "      curl -s ${HTTP[last]}/v1/cluster/status"
	fi
	echo "Then: cluster/local.sh status | logs | add | remove ID | stop   (or make cluster-status, make cluster-stop)"
}

# stop_nodes I...: SIGTERM nodes[I]... that run, SIGKILL any still running
# after KAHUNA_CLUSTER_STOP_TIMEOUT seconds, and drop their pid files. It
# returns 1 when none was running.
stop_nodes() {
	local timeout=${KAHUNA_CLUSTER_STOP_TIMEOUT:-15} i n pid deadline sent=() left
	is_uint "$timeout" || die "KAHUNA_CLUSTER_STOP_TIMEOUT: \"$timeout\" is not a number of seconds"
	for i in "$@"; do
		n=${nodes[i]}
		if pid=$(pid_of "$n"); then
			sent[i]=$pid
			kill -TERM "$pid" 2>/dev/null || true
			echo "sent SIGTERM to $n (pid $pid)"
		else
			rm -f "$dir/$n.pid"
		fi
	done
	[ ${#sent[@]} -gt 0 ] || return 1
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
}

cmd_stop() {
	load_config
	if [ ${#nodes[@]} -eq 0 ] || ! stop_nodes "${!nodes[@]}"; then
		echo "no node of $dir is running"
		return 0
	fi
	echo "stopped"
}

# json_str JSON KEY / json_num JSON KEY: the first value of KEY in a flat
# JSON object (good enough for kahunad's replies; no jq needed).
# json_list JSON KEY: the strings of an array, comma-separated.
json_str() { [[ $1 =~ \"$2\":\"([^\"]*)\" ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }
json_num() { [[ $1 =~ \"$2\":(-?[0-9]+) ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }
json_list() {
	[[ $1 =~ \"$2\":\[([^]]*)\] ]] || return 1
	local v=${BASH_REMATCH[1]}
	v=${v//\"/}
	printf '%s\n' "$v"
}

cmd_status() {
	local i n pid body ready=0 source="" status="" part parts item leader role nonvoters
	load_config
	if [ $secure -eq 1 ]; then
		have curl || die "the status of a secure cluster needs curl (for HTTPS)"
		echo "secure cluster in $dir (certificates and admin token in $sdir)"
	else
		echo "cluster in $dir"
	fi
	for i in "${!nodes[@]}"; do
		n=${nodes[i]}
		pid=$(pid_of "$n") || pid=""
		if [ -z "$pid" ]; then
			printf '  %-3s %-28s %-12s %s\n' "$n" "$scheme://${HTTP[i]}" "-" "not running"
			continue
		fi
		if body=$(http_get "${HTTP[i]}" /readyz); then
			ready=$((ready + 1))
			printf '  %-3s %-28s %-12s %s\n' "$n" "$scheme://${HTTP[i]}" "pid $pid" "ready"
			if [ -z "$source" ] && body=$(http_get "${HTTP[i]}" /v1/cluster/status); then
				source=$n status=$body
			fi
		else
			printf '  %-3s %-28s %-12s %s\n' "$n" "$scheme://${HTTP[i]}" "pid $pid" \
				"not ready: $(json_str "$body" reason || echo "${body:-no answer}")"
		fi
	done
	if [ -n "$source" ]; then
		echo "members as $source sees them:"
		part=${status#*\"nodes\":[}
		part=${part%%]*}
		while IFS= read -r item; do
			[ -n "$item" ] || continue
			role=$(json_str "$item" role) || role=""
			printf '  %-3s %-8s %-10s %s://%s\n' "$(json_str "$item" id)" "$(json_str "$item" state)" \
				"${role:--}" "$scheme" "$(json_str "$item" httpAddr)"
		done < <(printf '%s\n' "$part" | sed 's/},{/}\n{/g')
		echo "partition leaders as $source sees them:"
		parts=${status#*\"partitions\":[}
		while IFS= read -r item; do
			[ -n "$item" ] || continue
			leader=$(json_str "$item" leader) || leader=""
			nonvoters=$(json_list "$item" nonVoters) || nonvoters=""
			printf '  partition %-3s leader %-6s term %-4s locks %s%s\n' "$(json_num "$item" id)" \
				"${leader:-none}" "$(json_num "$item" term || echo '?')" "$(json_num "$item" locks || echo '?')" \
				"${nonvoters:+  non-voters $nonvoters}"
		done < <(printf '%s\n' "$parts" | sed 's/},{/}\n{/g' | grep '"leader"')
	fi
	[ ${#nodes[@]} -gt 0 ] && [ "$ready" -eq ${#nodes[@]} ]
}

cmd_logs() {
	local follow=0 n files=()
	while [ $# -gt 0 ]; do
		case $1 in
		-f | --follow) follow=1 ;;
		n[0-9]*)
			is_node_id "$1" || die "logs: unknown argument \"$1\" (use -f and node IDs: n1, n2, ...)"
			files+=("$dir/$1.log")
			;;
		*) die "logs: unknown argument \"$1\" (use -f and node IDs: n1, n2, ...)" ;;
		esac
		shift
	done
	if [ ${#files[@]} -eq 0 ]; then
		load_config
		for n in ${nodes[@]+"${nodes[@]}"}; do files+=("$dir/$n.log"); done
		[ ${#files[@]} -gt 0 ] || die "no node in $dir"
	fi
	if [ $follow -eq 1 ]; then
		exec tail -n "${KAHUNA_CLUSTER_LOG_LINES:-10}" -F "${files[@]}"
	fi
	for n in "${files[@]}"; do
		[ -f "$n" ] || die "no log at $n (has the cluster been started?)"
	done
	tail -n "${KAHUNA_CLUSTER_LOG_LINES:-25}" "${files[@]}"
}

# running_indexes: the indexes in nodes of the members that run.
running_indexes() {
	local i
	for i in "${!nodes[@]}"; do
		if pid_of "${nodes[i]}" >/dev/null; then echo "$i"; fi
	done
}

# next_number: one more than the highest node number this cluster has used
# (members, removed nodes, their data and logs), so that no node ID, and no
# data directory, serves twice.
next_number() {
	local max=3 f k
	for f in ${nodes[@]+"${nodes[@]}"} "$dir"/n*; do
		f=${f##*/}
		f=${f%%.*}
		[[ $f =~ ^n([0-9]+)$ ]] || continue
		k=$((10#${BASH_REMATCH[1]}))
		[ "$k" -le "$max" ] || max=$k
	done
	echo $((max + 1))
}

# listening HOST PORT: something accepts TCP connections there.
listening() {
	local host=${1#[} limit=()
	host=${host%]}
	if have timeout; then limit=(timeout 1); fi
	${limit[@]+"${limit[@]}"} bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$2" 2>/dev/null
}

# free_port KIND BASE K HOST: the port of KIND for node nK by the port
# scheme (see ports), or the first one a step after it that no member uses
# and nothing listens on.
free_port() {
	local kind=$1 base=$2 k=$3 host=$4 p a step=${KAHUNA_CLUSTER_PORT_STEP:-2} taken tries=0
	p=$(ports "$kind" "$base" "$k" | tail -n 1) || exit 1
	[ "$step" -ge 1 ] || step=1
	while :; do
		taken=0
		for a in "${HTTP[@]}" "${RAFT[@]}" "${GOSSIP[@]}"; do
			[ "${a##*:}" != "$p" ] || taken=1
		done
		[ $taken -eq 1 ] || ! listening "$host" "$p" || taken=1
		[ $taken -eq 1 ] || break
		tries=$((tries + 1))
		p=$((p + step))
		[ $tries -lt 100 ] && [ "$p" -le 65535 ] || die "found no free $kind port for n$k"
	done
	echo "$p"
}

cmd_add() {
	local count=${1:-1} timeout=${KAHUNA_CLUSTER_TIMEOUT:-60} k running
	[ $# -le 1 ] || die "add takes one argument, the number of nodes to add (cluster/local.sh add [N])"
	is_uint "$count" && [ "$count" -ge 1 ] || die "add: \"$count\" is not a number of nodes (cluster/local.sh add [N])"
	is_uint "$timeout" || die "KAHUNA_CLUSTER_TIMEOUT: \"$timeout\" is not a number of seconds"
	build
	load_config
	running=$(running_indexes)
	[ -n "$running" ] || die "no node of $dir is running; start the cluster first: cluster/local.sh start"
	for ((k = 0; k < count; k++)); do
		add_node "$timeout"
	done
}

# add_node SECONDS: start one more node with an empty data directory that
# joins the members that run, and wait until it is ready: a voter of every
# partition.
add_node() {
	local timeout=$1 num n host h r g i join
	# shellcheck disable=SC2046 # one index per line
	join=$(gossip_of $(running_indexes))
	[ -n "$join" ] || die "no node of $dir is running any more"
	num=$(next_number)
	n=n$num
	[ ! -e "$dir/$n" ] || die "$dir/$n exists; a joining node needs an empty data directory"
	host=${HTTP[0]%:*}
	h=$(free_port HTTP 8082 "$num" "$host") || exit 1
	r=$(free_port RAFT 9082 "$num" "$host") || exit 1
	g=$(free_port GOSSIP 7946 "$num" "$host") || exit 1
	member "$n" "$host:$h" "$host:$r" "$host:$g"
	i=$((${#nodes[@]} - 1))
	if [ $secure -eq 1 ]; then
		make_secrets "$n"
		echo "$n's certificate: $sdir/$n.crt (signed by $sdir/ca.crt)"
	fi
	write_config
	echo "adding $n, joining through $join"
	# No --bootstrap-expect: the node joins the cluster that runs and forms
	# none.
	start_node "$i" "$join"
	wait_ready "$timeout" "$n" \
		"$n did not join. It stays in $dir/nodes, so cluster/local.sh start retries it; cluster/local.sh remove $n gives up on it" \
		"$n still runs and may yet join: cluster/local.sh status, cluster/local.sh logs $n; cluster/local.sh remove $n gives up on it" \
		"$i"
	echo "$n joined: $scheme://${HTTP[i]}  (raft ${RAFT[i]}, gossip ${GOSSIP[i]}, pid $(pid_of "$n"))"
}

# forget I: nodes[I] is no member any more: out of the nodes file, and
# marked removed so that start never brings it back.
forget() {
	local i=$1 j n=${nodes[$1]} keep_n=() keep_h=() keep_r=() keep_g=()
	date -u +%Y-%m-%dT%H:%M:%SZ >"$dir/$n.removed"
	rm -f "$dir/$n.pid"
	for j in "${!nodes[@]}"; do
		[ "$j" -ne "$i" ] || continue
		keep_n+=("${nodes[j]}") keep_h+=("${HTTP[j]}") keep_r+=("${RAFT[j]}") keep_g+=("${GOSSIP[j]}")
	done
	nodes=(${keep_n[@]+"${keep_n[@]}"}) HTTP=(${keep_h[@]+"${keep_h[@]}"})
	RAFT=(${keep_r[@]+"${keep_r[@]}"}) GOSSIP=(${keep_g[@]+"${keep_g[@]}"})
	write_config
}

cmd_remove() {
	local id=${1:-} i mine="" self="" endpoints=() out code
	if [ -z "$id" ] || [ $# -gt 1 ]; then
		echo "usage: cluster/local.sh remove ID   (a node ID, e.g. n4)" >&2
		exit 2
	fi
	load_config
	for i in "${!nodes[@]}"; do
		[ "${nodes[i]}" != "$id" ] || mine=$i
		pid_of "${nodes[i]}" >/dev/null || continue
		if [ "${nodes[i]}" = "$id" ]; then
			self=$scheme://${HTTP[i]}
		else
			endpoints+=("$scheme://${HTTP[i]}")
		fi
	done
	# The node itself is asked last: it may answer, but the others stay.
	[ -z "$self" ] || endpoints+=("$self")
	[ ${#endpoints[@]} -gt 0 ] || die "no node of $dir is running; the cluster must run to remove a node"
	build_cli
	out=$(
		IFS=,
		if [ $secure -eq 1 ]; then
			KAHUNA_TOKEN=$(cat "$sdir/admin.token")
			export KAHUNA_TOKEN
		fi
		"$cli" --connection-source "${endpoints[*]}" ${tls_cli[@]+"${tls_cli[@]}"} --remove-node "$id" 2>&1
	) && code=0 || code=$?
	printf '%s\n' "$out"
	case $code in
	0) ;;
	1)
		# A node the cluster does not know (one that never joined) is
		# safe to stop; any other refusal changed nothing.
		if [[ $out == "not removed: unknown node"* ]] && [ -n "$mine" ]; then
			echo "the cluster does not know $id; stopping and forgetting the local node"
		else
			echo "local.sh: $id was not removed; nothing changed" >&2
			exit 1
		fi
		;;
	*)
		echo "local.sh: kahuna-cli --remove-node $id failed (exit $code); $id may or may not be removed: cluster/local.sh status" >&2
		exit "$code"
		;;
	esac
	if [ -z "$mine" ]; then
		echo "$id is not a node of $dir; nothing to stop here"
		return 0
	fi
	stop_nodes "$mine" || echo "$id was not running"
	forget "$mine"
	if [ $secure -eq 1 ]; then
		# Its certificate would still be trusted (there is no revocation):
		# the key goes, so nothing can be node $id again.
		rm -f "$sdir/$id.key" "$sdir/$id.crt"
	fi
	echo "removed $id; its data and log stay in $dir ($id/, $id.log) and can serve no cluster again"
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
add)
	shift
	cmd_add "$@"
	;;
remove)
	shift
	cmd_remove "$@"
	;;
-h | --help | help) usage ;;
*)
	usage >&2
	exit 2
	;;
esac
