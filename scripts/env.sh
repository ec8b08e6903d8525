#!/usr/bin/env bash
# A local SPIRE server + agent (v1.13.3) as plain processes in one work dir, for trying the
# helper by hand, the smoke test and the demo. No Docker, no Kubernetes.
#
#   scripts/env.sh up    DIR   start server + agent, register this uid, print the agent socket
#   scripts/env.sh smoke DIR   run the helper one-shot and as a daemon against it, check with openssl
#   scripts/env.sh down  DIR   stop everything started in DIR (by pid, agent first), remove DIR
#
# DIR must be short (Unix socket paths are limited to 108 bytes): the Makefile uses /tmp/shr-env.
# Environment: SPIRE_BIN_DIR (else tests/spire/build-spire.sh is asked), HELPER (the helper
# binary, default target/debug/spiffe-helper-rust), SVID_TTL (X.509 SVID lifetime in seconds of
# the registered entry, default 60: the agent rotates it every ~30-37 s).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TRUST_DOMAIN="example.org"
WORKLOAD_ID="spiffe://$TRUST_DOMAIN/workload"
AGENT_ID="spiffe://$TRUST_DOMAIN/agent"
SVID_TTL="${SVID_TTL:-60}"
MARKER=".spiffe-helper-rust-env"

say() { echo "env: $*" >&2; }
die() { echo "env: error: $*" >&2; exit 1; }

usage() {
  echo "usage: $0 up|smoke|down DIR" >&2
  exit 2
}

spire_bin() {
  if [ -n "${SPIRE_BIN_DIR:-}" ]; then
    echo "$SPIRE_BIN_DIR"
  else
    "$ROOT/tests/spire/build-spire.sh"
  fi
}

# A TCP port on 127.0.0.1 nobody listens on (bash's /dev/tcp, so no python or ss needed).
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  die "no free TCP port found"
}

# wait_for SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.5 s until it succeeds.
wait_for() {
  local secs="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out after ${secs}s waiting for $what"
      return 1
    fi
    sleep 0.5
  done
}

