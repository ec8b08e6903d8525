#!/usr/bin/env bash
# Soak tests against a real SPIRE v1.13.3 (scripts/env.sh) on an entry with a 10 s X.509 TTL,
# so the agent renews the SVID every few seconds. Not part of `make test`; docs/reliability.md.
#
#   tests/soak/soak.sh daemon   (make soak)        the release helper as a daemon: X.509, one
#                               JWT-SVID and the JWT bundle written, `cmd` reloaded by SIGHUP,
#                               health listener on and probed every 10 s like a kubelet
#   tests/soak/soak.sh embed    (make soak-embed)  an embedding process (crates/soak): X509Source,
#                               JwtSource and the mTLS server of spiffe-workload-tls, taking
#                               handshakes from a second process through the rotations
#
# Each minute it samples the process's RSS, RssAnon (private memory), open fds and threads. It
# fails at once on an unreadable output file, a missed reload (the consumer never saw the
# current certificate), a failed liveness or readiness probe or handshake, or a process that
# died; at the end on growth after the warm-up: RssAnon may grow by at most one page (4 kB) per
# ten minutes after the first SOAK_WARMUP_MINUTES, open fds not at all.
#
# Environment: SOAK_MINUTES (default 20), SOAK_WARMUP_MINUTES (default 5), SPIRE_BIN_DIR (else
# tests/spire/build-spire.sh is asked), HELPER and SOAK_EMBED (the binaries; default the release
# builds under CARGO_TARGET_DIR or target/), SOAK_TABLE (a file to which the per-10-minute
# markdown table is written), SOAK_EMBED_RUNTIME=current_thread (the embedding process on tokio's
# current-thread runtime instead of the multi-thread one), SOAK_EMBED_GLIBC_TUNABLES (given to
# the embedding server as GLIBC_TUNABLES; make soak-embed sets glibc.malloc.tcache_count=0, the
# setting docs/embedding.md recommends for long-running glibc processes; empty: glibc's
# defaults). Works when started with HUP, INT and QUIT ignored (nohup, CI):
# everything is stopped by pid with SIGTERM, and the helper gives `cmd` a clean signal slate.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODE="${1:-daemon}"
MINUTES="${SOAK_MINUTES:-20}"
WARMUP="${SOAK_WARMUP_MINUTES:-5}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
HELPER="${HELPER:-$TARGET/release/spiffe-helper-rust}"
EMBED="${SOAK_EMBED:-$TARGET/release/spiffe-helper-soak}"
PAGE_KB=4
# How long a changed certificate may go without the consumer (or the handshaking peer) seeing
# it before that counts as a missed reload. Rotations come every ~5 s; a reload takes ms.
RELOAD_GRACE=15

say() { echo "soak: $*" >&2; }
fail() {
  echo "soak: FAIL: $*" >&2
  FAILED=1
  exit 1
}

case "$MODE" in
  daemon) [ -x "$HELPER" ] || { say "no helper at $HELPER (make soak builds it)"; exit 2; } ;;
  embed) [ -x "$EMBED" ] || { say "no embedding driver at $EMBED (make soak-embed builds it)"; exit 2; } ;;
  *) say "usage: $0 daemon|embed"; exit 2 ;;
esac
[[ "$MINUTES" =~ ^[0-9]+$ && "$WARMUP" =~ ^[0-9]+$ && "$MINUTES" -gt "$WARMUP" ]] ||
  { say "SOAK_MINUTES ($MINUTES) must be a whole number above SOAK_WARMUP_MINUTES ($WARMUP)"; exit 2; }
command -v openssl >/dev/null || { say "openssl is required"; exit 2; }
if [ -z "${SPIRE_BIN_DIR:-}" ]; then
  SPIRE_BIN_DIR="$("$ROOT/tests/spire/build-spire.sh")"
fi
export SPIRE_BIN_DIR

WORK="$(mktemp -d /tmp/shr-soak.XXXXXX)"
SPIRE_DIR="$WORK/spire"
PIDS=()
FAILED=0

