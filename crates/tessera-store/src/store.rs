//! The storage trait every backend implements, and the records it stores.
//!
//! The store holds only what the server may hold: public records, ciphertext, delegation keys and search tags.
//! It never sees a private key, an exchange secret or an unwrapped data key (ARCHITECTURE.md invariants).

use std::ops::Range;

use serde::{Deserialize, Serialize};
use tessera_keys::wire::{fixed_bytes, var_bytes};
use tessera_keys::{
    DelegationKey, InboxMessage, InboxMessageId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_primitives::stream::{ENCRYPTED_SEGMENT_LEN, HEADER_LEN};
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

    /// Files `message` in `recipient`'s inbox (protocol v2: exchange data travels only sealed, through the
    /// delegate's inbox, and no table names its delegator). Messages never change: storing the same message again
    /// is a no-op, a different message under the same `(recipient, id)` is a conflict.
    ///
    /// # Errors
    /// As [`Store::put_owner`].
    fn put_inbox_message(&self, recipient: OwnerId, message: &InboxMessage) -> Result<()>;

    /// Every message waiting in `owner`'s inbox, in id order.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn inbox(&self, owner: OwnerId) -> Result<Vec<InboxMessage>>;

    /// How many messages wait in `owner`'s inbox.
    ///
    /// # Errors
    /// As [`Store::get_owner`].
    fn inbox_len(&self, owner: OwnerId) -> Result<u64>;

    /// Removes message `id` from `owner`'s inbox; `true` if it was there.
    ///
    /// # Errors
    /// [`crate::Error::Backend`] if storage fails.
    fn delete_inbox_message(&self, owner: OwnerId, id: InboxMessageId) -> Result<bool>;

    /// Adds a key-bag entry. Entries never change: storing the same entry again is a no-op, a different entry under
    /// the same `(owner, id)` is a conflict.
    ///
    /// # Errors
    /// As [`Store::put_owner`].
    fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()>;

    /// Replaces a key-bag entry by compare-and-swap: `entry` is stored only if the stored entry under its
    /// `(owner, id)` is `previous` (or none, when `previous` is `None`). The owner state (protocol v2) is the one
    /// entry of a bag that changes this way.
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] if the stored entry is another one (read it again, merge, retry); as
    /// [`Store::put_owner`].
    fn swap_key_bag_entry(&self, entry: &KeyBagEntry, previous: Option<&KeyBagEntry>)
    -> Result<()>;

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

    /// Stores the sealed stream of an attachment whole (replacing any previous content, and discarding an upload in
    /// progress): [`Store::put_attachment_chunks`] and [`Store::finish_attachment`] in one durable commit.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if the entity does not exist; [`crate::Error::Backend`] if storage fails.
    fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: &[u8],
    ) -> Result<()>;

    /// Stages chunks `first_chunk..first_chunk + chunks.len()` of an upload of an attachment's sealed stream, in
    /// one durable commit. Chunks follow the segments of the stream ([`attachment_chunk_len`]): chunk 0 is the
    /// header, chunk `i ≥ 1` is encrypted segment `i − 1`, and only the last chunk of the stream may be shorter.
    ///
    /// Staged chunks are not readable: [`Store::attachment_len`] and [`Store::read_attachment`] keep answering with
    /// the previous content (if any) until [`Store::finish_attachment`]. Staging a chunk again replaces it. There is
    /// one upload per attachment: two writers staging the same attachment at once overwrite each other's chunks,
    /// so callers run one upload at a time per attachment.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if the entity does not exist; [`crate::Error::Invalid`] for a chunk that is empty
    /// or longer than its place in the stream allows (nothing is staged then); [`crate::Error::Backend`] if storage
    /// fails.
    fn put_attachment_chunks(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[Vec<u8>],
    ) -> Result<()>;

    /// Makes the staged upload of an attachment its content, `len` bytes long, in one durable commit: a reader sees
    /// either the whole previous content or the whole new one. The chunks of the previous content and any staged
    /// chunk past `len` are removed; afterwards nothing is staged for the attachment.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`] if the entity does not exist; [`crate::Error::Invalid`] if the staged chunks do
    /// not make a stream of exactly `len` bytes (one of the chunks a `len`-byte stream has is missing or of
    /// another length), and then nothing changes; [`crate::Error::Backend`] if storage fails. Staged chunks past
    /// those of a `len`-byte stream (left by a longer upload that was given up) do not make it fail: a `len` that
    /// ends on a chunk boundary before the staged chunks end finishes a shorter stream, so callers check the
    /// length they received before they finish.
    fn finish_attachment(&self, entity: EntityId, attachment: AttachmentId, len: u64)
    -> Result<()>;

    /// Discards the staged chunks of an unfinished upload of an attachment (a no-op if there are none); its
    /// readable content does not change.
    ///
    /// # Errors
    /// [`crate::Error::Backend`] if storage fails.
    fn abort_attachment(&self, entity: EntityId, attachment: AttachmentId) -> Result<()>;

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

