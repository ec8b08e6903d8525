#!/usr/bin/env bash
# make bench: side-by-side benchmarks of spiffe-helper-rust and the upstream Go spiffe-helper
# v0.11.0 on one local SPIRE (see docs/benchmarks.md). Not part of `make test`.
#
# Builds SPIRE + upstream (cached), a stripped upstream for the size comparison, our release
# binary and the driver, then runs every section. The table goes to stdout and to
# $CARGO_TARGET_DIR/bench/results.md (target/ by default). Extra arguments go to the driver, e.g.
#   scripts/bench.sh --runs 5 --idle-secs 20        # quicker, rougher
#   BENCH_SECTIONS=oneshot scripts/bench.sh          # one section
#   BENCH_SECTIONS=oneshot,rotation,tls scripts/bench.sh   # several, comma separated
# Sections: the driver's (size, oneshot, daemon-idle, health-load, rotation, scale,
# rotation-real, agent-restart), tls (TLS handshakes, $TARGET/bench/tls.md) and lib (library
# figures: JwtSource and X509Source vs go-spiffe and rust-spiffe, $TARGET/bench/lib.md) and floor
# (the least a three-file update costs on this disk, tests/bench/floor.c, next to ours' write:
# $TARGET/bench/floor.txt; FLOOR_RUNS, default 300).
# The helper, upstream's stripped build and the driver are built only when a driver section runs.
# About 3 minutes of measurement on 2 cores (lib: 1.5 more; LIB_BENCH_ARGS and TLS_BENCH_ARGS
# pass flags to those two), plus the first-time builds (up to ~10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO="${CARGO:-cargo}"
BIN="$(tests/spire/build-spire.sh --with-upstream-helper)"
UPSTREAM="$BIN/spiffe-helper"
STRIPPED="$BIN/spiffe-helper-stripped"

# Built binaries are where cargo put them: honour CARGO_TARGET_DIR as cargo does.
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$TARGET/bench"
# BENCH_SECTIONS: "all" (default) or a comma-separated list of the driver's sections, "tls"
# and "lib".
SECTIONS="${BENCH_SECTIONS:-all}"
DRIVER_SECTIONS="$(tr ',' '\n' <<<"$SECTIONS" | grep -vx -e tls -e lib -e floor | paste -sd, -)" || true
wants() { [ "$SECTIONS" = all ] || tr ',' '\n' <<<"$SECTIONS" | grep -qx "$1"; }
RUN_TLS=no RUN_LIB=no RUN_FLOOR=no
if wants tls; then RUN_TLS=yes; fi
if wants lib; then RUN_LIB=yes; fi
if wants floor; then RUN_FLOOR=yes; fi

# Upstream's own release build (its Makefile) links with -s -w: symbols and DWARF stripped.
if [ -n "$DRIVER_SECTIONS" ] && [ ! -x "$STRIPPED" ]; then
  command -v go >/dev/null || { echo "bench: go is required to build $STRIPPED" >&2; exit 1; }
  echo "bench: building $STRIPPED (go build -ldflags '-s -w')" >&2
  (cd "$(dirname "$BIN")/helper-src" &&
    CGO_ENABLED=0 go build -ldflags "-s -w" -o "$STRIPPED" github.com/spiffe/spiffe-helper/cmd/spiffe-helper)
fi

if [ -n "$DRIVER_SECTIONS" ]; then
  echo "bench: building spiffe-helper-rust (release: strip, fat LTO)" >&2
  "$CARGO" build --release -p spiffe-helper-rust
  # The driver itself need not be LTO'd; optimised is enough for the load client.
  echo "bench: building the driver" >&2
  CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    "$CARGO" build --release -p spiffe-helper-bench
  SPIRE_BIN_DIR="$BIN" "$TARGET/release/spiffe-helper-bench" "$DRIVER_SECTIONS" \
    --ours "$TARGET/release/spiffe-helper-rust" \
    --upstream "$UPSTREAM" \
    --upstream-stripped "$STRIPPED" \
    --out "$TARGET/bench/results.md" \
    "$@"
  echo "bench: table written to $TARGET/bench/results.md" >&2