cleanup() {
  local rc=$? pid
  trap - EXIT TERM
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    for log in "$WORK"/*.log; do
      [ -f "$log" ] || continue
      echo "----- last lines of $(basename "$log") -----" >&2
      tail -n 20 "$log" >&2
    done
  fi
  "$ROOT/scripts/env.sh" down "$SPIRE_DIR" >/dev/null 2>&1 || true
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'say "stopped by SIGTERM"; exit 143' TERM
# An INT ignored on entry stays ignored (bash cannot trap it); otherwise ^C cleans up too.
trap 'say "interrupted"; exit 130' INT

SVID_TTL=10 "$ROOT/scripts/env.sh" up "$SPIRE_DIR" >/dev/null 2>"$WORK/env.log" ||
  { cat "$WORK/env.log" >&2; fail "SPIRE did not start"; }
SOCK="$SPIRE_DIR/agent.sock"

# A TCP port on 127.0.0.1 nobody listens on.
free_port() {
  local port
  for _ in $(seq 1 200); do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  fail "no free TCP port found"
}

# http GET PORT PATH: prints the status code, then the body (no curl needed).
http_get() {
  local reply
  reply="$(exec 3<>"/dev/tcp/127.0.0.1/$1" && printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$2" >&3 && cat <&3)" || return 1
  printf '%s\n' "$reply" | awk 'NR == 1 {print $2} body {print} /^\r?$/ {body = 1}'
}

status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# sample PID: "rss_kb rssanon_kb fds threads", or nothing when the process is gone. Open fds
# are the fewest of three looks 0.2 s apart, so a probe's connection or a write's temporary file
# that happens to be open at that instant is not counted as a leak.
sample() {
  local pid="$1" fds=999999 n
  [ -d "/proc/$pid" ] || return 1
  for _ in 1 2 3; do
    n="$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    [ "$n" -lt "$fds" ] && fds=$n
    sleep 0.2
  done
  echo "$(status_kb "$pid" VmRSS) $(status_kb "$pid" RssAnon) $fds $(status_kb "$pid" Threads)"
}

# utime + stime of a process in seconds (proc(5): fields 14 and 15 of /proc/PID/stat, counted
# after the command name, which may hold spaces).
cpu_seconds() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*[)] /, ""); split($0, f, " "); printf "%.2f", (f[12] + f[13]) / hz }' \
    "/proc/$1/stat" 2>/dev/null || echo "?"
}

# ---- daemon mode -------------------------------------------------------------------------

CERTS="$WORK/certs"
RELOADS="$WORK/reloads"

start_daemon() {
  HEALTH_PORT="$(free_port)"
  # The consumer: reloads on SIGHUP, i.e. reads the certificate, and records which one it got.
  cat >"$WORK/consumer.sh" <<'EOF'
#!/usr/bin/env bash
# $1: cert dir; $2: file that gets "<reloads> <serial of svid.pem at the last reload>".
n=0
reload() {
  local serial
  n=$((n + 1))
  serial="$(openssl x509 -in "$1/svid.pem" -noout -serial 2>/dev/null)" || serial="serial=unreadable"
  echo "$n ${serial#serial=}" >"$2.tmp" && mv -f "$2.tmp" "$2"
}
trap 'reload "$1" "$2"' HUP
trap 'exit 0' TERM
while :; do
  sleep 1 &
  wait $! || true
done
EOF
  chmod +x "$WORK/consumer.sh"
  cat >"$WORK/helper.conf" <<EOF
agent_address = "unix://$SOCK"
cert_dir = "$CERTS"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
cmd = "$WORK/consumer.sh"
cmd_args = "$CERTS $RELOADS"
renew_signal = "SIGHUP"
jwt_svids = [{jwt_audience = "soak", jwt_svid_file_name = "soak.token"}]
jwt_bundle_file_name = "jwt_bundle.json"
health_checks {
  listener_enabled = true
  bind_port = $HEALTH_PORT
}
EOF
  "$HELPER" -config "$WORK/helper.conf" </dev/null >"$WORK/helper.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 120); do
    [ "$(http_get "$HEALTH_PORT" /health/ready 2>/dev/null | head -n 1)" = 200 ] && return 0
    kill -0 "$PID" 2>/dev/null || fail "the helper exited during start-up"
    sleep 0.5
  done
  fail "the helper did not become ready in 60 s"
}

declare -A SEEN=()
CHANGES=0
LAST_CHANGE=$SECONDS
CURRENT_SERIAL=""

# Reads every output file whose inode changed (each write renames a new file in): any file
# that does not parse is a failure.
read_outputs() {
  local stats
  stats="$(cd "$CERTS" && stat -c '%n %i' svid.pem svid_key.pem svid_bundle.pem soak.token jwt_bundle.json 2>&1)" ||
    fail "an output file is missing: $stats"
  local name ino
  while read -r name ino; do
    [ "${SEEN[$name]:-}" = "$ino" ] && continue
    SEEN[$name]="$ino"
    case "$name" in
      svid.pem)
        CURRENT_SERIAL="$(openssl x509 -in "$CERTS/$name" -noout -serial 2>/dev/null)" ||
          fail "$name did not parse as a certificate"
        CURRENT_SERIAL="${CURRENT_SERIAL#serial=}"
        CHANGES=$((CHANGES + 1))
        LAST_CHANGE=$SECONDS
        ;;
      svid_bundle.pem)
        openssl x509 -in "$CERTS/$name" -noout 2>/dev/null || fail "$name did not parse as a certificate" ;;
      svid_key.pem)
        openssl pkey -in "$CERTS/$name" -noout 2>/dev/null || fail "$name did not parse as a private key" ;;
      soak.token)
        grep -Eq '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' "$CERTS/$name" || fail "$name is not a JWT" ;;
      jwt_bundle.json)
        # Upstream's format: {"<trust domain>": "<base64 of the JWKS>", ...}.
        sed -E 's/^\{"[^"]+":"([^"]+)".*/\1/' "$CERTS/$name" | base64 -d 2>/dev/null | grep -q '"keys"' ||
          fail "$name does not hold a base64 JWKS" ;;
    esac
  done <<<"$stats"
}

