//! The in-memory backend, for tests and demonstrations: every record in maps behind one lock, nothing on disk.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use tessera_keys::{
    DelegationKey, InboxMessage, InboxMessageId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId, SearchTag, SideMapEntry};

use crate::error::{Error, Result};
use crate::index;
use crate::revision;
use crate::store::{
    RecoveryData, Revision, Store, Versioned, check_chunks, chunk_count, chunk_span, cut_chunks,
};

/// A [`Store`] in memory, with the same semantics as the durable backends (revisions, conflicts, indexes,
/// all-or-none batches) but none of their durability: everything is gone when it is dropped.
///
/// One reader–writer lock guards every map, so each method is atomic: a batch checks every revision before it
/// changes anything.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    owners: HashMap<OwnerId, Versioned<Owner>>,
    inbox: BTreeMap<(OwnerId, InboxMessageId), InboxMessage>,
    key_bag: BTreeMap<(OwnerId, KeyBagEntryId), KeyBagEntry>,
    /// Entities with their `rev` field set to the stored revision.
    entities: HashMap<EntityId, EncryptedEntity>,
    by_delegation_key: BTreeMap<DelegationKey, BTreeSet<EntityId>>,
    by_search_tag: BTreeMap<SearchTag, BTreeSet<EntityId>>,
    attachments: BTreeMap<(EntityId, AttachmentId), Vec<u8>>,
    /// Chunks of unfinished uploads, by chunk index.
    staging: BTreeMap<(EntityId, AttachmentId), BTreeMap<u64, Vec<u8>>>,
    recovery: HashMap<[u8; 32], RecoveryData>,
    side_map: BTreeMap<(OwnerId, DelegationKey), SideMapEntry>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Inner>> {
        self.inner.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Inner>> {
        self.inner.write().map_err(|_| poisoned())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

/// A thread panicked while holding the lock, possibly half way through a write: the maps can no longer be trusted.
fn poisoned() -> Error {
    Error::Backend {
        what: "in-memory store",
        source: "a thread panicked while holding the lock".into(),
    }
}

impl Inner {
    /// Stores `entity` at revision `rev` and moves its index entries from the stored version to this one.
    fn put_entity(&mut self, entity: &EncryptedEntity, rev: Revision) {
        let mut entity = entity.clone();
        entity.rev = rev;
        let (removed, added) = index::changes(self.entities.get(&entity.id), Some(&entity));
        self.unindex(entity.id, &removed);
        index_into(
            &mut self.by_delegation_key,
            entity.id,
            &added.delegation_keys,
        );
        index_into(&mut self.by_search_tag, entity.id, &added.search_tags);
        self.entities.insert(entity.id, entity);
    }

    /// Removes entity `id` with its index entries and attachments.
    fn remove_entity(&mut self, id: EntityId) {
        let removed = index::IndexKeys::of(self.entities.get(&id));
        self.unindex(id, &removed);
        self.entities.remove(&id);
        self.attachments.retain(|(entity, _), _| *entity != id);
        self.staging.retain(|(entity, _), _| *entity != id);
    }

    fn unindex(&mut self, id: EntityId, keys: &index::IndexKeys) {
        unindex_from(&mut self.by_delegation_key, id, &keys.delegation_keys);
        unindex_from(&mut self.by_search_tag, id, &keys.search_tags);
    }

    fn entity_rev(&self, id: EntityId) -> Option<Revision> {
        self.entities.get(&id).map(|entity| entity.rev)
    }

    fn entity_exists(&self, id: EntityId) -> Result<()> {
        if self.entities.contains_key(&id) {
            Ok(())
        } else {
            Err(Error::NotFound("entity"))
        }
    }

    /// Stages `chunks` (already checked) at `first_chunk..` of an upload.
    fn stage<C: AsRef<[u8]>>(
        &mut self,
        key: (EntityId, AttachmentId),
        first_chunk: u64,
        chunks: &[C],
    ) {
        let staged = self.staging.entry(key).or_default();
        for (chunk, index) in chunks.iter().zip(first_chunk..) {
            staged.insert(index, chunk.as_ref().to_vec());
        }
    }

    /// Makes the staged upload the content of the attachment, `len` bytes long, or changes nothing.
    fn finish(&mut self, key: (EntityId, AttachmentId), len: u64) -> Result<()> {
        let invalid = || Error::Invalid("attachment upload");
        let mut sealed = Vec::new();
        if let Some(staged) = self.staging.get(&key) {
            for index in 0..chunk_count(len) {
                let span = chunk_span(index, len);
                let chunk = staged.get(&index).ok_or_else(invalid)?;
                if chunk.len() as u64 != span.end - span.start {
                    return Err(invalid());
                }
                sealed.extend_from_slice(chunk);
            }
        }
        if sealed.len() as u64 != len {
            return Err(invalid());
        }
        self.staging.remove(&key);
        self.attachments.insert(key, sealed);
        Ok(())
    }
}

fn index_into<K: Ord + Copy>(
    index: &mut BTreeMap<K, BTreeSet<EntityId>>,
    id: EntityId,
    keys: &BTreeSet<K>,
) {
    for key in keys {
        index.entry(*key).or_default().insert(id);
    }
}

fn unindex_from<K: Ord>(
    index: &mut BTreeMap<K, BTreeSet<EntityId>>,
    id: EntityId,
    keys: &BTreeSet<K>,
) {
    for key in keys {
        if let Some(ids) = index.get_mut(key) {
            ids.remove(&id);
            if ids.is_empty() {
                index.remove(key);
            }
        }
    }
}

fn lookup<K: Ord>(index: &BTreeMap<K, BTreeSet<EntityId>>, key: &K) -> Vec<EntityId> {
    index
        .get(key)
        .map(|ids| ids.iter().copied().collect())
        .unwrap_or_default()
}

impl Store for MemoryStore {
    fn put_owner(&self, owner: &Owner, expected: Option<Revision>) -> Result<Revision> {
        let mut inner = self.write()?;
        let stored = inner.owners.get(&owner.id).map(|v| v.rev);
        let rev = revision::next("owner", stored, expected)?;
        inner.owners.insert(
            owner.id,
            Versioned {
                rev,
                value: owner.clone(),
            },
        );
        Ok(rev)
    }

    fn get_owner(&self, id: OwnerId) -> Result<Option<Versioned<Owner>>> {
        Ok(self.read()?.owners.get(&id).cloned())
    }

    fn put_inbox_message(&self, recipient: OwnerId, message: &InboxMessage) -> Result<()> {
        let mut inner = self.write()?;
        match inner.inbox.get(&(recipient, message.id)) {
            Some(stored) if stored == message => Ok(()),
            Some(_) => Err(revision::exists("inbox message", 1)),
            None => {
                inner.inbox.insert((recipient, message.id), message.clone());
                Ok(())
            }
        }
    }

    fn inbox(&self, owner: OwnerId) -> Result<Vec<InboxMessage>> {
        Ok(self
            .read()?
            .inbox
            .range(inbox_range(owner))
            .map(|(_, message)| message.clone())
            .collect())
    }

    fn inbox_len(&self, owner: OwnerId) -> Result<u64> {
        let count = self.read()?.inbox.range(inbox_range(owner)).count();
        Ok(u64::try_from(count).unwrap_or(u64::MAX))
    }

    fn delete_inbox_message(&self, owner: OwnerId, id: InboxMessageId) -> Result<bool> {
        Ok(self.write()?.inbox.remove(&(owner, id)).is_some())
    }

    fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()> {
        let mut inner = self.write()?;
        match inner.key_bag.get(&(entry.owner, entry.id)) {
            Some(stored) if stored == entry => Ok(()),
            Some(_) => Err(revision::exists("key-bag entry", 1)),
            None => {
                inner.key_bag.insert((entry.owner, entry.id), entry.clone());
                Ok(())
            }
        }
    }

    fn swap_key_bag_entry(
        &self,
        entry: &KeyBagEntry,
        previous: Option<&KeyBagEntry>,
    ) -> Result<()> {
        let mut inner = self.write()?;
        let stored = inner.key_bag.get(&(entry.owner, entry.id));
        if stored != previous {
            return Err(revision::exists("key-bag entry", 1));
        }
        inner.key_bag.insert((entry.owner, entry.id), entry.clone());
        Ok(())
    }

    fn key_bag(&self, owner: OwnerId) -> Result<Vec<KeyBagEntry>> {
        let inner = self.read()?;
        let first = (owner, KeyBagEntryId::from_bytes([0; 32]));
        Ok(inner
            .key_bag
            .range(first..)
            .take_while(|((entry_owner, _), _)| *entry_owner == owner)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    fn key_bag_entry(&self, owner: OwnerId, id: KeyBagEntryId) -> Result<Option<KeyBagEntry>> {
        Ok(self.read()?.key_bag.get(&(owner, id)).cloned())
    }

    fn create_entity(&self, entity: &EncryptedEntity) -> Result<Revision> {
        let mut inner = self.write()?;
        if let Some(actual) = inner.entity_rev(entity.id) {
            return Err(revision::exists("entity", actual));
        }
        inner.put_entity(entity, 1);
        Ok(1)
    }

    fn update_entity(&self, entity: &EncryptedEntity, expected: Revision) -> Result<Revision> {
        let mut inner = self.write()?;
        let rev = revision::next_entity(inner.entity_rev(entity.id), expected)?;
        inner.put_entity(entity, rev);
        Ok(rev)
    }

    fn create_entities(&self, entities: &[EncryptedEntity]) -> Result<Vec<Revision>> {
        let mut inner = self.write()?;
        let mut batch = HashSet::with_capacity(entities.len());
        for entity in entities {
            if let Some(actual) = inner.entity_rev(entity.id) {
                return Err(revision::exists("entity", actual));
            }
            if !batch.insert(entity.id) {
                return Err(revision::exists("entity", 1));
            }
        }
        for entity in entities {
            inner.put_entity(entity, 1);
        }
        Ok(vec![1; entities.len()])
    }

    fn update_entities(&self, entities: &[(EncryptedEntity, Revision)]) -> Result<Vec<Revision>> {
        let mut inner = self.write()?;
        // Check the whole batch first, as if applied in order (an entity may appear twice), then apply it.
        let mut pending: HashMap<EntityId, Revision> = HashMap::with_capacity(entities.len());
        let mut revs = Vec::with_capacity(entities.len());
        for (entity, expected) in entities {
            let stored = match pending.get(&entity.id) {
                Some(rev) => Some(*rev),
                None => inner.entity_rev(entity.id),
            };
            let rev = revision::next_entity(stored, *expected)?;
            pending.insert(entity.id, rev);
            revs.push(rev);
        }
        for ((entity, _), rev) in entities.iter().zip(&revs) {
            inner.put_entity(entity, *rev);
        }
        Ok(revs)
    }

    fn get_entity(&self, id: EntityId) -> Result<Option<EncryptedEntity>> {
        Ok(self.read()?.entities.get(&id).cloned())
    }

    fn delete_entity(&self, id: EntityId, expected: Revision) -> Result<()> {
        let mut inner = self.write()?;
        revision::next_entity(inner.entity_rev(id), expected)?;
        inner.remove_entity(id);
        Ok(())
    }

    fn entities_by_delegation_key(&self, key: &DelegationKey) -> Result<Vec<EntityId>> {
        Ok(lookup(&self.read()?.by_delegation_key, key))
    }

    fn entities_by_search_tag(&self, tag: &SearchTag) -> Result<Vec<EntityId>> {
        Ok(lookup(&self.read()?.by_search_tag, tag))
    }

    fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: &[u8],
    ) -> Result<()> {
        let chunks = cut_chunks(sealed);
        check_chunks(0, &chunks)?;
        let mut inner = self.write()?;
        inner.entity_exists(entity)?;
        let key = (entity, attachment);
        let previous = inner.staging.remove(&key);
        inner.stage(key, 0, &chunks);
        let finished = inner.finish(key, sealed.len() as u64);
        if finished.is_err() {
            // Unreachable for chunks cut here; restores the upload in progress all the same.
            inner.staging.remove(&key);
            if let Some(previous) = previous {
                inner.staging.insert(key, previous);
            }
        }
        finished
    }

    fn put_attachment_chunks(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[Vec<u8>],
    ) -> Result<()> {
        check_chunks(first_chunk, chunks)?;
        let mut inner = self.write()?;
        inner.entity_exists(entity)?;
        inner.stage((entity, attachment), first_chunk, chunks);
        Ok(())
    }

    fn finish_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        len: u64,
    ) -> Result<()> {
        let mut inner = self.write()?;
        inner.entity_exists(entity)?;
        inner.finish((entity, attachment), len)
    }

    fn abort_attachment(&self, entity: EntityId, attachment: AttachmentId) -> Result<()> {
        self.write()?.staging.remove(&(entity, attachment));
        Ok(())
    }

    fn attachment_len(&self, entity: EntityId, attachment: AttachmentId) -> Result<Option<u64>> {
        Ok(self
            .read()?
            .attachments
            .get(&(entity, attachment))
            .map(|sealed| sealed.len() as u64))
    }

    fn read_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>> {
        let inner = self.read()?;
        let Some(sealed) = inner.attachments.get(&(entity, attachment)) else {
            return Ok(None);
        };
        let clamp =
            |offset: u64| usize::try_from(offset).map_or(sealed.len(), |o| o.min(sealed.len()));
        let start = clamp(range.start);
        let end = clamp(range.end).max(start);
        Ok(Some(sealed.get(start..end).unwrap_or_default().to_vec()))
    }

    fn put_recovery_data(&self, data: &RecoveryData) -> Result<()> {
        let mut inner = self.write()?;
        if inner.recovery.contains_key(&data.id) {
            return Err(revision::exists("recovery data", 1));
        }
        inner.recovery.insert(data.id, data.clone());
        Ok(())
    }

    fn get_recovery_data(&self, id: &[u8; 32]) -> Result<Option<RecoveryData>> {
        Ok(self.read()?.recovery.get(id).cloned())
    }

    fn put_side_map_entry(&self, entry: &SideMapEntry) -> Result<()> {
        self.write()?
            .side_map
            .insert((entry.owner, entry.delegation_key), entry.clone());
        Ok(())
    }

    fn side_map_entry(&self, owner: OwnerId, key: &DelegationKey) -> Result<Option<SideMapEntry>> {
        Ok(self.read()?.side_map.get(&(owner, *key)).cloned())
    }
}

/// Every key of `owner`'s inbox.
fn inbox_range(owner: OwnerId) -> std::ops::RangeInclusive<(OwnerId, InboxMessageId)> {
    (owner, InboxMessageId::from_bytes([0; 16]))..=(owner, InboxMessageId::from_bytes([0xff; 16]))
}
