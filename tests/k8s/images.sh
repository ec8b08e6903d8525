#!/usr/bin/env bash
# The cluster's container images, built with podman from Debian packages and the project's own
# binaries (no registry is reachable here), then imported into the cluster's containerd.
#
#   tests/k8s/images.sh build    base rootfs (mmdebstrap, cached), then the images:
#                                  localhost/shr/pause:3.10          pod sandbox (pause.c, static)
#                                  localhost/shr/cc-debian12:nonroot  stands in for distroless/cc
#                                  localhost/shr/debian-tools:bookworm  sh, nginx, curl, openssl
#                                  localhost/shr/spire-server|spire-agent:1.13.3
#                                  localhost/shr/nginx:bookworm, localhost/shr/curl:bookworm
#                                  localhost/spiffe-helper-rust:0.1.0  deploy/Dockerfile, runtime stage
#   tests/k8s/images.sh import   podman save -> ctr import into the running cluster's containerd
#
# HELPER_BIN: the helper binary to put into the image (default target/debug/spiffe-helper-rust;
# `make release` then HELPER_BIN=target/release/spiffe-helper-rust for the size users get).
# INJECTOR_BIN: the same for the injector (default target/debug/spiffe-helper-injector, packed
# without its debug sections: the image is imported into the cluster on every env-up).
# WITH_UPSTREAM_HELPER=1 (make bench-k8s; off by default, so env-up builds what it always did):
# also localhost/shr/upstream-helper:0.11.0, the upstream Go spiffe-helper v0.11.0 on the same base
# with the same layout as ours (/usr/local/bin, uid 65532, `-config /etc/spiffe-helper/helper.conf`).
# UPSTREAM_HELPER_BIN picks the binary; the default is the `-s -w` build make bench makes
# (spiffe-helper-stripped, as upstream's release does), else the plain one build-spire.sh makes.
set -euo pipefail
# shellcheck source=tests/k8s/lib.sh
. "$(dirname "$0")/lib.sh"

IMG_CACHE="$CACHE_BASE/images"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
HELPER_BIN="${HELPER_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/spiffe-helper-rust}"
INJECTOR_BIN="${INJECTOR_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/spiffe-helper-injector}"
HELPER_IMAGE="localhost/spiffe-helper-rust:0.1.0"
INJECTOR_IMAGE="localhost/spiffe-helper-injector:0.1.0"
SCM_IMAGE="localhost/shr/spire-controller-manager:0.6.3"
IMAGES=(localhost/shr/pause:3.10 localhost/shr/spire-server:1.13.3 localhost/shr/spire-agent:1.13.3 "$SCM_IMAGE"
  localhost/shr/nginx:bookworm localhost/shr/curl:bookworm "$HELPER_IMAGE" "$INJECTOR_IMAGE")
UPSTREAM_HELPER_IMAGE="localhost/shr/upstream-helper:0.11.0"
if [ "${WITH_UPSTREAM_HELPER:-0}" = 1 ]; then
  IMAGES+=("$UPSTREAM_HELPER_IMAGE")
fi
HERE="$ROOT/tests/k8s/images"
ARCHIVE="$IMG_CACHE/archive/images.tar"

# podman with this machine's settings and its storage in the cache (the host's stays untouched).
export CONTAINERS_CONF="$HERE/containers.conf"
export CONTAINERS_STORAGE_CONF="$IMG_CACHE/storage.conf"

podman_setup() {
  mkdir -p "$IMG_CACHE/storage" "$IMG_CACHE/archive"
  cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$IMG_CACHE/storage"
runroot = "$IMG_CACHE/run"
EOF
}

have_image() { podman image exists "$1"; }

# rootfs NAME MMDEBSTRAP-ARGS...: a Debian bookworm root filesystem tar, made once.
rootfs() {
  local name="$1"
  shift
  local out="$IMG_CACHE/$name.tar"
  [ -s "$out" ] && return 0
  say "mmdebstrap $name (first time only, ~1 min)"
  mmdebstrap --quiet --mode=root "$@" bookworm "$out.part.tar" "$MIRROR" >&2
  mv "$out.part.tar" "$out"
}

