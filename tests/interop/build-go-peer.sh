#!/usr/bin/env bash
# Build the go-spiffe v2 interop peer (tests/interop/go) through the Go module proxy into a
# cache outside the repository; skips the build when the binary is newer than its sources.
# Prints the binary's path on stdout. Used by crates/tls/tests/interop.rs and the bench.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/interop-go}"
BIN="$CACHE/spiffe-interop-peer"

if [ ! -x "$BIN" ] || [ "$HERE/go/main.go" -nt "$BIN" ] || [ "$HERE/go/verdict.go" -nt "$BIN" ] || [ "$HERE/go/bundle.go" -nt "$BIN" ] || [ "$HERE/go/go.mod" -nt "$BIN" ]; then
  command -v go >/dev/null 2>&1 || { echo "build-go-peer: Go is required" >&2; exit 1; }
  mkdir -p "$CACHE"
  echo "build-go-peer: building $BIN" >&2
  (cd "$HERE/go" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$BIN.tmp" . >&2)
  mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"
