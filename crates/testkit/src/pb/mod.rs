//! Generated from `proto/workload.proto` by `make proto` (server side); do not edit by hand.
include!("workload.rs");
