//! The malicious operator's store: a [`Store`] that passes everything to the real redb store, except what the test
//! told it to answer differently (hide a key-bag entry, add inbox messages, substitute an owner record, serve
//! another version of an entity, hand out other attachment bytes), and that keeps a copy of every inbox message it
//! was given (an operator may keep what the delegate later deletes). The server runs on it unchanged, so every answer the
//! clients see went through the real server.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tessera::stored::{DelegationKey, EncryptedEntity, KeyBagEntry, Owner};
use tessera::{AttachmentId, EntityId, OwnerId};
use tessera_keys::{InboxMessage, InboxMessageId, KeyBagEntryId};
use tessera_sharing::{SearchTag, SideMapEntry};
use tessera_store::{RecoveryData, RedbStore, Result, Revision, Store, Versioned};

/// What the operator answers differently from what is stored.
#[derive(Default)]
pub struct Lies {
    /// Key-bag entries it hides, by owner and id.
    pub hidden_bag: HashSet<(OwnerId, KeyBagEntryId)>,
    /// Inbox messages it adds to an owner's inbox listing (replays, forgeries).
    pub extra_inbox: HashMap<OwnerId, Vec<InboxMessage>>,
    /// Every inbox message delivered through the server, with its recipient, in order.
    pub delivered: Vec<(OwnerId, InboxMessage)>,
    /// Owner records it substitutes.
    pub owners: HashMap<OwnerId, Owner>,
    /// Entities it serves instead of the stored ones.
    pub entities: HashMap<EntityId, EncryptedEntity>,
    /// Attachment bytes it serves instead of the stored ones (whole encrypted streams).
    pub attachments: HashMap<(EntityId, AttachmentId), Vec<u8>>,
}

/// The wrapper store.
pub struct Operator {
    pub inner: Arc<RedbStore>,
    lies: Mutex<Lies>,
}

impl Operator {
    pub fn new(inner: Arc<RedbStore>) -> Self {
        Self {
            inner,
            lies: Mutex::new(Lies::default()),
        }
    }