/// The length of chunk `index` of an attachment's sealed stream, unless it is the stream's last chunk (which may be
/// shorter): chunk 0 is the stream header ([`HEADER_LEN`], 9 bytes), chunk `i ≥ 1` is encrypted segment `i − 1`
/// ([`ENCRYPTED_SEGMENT_LEN`], 64 KiB + 16 bytes). This is how [`Store::put_attachment_chunks`] wants a stream cut,
/// and how the backends store it: a ranged read of one segment reads one chunk.
pub const fn attachment_chunk_len(index: u64) -> usize {
    if index == 0 {
        HEADER_LEN
    } else {
        ENCRYPTED_SEGMENT_LEN
    }
}

/// The chunk holding byte `offset` of a sealed stream: 0 for the header, `i + 1` for encrypted segment `i`.
pub(crate) fn chunk_of(offset: u64) -> u64 {
    match offset.checked_sub(HEADER_LEN as u64) {
        None => 0,
        Some(body) => 1 + body / ENCRYPTED_SEGMENT_LEN as u64,
    }
}

/// Where chunk `index` starts in a stream of unbounded length.
pub(crate) fn chunk_start(index: u64) -> u64 {
    match index.checked_sub(1) {
        None => 0,
        Some(segment) => {
            (HEADER_LEN as u64).saturating_add(segment.saturating_mul(ENCRYPTED_SEGMENT_LEN as u64))
        }
    }
}

/// The bytes of chunk `index` in a stream of `len` bytes.
pub(crate) fn chunk_span(index: u64, len: u64) -> Range<u64> {
    chunk_start(index).min(len)..chunk_start(index.saturating_add(1)).min(len)
}

/// Number of chunks of a stream of `len` bytes (none when it is empty).
pub(crate) fn chunk_count(len: u64) -> u64 {
    len.checked_sub(1).map_or(0, |last| chunk_of(last) + 1)
}

/// Checks chunks about to be staged at `first_chunk..`: none empty, none longer than its place allows, and
/// `first_chunk + chunks.len()` fits in a `u64` (so that `chunks.iter().zip(first_chunk..)` cannot overflow).
pub(crate) fn check_chunks<C: AsRef<[u8]>>(first_chunk: u64, chunks: &[C]) -> Result<()> {
    let mut index = first_chunk;
    for chunk in chunks {
        let chunk = chunk.as_ref();
        if chunk.is_empty() || chunk.len() > attachment_chunk_len(index) {
            return Err(crate::Error::Invalid("attachment chunk"));
        }
        index = index
            .checked_add(1)
            .ok_or(crate::Error::Invalid("attachment chunk"))?;
    }
    Ok(())
}

/// The pieces of `sealed`, cut as [`attachment_chunk_len`] says.
pub(crate) fn cut_chunks(sealed: &[u8]) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = sealed;
    while !rest.is_empty() {
        let take = attachment_chunk_len(chunks.len() as u64).min(rest.len());
        let (chunk, tail) = rest.split_at(take);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}
