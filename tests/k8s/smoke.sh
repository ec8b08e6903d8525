#!/usr/bin/env bash
# `make smoke-test`: what users run, checked in the cluster of `make env-up`.
#
#  1. every pod Running/Ready (the Job Complete), no demo container restarted although the
#     sidecar may start before the agent
#  2. the helper's image is the one built from deploy/Dockerfile; the helper runs as non-root,
#     no capabilities, read-only root filesystem
#  3. one-shot initContainers exited 0 before their main container started; the main container
#     reads a certificate whose URI SAN is spiffe://example.org/ns/<ns>/sa/<sa>
#  4. the client pod calls nginx over mTLS through the Service; `kubectl port-forward` to
#     127.0.0.1 and `openssl s_client` from the host show the same (serial, SPIFFE ID)
#  5. every workload entry is spire-controller-manager's; the workloads' ClusterSPIFFEID given a
#     short TTL and the sidecar's entry deleted in SPIRE: the controller makes it again, the
#     helper gets the new SVID
#  6. rotation reaches nginx with no restart: a new serial is served
#  7. the annotated Deployment (no helper in its spec) was injected: a native sidecar first, nginx
#     started on the files (no restart), serves spiffe://example.org/ns/demo-annotated/sa/annotated-demo
#     over mTLS to the client pod
#  8. the injected helper's rotation reaches nginx without a restart
#  9. the webhook's caBundle is the SPIRE bundle; a pod in an unlabelled namespace is untouched;
#     a bad annotation is refused with a reason naming it (kubectl create --dry-run=server)
# 10. the injector's own SVID rotates (its serving certificate, verified as the kube-apiserver
#     does) and admissions keep working
# 11. the injector deleted: pods in labelled namespaces are refused (failurePolicy Fail), others
#     admitted, the annotated ReplicaSet reports FailedCreate; recreated (its caBundle removed
#     meanwhile): it writes the caBundle back, and the ReplicaSet's pod is created, injected
# 12. the agent away (its DaemonSet pinned to no node) until the SVID expires: the pod turns
#     NotReady; the DaemonSet brings the agent back, the helper reconnects, Ready again with
#     restart count 0
# 13. the helper's pod deleted: the Deployment brings it back and it attests again
# Every wait is bounded and prints the kubectl describe/logs that explain a failure.
# Certificates and keys copied to the host stay in a mode-700 temp dir; nothing secret is printed.
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"

TD="example.org"
SIDECAR_ID="spiffe://$TD/ns/demo/sa/demo-sidecar"
CLIENT_ID="spiffe://$TD/ns/demo/sa/demo-client"
# spire-controller-manager's entry ID prefix (deploy/k8s/10-spire-server.yaml).
SCM_PREFIX="k8s-"
AGENT_ALIAS="spiffe://$TD/ns/spire/sa/spire-agent"
SHORT_TTL=20
HELPER_IMAGE="localhost/spiffe-helper-rust:0.1.0"
# The injector (deploy/k8s/50-injector.yaml) and the annotated demo it injects.
INJ_NS="spiffe-helper-injector"
INJ_HOST="spiffe-helper-injector.$INJ_NS.svc"
WEBHOOK="spiffe-helper-injector"
ANN_NS="demo-annotated"
ANN_HOST="annotated-demo.$ANN_NS.svc"
ANNOTATED_ID="spiffe://$TD/ns/$ANN_NS/sa/annotated-demo"
WORK=""
PF_PID=""
step_no=0

T0=$SECONDS
step() {
  step_no=$((step_no + 1))
  say "[$step_no] (+$((SECONDS - T0))s) $*"
}

