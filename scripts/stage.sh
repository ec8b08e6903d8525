#!/usr/bin/env bash
# stage.sh LABEL COMMAND [ARG...]: runs one slow setup stage (SPIRE's Go build, apt-get,
# cargo install) quietly. Prints one line, "LABEL ... ok in 2m13s (log: PATH)", and keeps
# everything the command wrote on stderr in PATH, under
# ${XDG_CACHE_HOME:-~/.cache}/spiffe-helper-rust/logs (STAGE_LOG_DIR overrides). The command's
# stdout passes through unchanged, so `BIN="$(scripts/stage.sh ... build-spire.sh)"` still works.
# The log is named after LABEL up to its first " (", so "build (in /tmp/x.123)" reuses one log.
# On failure it prints the log's last 30 lines and exits with the command's status.
set -uo pipefail

[ $# -ge 2 ] || { echo "usage: $0 LABEL COMMAND [ARG...]" >&2; exit 2; }
label="$1"
shift
dir="${STAGE_LOG_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust/logs}"
mkdir -p "$dir" || exit 1
slug="$(printf '%s' "${label%% (*}" | tr -c 'A-Za-z0-9._-' '-' | tr -s '-' | sed 's/^-//; s/-$//')"
log="$dir/${slug:-stage}.log"

elapsed() {
  local s=$((SECONDS - start))
  if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

start=$SECONDS
printf '%s ... ' "$label" >&2
{ echo "# $label: $*"; echo "# started $(date -u +%FT%TZ)"; } >"$log"
"$@" 2>>"$log"
rc=$?
if [ "$rc" -eq 0 ]; then
  echo "ok in $(elapsed) (log: $log)" >&2
else
  echo "FAILED (exit $rc) after $(elapsed) (log: $log)" >&2
  echo "----- last lines of $log -----" >&2
  tail -n 30 "$log" >&2
fi
exit "$rc"
