#![doc = include_str!("../README.md")]
// Wire types shared by the server and the client, and the two body encodings: bincode-1 (fast path,
// `application/x-bincode`) and JSON (`application/json`), chosen by `Content-Type` and `Accept`.

use bincode::Options;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tessera_keys::wire::{fixed_bytes, var_bytes};
use tessera_keys::{DelegationKey, Fingerprint, OwnerId, SignatureBytes};
use tessera_sharing::{EncryptedEntity, EntityId, ShareRequest};

/// Media type of bincode bodies.
pub const BINCODE: &str = "application/x-bincode";
/// Media type of JSON bodies.
pub const JSON: &str = "application/json";
/// Media type of attachment streams.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// Header carrying access-control keys: comma-separated lowercase hex; may repeat.
pub const ACCESS_KEYS_HEADER: &str = "x-tessera-access-keys";

/// A body encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// bincode 1, through size-limited options that reject trailing bytes.
    Bincode,
    /// JSON.
    Json,
}

impl Format {
    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Bincode => BINCODE,
            Self::Json => JSON,
        }
    }

    /// The format of a media type (parameters ignored), if it is one of the two.
    pub fn from_media_type(value: &str) -> Option<Self> {
        let essence = value.split(';').next().unwrap_or_default().trim();
        if essence.eq_ignore_ascii_case(BINCODE) {
            Some(Self::Bincode)
        } else if essence.eq_ignore_ascii_case(JSON) {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// Encodes `value`.
    ///
    /// # Errors
    /// If the value cannot be encoded (it always can for this crate's types).
    pub fn encode<T: Serialize>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Self::Bincode => bincode_options(u64::MAX)
                .serialize(value)
                .map_err(|e| e.to_string()),
            Self::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        }
    }

    /// Decodes `bytes`, refusing trailing bytes and (for bincode) any length prefix above `limit`.
    ///
    /// # Errors
    /// A description of what is malformed.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8], limit: u64) -> Result<T, String> {
        match self {
            Self::Bincode => bincode_options(limit)
                .deserialize(bytes)
                .map_err(|e| e.to_string()),
            Self::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        }
    }
}

/// The one set of bincode options on both sides: varint lengths, a size limit, trailing bytes refused.
fn bincode_options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_limit(limit)
        .reject_trailing_bytes()
}

/// An error body: a stable machine-readable code and a human message (never a secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// Stable code, e.g. `"not_found"`, `"conflict"`, `"rule_violation"`.
    pub error: String,
    /// What went wrong.
    pub message: String,
}

/// Asks for a login challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// The owner logging in.
    pub owner: OwnerId,
}

/// A login challenge: 32 random bytes, single use, valid for a minute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// The bytes to sign.
    #[serde(with = "fixed_bytes")]
    pub challenge: [u8; 32],
}

/// Answers a challenge with a signature by one of the owner's bundles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The owner.
    pub owner: OwnerId,
    /// The challenge received.
    #[serde(with = "fixed_bytes")]
    pub challenge: [u8; 32],
    /// Fingerprint of the bundle whose key signed.
    pub fingerprint: Fingerprint,
    /// `OwnerKeys::sign_login_challenge(challenge)`.
    pub signature: SignatureBytes,
}

/// A session: a bearer token valid until `expires`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The bearer token (hex). Secret: never logged.
    pub token: String,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Session {{ token: [redacted], expires: {} }}",
            self.expires
        )
    }
}

/// Access-control keys to hold in the session, in server memory only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeys {
    /// The keys, 16 bytes each.
    pub keys: Vec<AccessKeyBytes>,
}

impl std::fmt::Debug for AccessKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessKeys({} keys)", self.keys.len())
    }
}

/// One access-control key on the wire.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccessKeyBytes(#[serde(with = "fixed_bytes")] pub [u8; 16]);

/// A record with the revision it was read at, as the server answers it (the same fields, in the same order, as
/// the store's own `Versioned`, so the bytes on the wire are those the store's type would give).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned<T> {
    /// The revision of `value`.
    pub rev: u64,
    /// The record.
    pub value: T,
}

/// Answer to a write: the revision now stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Written {
    /// The new revision.
    pub rev: u64,
}

/// Several entities (bulk create, query results).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entities {
    /// The entities.
    pub entities: Vec<EncryptedEntity>,
}

/// An update of one entity: the new value and the revision it replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityUpdate {
    /// The new value.
    pub entity: EncryptedEntity,
    /// The revision it replaces.
    pub expected_rev: u64,
}

/// A bulk share: the request and, per entity, the revision it applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// The delegations to add.
    pub request: ShareRequest,
}

/// One revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// The entity.
    pub entity_id: EntityId,
    /// The delegation to remove with its descendants.
    pub delegation_key: DelegationKey,
}

/// A bulk revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeBody {
    /// The revocations.
    pub revocations: Vec<Revocation>,
}

/// Revisions after a bulk write, in request order of the entities touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkWritten {
    /// `(entity, new revision)`.
    pub written: Vec<(EntityId, u64)>,
}

/// Recovery data as sent (`id` is in the path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryBody {
    /// The sealed payload.
    #[serde(with = "var_bytes")]
    pub sealed: Vec<u8>,
    /// Expiry, in seconds since the Unix epoch.
    pub expires: u64,
}