cleanup() {
  [ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null
  [ -n "$WORK" ] && rm -rf "$WORK"
  # A failed readiness step must not leave the agent away.
  kc -n spire get ds spire-agent -o jsonpath='{.spec.template.spec.nodeSelector}' 2>/dev/null | grep -q shr-smoke &&
    agent_back >/dev/null 2>&1
  return 0
}

# fail MESSAGE: the state of the demo pods, their helpers' logs and the agent's, then exit 1.
# The message is printed first and again after the diagnostics (CI shows the end of the log),
# and written to SMOKE_FAILURE_FILE when make k8s-test sets it, to be repeated after teardown.
fail() {
  local why="[$step_no] (+$((SECONDS - T0))s) $*"
  say "FAILED: $why"
  # Once per run: a failure inside $(...) also fails its caller.
  if [ -n "$WORK" ] && [ -e "$WORK/failed" ]; then
    exit 1
  fi
  [ -z "$WORK" ] || touch "$WORK/failed"
  [ -z "${SMOKE_FAILURE_FILE:-}" ] || echo "$why" >"$SMOKE_FAILURE_FILE"
  {
    echo "----- kubectl get pods -A -o wide -----"
    kc get pods -A -o wide
    echo "----- kubectl -n demo get endpointslices -----"
    kc -n demo get endpointslices -o wide
    echo "----- kubectl -n demo get events (last 30) -----"
    kc -n demo get events --sort-by=.lastTimestamp | tail -n 30
    echo "----- kubectl -n demo describe pods -----"
    kc -n demo describe pods | tail -n 80
    local p
    for p in $(kc -n demo get pods -l app=demo-sidecar -o name); do
      echo "----- kubectl -n demo logs $p -c spiffe-helper (last 40) -----"
      kc -n demo logs "$p" -c spiffe-helper --tail 40
      echo "----- kubectl -n demo logs $p -c spiffe-helper --previous (last 20, if it restarted) -----"
      kc -n demo logs "$p" -c spiffe-helper --previous --tail 20 2>/dev/null
      echo "----- kubectl -n demo logs $p -c nginx (last 20) -----"
      kc -n demo logs "$p" -c nginx --tail 20
    done
    echo "----- kubectl -n $ANN_NS describe pods (last 40) -----"
    kc -n "$ANN_NS" describe pods | tail -n 40
    echo "----- kubectl -n $ANN_NS get events (last 15) -----"
    kc -n "$ANN_NS" get events --sort-by=.lastTimestamp | tail -n 15
    for p in $(kc -n "$ANN_NS" get pods -o name); do
      echo "----- kubectl -n $ANN_NS logs $p --all-containers (last 30) -----"
      kc -n "$ANN_NS" logs "$p" --all-containers --tail 30
    done
    for p in $(kc -n "$INJ_NS" get pods -o name); do
      echo "----- kubectl -n $INJ_NS logs $p (last 30) -----"
      kc -n "$INJ_NS" logs "$p" --tail 30
    done
    echo "----- kubectl -n spire logs ds/spire-agent (last 30) -----"
    kc -n spire logs ds/spire-agent --tail 30
    echo "----- kubectl -n spire logs spire-server-0 -c spire-controller-manager (last 20) -----"
    kc -n spire logs spire-server-0 -c spire-controller-manager --tail 20
    echo "----- kubectl -n spire logs spire-server-0 (last 20) -----"
    kc -n spire logs spire-server-0 -c spire-server --tail 20
  } >&2 2>&1 || true
  say "FAILED: $why"
  exit 1
}

# until_ok SECONDS DESCRIPTION COMMAND...: wait_for, failing the test with diagnostics.
until_ok() {
  local secs="$1" what="$2"
  shift 2
  wait_for "$secs" "$what" "$@" || fail "$what (waited ${secs}s)"
}

# pod_in NS APP: the name of a Running pod of the app in NS, empty when there is none.
pod_in() {
  kc -n "$1" get pods -l "app=$2" --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | awk 'NR == 1'
}

# pod_of APP: pod_in the demo namespace.
pod_of() { pod_in demo "$1"; }

# need_pod APP: pod_of, failing the test when there is none.
need_pod() {
  local p
  p="$(pod_of "$1")"
  [ -n "$p" ] || fail "no Running pod with app=$1"
  echo "$p"
}

jp() { kc -n "$1" get pod "$2" -o jsonpath="$3"; }

pod_ready() { [ "$(jp "$1" "$2" '{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
pod_not_ready() { [ "$(jp "$1" "$2" '{.status.conditions[?(@.type=="Ready")].status}')" = False ]; }

# ns_restarts NS POD: restart counts of all containers of a pod, summed.
ns_restarts() {
  jp "$1" "$2" '{range .status.initContainerStatuses[*]}{.restartCount}{"\n"}{end}{range .status.containerStatuses[*]}{.restartCount}{"\n"}{end}' |
    awk '{s += $1} END {print s + 0}'
}

# restarts POD: ns_restarts of a demo pod.
restarts() { ns_restarts demo "$1"; }

# cert_in POD CONTAINER: the certificate the container reads from the shared cert dir.
cert_in() { kc -n demo exec "$1" -c "$2" -- cat /run/spiffe/certs/svid.pem; }

serial_of() { openssl x509 -noout -serial | cut -d= -f2; }
uri_san_of() { openssl x509 -noout -ext subjectAltName | grep -o 'URI:[^, ]*' | cut -d: -f2-; }

# --- 1. pods, image, security context ---------------------------------------------------------

check_pods() {
  step "every pod Running and Ready, the one-shot Job Complete"
  local ns name phase
  while read -r ns name phase; do
    case "$phase" in
      Succeeded) [[ "$name" == demo-client-* ]] || fail "pod $ns/$name is $phase" ;;
      Running)
        pod_ready "$ns" "$name" || fail "pod $ns/$name is Running but not Ready"
        # The helper waits for an agent that starts after it instead of exiting.
        [ "$ns" != demo ] || [ "$(restarts "$name")" = 0 ] ||
          fail "pod $ns/$name restarted $(restarts "$name") time(s) during start-up"
        ;;
      *) fail "pod $ns/$name is $phase" ;;
    esac
  done < <(kc get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace} {.metadata.name} {.status.phase}{"\n"}{end}')
  [ "$(kc -n demo get job demo-client -o jsonpath='{.status.succeeded}')" = 1 ] || fail "job demo-client did not succeed"
  [ "$(kc -n demo logs job/demo-client -c client)" = "hello over SPIFFE mTLS" ] || fail "job demo-client's curl did not get nginx's answer"
}

