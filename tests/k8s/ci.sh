#!/usr/bin/env bash
# `make k8s-test`: env-up, smoke-test, env-down, then a check that nothing of the cluster is left
# on the host. The cluster is torn down whatever fails, so a red run leaves a clean machine.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
t0=$SECONDS
teardown() {
  local rc=$?
  "$HERE/env.sh" down || rc=1
  "$HERE/cluster.sh" check || rc=1
  echo "k8s: k8s-test finished in $((SECONDS - t0))s (exit $rc)" >&2
  exit "$rc"
}
trap teardown EXIT
# A cluster left by an interrupted run is stopped first: the smoke test starts from scratch.
"$HERE/env.sh" down
"$HERE/env.sh" up >/dev/null
"$HERE/smoke.sh"
