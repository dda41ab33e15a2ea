//! SHA-256 (FIPS 180-4), HMAC-SHA-256 (RFC 2104) and constant-time comparison.

use ring::{digest, hmac};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Length of a SHA-256 digest and of an HMAC-SHA-256 tag.
pub const SHA256_LEN: usize = 32;

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; SHA256_LEN] {
    Sha256::new().chain(data).finish()
}

/// An incremental SHA-256 computation, for data that arrives in pieces.
#[derive(Clone)]
pub struct Sha256(digest::Context);

impl Sha256 {
    /// Starts a new digest.
    pub fn new() -> Self {
        Self(digest::Context::new(&digest::SHA256))
    }

    /// Adds `data` to the digest.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// Adds `data` and returns the digest, for building in one expression.
    #[must_use]
    pub fn chain(mut self, data: &[u8]) -> Self {
        self.update(data);
        self
    }

    /// Finishes the digest.
    pub fn finish(self) -> [u8; SHA256_LEN] {
        let mut out = [0u8; SHA256_LEN];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256")
    }
}

/// HMAC-SHA-256 of `message` under `key` (any key length, RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; SHA256_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; SHA256_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// An HMAC-SHA-256 key prepared once (its padded key blocks hashed), for many tags under one key.
///
/// # Security
/// Derived from secret key material: never printed. `ring` keeps the prepared state internally and does not
/// expose it for wiping; keep these short-lived.
pub struct HmacSha256Key(hmac::Key);

crate::redacted_debug!(HmacSha256Key);

impl HmacSha256Key {
    /// Prepares `key` (any length, RFC 2104).
    pub fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// HMAC-SHA-256 of `message`: the same as [`hmac_sha256`] with this key.
    pub fn sign(&self, message: &[u8]) -> [u8; SHA256_LEN] {
        let mut out = [0u8; SHA256_LEN];
        out.copy_from_slice(hmac::sign(&self.0, message).as_ref());
        out
    }
}

/// Checks in constant time that `tag` is the HMAC-SHA-256 of `message` under `key`.
///
/// # Errors
/// [`Error::Crypto`] if it is not (including a tag of the wrong length).
pub fn verify_hmac_sha256(key: &[u8], message: &[u8], tag: &[u8]) -> Result<()> {
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA256, key), message, tag).map_err(|_| Error::Crypto)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc() {
        // FIPS 180-2 appendix B.1.
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut pieces = Sha256::new();
        pieces.update(b"a");
        pieces.update(b"bc");
        assert_eq!(pieces.finish(), sha256(b"abc"));
    }

    #[test]
    fn hmac_verifies_and_rejects() {
        let tag = hmac_sha256(b"key", b"message");
        assert!(verify_hmac_sha256(b"key", b"message", &tag).is_ok());
        assert!(matches!(
            verify_hmac_sha256(b"key", b"messagf", &tag),
            Err(Error::Crypto)
        ));
        assert!(matches!(
            verify_hmac_sha256(b"key", b"message", &tag[..31]),
            Err(Error::Crypto)
        ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
