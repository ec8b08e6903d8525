# shellcheck shell=bash
# Shared by build-helm.sh and build-controller-manager.sh: a Go tool built from the Go module
# proxy through a wrapper module (as build-k8s.sh does for Kubernetes), so that the module
# versions are the tool's own and the build lands in a cache outside the repository. Sourced.

# go_wrapper_build DIR MODULE VERSION GO PACKAGE OUT [LDFLAGS]: in DIR, a module that requires
# MODULE at VERSION (go directive GO) and imports PACKAGE; `go build` of PACKAGE to OUT, written
# under a temporary name first so that an interrupted build leaves no binary behind.
go_wrapper_build() {
  local dir="$1" module="$2" version="$3" go_version="$4" package="$5" out="$6" ldflags="${7:-}"
  command -v go >/dev/null 2>&1 || { echo "'go' is required (Go with access to the Go module proxy)" >&2; return 1; }
  mkdir -p "$dir" "$(dirname "$out")"
  (
    cd "$dir" || exit 1
    if [ ! -f go.mod ]; then
      printf 'module local/%s-build\n\ngo %s\n\nrequire %s %s\n' "$(basename "$out")" "$go_version" "$module" "$version" >go.mod
      printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" >tools.go
    fi
    go mod tidy >&2 &&
      CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out.part" "$package" >&2 &&
      mv "$out.part" "$out"
  )
}