check_image_and_security() {
  step "the helper's image is deploy/Dockerfile's; it runs as non-root, no capabilities, read-only rootfs"
  local pod want got status
  pod="$(need_pod demo-sidecar)"
  want="sha256:$("$ROOT/tests/k8s/images.sh" helper-id)"
  got="$(jp demo "$pod" '{.status.initContainerStatuses[?(@.name=="spiffe-helper")].imageID}')"
  [ "$got" = "$want" ] || fail "the sidecar runs image $got, not the one built from deploy/Dockerfile ($want)"
  [ "$(jp demo "$pod" '{.status.initContainerStatuses[?(@.name=="spiffe-helper")].image}')" = "$HELPER_IMAGE" ] ||
    fail "the sidecar's image is not $HELPER_IMAGE"
  # What the kernel says about the helper process, seen from nginx (shared process namespace).
  status="$(kc -n demo exec "$pod" -c nginx -- sh -c '
    pid=$(pgrep -x spiffe-helper-r || pgrep -f /usr/local/bin/spiffe-helper-rust | head -n 1)
    grep -E "^(Uid|CapEff|NoNewPrivs):" /proc/$pid/status
    awk "\$5 == \"/\" {print \"root-mount:\", \$6}" /proc/$pid/mountinfo')"
  echo "$status" | grep -qE '^Uid:[[:space:]]+101[[:space:]]' || fail "the helper does not run as uid 101: $status"
  echo "$status" | grep -qE '^CapEff:[[:space:]]+0+$' || fail "the helper has capabilities: $status"
  echo "$status" | grep -qE '^NoNewPrivs:[[:space:]]+1$' || fail "the helper may gain privileges: $status"
  echo "$status" | grep -qE '^root-mount: ro(,|$)' || fail "the helper's root filesystem is not read-only: $status"
  say "    image $got; uid 101, CapEff 0, NoNewPrivs 1, / mounted ro"
}

# --- 2. one-shot initContainers -----------------------------------------------------------------

# init_before_main NS POD: the helper initContainer exited 0 and finished before main started.
init_before_main() {
  local code fin start
  code="$(jp "$1" "$2" '{.status.initContainerStatuses[?(@.name=="spiffe-helper")].state.terminated.exitCode}')"
  fin="$(jp "$1" "$2" '{.status.initContainerStatuses[?(@.name=="spiffe-helper")].state.terminated.finishedAt}')"
  start="$(jp "$1" "$2" '{.status.containerStatuses[0].state.running.startedAt}{.status.containerStatuses[0].state.terminated.startedAt}')"
  [ "$code" = 0 ] || fail "the helper initContainer of $1/$2 exited with '$code', want 0"
  [ -n "$fin" ] && [ -n "$start" ] || fail "no finish/start times for $1/$2 (init finished '$fin', main started '$start')"
  # RFC 3339 in UTC: string order is time order.
  [[ ! "$fin" > "$start" ]] || fail "the main container of $1/$2 started ($start) before the helper finished ($fin)"
}

check_oneshot() {
  step "one-shot initContainers exited 0 before the main container; it reads the pod's SVID"
  local job client san
  job="$(kc -n demo get pods -l job-name=demo-client -o jsonpath='{.items[0].metadata.name}')"
  init_before_main demo "$job"
  client="$(need_pod mtls-client)"
  init_before_main demo "$client"
  san="$(cert_in "$client" client | uri_san_of)"
  [ "$san" = "$CLIENT_ID" ] || fail "the client's certificate has URI SAN '$san', want $CLIENT_ID"
  san="$(cert_in "$(need_pod demo-sidecar)" nginx | uri_san_of)"
  [ "$san" = "$SIDECAR_ID" ] || fail "nginx's certificate has URI SAN '$san', want $SIDECAR_ID"
  say "    $job and $client: init exit 0 before main; SANs $CLIENT_ID, $SIDECAR_ID"
}

# --- 3. mTLS through the Service, and from the host ---------------------------------------------

# call_over_mtls HOST: the client pod calls https://HOST:8443/ with its SVID; the answer (or
# curl's error) is left in WORK/mtls.out.
call_over_mtls() {
  local client
  client="$(pod_of mtls-client)"
  [ -n "$client" ] || { echo "no Running mtls-client pod" >"$WORK/mtls.out"; return 1; }
  kc -n demo exec "$client" -c client -- curl -sS --max-time 10 --cert /run/spiffe/certs/svid.pem \
    --key /run/spiffe/certs/svid_key.pem --cacert /run/spiffe/certs/svid_bundle.pem \
    "https://$1:8443/" >"$WORK/mtls.out" 2>&1 || return 1
  [ "$(cat "$WORK/mtls.out")" = "hello over SPIFFE mTLS" ]
}

# client_mtls: the client pod calls nginx through the demo-sidecar Service.
client_mtls() { call_over_mtls demo-sidecar.demo.svc; }

# check_client_mtls: one call, which must work (the sidecar pod has been Ready all along).
check_client_mtls() {
  client_mtls || fail "the client pod's mTLS call through the Service failed: $(cat "$WORK/mtls.out")"
}

# mtls_resumes: once a pod turned Ready, the Service routes to it again within seconds (the
# endpoints controller and kube-proxy catch up); calls are retried until then.
mtls_resumes() {
  wait_for 30 "the client pod's mTLS call through the Service" client_mtls ||
    fail "the client pod's mTLS call through the Service failed for 30s after the pod was Ready: $(cat "$WORK/mtls.out")"
}

# The client pod's SVID on the host, to be the client of s_client (mode 600 in a mode-700 dir).
client_creds() {
  local client f
  client="$(need_pod mtls-client)"
  for f in svid.pem svid_key.pem svid_bundle.pem; do
    kc -n demo exec "$client" -c client -- cat "/run/spiffe/certs/$f" >"$WORK/client-$f"
  done
  chmod 600 "$WORK"/client-*
}

