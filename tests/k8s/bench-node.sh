#!/usr/bin/env bash
# make bench-k8s: a node full of pods, each with the helper as its native sidecar, once with our
# image and once with upstream v0.11.0's built the same way (docs/benchmarks.md, "A node full of
# pods"). Not part of `make test`.
#
# For each image in turn (ours, then upstream), in the cluster of tests/k8s:
#   1. scale its Deployment from 0 to BENCH_K8S_PODS replicas; time until all pods are Ready and
#      the SPIRE agent container's CPU (cgroup cpuacct) meanwhile;
#   2. BENCH_K8S_IDLE_MINUTES idle minutes: the CPU of every helper container (and the agent's);
#   3. then each helper container's memory as the kubelet counts it (working set = usage -
#      total_inactive_file of its memory cgroup): median, max and the sum over the node;
#   4. scale back to 0 and wait until the pods are gone.
# The table goes to stdout and to $CARGO_TARGET_DIR/bench/k8s-node.md (target/ by default), the
# per-container figures next to it (k8s-node-<image>.tsv).
#
#   BENCH_K8S_PODS          pods per image (default 100: the kubelet's maxPods of 110 minus the
#                           pods env-up runs, with room for a terminating one)
#   BENCH_K8S_IDLE_MINUTES  the idle window (default 10)
#   HELPER_BIN              our binary (default $CARGO_TARGET_DIR/release/spiffe-helper-rust:
#                           run `make release` first)
#   UPSTREAM_HELPER_BIN     upstream's (default: the stripped build, made here when missing)
#
# Uses a running env-up cluster as it is and leaves it up; otherwise starts one and stops it
# (env.sh down, then cluster.sh check) whatever happens. Needs root, as env-up does. About 25
# minutes with the defaults on 2 cores: ~1 to start the cluster, ~1 per image to start and stop
# the pods, the two idle windows.
# shellcheck disable=SC2329 # finish runs from the EXIT trap, the predicates through wait_for
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"

PODS="${BENCH_K8S_PODS:-100}"
IDLE_MINUTES="${BENCH_K8S_IDLE_MINUTES:-10}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT_DIR="$TARGET/bench"
OUT="$OUT_DIR/k8s-node.md"
HELPER_BIN="${HELPER_BIN:-$TARGET/release/spiffe-helper-rust}"
NS=bench
BENCH_DIR="$ROOT/tests/k8s/bench"
SPIFFE_ID="spiffe://example.org/ns/bench/sa/bench"
AGENT_PARENT="spiffe://example.org/ns/spire/sa/spire-agent"
# Each image's pod count must reach Ready within this; the scale-down as well.
READY_TIMEOUT="${BENCH_K8S_READY_TIMEOUT:-900}"

case "$PODS" in '' | *[!0-9]*) die "BENCH_K8S_PODS must be a number, not '$PODS'" ;; esac
case "$IDLE_MINUTES" in '' | *[!0-9.]*) die "BENCH_K8S_IDLE_MINUTES must be a number, not '$IDLE_MINUTES'" ;; esac
[ "$(id -u)" = 0 ] || die "the cluster needs root"
[ -x "$HELPER_BIN" ] || die "no helper binary at $HELPER_BIN (run: make release)"

# --- cluster ---------------------------------------------------------------------------------

STARTED_HERE=no
finish() {
  local rc=$?
  if [ "$STARTED_HERE" = yes ]; then
    "$ROOT/tests/k8s/env.sh" down || rc=1
    "$ROOT/tests/k8s/cluster.sh" check || rc=1
  fi
  say "bench-k8s finished in $((SECONDS - T0))s (exit $rc)"
  exit "$rc"
}