base_images() {
  # distroless/cc's contents: glibc, libgcc, CA certificates, passwd/group with "nonroot" 65532.
  rootfs cc-debian12 --variant=extract --include=base-files,libc6,libgcc-s1,ca-certificates,tzdata,netbase \
    --customize-hook='printf "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" > "$1/etc/passwd"' \
    --customize-hook='printf "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n" > "$1/etc/group"' \
    --customize-hook='mkdir -p "$1/home/nonroot" "$1/tmp" && chown 65532:65532 "$1/home/nonroot" && chmod 1777 "$1/tmp"'
  rootfs debian-tools --variant=essential --include=nginx-light,curl,openssl,ca-certificates,procps \
    --customize-hook='rm -rf "$1/var/cache/apt/archives"/*.deb "$1/var/lib/apt/lists"/*'
  have_image localhost/shr/cc-debian12:nonroot ||
    podman import --quiet --change 'USER 65532:65532' --change 'WORKDIR /home/nonroot' \
      "$IMG_CACHE/cc-debian12.tar" localhost/shr/cc-debian12:nonroot >/dev/null
  have_image localhost/shr/debian-tools:bookworm ||
    podman import --quiet "$IMG_CACHE/debian-tools.tar" localhost/shr/debian-tools:bookworm >/dev/null
  return 0
}

pause_image() {
  if ! have_image localhost/shr/pause:3.10; then
    local d
    d="$(mktemp -d)"
    install -m 0755 "$(k8s_bin)/pause" "$d/pause"
    tar -C "$d" -cf "$d.tar" pause
    podman import --quiet --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' "$d.tar" localhost/shr/pause:3.10 >/dev/null
    rm -rf "$d" "$d.tar"
  fi
}

# build_in CONTEXT-FILES... -- PODMAN-BUILD-ARGS...: podman build with a context holding only
# the given files (never the repository with its target/ dir).
build_in() {
  local ctx
  ctx="$(mktemp -d /tmp/shr-img.XXXXXX)"
  while [ "$1" != -- ]; do
    cp "$1" "$ctx/"
    shift
  done
  shift
  podman build --quiet --pull=never "$@" "$ctx" >/dev/null
  rm -rf "$ctx"
}

cmd_build() {
  command -v podman >/dev/null && command -v mmdebstrap >/dev/null || die "podman and mmdebstrap are required (run: make deps)"
  [ -x "$HELPER_BIN" ] || die "no helper binary at $HELPER_BIN (run: cargo build -p spiffe-helper-rust)"
  [ -x "$INJECTOR_BIN" ] || die "no injector binary at $INJECTOR_BIN (run: cargo build -p spiffe-helper-injector)"
  local spire
  spire="$(spire_bin)"
  [ -x "$spire/spire-server" ] || die "no SPIRE binaries in $spire (run: make spire)"
  podman_setup
  base_images
  pause_image
  local c
  for c in spire-server spire-agent; do
    have_image "localhost/shr/$c:1.13.3" ||
      build_in "$spire/$c" -- -f "$HERE/spire.Containerfile" --build-arg COMPONENT="$c" -t "localhost/shr/$c:1.13.3"
  done
  have_image "$SCM_IMAGE" || controller_manager_image
  have_image localhost/shr/nginx:bookworm || build_in -- -f "$HERE/nginx.Containerfile" -t localhost/shr/nginx:bookworm
  have_image localhost/shr/curl:bookworm || build_in -- -f "$HERE/curl.Containerfile" -t localhost/shr/curl:bookworm
  # The helper: deploy/Dockerfile's runtime stage over the local distroless stand-in, with the
  # binary cargo built (rebuilt every time: the binary changes).
  build_in "$HELPER_BIN" -- -f "$ROOT/deploy/Dockerfile" \
    --build-arg RUNTIME_IMAGE=localhost/shr/cc-debian12:nonroot \
    --build-arg BINARY_STAGE=prebuilt \
    --build-arg PREBUILT_BINARY="$(basename "$HELPER_BIN")" \
    -t "$HELPER_IMAGE"
  injector_image
  if [ "${WITH_UPSTREAM_HELPER:-0}" = 1 ]; then
    upstream_helper_image
  fi
  # One archive for all: the images share their base layers.
  rm -f "$ARCHIVE"
  podman save --quiet --multi-image-archive --format docker-archive -o "$ARCHIVE" "${IMAGES[@]}"
  # Leave no mounts behind: buildah can keep working containers of a multi-stage build (and
  # with them the storage's overlay mounts); the old helper images are dangling after a rebuild.
  for c in $(podman ps -a --external --format '{{.ID}}'); do
    podman rm -f --storage "$c" >/dev/null 2>&1 || true
  done
  podman image prune -f >/dev/null
  say "images built: ${IMAGES[*]}"
}

