//! Secret newtypes: zeroized on drop, never printed, never serialised, never copied implicitly.

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};
use crate::hash::constant_time_eq;
use crate::random;

/// Implements `Debug` as `[redacted]` for types holding secrets; the layers above use it for their own secrets.
#[macro_export]
macro_rules! redacted_debug {
    ($($ty:ty),+ $(,)?) => {$(
        impl ::core::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str("[redacted]")
            }
        }
    )+};
}

/// A secret byte string of any length (a decrypted key, an HKDF output, an encoded private key).
///
/// # Security
/// The bytes are wiped when the value is dropped. They leave only through [`SecretBytes::expose_secret`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

crate::redacted_debug!(SecretBytes);

impl SecretBytes {
    /// Takes ownership of `bytes` as a secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Fills a new secret of `len` bytes from the operating system's random number generator.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the generator fails.
    pub fn generate(len: usize) -> Result<Self> {
        let mut bytes = vec![0u8; len];
        random::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The secret bytes.
    ///
    /// # Security
    /// Do not copy them into a buffer that is not wiped, and never log them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `other` holds the same bytes, compared in time that depends only on the lengths.
    ///
    /// # Security
    /// Secrets have no `PartialEq`, so that no comparison of them can leak timing through `==`.
    pub fn ct_eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(mut bytes: Zeroizing<Vec<u8>>) -> Self {
        Self(std::mem::take(&mut *bytes))
    }
}

/// A 32-byte secret: an exchange secret, a seed, an HKDF output used as a key.
///
/// # Security
/// The bytes are wiped when the value is dropped. They leave only through [`Secret32::expose_secret`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Secret32([u8; 32]);

crate::redacted_debug!(Secret32);

impl Secret32 {
    /// Takes `bytes` as a secret. The caller should wipe its own copy, if any.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Draws a new secret from the operating system's random number generator.
    ///
    /// # Errors
    /// [`Error::Randomness`] if the generator fails.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        random::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    /// The secret bytes.
    ///
    /// # Security
    /// Do not copy them into a buffer that is not wiped, and never log them.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `other` holds the same bytes, compared in constant time.
    ///
    /// # Security
    /// Secrets have no `PartialEq`, so that no comparison of them can leak timing through `==`.
    pub fn ct_eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl TryFrom<&[u8]> for Secret32 {
    type Error = Error;

    fn try_from(bytes: &[u8]) -> Result<Self> {
        let array: [u8; 32] = bytes.try_into().map_err(|_| Error::Length {
            what: "secret",
            expected: 32,
            actual: bytes.len(),
        })?;
        Ok(Self(array))
    }
}

/// A secret text (a PEM-encoded private key).
///
/// # Security
/// The text is wiped when the value is dropped. It leaves only through [`SecretString::expose_secret`].
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretString(String);

crate::redacted_debug!(SecretString);

impl SecretString {
    /// Takes ownership of `text` as a secret.
    pub fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret text.
    ///
    /// # Security
    /// Do not copy it into a buffer that is not wiped, and never log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    /// Whether `other` holds the same text, compared in time that depends only on the lengths.
    ///
    /// # Security
    /// Secrets have no `PartialEq`, so that no comparison of them can leak timing through `==`.
    pub fn ct_eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let bytes = SecretBytes::new(vec![0x41; 8]);
        let fixed = Secret32::from_bytes([0x42; 32]);
        let text = SecretString::new("-----BEGIN PRIVATE KEY-----".into());
        for printed in [
            format!("{bytes:?}"),
            format!("{fixed:?}"),
            format!("{text:?}"),
            format!("{bytes:#?}"),
        ] {
            assert_eq!(printed, "[redacted]");
        }
    }

    #[test]
    fn generated_secrets_differ() -> Result<()> {
        assert!(!Secret32::generate()?.ct_eq(&Secret32::generate()?));
        let fixed = Secret32::from_bytes([3; 32]);
        assert!(fixed.ct_eq(&fixed.clone()));
        assert_eq!(SecretBytes::generate(48)?.len(), 48);
        Ok(())
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert!(matches!(
            Secret32::try_from(&[0u8; 31][..]),
            Err(Error::Length {
                expected: 32,
                actual: 31,
                ..
            })
        ));
    }
}
