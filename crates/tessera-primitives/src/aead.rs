//! AES-256-GCM sealed boxes (NIST SP 800-38D): `version ‖ alg ‖ nonce(12) ‖ ciphertext ‖ tag(16)`.
//!
//! Two interchangeable backends compute the same bytes: `ring` (default, fastest) and, behind the
//! `pure-rust` feature, RustCrypto's `aes-gcm` 0.11.

use ring::aead::{self as ring_aead, LessSafeKey, UnboundKey};
use zeroize::Zeroize;

use crate::error::{Error, Result};
use crate::random;
use crate::secret::Secret32;

/// Length of an AES-256 key.
pub const KEY_LEN: usize = 32;
/// Length of a GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of a GCM tag.
pub const TAG_LEN: usize = 16;
/// Format version byte of a sealed box.
pub const SEALED_BOX_VERSION: u8 = 1;
/// Algorithm byte of AES-256-GCM with a 96-bit random nonce.
pub const ALG_AES_256_GCM: u8 = 1;
/// Length of a sealed box's header: version, algorithm, nonce.
pub const SEALED_BOX_HEADER_LEN: usize = 2 + NONCE_LEN;
/// Bytes a sealed box adds to its plaintext.
pub const SEALED_BOX_OVERHEAD: usize = SEALED_BOX_HEADER_LEN + TAG_LEN;

/// Which AES-GCM implementation a key uses. Both produce identical bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AeadBackend {
    /// `ring` (assembly, AES-NI and CLMUL): the default.
    #[default]
    Ring,
    /// RustCrypto's `aes-gcm` 0.11, pure Rust.
    #[cfg(feature = "pure-rust")]
    PureRust,
}

/// An AES-256-GCM key, expanded once for its backend.
///
/// # Security
/// The raw key bytes are wiped on drop; the `pure-rust` backend wipes its expanded key schedule too,
/// `ring` does not expose its schedule for wiping.
pub struct AeadKey {
    bytes: Secret32,
    cipher: Cipher,
}

crate::redacted_debug!(AeadKey);

impl Clone for AeadKey {
    fn clone(&self) -> Self {
        Self::with_backend(self.bytes.clone(), self.backend())
    }
}

#[allow(
    clippy::large_enum_variant,
    reason = "the default ring key stays inline on the hot path; the pure-Rust schedule is boxed"
)]
enum Cipher {
    Ring(LessSafeKey),
    #[cfg(feature = "pure-rust")]
    PureRust(Box<aes_gcm::Aes256Gcm>),
}

