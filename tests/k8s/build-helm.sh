#!/usr/bin/env bash
# Builds Helm (v4, the CLI the smoke test installs the injector's chart with and `make lint`
# lints it with) from the Go module proxy into a cache outside the repository. Skips the build
# when the binary exists. Prints the binary's path on stdout.
#
# A wrapper module requires helm.sh/helm/v4 and builds its cmd/helm, as build-k8s.sh does for
# Kubernetes; the module versions are Helm's own (the wrapper adds no other requirement), and
# the version Helm reports is set as its release builds set it. Cold: a few minutes on 2 cores.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE="${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/helm-${HELM_VERSION}}"
BIN="$CACHE/bin/helm"

say() { echo "build-helm: $*" >&2; }

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null 2>&1 || { say "'go' is required (Go with access to the Go module proxy)"; exit 1; }
say "building Helm $HELM_VERSION into $BIN (first time only, a few minutes)"
mkdir -p "$CACHE/src" "$CACHE/bin"
cd "$CACHE/src"
if [ ! -f go.mod ]; then
  printf 'module local/helm-build\n\ngo 1.25\n\nrequire helm.sh/helm/v4 %s\n' "$HELM_VERSION" >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' >tools.go
fi
go mod tidy >&2
CGO_ENABLED=0 go build -trimpath \
  -ldflags "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
  -o "$BIN.part" helm.sh/helm/v4/cmd/helm >&2
mv "$BIN.part" "$BIN"
say "helm $HELM_VERSION built"
echo "$BIN"
