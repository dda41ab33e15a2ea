#![doc = include_str!("../README.md")]

mod batch;
mod canonical;
mod error;
mod exchange;
mod id;
mod inbox;
mod keybag;
mod owner;
mod time;
mod trust;

/// Serde helpers for byte fields shared by the layers above (lowercase hex in JSON, raw bytes in bincode), and the
/// one hex encoder and strict decoder.
pub mod wire {
    pub use crate::id::{fixed_bytes, hex, unhex, var_bytes};
}
#[cfg(feature = "test-utils")]
pub mod test_utils;
#[cfg(feature = "test-utils")]
pub mod vectors;

pub use crate::batch::batch_message;
pub use crate::error::{Error, Result};
pub use crate::exchange::{ExchangeData, ExchangeSecret, MAX_WRAPS, SignedWrap, WrappedSecret};
pub use crate::id::{
    ACCESS_CONTROL_KEY_LEN, AccessControlKey, DelegationKey, EntityType, ExchangeDataId,
    Fingerprint, FormatVersion, InboxMessageId, KeyBagEntryId, OwnerId, Uuid,
};
pub use crate::inbox::{InboxMessage, MAX_INBOX_MESSAGE_LEN};
pub use crate::keybag::{KeyBag, KeyBagEntry};
pub use crate::owner::{
    ChainLink, KeyBundle, Owner, OwnerKeys, OwnerKind, SignatureBytes, UnwrapKey,
};
pub use crate::time::unix_now;
pub use crate::trust::{CallbackTrust, PinnedFingerprints, Tofu, TrustPolicy, TrustedBundle};

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OwnerKeys>();
    assert_send_sync::<KeyBundle>();
    assert_send_sync::<TrustedBundle>();
    assert_send_sync::<ExchangeData>();
    assert_send_sync::<ExchangeSecret>();
    assert_send_sync::<SignedWrap>();
    assert_send_sync::<KeyBag>();
    assert_send_sync::<KeyBagEntry>();
    assert_send_sync::<Tofu>();
    assert_send_sync::<Error>();
    assert_send_sync::<AccessControlKey>();
};
