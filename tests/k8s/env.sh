#!/usr/bin/env bash
# `make env-up` / `make env-down`: the single-node cluster (tests/k8s/cluster.sh) with SPIRE and
# the demo workloads deployed from deploy/k8s (the manifests users apply) through the
# deploy/local overlay, which only swaps in the local images, `imagePullPolicy: Never`, a
# hostPath volume and the node address.
#
#   tests/k8s/env.sh up     build/cache what is missing, start the cluster, deploy, register;
#                           idempotent; the last line is `export KUBECONFIG=...`
#   tests/k8s/env.sh down   everything stopped and removed (works without a cluster too)
#   tests/k8s/env.sh injector   (re)install the injector as env-up did (the smoke test
#                           recreates it this way)
#
# INJECTOR_INSTALL=helm (default) installs the injector with its Helm chart
# (deploy/helm/spiffe-helper-injector, values deploy/local/injector-values.yaml);
# INJECTOR_INSTALL=manifests applies deploy/k8s/50-injector.yaml through deploy/local/injector.
# `make test` runs one Kubernetes version each way.
#
# The walkthrough of deploy/README.md, step by step: spire-controller-manager's CRDs, SPIRE
# server (with the controller beside it) and agent, the ClusterSPIFFEID that registers the
# workloads (no entry made by hand for them), then the native-sidecar nginx and the one-shot Job, the injector and the
# annotated demo it injects. Plus the smoke test's client pod (tests/k8s/mtls-client.yaml).
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"

TD="example.org"
AGENT_PARENT="spiffe://$TD/ns/spire/sa/spire-agent"

# ensure_entry SPIFFE_ID ARGS...: `entry create` unless an entry for SPIFFE_ID exists.
ensure_entry() {
  local id="$1"
  shift
  [ -n "$(entry_id "$id")" ] && return 0
  spire_server entry create -spiffeID "$id" "$@" >/dev/null
}

register() {
  # The node alias: workloads are registered by spire-controller-manager from ClusterSPIFFEIDs
  # (deploy/k8s/15-cluster-spiffeids.yaml), except make bench-k8s's pods, which
  # tests/k8s/bench-node.sh registers with one entry parented to this alias.
  ensure_entry "$AGENT_PARENT" -node \
    -selector k8s_psat:cluster:demo-cluster -selector k8s_psat:agent_ns:spire -selector k8s_psat:agent_sa:spire-agent
}

# crds: spire-controller-manager's CustomResourceDefinitions, from the module version it was
# built from, established before anything uses them.
crds() {
  local scm
  scm="$("$ROOT/tests/k8s/build-controller-manager.sh")"
  kc apply --server-side -f "$scm/crds.yaml" >/dev/null
  kc wait --for condition=established --timeout 60s crd/clusterspiffeids.spire.spiffe.io \
    crd/clusterfederatedtrustdomains.spire.spiffe.io crd/clusterstaticentries.spire.spiffe.io >/dev/null ||
    die "spire-controller-manager's CRDs were not established"
}

# describe_failure KIND/NAME NAMESPACE: what a person would look at when a rollout hangs.
describe_failure() {
  say "----- kubectl get pods -A -o wide -----"
  kc get pods -A -o wide >&2 || true
  say "----- kubectl -n $2 describe $1 (and its pods) -----"
  kc -n "$2" describe "$1" >&2 || true
  kc -n "$2" describe pods >&2 2>/dev/null | tail -n 60 >&2 || true
  local p
  for p in $(kc -n "$2" get pods -o name 2>/dev/null); do
    say "----- logs of $p -----"
    kc -n "$2" logs "$p" --all-containers --tail 30 >&2 || true
  done
}

rollout() {
  kc -n "$2" rollout status "$1" --timeout "${3:-180}s" >/dev/null || {
    describe_failure "$1" "$2"
    die "$1 in namespace $2 did not roll out"
  }
}

