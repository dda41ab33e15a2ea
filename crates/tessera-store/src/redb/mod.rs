//! The redb backend, the embedded default: one file, ACID transactions, durable once a write returns.
//!
//! # Durability
//! Every write is one redb write transaction committed with redb's default durability
//! ([`::redb::Durability::Immediate`]): `commit` returns after the data and the new root are on disk (fsync),
//! so an acknowledged write survives `kill -9` and power loss. A failed write aborts its transaction and
//! changes nothing; revision checks read the stored revision inside the same write transaction, so two
//! writers cannot both win. [`Store::create_entities`] and [`Store::update_entities`] commit a whole batch
//! in one transaction (one fsync for the batch: group commit).
//!
//! # Encoding
//! Values are bincode 1 through `bincode::DefaultOptions::new().with_limit(64 MiB).reject_trailing_bytes()`,
//! that is with **varint** integer encoding, the same options as the wire (DESIGN.md §4), so a stored record
//! and a record in a request body are the same bytes. A value that does not decode (damage, or a record of an
//! unknown format version) is [`Error::Corrupt`] naming the record. Keys are fixed-size byte arrays of the ids,
//! with integers big-endian so that keys sort in numeric order.
//!
//! # Tables
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `"format"` | layout version of this file, `1` |
//! | `owners` | owner id (16) | `Versioned<Owner>` |
//! | `inbox` | recipient owner id (16) ‖ message id (16) | `InboxMessage` (sealed exchange data; no sender) |
//! | `key_bag` | owner id (16) ‖ entry id (32) | `KeyBagEntry` |
//! | `entities` | entity id (16) | `EncryptedEntity` with its `rev` field set to the stored revision |
//! | `entities_by_delegation_key` (multimap) | delegation key (32) | entity id (16) |
//! | `entities_by_search_tag` (multimap) | search tag (32) | entity id (16) |
//! | `attachment_lengths` | entity id (16) ‖ attachment id (16) | length of the sealed stream (`u64`) |
//! | `attachment_chunks` | entity id (16) ‖ attachment id (16) ‖ chunk index (`u64`, big-endian) | bytes of the sealed stream |
//! | `attachment_staging` | entity id (16) ‖ attachment id (16) ‖ chunk index (`u64`, big-endian) | bytes of an unfinished upload |
//! | `recovery_data` | recovery data id (32) | `RecoveryData` |
//! | `side_map` | owner id (16) ‖ delegation key (32) | `SideMapEntry` |
//!
//! The index tables follow every create, update and delete of an entity in the same transaction: an update
//! removes the entries of the delegation keys and search tags the new version no longer has.
//!
//! Attachment chunks follow the layout of the streaming AEAD (`tessera_primitives::stream`): chunk 0 is the
//! 9-byte stream header, chunk `i ≥ 1` is encrypted segment `i - 1` (64 KiB + 16 bytes, the last one shorter).
//! A ranged read of one segment therefore reads one row, and a stream of any other shape is still stored and
//! read back byte for byte.
//!
//! An upload ([`Store::put_attachment_chunks`]) stages its chunks in `attachment_staging`, which no read looks at;
//! [`Store::finish_attachment`] moves them to `attachment_chunks` and sets the length in one transaction, so a
//! reader sees the previous content or the new one, never a mix. The `attachment_staging` table appeared after
//! layout version 1 was first written; opening an older file creates it, so the layout version did not change.

mod attachment;
mod entity;
mod table;
#[cfg(test)]
mod tests;

use std::ops::Range;
use std::path::{Path, PathBuf};

use ::redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use serde::de::DeserializeOwned;
use tessera_keys::{
    DelegationKey, InboxMessage, InboxMessageId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId, SearchTag, SideMapEntry};