free_port() {
  local port
  for _ in $(seq 1 100); do
    port=$((30000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free port on 127.0.0.1"
}

# served: nginx's certificate and answer as the host sees them through kubectl port-forward;
# leaves the served certificate in WORK/served.pem. Returns 1 with the reason in
# WORK/served.err (it is also polled, so it does not fail the test itself).
served() {
  local port out rc=0
  port="$(free_port)"
  : >"$WORK/served.err"
  # kubectl itself in the background (not the kc function, whose $! would be a subshell).
  "$(k8s_bin)/kubectl" --kubeconfig "$KUBECONFIG_FILE" -n demo port-forward --address 127.0.0.1 \
    svc/demo-sidecar "$port:8443" >"$WORK/pf.log" 2>&1 &
  PF_PID=$!
  if wait_for 20 "kubectl port-forward on 127.0.0.1:$port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"; then
    out="$(printf 'GET / HTTP/1.0\r\nHost: demo-sidecar.demo.svc\r\n\r\n' |
      timeout 20 openssl s_client -connect "127.0.0.1:$port" -servername demo-sidecar.demo.svc \
        -cert "$WORK/client-svid.pem" -key "$WORK/client-svid_key.pem" -CAfile "$WORK/client-svid_bundle.pem" \
        -verify_return_error -ign_eof 2>&1)" || rc=$?
  else
    { echo "kubectl port-forward did not listen:"; cat "$WORK/pf.log"; } >"$WORK/served.err"
    rc=1
  fi
  kill "$PF_PID" 2>/dev/null
  wait "$PF_PID" 2>/dev/null || true
  PF_PID=""
  [ "$rc" = 0 ] || {
    [ -s "$WORK/served.err" ] || { echo "openssl s_client through the port-forward failed ($rc):"; echo "$out" | grep -v -- '-----' | tail -n 15; } >"$WORK/served.err"
    return 1
  }
  if ! echo "$out" | grep -q 'Verify return code: 0 (ok)'; then
    echo "s_client did not verify nginx's certificate" >"$WORK/served.err"
    return 1
  fi
  if ! echo "$out" | grep -q 'hello over SPIFFE mTLS'; then
    echo "s_client did not get nginx's answer over mTLS" >"$WORK/served.err"
    return 1
  fi
  echo "$out" | openssl x509 >"$WORK/served.pem" 2>/dev/null || { echo "s_client showed no certificate" >"$WORK/served.err"; return 1; }
}

served_or_fail() {
  served || fail "$(cat "$WORK/served.err")"
}

served_serial() {
  served || return 1
  serial_of <"$WORK/served.pem"
}

check_mtls() {
  step "the client pod reaches nginx over mTLS through the Service; the host does too (port-forward)"
  check_client_mtls
  client_creds
  served_or_fail
  local serial san
  serial="$(serial_of <"$WORK/served.pem")"
  san="$(uri_san_of <"$WORK/served.pem")"
  [ "$san" = "$SIDECAR_ID" ] || fail "nginx serves URI SAN '$san', want $SIDECAR_ID"
  [ "$serial" = "$(cert_in "$(need_pod demo-sidecar)" nginx | serial_of)" ] ||
    fail "nginx serves serial $serial, not the one the helper wrote"
  say "    served through 127.0.0.1 port-forward: serial $serial, $san"
}

# --- 4./5. entry recreated with a short TTL; rotation reaches nginx -------------------------------

# lifetime_of PEM-FILE: NotAfter - NotBefore in seconds.
lifetime_of() {
  local nb na
  nb="$(openssl x509 -in "$1" -noout -startdate | cut -d= -f2)"
  na="$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)"
  echo $(($(date -d "$na" +%s) - $(date -d "$nb" +%s)))
}

sidecar_serial() { cert_in "$(pod_of demo-sidecar)" nginx | serial_of; }

# controller_entry_back OLD-SERIAL: spire-controller-manager made the entry again and the helper
# wrote a short-lived SVID from it.
controller_entry_back() {
  case "$(entry_id "$SIDECAR_ID")" in "$SCM_PREFIX"*) ;; *) return 1 ;; esac
  new_short_svid "$1"
}

check_entry_recreate() {
  step "the ClusterSPIFFEID's ttl set to ${SHORT_TTL}s and the sidecar's entry deleted in SPIRE: spire-controller-manager makes it again, the helper gets the new SVID"
  local id before pod
  pod="$(need_pod demo-sidecar)"
  before="$(sidecar_serial)"
  # Every workload entry is the controller's; only the node alias is made by hand.
  spire_server entry show >"$WORK/entries"
  local manual ours
  manual="$(awk -v p="$SCM_PREFIX" '/^Entry ID/ {id = $4} /^SPIFFE ID/ && index(id, p) != 1 && $4 != "'"$AGENT_ALIAS"'" {print $4}' "$WORK/entries")"
  [ -z "$manual" ] || fail "workload entries not made by spire-controller-manager: $manual"
  ours="$(awk -v p="$SCM_PREFIX" '/^Entry ID/ && index($4, p) == 1' "$WORK/entries" | wc -l)"
  say "    $ours entries made by spire-controller-manager, none by hand but the node alias"
  id="$(entry_id "$SIDECAR_ID")"
  [ -n "$id" ] || fail "no entry for $SIDECAR_ID"
  case "$id" in "$SCM_PREFIX"*) ;; *) fail "the entry for $SIDECAR_ID ($id) was not made by spire-controller-manager (ID prefix $SCM_PREFIX)" ;; esac
  kc patch clusterspiffeid workloads --type merge -p "{\"spec\":{\"ttl\":\"${SHORT_TTL}s\"}}" >/dev/null
  spire_server entry delete -entryID "$id" >/dev/null || fail "entry delete failed"
  # The controller finds the entry missing at its next reconciliation (every 10 s by default);
  # the helper, told "no identity" meanwhile, retries with backoff (capped at 30 s).
  until_ok 90 "the controller's new entry and a short-lived SVID from it" controller_entry_back "$before"
  [ "$(restarts "$pod")" = 0 ] || fail "the sidecar pod restarted"
  pod_ready demo "$pod" || fail "the sidecar pod is not Ready after the entry came back"
  say "    entry $id deleted, now $(entry_id "$SIDECAR_ID"); serial $before -> $(sidecar_serial), lifetime $(lifetime_of "$WORK/c.pem")s"
}

