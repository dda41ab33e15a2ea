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
//! | `exchange_data` | exchange data id (16) | `Versioned<ExchangeData>` |
//! | `exchange_data_by_owner` (multimap) | owner id (16) | exchange data id (16), for the delegator and the delegate |
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

use std::ops::Range;
use std::path::{Path, PathBuf};

use ::redb::{
    Database, MultimapTable, MultimapTableDefinition, ReadTransaction, ReadableDatabase,
    ReadableMultimapTable, ReadableTable, Table, TableDefinition, WriteTransaction,
};
use bincode::Options as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_keys::{
    DelegationKey, ExchangeData, ExchangeDataId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId, SearchTag, SideMapEntry};

use crate::error::{Error, Result};
use crate::index::{self, IndexKeys};
use crate::revision;
use crate::store::{
    RecoveryData, Revision, Store, Versioned, check_chunks, chunk_count, chunk_of, chunk_span,
    cut_chunks,
};

/// Layout version of the file, checked on open.
const FORMAT: u64 = 1;
/// Largest encoded record; far above any request body the server accepts.
const MAX_RECORD_LEN: u64 = 64 << 20;

type Bytes = &'static [u8];
type Id = [u8; 16];
type Key32 = [u8; 32];
type OwnerKey48 = [u8; 48];
type ChunkKey = [u8; 40];

const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const OWNERS: TableDefinition<'_, Id, Bytes> = TableDefinition::new("owners");
const EXCHANGE_DATA: TableDefinition<'_, Id, Bytes> = TableDefinition::new("exchange_data");
const EXCHANGE_DATA_BY_OWNER: MultimapTableDefinition<'_, Id, Id> =
    MultimapTableDefinition::new("exchange_data_by_owner");
const KEY_BAG: TableDefinition<'_, OwnerKey48, Bytes> = TableDefinition::new("key_bag");
const ENTITIES: TableDefinition<'_, Id, Bytes> = TableDefinition::new("entities");
const ENTITIES_BY_DELEGATION_KEY: MultimapTableDefinition<'_, Key32, Id> =
    MultimapTableDefinition::new("entities_by_delegation_key");
const ENTITIES_BY_SEARCH_TAG: MultimapTableDefinition<'_, Key32, Id> =
    MultimapTableDefinition::new("entities_by_search_tag");
const ATTACHMENT_LENGTHS: TableDefinition<'_, Key32, u64> =
    TableDefinition::new("attachment_lengths");
const ATTACHMENT_CHUNKS: TableDefinition<'_, ChunkKey, Bytes> =
    TableDefinition::new("attachment_chunks");
const ATTACHMENT_STAGING: TableDefinition<'_, ChunkKey, Bytes> =
    TableDefinition::new("attachment_staging");
