#!/usr/bin/env bash
# End-to-end test of the container image and cluster/docker-compose.yml
# (`make test-docker`):
#
#   1. build the image (cluster/image.sh) under a tag of its own
#   2. compose up the three nodes and wait until Docker says all are healthy
#   3. take a persistent lock through kahuna1, see it Busy through kahuna3
#      and held through kahuna2
#   4. docker kill the node leading the lock's partition; the other two keep
#      serving, the lock included
#   5. start the killed container again: it becomes healthy and sees the lock
#   5b. disconnect the current leader from the cluster network: the other two
#      elect a new leader and serve; reconnected, it follows them
#   6. compose stop: every node exits with code 0 on SIGTERM; compose down -v
#   then the secure variant (docker-compose.secure.yml over the same file):
#   7. cluster/make-secrets.sh makes a CA, certificates for kahuna1..3, a
#      gossip key and an admin token in a temporary folder; compose up, and
#      all three become healthy (the healthcheck asks over HTTPS)
#   8. a lock through kahuna1 over HTTPS with the token, Busy through
#      kahuna3; without a token, or with a wrong one: 401; a client that does
#      not trust the CA: no connection; plain HTTP to the port: no lock
#      service
#   9. an intruder: a container of the same image on the cluster network,
#      without certificates or gossip key, that asks to join through
#      kahuna1; for 10 s the cluster status (admin token) shows only the
#      three voters, and then the lock is still alice's
#  10. always, even on failure or Ctrl-C: compose down -v, remove the
#      intruder, the secrets and the image tag
#
# The compose projects are named kahuna-test-<time>-<pid>(-secure), and the
# APIs are published on host ports Docker picks, so this never touches a
# cluster a user runs from the same files, nor the host's 8082/8084/8086.
#
# Needs docker (with `docker compose` or docker-compose), curl and Go.
# KAHUNA_DOCKER_TEST_TIMEOUT (seconds, default 120) bounds each wait;
# KAHUNA_DOCKER_TEST=plain or secure runs only that part (default both).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
t0=$SECONDS
timeout=${KAHUNA_DOCKER_TEST_TIMEOUT:-120}
project=kahuna-test-$(date +%s)-$$
image=kahuna-go/kahunad:test-$project
resource=docker-test/persistent
services=(kahuna1 kahuna2 kahuna3)
parts=${KAHUNA_DOCKER_TEST:-all}

log() { printf '[docker-test %3ds] %s\n' $((SECONDS - t0)) "$*"; }
fail() {
	printf '[docker-test %3ds] FAIL: %s\n' $((SECONDS - t0)) "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

have docker || fail "docker is not installed"
docker info >/dev/null 2>&1 || fail "the Docker daemon does not answer (docker info fails)"
if docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
elif have docker-compose; then
	compose=(docker-compose)
else
	fail "neither 'docker compose' nor docker-compose is installed"
fi
have curl || fail "curl is not installed"
case $parts in all | plain | secure) ;; *) fail "KAHUNA_DOCKER_TEST=$parts: want plain, secure or all" ;; esac

# Settings for the compose file: our image, loopback, ports Docker picks.
export KAHUNA_IMAGE=$image KAHUNA_PUBLISH_IP=127.0.0.1
export KAHUNA1_HTTP_PORT='' KAHUNA2_HTTP_PORT='' KAHUNA3_HTTP_PORT=''

# The compose files of the part that runs (the secure part adds its own).
files=(--file "$here/docker-compose.yml")
dc() { "${compose[@]}" --project-name "$project" "${files[@]}" "$@"; }

# down: compose down -v the project that is up.
down() {
	log "compose down -v"
	dc down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 ||
		dc down --volumes --remove-orphans --timeout 10
}