use self::attachment::{AttachmentTables, attachment_key, read_range};
use self::entity::{EntityTables, entity_exists};
use self::table::{
    ATTACHMENT_CHUNKS, ATTACHMENT_LENGTHS, Bytes, ENTITIES, ENTITIES_BY_DELEGATION_KEY,
    ENTITIES_BY_SEARCH_TAG, FORMAT, INBOX, KEY_BAG, Key32, META, OWNERS, OwnerKey48, RECOVERY_DATA,
    SIDE_MAP, backend, concat, decode, encode, get_record, ids_under,
};
use crate::error::{Error, Result};
use crate::index::IndexKeys;
use crate::revision;
use crate::store::{RecoveryData, Revision, Store, Versioned, check_chunks, cut_chunks};

/// What [`RedbStore::compact`] did: the database file's size before and after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compaction {
    /// Bytes before compaction.
    pub before_bytes: u64,
    /// Bytes after compaction.
    pub after_bytes: u64,
}

/// A [`Store`] in one redb file (the server uses `<data dir>/tessera.redb`).
///
/// Every write is one transaction committed durably before the method returns: an acknowledged write survives a
/// crash of the process or of the machine. [`Store::create_entities`] and [`Store::update_entities`] commit their
/// whole batch at once, which is how a server amortises the flush over many requests. Values are bincode 1 with
/// the wire's options (varint integers); an attachment is stored one encrypted segment per row, so a ranged read
/// touches only the rows it needs.
///
/// Opening the same file twice (in this process or another) fails until the first store is dropped. After a
/// failed commit (an I/O error) redb refuses further writes until the store is opened again.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
}

