#!/usr/bin/env bash
# Build the go-spiffe v2 interop peer (tests/interop/go) through the Go module proxy into a
# cache outside the repository; skips the build when the binary is newer than its sources.
# Prints the binary's path on stdout. Used by crates/tls/tests/interop.rs and the bench.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${INTEROP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/interop-go}"
BIN="$CACHE/spiffe-interop-peer"

# Rebuild when any source (every .go file, go.mod, go.sum) is newer than the binary.
stale() {
  [ ! -x "$BIN" ] && return 0
  [ -n "$(find "$HERE/go" -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) -newer "$BIN" -print -quit)" ]
}
if stale; then
  command -v go >/dev/null 2>&1 || { echo "build-go-peer: Go is required" >&2; exit 1; }
  mkdir -p "$CACHE"
  echo "build-go-peer: building $BIN" >&2
  (cd "$HERE/go" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$BIN.tmp" . >&2)
  mv "$BIN.tmp" "$BIN"
fi
echo "$BIN"
