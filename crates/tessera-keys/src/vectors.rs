//! Known-answer vectors of this layer's derivations and canonical encodings (feature `test-utils`).
//!
//! `cargo xtask vectors` computes them once from fixed inputs and commits them to
//! `crates/tessera-keys/tests/data/vectors.json`; the crate's tests recompute them with the same functions and
//! compare, so any change of a label, an encoding or a derivation is caught, on any machine.

use serde::{Deserialize, Serialize};
use tessera_primitives::{RsaPrivateKey, sha256};

use crate::error::Result;
use crate::exchange::{ExchangeData, ExchangeSecret};
use crate::id::{EntityType, OwnerId, hex};
use crate::keybag::{KeyBag, KeyBagEntry};
use crate::owner::OwnerKeys;

/// Entity types whose access-control and delegation keys are pinned.
pub const VECTOR_ENTITY_TYPES: [&str; 3] = ["Patient", "Contact", "HealthElement"];

/// What an owner derives from its RSA key: every value in lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerVector {
    /// The owner id.
    pub owner: OwnerId,
    /// The bundle's creation time.
    pub created: u64,
    /// SHA-256 of the canonical RSA private-key bytes (the bytes themselves are secret-shaped; their hash pins them).
    pub canonical_rsa_sha256: String,
    /// The derived Ed25519 public key.
    pub verifying_key: String,
    /// The derived self key.
    pub self_key: String,
    /// The bundle's canonical bytes.
    pub bundle_canonical: String,
    /// The bundle's fingerprint.
    pub fingerprint: String,
    /// The fingerprint's short code.
    pub short_code: String,
    /// The bundle's self-signature (Ed25519 is deterministic).
    pub self_signature: String,
}

impl OwnerVector {
    /// Computes the vector of `keys`.
    ///
    /// # Errors
    /// If the key cannot be encoded.
    pub fn compute(keys: &OwnerKeys) -> Result<Self> {
        let bundle = keys.bundle()?;
        let canonical = keys.rsa_private_key().to_canonical_bytes()?;
        Ok(Self {
            owner: keys.owner(),
            created: bundle.created(),
            canonical_rsa_sha256: hex(&sha256(canonical.expose_secret())),
            verifying_key: hex(keys.verifying_key().as_bytes()),
            self_key: hex(keys.self_key().expose_secret()),
            bundle_canonical: hex(&bundle.canonical_bytes()?),
            fingerprint: bundle.fingerprint().to_string(),
            short_code: bundle.fingerprint().short_code(),
            self_signature: hex(&bundle.self_signature_bytes()),
        })
    }
}

/// What both sides derive from one exchange data, in lowercase hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeVector {
    /// The exchange data's canonical (signed) bytes.
    pub canonical: String,
    /// The exchange key.
    pub exchange_key: String,
    /// The key-bag entry id of this exchange data in the delegate's bag.
    pub delegate_bag_entry_id: String,
    /// Access-control and delegation keys per entity type.
    pub access: Vec<AccessVector>,
}

/// Access-control key and delegation key of one entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessVector {
    /// The entity type.
    pub entity_type: String,
    /// The access-control key.
    pub access_control_key: String,
    /// The delegation key.
    pub delegation_key: String,
}

impl ExchangeVector {
    /// Computes the vector of `data` as opened into `secret` by `delegate`.
    ///
    /// # Errors
    /// If an entity type of [`VECTOR_ENTITY_TYPES`] is invalid (it is not).
    pub fn compute(
        data: &ExchangeData,
        secret: &ExchangeSecret,
        delegate: &OwnerKeys,
    ) -> Result<Self> {
        let access = VECTOR_ENTITY_TYPES
            .iter()
            .map(|name| {
                let entity_type = EntityType::new(name)?;
                let ack = secret.access_control_key(&entity_type);
                Ok(AccessVector {
                    entity_type: (*name).to_owned(),
                    access_control_key: hex(ack.expose_secret()),
                    delegation_key: ack.delegation_key().to_string(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            canonical: hex(&data.canonical_bytes()),
            exchange_key: hex(secret.opening_key().expose_secret()),
            delegate_bag_entry_id: KeyBag::entry_id(delegate, &data.id()).to_string(),
            access,
        })
    }
}

/// The whole vector file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VectorFile {
    /// How the file was made.
    pub provenance: String,
    /// File name of the delegator's RSA key among the primitives' fixture keys.
    pub delegator_key_file: String,
    /// File name of the delegate's RSA key among the primitives' fixture keys.
    pub delegate_key_file: String,
    /// The delegator's derivations.
    pub delegator: OwnerVector,
    /// The delegate's derivations.
    pub delegate: OwnerVector,
    /// Exchange data from the delegator to the delegate, as generated once (its wraps are randomised).
    pub exchange_data: ExchangeData,
    /// What the delegate derives from it.
    pub exchange: ExchangeVector,
    /// A key-bag entry of the delegate holding that exchange secret (sealed once; randomised nonce).
    pub delegate_bag_entry: KeyBagEntry,
}

/// Derives an owner's keys from a PKCS#8 PEM, as the vector file's inputs are.
///
/// # Errors
/// If the PEM is not an acceptable RSA key.
pub fn owner_from_pem(pem: &str, owner: OwnerId, created: u64) -> Result<OwnerKeys> {
    OwnerKeys::derive(owner, RsaPrivateKey::from_pkcs8_pem(pem)?, created)
}
