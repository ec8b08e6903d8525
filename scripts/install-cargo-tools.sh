#!/usr/bin/env bash
# Installs the cargo tools `make lint` runs (today cargo-deny) into a cache outside the
# repository, ${XDG_CACHE_HOME:-~/.cache}/spiffe-helper-rust/tools/bin, from crates.io with the
# versions locked by the tool's own Cargo.lock. Skipped when the pinned version is present.
# The first install compiles cargo-deny: about 10 minutes on 2 cores.
set -euo pipefail

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/spiffe-helper-rust"
ROOT_DIR="${CARGO_TOOLS_ROOT:-$CACHE/tools}"
CARGO_DENY_VERSION="${CARGO_DENY_VERSION:-0.20.2}"

have="$("$ROOT_DIR/bin/cargo-deny" --version 2>/dev/null || true)"
if [ "$have" = "cargo-deny $CARGO_DENY_VERSION" ]; then
  exit 0
fi
echo "install-cargo-tools: cargo install --locked cargo-deny@$CARGO_DENY_VERSION --root $ROOT_DIR" >&2
cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION" --root "$ROOT_DIR" >&2
"$ROOT_DIR/bin/cargo-deny" --version >&2