impl AeadKey {
    /// Draws a new random key for the default backend.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the operating system's generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_secret(Secret32::generate()?))
    }

    /// Uses `secret` as a key with the default backend.
    pub fn from_secret(secret: Secret32) -> Self {
        Self::with_backend(secret, AeadBackend::default())
    }

    /// Uses `secret` as a key with the given backend.
    pub fn with_backend(secret: Secret32, backend: AeadBackend) -> Self {
        let cipher = match backend {
            AeadBackend::Ring => Cipher::Ring(LessSafeKey::new(ring_unbound_key(&secret))),
            #[cfg(feature = "pure-rust")]
            AeadBackend::PureRust => {
                use aes_gcm::KeyInit;
                Cipher::PureRust(Box::new(aes_gcm::Aes256Gcm::new(
                    &(*secret.expose_secret()).into(),
                )))
            }
        };
        Self {
            bytes: secret,
            cipher,
        }
    }

    /// The backend this key computes with.
    pub fn backend(&self) -> AeadBackend {
        match self.cipher {
            Cipher::Ring(_) => AeadBackend::Ring,
            #[cfg(feature = "pure-rust")]
            Cipher::PureRust(_) => AeadBackend::PureRust,
        }
    }

    /// The raw key bytes, to wrap the key for someone else.
    ///
    /// # Security
    /// Never log or store them unencrypted.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }

    /// Seals `plaintext` with a fresh random nonce, authenticating `aad` with it.
    ///
    /// # Errors
    /// [`Error::Randomness`] if no nonce can be drawn; [`Error::Crypto`] if the plaintext exceeds GCM's limit.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        self.seal_with_nonce_inner(random::nonce()?, plaintext, aad)
    }

    /// Seals with a caller-chosen nonce, for known-answer and cross-implementation tests only.
    ///
    /// # Security
    /// Reusing a nonce under one key destroys GCM's confidentiality and integrity. Never use it outside tests.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the plaintext exceeds GCM's limit.
    #[cfg(feature = "test-utils")]
    pub fn seal_with_nonce(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        self.seal_with_nonce_inner(nonce, plaintext, aad)
    }

    /// Opens a sealed box made by [`AeadKey::seal`] with the same key and `aad`.
    ///
    /// # Errors
    /// [`Error::Crypto`] for anything wrong with the box: its version, algorithm, length, tag, key or `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        let (header, body) = sealed
            .split_at_checked(SEALED_BOX_HEADER_LEN)
            .ok_or(Error::Crypto)?;
        let [version, alg, nonce @ ..] = header else {
            return Err(Error::Crypto);
        };
        if *version != SEALED_BOX_VERSION || *alg != ALG_AES_256_GCM {
            return Err(Error::Crypto);
        }
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::Crypto)?;
        let ct_len = body.len().checked_sub(TAG_LEN).ok_or(Error::Crypto)?;
        let (ciphertext, tag) = body.split_at(ct_len);
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::Crypto)?;
        let mut plaintext = ciphertext.to_vec();
        self.open_in_place(&nonce, aad, &mut plaintext, tag)?;
        Ok(plaintext)
    }

    fn seal_with_nonce_inner(
        &self,
        nonce: [u8; NONCE_LEN],
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + SEALED_BOX_OVERHEAD);
        out.extend_from_slice(&[SEALED_BOX_VERSION, ALG_AES_256_GCM]);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(SEALED_BOX_HEADER_LEN..).ok_or(Error::Crypto)?;
        let tag = self.seal_in_place(&nonce, aad, body)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Encrypts `buf` in place and returns the tag.
    pub(crate) fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        match &self.cipher {
            Cipher::Ring(key) => {
                let tag = key
                    .seal_in_place_separate_tag(
                        ring_aead::Nonce::assume_unique_for_key(*nonce),
                        ring_aead::Aad::from(aad),
                        buf,
                    )
                    .map_err(|_| Error::Crypto)?;
                tag.as_ref().try_into().map_err(|_| Error::Crypto)
            }
            #[cfg(feature = "pure-rust")]
            Cipher::PureRust(key) => {
                use aes_gcm::AeadInOut;
                let tag = key
                    .encrypt_inout_detached(&(*nonce).into(), aad, buf.into())
                    .map_err(|_| Error::Crypto)?;
                Ok(tag.into())
            }
        }
    }

    /// Decrypts `buf` in place after checking `tag`; on failure `buf` is wiped.
    pub(crate) fn open_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<()> {
        let opened = match &self.cipher {
            Cipher::Ring(key) => key
                .open_in_place_separate_tag(
                    ring_aead::Nonce::assume_unique_for_key(*nonce),
                    ring_aead::Aad::from(aad),
                    ring_aead::Tag::from(*tag),
                    buf,
                    0..,
                )
                .map(|_| ()),
            #[cfg(feature = "pure-rust")]
            Cipher::PureRust(key) => {
                use aes_gcm::AeadInOut;
                key.decrypt_inout_detached(&(*nonce).into(), aad, buf.into(), &(*tag).into())
                    .map_err(|_| ring::error::Unspecified)
            }
        };
        opened.map_err(|_| {
            buf.zeroize();
            Error::Crypto
        })
    }
}

fn ring_unbound_key(secret: &Secret32) -> UnboundKey {
    // The key is exactly 32 bytes, the only length `AES_256_GCM` checks for, so this cannot fail;
    // ring's constructor is fallible only because it takes a slice.
    match UnboundKey::new(&ring_aead::AES_256_GCM, secret.expose_secret()) {
        Ok(key) => key,
        Err(_) => unreachable_key_length(),
    }
}

#[allow(
    clippy::panic,
    reason = "a 32-byte key always has the length AES-256 needs"
)]
#[cold]
fn unreachable_key_length() -> ! {
    panic!("AES-256-GCM rejected a 32-byte key")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AeadKey {
        AeadKey::from_secret(Secret32::from_bytes([7; 32]))
    }

    #[test]
    fn round_trip_and_layout() -> Result<()> {
        let sealed = key().seal(b"hello", b"aad")?;
        assert_eq!(sealed.len(), 5 + SEALED_BOX_OVERHEAD);
        assert_eq!(&sealed[..2], &[SEALED_BOX_VERSION, ALG_AES_256_GCM]);
        assert_eq!(key().open(&sealed, b"aad")?, b"hello");
        Ok(())
    }

    #[test]
    fn nonces_are_fresh() -> Result<()> {
        assert_ne!(key().seal(b"x", b"")?, key().seal(b"x", b"")?);
        Ok(())
    }

    #[test]
    fn wrong_aad_key_or_version_is_opaque() -> Result<()> {
        let sealed = key().seal(b"hello", b"aad")?;
        assert!(matches!(key().open(&sealed, b"aae"), Err(Error::Crypto)));
        assert!(matches!(
            AeadKey::generate()?.open(&sealed, b"aad"),
            Err(Error::Crypto)
        ));
        let mut other_version = sealed.clone();
        other_version[0] = 2;
        assert!(matches!(
            key().open(&other_version, b"aad"),
            Err(Error::Crypto)
        ));
        for len in 0..SEALED_BOX_OVERHEAD {
            assert!(matches!(
                key().open(&sealed[..len], b"aad"),
                Err(Error::Crypto)
            ));
        }
        Ok(())
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", key()), "[redacted]");
    }
}
