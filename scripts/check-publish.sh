#!/usr/bin/env bash
# `make publish-check` (also a step of `make lint`): what crates.io and docs.rs will do with the
# published crates (docs/publishing.md), checked before anyone runs `cargo publish`.
#   - every documented feature combination compiles (the tables in the crates' READMEs);
#   - rustdoc with -D warnings on all features (broken intra-doc links included), and the
#     READMEs' quick starts compile (they are doctests);
#   - `cargo package` builds each crate from its packaged files alone, the unpublished ones it
#     depends on first (cargo puts them in a local registry overlay). Needs the crates.io index.
set -euo pipefail
cd "$(dirname "$0")/.."

CRATES=(spiffe-workload-proto spiffe-workload-client spiffe-workload-tls)
say() { echo "publish-check: $*" >&2; }

# The documented feature sets (crates/*/README.md "Features").
combos=(
  "spiffe-workload-proto|"
  "spiffe-workload-proto|--features server"
  "spiffe-workload-client|--no-default-features"
  "spiffe-workload-client|--no-default-features --features transport"
  "spiffe-workload-client|"
  "spiffe-workload-tls|"
  "spiffe-workload-tls|--no-default-features --features ring"
  "spiffe-workload-tls|--no-default-features --features aws-lc-rs,federation"
  "spiffe-workload-tls|--features tonic"
  "spiffe-workload-tls|--features hyper"
  "spiffe-workload-tls|--all-features"
)
for c in "${combos[@]}"; do
  crate="${c%%|*}"
  flags="${c#*|}"
  say "cargo check -p $crate ${flags:-(default features)}"
  # shellcheck disable=SC2086 # flags are words
  cargo check -q -p "$crate" $flags
done

pkgs=()
for crate in "${CRATES[@]}"; do pkgs+=(-p "$crate"); done
say "rustdoc -D warnings, all features: ${CRATES[*]}"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps --all-features "${pkgs[@]}"
say "README quick starts (doctests)"
cargo test -q --doc "${pkgs[@]}" >/dev/null

say "cargo package: ${CRATES[*]}"
# --allow-dirty: a check run on a working tree; CI runs it on a clean checkout anyway.
cargo package -q --allow-dirty "${pkgs[@]}"
say "ok"
