#!/usr/bin/env bash
# Builds the Kubernetes binaries the local cluster runs (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl) from the Go module proxy into a cache outside the
# repository, plus the pause image's static binary. Skips the build when the binaries exist.
#
# k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces the staging modules with
# ./staging/...), so a local wrapper module requires it and replaces each staging module with the
# same path at the matching v0.x tag. One `go build` of all binaries compiles shared packages once.
# The proxy does not serve every staging module of every release (v1.37 lacks k8s.io/sample-cli-plugin
# and k8s.io/sample-controller, v1.36 the former: their zips answer 403). None of the binaries
# imports those examples, but the upstream go.mod requires them, so a missing one is replaced with a
# local stub module (a directory holding only a go.mod); an imported one that is missing still fails
# the build, naming the package.
# Cold: ~11 min on 2 cores (v1.37.2, empty Go caches); Go caches ~5 GB. Prints the bin directory on stdout.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
CACHE="${K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/k8s-${K8S_VERSION}}"
BIN="$CACHE/bin"
CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

say() { echo "build-k8s: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { say "'$1' is required ($2)"; exit 1; }; }

complete() {
  local c
  for c in "${CMDS[@]}" pause; do
    [ -x "$BIN/$c" ] || return 1
  done
}

if complete; then
  echo "$BIN"
  exit 0
fi

need go "Go with access to the Go module proxy"
need gcc "the pause binary is C, linked statically"
say "building Kubernetes $K8S_VERSION into $BIN (first time only, ~10 minutes)"
mkdir -p "$CACHE/src" "$BIN"
cd "$CACHE/src"

go mod download k8s.io/kubernetes@"$K8S_VERSION" >&2
MOD_DIR="$(go mod download -json k8s.io/kubernetes@"$K8S_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
[ -d "$MOD_DIR" ] || { say "no module dir for k8s.io/kubernetes@$K8S_VERSION"; exit 1; }
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

# Every "k8s.io/x => ./staging/src/k8s.io/x" of the upstream go.mod.
mapfile -t STAGING < <(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\1#p' "$MOD_DIR/go.mod")
[ "${#STAGING[@]}" -gt 0 ] || { say "no staging modules found in $MOD_DIR/go.mod"; exit 1; }

if [ ! -f go.mod ]; then
  replaces=()
  stubs=()
  for m in "${STAGING[@]}"; do
    if go mod download "$m@$STAGING_VERSION" 2>/dev/null; then
      replaces+=("replace $m => $m $STAGING_VERSION")
    else
      # Not served by the proxy: a stub module in its place (see the top of this file).
      d="stubs/${m#k8s.io/}"
      mkdir -p "$d"
      printf 'module %s\n\ngo 1.23\n' "$m" >"$d/go.mod"
      replaces+=("replace $m => ./$d")
      stubs+=("$m")
    fi
  done
  [ "${#stubs[@]}" -eq 0 ] || say "not served by the module proxy, replaced with stubs: ${stubs[*]}"
  {
    echo "module local/k8s-build"
    echo
    echo "go 1.23"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    printf '%s\n' "${replaces[@]}"
  } >go.mod.new
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in "${CMDS[@]}"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
    echo ")"
  } >tools.go
  mv go.mod.new go.mod
fi
go mod tidy >&2

MINOR="${K8S_VERSION#v1.}"
MINOR="${MINOR%%.*}"
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$MINOR"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
pkgs=()
for c in "${CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
say "go build ${CMDS[*]}"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/" "${pkgs[@]}" >&2

# The pod sandbox ("pause") image's binary, from the same module zip (one small C file).
gcc -Os -static -DVERSION="$K8S_VERSION" -o "$BIN/pause" "$MOD_DIR/build/pause/linux/pause.c" >&2
strip "$BIN/pause" 2>/dev/null || true
complete || { say "build finished but binaries are missing in $BIN"; exit 1; }
echo "$BIN"