    /// The operator's lies, to add or remove some.
    pub fn lies(&self) -> MutexGuard<'_, Lies> {
        self.lies.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Store for Operator {
    fn put_owner(&self, owner: &Owner, expected: Option<Revision>) -> Result<Revision> {
        self.inner.put_owner(owner, expected)
    }

    fn get_owner(&self, id: OwnerId) -> Result<Option<Versioned<Owner>>> {
        let stored = self.inner.get_owner(id)?;
        Ok(match self.lies().owners.get(&id) {
            Some(owner) => stored.map(|v| Versioned {
                rev: v.rev,
                value: owner.clone(),
            }),
            None => stored,
        })
    }

    fn put_inbox_message(&self, recipient: OwnerId, message: &InboxMessage) -> Result<()> {
        self.lies().delivered.push((recipient, message.clone()));
        self.inner.put_inbox_message(recipient, message)
    }

    fn inbox(&self, owner: OwnerId) -> Result<Vec<InboxMessage>> {
        let extra = self
            .lies()
            .extra_inbox
            .get(&owner)
            .cloned()
            .unwrap_or_default();
        let mut listed = self.inner.inbox(owner)?;
        listed.extend(extra);
        Ok(listed)
    }

    fn inbox_len(&self, owner: OwnerId) -> Result<u64> {
        self.inner.inbox_len(owner)
    }

    fn delete_inbox_message(&self, owner: OwnerId, id: InboxMessageId) -> Result<bool> {
        let mut lies = self.lies();
        if let Some(extra) = lies.extra_inbox.get_mut(&owner) {
            let before = extra.len();
            extra.retain(|message| message.id != id);
            if extra.len() != before {
                return Ok(true);
            }
        }
        drop(lies);
        self.inner.delete_inbox_message(owner, id)
    }

    fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()> {
        self.inner.put_key_bag_entry(entry)
    }

    fn swap_key_bag_entry(
        &self,
        entry: &KeyBagEntry,
        previous: Option<&KeyBagEntry>,
    ) -> Result<()> {
        self.inner.swap_key_bag_entry(entry, previous)
    }

    fn key_bag(&self, owner: OwnerId) -> Result<Vec<KeyBagEntry>> {
        let hidden = self.lies().hidden_bag.clone();
        Ok(self
            .inner
            .key_bag(owner)?
            .into_iter()
            .filter(|e| !hidden.contains(&(e.owner, e.id)))
            .collect())
    }

    fn key_bag_entry(&self, owner: OwnerId, id: KeyBagEntryId) -> Result<Option<KeyBagEntry>> {
        if self.lies().hidden_bag.contains(&(owner, id)) {
            return Ok(None);
        }
        self.inner.key_bag_entry(owner, id)
    }

    fn create_entity(&self, entity: &EncryptedEntity) -> Result<Revision> {
        self.inner.create_entity(entity)
    }

    fn update_entity(&self, entity: &EncryptedEntity, expected: Revision) -> Result<Revision> {
        self.inner.update_entity(entity, expected)
    }

    fn create_entities(&self, entities: &[EncryptedEntity]) -> Result<Vec<Revision>> {
        self.inner.create_entities(entities)
    }

    fn update_entities(&self, entities: &[(EncryptedEntity, Revision)]) -> Result<Vec<Revision>> {
        self.inner.update_entities(entities)
    }

    fn get_entity(&self, id: EntityId) -> Result<Option<EncryptedEntity>> {
        if let Some(entity) = self.lies().entities.get(&id) {
            return Ok(Some(entity.clone()));
        }
        self.inner.get_entity(id)
    }

    fn delete_entity(&self, id: EntityId, expected: Revision) -> Result<()> {
        self.inner.delete_entity(id, expected)
    }

    fn entities_by_delegation_key(&self, key: &DelegationKey) -> Result<Vec<EntityId>> {
        self.inner.entities_by_delegation_key(key)
    }

    fn entities_by_search_tag(&self, tag: &SearchTag) -> Result<Vec<EntityId>> {
        self.inner.entities_by_search_tag(tag)
    }

    fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: &[u8],
    ) -> Result<()> {
        self.inner.put_attachment(entity, attachment, sealed)
    }

    fn put_attachment_chunks(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[Vec<u8>],
    ) -> Result<()> {
        self.inner
            .put_attachment_chunks(entity, attachment, first_chunk, chunks)
    }

    fn finish_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        len: u64,
    ) -> Result<()> {
        self.inner.finish_attachment(entity, attachment, len)
    }

    fn abort_attachment(&self, entity: EntityId, attachment: AttachmentId) -> Result<()> {
        self.inner.abort_attachment(entity, attachment)
    }

    fn attachment_len(&self, entity: EntityId, attachment: AttachmentId) -> Result<Option<u64>> {
        if let Some(bytes) = self.lies().attachments.get(&(entity, attachment)) {
            return Ok(Some(bytes.len() as u64));
        }
        self.inner.attachment_len(entity, attachment)
    }

    fn read_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(bytes) = self.lies().attachments.get(&(entity, attachment)) {
            let start = usize::try_from(range.start)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let end = usize::try_from(range.end)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            return Ok(Some(bytes[start..end.max(start)].to_vec()));
        }
        self.inner.read_attachment(entity, attachment, range)
    }

    fn put_recovery_data(&self, data: &RecoveryData) -> Result<()> {
        self.inner.put_recovery_data(data)
    }

    fn get_recovery_data(&self, id: &[u8; 32]) -> Result<Option<RecoveryData>> {
        self.inner.get_recovery_data(id)
    }

    fn put_side_map_entry(&self, entry: &SideMapEntry) -> Result<()> {
        self.inner.put_side_map_entry(entry)
    }

    fn side_map_entry(&self, owner: OwnerId, key: &DelegationKey) -> Result<Option<SideMapEntry>> {
        self.inner.side_map_entry(owner, key)
    }
}
