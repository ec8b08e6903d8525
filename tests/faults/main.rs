//! Fault-injection and security scenarios against the built binary and a real SPIRE.
