//! The one error type of the key layer.

use crate::id::{Fingerprint, OwnerId};

/// Everything that can go wrong in `tessera-keys`.
///
/// Every failed signature check, unwrap, commitment check or bag-entry open is the single opaque
/// [`Error::Crypto`]; the other variants describe mistakes of the caller or of the input's shape.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Decryption, unwrapping, a signature or a commitment check failed. Deliberately says nothing more.
    #[error("decryption or verification failed")]
    Crypto,

    /// A travelling value carries a format version this build does not read.
    #[error("unsupported {what} format version {version} (this build reads version {supported})")]
    UnsupportedVersion {
        /// What was being decoded.
        what: &'static str,
        /// The version found.
        version: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// Input that should hold a value of this layer is malformed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it was refused.
        reason: &'static str,
    },

    /// A key bundle was refused by the trust policy.
    #[error("key bundle {fingerprint} of owner {owner} is not trusted: {reason}")]
    Untrusted {
        /// The owner the bundle claims.
        owner: OwnerId,
        /// The bundle's fingerprint.
        fingerprint: Fingerprint,
        /// Why the policy refused it.
        reason: &'static str,
    },

    /// A key bundle given for an operation belongs to another owner than the operation needs.
    #[error("key bundle {fingerprint} belongs to owner {found}, not to {expected}")]
    WrongOwner {
        /// The bundle's fingerprint.
        fingerprint: Fingerprint,
        /// The owner the operation needs.
        expected: OwnerId,
        /// The owner the bundle belongs to.
        found: OwnerId,
    },

    /// Exchange data holds no wrap for the key trying to open it.
    #[error("exchange data has no wrap for key {0}")]
    NoWrapForKey(Fingerprint),

    /// A delegator tried to encrypt new data with exchange data it did not sign itself (DESIGN.md §5.2).
    #[error("exchange data not signed by this owner cannot encrypt new data")]
    NotSignedBySelf,

    /// A key-bag entry or exchange secret was used with a different exchange data than it belongs to.
    #[error("the secret belongs to other exchange data")]
    ExchangeMismatch,

    /// The primitives layer refused an operation (a key outside policy, a failed random draw). Never a failed
    /// decryption or verification: those are [`Error::Crypto`].
    #[error(transparent)]
    Primitive(tessera_primitives::Error),
}

/// Every decryption or verification failure of the primitives becomes the opaque [`Error::Crypto`], so that opacity
/// survives `?` without any call site remembering it; every other error keeps its detail.
impl From<tessera_primitives::Error> for Error {
    fn from(error: tessera_primitives::Error) -> Self {
        match error {
            tessera_primitives::Error::Crypto => Self::Crypto,
            other => Self::Primitive(other),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