new_short_svid() {
  cert_in "$(pod_of demo-sidecar)" nginx >"$WORK/c.pem" || return 1
  [ "$(serial_of <"$WORK/c.pem")" != "$1" ] || return 1
  # NotAfter - NotBefore: the TTL plus SPIRE's 10 s backdating of NotBefore.
  [ "$(lifetime_of "$WORK/c.pem")" -le $((SHORT_TTL + 15)) ]
}

check_rotation() {
  step "rotation reaches nginx without a restart: a new serial is served"
  local pod first nginx_id
  pod="$(need_pod demo-sidecar)"
  nginx_id="$(jp demo "$pod" '{.status.containerStatuses[?(@.name=="nginx")].containerID}')"
  served_or_fail
  first="$(serial_of <"$WORK/served.pem")"
  until_ok 60 "nginx to serve a rotated certificate (first served serial $first)" served_changed "$first"
  [ "$(restarts "$pod")" = 0 ] || fail "the sidecar pod restarted during rotation"
  [ "$(jp demo "$pod" '{.status.containerStatuses[?(@.name=="nginx")].containerID}')" = "$nginx_id" ] ||
    fail "nginx's container changed"
  check_client_mtls
  say "    served serial $first -> $(serial_of <"$WORK/served.pem"), restarts 0, same nginx container"
}

served_changed() {
  local now
  now="$(served_serial)" || return 1
  [ "$now" != "$1" ]
}

# --- 6. probes while the agent is away -----------------------------------------------------------

agent_away() {
  kc -n spire patch ds spire-agent --type merge \
    -p '{"spec":{"template":{"spec":{"nodeSelector":{"shr-smoke/agent-away":"true"}}}}}' >/dev/null
}

agent_back() {
  kc -n spire patch ds spire-agent --type json -p '[{"op":"remove","path":"/spec/template/spec/nodeSelector"}]' >/dev/null
}

no_agent_pod() { [ -z "$(kc -n spire get pods -l app=spire-agent -o name)" ]; }

check_readiness() {
  step "agent away until the SVID expires: NotReady; agent back: Ready again, restart count 0"
  local pod not_after
  pod="$(need_pod demo-sidecar)"
  agent_away
  until_ok 60 "the agent pod to be gone" no_agent_pod
  cert_in "$pod" nginx >"$WORK/c.pem"
  not_after="$(openssl x509 -in "$WORK/c.pem" -noout -enddate | cut -d= -f2)"
  say "    agent gone; the helper's SVID expires at $not_after"
  until_ok $((SHORT_TTL + 45)) "the sidecar pod to turn NotReady after its SVID expired" pod_not_ready demo "$pod"
  [ "$(date +%s)" -ge "$(date -d "$not_after" +%s)" ] || fail "the pod turned NotReady before its SVID expired"
  say "    pod NotReady (SVID expired, agent away); bringing the agent back"
  agent_back
  local back=$SECONDS
  kc -n spire rollout status ds/spire-agent --timeout 90s >/dev/null || fail "the agent DaemonSet did not come back"
  # The helper reconnects when the agent's socket reappears (or at its next backoff attempt,
  # at most ~36 s apart); readiness is probed every 5 s.
  until_ok 120 "the sidecar pod to be Ready again" pod_ready demo "$pod"
  say "    Ready again $((SECONDS - back))s after the agent was let back (its pod's start included)"
  [ "$(restarts "$pod")" = 0 ] || fail "the sidecar pod's containers restarted ($(restarts "$pod")) while the agent was away"
  mtls_resumes
  say "    Ready again with restart count 0; mTLS works"
}

# --- 7. the pod deleted ----------------------------------------------------------------------------

check_pod_delete() {
  step "the helper's pod deleted: the Deployment brings it back and it attests again"
  local old new san
  old="$(need_pod demo-sidecar)"
  kc -n demo delete pod "$old" --wait=false >/dev/null
  until_ok 120 "a new demo-sidecar pod to be Ready" new_ready_pod "$old"
  new="$(need_pod demo-sidecar)"
  san="$(cert_in "$new" nginx | uri_san_of)"
  [ "$san" = "$SIDECAR_ID" ] || fail "the new pod's certificate has URI SAN '$san'"
  mtls_resumes
  say "    $old -> $new, SAN $san, mTLS works"
}

