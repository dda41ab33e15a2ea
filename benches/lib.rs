//! Criterion benchmarks of Tessera: `primitives.rs` (crypto layer against raw ring), `keys.rs` (key hierarchy), `sharing.rs` (entities and delegations).
