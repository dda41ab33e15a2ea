#![doc = include_str!("../README.md")]

mod codec;
mod error;
mod index;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod redb;
mod revision;
mod store;

#[cfg(feature = "test-utils")]
pub mod conformance;

pub use crate::error::{Error, Result};
pub use crate::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use crate::postgres::PostgresStore;
pub use crate::redb::{Compaction, RedbStore};
pub use crate::store::{RecoveryData, Revision, Store, Versioned, attachment_chunk_len};

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<MemoryStore>();
    assert_send_sync::<RedbStore>();
    #[cfg(feature = "postgres")]
    assert_send_sync::<PostgresStore>();
    assert_send_sync::<Error>();
    assert_send_sync::<RecoveryData>();
};