new_ready_pod() {
  local p
  p="$(kc -n demo get pods -l app=demo-sidecar -o jsonpath='{range .items[?(@.metadata.deletionTimestamp)]}x{end}')"
  [ -z "$p" ] || return 1
  p="$(pod_of demo-sidecar)"
  [ -n "$p" ] && [ "$p" != "$1" ] && pod_ready demo "$p"
}

# --- 8.-12. the injector and the annotated demo (deploy/k8s/50-injector.yaml, examples/) ---------

# fingerprints: the SHA-256 fingerprints of the PEM certificates on stdin, sorted, one per line.
fingerprints() {
  awk -v dir="$WORK" '/-----BEGIN CERTIFICATE-----/ {n++; f = dir "/fp-" n ".pem"} f {print > f} /-----END CERTIFICATE-----/ {close(f); f = ""}'
  local f
  for f in "$WORK"/fp-*.pem; do
    [ -e "$f" ] || continue
    openssl x509 -in "$f" -noout -fingerprint -sha256 | cut -d= -f2
    rm -f "$f"
  done | sort
}

ca_bundle_fingerprints() {
  kc get mutatingwebhookconfiguration "$WEBHOOK" -o jsonpath='{.webhooks[0].clientConfig.caBundle}' |
    base64 -d 2>/dev/null | fingerprints
}

spire_fingerprints() { spire_server bundle show -format pem | fingerprints; }

# ca_bundle_is_spire_bundle: the webhook's caBundle holds exactly the SPIRE server's CAs.
ca_bundle_is_spire_bundle() {
  local want got
  want="$(spire_fingerprints)"
  got="$(ca_bundle_fingerprints)"
  [ -n "$want" ] && [ "$got" = "$want" ]
}

# A pod that opts in, created with --dry-run=server: the kube-apiserver runs the admission
# webhooks (sideEffects: None) and answers with the pod as it would be stored.
probe_pod() {
  cat <<YAML
apiVersion: v1
kind: Pod
metadata:
  generateName: shr-probe-
  annotations:
    spiffe-helper-rust/inject: "true"
$1
spec:
  securityContext: {runAsUser: 101, runAsGroup: 101}
  containers:
    - name: app
      image: localhost/shr/curl:bookworm
      imagePullPolicy: Never
      command: ["sleep", "infinity"]
YAML
}

# admit NS [EXTRA-ANNOTATION-LINES]: the names of the init containers the stored pod would have;
# the apiserver's error in WORK/admit.err when it refuses.
admit() {
  probe_pod "${2:-}" | kc -n "$1" create --dry-run=server -o jsonpath='{.spec.initContainers[*].name}' -f - 2>"$WORK/admit.err"
}

admitted_with_helper() { [ "$(admit "$ANN_NS")" = spiffe-helper ]; }

# served_by_annotated: the certificate nginx in the annotated pod serves, seen by the client
# pod through the Service with openssl (mTLS, verified against the bundle); in WORK/ann.pem.
served_by_annotated() {
  local client
  client="$(pod_of mtls-client)"
  [ -n "$client" ] || return 1
  kc -n demo exec "$client" -c client -- sh -c \
    "openssl s_client -connect $ANN_HOST:8443 -servername $ANN_HOST \
       -cert /run/spiffe/certs/svid.pem -key /run/spiffe/certs/svid_key.pem \
       -CAfile /run/spiffe/certs/svid_bundle.pem -verify_return_error </dev/null 2>/dev/null | openssl x509" \
    >"$WORK/ann.pem" 2>/dev/null && [ -s "$WORK/ann.pem" ]
}

annotated_mtls() { call_over_mtls "$ANN_HOST"; }

check_injected() {
  step "the annotated Deployment (no helper in its spec) was injected; nginx started on its files and serves $ANNOTATED_ID"
  local pod want got helper_start nginx_start san
  [ -z "$(kc -n "$ANN_NS" get deploy annotated-demo -o jsonpath='{.spec.template.spec.initContainers}')" ] ||
    fail "the annotated Deployment's own spec has initContainers: the demo must carry only annotations"
  pod="$(pod_in "$ANN_NS" annotated-demo)"
  [ -n "$pod" ] || fail "no Running annotated-demo pod"
  pod_ready "$ANN_NS" "$pod" || fail "the annotated pod $pod is not Ready"
  [ "$(jp "$ANN_NS" "$pod" '{.metadata.annotations.spiffe-helper-rust/injected}')" = true ] ||
    fail "the annotated pod lacks the injected marker"
  [ "$(jp "$ANN_NS" "$pod" '{.spec.initContainers[0].name} {.spec.initContainers[0].restartPolicy} {.spec.shareProcessNamespace}')" = "spiffe-helper Always true" ] ||
    fail "the annotated pod has no native helper sidecar first with shareProcessNamespace: $(jp "$ANN_NS" "$pod" '{.spec.initContainers[*].name} {.spec.shareProcessNamespace}')"
  want="sha256:$("$ROOT/tests/k8s/images.sh" helper-id)"
  got="$(jp "$ANN_NS" "$pod" '{.status.initContainerStatuses[?(@.name=="spiffe-helper")].imageID}')"
  [ "$got" = "$want" ] || fail "the injected helper runs image $got, not $want"
  # nginx exits when its certificate is missing: started once and never restarted means the
  # files were there when it started (the helper's startup probe held it back).
  [ "$(ns_restarts "$ANN_NS" "$pod")" = 0 ] || fail "the annotated pod's containers restarted $(ns_restarts "$ANN_NS" "$pod") time(s)"
  helper_start="$(jp "$ANN_NS" "$pod" '{.status.initContainerStatuses[?(@.name=="spiffe-helper")].state.running.startedAt}')"
  nginx_start="$(jp "$ANN_NS" "$pod" '{.status.containerStatuses[?(@.name=="nginx")].state.running.startedAt}')"
  [ -n "$helper_start" ] && [ -n "$nginx_start" ] && [[ ! "$helper_start" > "$nginx_start" ]] ||
    fail "nginx started at '$nginx_start', the helper at '$helper_start'"
  san="$(kc -n "$ANN_NS" exec "$pod" -c nginx -- cat /run/spiffe/certs/svid.pem | uri_san_of)"
  [ "$san" = "$ANNOTATED_ID" ] || fail "the annotated pod's certificate has URI SAN '$san', want $ANNOTATED_ID"
  wait_for 30 "the client's mTLS call to the annotated demo" annotated_mtls ||
    fail "the client pod cannot call https://$ANN_HOST:8443/ over mTLS"
  served_by_annotated || fail "openssl s_client from the client pod got no verified certificate from $ANN_HOST"
  san="$(uri_san_of <"$WORK/ann.pem")"
  [ "$san" = "$ANNOTATED_ID" ] || fail "the annotated demo serves URI SAN '$san', want $ANNOTATED_ID"
  say "    $pod: helper started $helper_start, nginx $nginx_start, restarts 0; serves $san over mTLS"
}