# alive PIDFILE: the recorded process still runs.
alive() {
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# start NAME LOG CMD...: runs CMD in its own session (so a terminal's ^C or make's exit does not
# reach it), stdin closed, output to LOG, and records its pid in DIR/NAME.pid.
start() {
  local name="$1" log="$2"
  shift 2
  setsid bash -c 'echo $$ > "$0"; exec "$@"' "$DIR/$name.pid" "$@" </dev/null >"$log" 2>&1 &
  wait_for 5 "$name to record its pid" test -s "$DIR/$name.pid"
}

# stop NAME: SIGTERM the process in DIR/NAME.pid, SIGKILL after 10 s; no-op when not running.
stop() {
  local pidfile="$DIR/$1.pid" pid
  if alive "$pidfile"; then
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_for 10 "$1 (pid $pid) to exit" bash -c "! kill -0 $pid"; then
      say "$1 (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$pidfile"
}

dump_logs() {
  for log in "$DIR"/server.log "$DIR"/agent.log "$DIR"/helper*.log; do
    [ -f "$log" ] || continue
    echo "----- last lines of $log -----" >&2
    tail -n 25 "$log" >&2
  done
}

write_server_conf() {
  cat >"$DIR/server.conf" <<EOF
server {
  bind_address = "127.0.0.1"
  bind_port = "$1"
  socket_path = "$DIR/server.sock"
  trust_domain = "$TRUST_DOMAIN"
  data_dir = "$DIR/server-data"
  log_level = "INFO"
  default_x509_svid_ttl = "1h"
  default_jwt_svid_ttl = "5m"
  ca_ttl = "24h"
  agent_ttl = "1h"
  experimental {
    cache_reload_interval = "1s"
  }
}

plugins {
  DataStore "sql" {
    plugin_data {
      database_type = "sqlite3"
      connection_string = "$DIR/server-data/datastore.sqlite3"
    }
  }
  KeyManager "memory" {
    plugin_data {}
  }
  NodeAttestor "join_token" {
    plugin_data {}
  }
}
EOF
}

write_agent_conf() {
  cat >"$DIR/agent.conf" <<EOF
agent {
  data_dir = "$DIR/agent-data"
  log_level = "INFO"
  server_address = "127.0.0.1"
  server_port = "$1"
  socket_path = "$DIR/agent.sock"
  trust_domain = "$TRUST_DOMAIN"
  insecure_bootstrap = true
  experimental {
    sync_interval = "1s"
  }
}

plugins {
  NodeAttestor "join_token" {
    plugin_data {}
  }
  KeyManager "disk" {
    plugin_data {
      directory = "$DIR/agent-data"
    }
  }
  WorkloadAttestor "unix" {
    plugin_data {}
  }
}
EOF
}

cmd_up() {
  if alive "$DIR/agent.pid" && alive "$DIR/server.pid"; then
    say "already running in $DIR"
    echo "$DIR/agent.sock"
    return 0
  fi
  [ ! -e "$DIR" ] || [ -e "$DIR/$MARKER" ] || die "$DIR exists and was not made by env.sh; pick another dir"
  cmd_down_quiet
  local sock="$DIR/agent.sock"
  [ "${#sock}" -lt 100 ] || die "$sock is too long for a Unix socket; use a shorter DIR"

  local bin port token
  bin="$(spire_bin)"
  [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ] || die "no SPIRE binaries in $bin (run: make spire)"
  mkdir -p "$DIR/server-data" "$DIR/agent-data"
  touch "$DIR/$MARKER"
  # Whatever goes wrong from here on, leave nothing running.
  trap 'rc=$?; if [ "$rc" -ne 0 ]; then say "start-up failed"; dump_logs; cmd_down_quiet; fi' EXIT

  port="$(free_port)"
  write_server_conf "$port"
  write_agent_conf "$port"

  say "starting spire-server on 127.0.0.1:$port"
  start server "$DIR/server.log" "$bin/spire-server" run -config "$DIR/server.conf"
  wait_for 60 "spire-server to be healthy" "$bin/spire-server" healthcheck -socketPath "$DIR/server.sock"

  token="$("$bin/spire-server" token generate -socketPath "$DIR/server.sock" -spiffeID "$AGENT_ID" | awk '/^Token:/ {print $2}')"
  [ -n "$token" ] || die "spire-server token generate printed no token"

  say "registering unix:uid:$(id -u) as $WORKLOAD_ID (X.509 SVID TTL ${SVID_TTL}s)"
  "$bin/spire-server" entry create -socketPath "$DIR/server.sock" \
    -parentID "$AGENT_ID" -spiffeID "$WORKLOAD_ID" \
    -selector "unix:uid:$(id -u)" -x509SVIDTTL "$SVID_TTL" >"$DIR/entry.txt"

  say "starting spire-agent"
  start agent "$DIR/agent.log" "$bin/spire-agent" run -config "$DIR/agent.conf" -joinToken "$token"
  wait_for 60 "the agent socket" test -S "$sock"
  # PermissionDenied until the entry has reached the agent's cache.
  wait_for 90 "the agent to issue an X.509 SVID" "$bin/spire-agent" api fetch x509 -socketPath "$sock"
  trap - EXIT

  say "SPIRE is up: server pid $(cat "$DIR/server.pid"), agent pid $(cat "$DIR/agent.pid"), logs in $DIR"
  say "try: export SPIFFE_ENDPOINT_SOCKET=unix://$sock"
  echo "$sock"
}

# Runs the helper with CONF in the foreground, bounded by a timeout.
run_oneshot() {
  local conf="$1" log="$2"
  timeout 90 "$HELPER" -config "$conf" >"$log" 2>&1
}

# check_files CERTDIR: what a TLS peer or proxy would check about the written identity.
check_files() {
  local d="$1"
  for f in svid.pem svid_key.pem svid_bundle.pem; do
    [ -s "$d/$f" ] || die "$d/$f is missing or empty"
  done
  openssl verify -CAfile "$d/svid_bundle.pem" "$d/svid.pem" >/dev/null ||
    die "openssl verify: $d/svid.pem does not chain to $d/svid_bundle.pem"
  openssl x509 -in "$d/svid.pem" -noout -text | grep -q "URI:$WORKLOAD_ID" ||
    die "$d/svid.pem does not carry URI SAN $WORKLOAD_ID"
  [ "$(openssl pkey -in "$d/svid_key.pem" -pubout)" = "$(openssl x509 -in "$d/svid.pem" -noout -pubkey)" ] ||
    die "$d/svid_key.pem does not match the certificate in $d/svid.pem"
  [ "$(stat -c %a "$d/svid_key.pem")" = 600 ] || die "$d/svid_key.pem has mode $(stat -c %a "$d/svid_key.pem"), want 600"
  [ "$(stat -c %a "$d/svid.pem")" = 644 ] || die "$d/svid.pem has mode $(stat -c %a "$d/svid.pem"), want 644"
}

# http_status PORT PATH: the status code of a plain HTTP GET on 127.0.0.1 (no curl needed).
http_status() {
  local reply
  reply="$(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&3 && head -n 1 <&3)" || return 1
  echo "$reply" | awk '{print $2}'
}

cmd_smoke() {
  HELPER="${HELPER:-$ROOT/target/debug/spiffe-helper-rust}"
  [ -x "$HELPER" ] || die "no helper binary at $HELPER (run: make build)"
  command -v openssl >/dev/null || die "openssl is required"
  alive "$DIR/agent.pid" || die "no SPIRE running in $DIR (run: make env-up)"
  local sock="$DIR/agent.sock"

  # 1. One-shot: fetch, write, exit 0.
  rm -rf "$DIR/certs"
  cat >"$DIR/oneshot.conf" <<EOF
agent_address = "unix://$sock"
cert_dir = "$DIR/certs"
daemon_mode = false
EOF
  "$HELPER" -config "$DIR/oneshot.conf" --validate >/dev/null || die "--validate rejected $DIR/oneshot.conf"
  local rc=0
  run_oneshot "$DIR/oneshot.conf" "$DIR/helper-oneshot.log" || rc=$?
  [ "$rc" = 0 ] || { dump_logs; die "one-shot run exited with status $rc, want 0"; }
  check_files "$DIR/certs"
  say "one-shot: ok ($(openssl x509 -in "$DIR/certs/svid.pem" -noout -serial))"

  # 2. Daemon: files, health endpoints, the cmd started after the first write, SIGTERM -> exit 0.
  HEALTH_PORT="$(free_port)"
  rm -rf "$DIR/certs-daemon" "$DIR/cmd-ran"
  cat >"$DIR/daemon.conf" <<EOF
agent_address = "unix://$sock"
cert_dir = "$DIR/certs-daemon"
cmd = "/bin/sh"
cmd_args = "-c \"echo started > $DIR/cmd-ran\""
health_checks {
  listener_enabled = true
  bind_port = $HEALTH_PORT
}
EOF
  "$HELPER" -config "$DIR/daemon.conf" </dev/null >"$DIR/helper-daemon.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$DIR/helper.pid"
  # A failed check must not leave the daemon behind.
  trap 'stop helper' EXIT
  if ! wait_for 60 "the daemon to write its files" test -s "$DIR/certs-daemon/svid_bundle.pem" ||
    ! wait_for 20 "readiness to report 200" ready_is_200; then
    dump_logs
    die "the daemon did not become ready"
  fi
  check_files "$DIR/certs-daemon"
  [ "$(http_status "$HEALTH_PORT" /health/live)" = 200 ] || die "liveness did not report 200"
  [ "$(http_status "$HEALTH_PORT" /no-such-path)" = 404 ] || die "an unknown path did not report 404"
  wait_for 10 "cmd to run after the first write" test -s "$DIR/cmd-ran" || die "cmd was not started"
  sleep 2
  kill -0 "$pid" 2>/dev/null || { dump_logs; die "the daemon exited on its own"; }

  kill -TERM "$pid"
  wait "$pid" || rc=$?
  rm -f "$DIR/helper.pid"
  trap - EXIT
  [ "$rc" = 0 ] || { dump_logs; die "the daemon exited with status $rc after SIGTERM, want 0"; }
  say "daemon: ok (ready, live, 404 on unknown path, cmd started, exit 0 on SIGTERM)"
  echo "smoke-test passed"
}

ready_is_200() {
  [ "$(http_status "$HEALTH_PORT" /health/ready)" = 200 ]
}

# Stops whatever env.sh started in DIR, then removes DIR (only a dir env.sh made).
cmd_down_quiet() {
  [ -d "$DIR" ] || return 0
  stop helper
  stop agent
  stop server
  if [ -e "$DIR/$MARKER" ]; then
    rm -rf "$DIR"
  fi
}

cmd_down() {
  if [ ! -e "$DIR" ]; then
    say "nothing running in $DIR"
    return 0
  fi
  [ -e "$DIR/$MARKER" ] || die "$DIR was not made by env.sh; not touching it"
  cmd_down_quiet
  say "stopped and removed $DIR"
}

[ $# -eq 2 ] || usage
DIR="$2"
case "$DIR" in
  /*) ;;
  *) DIR="$(pwd)/$DIR" ;;
esac
DIR="${DIR%/}"
[ -n "$DIR" ] && [ "$DIR" != "/" ] || die "refusing to use / as the work dir"

case "$1" in
  up) cmd_up ;;
  smoke) cmd_smoke ;;
  down) cmd_down ;;
  *) usage ;;
esac
