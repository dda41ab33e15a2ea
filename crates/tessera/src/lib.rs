#![doc = include_str!("../README.md")]

mod attachment;
mod client;
mod content;
mod entity;
mod error;
mod exchange_cache;
mod key_file;
mod owner;
mod owner_state;
mod record;
mod session;
mod stream;

/// What the server stores, for code that inspects it (audits, exports, the CLI's demonstration): encrypted
/// entities and their delegations, exchange data and key-bag entries. Everyday code never needs these.
pub mod stored {
    pub use tessera_keys::{DelegationKey, ExchangeData, ExchangeDataId, KeyBagEntry, Owner};
    pub use tessera_sharing::{
        AttachmentRef, EncryptedEntity, Sealed, SearchTag, SecureDelegation, SecurityMetadata,
    };
}

pub use crate::client::Client;
pub use crate::error::{Error, ErrorKind, Result};
pub use crate::exchange_cache::DEFAULT_EXCHANGE_CACHE_CAPACITY;
pub use crate::key_file::{
    KdfParams, decode_protected_key_file, encode_protected_key_file, is_protected_key_file,
};
pub use crate::owner::{
    decode_key_file, encode_key_file, generate_owner, register_generated, register_owner,
};
pub use crate::record::{
    AttachmentInfo, EntityRef, NewRecord, Query, QueryReport, Record, Rotated, Saved, Share,
};
pub use crate::session::{Session, SessionStats};
pub use crate::stream::AttachmentStream;
pub use tessera_keys::{
    CallbackTrust, EntityType, Fingerprint, KeyBundle, OwnerId, OwnerKeys, OwnerKind,
    PinnedFingerprints, Tofu, TrustPolicy,
};
pub use tessera_primitives::{RsaKeySize, SecretString};
pub use tessera_sharing::{AttachmentId, EncryptionManifest, EntityId, Permission, Visibility};

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Session>();
    assert_send_sync::<Client>();
    assert_send_sync::<Error>();
    assert_send_sync::<Record<serde_json::Map<String, serde_json::Value>>>();
    assert_send_sync::<NewRecord>();
    assert_send_sync::<EntityRef>();
    assert_send_sync::<Share>();
    assert_send_sync::<AttachmentStream>();
};
