#!/usr/bin/env bash
# Builds Helm (v4, the CLI the smoke test installs the injector's chart with and `make lint`
# lints it with) from the Go module proxy into a cache outside the repository. Skips the build
# when the binary exists. Prints the binary's path on stdout.
#
# A wrapper module requires helm.sh/helm/v4 and builds its cmd/helm (go-wrapper.sh); the module
# versions are Helm's own, and the version Helm reports is set as its release builds set it.
# Cold: a few minutes on 2 cores.
set -euo pipefail
# shellcheck source=tests/k8s/go-wrapper.sh
. "$(dirname "$0")/go-wrapper.sh"

HELM_VERSION="${HELM_VERSION:-v4.3.2}"
CACHE="${HELM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/helm-${HELM_VERSION}}"
BIN="$CACHE/bin/helm"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi
echo "build-helm: building Helm $HELM_VERSION into $BIN (first time only, a few minutes)" >&2
go_wrapper_build "$CACHE/src" helm.sh/helm/v4 "$HELM_VERSION" 1.25 helm.sh/helm/v4/cmd/helm "$BIN" \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION"
echo "build-helm: helm $HELM_VERSION built" >&2
echo "$BIN"