impl RedbStore {
    /// Opens the store in the file at `path`, creating the file and its tables if needed.
    ///
    /// # Errors
    /// [`Error::Backend`] if the file cannot be created or opened (or is held by another store),
    /// [`Error::Corrupt`] if it has a layout version this build does not read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_owned();
        let db = Database::create(&path).map_err(|error| match error {
            ::redb::DatabaseError::DatabaseAlreadyOpen => Error::Backend {
                what: "the database file is locked by another process (is another server running on it?)",
                source: Box::new(error),
            },
            other => backend(other),
        })?;
        let store = Self { db, path };
        store.write(|txn| {
            // Creating every table now lets read transactions open them without a "no such table" case.
            txn.open_table(OWNERS).map_err(backend)?;
            txn.open_table(INBOX).map_err(backend)?;
            txn.open_table(KEY_BAG).map_err(backend)?;
            EntityTables::open(txn)?;
            AttachmentTables::open(txn)?;
            txn.open_table(RECOVERY_DATA).map_err(backend)?;
            txn.open_table(SIDE_MAP).map_err(backend)?;
            let mut meta = txn.open_table(META).map_err(backend)?;
            let format = meta.get("format").map_err(backend)?.map(|v| v.value());
            match format {
                None => {
                    meta.insert("format", FORMAT).map_err(backend)?;
                    Ok(())
                }
                Some(FORMAT) => Ok(()),
                Some(_) => Err(Error::Corrupt("store layout version")),
            }
        })?;
        Ok(store)
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the space of deleted and replaced values back to the file system: redb's compaction, repeated until
    /// it finds nothing more to move (at most 64 rounds). Needs the store to itself (`&mut`): run it with the server
    /// stopped (`tessera admin compact`). Every value stays as it was; only free pages go.
    ///
    /// # Errors
    /// [`Error::Backend`] if a transaction is still open or the file cannot be rewritten (the store stays valid:
    /// redb compacts in committed steps).
    pub fn compact(&mut self) -> Result<Compaction> {
        let size = |path: &Path| {
            std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|error| Error::Backend {
                    what: "cannot read the database file's size",
                    source: Box::new(error),
                })
        };
        let before = size(&self.path)?;
        for _ in 0..64 {
            if !self.db.compact().map_err(backend)? {
                break;
            }
        }
        Ok(Compaction {
            before_bytes: before,
            after_bytes: size(&self.path)?,
        })
    }

    /// Runs `op` in one write transaction and commits it durably if `op` succeeds; aborts it otherwise, so that a
    /// failed write changes nothing.
    fn write<T>(&self, op: impl FnOnce(&WriteTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_write().map_err(backend)?;
        match op(&txn) {
            Ok(value) => {
                txn.commit().map_err(backend)?;
                Ok(value)
            }
            Err(error) => {
                // The operation's error is the one to report; a failed rollback leaves nothing committed either.
                let _ = txn.abort();
                Err(error)
            }
        }
    }

    /// Runs `op` on a consistent snapshot.
    fn read<T>(&self, op: impl FnOnce(&ReadTransaction) -> Result<T>) -> Result<T> {
        let txn = self.db.begin_read().map_err(backend)?;
        op(&txn)
    }

    /// Reads one encoded record.
    fn get<const N: usize, T: DeserializeOwned>(
        &self,
        table: TableDefinition<'_, [u8; N], Bytes>,
        key: &[u8; N],
        what: &'static str,
    ) -> Result<Option<T>> {
        self.read(|txn| get_record(&txn.open_table(table).map_err(backend)?, key, what))
    }
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store for RedbStore {
    fn put_owner(&self, owner: &Owner, expected: Option<Revision>) -> Result<Revision> {
        self.write(|txn| {
            let mut table = txn.open_table(OWNERS).map_err(backend)?;
            let key = owner.id.as_bytes();
            let stored: Option<Versioned<Owner>> = get_record(&table, key, "owner")?;
            let rev = revision::next("owner", stored.map(|v| v.rev), expected)?;
            let bytes = encode("owner", &Versioned { rev, value: owner })?;
            table.insert(key, bytes.as_slice()).map_err(backend)?;
            Ok(rev)
        })
    }

    fn get_owner(&self, id: OwnerId) -> Result<Option<Versioned<Owner>>> {
        self.get(OWNERS, id.as_bytes(), "owner")
    }

    fn put_inbox_message(&self, recipient: OwnerId, message: &InboxMessage) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(INBOX).map_err(backend)?;
            let key = concat(&[recipient.as_bytes(), message.id.as_bytes()]);
            match get_record::<32, InboxMessage>(&table, &key, "inbox message")? {
                Some(stored) if stored == *message => Ok(()),
                Some(_) => Err(revision::exists("inbox message", 1)),
                None => {
                    let bytes = encode("inbox message", message)?;
                    table.insert(key, bytes.as_slice()).map_err(backend)?;
                    Ok(())
                }
            }
        })
    }

    fn inbox(&self, owner: OwnerId) -> Result<Vec<InboxMessage>> {
        self.read(|txn| {
            let table = txn.open_table(INBOX).map_err(backend)?;
            let mut messages = Vec::new();
            for row in table.range(inbox_range(owner)).map_err(backend)? {
                let (_, value) = row.map_err(backend)?;
                messages.push(decode("inbox message", value.value())?);
            }
            Ok(messages)
        })
    }

    fn inbox_len(&self, owner: OwnerId) -> Result<u64> {
        self.read(|txn| {
            let table = txn.open_table(INBOX).map_err(backend)?;
            let mut count = 0u64;
            for row in table.range(inbox_range(owner)).map_err(backend)? {
                row.map_err(backend)?;
                count = count.saturating_add(1);
            }
            Ok(count)
        })
    }

    fn delete_inbox_message(&self, owner: OwnerId, id: InboxMessageId) -> Result<bool> {
        self.write(|txn| {
            let mut table = txn.open_table(INBOX).map_err(backend)?;
            let key: Key32 = concat(&[owner.as_bytes(), id.as_bytes()]);
            Ok(table.remove(key).map_err(backend)?.is_some())
        })
    }

    fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(KEY_BAG).map_err(backend)?;
            let key = concat(&[entry.owner.as_bytes(), entry.id.as_bytes()]);
            match get_record::<48, KeyBagEntry>(&table, &key, "key-bag entry")? {
                Some(stored) if stored == *entry => Ok(()),
                Some(_) => Err(revision::exists("key-bag entry", 1)),
                None => {
                    let bytes = encode("key-bag entry", entry)?;
                    table.insert(key, bytes.as_slice()).map_err(backend)?;
                    Ok(())
                }
            }
        })
    }

    fn swap_key_bag_entry(
        &self,
        entry: &KeyBagEntry,
        previous: Option<&KeyBagEntry>,
    ) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(KEY_BAG).map_err(backend)?;
            let key = concat(&[entry.owner.as_bytes(), entry.id.as_bytes()]);
            let stored = get_record::<48, KeyBagEntry>(&table, &key, "key-bag entry")?;
            if stored.as_ref() != previous {
                return Err(revision::exists("key-bag entry", 1));
            }
            let bytes = encode("key-bag entry", entry)?;
            table.insert(key, bytes.as_slice()).map_err(backend)?;
            Ok(())
        })
    }

    fn key_bag(&self, owner: OwnerId) -> Result<Vec<KeyBagEntry>> {
        self.read(|txn| {
            let table = txn.open_table(KEY_BAG).map_err(backend)?;
            let first: OwnerKey48 = concat(&[owner.as_bytes(), &[0; 32]]);
            let last: OwnerKey48 = concat(&[owner.as_bytes(), &[0xff; 32]]);
            let mut entries = Vec::new();
            for row in table.range(first..=last).map_err(backend)? {
                let (_, value) = row.map_err(backend)?;
                entries.push(decode("key-bag entry", value.value())?);
            }
            Ok(entries)
        })
    }

    fn key_bag_entry(&self, owner: OwnerId, id: KeyBagEntryId) -> Result<Option<KeyBagEntry>> {
        let key = concat(&[owner.as_bytes(), id.as_bytes()]);
        self.get(KEY_BAG, &key, "key-bag entry")
    }

    fn create_entity(&self, entity: &EncryptedEntity) -> Result<Revision> {
        self.write(|txn| EntityTables::open(txn)?.create(entity))
    }

    fn update_entity(&self, entity: &EncryptedEntity, expected: Revision) -> Result<Revision> {
        self.write(|txn| EntityTables::open(txn)?.update(entity, expected))
    }

    fn create_entities(&self, entities: &[EncryptedEntity]) -> Result<Vec<Revision>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|txn| {
            let mut tables = EntityTables::open(txn)?;
            entities
                .iter()
                .map(|entity| tables.create(entity))
                .collect()
        })
    }

    fn update_entities(&self, entities: &[(EncryptedEntity, Revision)]) -> Result<Vec<Revision>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        self.write(|txn| {
            let mut tables = EntityTables::open(txn)?;
            entities
                .iter()
                .map(|(entity, expected)| tables.update(entity, *expected))
                .collect()
        })
    }

    fn get_entity(&self, id: EntityId) -> Result<Option<EncryptedEntity>> {
        self.get(ENTITIES, id.as_bytes(), "entity")
    }

    fn delete_entity(&self, id: EntityId, expected: Revision) -> Result<()> {
        self.write(|txn| {
            let mut tables = EntityTables::open(txn)?;
            let stored = tables.get(id)?;
            revision::next_entity(stored.as_ref().map(|e| e.rev), expected)?;
            tables.unindex(id, &IndexKeys::of(stored.as_ref()))?;
            tables.entities.remove(id.as_bytes()).map_err(backend)?;
            AttachmentTables::open(txn)?.remove_all_of(id)
        })
    }

    fn entities_by_delegation_key(&self, key: &DelegationKey) -> Result<Vec<EntityId>> {
        self.read(|txn| {
            let table = txn
                .open_multimap_table(ENTITIES_BY_DELEGATION_KEY)
                .map_err(backend)?;
            Ok(ids_under(&table, key.as_bytes())?
                .into_iter()
                .map(EntityId::from_bytes)
                .collect())
        })
    }

    fn entities_by_search_tag(&self, tag: &SearchTag) -> Result<Vec<EntityId>> {
        self.read(|txn| {
            let table = txn
                .open_multimap_table(ENTITIES_BY_SEARCH_TAG)
                .map_err(backend)?;
            Ok(ids_under(&table, tag.as_bytes())?
                .into_iter()
                .map(EntityId::from_bytes)
                .collect())
        })
    }

    fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: &[u8],
    ) -> Result<()> {
        let chunks = cut_chunks(sealed);
        check_chunks(0, &chunks)?;
        self.write(|txn| {
            entity_exists(txn, entity)?;
            let mut tables = AttachmentTables::open(txn)?;
            tables.discard(entity, attachment)?;
            tables.stage(entity, attachment, 0, &chunks)?;
            tables.finish(entity, attachment, sealed.len() as u64)
        })
    }

    fn put_attachment_chunks(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[Vec<u8>],
    ) -> Result<()> {
        check_chunks(first_chunk, chunks)?;
        self.write(|txn| {
            entity_exists(txn, entity)?;
            AttachmentTables::open(txn)?.stage(entity, attachment, first_chunk, chunks)
        })
    }

    fn finish_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        len: u64,
    ) -> Result<()> {
        self.write(|txn| {
            entity_exists(txn, entity)?;
            AttachmentTables::open(txn)?.finish(entity, attachment, len)
        })
    }

    fn abort_attachment(&self, entity: EntityId, attachment: AttachmentId) -> Result<()> {
        self.write(|txn| AttachmentTables::open(txn)?.discard(entity, attachment))
    }

    fn attachment_len(&self, entity: EntityId, attachment: AttachmentId) -> Result<Option<u64>> {
        self.read(|txn| {
            let lengths = txn.open_table(ATTACHMENT_LENGTHS).map_err(backend)?;
            let key = attachment_key(entity, attachment);
            Ok(lengths.get(&key).map_err(backend)?.map(|v| v.value()))
        })
    }

    fn read_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>> {
        self.read(|txn| {
            let lengths = txn.open_table(ATTACHMENT_LENGTHS).map_err(backend)?;
            let chunks = txn.open_table(ATTACHMENT_CHUNKS).map_err(backend)?;
            let key = attachment_key(entity, attachment);
            let Some(len) = lengths.get(&key).map_err(backend)?.map(|v| v.value()) else {
                return Ok(None);
            };
            read_range(&chunks, entity, attachment, len, range).map(Some)
        })
    }

    fn put_recovery_data(&self, data: &RecoveryData) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(RECOVERY_DATA).map_err(backend)?;
            if table.get(&data.id).map_err(backend)?.is_some() {
                return Err(revision::exists("recovery data", 1));
            }
            let bytes = encode("recovery data", data)?;
            table.insert(&data.id, bytes.as_slice()).map_err(backend)?;
            Ok(())
        })
    }

    fn get_recovery_data(&self, id: &[u8; 32]) -> Result<Option<RecoveryData>> {
        self.get(RECOVERY_DATA, id, "recovery data")
    }

    fn put_side_map_entry(&self, entry: &SideMapEntry) -> Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(SIDE_MAP).map_err(backend)?;
            let key: OwnerKey48 =
                concat(&[entry.owner.as_bytes(), entry.delegation_key.as_bytes()]);
            let bytes = encode("side-map entry", entry)?;
            table.insert(key, bytes.as_slice()).map_err(backend)?;
            Ok(())
        })
    }

    fn side_map_entry(&self, owner: OwnerId, key: &DelegationKey) -> Result<Option<SideMapEntry>> {
        let key = concat(&[owner.as_bytes(), key.as_bytes()]);
        self.get(SIDE_MAP, &key, "side-map entry")
    }
}

/// Every key of `owner`'s inbox.
fn inbox_range(owner: OwnerId) -> std::ops::RangeInclusive<Key32> {
    concat(&[owner.as_bytes(), &[0; 16]])..=concat(&[owner.as_bytes(), &[0xff; 16]])
}
