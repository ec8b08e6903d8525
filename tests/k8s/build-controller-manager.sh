#!/usr/bin/env bash
# Builds SPIRE's spire-controller-manager (the component that registers workloads from
# ClusterSPIFFEID resources) from the Go module proxy into a cache outside the repository, and
# keeps its CustomResourceDefinitions next to the binary: the local cluster's SPIRE server runs
# it as a second container (deploy/k8s/10-spire-server.yaml) and env-up installs the CRDs from
# the same module version. Skips the work when both exist. Prints the cache directory on stdout
# (bin/spire-controller-manager, crds.yaml).
#
# The module's version list answers 403 at the proxy; the version is named, as SPIRE's is. A
# wrapper module requires it and builds its cmd package, its main (go-wrapper.sh).
set -euo pipefail
# shellcheck source=tests/k8s/go-wrapper.sh
. "$(dirname "$0")/go-wrapper.sh"

SCM_VERSION="${SCM_VERSION:-v0.6.3}"
CACHE="${SCM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/spire-controller-manager-${SCM_VERSION}}"
BIN="$CACHE/bin/spire-controller-manager"
MODULE=github.com/spiffe/spire-controller-manager

say() { echo "build-controller-manager: $*" >&2; }

if [ -x "$BIN" ] && [ -s "$CACHE/crds.yaml" ]; then
  echo "$CACHE"
  exit 0
fi
say "building spire-controller-manager $SCM_VERSION into $CACHE (first time only, a few minutes)"
go_wrapper_build "$CACHE/src" "$MODULE" "$SCM_VERSION" 1.24.5 "$MODULE/cmd" "$BIN"
dir="$(cd "$CACHE/src" && go mod download -json "$MODULE@$SCM_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[ -d "$dir/config/crd/bases" ] || { say "no config/crd/bases in $dir"; exit 1; }
# The three kinds the controller reconciles (its ControllerManagerConfig is a file, not a CRD).
for kind in clusterspiffeids clusterfederatedtrustdomains clusterstaticentries; do
  cat "$dir/config/crd/bases/spire.spiffe.io_$kind.yaml"
  echo "---"
done >"$CACHE/crds.yaml.part"
mv "$CACHE/crds.yaml.part" "$CACHE/crds.yaml"
say "spire-controller-manager $SCM_VERSION built"
echo "$CACHE"
