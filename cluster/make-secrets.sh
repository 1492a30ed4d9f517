#!/usr/bin/env bash
# Everything a secure throw-away Kahuna cluster needs (docs/security.md), in
# one directory: certificates, a gossip key and an admin token.
#
#   cluster/make-secrets.sh [--san NAME,...] [--group-readable] DIR [NODE...]
#
# In DIR (created, mode 0700; NODE defaults to n1 n2 n3):
#   ca.crt, ca.key, NODE.crt, NODE.key, kahuna-cli.crt, kahuna-cli.key
#                     a CA and certificates, by cluster/make-certs.sh (node
#                     SANs: NODE, 127.0.0.1, ::1, localhost and --san names)
#   gossip.key        base64 of 32 random bytes    (kahunad --gossip-key-file)
#   admin.token       a random token, 64 hex digits (kahuna-cli --token,
#                     KAHUNA_TOKEN, curl -H "Authorization: Bearer ...")
#   auth.json         {"tokens":[{"name":"admin","sha256":...,"role":"admin"}]}
#                     (kahunad --auth-file; it holds only the token's digest)
# The token is printed when it is made, and only then.
#
# Nothing that exists is replaced: a second run changes nothing, and naming a
# new node only adds its certificate (signed by the CA already in DIR). Delete
# DIR to start over. Every file is mode 0600 (certificates 0644), except with
# --group-readable: the files a node reads (ca.crt, NODE.crt, NODE.key,
# gossip.key, auth.json) become 0640, so that a container whose user is not
# the owner can read them given the owner's group (compose group_add; see
# cluster/docker-compose.secure.yml). ca.key, admin.token and kahuna-cli.key
# stay 0600.
#
# Needs Go (for make-certs.sh), coreutils and sha256sum, shasum or openssl.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
	echo "make-secrets.sh: $*" >&2
	exit 1
}
usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}
have() { command -v "$1" >/dev/null 2>&1; }

san="" group=0 pos=()
while [ $# -gt 0 ]; do
	case $1 in
	--san)
		[ $# -ge 2 ] || die "--san needs a value"
		san=$2
		shift
		;;
	--san=*) san=${1#--san=} ;;
	--group-readable) group=1 ;;
	-h | --help | help)
		usage
		exit 0
		;;
	-*)
		usage >&2
		exit 2
		;;
	*) pos+=("$1") ;;
	esac
	shift
done
[ ${#pos[@]} -ge 1 ] || {
	usage >&2
	exit 2
}
dir=${pos[0]}
nodes=("${pos[@]:1}")
[ ${#nodes[@]} -gt 0 ] || nodes=(n1 n2 n3)

sha256() {
	if have sha256sum; then
		sha256sum | cut -d ' ' -f 1
	elif have shasum; then
		shasum -a 256 | cut -d ' ' -f 1
	elif have openssl; then
		openssl dgst -sha256 -r | cut -d ' ' -f 1
	else
		die "found none of sha256sum, shasum and openssl to hash the token with"
	fi
}

# hex N: N random bytes as hex digits.
hex() { od -An -v -tx1 -N "$1" /dev/urandom | tr -d ' \n'; }

# put FILE: write stdin to FILE (mode 0600) atomically.
put() {
	local tmp
	tmp=$(umask 077 && mktemp "$1.XXXXXX")
	cat >"$tmp"
	chmod 0600 "$tmp"
	mv -f "$tmp" "$1"
}

# The certificates (make-certs.sh makes DIR with mode 0700).
args=()
[ -z "$san" ] || args=(--san "$san")
certs_out=$(bash "$here/make-certs.sh" ${args[@]+"${args[@]}"} "$dir" "${nodes[@]}" 2>&1) || {
	printf '%s\n' "$certs_out" >&2
	die "cluster/make-certs.sh failed"
}
# Its table of files, without the usage hints that follow it.
printf '%s\n' "$certs_out" | sed '/^$/,$d'

if [ -f "$dir/gossip.key" ]; then
	echo "gossip key   kept  $dir/gossip.key"
else
	head -c 32 /dev/urandom | base64 | put "$dir/gossip.key"
	echo "gossip key   new   $dir/gossip.key"
fi

# The token and the auth file go together: a token without the auth file
# that admits it (or the reverse) is made again.
if [ -f "$dir/admin.token" ] && [ -f "$dir/auth.json" ]; then
	echo "admin token  kept  $dir/admin.token ($dir/auth.json)"
else
	token=$(hex 32)
	[ ${#token} -eq 64 ] || die "could not read /dev/urandom"
	digest=$(printf %s "$token" | sha256)
	[[ $digest =~ ^[0-9a-f]{64}$ ]] || die "hashing the token failed"
	printf '{"tokens":[{"name":"admin","sha256":"%s","role":"admin"}]}\n' "$digest" | put "$dir/auth.json"
	printf '%s\n' "$token" | put "$dir/admin.token"
	echo "admin token  new   $dir/admin.token ($dir/auth.json)"
	echo
	echo "Admin token (printed this once; it stays in $dir/admin.token):"
	echo "  $token"
fi

if [ $group -eq 1 ]; then
	chmod 0640 "$dir/ca.crt" "$dir/gossip.key" "$dir/auth.json"
	for n in "${nodes[@]}"; do
		chmod 0640 "$dir/$n.crt" "$dir/$n.key"
	done
	gid=$(stat -c %g "$dir/ca.crt" 2>/dev/null || stat -f %g "$dir/ca.crt")
	echo
	echo "What a node reads is now mode 0640, group $gid: KAHUNA_SECRETS_GID=$gid for cluster/docker-compose.secure.yml"
fi
