#!/usr/bin/env bash
# Throw-away TLS certificates for a Kahuna cluster (contract §8), made with
# the Go standard library (cmd/kahuna-certs); openssl is not needed.
#
#   cluster/make-certs.sh [--force] [--days N] [--san NAME,...] DIR [NODE...]
#
# In DIR (created, mode 0700):
#   ca.crt, ca.key              a new CA (the key stays in DIR: keep it private)
#   NODE.crt, NODE.key          one per node (default n1 n2 n3), for server and
#                               client use; SANs: NODE, 127.0.0.1, ::1,
#                               localhost and any --san names
#   kahuna-cli.crt, .key        a client certificate for kahuna-cli
# and it prints the paths with the kahunad and kahuna-cli flags that use them.
#
# Nothing is overwritten without --force: with a CA already in DIR only the
# missing certificates are signed (a second run changes nothing; naming a new
# node adds its certificate), and a file it cannot use is an error. --force
# makes a new CA and reissues every certificate named.
#
# Settings (environment): GO, the go command (default: go).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Built, not `go run`, so that relative paths stay relative to the caller's
# directory and the tool's exit code comes through as is.
(cd "$repo" && "${GO:-go}" build -o "$tmp/kahuna-certs" ./cmd/kahuna-certs)
rc=0
"$tmp/kahuna-certs" "$@" || rc=$?
exit "$rc"
