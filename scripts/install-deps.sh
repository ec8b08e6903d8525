#!/usr/bin/env bash
# Installs the system tools the end-to-end tests and the local Kubernetes (tests/k8s) use, when
# missing. Runs as root on CI; elsewhere it prints what to install instead of failing half-way.
set -euo pipefail
missing=()
# has CMD PATH...: CMD is on PATH or one of PATH exists (sbin tools are off a user's PATH).
has() {
  command -v "$1" >/dev/null 2>&1 && return 0
  shift
  local p
  for p in "$@"; do [ -e "$p" ] && return 0; done
  return 1
}
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v go >/dev/null 2>&1 || { echo "install-deps: Go >= 1.25.3 is required to build SPIRE for the tests" >&2; exit 1; }
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
# spiffe-workload-tls's `aws-lc-rs` feature (make test-aws-lc-rs) builds AWS-LC from C: gcc
# above, and cmake, which aws-lc-sys falls back to where its cc build does not apply (and
# which a FIPS build of aws-lc-rs always needs).
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
# The real consumers of the reload tests (docs/consumers.md): PostgreSQL 15 (run as its `postgres` user) and HAProxy; curl drives
# the HAProxy request loop.
[ -x "${PG_BIN_DIR:-/usr/lib/postgresql/15/bin}/postgres" ] || missing+=(postgresql-15)
[ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# The JVM consumer of the PKCS#12 keystores (tests/e2e/java.rs): javac, java and keytool.
has javac || missing+=(openjdk-17-jdk-headless)
# The local Kubernetes: container runtime, CNI plugins, etcd, a DNS that forwards nothing,
# podman + mmdebstrap for the images, iptables for kube-proxy (nft to drop its emptied tables).
has containerd || missing+=(containerd)
has runc || missing+=(runc)
has bridge /usr/lib/cni/bridge || missing+=(containernetworking-plugins)
has etcd || missing+=(etcd-server)
has dnsmasq /usr/sbin/dnsmasq || missing+=(dnsmasq-base)
has podman || missing+=(podman)
has mmdebstrap || missing+=(mmdebstrap)
has iptables /usr/sbin/iptables || missing+=(iptables)
has nft /usr/sbin/nft || missing+=(nftables)
has ip /usr/sbin/ip /sbin/ip || missing+=(iproute2)
has curl || missing+=(curl)
has pgrep || missing+=(procps)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: installing ${missing[*]}" >&2
  # apt's output goes to stderr: `make deps` keeps it in the stage's log (scripts/stage.sh).
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
else
  echo "install-deps: please install: ${missing[*]}" >&2
  exit 1
fi
