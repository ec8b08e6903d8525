#!/usr/bin/env bash
# A real single-node Kubernetes as plain processes: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd, kubelet, kube-proxy and a cluster DNS (dnsmasq, answering only for
# the cluster's Services, forwarding nothing). Pids in STATE/pids, logs in STATE/logs.
#
#   tests/k8s/cluster.sh up      start (idempotent); prints `export KUBECONFIG=...` last
#   tests/k8s/cluster.sh down    stop by pid, remove pods' mounts, netns, bridge, CNI state,
#                                iptables KUBE-*/CNI-* chains, cgroups; restore sysctls
#   tests/k8s/cluster.sh check   fail when anything of a cluster is left on the host
#   tests/k8s/cluster.sh dns     refresh the DNS records from the cluster's Services
#
# Needs root, the binaries of tests/k8s/build-k8s.sh and the packages of scripts/install-deps.sh.
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=tests/k8s/pki.sh
. "$(dirname "$0")/pki.sh"

BIN="$(k8s_bin)"

save_host_state() {
  [ -s "$STATE/saved/sysctls" ] && return 0
  mkdir -p "$STATE/saved"
  local s
  for s in "${SYSCTLS[@]}"; do
    if v="$(sysctl -n "$s" 2>/dev/null)"; then
      echo "$s=$v"
    fi
  done >"$STATE/saved/sysctls"
  ip netns list 2>/dev/null | awk '{print $1}' >"$STATE/saved/netns"
  # The nf_tables tables that exist before kube-proxy and the kubelet create theirs.
  if command -v nft >/dev/null; then
    nft list tables 2>/dev/null >"$STATE/saved/nft-tables" || true
  fi
  [ -e "$AGENT_SOCKET_HOST_DIR" ] && touch "$STATE/saved/agent-socket-dir-existed"
  [ -e /var/lib/cni ] && touch "$STATE/saved/var-lib-cni-existed"
  [ -e /run/spire ] && touch "$STATE/saved/run-spire-existed"
  return 0
}

make_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/16" dev "$BRIDGE"
  ip link set "$BRIDGE" up
}

write_configs() {
  local c="$STATE/config"
  mkdir -p "$c" "$STATE/cni/net.d" "$STATE/cni/networks"
  cat >"$STATE/cni/net.d/10-shr-k8s.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "shr-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/networks",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP", "rangeStart": "10.244.1.10"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  # containerd 1.6: CRI with runc and cgroupfs; runc cannot lower oom_score_adj here (no
  # CAP_SYS_RESOURCE), hence restrict_oom_score_adj.
  cat >"$c/containerd.toml" <<EOF
version = 2
root = "$STATE/containerd"
state = "$STATE/run/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/shr/pause:3.10"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
EOF
  echo "nameserver $NODE_IP" >"$c/resolv.conf"
  cat >"$c/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
cgroupDriver: cgroupfs
failSwapOn: false
failCgroupV1: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
clusterDomain: $CLUSTER_DOMAIN
clusterDNS: [$NODE_IP]
resolvConf: $c/resolv.conf
tlsCertFile: $STATE/pki/kubelet-serving.crt
tlsPrivateKeyFile: $STATE/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $STATE/pki/ca.crt}
authorization:
  mode: Webhook
# Imported images must stay: nothing can be pulled here.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {}
serializeImagePulls: false
staticPodPath: ""
EOF
  cat >"$c/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $STATE/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  localhostNodePorts: false
  # Pods on one bridge reach each other through a Service: SNAT so the reply comes back
  # through the host's conntrack.
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  : >"$c/dns-hosts"
}

start_etcd() {
  start etcd etcd --name shr-k8s --data-dir "$STATE/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster shr-k8s=http://127.0.0.1:2380 --listen-metrics-urls "" \
    --log-level warn
  wait_for 60 "etcd" curl -sf http://127.0.0.1:2379/health ||
    { tail_log etcd; die "etcd did not start"; }
}

start_apiserver() {
  local p="$STATE/pki" issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN"
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers http://127.0.0.1:2379 \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --kubelet-client-certificate "$p/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$p/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$p/ca.crt" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --authorization-mode Node,RBAC \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --service-account-issuer "$issuer" \
    --service-account-key-file "$p/sa.pub" \
    --service-account-signing-key-file "$p/sa.key" \
    --api-audiences "$issuer,spire-server" \
    --allow-privileged=true \
    --profiling=false
  wait_for 90 "the apiserver" kc get --raw /readyz || { tail_log kube-apiserver; die "kube-apiserver is not ready"; }
}

