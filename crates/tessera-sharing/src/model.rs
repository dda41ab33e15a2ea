//! The entity model as it travels and is stored: encrypted entities, security metadata, secure delegations,
//! attachment references. Only ids, delegation keys and sealed boxes appear here, never a key or plaintext.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tessera_keys::wire::{fixed_bytes, var_bytes};
use tessera_keys::{DelegationKey, EntityType, ExchangeDataId, FormatVersion, OwnerId};

tessera_keys::uuid_id!(
    /// An entity's id: a random (version 4) UUID.
    EntityId
);

tessera_keys::uuid_id!(
    /// An attachment's id: a random (version 4) UUID.
    AttachmentId
);

tessera_keys::byte_id!(
    /// A search tag: `HMAC-SHA-256(secret id, "tessera/v1/sfk" ‖ 0x00 ‖ child type)`. It lets the owners who know a
    /// parent's secret id find that parent's children of one type, and shows nobody else which parent they share.
    SearchTag,
    32
);

/// What a delegation lets its delegate do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Read the entity, share it onward with read access, and revoke what one shared.
    Read,
    /// Also update, delete and (for the root) rotate the entity, and share it onward with write access.
    Write,
}

/// A sealed box (primitives format) as it travels.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(#[serde(with = "var_bytes")] pub Vec<u8>);

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// One secure delegation: what one delegator gave one delegate, sealed with their exchange key (DESIGN.md §6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureDelegation {
    /// The delegator, or `None` when it is anonymous.
    pub delegator: Option<OwnerId>,
    /// The delegate, or `None` when it is anonymous.
    pub delegate: Option<OwnerId>,
    /// The exchange data behind the delegation; present only when both parties are explicit.
    pub exchange_data_id: Option<ExchangeDataId>,
    /// The entity key, sealed: exactly one, whose plaintext is `entity key ‖ creator ‖ delegator's tag` and whose
    /// associated data binds the delegation's statement (docs/formats.md), so that no clear field of the delegation
    /// can change without this failing to open.
    pub entity_keys: Vec<Sealed>,
    /// Secret ids of this entity (for linking children to it), sealed.
    pub secret_ids: Vec<Sealed>,
    /// Ids of the entities owning this one (a contact's patient), sealed.
    pub owning_entity_ids: Vec<Sealed>,
    /// Delegation keys of the delegations this one was shared from; empty for the root.
    pub parents: BTreeSet<DelegationKey>,
    /// What the delegate may do.
    pub permission: Permission,
    /// For a write delegation, the signed chain of write delegations from the root to this one, sealed with the
    /// exchange key: what its delegate presents as the right to write. Empty for a read delegation.
    pub chain: Vec<Sealed>,
}

/// The sharing state of an entity: its delegations by delegation key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityMetadata {
    /// Delegations by delegation key.
    pub delegations: BTreeMap<DelegationKey, SecureDelegation>,
}

/// A reference to an attachment: its id, its key sealed under the entity key, and its encrypted length.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentRef {
    /// The attachment's id.
    pub id: AttachmentId,
    /// The attachment key, sealed with the entity key, AAD = `"tessera/v1/attachment-key" ‖ 0x00 ‖ entity id ‖ attachment id`.
    pub sealed_key: Sealed,
    /// Length of the encrypted stream (header included), so a reader can compute segment ranges.
    pub encrypted_len: u64,
}

/// An entity as the server stores it: public fields in clear, the rest sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedEntity {
    /// Format version.
    pub version: FormatVersion,
    /// The entity's id.
    pub id: EntityId,
    /// The entity's type.
    pub entity_type: EntityType,
    /// Revision, assigned by the server; every write names the revision it replaces. It also moves on shares and
    /// revocations, so readers rely on `content_version` instead.
    pub rev: u64,
    /// Content version: 1 at creation, one more on every update, attachment change or rotation (never on a
    /// share). Signed by the writer; a reader refuses a version older than one it has seen.
    pub content_version: u64,
    /// Key epoch: 0 at creation, one more on every rotation. Signed, and bound into every delegation.
    pub key_epoch: u32,
    /// Fields the manifest leaves public, as a JSON object.
    #[serde(with = "json_object")]
    pub public: serde_json::Map<String, serde_json::Value>,
    /// The sensitive fields as a sealed JSON object, AAD = `"tessera/v1/encrypted-self" ‖ 0x00 ‖ version ‖ type ‖ 0x00 ‖ id`.
    pub encrypted_self: Sealed,
    /// `HMAC-SHA-256(entity key, "tessera/v1/entity-key" ‖ 0x00 ‖ type ‖ 0x00 ‖ id)`: every delegate checks that it
    /// unwrapped the same key.
    #[serde(with = "fixed_bytes")]
    pub key_commitment: [u8; 32],
    /// Search tags linking this entity to its parents.
    pub secret_foreign_keys: BTreeSet<SearchTag>,
    /// Delegations.
    pub security_metadata: SecurityMetadata,
    /// Attachments.
    pub attachments: Vec<AttachmentRef>,
    /// The writer's proof, sealed under the entity key: the signature of this version's statement by its writer
    /// and the writer's signed chain of write delegations from the root (docs/formats.md). Only key holders see
    /// who signed.
    pub writer_proof: Sealed,
}

/// One delegation to add to one entity: the unit of a share request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareEntry {
    /// The entity.
    pub entity_id: EntityId,
    /// The new delegation's key.
    pub delegation_key: DelegationKey,
    /// The new delegation.
    pub delegation: SecureDelegation,
}

/// A bulk share: any number of delegations for any number of entities, sent as one value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Format version.
    pub version: FormatVersion,
    /// The delegations to add.
    pub entries: Vec<ShareEntry>,
}

impl ShareRequest {
    /// A request of these entries.
    pub fn new(entries: Vec<ShareEntry>) -> Self {
        Self {
            version: FormatVersion::V2,
            entries,
        }
    }
}

/// A JSON object on the wire: itself in JSON, its JSON text in bincode (which cannot describe arbitrary JSON).
mod json_object {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::{Map, Value};

    pub(crate) fn serialize<S: Serializer>(
        map: &Map<String, Value>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            map.serialize(serializer)
        } else {
            let text = serde_json::to_string(map).map_err(serde::ser::Error::custom)?;
            serializer.serialize_str(&text)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Map<String, Value>, D::Error> {
        if deserializer.is_human_readable() {
            Map::deserialize(deserializer)
        } else {
            let text = String::deserialize(deserializer)?;
            serde_json::from_str(&text).map_err(D::Error::custom)
        }
    }
}
