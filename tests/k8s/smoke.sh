#!/usr/bin/env bash
# `make smoke-test`: what users run, checked in the cluster of `make env-up`.
#
#  1. every pod Running/Ready (the Job Complete), no demo container restarted although the
#     sidecar may start before the agent; the helper's image is the one built from
#     deploy/Dockerfile; the helper runs as non-root, no capabilities, read-only root filesystem
#  2. one-shot initContainers exited 0 before their main container started; the main container
#     reads a certificate whose URI SAN is spiffe://example.org/ns/<ns>/sa/<sa>
#  3. the client pod calls nginx over mTLS through the Service; `kubectl port-forward` to
#     127.0.0.1 and `openssl s_client` from the host show the same (serial, SPIFFE ID)
#  4. the sidecar's entry deleted and recreated with a short TTL: the helper gets the new SVID
#  5. rotation reaches nginx with no restart: a new serial is served
#  6. the agent away (its DaemonSet pinned to no node) until the SVID expires: the pod turns
#     NotReady; the DaemonSet brings the agent back, the helper reconnects, Ready again with
#     restart count 0
#  7. the helper's pod deleted: the Deployment brings it back and it attests again
# Every wait is bounded and prints the kubectl describe/logs that explain a failure.
# Certificates and keys copied to the host stay in a mode-700 temp dir; nothing secret is printed.
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"

TD="example.org"
SIDECAR_ID="spiffe://$TD/ns/demo/sa/demo-sidecar"
CLIENT_ID="spiffe://$TD/ns/demo/sa/demo-client"
AGENT_PARENT="spiffe://$TD/ns/spire/sa/spire-agent"
SHORT_TTL=20
HELPER_IMAGE="localhost/spiffe-helper-rust:0.1.0"
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
    echo "----- kubectl -n spire logs ds/spire-agent (last 30) -----"
    kc -n spire logs ds/spire-agent --tail 30
    echo "----- kubectl -n spire logs spire-server-0 (last 20) -----"
    kc -n spire logs spire-server-0 --tail 20
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

spire_server() { kc -n spire exec spire-server-0 -c spire-server -- /opt/spire/bin/spire-server "$@"; }

# pod_of APP: the name of a Running pod of the app, empty when there is none.
pod_of() {
  kc -n demo get pods -l "app=$1" --field-selector=status.phase=Running \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | head -n 1
}

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

# restarts POD: restart counts of all containers of a demo pod, summed.
restarts() {
  jp demo "$1" '{range .status.initContainerStatuses[*]}{.restartCount}{"\n"}{end}{range .status.containerStatuses[*]}{.restartCount}{"\n"}{end}' |
    awk '{s += $1} END {print s + 0}'
}

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

# client_mtls: the client pod calls nginx through the Service; the answer (or curl's error) is
# left in WORK/mtls.out.
client_mtls() {
  local client
  client="$(pod_of mtls-client)"
  [ -n "$client" ] || { echo "no Running mtls-client pod" >"$WORK/mtls.out"; return 1; }
  kc -n demo exec "$client" -c client -- curl -sS --max-time 10 --cert /run/spiffe/certs/svid.pem \
    --key /run/spiffe/certs/svid_key.pem --cacert /run/spiffe/certs/svid_bundle.pem \
    https://demo-sidecar.demo.svc:8443/ >"$WORK/mtls.out" 2>&1 || return 1
  [ "$(cat "$WORK/mtls.out")" = "hello over SPIFFE mTLS" ]
}

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

check_entry_recreate() {
  step "the sidecar's entry deleted and recreated (x509SVIDTTL ${SHORT_TTL}s): the helper gets the new SVID"
  local id before pod
  pod="$(need_pod demo-sidecar)"
  before="$(sidecar_serial)"
  id="$(spire_server entry show -spiffeID "$SIDECAR_ID" | awk '/^Entry ID/ {print $4; exit}')"
  [ -n "$id" ] || fail "no entry for $SIDECAR_ID"
  spire_server entry delete -entryID "$id" >/dev/null || fail "entry delete failed"
  spire_server entry create -spiffeID "$SIDECAR_ID" -parentID "$AGENT_PARENT" \
    -selector k8s:ns:demo -selector k8s:sa:demo-sidecar -dns demo-sidecar.demo.svc \
    -x509SVIDTTL "$SHORT_TTL" >/dev/null || fail "entry create failed"
  # The helper is told "no identity" and retries with backoff (capped at 30 s).
  until_ok 90 "a new short-lived SVID for the recreated entry" new_short_svid "$before"
  [ "$(restarts "$pod")" = 0 ] || fail "the sidecar pod restarted"
  pod_ready demo "$pod" || fail "the sidecar pod is not Ready after the entry came back"
  say "    serial $before -> $(sidecar_serial), lifetime $(lifetime_of "$WORK/c.pem")s"
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
  check_readiness
  check_pod_delete
  say "smoke test passed in $((SECONDS - t0))s"
  echo "smoke: $step_no passed, 0 failed"
}

main "$@"
