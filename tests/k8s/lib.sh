# shellcheck shell=bash disable=SC2034
# Shared by tests/k8s/*.sh: names, paths and small helpers of the local single-node cluster.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
SPIRE_VERSION="${SPIRE_VERSION:-v1.13.3}"
CACHE_BASE="${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust"
# Everything the running cluster owns lives in STATE (short: Unix socket paths are < 108 bytes);
# env-down removes it.
STATE="${K8S_STATE:-/tmp/shr-k8s}"
MARKER="$STATE/.spiffe-helper-rust-k8s"
KUBECONFIG_FILE="$STATE/admin.kubeconfig"

# The node's network: a bridge made before the first pod so the apiserver and the kubelet can
# bind to it. Nothing listens on the machine's own interfaces; 127.0.0.1 cannot be the advertise
# address (Endpoints reject loopback).
BRIDGE="${K8S_BRIDGE:-shrk8s0}"
NODE_IP="10.244.0.1"
POD_CIDR="10.244.0.0/16"
SERVICE_CIDR="10.96.0.0/16"
KUBERNETES_SVC_IP="10.96.0.1"
NODE_NAME="shr-k8s-node"
CLUSTER_DOMAIN="cluster.local"
CONTAINERD_SOCK="$STATE/run/containerd.sock"
# The host path the SPIRE agent DaemonSet shares its socket through (deploy/k8s/20-spire-agent.yaml).
AGENT_SOCKET_HOST_DIR="/run/spire/agent-sockets"
# Host settings the kubelet, kube-proxy and the CNI bridge plugin change; saved at env-up and
# restored at env-down.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.ip_forward
  net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max)

say() { echo "k8s: $*" >&2; }
die() {
  echo "k8s: error: $*" >&2
  exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every second until it succeeds.
wait_for() {
  local secs="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 1
  done
}

# The binaries K8S_VERSION (or K8S_BIN_DIR) names.
wanted_k8s_bin() { echo "${K8S_BIN_DIR:-$CACHE_BASE/k8s-$K8S_VERSION/bin}"; }
# The binaries of the cluster in STATE when there is one (env-up records them), so that
# smoke-test and env-down use the version that was started whatever K8S_VERSION says now.
k8s_bin() {
  if [ -s "$STATE/k8s-bin" ]; then
    cat "$STATE/k8s-bin"
  else
    wanted_k8s_bin
  fi
}
# refuse_other_version: env-up on a cluster started from other binaries would mix versions.
refuse_other_version() {
  if [ -s "$STATE/k8s-bin" ] && [ "$(cat "$STATE/k8s-bin")" != "$(wanted_k8s_bin)" ]; then
    die "the cluster in $STATE runs $(cat "$STATE/k8s-bin"), not K8S_VERSION=$K8S_VERSION: make env-down first"
  fi
}
spire_bin() { echo "${SPIRE_BIN_DIR:-$CACHE_BASE/spire-$SPIRE_VERSION/bin}"; }
# spire_server ARGS...: the server CLI inside the StatefulSet's pod (its default socket path).
spire_server() { kc -n spire exec spire-server-0 -c spire-server -- /opt/spire/bin/spire-server "$@"; }
# entry_id SPIFFE_ID: the ID of (one) entry for SPIFFE_ID, empty when there is none.
entry_id() {
  spire_server entry show -spiffeID "$1" 2>/dev/null | awk '/^Entry ID/ {print $4; exit}'
}
# Helm as tests/k8s/build-helm.sh builds it; its cache, config and data stay in STATE.
helm_bin() { echo "${HELM_BIN:-$CACHE_BASE/helm-${HELM_VERSION:-v4.3.2}/bin/helm}"; }
helm_k8s() {
  HELM_CACHE_HOME="$STATE/helm/cache" HELM_CONFIG_HOME="$STATE/helm/config" HELM_DATA_HOME="$STATE/helm/data" \
    "$(helm_bin)" --kubeconfig "$KUBECONFIG_FILE" "$@"
}

kc() { "$(k8s_bin)/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" -n k8s.io "$@"; }

# running PID: the process exists and is not a zombie (the processes started here are
# reparented to init once their starter exits, and a zombie still answers kill -0).
running() {
  local st
  st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# alive NAME: the process recorded in STATE/pids/NAME.pid still runs.
alive() {
  local f="$STATE/pids/$1.pid"
  [ -s "$f" ] && running "$(cat "$f")"
}

# start NAME CMD...: runs CMD in its own session, output to STATE/logs/NAME.log, pid recorded in
# STATE/pids/NAME.pid. A no-op when it already runs.
start() {
  local name="$1"
  shift
  if alive "$name"; then
    return 0
  fi
  mkdir -p "$STATE/pids" "$STATE/logs"
  rm -f "$STATE/pids/$name.pid"
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$STATE/pids/$name.pid" "$@" \
    </dev/null >>"$STATE/logs/$name.log" 2>&1 &
  wait_for 5 "$name to record its pid" test -s "$STATE/pids/$name.pid"
}

not_running() { ! running "$1"; }

# stop NAME [GRACE]: SIGTERM the recorded pid, SIGKILL after GRACE seconds (default 15).
stop() {
  local name="$1" grace="${2:-15}" f="$STATE/pids/$1.pid" pid t0=$SECONDS
  if alive "$name"; then
    pid="$(cat "$f")"
    kill -TERM "$pid" 2>/dev/null || true
    # Most exit within a fraction of a second: poll at 0.2 s first.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      running "$pid" || break
      sleep 0.2
    done
    if running "$pid" && ! wait_for "$grace" "$name (pid $pid) to exit" not_running "$pid"; then
      say "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait_for 5 "$name (pid $pid) to die" not_running "$pid" || true
    fi
    [ $((SECONDS - t0)) -lt 3 ] || say "$name took $((SECONDS - t0))s to stop"
  fi
  rm -f "$f"
}

# tail_log NAME [LINES]: the end of a component's log, for failure messages.
tail_log() {
  local f="$STATE/logs/$1.log"
  [ -f "$f" ] || return 0
  echo "----- last lines of $f -----" >&2
  tail -n "${2:-30}" "$f" >&2
}