# controller_manager_image: spire-controller-manager (a static Go binary) on the distroless
# stand-in; the SPIRE server's pod runs it as the server's uid.
controller_manager_image() {
  local scm cf
  scm="$("$ROOT/tests/k8s/build-controller-manager.sh")"
  cf="$(mktemp /tmp/shr-scm.XXXXXX)"
  cat >"$cf" <<EOF
FROM localhost/shr/cc-debian12:nonroot
COPY spire-controller-manager /spire-controller-manager
USER 65532:65532
ENTRYPOINT ["/spire-controller-manager"]
EOF
  build_in "$scm/bin/spire-controller-manager" -- -f "$cf" -t "$SCM_IMAGE"
  rm -f "$cf"
}

# injector_image: deploy/Dockerfile.injector's runtime stage over the same base, with the
# binary cargo built, its debug sections dropped (a debug build of kube is large).
injector_image() {
  local d
  d="$(mktemp -d /tmp/shr-injector.XXXXXX)"
  objcopy --strip-debug "$INJECTOR_BIN" "$d/spiffe-helper-injector"
  build_in "$d/spiffe-helper-injector" -- -f "$ROOT/deploy/Dockerfile.injector" \
    --build-arg RUNTIME_IMAGE=localhost/shr/cc-debian12:nonroot \
    --build-arg BINARY_STAGE=prebuilt \
    -t "$INJECTOR_IMAGE"
  rm -rf "$d"
}

# upstream_helper_image: the upstream Go helper packed the way deploy/Dockerfile's runtime stage
# packs ours (same base, user, port and default arguments): the two images differ in the binary.
upstream_helper_image() {
  local bin="${UPSTREAM_HELPER_BIN:-}" spire cf
  if [ -z "$bin" ]; then
    spire="$(spire_bin)"
    bin="$spire/spiffe-helper-stripped"
    [ -x "$bin" ] || bin="$spire/spiffe-helper"
  fi
  [ -x "$bin" ] || die "no upstream spiffe-helper at $bin (run: tests/spire/build-spire.sh --with-upstream-helper)"
  cf="$(mktemp /tmp/shr-upstream.XXXXXX)"
  cat >"$cf" <<EOF
FROM localhost/shr/cc-debian12:nonroot
COPY $(basename "$bin") /usr/local/bin/spiffe-helper
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/spiffe-helper"]
CMD ["-config", "/etc/spiffe-helper/helper.conf"]
EOF
  build_in "$bin" -- -f "$cf" -t "$UPSTREAM_HELPER_IMAGE"
  rm -f "$cf"
}

cmd_import() {
  [ -s "$ARCHIVE" ] || die "no image archive $ARCHIVE (run: tests/k8s/images.sh build)"
  ctr_k8s images import "$ARCHIVE" >/dev/null || die "ctr import of $ARCHIVE failed"
}

# The image id (config digest) podman gave the helper image: the smoke test compares the pod's.
cmd_helper_id() {
  podman image inspect --format '{{.Id}}' "$HELPER_IMAGE"
}

case "${1:-}" in
  base)
    podman_setup
    base_images
    ;;
  build) cmd_build ;;
  import) cmd_import ;;
  helper-id) cmd_helper_id ;;
  *)
    echo "usage: $0 build|import|helper-id" >&2
    exit 2
    ;;
esac
