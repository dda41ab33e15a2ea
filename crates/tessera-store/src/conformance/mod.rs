//! The conformance suite (feature `test-utils`): the behaviour every [`Store`](crate::Store) backend must have, one public function
//! per case, and [`conformance_tests!`](crate::conformance_tests) to turn them into one named test per case.
//!
//! ```rust
//! // In `tests/conformance.rs` of a backend: one test per case, each on a fresh store.
//! tessera_store::conformance_tests!(Box::new(tessera_store::MemoryStore::new()));
//! # fn main() {}
//! ```
//!
//! The cases build realistic records with the real key and sharing layers ([`fixtures`]), so a backend is tested on
//! what the server will store, not on hand-made bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a conformance case is a test: it fails loudly on the first broken expectation"
)]

mod attachment;
mod batch;
mod entity;
mod fixture;
mod owner;
#[cfg(feature = "postgres")]
mod postgres;
mod recovery;

pub use self::attachment::{
    attachment_ranged_reads, attachment_replace, attachment_upload_finish_replaces,
    attachment_upload_is_invisible_until_finished, attachment_upload_needs_the_entity,
    attachment_upload_readers_see_one_version,
    attachment_upload_with_a_wrong_length_changes_nothing,
    deleting_an_entity_removes_its_attachments,
};
pub use self::batch::{
    concurrent_updates_have_one_winner, group_create_is_all_or_none, group_update_is_all_or_none,
};
pub use self::entity::{
    creating_an_existing_id_conflicts, delegation_key_index_follows_updates_and_deletes,
    entity_lifecycle, missing_entity_is_not_found, search_tag_index_follows_updates_and_deletes,
    stale_revision_conflicts_and_changes_nothing,
};
pub use self::fixture::{Fixtures, TempRedbStore, fixtures};
pub use self::owner::{
    inbox_messages_are_filed_per_recipient, key_bag_entries_are_immutable, owner_revisions,
};
#[cfg(feature = "postgres")]
pub use self::postgres::{TEST_POSTGRES_ENV, TempPostgresStore, TestDatabase, run_sql, server_url};
pub use self::recovery::{recovery_data_is_create_only, side_map_entries_are_replaced};

use tessera_sharing::EntityId;

use crate::{Error, attachment_chunk_len};

/// Generates one `#[test]` per conformance case for the backend that `$make` builds afresh for each case.
/// `$make` is an expression whose value dereferences to a [`Store`](crate::Store): `Box::new(MemoryStore::new())`,
/// [`TempRedbStore::new()`], any `Box<dyn Store>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            owner_revisions,
            inbox_messages_are_filed_per_recipient,
            key_bag_entries_are_immutable,
            entity_lifecycle,
            stale_revision_conflicts_and_changes_nothing,
            creating_an_existing_id_conflicts,
            missing_entity_is_not_found,
            delegation_key_index_follows_updates_and_deletes,
            search_tag_index_follows_updates_and_deletes,
            attachment_ranged_reads,
            attachment_replace,
            attachment_upload_is_invisible_until_finished,
            attachment_upload_finish_replaces,
            attachment_upload_with_a_wrong_length_changes_nothing,
            attachment_upload_readers_see_one_version,
            attachment_upload_needs_the_entity,
            deleting_an_entity_removes_its_attachments,
            recovery_data_is_create_only,
            side_map_entries_are_replaced,
            group_create_is_all_or_none,
            group_update_is_all_or_none,
            concurrent_updates_have_one_winner,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store = $make;
                $crate::conformance::$case(&*store);
            }
        )*
    };
}

/// `sealed` cut into the chunks [`Store::put_attachment_chunks`](crate::Store::put_attachment_chunks) takes.
pub fn chunks_of(sealed: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = sealed;
    while !rest.is_empty() {
        let (chunk, tail) =
            rest.split_at(attachment_chunk_len(chunks.len() as u64).min(rest.len()));
        chunks.push(chunk.to_vec());
        rest = tail;
    }
    chunks
}

/// Asserts that `result` is a conflict naming these revisions.
#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(
    result: crate::Result<T>,
    expected: Option<u64>,
    actual: Option<u64>,
) {
    match result {
        Err(Error::Conflict {
            expected: e,
            actual: a,
            ..
        }) => assert_eq!((e, a), (expected, actual), "conflict revisions"),
        other => panic!("expected a conflict ({expected:?} vs {actual:?}), got {other:?}"),
    }
}

fn sorted(ids: impl IntoIterator<Item = EntityId>) -> Vec<EntityId> {
    let mut ids: Vec<_> = ids.into_iter().collect();
    ids.sort();
    ids
}

/// `len` bytes of a recognisable, non-repeating-per-segment pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
