//! Attachments: each has its own key, sealed under the entity key (AAD = entity id ‖ attachment id), and content
//! sealed with the streaming AEAD (64 KiB segments, random access).

use tessera_primitives::AeadKey;
use tessera_primitives::stream::{self, StreamLayout, StreamOpener};

use crate::entity::DecryptedEntity;
use crate::error::{Error, Result};
use crate::model::{AttachmentId, AttachmentRef, Sealed};
use crate::seal::{attachment_key_aad, attachment_stream_aad, key_from_bytes};

/// Seals `content` as a new attachment of `entity`; returns its reference (to add to the entity) and the sealed stream.
///
/// # Errors
/// [`Error::Primitive`] if randomness fails.
pub fn seal_attachment(
    entity: &DecryptedEntity,
    content: &[u8],
) -> Result<(AttachmentRef, Vec<u8>)> {
    seal_with_key(
        entity.entity_key(),
        entity,
        AttachmentId::generate()?,
        content,
    )
}

/// The key of attachment `reference` of `entity`, to stream or open segments of it.
///
/// # Errors
/// [`Error::Crypto`] if the sealed key does not open under the entity key (moved from another entity or attachment).
pub fn attachment_key(entity: &DecryptedEntity, reference: &AttachmentRef) -> Result<AeadKey> {
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
    entity: &DecryptedEntity,
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
    entity: &DecryptedEntity,
    reference: &AttachmentRef,
    header: &[u8],
) -> Result<(StreamOpener, StreamLayout)> {
    let key = attachment_key(entity, reference)?;
    let opener = StreamOpener::new(
        key,
        header,
        &attachment_stream_aad(&entity.id, &reference.id),
    )?;
    Ok((
        opener,
        StreamLayout::from_encrypted_len(reference.encrypted_len)?,
    ))
}

/// Re-seals an attachment for a rotated entity: opens it under the old entity (`before`) and seals it again, under
/// a new attachment key, for the rotated one (`after`). The attachment keeps its id.
///
/// # Errors
/// As [`open_attachment`].
pub fn rotate_attachment(
    before: &DecryptedEntity,
    after: &DecryptedEntity,
    reference: &AttachmentRef,
    sealed: &[u8],
) -> Result<(AttachmentRef, Vec<u8>)> {
    let content = zeroize::Zeroizing::new(open_attachment(before, reference, sealed)?);
    seal_with_key(after.entity_key(), after, reference.id, &content)
}

fn seal_with_key(
    entity_key: &AeadKey,
    entity: &DecryptedEntity,
    id: AttachmentId,
    content: &[u8],
) -> Result<(AttachmentRef, Vec<u8>)> {
    let key = AeadKey::generate()?;
    let sealed_key =
        Sealed(entity_key.seal(key.expose_secret(), &attachment_key_aad(&entity.id, &id))?);
    let sealed = stream::seal_all(key, &attachment_stream_aad(&entity.id, &id), content)?;
    let reference = AttachmentRef {
        id,
        sealed_key,
        encrypted_len: u64::try_from(sealed.len()).map_err(|_| Error::Malformed {
            what: "attachment",
            reason: "too large",
        })?,
    };
    Ok((reference, sealed))
}