annotated_serial_changed() {
  served_by_annotated || return 1
  [ "$(serial_of <"$WORK/ann.pem")" != "$1" ]
}

check_injected_rotation() {
  step "the injected helper's rotation reaches the annotated nginx without a restart"
  local pod first nginx_id
  pod="$(pod_in "$ANN_NS" annotated-demo)"
  nginx_id="$(jp "$ANN_NS" "$pod" '{.status.containerStatuses[?(@.name=="nginx")].containerID}')"
  served_by_annotated || fail "no certificate served by the annotated demo"
  first="$(serial_of <"$WORK/ann.pem")"
  until_ok 60 "the annotated nginx to serve a rotated certificate (first $first)" annotated_serial_changed "$first"
  [ "$(ns_restarts "$ANN_NS" "$pod")" = 0 ] || fail "the annotated pod restarted during rotation"
  [ "$(jp "$ANN_NS" "$pod" '{.status.containerStatuses[?(@.name=="nginx")].containerID}')" = "$nginx_id" ] ||
    fail "the annotated pod's nginx container changed"
  say "    served serial $first -> $(serial_of <"$WORK/ann.pem"), restarts 0, same nginx container"
}

check_admission() {
  step "the webhook: caBundle = SPIRE's bundle; unlabelled namespace untouched; a bad annotation refused with its reason"
  local how
  how="$(cat "$STATE/injector-install" 2>/dev/null || true)"
  if [ "$how" = helm ]; then
    helm_k8s -n "$INJ_NS" status spiffe-helper-injector >"$WORK/helm-status" 2>&1 ||
      fail "helm status of the injector's release failed: $(cat "$WORK/helm-status")"
    grep -q '^STATUS: deployed' "$WORK/helm-status" || fail "the injector's Helm release is not deployed: $(head -n 8 "$WORK/helm-status")"
  fi
  say "    the injector was installed by: ${how:-unknown}"
  ca_bundle_is_spire_bundle || fail "the webhook's caBundle ($(ca_bundle_fingerprints | wc -l) certs) is not the SPIRE bundle ($(spire_fingerprints | wc -l) certs)"
  admitted_with_helper || fail "a pod opting in to $ANN_NS was not injected: $(cat "$WORK/admit.err")"
  local out
  out="$(admit demo)" || fail "a pod in the unlabelled namespace demo was refused: $(cat "$WORK/admit.err")"
  [ -z "$out" ] || fail "a pod in the unlabelled namespace demo was changed (initContainers: $out)"
  if admit "$ANN_NS" '    spiffe-helper-rust/inject-mode: sometimes' >/dev/null; then
    fail "a pod with inject-mode 'sometimes' was admitted"
  fi
  grep -q 'spiffe-helper-rust/inject-mode' "$WORK/admit.err" ||
    fail "the refusal does not name the annotation: $(cat "$WORK/admit.err")"
  say "    caBundle = SPIRE bundle ($(spire_fingerprints | wc -l) CA); demo: untouched; refused with:"
  say "      $(head -c 300 "$WORK/admit.err")"
}

# injector_serial POD: the serial of the certificate the injector pod serves, verified as the
# kube-apiserver does (the SPIRE bundle as CA, the Service's DNS name), from the client pod.
injector_serial() {
  local ip client
  ip="$(jp "$INJ_NS" "$1" '{.status.podIP}')"
  client="$(pod_of mtls-client)"
  [ -n "$ip" ] && [ -n "$client" ] || return 1
  kc -n demo exec "$client" -c client -- sh -c \
    "openssl s_client -connect $ip:8443 -servername $INJ_HOST -verify_hostname $INJ_HOST \
       -CAfile /run/spiffe/certs/svid_bundle.pem -verify_return_error </dev/null 2>/dev/null |
     openssl x509 -noout -serial" | cut -d= -f2
}

