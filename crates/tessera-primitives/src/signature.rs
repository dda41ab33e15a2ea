//! Ed25519 signatures (RFC 8032) on `ring`.

use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::error::{Error, Result};
use crate::secret::Secret32;

/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Length of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;

/// An Ed25519 signing key, built from a 32-byte seed (RFC 8032's private key).
///
/// # Security
/// The seed is wiped on drop and never printed; `ring` keeps its own expanded copy, which it does not wipe.
pub struct SigningKey {
    seed: Secret32,
    pair: Ed25519KeyPair,
}

crate::redacted_debug!(SigningKey);

/// An Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey([u8; PUBLIC_KEY_LEN]);

/// An Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; SIGNATURE_LEN]);

impl SigningKey {
    /// Derives the key pair of a 32-byte seed. The same seed always gives the same key.
    pub fn from_seed(seed: Secret32) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed.expose_secret());
        match pair {
            Ok(pair) => Self { seed, pair },
            // ring rejects only seeds of the wrong length, and a `Secret32` is always 32 bytes.
            Err(_) => unreachable_seed_length(),
        }
    }

    /// Draws a new random seed.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the operating system's generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_seed(Secret32::generate()?))
    }

    /// The seed, to store the key.
    ///
    /// # Security
    /// Never log or store it unencrypted.
    pub fn expose_seed(&self) -> &[u8; 32] {
        self.seed.expose_secret()
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        let mut out = [0u8; PUBLIC_KEY_LEN];
        out.copy_from_slice(self.pair.public_key().as_ref());
        VerifyingKey(out)
    }

    /// Signs `message` (deterministic, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut out = [0u8; SIGNATURE_LEN];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        Signature(out)
    }
}

impl VerifyingKey {
    /// The 32 encoded bytes.
    pub fn to_bytes(&self) -> [u8; PUBLIC_KEY_LEN] {
        self.0
    }

    /// The 32 encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }

    /// Checks `signature` over `message`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the signature does not verify (including a malformed key or a non-canonical signature).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<()> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, &signature.0)
            .map_err(|_| Error::Crypto)
    }
}

impl From<[u8; PUBLIC_KEY_LEN]> for VerifyingKey {
    fn from(bytes: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(bytes)
    }
}

impl TryFrom<&[u8]> for VerifyingKey {
    type Error = Error;

    fn try_from(bytes: &[u8]) -> Result<Self> {
        bytes.try_into().map(Self).map_err(|_| Error::Length {
            what: "ed25519 public key",
            expected: PUBLIC_KEY_LEN,
            actual: bytes.len(),
        })
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerifyingKey(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

impl Signature {
    /// The 64 encoded bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        self.0
    }

    /// The 64 encoded bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }
}

impl From<[u8; SIGNATURE_LEN]> for Signature {
    fn from(bytes: [u8; SIGNATURE_LEN]) -> Self {
        Self(bytes)
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = Error;

    /// A signature of the wrong length cannot verify, so it is the opaque [`Error::Crypto`].
    fn try_from(bytes: &[u8]) -> Result<Self> {
        bytes.try_into().map(Self).map_err(|_| Error::Crypto)
    }
}

impl std::fmt::Debug for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature(")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, ")")
    }
}

#[allow(
    clippy::panic,
    reason = "a 32-byte seed always has the length ring checks for"
)]
#[cold]
fn unreachable_seed_length() -> ! {
    panic!("ring rejected a 32-byte Ed25519 seed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_determinism() -> Result<()> {
        let key = SigningKey::from_seed(Secret32::from_bytes([3; 32]));
        let again = SigningKey::from_seed(Secret32::from_bytes([3; 32]));
        let sig = key.sign(b"message");
        assert_eq!(sig, again.sign(b"message"));
        key.verifying_key().verify(b"message", &sig)?;
        assert!(matches!(
            key.verifying_key().verify(b"messagf", &sig),
            Err(Error::Crypto)
        ));
        assert!(matches!(
            SigningKey::generate()?
                .verifying_key()
                .verify(b"message", &sig),
            Err(Error::Crypto)
        ));
        assert_eq!(format!("{key:?}"), "[redacted]");
        Ok(())
    }
}