# The upstream image wants a binary; the stripped one is what upstream releases (and what make
# bench measures).
upstream_bin() {
  local bin
  bin="$("$ROOT/tests/spire/build-spire.sh" --with-upstream-helper)"
  if [ -z "${UPSTREAM_HELPER_BIN:-}" ] && [ ! -x "$bin/spiffe-helper-stripped" ]; then
    command -v go >/dev/null || die "go is required to build $bin/spiffe-helper-stripped"
    say "building $bin/spiffe-helper-stripped (go build -ldflags '-s -w')"
    (cd "$(dirname "$bin")/helper-src" &&
      CGO_ENABLED=0 go build -ldflags "-s -w" -o "$bin/spiffe-helper-stripped" github.com/spiffe/spiffe-helper/cmd/spiffe-helper)
  fi
}

cluster_up() {
  upstream_bin
  export HELPER_BIN WITH_UPSTREAM_HELPER=1
  [ -e "$STATE" ] || STARTED_HERE=yes
  # env.sh up is idempotent: on a running cluster it rebuilds and re-imports the images only.
  "$ROOT/tests/k8s/env.sh" up >/dev/null
}

# --- workload --------------------------------------------------------------------------------


register() {
  spire_server entry show -spiffeID "$SPIFFE_ID" 2>/dev/null | grep -q '^Entry ID' && return 0
  spire_server entry create -spiffeID "$SPIFFE_ID" -parentID "$AGENT_PARENT" \
    -selector k8s:ns:bench -selector k8s:sa:bench >/dev/null
}

# deploy: the namespace, ServiceAccount and config, and both Deployments at 0 replicas.
deploy() {
  kc apply -f "$BENCH_DIR/workload.yaml" >/dev/null
  local name image
  for name in ours upstream; do
    image="$(image_of "$name")"
    sed -e "s|@NAME@|$name|g" -e "s|@IMAGE@|$image|g" "$BENCH_DIR/deployment.yaml" | kc apply -f - >/dev/null
  done
  register
}

image_of() {
  case "$1" in
    ours) echo localhost/spiffe-helper-rust:0.1.0 ;;
    upstream) echo localhost/shr/upstream-helper:0.11.0 ;;
  esac
}

ready_replicas() { kc -n "$NS" get deployment "$1" -o jsonpath='{.status.readyReplicas}'; }
pods_of() { kc -n "$NS" get pods -l "helper=$1" -o name; }
all_ready() { [ "$(ready_replicas "$1")" = "$PODS" ]; }
none_left() { [ -z "$(pods_of "$1")" ]; }

# --- cgroups (v1, cgroupfs driver: kubepods/<qos>/pod<uid>/<container id>) ---------------------

# containers NAMESPACE SELECTOR FIELD: "<pod uid> <qos class> <container id>" per pod, FIELD
# being initContainerStatuses (a native sidecar) or containerStatuses.
containers() {
  kc -n "$1" get pods -l "$2" -o jsonpath='{range .items[*]}{.metadata.uid} {.status.qosClass} {.status.'"$3"'[0].containerID}{"\n"}{end}' |
    sed 's|containerd://||'
}

# cgroup CONTROLLER UID QOS ID: the container's cgroup directory.
cgroup() {
  local qos
  case "$3" in
    Guaranteed) qos="" ;;
    Burstable) qos="burstable/" ;;
    *) qos="besteffort/" ;;
  esac
  echo "/sys/fs/cgroup/$1/kubepods/${qos}pod$2/$4"
}

# cpu_ns UID QOS ID: the container's CPU time so far, in ns.
cpu_ns() { cat "$(cgroup cpuacct "$@")/cpuacct.usage"; }

# working_set UID QOS ID: bytes, as the kubelet's cAdvisor counts them on cgroup v1.
working_set() {
  local d
  d="$(cgroup memory "$@")"
  awk -v usage="$(cat "$d/memory.usage_in_bytes")" '$1 == "total_inactive_file" {ws = usage - $2; print (ws < 0 ? 0 : ws)}' "$d/memory.stat"
}

agent_cpu_ns() {
  local uid qos id
  read -r uid qos id < <(containers spire app=spire-agent containerStatuses)
  cpu_ns "$uid" "$qos" "$id"
}

