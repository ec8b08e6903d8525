#!/usr/bin/env bash
# Build spire-server and spire-agent (and optionally the upstream Go spiffe-helper) through the
# Go module proxy into a cache outside the repository. Skips the build when the binaries exist.
# Usage: tests/spire/build-spire.sh [--with-upstream-helper]
# Prints the bin directory on stdout.
set -euo pipefail

SPIRE_VERSION="${SPIRE_VERSION:-v1.13.3}"
HELPER_VERSION="${HELPER_VERSION:-v0.11.0}"
CACHE="${SPIRE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/spire-${SPIRE_VERSION}}"
BIN="$CACHE/bin"
with_helper=0
[ "${1:-}" = "--with-upstream-helper" ] && with_helper=1

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-spire: '$1' is required ($2)" >&2; exit 1; }; }

if [ ! -x "$BIN/spire-server" ] || [ ! -x "$BIN/spire-agent" ]; then
  need go "Go >= 1.25.3 with access to the Go module proxy"
  need gcc "cgo builds SPIRE's sqlite datastore"
  echo "build-spire: building SPIRE $SPIRE_VERSION into $BIN (first time only, several minutes)" >&2
  mkdir -p "$CACHE/src" "$BIN"
  cd "$CACHE/src"
  [ -f go.mod ] || go mod init local/spire-build >/dev/null 2>&1
  go get -tool "github.com/spiffe/spire/cmd/spire-server@$SPIRE_VERSION" >&2
  go get -tool "github.com/spiffe/spire/cmd/spire-agent@$SPIRE_VERSION" >&2
  CGO_ENABLED=1 go build -o "$BIN/" github.com/spiffe/spire/cmd/spire-server github.com/spiffe/spire/cmd/spire-agent >&2
fi

if [ "$with_helper" = 1 ] && [ ! -x "$BIN/spiffe-helper" ]; then
  need go "Go >= 1.25.3 with access to the Go module proxy"
  echo "build-spire: building upstream spiffe-helper $HELPER_VERSION into $BIN" >&2
  mkdir -p "$CACHE/helper-src"
  cd "$CACHE/helper-src"
  [ -f go.mod ] || go mod init local/helper-build >/dev/null 2>&1
  go get -tool "github.com/spiffe/spiffe-helper/cmd/spiffe-helper@$HELPER_VERSION" >&2
  CGO_ENABLED=0 go build -o "$BIN/" github.com/spiffe/spiffe-helper/cmd/spiffe-helper >&2
fi

echo "$BIN"
