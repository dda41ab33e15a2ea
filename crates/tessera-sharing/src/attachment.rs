//! Attachments: each has its own key, sealed under the entity key (AAD = entity id ‖ attachment id), and content
//! sealed with the streaming AEAD (64 KiB segments, random access), whole or segment by segment as it streams.

use tessera_primitives::AeadKey;
use tessera_primitives::stream::{self, StreamLayout, StreamOpener, StreamSealer};

use crate::entity::EntityKeys;
use crate::error::{Error, Result};
use crate::model::{AttachmentId, AttachmentRef, Sealed};
use crate::seal::{attachment_key_aad, attachment_stream_aad, key_from_bytes};

/// Seals `content` as a new attachment of `entity`; returns its reference (to add to the entity) and the sealed stream.
///
/// # Errors
/// [`Error::Primitive`] if randomness fails.
pub fn seal_attachment(entity: &EntityKeys, content: &[u8]) -> Result<(AttachmentRef, Vec<u8>)> {
    seal_new(entity, AttachmentId::generate()?, content)
}

/// Prepares a new attachment of `entity` whose `len` bytes of content will be sealed as they stream: returns its
/// reference (to add to the entity; its `encrypted_len` is [`stream::encrypted_len`]`(len)`) and the sealer of its
/// stream. Write the sealer's header, then seal the content in segments of [`stream::SEGMENT_LEN`] bytes, the last
/// one flagged; the result is the stream [`seal_attachment`] makes of the same content, and opens the same way.
///
/// # Errors
/// [`Error::Primitive`] if randomness fails; [`Error::Malformed`] if `len` needs more than 2³² segments.
pub fn attachment_sealer(entity: &EntityKeys, len: u64) -> Result<(AttachmentRef, StreamSealer)> {
    new_attachment(entity, AttachmentId::generate()?, len)
}

/// The key of attachment `reference` of `entity`, to stream or open segments of it.
///
/// # Errors
/// [`Error::Crypto`] if the sealed key does not open under the entity key (moved from another entity or attachment).
pub fn attachment_key(entity: &EntityKeys, reference: &AttachmentRef) -> Result<AeadKey> {
    let bytes = zeroize::Zeroizing::new(entity.entity_key().open(
        &reference.sealed_key.0,
        &attachment_key_aad(&entity.id, &reference.id),
    )?);
    key_from_bytes(&bytes)
}

/// Opens a whole sealed attachment.
///
/// # Errors
/// [`Error::Crypto`] if the key or any segment does not open, or the stream was truncated, reordered or extended.
pub fn open_attachment(
    entity: &EntityKeys,
    reference: &AttachmentRef,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let key = attachment_key(entity, reference)?;
    Ok(stream::open_all(
        key,
        &attachment_stream_aad(&entity.id, &reference.id),
        sealed,
    )?)
}

/// A segment opener for ranged reads of an attachment, with its layout.
///
/// # Errors
/// [`Error::Crypto`] if the key does not open, the header is unknown or the length is impossible.
pub fn attachment_opener(
    entity: &EntityKeys,
    reference: &AttachmentRef,
    header: &[u8],
) -> Result<(StreamOpener, StreamLayout)> {
    let pending = pending_opener(entity, reference)?;
    let layout = pending.layout();
    Ok((pending.into_opener(header)?, layout))
}

/// Prepares to open attachment `reference` of `entity` as it streams in, before its header has arrived: the
/// attachment's key is opened and its layout known now, the opener made once the header is read.
///
/// # Errors
/// [`Error::Crypto`] if the key does not open or no stream has the reference's length.
pub fn pending_opener(entity: &EntityKeys, reference: &AttachmentRef) -> Result<PendingOpener> {
    Ok(PendingOpener {
        key: attachment_key(entity, reference)?,
        aad: attachment_stream_aad(&entity.id, &reference.id),
        layout: StreamLayout::from_encrypted_len(reference.encrypted_len)?,
    })
}

/// An attachment's key and layout, waiting for the header of its stream ([`pending_opener`]).
#[derive(Debug)]
pub struct PendingOpener {
    key: AeadKey,
    aad: Vec<u8>,
    layout: StreamLayout,
}

impl PendingOpener {
    /// Where each segment of the attachment's stream lies, from the length its reference gives.
    pub fn layout(&self) -> StreamLayout {
        self.layout
    }

    /// The segment opener of the stream that starts with `header`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the header is not a stream header the primitives know.
    pub fn into_opener(self, header: &[u8]) -> Result<StreamOpener> {
        Ok(StreamOpener::new(self.key, header, &self.aad)?)
    }
}

/// Re-seals an attachment for a rotated entity: opens it under the old entity (`before`) and seals it again, under
/// a new attachment key, for the rotated one (`after`). The attachment keeps its id.
///
/// # Errors
/// As [`open_attachment`].
pub fn rotate_attachment(
    before: &EntityKeys,
    after: &EntityKeys,
    reference: &AttachmentRef,
    sealed: &[u8],
) -> Result<(AttachmentRef, Vec<u8>)> {
    let content = zeroize::Zeroizing::new(open_attachment(before, reference, sealed)?);
    seal_new(after, reference.id, &content)
}

/// Seals `content` whole as attachment `id` of `entity`, under a new attachment key.
fn seal_new(
    entity: &EntityKeys,
    id: AttachmentId,
    content: &[u8],
) -> Result<(AttachmentRef, Vec<u8>)> {
    let (reference, sealer) = new_attachment(entity, id, content.len() as u64)?;
    Ok((reference, sealer.seal_whole(content)?))
}

/// A reference for attachment `id` of `entity` with `len` bytes of content, under a new attachment key sealed
/// under the entity key, and the sealer of its stream under that key.
fn new_attachment(
    entity: &EntityKeys,
    id: AttachmentId,
    len: u64,
) -> Result<(AttachmentRef, StreamSealer)> {
    // The segment counter is 32 bits wide; the check also keeps `encrypted_len` far from overflowing.
    if stream::segment_count(len) > u64::from(u32::MAX) + 1 {
        return Err(Error::Malformed {
            what: "attachment",
            reason: "too large",
        });
    }
    let key = AeadKey::generate()?;
    let sealed_key = Sealed(
        entity
            .entity_key()
            .seal(key.expose_secret(), &attachment_key_aad(&entity.id, &id))?,
    );
    let sealer = StreamSealer::new(key, &attachment_stream_aad(&entity.id, &id))?;
    let reference = AttachmentRef {
        id,
        sealed_key,
        encrypted_len: stream::encrypted_len(len),
    };
    Ok((reference, sealer))
}
