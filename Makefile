# spiffe-helper-rust — developer entry points. After cloning, two commands matter:
#   make demo   run the helper against a local SPIRE it starts itself
#   make test   everything CI runs: fmt, clippy, unit tests, end-to-end tests against real SPIRE
# The Kubernetes environment (env-up / smoke-test / env-down, k8s-test) is a real single-node
# cluster with SPIRE in it: tests/k8s, docs/integration_test.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO        ?= cargo
SPIRE_BIN    := $(shell echo $${SPIRE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/spiffe-helper-rust/spire-v1.13.3}/bin)
ENV_DIR      ?= /tmp/shr-env
HELPER       := target/debug/spiffe-helper-rust

.PHONY: help
help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# Each slow stage prints one line with its time; its full output goes to a log under
# ${XDG_CACHE_HOME:-~/.cache}/spiffe-helper-rust/logs (scripts/stage.sh).
.PHONY: deps
deps: ## install what the tests need (SPIRE and the upstream Go spiffe-helper v0.11.0 from the Go module proxy; openssl, nginx, containerd, podman... from Debian; cargo-deny)
	@scripts/stage.sh "deps: system packages" scripts/install-deps.sh
	@scripts/stage.sh "deps: SPIRE v1.13.3 and upstream spiffe-helper v0.11.0" tests/spire/build-spire.sh --with-upstream-helper >/dev/null
	@$(MAKE) --no-print-directory tools

.PHONY: tools
tools: ## install cargo-deny (pinned, from crates.io) into the cache outside the repo (skipped when present)
	@scripts/stage.sh "deps: cargo-deny" scripts/install-cargo-tools.sh

.PHONY: spire
spire: ## build SPIRE v1.13.3 into the cache (skipped when present)
	@tests/spire/build-spire.sh

.PHONY: build
build: ## debug build of the workspace's default members (all but the bench driver)
	$(CARGO) build

.PHONY: release
release: ## small release binary (strip, fat LTO, codegen-units=1)
	$(CARGO) build --release -p spiffe-helper-rust

.PHONY: fmt-check
fmt-check:
	$(CARGO) fmt --all -- --check

.PHONY: clippy
# Without --workspace: the default members, so the bench driver (make bench) and its TLS stacks
# stay out of every CI run.
clippy:
	$(CARGO) clippy --all-targets -- -D warnings

.PHONY: test
test: deps fmt-check clippy ## fmt, clippy, unit tests, end-to-end tests against a real SPIRE, the Kubernetes smoke test
	SPIRE_BIN_DIR=$(SPIRE_BIN) $(CARGO) test --no-fail-fast
	$(MAKE) --no-print-directory test-aws-lc-rs
	$(MAKE) --no-print-directory test-ignored-signals
	$(MAKE) --no-print-directory k8s-test-all

# The TLS crate's tests (interop with go-spiffe on a real SPIRE, conformance, differential...)
# again on the aws-lc-rs crypto provider instead of ring (docs/embedding.md, "Crypto provider").
.PHONY: test-aws-lc-rs
test-aws-lc-rs: ## the spiffe-workload-tls tests on the aws-lc-rs crypto provider (needs cmake and a C compiler)
	SPIRE_BIN_DIR=$(SPIRE_BIN) $(CARGO) test -p spiffe-workload-tls --no-default-features --features aws-lc-rs,federation

# A helper started under nohup, by a script's `cmd &` or by many CI runners inherits HUP, INT and
# QUIT ignored; the tests of everything that signals a consumer run again that way, and the
# recipe first checks that the signals really are ignored (else it would prove nothing). Same
# package selection as `make test`'s cargo test, so nothing is rebuilt.
.PHONY: test-ignored-signals
test-ignored-signals: ## the notification, wrapper, daemon and pid-file tests again, started with HUP, INT and QUIT ignored
	@trap '' HUP INT QUIT; \
	ign=$$(awk '/^SigIgn:/ {print $$2}' /proc/self/status); \
	if [ $$(( 0x$$ign & 7 )) -ne 7 ]; then echo "test-ignored-signals: HUP/INT/QUIT are not ignored (SigIgn $$ign)" >&2; exit 1; fi; \
	echo "test-ignored-signals: running with SigIgn $$ign"; \
	SPIRE_BIN_DIR=$(SPIRE_BIN) $(CARGO) test --no-fail-fast --lib --test tests --test signal_reset -- \
	  notifier::tests child::tests pidfile::tests a_child_of_a_supervisor \
	  e2e::wrapper e2e::daemon faults::consumer faults::signals

.PHONY: proto
proto: ## regenerate the committed gRPC code from proto/workload.proto (no protoc needed)
	UPDATE_PROTO=1 $(CARGO) test -p spiffe-workload-proto --test drift

.PHONY: helper
helper:
	$(CARGO) build -p spiffe-helper-rust

# The admission webhook's binary, for its image in the local cluster (tests/k8s/images.sh).
.PHONY: injector
injector:
	$(CARGO) build -p spiffe-helper-injector

# The single-node Kubernetes (tests/k8s). Needs root; builds Kubernetes $(K8S_VERSION) into the
# cache the first time (~10 min on 2 cores), then starts in about a minute. The default is the
# newest release the Go module proxy serves in full; K8S_OLDEST the oldest minor upstream still
# supports. `make k8s-test K8S_VERSION=v1.35.4` runs any other (each built once, in its own cache
# directory); docs/integration_test.md says which ones are tested.
K8S_VERSION ?= v1.37.2
K8S_OLDEST  ?= v1.35.4
export K8S_VERSION
# How env-up installs the injector: its Helm chart (helm) or deploy/k8s/50-injector.yaml
# (manifests). k8s-test-all runs the newest Kubernetes with the chart, the oldest with the
# manifests, so both ways users install it are tested.
INJECTOR_INSTALL ?= helm
export INJECTOR_INSTALL
.PHONY: env-up
env-up: deps helper injector ## start the local Kubernetes with SPIRE and the demo workloads; last line: export KUBECONFIG=...
	@tests/k8s/env.sh up

