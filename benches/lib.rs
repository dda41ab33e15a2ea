//! Criterion benchmarks of Tessera; see `primitives.rs`.