# The overlay rendered once; the Job is applied after the sidecar it calls is Ready (as in
# deploy/README.md), so its four attempts are not spent waiting for nginx.
render() {
  mkdir -p "$STATE/manifests"
  kc kustomize --load-restrictor LoadRestrictionsNone "$ROOT/deploy/local" >"$STATE/manifests/all.yaml"
  awk -v jobs="$STATE/manifests/jobs.yaml" -v rest="$STATE/manifests/rest.yaml" '
    function flush() { if (doc != "") { print doc "---" > (isjob ? jobs : rest) } doc = ""; isjob = 0 }
    /^---$/ { flush(); next }
    /^kind: Job$/ { isjob = 1 }
    { doc = doc $0 "\n" }
    END { flush() }' "$STATE/manifests/all.yaml"
  [ -s "$STATE/manifests/jobs.yaml" ] && [ -s "$STATE/manifests/rest.yaml" ] || die "the overlay rendered no Job or nothing else"
  kc kustomize --load-restrictor LoadRestrictionsNone "$ROOT/deploy/local/annotated" >"$STATE/manifests/annotated.yaml"
  kc kustomize --load-restrictor LoadRestrictionsNone "$ROOT/deploy/local/injector" >"$STATE/manifests/injector.yaml"
}

# install_injector: the injector by Helm or from the plain manifests (INJECTOR_INSTALL, recorded
# at the first install so that a reinstall does the same).
install_injector() {
  local how
  how="$(cat "$STATE/injector-install" 2>/dev/null || echo "${INJECTOR_INSTALL:-helm}")"
  case "$how" in
    helm)
      helm_k8s upgrade --install spiffe-helper-injector "$ROOT/deploy/helm/spiffe-helper-injector" \
        --namespace spiffe-helper-injector --create-namespace \
        -f "$ROOT/deploy/local/injector-values.yaml" >"$STATE/logs/helm.log" 2>&1 ||
        { cat "$STATE/logs/helm.log" >&2; die "helm upgrade --install of the injector's chart failed"; }
      ;;
    manifests) kc apply -f "$STATE/manifests/injector.yaml" >/dev/null ;;
    *) die "INJECTOR_INSTALL is '$how'; it can be helm or manifests" ;;
  esac
  echo "$how" >"$STATE/injector-install"
  say "injector installed ($how)"
}

deploy() {
  # The SPIRE server's PersistentVolume (deploy/local/spire-data-pv.yaml), owned by its uid.
  install -d -o 1000 -g 1000 -m 0750 "$STATE/pv/spire-data"
  render
  crds
  kc apply -f "$STATE/manifests/rest.yaml" >/dev/null
  "$ROOT/tests/k8s/cluster.sh" dns
  rollout statefulset/spire-server spire
  register
  # The injector starts now and fetches its SVID while the rest comes up.
  install_injector
  rollout daemonset/spire-agent spire
  rollout deployment/demo-sidecar demo
  "$ROOT/tests/k8s/cluster.sh" dns
  kc apply -f "$STATE/manifests/jobs.yaml" >/dev/null
  kc apply -f "$ROOT/tests/k8s/mtls-client.yaml" >/dev/null
  kc -n demo wait --for=condition=complete job/demo-client --timeout 180s >/dev/null || {
    describe_failure job/demo-client demo
    die "the one-shot Job demo-client did not complete"
  }
  rollout deployment/mtls-client demo
  # The annotated demo once the injector is Ready (it writes the webhook's caBundle before it
  # turns Ready): applied earlier, its ReplicaSet would be refused (failurePolicy Fail) and
  # retry with a growing backoff.
  rollout deployment/spiffe-helper-injector spiffe-helper-injector
  kc apply -f "$STATE/manifests/annotated.yaml" >/dev/null
  "$ROOT/tests/k8s/cluster.sh" dns
  rollout deployment/annotated-demo demo-annotated
}

cmd_up() {
  local t0=$SECONDS
  refuse_other_version
  "$ROOT/tests/k8s/build-k8s.sh" >/dev/null
  "$ROOT/tests/spire/build-spire.sh" >/dev/null
  "$ROOT/tests/k8s/build-helm.sh" >/dev/null
  "$ROOT/tests/k8s/build-controller-manager.sh" >/dev/null
  "$ROOT/tests/k8s/images.sh" build
  "$ROOT/tests/k8s/cluster.sh" up
  deploy
  say "SPIRE and the demo workloads are up in $((SECONDS - t0))s:"
  kc get pods -A -o wide >&2
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
}

case "${1:-}" in
  up) cmd_up ;;
  down) "$ROOT/tests/k8s/cluster.sh" down ;;
  injector)
    [ -s "$KUBECONFIG_FILE" ] || die "no cluster (run: make env-up)"
    install_injector
    ;;
  *)
    echo "usage: $0 up|down|injector" >&2
    exit 2
    ;;
esac
