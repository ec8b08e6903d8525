#!/usr/bin/env bash
# `make k8s-test`: env-up, smoke-test, env-down, then a check that nothing of the cluster is left
# on the host. The cluster is torn down whatever fails, so a red run leaves a clean machine.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
t0=$SECONDS
# smoke.sh writes the reason of a failure here; it is repeated as the last line, after the
# diagnostics and the teardown, so that the end of a CI log says what failed.
SMOKE_FAILURE_FILE="$(mktemp /tmp/shr-smoke-failure.XXXXXX)"
export SMOKE_FAILURE_FILE
teardown() {
  local rc=$?
  "$HERE/env.sh" down || rc=1
  "$HERE/cluster.sh" check || rc=1
  if [ -s "$SMOKE_FAILURE_FILE" ]; then
    echo "k8s: the smoke test failed at: $(cat "$SMOKE_FAILURE_FILE")" >&2
  fi
  rm -f "$SMOKE_FAILURE_FILE"
  echo "k8s: k8s-test finished in $((SECONDS - t0))s (exit $rc)" >&2
  exit "$rc"
}
trap teardown EXIT
# A cluster left by an interrupted run is stopped first: the smoke test starts from scratch.
"$HERE/env.sh" down
"$HERE/env.sh" up >/dev/null
"$HERE/smoke.sh"