const RECOVERY_DATA: TableDefinition<'_, Key32, Bytes> = TableDefinition::new("recovery_data");
const SIDE_MAP: TableDefinition<'_, OwnerKey48, Bytes> = TableDefinition::new("side_map");

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
        let db = Database::create(&path).map_err(backend)?;
        let store = Self { db, path };
        store.write(|txn| {
            // Creating every table now lets read transactions open them without a "no such table" case.
            txn.open_table(OWNERS).map_err(backend)?;
            txn.open_table(EXCHANGE_DATA).map_err(backend)?;
            txn.open_multimap_table(EXCHANGE_DATA_BY_OWNER)
                .map_err(backend)?;
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

    fn put_exchange_data(
        &self,
        data: &ExchangeData,
        expected: Option<Revision>,
    ) -> Result<Revision> {
        self.write(|txn| {
            let mut table = txn.open_table(EXCHANGE_DATA).map_err(backend)?;
            let mut by_owner = txn
                .open_multimap_table(EXCHANGE_DATA_BY_OWNER)
                .map_err(backend)?;
            let id = data.id();
            let key = id.as_bytes();
            let stored: Option<Versioned<ExchangeData>> = get_record(&table, key, "exchange data")?;
            let rev = revision::next("exchange data", stored.as_ref().map(|v| v.rev), expected)?;
            if let Some(stored) = stored {
                for owner in [stored.value.delegator(), stored.value.delegate()] {
                    by_owner.remove(owner.as_bytes(), key).map_err(backend)?;
                }
            }
            for owner in [data.delegator(), data.delegate()] {
                by_owner.insert(owner.as_bytes(), key).map_err(backend)?;
            }
            let bytes = encode("exchange data", &Versioned { rev, value: data })?;
            table.insert(key, bytes.as_slice()).map_err(backend)?;
            Ok(rev)
        })
    }

    fn get_exchange_data(&self, id: ExchangeDataId) -> Result<Option<Versioned<ExchangeData>>> {
        self.get(EXCHANGE_DATA, id.as_bytes(), "exchange data")
    }

    fn exchange_data_of(&self, owner: OwnerId) -> Result<Vec<Versioned<ExchangeData>>> {
        self.read(|txn| {
            let by_owner = txn
                .open_multimap_table(EXCHANGE_DATA_BY_OWNER)
                .map_err(backend)?;
            let table = txn.open_table(EXCHANGE_DATA).map_err(backend)?;
            ids_under(&by_owner, owner.as_bytes())?
                .iter()
                .map(|id| {
                    get_record(&table, id, "exchange data")?
                        .ok_or(Error::Corrupt("exchange data index"))
                })
                .collect()
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

/// The entity table and its two indexes, open in one write transaction.
struct EntityTables<'t> {
    entities: Table<'t, Id, Bytes>,
    by_delegation_key: MultimapTable<'t, Key32, Id>,
    by_search_tag: MultimapTable<'t, Key32, Id>,
}

impl<'t> EntityTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            entities: txn.open_table(ENTITIES).map_err(backend)?,
            by_delegation_key: txn
                .open_multimap_table(ENTITIES_BY_DELEGATION_KEY)
                .map_err(backend)?,
            by_search_tag: txn
                .open_multimap_table(ENTITIES_BY_SEARCH_TAG)
                .map_err(backend)?,
        })
    }

    fn get(&self, id: EntityId) -> Result<Option<EncryptedEntity>> {
        get_record(&self.entities, id.as_bytes(), "entity")
    }

    /// Creates `entity` at revision 1, unless its id is taken (also by an earlier entity of the same batch).
    fn create(&mut self, entity: &EncryptedEntity) -> Result<Revision> {
        if let Some(stored) = self.get(entity.id)? {
            return Err(revision::exists("entity", stored.rev));
        }
        self.put(entity, 1, None)?;
        Ok(1)
    }

    /// Replaces revision `expected` of `entity`.
    fn update(&mut self, entity: &EncryptedEntity, expected: Revision) -> Result<Revision> {
        let stored = self.get(entity.id)?;
        let rev = revision::next_entity(stored.as_ref().map(|e| e.rev), expected)?;
        self.put(entity, rev, stored.as_ref())?;
        Ok(rev)
    }

    /// Stores `entity` at `rev` in place of `before`, moving its index entries.
    fn put(
        &mut self,
        entity: &EncryptedEntity,
        rev: Revision,
        before: Option<&EncryptedEntity>,
    ) -> Result<()> {
        let mut entity = entity.clone();
        entity.rev = rev;
        let bytes = encode("entity", &entity)?;
        let (removed, added) = index::changes(before, Some(&entity));
        self.unindex(entity.id, &removed)?;
        let id = entity.id.as_bytes();
        for key in &added.delegation_keys {
            self.by_delegation_key
                .insert(key.as_bytes(), id)
                .map_err(backend)?;
        }
        for tag in &added.search_tags {
            self.by_search_tag
                .insert(tag.as_bytes(), id)
                .map_err(backend)?;
        }
        self.entities
            .insert(id, bytes.as_slice())
            .map_err(backend)?;
        Ok(())
    }

    fn unindex(&mut self, id: EntityId, keys: &IndexKeys) -> Result<()> {
        for key in &keys.delegation_keys {
            self.by_delegation_key
                .remove(key.as_bytes(), id.as_bytes())
                .map_err(backend)?;
        }
        for tag in &keys.search_tags {
            self.by_search_tag
                .remove(tag.as_bytes(), id.as_bytes())
                .map_err(backend)?;
        }
        Ok(())
    }
}

