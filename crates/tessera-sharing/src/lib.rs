#![doc = include_str!("../README.md")]

mod access;
pub mod attachment;
mod entity;
mod error;
mod manifest;
mod model;
mod proof;
pub mod rules;
mod seal;
pub use crate::seal::{MIN_PADDED_LEN, padded_len};
mod sidemap;
#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use crate::access::{AccessIndex, DelegationLookup};
pub use crate::entity::{
    DecryptedEntity, DelegationTarget, EntityKeys, NewEntity, NewWithShares, ParentLink, Rotation,
    SecretId, SecretIdScope, Visibility, create, create_many, decrypt, open_keys, revise,
    revoke_and_rotate, share, update,
};
pub use crate::error::{Error, Result, RuleViolation};
pub use crate::manifest::{EncryptionManifest, JsonPath, merge};
pub use crate::model::{
    AttachmentId, AttachmentRef, EncryptedEntity, EntityId, Permission, Sealed, SearchTag,
    SecureDelegation, SecurityMetadata, ShareEntry, ShareRequest,
};
pub use crate::proof::VerifiedBatches;
pub use crate::sidemap::SideMapEntry;

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<EncryptedEntity>();
    assert_send_sync::<DecryptedEntity>();
    assert_send_sync::<EntityKeys>();
    assert_send_sync::<AccessIndex>();
    assert_send_sync::<ShareRequest>();
    assert_send_sync::<SecretId>();
    assert_send_sync::<SideMapEntry>();
    assert_send_sync::<Error>();
    assert_send_sync::<attachment::PendingOpener>();
};