.PHONY: smoke-test
smoke-test: ## the smoke test in env-up's cluster (mTLS, rotation, probes, re-attestation)
	@tests/k8s/smoke.sh

.PHONY: env-down
env-down: ## stop env-up's cluster by pid and restore the host (also fine without a cluster)
	@tests/k8s/env.sh down

.PHONY: k8s-test
k8s-test: deps helper injector ## env-up, smoke-test, env-down, then check that nothing is left on the host
	@tests/k8s/ci.sh

# The newest and the oldest supported Kubernetes, one after the other (each from a clean host).
.PHONY: k8s-test-all
k8s-test-all: ## k8s-test on K8S_VERSION (v1.37.2, injector by Helm), then on K8S_OLDEST (v1.35.4, injector from the plain manifests)
	$(MAKE) --no-print-directory k8s-test INJECTOR_INSTALL=helm
	$(MAKE) --no-print-directory k8s-test K8S_VERSION=$(K8S_OLDEST) INJECTOR_INSTALL=manifests

.PHONY: demo-k8s
demo-k8s: env-up ## env-up, then show what the helper did in the cluster (make env-down when done)
	@tests/k8s/demo.sh

# The bare-process SPIRE (scripts/env.sh): fast, no Kubernetes; make demo and the e2e suites use it.
.PHONY: spire-up
spire-up: spire build ## start a local SPIRE server+agent in $(ENV_DIR), register this uid, print the socket
	@scripts/env.sh up $(ENV_DIR)

.PHONY: spire-smoke
spire-smoke: build ## run the helper one-shot and as a daemon against spire-up's SPIRE; check files with openssl
	@scripts/env.sh smoke $(ENV_DIR)

.PHONY: spire-down
spire-down: ## stop spire-up's SPIRE (by pid) and remove $(ENV_DIR)
	@scripts/env.sh down $(ENV_DIR)

.PHONY: demo
demo: ## build, start SPIRE, run the helper, show what it wrote, watch one rotation, stop
	@scripts/demo.sh

.PHONY: lint
lint: tools ## fmt + clippy + docs + manifests/Dockerfile + shell scripts + cargo deny (licenses, bans, sources)
	@scripts/lint.sh

.PHONY: publish-check
publish-check: ## the crates.io crates: feature combinations, rustdoc -D warnings, cargo package (docs/publishing.md)
	@scripts/check-publish.sh

.PHONY: bench
bench: ## side-by-side benchmarks against the upstream Go spiffe-helper (not part of test)
	@scripts/bench.sh

# A node full of pods, each with the helper as its native sidecar: our image, then upstream
# v0.11.0's built the same way, in the local cluster (tests/k8s/bench-node.sh; docs/benchmarks.md,
# "A node full of pods"). Runs in an env-up cluster when there is one, else starts and stops its
# own. BENCH_K8S_PODS (default 100) and BENCH_K8S_IDLE_MINUTES (default 10) change the size.
.PHONY: bench-k8s
bench-k8s: deps release injector ## a node full of pods with the helper as sidecar, ours vs upstream: memory, idle CPU, time to Ready, agent CPU (~25 min; not part of test)
	@tests/k8s/bench-node.sh

# Soaks (tests/soak/soak.sh, docs/reliability.md): a real SPIRE on a 10 s X.509 TTL entry for
# SOAK_MINUTES (default 20); RSS, RssAnon, fds and threads sampled each minute; fails on growth
# after the first 5 minutes beyond one page per ten minutes, an unreadable file, a missed reload
# or a failed probe or handshake. Not part of `make test`.
SOAK_TARGET  := $(or $(CARGO_TARGET_DIR),target)

.PHONY: soak
soak: spire ## the release daemon (cmd reloaded by SIGHUP, health probed) against real SPIRE for SOAK_MINUTES (default 20)
	$(CARGO) build --release -p spiffe-helper-rust
	SPIRE_BIN_DIR=$(SPIRE_BIN) HELPER=$(SOAK_TARGET)/release/spiffe-helper-rust tests/soak/soak.sh daemon

# The embedding server runs with glibc's per-thread cache off, as docs/embedding.md recommends
# for long-running processes ("Memory over months"); SOAK_EMBED_GLIBC_TUNABLES= measures glibc's
# defaults.
SOAK_EMBED_GLIBC_TUNABLES ?= glibc.malloc.tcache_count=0

.PHONY: soak-embed
soak-embed: spire ## an X509Source + JwtSource + mTLS server (crates/soak) taking handshakes, same sampling and bound
	$(CARGO) build --release -p spiffe-helper-soak
	SPIRE_BIN_DIR=$(SPIRE_BIN) SOAK_EMBED_GLIBC_TUNABLES="$(SOAK_EMBED_GLIBC_TUNABLES)" SOAK_EMBED=$(SOAK_TARGET)/release/spiffe-helper-soak tests/soak/soak.sh embed

.PHONY: fuzz-config
fuzz-config: ## fuzz the config parser for a minute (needs nightly + cargo-fuzz)
	@scripts/fuzz.sh parse_config 60

.PHONY: fuzz
fuzz: ## run every fuzz target for a set time
	@scripts/fuzz.sh all $${FUZZ_SECONDS:-60}

.PHONY: clean
clean: ## remove build output and the env dir (keeps the SPIRE cache)
	$(CARGO) clean
	rm -rf $(ENV_DIR)