# The consumer must have reloaded onto the current certificate within RELOAD_GRACE seconds.
check_reload() {
  local n serial
  [ $((SECONDS - LAST_CHANGE)) -ge "$RELOAD_GRACE" ] || return 0
  read -r n serial <"$RELOADS" 2>/dev/null || fail "the consumer never reloaded"
  [ "$serial" != unreadable ] || fail "the consumer could not read svid.pem at reload $n"
  [ "$serial" = "$CURRENT_SERIAL" ] ||
    fail "missed reload: svid.pem has serial $CURRENT_SERIAL since $((SECONDS - LAST_CHANGE)) s, the consumer last loaded $serial"
}

check_probes() {
  local path code
  for path in /health/live /health/ready; do
    code="$(http_get "$HEALTH_PORT" "$path" 2>/dev/null | head -n 1)" || code="no answer"
    [ "$code" = 200 ] || fail "$path answered $code"
  done
}

metric() { http_get "$HEALTH_PORT" /metrics 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }

daemon_counts() {
  local reloads
  reloads="$(cut -d' ' -f1 "$RELOADS" 2>/dev/null || echo 0)"
  echo "rotations=$(metric spiffe_helper_x509_svid_rotations_total) signals=$(metric spiffe_helper_signals_sent_total) reloads=$reloads files_changed=$CHANGES"
}

# ---- embed mode --------------------------------------------------------------------------

start_embed() {
  local tunables=()
  [ -z "${SOAK_EMBED_GLIBC_TUNABLES:-}" ] || tunables=("GLIBC_TUNABLES=$SOAK_EMBED_GLIBC_TUNABLES")
  say "embedding server's GLIBC_TUNABLES: ${SOAK_EMBED_GLIBC_TUNABLES:-unset, the defaults of glibc}"
  env "${tunables[@]}" SPIFFE_ENDPOINT_SOCKET="unix://$SOCK" "$EMBED" serve --listen 127.0.0.1:0 \
    </dev/null >"$WORK/server.out" 2>"$WORK/server.log" &
  PID=$!
  PIDS+=("$PID")
  local addr=""
  for _ in $(seq 1 120); do
    addr="$(awk '/^listening on / {print $3}' "$WORK/server.out" 2>/dev/null || true)"
    [ -n "$addr" ] && break
    kill -0 "$PID" 2>/dev/null || fail "the embedding server exited during start-up"
    sleep 0.5
  done
  [ -n "$addr" ] || fail "the embedding server did not listen in 60 s"
  SPIFFE_ENDPOINT_SOCKET="unix://$SOCK" "$EMBED" handshake --connect "$addr" \
    </dev/null >"$WORK/client.out" 2>"$WORK/client.log" &
  CLIENT_PID=$!
  PIDS+=("$CLIENT_PID")
}

