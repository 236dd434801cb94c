# belay — common tasks. `make up` to try it, `make test` for the whole suite.
SHELL    := /bin/bash
GO       ?= go
FUZZTIME ?= 10s

.PHONY: up build deps test readme fuzz-short bench

## up: a local cluster (etcd embedded in belay, a PostgreSQL primary and 2 streaming replicas) with the belay proxy in front of it (Ctrl-C stops it all). Builds ./belay and
## execs it, so that Ctrl-C reaches belay itself and a clean stop ends without a make error.
up: build
	exec ./belay up

## build: the belay binary, ./belay
build:
	$(GO) build -o belay ./cmd/belay

## deps: install what the tests need and is missing (Debian/Ubuntu: PostgreSQL server, psql, pgbench, pg_basebackup for belay up's replicas (etcd itself is built into belay), PgBouncer (its console is the reference for belay's), pgpool-II (belay bench's read-scaling scenarios compare with it), Patroni and etcd-server (belay bench's failover scenario; their services are kept from starting, and disabled: the bench runs its own etcd and Patroni on loopback ports), a C compiler for cgo and -race; for internal/compat: psycopg 3, the JDBC driver and a JDK, node and npm, then node-postgres with npm ci)
deps:
	@set -euo pipefail; \
	have_glob() { compgen -G "$$1" >/dev/null; }; \
	real_cmd() { local p; p=$$(command -v "$$1" 2>/dev/null) || return 1; [[ "$$(readlink -f "$$p")" != */pg_wrapper ]]; }; \
	pkgs=""; \
	{ command -v initdb >/dev/null 2>&1 || have_glob '/usr/lib/postgresql/*/bin/initdb'; } || pkgs="$$pkgs postgresql postgresql-contrib"; \
	{ have_glob '/usr/lib/postgresql/*/bin/psql' || real_cmd psql; } || pkgs="$$pkgs postgresql-client"; \
	{ have_glob '/usr/lib/postgresql/*/bin/pgbench' || real_cmd pgbench; } || pkgs="$$pkgs postgresql-contrib"; \
	{ have_glob '/usr/lib/postgresql/*/bin/pg_basebackup' || real_cmd pg_basebackup; } || pkgs="$$pkgs postgresql-client"; \
	command -v gcc >/dev/null 2>&1 || pkgs="$$pkgs gcc libc6-dev"; \
	/usr/bin/python3 -c 'import psycopg' >/dev/null 2>&1 || pkgs="$$pkgs python3-psycopg"; \
	[ -f /usr/share/java/postgresql.jar ] || pkgs="$$pkgs libpostgresql-jdbc-java"; \
	command -v javac >/dev/null 2>&1 || pkgs="$$pkgs default-jdk-headless"; \
	command -v node >/dev/null 2>&1 || pkgs="$$pkgs nodejs npm"; \
	command -v npm >/dev/null 2>&1 || pkgs="$$pkgs npm"; \
	{ command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ]; } || pkgs="$$pkgs pgbouncer"; \
	{ command -v pgpool >/dev/null 2>&1 || [ -x /usr/sbin/pgpool ]; } || pkgs="$$pkgs pgpool2"; \
	command -v patroni >/dev/null 2>&1 || pkgs="$$pkgs patroni"; \
	[ -x /usr/bin/etcd ] || pkgs="$$pkgs etcd-server"; \
	[ -z "$$pkgs" ] && exit 0; \
	pkgs=$$(tr ' ' '\n' <<<"$$pkgs" | sed '/^$$/d' | sort -u | tr '\n' ' '); \
	echo "deps: installing: $$pkgs"; \
	if ! command -v apt-get >/dev/null 2>&1; then \
		echo "deps: no apt-get here; install PostgreSQL (server, psql, pgbench) and a C compiler yourself: $$pkgs" >&2; exit 1; \
	fi; \
	sudo=""; \
	if [ "$$(id -u)" != 0 ]; then \
		if command -v sudo >/dev/null 2>&1; then sudo=sudo; \
		else echo "deps: not root and no sudo: as root, run: apt-get install -y $$pkgs" >&2; exit 1; fi; \
	fi; \
	$$sudo apt-get update -qq; \
	policy=/usr/sbin/policy-rc.d; own_policy=""; \
	if [ ! -e $$policy ]; then \
		printf '#!/bin/sh\n# written by make deps: no package starts its service\nexit 101\n' | $$sudo tee $$policy >/dev/null; \
		$$sudo chmod 755 $$policy; own_policy=1; \
	fi; \
	rc=0; $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs || rc=$$?; \
	[ -n "$$own_policy" ] && $$sudo rm -f $$policy; \
	for svc in etcd patroni; do \
		if [ -d /run/systemd/system ]; then $$sudo systemctl disable --now $$svc.service >/dev/null 2>&1 || true; \
		elif [ -x /etc/init.d/$$svc ]; then $$sudo /etc/init.d/$$svc stop >/dev/null 2>&1 || true; $$sudo update-rc.d $$svc disable >/dev/null 2>&1 || true; fi; \
	done; \
	exit $$rc
	@compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null || { echo "deps: initdb still missing" >&2; exit 1; }
	@compgen -G '/usr/lib/postgresql/*/bin/pg_basebackup' >/dev/null || command -v pg_basebackup >/dev/null || { echo "deps: pg_basebackup still missing" >&2; exit 1; }
	@set -euo pipefail; d=internal/compat/testdata/node; \
	[ -d "$$d/node_modules" ] && exit 0; \
	command -v npm >/dev/null 2>&1 || { echo "deps: npm still missing" >&2; exit 1; }; \
	echo "deps: npm ci in $$d"; \
	cd "$$d" && npm ci --no-audit --no-fund

