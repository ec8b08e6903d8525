#!/usr/bin/env bash
# Builds SPIRE's spire-controller-manager (the component that registers workloads from
# ClusterSPIFFEID resources) from the Go module proxy into a cache outside the repository, and
# keeps its CustomResourceDefinitions next to the binary: the local cluster's SPIRE server runs
# it as a second container (deploy/k8s/10-spire-server.yaml) and env-up installs the CRDs from
# the same module version. Skips the work when both exist. Prints the cache directory on stdout
# (bin/spire-controller-manager, crds.yaml).
#
# The module's version list answers 403 at the proxy; the version is named, as SPIRE's is.
# A wrapper module requires it and builds its cmd package (its main), like build-helm.sh.
set -euo pipefail

SCM_VERSION="${SCM_VERSION:-v0.6.3}"
CACHE="${SCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/spire-controller-manager-${SCM_VERSION}}"
BIN="$CACHE/bin/spire-controller-manager"
MODULE=github.com/spiffe/spire-controller-manager

say() { echo "build-controller-manager: $*" >&2; }

if [ -x "$BIN" ] && [ -s "$CACHE/crds.yaml" ]; then
  echo "$CACHE"
  exit 0
fi
command -v go >/dev/null 2>&1 || { say "'go' is required (Go with access to the Go module proxy)"; exit 1; }
say "building spire-controller-manager $SCM_VERSION into $CACHE (first time only, a few minutes)"
mkdir -p "$CACHE/src" "$CACHE/bin"
cd "$CACHE/src"
if [ ! -f go.mod ]; then
  printf 'module local/scm-build\n\ngo 1.24.5\n\nrequire %s %s\n' "$MODULE" "$SCM_VERSION" >go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "%s/cmd"\n' "$MODULE" >tools.go
fi
go mod tidy >&2
CGO_ENABLED=0 go build -trimpath -o "$BIN.part" "$MODULE/cmd" >&2
mv "$BIN.part" "$BIN"
dir="$(go mod download -json "$MODULE@$SCM_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[ -d "$dir/config/crd/bases" ] || { say "no config/crd/bases in $dir"; exit 1; }
# The three kinds the controller reconciles (its ControllerManagerConfig is a file, not a CRD).
for kind in clusterspiffeids clusterfederatedtrustdomains clusterstaticentries; do
  cat "$dir/config/crd/bases/spire.spiffe.io_$kind.yaml"
  echo "---"
done >"$CACHE/crds.yaml.part"
mv "$CACHE/crds.yaml.part" "$CACHE/crds.yaml"
say "spire-controller-manager $SCM_VERSION built"
echo "$CACHE"
