//! The conformance suite against every backend of this crate.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod memory {
    tessera_store::conformance_tests!(Box::new(tessera_store::MemoryStore::new()));
}

mod redb {
    tessera_store::conformance_tests!(tessera_store::conformance::TempRedbStore::new());
}
