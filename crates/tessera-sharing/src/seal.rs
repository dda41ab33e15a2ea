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

/// The smallest padded length of a sealed document: below it every document looks the same size.
pub const MIN_PADDED_LEN: usize = 128;

/// The length a sealed document of `len` bytes is padded to: PADME (Nikitin et al., "Reducing metadata leakage from
/// encrypted files and communication with PURBs", PETS 2019), at least [`MIN_PADDED_LEN`]. A length `L` with
/// `E = ⌊log₂ L⌋` keeps its `⌊log₂ E⌋ + 1` most significant bits and rounds the others up, so at most 12 % is added
/// and a length reveals only O(log log L) bits.
pub fn padded_len(len: usize) -> usize {
    let len = len.max(MIN_PADDED_LEN);
    let exponent = usize::BITS - 1 - len.leading_zeros();
    let kept = u32::BITS - exponent.leading_zeros();
    let mask = (1usize << exponent.saturating_sub(kept)) - 1;
    len.checked_add(mask).map_or(len, |raised| raised & !mask)
}

/// Pads a document's JSON with spaces to [`padded_len`]: JSON allows trailing whitespace, so every reader parses the
/// padded bytes as the document (docs/formats.md, "Entity").
pub(crate) fn pad_json(json: &mut Vec<u8>) {
    let target = padded_len(json.len());
    json.resize(target, b' ');
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

#[cfg(test)]
mod padding_tests {
    use super::*;

    #[test]
    fn padme_keeps_the_top_bits_and_adds_at_most_twelve_percent() {
        // Worked values: 1000 = 0b1111101000 keeps 4 bits (E = 9) and rounds up to 1024; 1100 keeps 4 bits of
        // E = 10 and rounds up to 1152.
        assert_eq!(padded_len(1000), 1024);
        assert_eq!(padded_len(1100), 1152);
        assert_eq!(padded_len(0), MIN_PADDED_LEN);
        assert_eq!(padded_len(MIN_PADDED_LEN), MIN_PADDED_LEN);
        let mut previous = 0;
        for len in (0..200_000).step_by(7).chain([usize::MAX / 2, usize::MAX]) {
            let padded = padded_len(len);
            assert!(padded >= len, "{len}");
            assert_eq!(
                padded_len(padded),
                padded,
                "{len}: a padded length is its own class"
            );
            assert!(padded >= previous, "monotonic at {len}");
            previous = padded;
            if (MIN_PADDED_LEN..200_000).contains(&len) {
                assert!(padded * 100 <= len * 112 + 100, "{len} → {padded}");
            }
        }
        // Few classes: the 64,512 lengths from 1 KiB to 64 KiB fall into at most 16 sizes per doubling.
        let classes: std::collections::BTreeSet<usize> = (1024..65_536).map(padded_len).collect();
        assert!(classes.len() <= 6 * 16 + 1, "{}", classes.len());
    }

    #[test]
    fn padded_json_still_parses_as_the_document() {
        let mut json = br#"{"a":1}"#.to_vec();
        pad_json(&mut json);
        assert_eq!(json.len(), MIN_PADDED_LEN);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap_or_default();
        assert_eq!(value, serde_json::json!({"a": 1}));
    }
}
