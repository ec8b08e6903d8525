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
# About 3 minutes of measurement on 2 cores, plus the first-time builds (up to ~10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO="${CARGO:-cargo}"
BIN="$(tests/spire/build-spire.sh --with-upstream-helper)"
UPSTREAM="$BIN/spiffe-helper"
STRIPPED="$BIN/spiffe-helper-stripped"

# Upstream's own release build (its Makefile) links with -s -w: symbols and DWARF stripped.
if [ ! -x "$STRIPPED" ]; then
  command -v go >/dev/null || { echo "bench: go is required to build $STRIPPED" >&2; exit 1; }
  echo "bench: building $STRIPPED (go build -ldflags '-s -w')" >&2
  (cd "$(dirname "$BIN")/helper-src" &&
    CGO_ENABLED=0 go build -ldflags "-s -w" -o "$STRIPPED" github.com/spiffe/spiffe-helper/cmd/spiffe-helper)
fi

echo "bench: building spiffe-helper-rust (release: strip, fat LTO)" >&2
"$CARGO" build --release -p spiffe-helper-rust
# The driver itself need not be LTO'd; optimised is enough for the load client.
echo "bench: building the driver" >&2
CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  "$CARGO" build --release -p spiffe-helper-bench

# Built binaries are where cargo put them: honour CARGO_TARGET_DIR as cargo does.
TARGET="${CARGO_TARGET_DIR:-target}"
mkdir -p "$TARGET/bench"
# BENCH_SECTIONS: "all" (default) or a comma-separated list of the driver's sections and "tls".
SECTIONS="${BENCH_SECTIONS:-all}"
DRIVER_SECTIONS="$(tr ',' '\n' <<<"$SECTIONS" | grep -vx tls | paste -sd, -)" || true
RUN_TLS=no
if [ "$SECTIONS" = all ] || tr ',' '\n' <<<"$SECTIONS" | grep -qx tls; then RUN_TLS=yes; fi
if [ -n "$DRIVER_SECTIONS" ]; then
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