# helpers_cpu NAME FILE: "<container id> <cpu ns>" of every helper container of NAME into FILE.
helpers_cpu() {
  local uid qos id
  while read -r uid qos id; do
    echo "$id $(cpu_ns "$uid" "$qos" "$id")"
  done < <(containers "$NS" "helper=$1" initContainerStatuses) >"$2"
}

helpers_memory() {
  local uid qos id
  while read -r uid qos id; do
    echo "$id $(working_set "$uid" "$qos" "$id")"
  done < <(containers "$NS" "helper=$1" initContainerStatuses) >"$2"
}

restarts() {
  kc -n "$NS" get pods -l "helper=$1" -o jsonpath='{range .items[*]}{.status.initContainerStatuses[0].restartCount}{"\n"}{end}' |
    awk '{s += $1} END {print s + 0}'
}

# --- one image -------------------------------------------------------------------------------

now() { date +%s.%N; }

# measure NAME: the four steps of the header; results in $OUT_DIR/k8s-node-NAME.{tsv,vars}.
measure() {
  local name="$1" t0 t1 a0 a1 dir="$OUT_DIR/k8s-node-$1"
  mkdir -p "$dir"
  say "$name: scaling 0 -> $PODS pods"
  a0="$(agent_cpu_ns)"
  t0="$(now)"
  kc -n "$NS" scale deployment "$name" --replicas "$PODS" >/dev/null
  wait_for "$READY_TIMEOUT" "$PODS $name pods to be Ready" all_ready "$name" || {
    kc -n "$NS" get pods -l "helper=$name" -o wide | grep -v ' Running ' >&2 || true
    die "$name: only $(ready_replicas "$name") of $PODS pods Ready after ${READY_TIMEOUT}s"
  }
  t1="$(now)"
  a1="$(agent_cpu_ns)"
  say "$name: $PODS pods Ready in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')s; idle for $IDLE_MINUTES min"

  local i0 i1 idle_s
  helpers_cpu "$name" "$dir/cpu-before"
  i0="$(agent_cpu_ns)"
  idle_s="$(awk -v m="$IDLE_MINUTES" 'BEGIN {printf "%d", m * 60}')"
  sleep "$idle_s"
  helpers_cpu "$name" "$dir/cpu-after"
  i1="$(agent_cpu_ns)"
  helpers_memory "$name" "$dir/memory"

  # One line per helper container: id, working set (bytes), CPU over the idle window (ns).
  join <(sort "$dir/memory") <(join <(sort "$dir/cpu-before") <(sort "$dir/cpu-after") | awk '{print $1, $3 - $2}') |
    tr ' ' '\t' >"$OUT_DIR/k8s-node-$name.tsv"
  # A helper restarted during the window has a new container id and drops out of the join.
  local measured
  measured="$(wc -l <"$OUT_DIR/k8s-node-$name.tsv")"
  [ "$measured" = "$PODS" ] || say "$name: figures for $measured helper containers, not $PODS (restarted during the idle window)"
  {
    echo "ready_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')"
    echo "agent_start_ns=$((a1 - a0))"
    echo "agent_idle_ns=$((i1 - i0))"
    echo "restarts=$(restarts "$name")"
    echo "measured=$measured"
  } >"$OUT_DIR/k8s-node-$name.vars"

  say "$name: scaling back to 0"
  kc -n "$NS" scale deployment "$name" --replicas 0 >/dev/null
  wait_for "$READY_TIMEOUT" "the $name pods to be gone" none_left "$name" || die "$name: pods still there after ${READY_TIMEOUT}s"
  rm -rf "$dir"
}

# --- table -----------------------------------------------------------------------------------

# summary NAME COLUMN median|max|sum: of the per-container figures.
summary() {
  cut -f "$2" "$OUT_DIR/k8s-node-$1.tsv" | sort -n | awk -v what="$3" '
    { v[NR] = $1; s += $1 }
    END {
      if (what == "sum") print s
      else if (what == "max") print v[NR]
      else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2)
    }'
}

