//! The storage trait every backend implements, and the records it stores.
//!
//! The store holds only what the server may hold: public records, ciphertext, delegation keys and search tags.
//! It never sees a private key, an exchange secret or an unwrapped data key (ARCHITECTURE.md invariants).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use tessera_keys::wire::{fixed_bytes, var_bytes};
use tessera_keys::{
    DelegationKey, ExchangeData, ExchangeDataId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId, SearchTag, SideMapEntry};

use crate::error::Result;

/// A revision: `1` for a new record, incremented by every write. Every write names the revision it replaces.
pub type Revision = u64;

/// A record with the revision it was read at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The revision of `value`.
    pub rev: Revision,
    /// The record.
    pub value: T,
}

/// Recovery data (DESIGN.md §5.5): sealed private keys or exchange secrets, found by the hash of a recovery key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryData {
    /// `SHA-256(recovery key)`.
    #[serde(with = "fixed_bytes")]
    pub id: [u8; 32],
    /// The sealed payload, opaque to the server.
    #[serde(with = "var_bytes")]
    pub sealed: Vec<u8>,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}

/// The storage backends' common interface. Every method is synchronous and durable once it returns `Ok`
/// (the server calls it from a blocking thread pool).
///
/// Conflicts: a write whose `expected` revision is not the stored one fails with [`crate::Error::Conflict`]
/// and changes nothing; `expected = None` means "the record must not exist yet".
pub trait Store: Send + Sync + 'static {
    /// Stores an owner record (create with `expected = None`, or replace revision `expected`), returns the new revision.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] on a stale or unexpected revision; [`crate::Error::Backend`] if storage fails.
    fn put_owner(&self, owner: &Owner, expected: Option<Revision>) -> Result<Revision>;

    /// The owner record of `id`.
    ///
    /// # Errors
    /// [`crate::Error::Backend`] if storage fails, [`crate::Error::Corrupt`] if the stored bytes do not decode.
    fn get_owner(&self, id: OwnerId) -> Result<Option<Versioned<Owner>>>;

    /// Stores exchange data (create, or replace revision `expected` when wraps were added), returns the new revision.
    ///
    /// # Errors
    /// As [`Store::put_owner`].
    fn put_exchange_data(
        &self,
        data: &ExchangeData,
        expected: Option<Revision>,
    ) -> Result<Revision>;

    /// Exchange data `id`.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn get_exchange_data(&self, id: ExchangeDataId) -> Result<Option<Versioned<ExchangeData>>>;

    /// Every exchange data `owner` takes part in, as delegator or delegate.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn exchange_data_of(&self, owner: OwnerId) -> Result<Vec<Versioned<ExchangeData>>>;

    /// Adds a key-bag entry. Entries never change: storing the same entry again is a no-op, a different entry under
    /// the same `(owner, id)` is a conflict.
    ///
    /// # Errors
    /// As [`Store::put_owner`].
    fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()>;

    /// Every key-bag entry of `owner`.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn key_bag(&self, owner: OwnerId) -> Result<Vec<KeyBagEntry>>;

    /// One key-bag entry.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn key_bag_entry(&self, owner: OwnerId, id: KeyBagEntryId) -> Result<Option<KeyBagEntry>>;

    /// Creates an entity at revision 1 (its `rev` field is ignored and set), returns the revision.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if the id exists; [`crate::Error::Backend`] if storage fails.
    fn create_entity(&self, entity: &EncryptedEntity) -> Result<Revision>;

    /// Replaces revision `expected` of an entity (its `rev` field is ignored and set), returns the new revision.
    /// The delegation-key and search-tag indexes follow the new value.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] on a stale revision; [`crate::Error::NotFound`] if the entity does not exist.
    fn update_entity(&self, entity: &EncryptedEntity, expected: Revision) -> Result<Revision>;

    /// Creates several entities in one durable commit (group commit), all or none.
    ///
    /// # Errors
    /// As [`Store::create_entity`] for any of them; then nothing is stored.
    fn create_entities(&self, entities: &[EncryptedEntity]) -> Result<Vec<Revision>>;

    /// Replaces several entities in one durable commit, all or none.
    ///
    /// # Errors
    /// As [`Store::update_entity`] for any of them; then nothing is stored.
    fn update_entities(&self, entities: &[(EncryptedEntity, Revision)]) -> Result<Vec<Revision>>;

    /// Entity `id`, with its `rev` field set to the stored revision.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn get_entity(&self, id: EntityId) -> Result<Option<EncryptedEntity>>;

    /// Deletes revision `expected` of an entity, with its index entries and attachments.
    ///
    /// # Errors
    /// As [`Store::update_entity`].
    fn delete_entity(&self, id: EntityId, expected: Revision) -> Result<()>;

    /// Ids of the entities holding a delegation under `key`.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn entities_by_delegation_key(&self, key: &DelegationKey) -> Result<Vec<EntityId>>;

    /// Ids of the entities carrying search tag `tag`.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn entities_by_search_tag(&self, tag: &SearchTag) -> Result<Vec<EntityId>>;

    /// Stores the sealed stream of an attachment (replacing any previous content).
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if the entity does not exist; [`crate::Error::Backend`] if storage fails.
    fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: &[u8],
    ) -> Result<()>;

    /// Total length of an attachment's sealed stream.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn attachment_len(&self, entity: EntityId, attachment: AttachmentId) -> Result<Option<u64>>;

    /// Bytes `range` of an attachment's sealed stream (clamped to its length), for ranged reads by segment.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn read_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>>;

    /// Stores recovery data (create only).
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if the id exists.
    fn put_recovery_data(&self, data: &RecoveryData) -> Result<()>;

    /// Recovery data `id`.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn get_recovery_data(&self, id: &[u8; 32]) -> Result<Option<RecoveryData>>;

    /// Stores a side-map entry (replacing the previous one for the same owner and delegation key).
    ///
    /// # Errors
    /// [`crate::Error::Backend`] if storage fails.
    fn put_side_map_entry(&self, entry: &SideMapEntry) -> Result<()>;

    /// The side-map entry of `owner` for `key`.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn side_map_entry(&self, owner: OwnerId, key: &DelegationKey) -> Result<Option<SideMapEntry>>;
}
