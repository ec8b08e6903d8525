#!/usr/bin/env bash
# `make demo-k8s` (after env-up): what the helper did in the cluster, in a few commands.
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"
show() {
  echo
  echo "\$ kubectl $*"
  kc "$@"
}
show get pods -A -o wide
show -n demo logs job/demo-client -c client
show -n demo logs deploy/demo-sidecar -c spiffe-helper --tail 8
pod="$(kc -n demo get pods -l app=demo-sidecar -o jsonpath='{.items[0].metadata.name}')"
echo
echo "\$ kubectl -n demo exec $pod -c nginx -- openssl x509 -in /run/spiffe/certs/svid.pem -noout -serial -enddate -ext subjectAltName"
kc -n demo exec "$pod" -c nginx -- openssl x509 -in /run/spiffe/certs/svid.pem -noout -serial -enddate -ext subjectAltName
echo
echo "The cluster keeps running: export KUBECONFIG=$KUBECONFIG_FILE (kubectl: $(k8s_bin)/kubectl)."
echo "make smoke-test exercises rotation, probes and re-attestation; make env-down stops it all."
