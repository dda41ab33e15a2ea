//! The redb tables of the store (see the table of tables in the module doc) and the codec of their values.

use ::redb::{MultimapTableDefinition, ReadableMultimapTable, ReadableTable, TableDefinition};
use serde::de::DeserializeOwned;

pub(super) use crate::codec::{decode, encode};
use crate::error::{Error, Result};

/// Layout version of the file, checked on open.
pub(super) const FORMAT: u64 = 2;

pub(super) type Bytes = &'static [u8];
pub(super) type Id = [u8; 16];
pub(super) type Key32 = [u8; 32];
pub(super) type OwnerKey48 = [u8; 48];
pub(super) type ChunkKey = [u8; 40];

pub(super) const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
pub(super) const OWNERS: TableDefinition<'_, Id, Bytes> = TableDefinition::new("owners");
pub(super) const INBOX: TableDefinition<'_, Key32, Bytes> = TableDefinition::new("inbox");
pub(super) const KEY_BAG: TableDefinition<'_, OwnerKey48, Bytes> = TableDefinition::new("key_bag");
pub(super) const ENTITIES: TableDefinition<'_, Id, Bytes> = TableDefinition::new("entities");
pub(super) const ENTITIES_BY_DELEGATION_KEY: MultimapTableDefinition<'_, Key32, Id> =
    MultimapTableDefinition::new("entities_by_delegation_key");
pub(super) const ENTITIES_BY_SEARCH_TAG: MultimapTableDefinition<'_, Key32, Id> =
    MultimapTableDefinition::new("entities_by_search_tag");
pub(super) const ATTACHMENT_LENGTHS: TableDefinition<'_, Key32, u64> =
    TableDefinition::new("attachment_lengths");
pub(super) const ATTACHMENT_CHUNKS: TableDefinition<'_, ChunkKey, Bytes> =
    TableDefinition::new("attachment_chunks");
pub(super) const ATTACHMENT_STAGING: TableDefinition<'_, ChunkKey, Bytes> =
    TableDefinition::new("attachment_staging");
pub(super) const RECOVERY_DATA: TableDefinition<'_, Key32, Bytes> =
    TableDefinition::new("recovery_data");
pub(super) const SIDE_MAP: TableDefinition<'_, OwnerKey48, Bytes> =
    TableDefinition::new("side_map");

/// The concatenation of `parts`, which callers size to exactly `N` bytes (checked by a unit test).
pub(super) fn concat<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(parts.iter().copied().flatten()) {
        *slot = *byte;
    }
    out
}

/// Reads and decodes the record under `key`.
pub(super) fn get_record<const N: usize, T: DeserializeOwned>(
    table: &impl ReadableTable<[u8; N], Bytes>,
    key: &[u8; N],
    what: &'static str,
) -> Result<Option<T>> {
    table
        .get(key)
        .map_err(backend)?
        .map(|value| decode(what, value.value()))
        .transpose()
}

/// The ids stored under `key` in an index, in ascending order.
pub(super) fn ids_under<const N: usize>(
    table: &impl ReadableMultimapTable<[u8; N], Id>,
    key: &[u8; N],
) -> Result<Vec<Id>> {
    table
        .get(key)
        .map_err(backend)?
        .map(|id| id.map(|id| id.value()).map_err(backend))
        .collect()
}

pub(super) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend {
        what: "redb",
        source: Box::new(error),
    }
}