## test: deps, vet, then every test against real PostgreSQL (a client missing for internal/compat fails, not skips), then README.md's commands (scripts/readme.sh)
# Tests build without profile-guided optimization (-pgo=off): with
# cmd/belay/default.pgo, `go test ./cmd/belay` would compile every
# dependency a second time, cgo included, for the same checks.
test: export GOFLAGS := $(strip $(shell $(GO) env GOFLAGS) -pgo=off)
test: deps
	$(GO) vet ./...
	BELAY_COMPAT_REQUIRE=1 $(GO) test -race -count=1 -timeout 25m ./...
	GO=$(GO) ./scripts/readme.sh
	$(MAKE) --no-print-directory fuzz-short FUZZTIME=2s FUZZ_LOG=$${TMPDIR:-/tmp}/belay-fuzz-short.log

## readme: run README.md's shell commands as written in a fresh copy of the tree (scripts/readme.sh)
readme:
	GO=$(GO) ./scripts/readme.sh

## fuzz-short: every fuzz target of the module for $(FUZZTIME), one after another (scripts/fuzz.sh)
fuzz-short:
	GO=$(GO) FUZZ_LOG=$${FUZZ_LOG:-fuzz.log} ./scripts/fuzz.sh $(FUZZTIME)

## bench: every benchmark, with allocations
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-quick flamegraphs pgo

## bench-quick: direct PostgreSQL, PgBouncer and belay side by side, core scenarios (about 3 minutes; installs PgBouncer if missing); report in bench-out/
bench-quick:
	$(GO) run ./cmd/belay bench --quick --out bench-out

## flamegraphs: CPU flame graphs of belay under each core scenario, regenerated into flamegraphs/ (SVGs, raw profiles, README.md)
flamegraphs:
	$(GO) run ./cmd/belay bench --quick --duration 10s --flamegraphs flamegraphs

## pgo: cmd/belay/default.pgo, the profile `go build` optimizes belay with (profile-guided optimization), merged from the raw profiles of flamegraphs/: run `make flamegraphs` first to profile the code as it is now
pgo:
	$(GO) tool pprof -proto flamegraphs/*.pb.gz > cmd/belay/default.pgo.tmp && mv cmd/belay/default.pgo.tmp cmd/belay/default.pgo
