#!/usr/bin/env bash
# Runs the peer comparison (bench/peers): the same lock workload against a
# Kahuna node and a 3-node Kahuna cluster, etcd (1 and 3 members) and Redis
# (fsync always and no fsync), all started fresh on this machine, and prints
# one table with the ratios. Arguments go to the tool, e.g.
#   scripts/bench-peers.sh -rounds 3 -duration 10s
# Debian's etcd-server and redis-server are installed when missing (as root;
# otherwise the script says what to install). Nothing is left running.
set -euo pipefail

cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ((${#missing[@]} > 0)); then
	if [[ $(id -u) != 0 ]]; then
		echo "bench-peers.sh: install ${missing[*]} (Debian packages) first" >&2
		exit 2
	fi
	echo "bench-peers.sh: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

mkdir -p bin
"${GO:-go}" build -o bin/kahunad ./cmd/kahunad
root=$(pwd)
cd bench/peers
"${GO:-go}" build -o "$root/bin/kahuna-peers" .
exec "$root/bin/kahuna-peers" -kahunad "$root/bin/kahunad" "$@"
