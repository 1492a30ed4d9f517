# Kahuna (Go). `make run` starts a ready single node; `make test` runs every
# test the CI runs.
GO ?= go
BIN := bin

.PHONY: all build run test vet fmt-check bench bench-peers bench-micro chaos clean

all: build

build:
	$(GO) build -o $(BIN)/kahunad ./cmd/kahunad
	$(GO) build -o $(BIN)/kahuna-cli ./cmd/kahuna-cli
	$(GO) build -o $(BIN)/kahuna-bench ./cmd/kahuna-bench

# A single node on 127.0.0.1:8082 with its data in ./kahuna-data.
run: build
	./$(BIN)/kahunad

# The short chaos suite runs on its own after the rest: it loads both cores
# for a minute, and other packages' timing-sensitive cluster tests should not
# share the machine with it. So does the dashboard's browser test: Chromium
# takes both cores while it starts.
CHAOS_SUITE := ./internal/chaos/suite
UI := ./pkg/ui
test: vet fmt-check
	$(GO) test -race -timeout 20m $$($(GO) list ./... | grep -v -e '/internal/chaos/suite$$' -e '/pkg/ui$$')
	$(GO) test -count=1 -run '^TestSearchDecidesARealHistoryWithManyUnknowns$$' ./internal/chaos/check
	$(GO) test -race $(UI)
	cd $(PEERS) && $(GO) test -race ./...
	$(GO) test -race -timeout 10m $(CHAOS_SUITE)

# The peer comparison is its own module (bench/peers), so that etcd's and
# Redis's clients stay out of Kahuna's go.mod.
PEERS := bench/peers
vet:
	$(GO) vet ./...
	cd $(PEERS) && $(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# End-to-end load test against a throw-away node: persistent, then ephemeral.
# Pass arguments with BENCH_ARGS, e.g. make bench BENCH_ARGS="-duration 30s".
bench:
	scripts/bench.sh $(BENCH_ARGS)

# Kahuna against etcd and Redis, each through its Go client, all started
# fresh on this machine; one table of ratios. Installs Debian's etcd-server
# and redis-server when missing. E.g. make bench-peers PEERS_ARGS="-rounds 3"
bench-peers:
	GO=$(GO) scripts/bench-peers.sh $(PEERS_ARGS)

# Go micro-benchmarks of the hot paths (no HTTP).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchtime 20000x ./pkg/partition/ ./pkg/fsm/

# The long fault-injection run (docs/safety.md): a workload against a cluster
# while nemeses strike, then every check. CHAOS_NEMESES is a comma-separated
# list of nemeses: "all" (every crash, pause, partition, leader-churn and
# slow-disk nemesis), "membership" (join, remove, replace: the cluster grows to
# CHAOS_NODES + 2 members and shrinks back, one change at a time, beside the
# other faults), or single names. For example:
#   make chaos CHAOS_DURATION=30m CHAOS_NEMESES=kill-leader,split CHAOS_NODES=5
#   make chaos CHAOS_ARGS="-chaos.processes -chaos.seed 42"
#   make chaos CHAOS_NEMESES=all,membership CHAOS_ARGS="-chaos.processes -chaos.netns"
#   make chaos CHAOS_LOG_STORE=boltdb
CHAOS_DURATION ?= 5m
CHAOS_NEMESES ?= all
CHAOS_NODES ?= 3
CHAOS_LOG_STORE ?= wal
chaos:
	$(GO) test -count=1 -timeout 0 -v -run '^TestChaos$$' $(CHAOS_SUITE) -args \
		-chaos.duration $(CHAOS_DURATION) -chaos.nemeses $(CHAOS_NEMESES) -chaos.nodes $(CHAOS_NODES) \
		-chaos.log-store $(CHAOS_LOG_STORE) $(CHAOS_ARGS)

clean:
	rm -rf $(BIN)

# A three-node cluster of local processes (n1 n2 n3 on 127.0.0.1:8082/8084/8086),
# data and logs in cluster/data; see cluster/local.sh for the settings.
# cluster-secure: the same with HTTPS, mutual TLS between nodes, encrypted
# gossip and an admin token, all made on the first start in cluster/data/secure
# (the token is printed once); cluster-status and cluster-stop work for both.
.PHONY: cluster cluster-secure cluster-stop cluster-status test-docker image

cluster:
	GO=$(GO) bash cluster/local.sh start

cluster-secure:
	KAHUNA_CLUSTER_SECURE=1 GO=$(GO) bash cluster/local.sh start

cluster-stop:
	bash cluster/local.sh stop

cluster-status:
	bash cluster/local.sh status

# The container image: a static kahunad in an image built FROM scratch.
IMAGE ?= kahuna-go/kahunad:dev

image:
	GO=$(GO) bash cluster/image.sh $(IMAGE)

# A three-node cluster in Docker (cluster/docker-compose.yml): forms, serves
# through every node, survives docker kill of one, takes it back. Then the
# secure variant (cluster/docker-compose.secure.yml): HTTPS with a token,
# 401 without, no plain HTTP, and an intruder container kept out.
test-docker:
	GO=$(GO) bash cluster/docker-test.sh

# Restart each node of the local cluster in turn under kahuna-bench -retry; e.g. make rolling-restart ROLL_ARGS="-workers 32", KAHUNA_ROLL_ROUNDS=3, KAHUNA_ROLL_SIGNAL=KILL (scripts/rolling-restart.sh).
.PHONY: rolling-restart
rolling-restart:
	GO=$(GO) scripts/rolling-restart.sh $(ROLL_ARGS)
