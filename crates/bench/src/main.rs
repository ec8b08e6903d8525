//! Benchmark driver (see scripts/bench.sh).
fn main() {}