injector_rotated() {
  local now
  now="$(injector_serial "$1")" || return 1
  [ -n "$now" ] && [ "$now" != "$2" ]
}

check_injector_rotation() {
  step "the injector's own SVID rotates; admissions keep working"
  local pod first
  pod="$(pod_in "$INJ_NS" spiffe-helper-injector)"
  [ -n "$pod" ] || fail "no Running injector pod"
  first="$(injector_serial "$pod")"
  [ -n "$first" ] || fail "the injector pod $pod serves no certificate that verifies for $INJ_HOST"
  until_ok 60 "the injector to serve a rotated SVID (first $first)" injector_rotated "$pod" "$first"
  admitted_with_helper || fail "an admission after the injector's rotation failed: $(cat "$WORK/admit.err")"
  [ "$(ns_restarts "$INJ_NS" "$pod")" = 0 ] || fail "the injector pod restarted"
  say "    $pod: serial $first -> $(injector_serial "$pod"); admission ok"
}

no_injector_pod() { [ -z "$(kc -n "$INJ_NS" get pods -l app=spiffe-helper-injector -o name)" ]; }

# failed_create_event: the annotated ReplicaSet reports that the webhook refused its pod.
failed_create_event() {
  kc -n "$ANN_NS" get events --field-selector reason=FailedCreate -o jsonpath='{range .items[*]}{.message}{"\n"}{end}' |
    grep -q 'pods.injector.spiffe-helper-rust'
}

annotated_back() {
  local p
  p="$(pod_in "$ANN_NS" annotated-demo)"
  [ -n "$p" ] && [ "$p" != "$1" ] && pod_ready "$ANN_NS" "$p"
}

check_injector_down() {
  step "the injector deleted: pods in labelled namespaces are refused (failurePolicy Fail), others not; recreated: it restores its caBundle and the ReplicaSet's pod comes"
  local old t0
  old="$(pod_in "$ANN_NS" annotated-demo)"
  kc -n "$INJ_NS" delete deployment spiffe-helper-injector --wait=false >/dev/null
  until_ok 60 "the injector's pods to be gone" no_injector_pod
  t0=$SECONDS
  if admit "$ANN_NS" >/dev/null; then
    fail "a pod was admitted into $ANN_NS with no injector running"
  fi
  grep -q 'failed calling webhook "pods.injector.spiffe-helper-rust"' "$WORK/admit.err" ||
    fail "the refusal is not the webhook's failure: $(cat "$WORK/admit.err")"
  say "    refused: $(head -c 240 "$WORK/admit.err")"
  admit demo >/dev/null || fail "a pod in the unlabelled namespace demo was refused while the injector is down: $(cat "$WORK/admit.err")"
  kc -n "$ANN_NS" delete pod "$old" --wait=false >/dev/null
  until_ok 60 "the annotated ReplicaSet's FailedCreate event naming the webhook" failed_create_event
  local others
  others="$(kc -n "$ANN_NS" get pods -l app=annotated-demo -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | awk -v old="$old" '$0 != old')"
  [ -z "$others" ] || fail "an annotated pod was created while the injector was down: $others"
  # As a `kubectl apply` of a manifest without caBundle could leave it: the injector restores it.
  kc patch mutatingwebhookconfiguration "$WEBHOOK" --type json \
    -p '[{"op":"remove","path":"/webhooks/0/clientConfig/caBundle"}]' >/dev/null
  "$ROOT/tests/k8s/env.sh" injector
  kc -n "$INJ_NS" rollout status deployment/spiffe-helper-injector --timeout 120s >/dev/null ||
    fail "the recreated injector did not roll out"
  say "    injector back after $((SECONDS - t0))s down"
  ca_bundle_is_spire_bundle || fail "the recreated injector did not restore the caBundle"
  # Ready pods reach the Service's endpoints, then kube-proxy's rules, within a few seconds.
  wait_for 30 "an admission after the injector came back" admitted_with_helper ||
    fail "admissions failed for 30 s after the injector came back: $(cat "$WORK/admit.err")"
  t0=$SECONDS
  until_ok 180 "the annotated ReplicaSet to create an injected, Ready pod" annotated_back "$old"
  say "    caBundle restored; the ReplicaSet's retry created $(pod_in "$ANN_NS" annotated-demo) $((SECONDS - t0))s after the injector was Ready"
  wait_for 30 "the client's mTLS call to the new annotated pod" annotated_mtls ||
    fail "the client pod cannot call the new annotated pod over mTLS"
}

main() {
  [ -s "$KUBECONFIG_FILE" ] && kc get node "$NODE_NAME" >/dev/null 2>&1 || die "no cluster (run: make env-up)"
  command -v openssl >/dev/null || die "openssl is required"
  WORK="$(mktemp -d /tmp/shr-smoke.XXXXXX)"
  chmod 700 "$WORK"
  trap cleanup EXIT
  # Any command failing outside a polled condition fails the test with the diagnostics.
  set -E
  trap 'fail "unexpected error (line $LINENO): $BASH_COMMAND"' ERR
  local t0=$SECONDS
  check_pods
  check_image_and_security
  check_oneshot
  check_mtls
  check_entry_recreate
  check_rotation
  check_injected
  check_injected_rotation
  check_admission
  check_injector_rotation
  check_injector_down
  check_readiness
  check_pod_delete
  say "smoke test passed in $((SECONDS - t0))s"
  echo "smoke: $step_no passed, 0 failed"
}

main "$@"
