//! The keys and associated data of every sealed field of an entity, in one place (docs/formats.md).

use tessera_keys::{DelegationKey, EntityType, FormatVersion};
use tessera_primitives::{AeadKey, Secret32, hmac_sha256, verify_hmac_sha256};

use crate::error::{Error, Result};
use crate::model::{AttachmentId, EntityId, Sealed};

const TAG_ENCRYPTED_SELF: &str = "tessera/v1/encrypted-self";
const TAG_ENTITY_KEY_COMMIT: &str = "tessera/v1/entity-key";
const TAG_DELEGATION: &str = "tessera/v1/delegation";
const TAG_ATTACHMENT_KEY: &str = "tessera/v1/attachment-key";
const TAG_ATTACHMENT: &str = "tessera/v1/attachment";
const TAG_WRITER_PROOF: &str = "tessera/v2/writer-proof";

/// A field of a secure delegation that holds sealed values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DelegationField {
    EntityKeys,
    SecretIds,
    OwningEntityIds,
    Chain,
}

impl DelegationField {
    fn name(self) -> &'static str {
        match self {
            Self::EntityKeys => "entity_keys",
            Self::SecretIds => "secret_ids",
            Self::OwningEntityIds => "owning_entity_ids",
            Self::Chain => "chain",
        }
    }
}

fn tagged(tag: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 1 + capacity);
    out.extend_from_slice(tag.as_bytes());
    out.push(0);
    out
}

/// AAD of `encrypted_self`: `"tessera/v1/encrypted-self" ‖ 0x00 ‖ version ‖ type ‖ 0x00 ‖ id`.
pub(crate) fn encrypted_self_aad(entity_type: &EntityType, id: &EntityId) -> Vec<u8> {
    let mut aad = tagged(TAG_ENCRYPTED_SELF, 1 + entity_type.as_str().len() + 17);
    aad.push(FormatVersion::V2.get());
    aad.extend_from_slice(entity_type.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// `HMAC-SHA-256(entity key, "tessera/v1/entity-key" ‖ 0x00 ‖ type ‖ 0x00 ‖ id)`.
pub(crate) fn key_commitment(key: &AeadKey, entity_type: &EntityType, id: &EntityId) -> [u8; 32] {
    hmac_sha256(key.expose_secret(), &commitment_message(entity_type, id))
}

/// Checks `key` against `commitment` in constant time.
pub(crate) fn check_key_commitment(
    key: &AeadKey,
    entity_type: &EntityType,
    id: &EntityId,
    commitment: &[u8; 32],
) -> Result<()> {
    Ok(verify_hmac_sha256(
        key.expose_secret(),
        &commitment_message(entity_type, id),
        commitment,
    )?)
}

fn commitment_message(entity_type: &EntityType, id: &EntityId) -> Vec<u8> {
    let mut message = tagged(TAG_ENTITY_KEY_COMMIT, entity_type.as_str().len() + 17);
    message.extend_from_slice(entity_type.as_str().as_bytes());
    message.push(0);
    message.extend_from_slice(id.as_bytes());
    message
}

/// AAD of a sealed delegation field: `"tessera/v1/delegation" ‖ 0x00 ‖ delegation key ‖ field name ‖ 0x00 ‖ entity id`.
///
/// DESIGN.md §6 binds to the delegation key and the field name; the entity id is added because one delegation key
/// serves every entity of a type between two owners, and a sealed key must not move between those entities.
///
/// `bound` (the delegation's statement, for its entity key; empty otherwise) follows, in the same allocation.
fn delegation_aad(
    delegation_key: &DelegationKey,
    field: DelegationField,
    entity: &EntityId,
    bound: &[u8],
) -> Vec<u8> {
    let mut aad = tagged(TAG_DELEGATION, 32 + field.name().len() + 17 + bound.len());
    aad.extend_from_slice(delegation_key.as_bytes());
    aad.extend_from_slice(field.name().as_bytes());
    aad.push(0);
    aad.extend_from_slice(entity.as_bytes());
    aad.extend_from_slice(bound);
    aad
}

/// Seals `value` into a delegation field; `bound` is appended to the associated data (the delegation's statement,
/// for its entity key; empty otherwise).
pub(crate) fn seal_delegation_field(
    key: &AeadKey,
    delegation_key: &DelegationKey,
    field: DelegationField,
    entity: &EntityId,
    bound: &[u8],
    value: &[u8],
) -> Result<Sealed> {
    let aad = delegation_aad(delegation_key, field, entity, bound);
    Ok(Sealed(key.seal(value, &aad)?))
}

/// Opens a sealed delegation field (with the same `bound` it was sealed with).
pub(crate) fn open_delegation_field(
    key: &AeadKey,
    delegation_key: &DelegationKey,
    field: DelegationField,
    entity: &EntityId,
    bound: &[u8],
    sealed: &Sealed,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let aad = delegation_aad(delegation_key, field, entity, bound);
    let opened = key.open(&sealed.0, &aad)?;
    Ok(zeroize::Zeroizing::new(opened))
}

/// AAD of the writer's proof: `"tessera/v2/writer-proof" ‖ 0x00 ‖ id ‖ type ‖ 0x00 ‖ content version ‖ key epoch`.
pub(crate) fn writer_proof_aad(
    entity_type: &EntityType,
    id: &EntityId,
    content_version: u64,
    key_epoch: u32,
) -> Vec<u8> {
    let mut aad = tagged(TAG_WRITER_PROOF, 16 + entity_type.as_str().len() + 13);
    aad.extend_from_slice(id.as_bytes());
    aad.extend_from_slice(entity_type.as_str().as_bytes());
    aad.push(0);
    aad.extend_from_slice(&content_version.to_be_bytes());
    aad.extend_from_slice(&key_epoch.to_be_bytes());
    aad
}

/// AAD of an attachment key sealed under the entity key: `"tessera/v1/attachment-key" ‖ 0x00 ‖ entity id ‖ attachment id`.
pub(crate) fn attachment_key_aad(entity: &EntityId, attachment: &AttachmentId) -> Vec<u8> {
    let mut aad = tagged(TAG_ATTACHMENT_KEY, 32);
    aad.extend_from_slice(entity.as_bytes());
    aad.extend_from_slice(attachment.as_bytes());
    aad
}

/// AAD of every segment of an attachment's stream: `"tessera/v1/attachment" ‖ 0x00 ‖ entity id ‖ attachment id`.
pub(crate) fn attachment_stream_aad(entity: &EntityId, attachment: &AttachmentId) -> Vec<u8> {
    let mut aad = tagged(TAG_ATTACHMENT, 32);
    aad.extend_from_slice(entity.as_bytes());
    aad.extend_from_slice(attachment.as_bytes());
    aad
}

/// Reads a 32-byte key out of opened bytes.
pub(crate) fn key_from_bytes(bytes: &[u8]) -> Result<AeadKey> {
    Ok(AeadKey::from_secret(
        Secret32::try_from(bytes).map_err(|_| Error::Crypto)?,
    ))
}
