#!/usr/bin/env bash
# Installs the system tools the end-to-end tests use, when missing. Runs as root on CI; elsewhere
# it prints what to install instead of failing half-way.
set -euo pipefail
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v go >/dev/null 2>&1 || { echo "install-deps: Go >= 1.25.3 is required to build SPIRE for the tests" >&2; exit 1; }
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
# Issue 15's real consumers: PostgreSQL 15 (run as its `postgres` user) and HAProxy; curl drives
# the HAProxy request loop.
[ -x "${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}/postgres" ] || missing+=(postgresql-15)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
command -v curl >/dev/null 2>&1 || missing+=(curl)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: please install: ${missing[*]}" >&2
  exit 1
fi