# The last status line each side prints (every second): "key=value ..." pairs.
# The file may not exist yet: a background job opens its redirections after `&` has returned,
# and a failing pipeline would end this script silently (set -e, pipefail).
field() { { tail -n 1 "$1" 2>/dev/null || true; } | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k {print $2}'; }

check_embed() {
  kill -0 "$CLIENT_PID" 2>/dev/null || fail "the handshaking client exited"
  local failed stale
  failed="$(field "$WORK/client.out" failed)"
  [ "${failed:-0}" = 0 ] || fail "$failed handshake(s) failed (client.log)"
  failed="$(field "$WORK/server.out" failed)"
  [ "${failed:-0}" = 0 ] || fail "$failed server-side handshake(s) or JWT checks failed (server.log)"
  # The client records for how long the server has shown it the same certificate.
  stale="$(field "$WORK/client.out" same_server_cert_for)"
  [ "${stale:-0}" -le $((RELOAD_GRACE + 10)) ] ||
    fail "the server has presented one certificate for ${stale} s although the SVID rotates every few seconds"
}

embed_counts() {
  echo "server: rotations=$(field "$WORK/server.out" rotations) handshakes=$(field "$WORK/server.out" handshakes) jwt_checks=$(field "$WORK/server.out" jwt_checks);" \
    "client: handshakes=$(field "$WORK/client.out" handshakes) server_certs_seen=$(field "$WORK/client.out" server_certs)"
}

# ---- the run -----------------------------------------------------------------------------

if [ "$MODE" = daemon ]; then
  start_daemon
  say "daemon pid $PID, health port $HEALTH_PORT, $MINUTES min (warm-up $WARMUP), work dir $WORK"
else
  start_embed
  say "embedding server pid $PID, client pid $CLIENT_PID, $MINUTES min (warm-up $WARMUP), work dir $WORK"
fi

ROWS=()
START=$SECONDS
next_sample=0
next_probe=0
printf '%6s %9s %11s %5s %8s  %s\n' min rss_kB rssanon_kB fds threads counts >&2
while :; do
  elapsed=$((SECONDS - START))
  kill -0 "$PID" 2>/dev/null || fail "the process under test (pid $PID) died"
  if [ "$MODE" = daemon ]; then
    read_outputs
    check_reload
    if [ "$elapsed" -ge "$next_probe" ]; then
      check_probes
      next_probe=$((next_probe + 10))
    fi
  else
    check_embed
  fi
  if [ "$elapsed" -ge "$next_sample" ]; then
    minute=$((next_sample / 60))
    s="$(sample "$PID")" || fail "the process under test (pid $PID) died"
    if [ "$MODE" = daemon ]; then counts="$(daemon_counts)"; else counts="$(embed_counts)"; fi
    read -r rss anon fds threads <<<"$s"
    printf '%6s %9s %11s %5s %8s  %s\n' "$minute" "$rss" "$anon" "$fds" "$threads" "$counts" >&2
    ROWS+=("$minute $rss $anon $fds $threads")
    [ "$minute" -ge "$MINUTES" ] && break
    next_sample=$((next_sample + 60))
  fi
  sleep 0.5
done

# ---- verdict -----------------------------------------------------------------------------

row_at() { local r; for r in "${ROWS[@]}"; do [ "${r%% *}" = "$1" ] && { echo "$r"; return; }; done; }
read -r _ _ base_anon base_fds _ <<<"$(row_at "$WARMUP")"
read -r _ _ last_anon last_fds _ <<<"$(row_at "$MINUTES")"
max_anon=0
for r in "${ROWS[@]}"; do
  read -r m _ a _ _ <<<"$r"
  [ "$m" -ge "$WARMUP" ] && [ "$a" -gt "$max_anon" ] && max_anon=$a
done
after=$((MINUTES - WARMUP))
allowed=$((PAGE_KB * ((after + 9) / 10)))
growth=$((max_anon - base_anon))

{
  echo "| min | RSS kB | RssAnon kB | fds |"
  echo "|---|---|---|---|"
  for r in "${ROWS[@]}"; do
    read -r m rss a f _ <<<"$r"
    if [ $((m % 10)) -eq 0 ] || [ "$m" -eq 1 ] || [ "$m" -eq "$WARMUP" ] || [ "$m" -eq "$MINUTES" ]; then
      echo "| $m | $rss | $a | $f |"
    fi
  done
} >"$WORK/table.md"
cat "$WORK/table.md" >&2
[ -z "${SOAK_TABLE:-}" ] || cp "$WORK/table.md" "$SOAK_TABLE"
if [ "$MODE" = daemon ]; then say "totals: $(daemon_counts)"; else say "totals: $(embed_counts)"; fi
say "CPU of the process under test: $(cpu_seconds "$PID") s (user + system)"
say "RssAnon after the warm-up: $base_anon kB at minute $WARMUP, at most $max_anon kB later, $last_anon kB at minute $MINUTES (allowed growth $allowed kB over $after min)"

[ "$growth" -le "$allowed" ] || fail "RssAnon grew by $growth kB after the warm-up; the bound is $allowed kB"
[ "$last_fds" -le "$base_fds" ] || fail "open fds grew from $base_fds to $last_fds after the warm-up"
say "PASS ($MODE, $MINUTES min)"