up=0 built=0 intruder="" secrets=""
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ $rc -ne 0 ] && [ $up -eq 1 ]; then
		echo "--- containers ---" >&2
		dc ps >&2 || true
		echo "--- logs (last 40 lines of each) ---" >&2
		dc logs --no-color --tail 40 >&2 || true
		if [ -n "$intruder" ]; then
			echo "--- the intruder's log (last 20 lines) ---" >&2
			docker logs --tail 20 "$intruder" >&2 || true
		fi
	fi
	if [ -n "$intruder" ]; then
		docker rm -f -v "$intruder" >/dev/null 2>&1 || rc=1
	fi
	if [ $up -eq 1 ]; then
		down || rc=1
	fi
	if [ -n "$secrets" ]; then
		rm -rf "$secrets" || rc=1
	fi
	if [ $built -eq 1 ]; then
		docker image rm "$image" >/dev/null || rc=1
	fi
	if [ $rc -eq 0 ]; then
		log "PASS"
	else
		log "FAILED (exit $rc)"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# json_str JSON KEY / json_num JSON KEY: the first value of KEY in a flat
# JSON reply.
json_str() { [[ $1 =~ \"$2\":\"([^\"]*)\" ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }
json_num() { [[ $1 =~ \"$2\":(-?[0-9]+) ]] && printf '%s\n' "${BASH_REMATCH[1]}"; }

# cid_of SERVICE: its container, looked up once after compose up (compose
# is slow to ask, and docker start keeps the container).
declare -a cids
cid_of() {
	local i=${1#kahuna}
	[ -n "${cids[i]:-}" ] || return 1
	echo "${cids[i]}"
}

# host_port SERVICE: the host port the service's API is published on.
host_port() {
	local out
	out=$(docker port "$(cid_of "$1")" 8082/tcp 2>/dev/null | head -n 1) || return 1
	[[ ${out##*:} =~ ^[0-9]+$ ]] || return 1
	echo "${out##*:}"
}

# call SERVICE PATH [JSON]: POST JSON (GET without) to the service's API;
# prints the body, or nothing if there was no answer. The secure part sets
# scheme to https and curl_auth to the CA and the token.
declare -a port
scheme=http curl_auth=()
call() {
	local i=${1#kahuna} url
	url=$scheme://127.0.0.1:${port[i]}$2
	if [ $# -ge 3 ]; then
		curl -s -m 10 ${curl_auth[@]+"${curl_auth[@]}"} -XPOST "$url" -d "$3" 2>/dev/null || true
	else
		curl -s -m 10 ${curl_auth[@]+"${curl_auth[@]}"} "$url" 2>/dev/null || true
	fi
}

# lookup_cids: the containers of the project just brought up.
lookup_cids() {
	local s
	cids=()
	for s in "${services[@]}"; do
		cids[${s#kahuna}]=$(dc ps -q "$s")
		[ -n "${cids[${s#kahuna}]}" ] || fail "compose up did not create $s"
	done
}

# wait_healthy SECONDS SERVICE...: until Docker reports every service
# healthy; also looks up their host ports.
wait_healthy() {
	local limit=$1 s states all cid state next=$((SECONDS + 10))
	shift
	local deadline=$((SECONDS + limit))
	while :; do
		all=1 states=""
		for s in "$@"; do
			cid=$(cid_of "$s") || cid=""
			state=missing
			if [ -n "$cid" ]; then
				state=$(docker inspect -f '{{.State.Status}}/{{if .State.Health}}{{.State.Health.Status}}{{end}}' "$cid" 2>/dev/null) || state=missing
			fi
			states+=" $s=$state"
			[ "$state" = running/healthy ] || all=0
			case $state in exited/* | dead/*) fail "$s stopped:$states" ;; esac
		done
		[ $all -eq 1 ] && break
		[ $SECONDS -lt "$deadline" ] || fail "not healthy within ${limit}s:$states"
		if [ $SECONDS -ge $next ]; then
			log "waiting:$states"
			next=$((SECONDS + 10))
		fi
		sleep 1
	done
	for s in "$@"; do
		port[${s#kahuna}]=$(host_port "$s") || fail "no host port for $s"
	done
}

# 1. The image.
log "building $image"
built=1
build_log=$(mktemp "${TMPDIR:-/tmp}/kahuna-docker-test.XXXXXX")
if ! GO=${GO:-go} bash "$here/image.sh" "$image" >"$build_log" 2>&1; then
	cat "$build_log" >&2
	rm -f "$build_log"
	fail "building the image failed"
fi
rm -f "$build_log"
t_built=$SECONDS
plain_timings="" base_project=$project

plain_part() {
	# 2. The cluster.
	log "compose up (project $project, ${compose[*]})"
	up=1
	dc up -d
	lookup_cids
	wait_healthy "$timeout" "${services[@]}"
	t_healthy=$SECONDS
	log "all three healthy after $((t_healthy - t_built))s; APIs on 127.0.0.1:${port[1]}, :${port[2]}, :${port[3]}"

	# 3. A persistent lock through kahuna1, Busy through kahuna3, held through
	#    kahuna2.
	deadline=$((SECONDS + 10))
	while :; do
		rep=$(call kahuna1 /v1/locks/try-lock "{\"resource\":\"$resource\",\"owner\":\"alice\",\"expiresMs\":600000,\"durability\":1}")
		[ "$(json_num "$rep" type)" = 0 ] && break
		[ $SECONDS -lt $deadline ] || fail "try-lock through kahuna1: '$rep', want type 0 (Locked)"
		sleep 0.5
	done
	token=$(json_num "$rep" fencingToken) || fail "try-lock through kahuna1 has no fencing token: $rep"
	log "kahuna1: try-lock $resource: $rep"

	rep=$(call kahuna3 /v1/locks/try-lock "{\"resource\":\"$resource\",\"owner\":\"bob\",\"expiresMs\":600000,\"durability\":1}")
	[ "$(json_num "$rep" type)" = 1 ] && [ "$(json_str "$rep" owner)" = alice ] ||
		fail "try-lock by bob through kahuna3: '$rep', want type 1 (Busy) owner alice"
	log "kahuna3: try-lock by bob: $rep"

	rep=$(call kahuna2 /v1/locks/get-info "{\"resource\":\"$resource\",\"durability\":1}")
	[ "$(json_num "$rep" type)" = 4 ] && [ "$(json_str "$rep" owner)" = alice ] && [ "$(json_num "$rep" fencingToken)" = "$token" ] ||
		fail "get-info through kahuna2: '$rep', want type 4 (Got) owner alice token $token"
	log "kahuna2: get-info: $rep"

	# 4. docker kill the node that leads the lock's partition.
	victim=$(json_str "$rep" servedFrom)
	case $victim in kahuna1 | kahuna2 | kahuna3) ;; *) fail "get-info was served from '$victim', not one of the nodes" ;; esac
	survivors=()
	for s in "${services[@]}"; do [ "$s" = "$victim" ] || survivors+=("$s"); done
	victim_cid=$(cid_of "$victim")
	log "docker kill $victim (the partition leader that served the lock)"
	docker kill "$victim_cid" >/dev/null
	t_kill=$SECONDS

	for s in "${survivors[@]}"; do
		deadline=$((SECONDS + 30)) k=0
		while :; do
			k=$((k + 1))
			info=$(call "$s" /v1/locks/get-info "{\"resource\":\"$resource\",\"durability\":1}")
			lock=$(call "$s" /v1/locks/try-lock "{\"resource\":\"docker-test/after-kill/$s/$k\",\"owner\":\"carol\",\"expiresMs\":60000,\"durability\":1}")
			ready=$(call "$s" /readyz)
			if [ "$(json_num "$info" type)" = 4 ] && [ "$(json_str "$info" owner)" = alice ] &&
				[ "$(json_num "$info" fencingToken)" = "$token" ] && [ "$(json_num "$lock" type)" = 0 ] &&
				[ "$(json_str "$ready" status)" = ready ]; then
				break
			fi
			[ $SECONDS -lt $deadline ] ||
				fail "$s after docker kill $victim: get-info '$info' (want Got alice token $token), try-lock '$lock' (want Locked), readyz '$ready'"
			sleep 0.5
		done
		log "$s serves (the lock still held by alice, token $token) $((SECONDS - t_kill))s after the kill"
	done
	t_served=$SECONDS
	wait_healthy 30 "${survivors[@]}"

	# 5. The killed node comes back.
	log "docker start $victim"
	docker start "$victim_cid" >/dev/null
	t_start=$SECONDS
	wait_healthy "$timeout" "$victim"
	t_back=$SECONDS
	log "$victim healthy again after $((t_back - t_start))s (API now on 127.0.0.1:${port[${victim#kahuna}]})"
	deadline=$((SECONDS + 30))
	while :; do
		info=$(call "$victim" /v1/locks/get-info "{\"resource\":\"$resource\",\"durability\":1}")
		busy=$(call "$victim" /v1/locks/try-lock "{\"resource\":\"$resource\",\"owner\":\"bob\",\"expiresMs\":600000,\"durability\":1}")
		status=$(call "$victim" /v1/cluster/status)
		if [ "$(json_num "$info" type)" = 4 ] && [ "$(json_str "$info" owner)" = alice ] &&
			[ "$(json_num "$info" fencingToken)" = "$token" ] &&
			[ "$(json_num "$busy" type)" = 1 ] && [ "$(json_str "$busy" owner)" = alice ] &&
			[ "$(grep -o '"state":"alive"' <<<"${status#*\"nodes\":}" | wc -l)" -eq 3 ]; then
			break
		fi
		[ $SECONDS -lt $deadline ] ||
			fail "restarted $victim: get-info '$info' (want Got alice token $token), try-lock by bob '$busy' (want Busy), status '$status' (want 3 alive nodes)"
		sleep 0.5
	done
	log "$victim sees the lock (alice, token $token) and all three nodes alive"
	rep=$(call "$victim" /v1/locks/try-unlock "{\"resource\":\"$resource\",\"owner\":\"alice\",\"durability\":1}")
	[ "$(json_num "$rep" type)" = 3 ] || fail "try-unlock through $victim: '$rep', want type 3 (Unlocked)"
	wait_healthy 30 "${services[@]}"

	# 5b. A real network partition: cut the node that now leads the lock's
	#     partition off the cluster network. The other two elect a new leader
	#     and keep serving; when the network comes back, the cut-off node
	#     follows them. (Its API is unreachable while disconnected, so what it
	#     answers meanwhile is covered by the in-process isolation tests.)
	probe="docker-test/partition"
	rep=$(call kahuna1 /v1/locks/try-lock "{\"resource\":\"$resource\",\"owner\":\"dave\",\"expiresMs\":600000,\"durability\":1}")
	[ "$(json_num "$rep" type)" = 0 ] || fail "try-lock by dave before the partition: '$rep', want type 0"
	cut=$(json_str "$rep" servedFrom)
	case $cut in kahuna1 | kahuna2 | kahuna3) ;; *) fail "try-lock was served from '$cut', not one of the nodes" ;; esac
	dave=$(json_num "$rep" fencingToken)
	majority=()
	for s in "${services[@]}"; do [ "$s" = "$cut" ] || majority+=("$s"); done
	network="${project}_kahuna"
	log "docker network disconnect $cut (leader of the lock's partition)"
	docker network disconnect "$network" "$(cid_of "$cut")"
	t_cut=$SECONDS
	deadline=$((SECONDS + 20))
	while :; do
		info=$(call "${majority[0]}" /v1/locks/get-info "{\"resource\":\"$resource\",\"durability\":1}")
		lock=$(call "${majority[1]}" /v1/locks/try-lock "{\"resource\":\"$probe\",\"owner\":\"erin\",\"expiresMs\":600000,\"durability\":1}")
		if [ "$(json_num "$info" type)" = 4 ] && [ "$(json_str "$info" owner)" = dave ] &&
			[ "$(json_num "$info" fencingToken)" = "$dave" ] && [ "$(json_num "$lock" type)" = 0 ] &&
			[ "$(json_str "$info" servedFrom)" != "$cut" ]; then
			break
		fi
		[ $SECONDS -lt $deadline ] ||
			fail "majority after cutting off $cut: get-info '$info' (want Got dave token $dave from a new leader), try-lock '$lock' (want Locked)"
		sleep 0.3
	done
	t_majority=$SECONDS
	log "the majority (${majority[*]}) serves with a new leader $((t_majority - t_cut))s after the cut"
	# Reconnecting drops the service-name alias compose gave the container;
	# without it the others cannot resolve the node's advertised name.
	docker network connect --alias "$cut" "$network" "$(cid_of "$cut")"
	log "docker network connect $cut"
	# Docker does not restore a reconnected container's published ports; talk
	# to it on its address on the bridge network instead.
	cut_ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$(cid_of "$cut")")
	[ -n "$cut_ip" ] || fail "no address for $cut on $network after reconnecting"
	deadline=$((SECONDS + 30))
	while :; do
		info=$(curl -s -m 5 -XPOST "http://$cut_ip:8082/v1/locks/get-info" -d "{\"resource\":\"$probe\",\"durability\":1}" 2>/dev/null || true)
		if [ "$(json_num "$info" type)" = 4 ] && [ "$(json_str "$info" owner)" = erin ]; then
			break
		fi
		[ $SECONDS -lt $deadline ] || fail "$cut after healing: get-info $probe '$info', want Got erin"
		sleep 0.5
	done
	log "$cut follows the majority again $((SECONDS - t_majority))s after healing"
	wait_healthy 30 "${services[@]}"
	t_end=$SECONDS

	# 6. SIGTERM shuts every node down cleanly (exit code 0).
	log "compose stop"
	dc stop --timeout 30 >/dev/null 2>&1
	for s in "${services[@]}"; do
		code=$(docker inspect -f '{{.State.ExitCode}}' "$(cid_of "$s")")
		[ "$code" = 0 ] || fail "$s exited with code $code after SIGTERM, want 0"
	done
	t_stopped=$SECONDS
	log "every node exited with code 0 after SIGTERM ($((t_stopped - t_end))s)"

	down
	up=0
	plain_timings="plain $((SECONDS - t_built))s: up to healthy $((t_healthy - t_built))s, serving after kill $((t_served - t_kill))s, restart to healthy $((t_back - t_start))s, stop $((t_stopped - t_end))s"
	log "timings: $plain_timings"
}

# cluster_of STATUS: "" when a /v1/cluster/status reply shows exactly
# kahuna1..3, alive voters of every partition, and nothing else; otherwise
# what it shows instead.
cluster_of() {
	local st=$1 ids parts others alive
	ids=$(grep -o '"id":"[^"]*"' <<<"$st" | sed 's/"id"://; s/"//g' | sort -u | tr '\n' ' ')
	parts=$(grep -c . < <(grep -o '"voters":\[' <<<"$st") || true)
	# Partitions whose voters are not the three (in any order).
	others=$(grep -o '"voters":\[[^]]*\]' <<<"$st" | grep -v '^"voters":\["kahuna[123]","kahuna[123]","kahuna[123]"\]$' | tr '\n' ' ')
	alive=$(grep -c . < <(grep -o '"state":"alive","role":"voter"' <<<"${st#*\"nodes\":}") || true)
	if [ "$ids" = "kahuna1 kahuna2 kahuna3 " ] && [ "$parts" -gt 0 ] && [ -z "$others" ] && [ "$alive" = 3 ] &&
		! grep -q '"nonVoters":\["' <<<"$st" && ! grep -q intruder <<<"$st"; then
		return 0
	fi
	echo "nodes: ${ids:-none}; alive voters: $alive; partitions: $parts; other voter sets: ${others:-none}"
	return 1
}

secure_part() {
	local t_sec=$SECONDS sd gid rep code out tok k auth network ip refused state t_up t_healthy t_checked t_watch t_end
	# 7. A throw-away CA, certificates naming kahuna1..3 (and 127.0.0.1,
	#    where the APIs are published), a gossip key and an admin token,
	#    readable by the nodes' user through the files' group.
	secrets=$(mktemp -d "${TMPDIR:-/tmp}/kahuna-docker-test-secrets.XXXXXX")
	sd=$secrets/secure
	out=$(GO=${GO:-go} bash "$here/make-secrets.sh" --group-readable "$sd" "${services[@]}" 2>&1) || {
		printf '%s\n' "$out" >&2
		fail "cluster/make-secrets.sh failed"
	}
	gid=$(stat -c %g "$sd/ca.crt" 2>/dev/null || stat -f %g "$sd/ca.crt")
	export KAHUNA_SECURE_DIR=$sd KAHUNA_SECRETS_GID=$gid
	# The token reaches curl in a config file, not on its command line.
	tok=$(cat "$sd/admin.token")
	(umask 077 && printf 'header = "Authorization: Bearer %s"\n' "$tok" >"$secrets/token.curlrc")
	log "secure: made a CA, certificates, a gossip key and an admin token in $sd ($((SECONDS - t_sec))s)"

	project=$base_project-secure
	files=(--file "$here/docker-compose.yml" --file "$here/docker-compose.secure.yml")
	port=()
	t_up=$SECONDS
	log "secure: compose up (project $project, docker-compose.secure.yml over docker-compose.yml)"
	up=1
	dc up -d
	lookup_cids
	wait_healthy "$timeout" "${services[@]}"
	t_healthy=$SECONDS
	log "secure: all three healthy (healthcheck over HTTPS) after $((t_healthy - t_up))s; APIs on https://127.0.0.1:${port[1]}, :${port[2]}, :${port[3]}"

	# 8. HTTPS with the token: a lock through kahuna1, Busy through kahuna3.
	scheme=https curl_auth=(--cacert "$sd/ca.crt" -K "$secrets/token.curlrc")
	deadline=$((SECONDS + 10))
	while :; do
		rep=$(call kahuna1 /v1/locks/try-lock "{\"resource\":\"$resource\",\"owner\":\"alice\",\"expiresMs\":600000,\"durability\":1}")
		[ "$(json_num "$rep" type)" = 0 ] && break
		[ $SECONDS -lt $deadline ] || fail "secure: try-lock through kahuna1 over HTTPS with the token: '$rep', want type 0 (Locked)"
		sleep 0.5
	done
	log "secure: kahuna1 (HTTPS, admin token): try-lock $resource: $rep"
	rep=$(call kahuna3 /v1/locks/try-lock "{\"resource\":\"$resource\",\"owner\":\"bob\",\"expiresMs\":600000,\"durability\":1}")
	[ "$(json_num "$rep" type)" = 1 ] && [ "$(json_str "$rep" owner)" = alice ] ||
		fail "secure: try-lock by bob through kahuna3: '$rep', want type 1 (Busy) owner alice"
	log "secure: kahuna3 (HTTPS, admin token): try-lock by bob: $rep"

	# Without a token, or with one the nodes do not know: 401, nothing done.
	for k in none wrong; do
		auth=()
		[ $k = none ] || auth=(-H "Authorization: Bearer not-the-admin-token")
		out=$(curl -s -m 10 --cacert "$sd/ca.crt" ${auth[@]+"${auth[@]}"} -w '\n%{http_code}' -XPOST \
			"https://127.0.0.1:${port[2]}/v1/locks/try-lock" \
			-d "{\"resource\":\"$resource\",\"owner\":\"mallory\",\"expiresMs\":600000,\"durability\":1}" 2>&1) || true
		code=${out##*$'\n'}
		[ "$code" = 401 ] && [ "$(json_num "${out%$'\n'*}" type)" = 99 ] ||
			fail "secure: try-lock through kahuna2 with token $k: HTTP $code '${out%$'\n'*}', want 401 with type 99"
		log "secure: kahuna2, token $k: HTTP $code ${out%$'\n'*}"
	done
	# A client that does not trust the cluster's CA gets no connection.
	code=0
	curl -s -m 10 -o /dev/null "https://127.0.0.1:${port[1]}/readyz" 2>/dev/null || code=$?
	[ "$code" = 60 ] || fail "secure: curl without the CA to kahuna1: exit $code, want 60 (certificate not trusted)"
	log "secure: a client without the CA: curl exit 60 (certificate not trusted)"
	# Plain HTTP gets no lock service (Go's TLS server answers 400).
	out=$(curl -s -m 10 -w '\n%{http_code}' -XPOST "http://127.0.0.1:${port[1]}/v1/locks/try-lock" \
		-d "{\"resource\":\"$resource\",\"owner\":\"mallory\",\"expiresMs\":600000,\"durability\":1}" 2>&1) || true
	code=${out##*$'\n'}
	[ "$code" != 200 ] && ! grep -q '"type"' <<<"$out" ||
		fail "secure: plain HTTP try-lock to kahuna1: HTTP $code '${out%$'\n'*}', want no lock service"
	log "secure: plain HTTP to kahuna1: HTTP $code $(head -n 1 <<<"$out")"
	t_checked=$SECONDS

	# 9. The intruder: the same image on the cluster network, no
	#    certificates, no gossip key, asking to join through kahuna1.
	network="${project}_kahuna"
	intruder=$project-intruder
	docker run -d --name "$intruder" --network "$network" --network-alias intruder "$image" \
		--node-id intruder --data-dir /data \
		--http-addr 0.0.0.0:8082 --raft-addr 0.0.0.0:9082 --gossip-addr 0.0.0.0:7946 \
		--advertise-http intruder:8082 --advertise-raft intruder:9082 --advertise-gossip intruder:7946 \
		--join kahuna1:7946 >/dev/null
	t_watch=$SECONDS
	log "secure: started an intruder (same image, no certificates, no gossip key, --join kahuna1:7946)"
	while [ $((SECONDS - t_watch)) -lt 10 ]; do
		for s in "${services[@]}"; do
			rep=$(call "$s" /v1/cluster/status)
			out=$(cluster_of "$rep") || fail "secure: $s's status $((SECONDS - t_watch))s after the intruder started: $out; reply '$rep'"
		done
		sleep 1
	done
	# It did knock: kahuna1 logged refusing gossip from its address.
	ip=$(docker inspect -f "{{(index .NetworkSettings.Networks \"$network\").IPAddress}}" "$intruder" 2>/dev/null) || ip=""
	[ -n "$ip" ] || fail "secure: the intruder has no address on $network"
	refused=$(docker logs "$(cid_of kahuna1)" 2>&1 | grep -F "from=$ip:" | tail -n 1) ||
		fail "secure: kahuna1 logged nothing from the intruder's address $ip: did it try to join?"
	state=$(docker inspect -f '{{.State.Status}}{{if ne .State.Status "running"}} (exit {{.State.ExitCode}}){{end}}' "$intruder" 2>/dev/null) || state=gone
	log "secure: for 10 s every node's status showed kahuna1..3 only, alive voters of every partition; the intruder ($ip) is $state; kahuna1 logged: ${refused:0:200}"
	rep=$(call kahuna2 /v1/locks/get-info "{\"resource\":\"$resource\",\"durability\":1}")
	[ "$(json_num "$rep" type)" = 4 ] && [ "$(json_str "$rep" owner)" = alice ] ||
		fail "secure: get-info through kahuna2 after the intruder: '$rep', want type 4 (Got) owner alice"
	t_end=$SECONDS

	docker rm -f -v "$intruder" >/dev/null
	intruder=""
	down
	up=0
	secure_timings="secure $((SECONDS - t_sec))s: secrets $((t_up - t_sec))s, up to healthy $((t_healthy - t_up))s, checks $((t_checked - t_healthy))s, intruder watch $((t_end - t_watch))s, down $((SECONDS - t_end))s"
	log "timings: $secure_timings"
}

secure_timings=""
case $parts in all | plain) plain_part ;; esac
case $parts in all | secure) secure_part ;; esac
log "timings: image $((t_built - t0))s${plain_timings:+; $plain_timings}${secure_timings:+; $secure_timings}"