start_controllers() {
  local p="$STATE/pki"
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --use-service-account-credentials=true \
    --cluster-signing-cert-file "$p/ca.crt" --cluster-signing-key-file "$p/ca.key" \
    --profiling=false
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig "$STATE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
    --authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

start_node() {
  start containerd containerd --config "$STATE/config/containerd.toml"
  wait_for 30 "containerd" ctr --address "$CONTAINERD_SOCK" version || { tail_log containerd; die "containerd did not start"; }
  "$(dirname "$0")/images.sh" import
  start kubelet "$BIN/kubelet" \
    --config "$STATE/config/kubelet.yaml" \
    --kubeconfig "$STATE/kubelet.kubeconfig" \
    --root-dir "$STATE/kubelet" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  # kube-proxy's rules for the system:kube-proxy user.
  kc get clusterrolebinding shr-kube-proxy >/dev/null 2>&1 ||
    kc create clusterrolebinding shr-kube-proxy --clusterrole system:node-proxier --user system:kube-proxy >/dev/null
  start kube-proxy "$BIN/kube-proxy" --config "$STATE/config/kube-proxy.yaml"
  start dns dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --bind-interfaces \
    --listen-address "$NODE_IP" --except-interface lo --addn-hosts "$STATE/config/dns-hosts" \
    --local "/$CLUSTER_DOMAIN/" --pid-file="" --log-facility=- --domain-needed --bogus-priv
  wait_for 90 "node $NODE_NAME to be Ready" node_ready || {
    tail_log kubelet 40
    kc describe node "$NODE_NAME" >&2 || true
    die "the node did not become Ready"
  }
}

node_ready() {
  [ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}

# dns: one A record per Service (name.ns.svc.cluster.local), then SIGHUP so dnsmasq re-reads them.
cmd_dns() {
  alive dns || die "the cluster DNS is not running (run: make env-up)"
  kc get svc -A -o jsonpath='{range .items[*]}{.spec.clusterIP} {.metadata.name}.{.metadata.namespace}.svc.'"$CLUSTER_DOMAIN"'{"\n"}{end}' |
    awk '$1 != "None" && $1 != ""' >"$STATE/config/dns-hosts.new"
  mv "$STATE/config/dns-hosts.new" "$STATE/config/dns-hosts"
  kill -HUP "$(cat "$STATE/pids/dns.pid")"
}

up_failed() {
  [ "$1" = 0 ] || say "env-up failed; logs in $STATE/logs (make env-down cleans up)"
}

cmd_up() {
  [ "$(id -u)" = 0 ] || die "the cluster needs root"
  BIN="$(wanted_k8s_bin)"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [ -x "$BIN/$b" ] || die "no $b in $BIN (run: tests/k8s/build-k8s.sh)"
  done
  for c in etcd containerd runc ctr dnsmasq iptables ip openssl curl; do
    command -v "$c" >/dev/null || die "$c is missing (run: make deps)"
  done
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing in /usr/lib/cni (run: make deps)"
  mkdir -p "$STATE"
  touch "$MARKER"
  refuse_other_version
  echo "$BIN" >"$STATE/k8s-bin"
  save_host_state
  trap 'up_failed $?' EXIT
  make_bridge
  make_pki
  write_configs
  start_etcd
  start_apiserver
  start_controllers
  start_node
  cmd_dns
  trap - EXIT
  say "node $NODE_NAME Ready; pids: $(cd "$STATE/pids" && for f in *.pid; do printf '%s=%s ' "${f%.pid}" "$(cat "$f")"; done)"
}

# --- teardown -------------------------------------------------------------------------------

# Pods first, through the kubelet, so it unmounts volumes and tears down the pod network with CNI.
drain_pods() {
  alive kubelet && alive kube-apiserver || return 0
  stop kube-controller-manager
  stop kube-scheduler
  kc delete pods --all -A --grace-period=0 --force --wait=false >/dev/null 2>&1 || true
  local t0=$SECONDS
  wait_for 60 "the kubelet to stop every pod" no_sandboxes || say "some pods still run; removing them by hand"
  say "pods stopped in $((SECONDS - t0))s"
}

no_sandboxes() {
  [ -z "$(ctr_k8s tasks ls -q 2>/dev/null)" ]
}

# Whatever the kubelet left: containers' tasks (by the pid containerd reports), then the shims of
# *this* containerd (their command line names its socket).
kill_leftover_tasks() {
  [ -S "$CONTAINERD_SOCK" ] || return 0
  local t
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do
    ctr_k8s tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
  sleep 1
  for t in $(ctr_k8s tasks ls -q 2>/dev/null); do
    ctr_k8s tasks delete -f "$t" >/dev/null 2>&1 || true
  done
}

kill_our_shims() {
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $CONTAINERD_SOCK" 2>/dev/null || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

mounts_under_state() {
  awk -v s="$STATE" '$5 == s || index($5, s "/") == 1 {print $5}' /proc/self/mountinfo | sort -r
}

# Pod volumes, containerd's overlays and shm, the kubelet's bind mount of its own root dir:
# deepest first, a few rounds (unmounting one can reveal another beneath it).
unmount_state() {
  local m
  for _ in 1 2 3; do
    for m in $(mounts_under_state); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
    done
    [ -z "$(mounts_under_state)" ] && return 0
  done
  return 1
}

remove_netns() {
  local ns
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep '^cni-' || true); do
    if ! grep -qx "$ns" "$STATE/saved/netns" 2>/dev/null; then
      ip netns delete "$ns" 2>/dev/null || say "could not delete netns $ns"
    fi
  done
}

# Rules jumping to KUBE-*/CNI-* chains from built-in chains, then the chains themselves.
clean_iptables() {
  local ipt table chain rule
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in nat filter mangle raw; do
      "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
      while read -r rule; do
        [ -n "$rule" ] || continue
        eval "\"$ipt\" -t \"$table\" ${rule/-A /-D }" 2>/dev/null || true
      done < <("$ipt" -t "$table" -S | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE|CNI)-' || true)
      for chain in $("$ipt" -t "$table" -S | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$table" -S | awk '/^-N (KUBE|CNI)-/ {print $2}'); do
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || say "could not delete $ipt -t $table chain $chain"
      done
    done
  done
}

# With iptables-nft, emptied tables stay behind as empty nf_tables tables: remove the ones that
# were not there before env-up and hold no rule.
remove_empty_tables() {
  command -v nft >/dev/null && [ -f "$STATE/saved/nft-tables" ] || return 0
  local fam table ipt
  while read -r _ fam table; do
    grep -qx "table $fam $table" "$STATE/saved/nft-tables" && continue
    case "$fam" in
      ip) ipt=iptables ;;
      ip6) ipt=ip6tables ;;
      *) continue ;;
    esac
    "$ipt" -t "$table" -S 2>/dev/null | grep -q '^-A ' && continue
    nft delete table "$fam" "$table" 2>/dev/null || say "could not delete nf_tables table $fam $table"
  done < <(nft list tables 2>/dev/null)
}