fi

# TLS handshakes (docs/benchmarks.md): spiffe-workload-tls vs spiffe-rustls 0.11 vs go-spiffe v2 on one
# SPIRE. Built with opt-level 3 (not the helper's size-first "z"), the same for both Rust
# crates; spiffe-rustls is a dev-dependency of the bench only. BENCH_SECTIONS=tls runs only this.
if [ "$RUN_TLS" = yes ]; then
  GO_PEER="$(tests/interop/build-go-peer.sh)"
  echo "bench: building the TLS bench (opt-level 3)" >&2
  CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_PANIC=unwind "$CARGO" build --release -p spiffe-helper-bench --example tls_bench
  SPIRE_BIN_DIR="$BIN" "$TARGET/release/examples/tls_bench" --go-peer "$GO_PEER" \
    --out "$TARGET/bench/tls.md" ${TLS_BENCH_ARGS:-}
  echo "bench: TLS table written to $TARGET/bench/tls.md" >&2
fi

# Library figures (docs/benchmarks.md): spiffe-workload-client's JwtSource::jwt_svid against
# go-spiffe's JWTSource.FetchJWTSVID (agent RPCs counted by the agent's own Prometheus counter),
# and the memory of a process holding an X509Source: ours, rust-spiffe 0.19 (a dev-dependency of
# the bench only) and go-spiffe. The two Rust holders and the driver share one build: the TLS
# section's profile (opt-level 3, no LTO), the same for ours and rust-spiffe's; the Go peer is a
# plain `go build -trimpath`. BENCH_SECTIONS=lib runs only this.
if [ "$RUN_LIB" = yes ]; then
  GO_PEER="$(tests/interop/build-go-peer.sh)"
  echo "bench: building the library bench (opt-level 3)" >&2
  CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_PANIC=unwind "$CARGO" build --release -p spiffe-helper-bench \
    --example lib_bench --example hold_x509_ours --example hold_x509_rust_spiffe
  EX="$TARGET/release/examples"
  SPIRE_BIN_DIR="$BIN" "$EX/lib_bench" --go-peer "$GO_PEER" \
    --hold-ours "$EX/hold_x509_ours" --hold-rust-spiffe "$EX/hold_x509_rust_spiffe" \
    --out "$TARGET/bench/lib.md" ${LIB_BENCH_ARGS:-}
  echo "bench: library table written to $TARGET/bench/lib.md" >&2
fi

# The floor of a durable three-file update on this disk (docs/benchmarks.md, "The floor"): a C
# probe doing only the system calls of each way to write key, certificate and bundle and tell a
# consumer (in place without flush as upstream, rename, fsync each, batch, directory swap,
# syncfs), round-robin, then ours' write path (crates/pem examples/write_timing, the release
# profile users get) in the same directory. BENCH_SECTIONS=floor runs only this.
if [ "$RUN_FLOOR" = yes ]; then
  command -v gcc >/dev/null || { echo "bench: gcc is required for the floor probe" >&2; exit 1; }
  gcc -O2 -Wall -Wextra -Werror -std=c11 tests/bench/floor.c -o "$TARGET/bench/floor"
  echo "bench: building ours' write timing (release profile)" >&2
  "$CARGO" build --release -p spiffe-helper-pem --example write_timing
  FLOOR_DIR="$TARGET/bench/floor-dir"
  rm -rf "$FLOOR_DIR"
  mkdir -p "$FLOOR_DIR/ours"
  {
    echo "# load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$TARGET/bench/floor" "$FLOOR_DIR/probe" "${FLOOR_RUNS:-300}"
    "$TARGET/release/examples/write_timing" "$FLOOR_DIR/ours" "${FLOOR_RUNS:-300}"
    echo "# load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
  } | tee "$TARGET/bench/floor.txt"
  rm -rf "$FLOOR_DIR"
  echo "bench: floor figures written to $TARGET/bench/floor.txt" >&2
fi