var() { sed -n "s/^$2=//p" "$OUT_DIR/k8s-node-$1.vars"; }

# row FIGURE UNIT OURS UPSTREAM: values in base units (bytes, ns, s); UNIT says how to print.
row() {
  awk -v fig="$1" -v unit="$2" -v a="$3" -v b="$4" '
    function fmt(v) {
      if (unit == "MiB") return sprintf("%.2f MiB", v / 1048576)
      if (unit == "s") return sprintf("%.1f s", v)
      if (unit == "cpu-s") return sprintf("%.2f s", v / 1e9)
      if (unit == "cpu-ms") return sprintf("%.1f ms", v / 1e6)
      return v
    }
    BEGIN {
      ratio = (b > 0) ? sprintf("%.2f×", a / b) : "—"
      printf "| %s | %s | %s | %s |\n", fig, fmt(a), fmt(b), ratio
    }'
}

machine() {
  echo "Machine: $(nproc) cores ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r), Kubernetes $K8S_VERSION, SPIRE $SPIRE_VERSION  "
}

table() {
  local idle="$IDLE_MINUTES min"
  machine
  echo "Load average (1/5/15 min) at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg)  "
  echo "$PODS pods per image, one image at a time (ours, then upstream); idle window $IDLE_MINUTES min; run: ${RUN_S}s (cluster up ${UP_S}s)"
  echo
  echo "| figure | ours | upstream | ours/upstream |"
  echo "|---|---|---|---|"
  row "scale 0 → $PODS: all pods Ready" s "$(var ours ready_s)" "$(var upstream ready_s)"
  row "SPIRE agent CPU during the scale-up" cpu-s "$(var ours agent_start_ns)" "$(var upstream agent_start_ns)"
  row "helper working set per container, median" MiB "$(summary ours 2 median)" "$(summary upstream 2 median)"
  row "helper working set per container, max" MiB "$(summary ours 2 max)" "$(summary upstream 2 max)"
  row "helper working set, all $PODS containers (node memory)" MiB "$(summary ours 2 sum)" "$(summary upstream 2 sum)"
  row "helper CPU over $idle idle, all $PODS containers" cpu-s "$(summary ours 3 sum)" "$(summary upstream 3 sum)"
  row "helper CPU over $idle idle, per container median" cpu-ms "$(summary ours 3 median)" "$(summary upstream 3 median)"
  row "helper CPU over $idle idle, per container max" cpu-ms "$(summary ours 3 max)" "$(summary upstream 3 max)"
  row "SPIRE agent CPU over the $idle idle" cpu-s "$(var ours agent_idle_ns)" "$(var upstream agent_idle_ns)"
  row "helper container restarts" count "$(var ours restarts)" "$(var upstream restarts)"
  echo
  echo "- images: ours \`localhost/spiffe-helper-rust:0.1.0\` ($(basename "$HELPER_BIN")), upstream \`localhost/shr/upstream-helper:0.11.0\`; same base, config, probes and resources"
  echo "- working set read at the end of the idle window; CPU from each container's cpuacct cgroup"
  echo "- helper containers measured over the whole idle window: ours $(var ours measured), upstream $(var upstream measured) of $PODS each"
}

# --- main ------------------------------------------------------------------------------------

main() {
  T0=$SECONDS
  LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
  trap finish EXIT
  mkdir -p "$OUT_DIR"
  cluster_up
  UP_S=$((SECONDS - T0))
  deploy
  local name
  for name in ours upstream; do
    measure "$name"
  done
  RUN_S=$((SECONDS - T0))
  table | tee "$OUT"
  say "table written to $OUT"
}

# Parsed whole before it runs: bash reads a script as it goes, so an edit to this file during a
# 25-minute run would otherwise break the run's last steps.
main "$@"
exit
