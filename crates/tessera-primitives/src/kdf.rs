//! HKDF-SHA-256 (RFC 5869) with labelled expansion.
//!
//! Tessera expands every key with `info = label ‖ 0x00 ‖ context`, where `label` is a fixed text of the form
//! `tessera/v1/<purpose>` (never containing a zero byte) and `context` is the purpose's own bytes.
//! The zero byte keeps `("a", "bc")` and `("ab", "c")` apart, so no two purposes can share a key.

use hkdf::Hkdf;
use sha2::Sha256;

use crate::aead::AeadKey;
use crate::error::{Error, Result};
use crate::secret::Secret32;

/// Largest output HKDF-SHA-256 can expand to (255 blocks of 32 bytes).
pub const MAX_OUTPUT_LEN: usize = 255 * 32;

/// A pseudorandom key (RFC 5869's PRK): the output of HKDF-Extract, or a uniformly random 32-byte secret.
///
/// It keeps HMAC's keyed state rather than the key, so each expansion costs two SHA-256 compressions fewer.
///
/// # Security
/// The keyed state is as sensitive as the key: `sha2`'s `zeroize` feature wipes it on drop. Never printed.
#[derive(Clone)]
pub struct Prk(Hkdf<Sha256>);

crate::redacted_debug!(Prk);

impl Prk {
    /// HKDF-Extract: concentrates the entropy of `ikm` into a PRK, with `salt` (empty means RFC 5869's zeros).
    pub fn extract(salt: &[u8], ikm: &[u8]) -> Self {
        Self(Hkdf::<Sha256>::new(Some(salt), ikm))
    }

    /// Uses a uniformly random 32-byte secret directly as a PRK (RFC 5869 §3.3 allows skipping extraction).
    pub fn from_secret(secret: Secret32) -> Self {
        // A 32-byte PRK is exactly the hash length, which `from_prk` accepts; the fallback (extracting from the
        // secret, which also yields a uniform key) only exists so that no panic path remains.
        let hkdf = Hkdf::<Sha256>::from_prk(secret.expose_secret())
            .unwrap_or_else(|_| Hkdf::<Sha256>::new(None, secret.expose_secret()));
        Self(hkdf)
    }

    /// HKDF-Expand with `info = label ‖ 0x00 ‖ context` into `out`.
    ///
    /// # Errors
    /// [`Error::Length`] if `out` is longer than [`MAX_OUTPUT_LEN`].
    pub fn expand_label(&self, label: &str, context: &[u8], out: &mut [u8]) -> Result<()> {
        self.0
            .expand_multi_info(&[label.as_bytes(), &[0], context], out)
            .map_err(|_| too_long(out.len()))
    }

    /// Derives a 32-byte secret for `label` and `context`.
    pub fn derive_secret32(&self, label: &str, context: &[u8]) -> Secret32 {
        let mut out = [0u8; 32];
        // 32 bytes is far below the 8160-byte maximum, so expansion cannot fail.
        let _ = self.expand_label(label, context, &mut out);
        let secret = Secret32::from_bytes(out);
        zeroize::Zeroize::zeroize(&mut out);
        secret
    }

    /// Derives an AES-256-GCM key for `label` and `context`.
    pub fn derive_aead_key(&self, label: &str, context: &[u8]) -> AeadKey {
        AeadKey::from_secret(self.derive_secret32(label, context))
    }
}

/// Plain HKDF-SHA-256 (extract then expand) as RFC 5869 defines it, writing `out.len()` bytes.
///
/// # Errors
/// [`Error::Length`] if `out` is longer than [`MAX_OUTPUT_LEN`].
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| too_long(out.len()))
}

fn too_long(actual: usize) -> Error {
    Error::Length {
        what: "hkdf output",
        expected: MAX_OUTPUT_LEN,
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_contexts_separate_keys() -> Result<()> {
        let prk = Prk::from_secret(Secret32::from_bytes([1; 32]));
        let a = prk.derive_secret32("tessera/v1/a", b"bc");
        let b = prk.derive_secret32("tessera/v1/ab", b"c");
        let c = prk.derive_secret32("tessera/v1/a", b"bc");
        assert!(!a.ct_eq(&b));
        assert!(a.ct_eq(&c));
        let mut long = vec![0u8; MAX_OUTPUT_LEN + 1];
        assert!(matches!(
            prk.expand_label("tessera/v1/a", b"", &mut long),
            Err(Error::Length { .. })
        ));
        Ok(())
    }

    #[test]
    fn extract_matches_plain_hkdf() -> Result<()> {
        let prk = Prk::extract(b"salt", b"ikm");
        let mut via_prk = [0u8; 40];
        prk.expand_label("tessera/v1/x", b"ctx", &mut via_prk)?;
        let mut plain = [0u8; 40];
        hkdf_sha256(b"salt", b"ikm", b"tessera/v1/x\0ctx", &mut plain)?;
        assert_eq!(via_prk, plain);
        Ok(())
    }
}
