#!/usr/bin/env bash
# `make demo`: the first thing to run after cloning.
#
# Builds the helper, starts a local SPIRE server + agent (scripts/env.sh up) in a temp dir, runs
# the helper as a daemon against it, shows the SPIFFE ID / serial / expiry of what it wrote,
# waits for the agent to rotate the SVID (the registered entry lives 60 s, so a new one comes
# every ~30-40 s) and shows that the helper rewrote the files, then stops everything.
# Whatever happens, the trap stops the helper and SPIRE and removes the temp dir.
# Each setup stage (the helper's build, SPIRE's Go build the first time, SPIRE's start) prints
# one line with its time; its full output goes to a log under
# ${XDG_CACHE_HOME:-~/.cache}/spiffe-helper-rust/logs (scripts/stage.sh), named on that line.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ROTATION_TIMEOUT="${ROTATION_TIMEOUT:-120}"
DIR="/tmp/shr-demo.$$"
HELPER="$ROOT/target/debug/spiffe-helper-rust"
HELPER_PID=""

say() { echo "demo: $*" >&2; }

cleanup() {
  local rc=$?
  if [ -n "$HELPER_PID" ] && kill -0 "$HELPER_PID" 2>/dev/null; then
    kill -TERM "$HELPER_PID" 2>/dev/null || true
    wait "$HELPER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$DIR/helper.log" ]; then
    echo "----- last lines of the helper's log -----" >&2
    tail -n 30 "$DIR/helper.log" >&2
  fi
  "$ROOT/scripts/env.sh" down "$DIR" >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v openssl >/dev/null || { say "openssl is required (make deps installs it)"; exit 1; }

stage() {
  local label="$1"
  shift
  "$ROOT/scripts/stage.sh" "demo: $label" "$@"
}

stage "building the helper (debug)" cargo build -p spiffe-helper-rust
if [ -z "${SPIRE_BIN_DIR:-}" ]; then
  SPIRE_BIN_DIR="$(stage "SPIRE v1.13.3 (the first time a Go build of several minutes)" "$ROOT/tests/spire/build-spire.sh")"
  export SPIRE_BIN_DIR
fi
SOCK="$(stage "starting SPIRE (in $DIR)" "$ROOT/scripts/env.sh" up "$DIR")"

# A free port for the health endpoints.
PORT=""
for _ in $(seq 1 200); do
  candidate=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    PORT="$candidate"
    break
  fi
done
[ -n "$PORT" ] || { say "no free TCP port"; exit 1; }

cat >"$DIR/helper.conf" <<EOF
agent_address = "unix://$SOCK"
cert_dir = "$DIR/certs"
health_checks {
  listener_enabled = true
  bind_port = $PORT
}
EOF

say "running: spiffe-helper-rust -config $DIR/helper.conf (log: $DIR/helper.log)"
"$HELPER" -config "$DIR/helper.conf" </dev/null >"$DIR/helper.log" 2>&1 &
HELPER_PID=$!

SVID="$DIR/certs/svid.pem"
for _ in $(seq 1 120); do
  [ -s "$DIR/certs/svid_bundle.pem" ] && break
  kill -0 "$HELPER_PID" 2>/dev/null || { say "the helper exited early"; exit 1; }
  sleep 0.5
done
[ -s "$DIR/certs/svid_bundle.pem" ] || { say "the helper wrote nothing within 60 s"; exit 1; }

spiffe_id() { openssl x509 -in "$SVID" -noout -text | grep -o 'URI:spiffe://[^ ,]*' | head -n 1 | cut -c5-; }
serial() { openssl x509 -in "$SVID" -noout -serial | cut -d= -f2; }
expiry() { openssl x509 -in "$SVID" -noout -enddate | cut -d= -f2; }
ready() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && printf 'GET /health/ready HTTP/1.0\r\n\r\n' >&3 && head -n 1 <&3) 2>/dev/null | tr -d "\r" | cut -d" " -f2-
}

echo
echo "wrote $DIR/certs:"
ls -l "$DIR/certs" | tail -n +2 | awk '{print "  " $1 "  " $NF}'
echo "  SPIFFE ID : $(spiffe_id)"
echo "  serial    : $(serial)"
echo "  expires   : $(expiry)"
echo "  verify    : $(openssl verify -CAfile "$DIR/certs/svid_bundle.pem" "$SVID" | sed "s#$DIR/certs/##")"
echo "  readiness : $(ready) (http://127.0.0.1:$PORT/health/ready)"
echo

first="$(serial)"
say "waiting up to ${ROTATION_TIMEOUT}s for SPIRE to rotate the SVID (about half its 60 s lifetime)"
start=$SECONDS
while [ "$(serial)" = "$first" ]; do
  if [ $((SECONDS - start)) -ge "$ROTATION_TIMEOUT" ]; then
    say "no rotation within ${ROTATION_TIMEOUT}s"
    exit 1
  fi
  kill -0 "$HELPER_PID" 2>/dev/null || { say "the helper exited"; exit 1; }
  sleep 1
done
echo "rotated after $((SECONDS - start))s: serial $first -> $(serial), expires $(expiry)"
openssl verify -CAfile "$DIR/certs/svid_bundle.pem" "$SVID" >/dev/null

say "stopping the helper (SIGTERM)"
kill -TERM "$HELPER_PID"
rc=0
wait "$HELPER_PID" || rc=$?
HELPER_PID=""
[ "$rc" = 0 ] || { say "the helper exited with status $rc, want 0"; exit 1; }

echo "demo: $(spiffe_id) serial $(serial) expires $(expiry)"