remove_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [ -d "$d" ] || continue
    find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || say "could not remove all of $d"
  done
}

restore_host_state() {
  local line
  if [ -s "$STATE/saved/sysctls" ]; then
    while read -r line; do
      sysctl -q -w "$line" >/dev/null 2>&1 || say "could not restore $line"
    done <"$STATE/saved/sysctls"
  fi
  [ -e "$STATE/saved/agent-socket-dir-existed" ] || rm -rf "$AGENT_SOCKET_HOST_DIR"
  [ -e "$STATE/saved/run-spire-existed" ] || rm -rf /run/spire
  [ -e "$STATE/saved/var-lib-cni-existed" ] || rm -rf /var/lib/cni
}

# timed STEP ARGS...: runs a teardown step; says so when it took 2 s or more.
timed() {
  local t0=$SECONDS
  "$@"
  [ $((SECONDS - t0)) -lt 2 ] || say "teardown: $* took $((SECONDS - t0))s"
}

cmd_down() {
  if [ ! -e "$STATE" ]; then
    say "no cluster in $STATE"
    remove_netns
    return 0
  fi
  [ -e "$MARKER" ] || die "$STATE was not made by tests/k8s/cluster.sh; not touching it"
  local t0=$SECONDS c
  timed drain_pods
  timed stop kube-proxy
  timed stop kubelet
  timed kill_leftover_tasks
  timed stop containerd
  timed kill_our_shims
  for c in dns kube-controller-manager kube-scheduler kube-apiserver etcd; do
    timed stop "$c"
  done
  unmount_state || die "mounts under $STATE remain: $(mounts_under_state | tr '\n' ' '); not removing it"
  timed remove_netns
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  timed clean_iptables
  timed remove_empty_tables
  timed remove_cgroups
  timed restore_host_state
  rm -rf "$STATE"
  say "cluster stopped in $((SECONDS - t0))s; host restored"
}

# check: nothing of a cluster is left (processes, mounts, netns, veths, chains, bridge, state).
cmd_check() {
  local left=()
  [ ! -e "$STATE" ] || left+=("state dir $STATE")
  pgrep -f "$STATE/" >/dev/null 2>&1 && left+=("processes: $(pgrep -af "$STATE/" | cut -c1-120 | tr '\n' ';')")
  [ -z "$(mounts_under_state)" ] || left+=("mounts: $(mounts_under_state | tr '\n' ' ')")
  awk -v c="$CACHE_BASE/images/" 'index($5, c) == 1 {found = 1} END {exit !found}' /proc/self/mountinfo &&
    left+=("podman storage mounts under $CACHE_BASE/images")
  ip netns list 2>/dev/null | grep -q '^cni-' && left+=("netns: $(ip netns list | grep '^cni-' | tr '\n' ' ')")
  ip link show "$BRIDGE" >/dev/null 2>&1 && left+=("bridge $BRIDGE")
  ip -o link show type veth 2>/dev/null | grep -q . && left+=("veths: $(ip -o link show type veth | awk -F': ' '{print $2}' | tr '\n' ' ')")
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    "$ipt-save" 2>/dev/null | grep -qE '(KUBE|CNI)-' && left+=("$ipt chains KUBE-*/CNI-*")
  done
  ls -d /sys/fs/cgroup/*/kubepods >/dev/null 2>&1 && left+=("kubepods cgroups")
  if [ ${#left[@]} -gt 0 ]; then
    printf 'k8s: left behind: %s\n' "${left[@]}" >&2
    return 1
  fi
  say "nothing of the cluster is left on the host"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  check) cmd_check ;;
  dns) cmd_dns ;;
  *)
    echo "usage: $0 up|down|check|dns" >&2
    exit 2
    ;;
esac
