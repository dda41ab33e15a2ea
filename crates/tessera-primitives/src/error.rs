//! The one error type of the primitives layer.

/// Everything that can go wrong in `tessera-primitives`.
///
/// Every decryption, unwrapping or verification failure is the single opaque variant [`Error::Crypto`]:
/// a caller, and so an attacker, never learns whether a tag, a padding, a label, a length or a key was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Decryption, unwrapping or verification failed. Deliberately says nothing more.
    #[error("decryption or verification failed")]
    Crypto,

    /// An RSA key is smaller than the 2048 bits Tessera accepts.
    #[error("rsa key of {bits} bits is too small: at least 2048 bits are required")]
    RsaKeyTooSmall {
        /// The modulus size of the rejected key.
        bits: usize,
    },

    /// An RSA key is larger than the 4096 bits Tessera accepts (bounding the cost of private-key operations).
    #[error("rsa key of {bits} bits is too large: at most 4096 bits are accepted")]
    RsaKeyTooLarge {
        /// The modulus size of the rejected key.
        bits: usize,
    },

    /// An RSA key has a public exponent other than 65537.
    #[error("rsa public exponent is not 65537")]
    RsaExponent,

    /// Bytes or text that should hold a key are not a well-formed key of the expected kind.
    #[error("malformed {kind} encoding")]
    KeyEncoding {
        /// What was being decoded (for example `"pkcs8 der"`).
        kind: &'static str,
    },

    /// A value does not fit the size the operation needs.
    #[error("{what} has the wrong length: expected {expected}, got {actual}")]
    Length {
        /// What was measured.
        what: &'static str,
        /// The length that was expected (or the maximum, for upper bounds).
        expected: usize,
        /// The length that was given.
        actual: usize,
    },

    /// A stream was used out of order: a segment after the last one, or a counter that ran out.
    #[error("stream misuse: {0}")]
    StreamState(&'static str),

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Randomness,

    /// Key generation or an RSA operation with valid input failed unexpectedly.
    #[error("rsa operation failed")]
    Rsa,

    /// Reading or writing a stream failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
