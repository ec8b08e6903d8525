#!/usr/bin/env bash
# Runs cargo-fuzz targets for a fixed time each.
#   scripts/fuzz.sh TARGET SECONDS   one target (for example parse_config)
#   scripts/fuzz.sh all SECONDS      every target of every crates/*/fuzz package, one after another
# Needs a nightly toolchain and cargo-fuzz (libFuzzer needs -Zsanitizer). Crashes are kept in
# crates/<crate>/fuzz/artifacts/<target>/; the corpus in crates/<crate>/fuzz/corpus/<target>/.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

usage() {
  echo "usage: $0 TARGET|all SECONDS" >&2
  exit 2
}
[ $# -eq 2 ] || usage
target="$1"
seconds="$2"
case "$seconds" in '' | *[!0-9]*) usage ;; esac

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz: a nightly toolchain is required: rustup toolchain install nightly" >&2
  exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is required: cargo install --locked cargo-fuzz" >&2
  exit 1
fi

# "crate_dir target" pairs for every fuzz package in the workspace.
list_targets() {
  local dir
  for dir in crates/*/fuzz bins/*/fuzz; do
    [ -f "$dir/Cargo.toml" ] || continue
    (cd "$dir/.." && cargo +nightly fuzz list 2>/dev/null) | while read -r t; do
      [ -n "$t" ] && echo "${dir%/fuzz} $t"
    done
  done
}

mapfile -t all < <(list_targets)
if [ ${#all[@]} -eq 0 ]; then
  echo "fuzz: no fuzz targets found under crates/*/fuzz" >&2
  exit 1
fi

ran=0
for pair in "${all[@]}"; do
  crate_dir="${pair% *}"
  t="${pair#* }"
  if [ "$target" != all ] && [ "$target" != "$t" ]; then
    continue
  fi
  echo "fuzz: $t ($crate_dir) for ${seconds}s" >&2
  # The committed seeds start the corpus; new inputs go to the (ignored) corpus dir.
  corpora=("fuzz/corpus/$t")
  [ -d "$crate_dir/fuzz/seeds/$t" ] && corpora+=("fuzz/seeds/$t")
  mkdir -p "$crate_dir/fuzz/corpus/$t"
  (cd "$crate_dir" && cargo +nightly fuzz run "$t" "${corpora[@]}" -- -max_total_time="$seconds")
  ran=$((ran + 1))
done

if [ "$ran" -eq 0 ]; then
  echo "fuzz: no target named '$target'; known targets:" >&2
  printf '  %s\n' "${all[@]#* }" >&2
  exit 1
fi
echo "fuzz: $ran target(s) ran without a crash" >&2