/// Fails with [`Error::NotFound`] unless entity `id` exists.
fn entity_exists(txn: &WriteTransaction, id: EntityId) -> Result<()> {
    let entities = txn.open_table(ENTITIES).map_err(backend)?;
    match entities.get(id.as_bytes()).map_err(backend)? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound("entity")),
    }
}

/// The attachment tables, open in one write transaction.
struct AttachmentTables<'t> {
    lengths: Table<'t, Key32, u64>,
    chunks: Table<'t, ChunkKey, Bytes>,
    staging: Table<'t, ChunkKey, Bytes>,
}

impl<'t> AttachmentTables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            lengths: txn.open_table(ATTACHMENT_LENGTHS).map_err(backend)?,
            chunks: txn.open_table(ATTACHMENT_CHUNKS).map_err(backend)?,
            staging: txn.open_table(ATTACHMENT_STAGING).map_err(backend)?,
        })
    }

    /// Stages `chunks` (already checked) at `first_chunk..` of an upload.
    fn stage<C: AsRef<[u8]>>(
        &mut self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[C],
    ) -> Result<()> {
        for (chunk, index) in chunks.iter().zip(first_chunk..) {
            self.staging
                .insert(chunk_key(entity, attachment, index), chunk.as_ref())
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Indexes of the staged chunks of an upload, in ascending order.
    fn staged(&self, entity: EntityId, attachment: AttachmentId) -> Result<Vec<u64>> {
        let first = chunk_key(entity, attachment, 0);
        let last = chunk_key(entity, attachment, u64::MAX);
        let mut indexes = Vec::new();
        for row in self.staging.range(first..=last).map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let index: [u8; 8] = concat(&[key.value().get(32..).unwrap_or_default()]);
            indexes.push(u64::from_be_bytes(index));
        }
        Ok(indexes)
    }

    /// Makes the staged upload the content of the attachment, `len` bytes long; nothing stays staged. The caller
    /// aborts the transaction on an error.
    fn finish(&mut self, entity: EntityId, attachment: AttachmentId, len: u64) -> Result<()> {
        let key = attachment_key(entity, attachment);
        let previous = self.lengths.get(&key).map_err(backend)?.map(|v| v.value());
        let count = chunk_count(len);
        let mut moved = 0u64;
        for index in self.staged(entity, attachment)? {
            let chunk = chunk_key(entity, attachment, index);
            let staged = self
                .staging
                .remove(chunk)
                .map_err(backend)?
                .ok_or(Error::Corrupt("attachment staging"))?;
            if index >= count {
                continue;
            }
            let span = chunk_span(index, len);
            let bytes = staged.value();
            if bytes.len() as u64 != span.end - span.start {
                return Err(Error::Invalid("attachment upload"));
            }
            self.chunks.insert(chunk, bytes).map_err(backend)?;
            moved += 1;
        }
        // Indexes are distinct and below `count`, so `count` of them are exactly the chunks 0..count.
        if moved != count {
            return Err(Error::Invalid("attachment upload"));
        }
        for index in count..previous.map_or(0, chunk_count) {
            self.chunks
                .remove(chunk_key(entity, attachment, index))
                .map_err(backend)?;
        }
        self.lengths.insert(&key, len).map_err(backend)?;
        Ok(())
    }

    /// Removes the staged chunks of an upload.
    fn discard(&mut self, entity: EntityId, attachment: AttachmentId) -> Result<()> {
        for index in self.staged(entity, attachment)? {
            self.staging
                .remove(chunk_key(entity, attachment, index))
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Removes every attachment of `entity`, and its unfinished uploads.
    fn remove_all_of(&mut self, entity: EntityId) -> Result<()> {
        let first: Key32 = concat(&[entity.as_bytes(), &[0; 16]]);
        let last: Key32 = concat(&[entity.as_bytes(), &[0xff; 16]]);
        let mut found = Vec::new();
        for row in self.lengths.range(first..=last).map_err(backend)? {
            let (key, len) = row.map_err(backend)?;
            found.push((key.value(), len.value()));
        }
        for (key, len) in found {
            for index in 0..chunk_count(len) {
                let chunk: ChunkKey = concat(&[&key, &index.to_be_bytes()]);
                self.chunks.remove(chunk).map_err(backend)?;
            }
            self.lengths.remove(&key).map_err(backend)?;
        }
        let first: ChunkKey = concat(&[entity.as_bytes(), &[0; 24]]);
        let last: ChunkKey = concat(&[entity.as_bytes(), &[0xff; 24]]);
        let mut staged = Vec::new();
        for row in self.staging.range(first..=last).map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            staged.push(key.value());
        }
        for key in staged {
            self.staging.remove(key).map_err(backend)?;
        }
        Ok(())
    }
}

/// Bytes `range` (clamped to `len`) of an attachment of length `len`, read from the chunks it overlaps.
fn read_range(
    chunks: &impl ReadableTable<ChunkKey, Bytes>,
    entity: EntityId,
    attachment: AttachmentId,
    len: u64,
    range: Range<u64>,
) -> Result<Vec<u8>> {
    let start = range.start.min(len);
    let end = range.end.clamp(start, len);
    let mut out = Vec::with_capacity(to_usize(end - start).unwrap_or(0));
    if start == end {
        return Ok(out);
    }
    for index in chunk_of(start)..=chunk_of(end - 1) {
        let span = chunk_span(index, len);
        let chunk = chunks
            .get(chunk_key(entity, attachment, index))
            .map_err(backend)?
            .ok_or(Error::Corrupt("attachment chunk"))?;
        let bytes = chunk.value();
        if bytes.len() as u64 != span.end - span.start {
            return Err(Error::Corrupt("attachment chunk"));
        }
        // The part of this chunk inside the range, relative to the chunk's start.
        let from = start.max(span.start) - span.start;
        let to = end.min(span.end) - span.start;
        let part = to_usize(from)
            .zip(to_usize(to))
            .and_then(|(from, to)| bytes.get(from..to))
            .ok_or(Error::Corrupt("attachment chunk"))?;
        out.extend_from_slice(part);
    }
    Ok(out)
}

fn to_usize(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

fn attachment_key(entity: EntityId, attachment: AttachmentId) -> Key32 {
    concat(&[entity.as_bytes(), attachment.as_bytes()])
}

fn chunk_key(entity: EntityId, attachment: AttachmentId, index: u64) -> ChunkKey {
    concat(&[
        entity.as_bytes(),
        attachment.as_bytes(),
        &index.to_be_bytes(),
    ])
}

/// The concatenation of `parts`, which callers size to exactly `N` bytes (checked by a unit test).
fn concat<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    for (slot, byte) in out.iter_mut().zip(parts.iter().copied().flatten()) {
        *slot = *byte;
    }
    out
}

/// Reads and decodes the record under `key`.
fn get_record<const N: usize, T: DeserializeOwned>(
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
fn ids_under<const N: usize>(
    table: &impl ReadableMultimapTable<[u8; N], Id>,
    key: &[u8; N],
) -> Result<Vec<Id>> {
    table
        .get(key)
        .map_err(backend)?
        .map(|id| id.map(|id| id.value()).map_err(backend))
        .collect()
}

fn options() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
        .with_limit(MAX_RECORD_LEN)
        .reject_trailing_bytes()
}

fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    options()
        .serialize(value)
        .map_err(|source| Error::Backend { what, source })
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    options()
        .deserialize(bytes)
        .map_err(|_| Error::Corrupt(what))
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Backend {
        what: "redb",
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use tessera_primitives::stream::{ENCRYPTED_SEGMENT_LEN, HEADER_LEN};

    use super::*;

    const H: u64 = HEADER_LEN as u64;
    const S: u64 = ENCRYPTED_SEGMENT_LEN as u64;

    #[test]
    fn chunks_follow_the_stream_segments() {
        assert_eq!((H, S), (9, 65_552));
        assert_eq!(chunk_of(0), 0);
        assert_eq!(chunk_of(H - 1), 0);
        assert_eq!(chunk_of(H), 1);
        assert_eq!(chunk_of(H + S - 1), 1);
        assert_eq!(chunk_of(H + S), 2);
        assert_eq!(chunk_span(0, 1_000_000), 0..H);
        assert_eq!(chunk_span(2, 1_000_000), H + S..H + 2 * S);
        assert_eq!(chunk_span(2, H + S + 10), H + S..H + S + 10);
        for (len, count) in [
            (0, 0),
            (1, 1),
            (H, 1),
            (H + 1, 2),
            (H + S, 2),
            (H + S + 1, 3),
        ] {
            assert_eq!(chunk_count(len), count, "{len}");
        }
    }

    /// A store in a temporary directory, with the directory.
    fn temp_store() -> (RedbStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("tessera.redb")).unwrap();
        (store, dir)
    }

    fn rows(store: &RedbStore, table: TableDefinition<'_, ChunkKey, Bytes>) -> u64 {
        store
            .read(|txn| {
                let chunks = txn.open_table(table).map_err(backend)?;
                ::redb::ReadableTableMetadata::len(&chunks).map_err(backend)
            })
            .unwrap()
    }

    fn chunk_rows(store: &RedbStore) -> u64 {
        rows(store, ATTACHMENT_CHUNKS)
    }

    fn staged_rows(store: &RedbStore) -> u64 {
        rows(store, ATTACHMENT_STAGING)
    }

    /// Stores `sealed` as `put_attachment` does, without an entity.
    fn put(store: &RedbStore, entity: EntityId, attachment: AttachmentId, sealed: &[u8]) {
        store
            .write(|txn| {
                let mut tables = AttachmentTables::open(txn)?;
                tables.stage(entity, attachment, 0, &cut_chunks(sealed))?;
                tables.finish(entity, attachment, sealed.len() as u64)
            })
            .unwrap();
    }

    /// Staged chunks are not visible through the trait either: an unfinished upload, a finish that leaves chunks
    /// past the length, a refused finish and a deletion must leave no staged rows behind.
    #[test]
    fn staged_chunks_are_moved_or_removed() {
        let (store, _dir) = temp_store();
        let (entity, attachment) = (
            EntityId::from_bytes([1; 16]),
            AttachmentId::from_bytes([2; 16]),
        );
        let long = vec![0xcd; (H + 3 * S + 1) as usize];
        let chunks = cut_chunks(&long);
        let stage = |first: u64, chunks: &[&[u8]]| {
            store
                .write(|txn| AttachmentTables::open(txn)?.stage(entity, attachment, first, chunks))
                .unwrap();
        };
        let finish = |len: u64| {
            store.write(|txn| AttachmentTables::open(txn)?.finish(entity, attachment, len))
        };
        stage(0, &chunks);
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (0, 5));
        // Finishing with fewer bytes than staged: the chunks past the end are dropped, the last one must fit.
        assert!(matches!(finish(H + 5), Err(Error::Invalid(_))));
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (0, 5));
        finish(H + 2 * S).unwrap();
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (3, 0));
        // A missing chunk is refused and changes nothing.
        stage(1, &chunks[1..]);
        assert!(matches!(finish(long.len() as u64), Err(Error::Invalid(_))));
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (3, 4));
        stage(0, &chunks[..1]);
        finish(long.len() as u64).unwrap();
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (5, 0));
        stage(2, &[&long[..10]]);
        store
            .write(|txn| AttachmentTables::open(txn)?.discard(entity, attachment))
            .unwrap();
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (5, 0));
        stage(0, &chunks);
        store
            .write(|txn| AttachmentTables::open(txn)?.remove_all_of(entity))
            .unwrap();
        assert_eq!((chunk_rows(&store), staged_rows(&store)), (0, 0));
    }

    /// Chunks are not visible through the trait once the length shrinks, so only a row count shows a leak.
    #[test]
    fn shorter_content_and_deletion_leave_no_chunk_rows() {
        let (store, _dir) = temp_store();
        let (entity, attachment) = (
            EntityId::from_bytes([1; 16]),
            AttachmentId::from_bytes([2; 16]),
        );
        let long = vec![0xab; (H + 3 * S + 1) as usize];
        put(&store, entity, attachment, &long);
        assert_eq!(chunk_rows(&store), 5);
        put(&store, entity, attachment, &long[..(H + 5) as usize]);
        assert_eq!(chunk_rows(&store), 2);
        put(&store, entity, AttachmentId::from_bytes([3; 16]), &long);
        assert_eq!(chunk_rows(&store), 7);
        store
            .write(|txn| AttachmentTables::open(txn)?.remove_all_of(entity))
            .unwrap();
        assert_eq!(chunk_rows(&store), 0);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Any range of any stream reads what slicing the stream would, clamped to its length.
        #[test]
        fn ranged_reads_match_slicing(
            len in 0..(H + 3 * S) as usize,
            start in 0..(H + 4 * S),
            width in proptest::prop_oneof![0..64u64, 0..(2 * S), proptest::prelude::Just(u64::MAX)],
        ) {
            let (store, _dir) = temp_store();
            let (entity, attachment) = (EntityId::from_bytes([1; 16]), AttachmentId::from_bytes([2; 16]));
            let sealed: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            put(&store, entity, attachment, &sealed);
            let end = start.saturating_add(width);
            let read = store
                .read(|txn| {
                    let chunks = txn.open_table(ATTACHMENT_CHUNKS).map_err(backend)?;
                    read_range(&chunks, entity, attachment, len as u64, start..end)
                })
                .unwrap();
            let clamp = |offset: u64| offset.min(len as u64) as usize;
            proptest::prop_assert_eq!(read, sealed[clamp(start)..clamp(end)].to_vec());
        }
    }

    #[test]
    fn undecodable_values_and_unknown_layouts_are_corrupt() {
        let (store, dir) = temp_store();
        let id = EntityId::from_bytes([4; 16]);
        store
            .write(|txn| {
                let mut entities = txn.open_table(ENTITIES).map_err(backend)?;
                entities
                    .insert(id.as_bytes(), &[1u8, 2, 3][..])
                    .map_err(backend)?;
                Ok(())
            })
            .unwrap();
        assert!(matches!(
            store.get_entity(id),
            Err(Error::Corrupt("entity"))
        ));
        assert!(matches!(
            store.update_entity(&dummy_entity(id), 1),
            Err(Error::Corrupt("entity"))
        ));

        store
            .write(|txn| {
                let mut meta = txn.open_table(META).map_err(backend)?;
                meta.insert("format", FORMAT + 1).map_err(backend)?;
                Ok(())
            })
            .unwrap();
        drop(store);
        assert!(matches!(
            RedbStore::open(dir.path().join("tessera.redb")),
            Err(Error::Corrupt("store layout version"))
        ));
    }

    fn dummy_entity(id: EntityId) -> EncryptedEntity {
        EncryptedEntity {
            version: tessera_keys::FormatVersion::V1,
            id,
            entity_type: tessera_keys::EntityType::new("Note").unwrap(),
            rev: 0,
            public: serde_json::Map::new(),
            encrypted_self: tessera_sharing::Sealed(vec![0; 40]),
            key_commitment: [0; 32],
            secret_foreign_keys: Default::default(),
            security_metadata: Default::default(),
            attachments: Vec::new(),
        }
    }

    #[test]
    fn keys_are_fully_written() {
        let entity = EntityId::from_bytes([1; 16]);
        let attachment = AttachmentId::from_bytes([2; 16]);
        let key = chunk_key(entity, attachment, 0x0304);
        assert_eq!(key[..16], [1; 16]);
        assert_eq!(key[16..32], [2; 16]);
        assert_eq!(key[32..], [0, 0, 0, 0, 0, 0, 3, 4]);
        let bag: OwnerKey48 = concat(&[&[5; 16], &[6; 32]]);
        assert_eq!((bag[15], bag[16], bag[47]), (5, 6, 6));
    }
}
