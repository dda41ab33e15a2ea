//! Criterion benchmarks of Tessera: `primitives.rs` (crypto layer against raw ring) and `keys.rs` (key hierarchy).
