//! RSA-OAEP key wrapping (RFC 8017 §7.1) with SHA-256 and MGF1-SHA-256, on `rsa` 0.10.
//!
//! A wrapped key is `version ‖ alg ‖ RSA-OAEP ciphertext`. The OAEP label binds a ciphertext to its context
//! (Tessera's exchange data uses `id ‖ fingerprint`), so a wrap cannot be replayed elsewhere.
//! Keys travel as PKCS#8 (private) and SPKI (public), in DER or PEM; import accepts 2048 to 4096-bit moduli
//! with the public exponent 65537 only.

use getrandom::SysRng;
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::sha2::Sha256;
use rsa::traits::{PrivateKeyParts, PublicKeyParts};
use rsa::{Oaep, PrivateKey, PublicKey};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::secret::{SecretBytes, SecretString};

/// Format version byte of a wrapped key.
pub const WRAPPED_KEY_VERSION: u8 = 1;
/// Algorithm byte of RSA-OAEP with SHA-256 and MGF1-SHA-256.
pub const ALG_RSA_OAEP_SHA256: u8 = 1;
/// Smallest modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 4096;
/// The only public exponent accepted.
pub const RSA_PUBLIC_EXPONENT: u32 = 65537;
const SHA256_LEN: usize = 32;

/// Modulus sizes Tessera generates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RsaKeySize {
    /// 2048 bits, the default (iCure-compatible).
    #[default]
    Bits2048,
    /// 3072 bits.
    Bits3072,
    /// 4096 bits.
    Bits4096,
}

impl RsaKeySize {
    /// The modulus size in bits.
    pub fn bits(self) -> usize {
        match self {
            Self::Bits2048 => 2048,
            Self::Bits3072 => 3072,
            Self::Bits4096 => 4096,
        }
    }
}

/// An RSA private key, usable only for OAEP unwrapping.
///
/// # Security
/// The key material is wiped on drop (by `rsa`), never printed, and leaves only through
/// [`RsaPrivateKey::to_pkcs8_der`] / [`RsaPrivateKey::to_pkcs8_pem`], which return secrets.
#[derive(Clone)]
pub struct RsaPrivateKey(PrivateKey);

crate::redacted_debug!(RsaPrivateKey);

/// An RSA public key, usable for OAEP wrapping.
#[derive(Clone, PartialEq, Eq)]
pub struct RsaPublicKey(PublicKey);

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaPublicKey({} bits)", self.bits())
    }
}

/// A key wrapped with RSA-OAEP: `version ‖ alg ‖ ciphertext`. Holds untrusted bytes until unwrapped.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WrappedKey(Vec<u8>);

impl RsaPrivateKey {
    /// Generates a new key pair with public exponent 65537.
    ///
    /// # Errors
    /// [`Error::Rsa`] if generation fails (the operating system's generator failed).
    pub fn generate(size: RsaKeySize) -> Result<Self> {
        PrivateKey::new(&mut SysRng, size.bits())
            .map(Self)
            .map_err(|_| Error::Rsa)
    }

    /// Imports a PKCS#8 DER private key.
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] if the bytes are not an RSA PKCS#8 key; [`Error::RsaKeyTooSmall`],
    /// [`Error::RsaKeyTooLarge`] or [`Error::RsaExponent`] if the key is outside Tessera's policy.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self> {
        let key = PrivateKey::from_pkcs8_der(der)
            .map_err(|_| Error::KeyEncoding { kind: "pkcs8 der" })?;
        check_policy(&key)?;
        Ok(Self(key))
    }

    /// Imports a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`).
    ///
    /// # Errors
    /// As [`RsaPrivateKey::from_pkcs8_der`], with `kind` `"pkcs8 pem"`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        let key = PrivateKey::from_pkcs8_pem(pem)
            .map_err(|_| Error::KeyEncoding { kind: "pkcs8 pem" })?;
        check_policy(&key)?;
        Ok(Self(key))
    }

    /// Exports the key as PKCS#8 DER. DER is canonical: one key has exactly one encoding.
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] if encoding fails.
    pub fn to_pkcs8_der(&self) -> Result<SecretBytes> {
        let doc = self
            .0
            .to_pkcs8_der()
            .map_err(|_| Error::KeyEncoding { kind: "pkcs8 der" })?;
        Ok(SecretBytes::new(doc.as_bytes().to_vec()))
    }

    /// Exports the key as PKCS#8 PEM with `\n` line endings.
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] if encoding fails.
    pub fn to_pkcs8_pem(&self) -> Result<SecretString> {
        let pem = self
            .0
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| Error::KeyEncoding { kind: "pkcs8 pem" })?;
        Ok(SecretString::new(pem.as_str().to_owned()))
    }

    /// The canonical encoding of the key's secret: `k (u16) ‖ n (k bytes) ‖ min(p, q) (k bytes)`, big-endian,
    /// where `k` is the modulus length in bytes and the prime is left-padded with zeros.
    ///
    /// The modulus and the smaller prime determine the key, and unlike PKCS#8 (whose private exponent may be
    /// computed modulo φ(n) or λ(n), and whose primes come in either order) every tool gives the same bytes.
    /// Tessera derives an owner's other secrets from them (DESIGN.md §5).
    ///
    /// # Errors
    /// [`Error::Rsa`] if the key does not hold exactly two primes.
    pub fn to_canonical_bytes(&self) -> Result<SecretBytes> {
        let k = self.0.size();
        let width = u16::try_from(k).map_err(|_| Error::Rsa)?;
        let [p, q] = self.0.primes() else {
            return Err(Error::Rsa);
        };
        let p = fixed_width_be(&p.to_be_bytes(), k)?;
        let q = fixed_width_be(&q.to_be_bytes(), k)?;
        // Fixed-width big-endian byte strings compare like the numbers they encode.
        let smaller = if *p < *q { p } else { q };
        let mut out = Vec::with_capacity(2 + 2 * k);
        out.extend_from_slice(&width.to_be_bytes());
        out.extend_from_slice(&fixed_width_be(&self.0.n_bytes(), k)?);
        out.extend_from_slice(&smaller);
        Ok(SecretBytes::new(out))
    }

    /// The public half.
    pub fn public_key(&self) -> RsaPublicKey {
        RsaPublicKey(self.0.to_public_key())
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        modulus_bits(&self.0)
    }

    /// Unwraps a key wrapped for this key's public half with the same `label`.
    ///
    /// # Security
    /// Decryption is blinded and constant-time in `rsa` 0.10; callers must still verify the signature over
    /// the artefact carrying `wrapped` before calling this (verify-then-decrypt, DESIGN.md §4).
    ///
    /// # Errors
    /// [`Error::Crypto`] for anything wrong: version, algorithm, length, padding, label or key.
    pub fn unwrap(&self, wrapped: &WrappedKey, label: &[u8]) -> Result<SecretBytes> {
        let [version, alg, ciphertext @ ..] = wrapped.0.as_slice() else {
            return Err(Error::Crypto);
        };
        if *version != WRAPPED_KEY_VERSION || *alg != ALG_RSA_OAEP_SHA256 {
            return Err(Error::Crypto);
        }
        self.0
            .decrypt(Oaep::<Sha256>::new_with_label(label), ciphertext)
            .map(SecretBytes::new)
            .map_err(|_| Error::Crypto)
    }
}

impl RsaPublicKey {
    /// Imports an SPKI DER public key.
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] if the bytes are not an RSA SPKI key; [`Error::RsaKeyTooSmall`],
    /// [`Error::RsaKeyTooLarge`] or [`Error::RsaExponent`] if the key is outside Tessera's policy.
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        let key = PublicKey::from_public_key_der(der)
            .map_err(|_| Error::KeyEncoding { kind: "spki der" })?;
        check_policy(&key)?;
        Ok(Self(key))
    }

    /// Imports an SPKI PEM public key (`-----BEGIN PUBLIC KEY-----`).
    ///
    /// # Errors
    /// As [`RsaPublicKey::from_spki_der`], with `kind` `"spki pem"`.
    pub fn from_spki_pem(pem: &str) -> Result<Self> {
        let key = PublicKey::from_public_key_pem(pem)
            .map_err(|_| Error::KeyEncoding { kind: "spki pem" })?;
        check_policy(&key)?;
        Ok(Self(key))
    }

    /// Exports the key as SPKI DER (canonical: the bytes Tessera fingerprints).
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] if encoding fails.
    pub fn to_spki_der(&self) -> Result<Vec<u8>> {
        let doc = self
            .0
            .to_public_key_der()
            .map_err(|_| Error::KeyEncoding { kind: "spki der" })?;
        Ok(doc.as_bytes().to_vec())
    }

    /// Exports the key as SPKI PEM with `\n` line endings.
    ///
    /// # Errors
    /// [`Error::KeyEncoding`] if encoding fails.
    pub fn to_spki_pem(&self) -> Result<String> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| Error::KeyEncoding { kind: "spki pem" })
    }

    /// Modulus size in bits.
    pub fn bits(&self) -> usize {
        modulus_bits(&self.0)
    }

    /// Largest secret this key can wrap: `k - 2·hLen - 2` bytes (190 for 2048 bits).
    pub fn max_wrap_len(&self) -> usize {
        self.0.size().saturating_sub(2 * SHA256_LEN + 2)
    }

    /// Wraps `secret` for this key, binding `label`.
    ///
    /// # Errors
    /// [`Error::Length`] if `secret` is longer than [`RsaPublicKey::max_wrap_len`];
    /// [`Error::Rsa`] if encryption fails otherwise.
    pub fn wrap(&self, secret: &[u8], label: &[u8]) -> Result<WrappedKey> {
        if secret.len() > self.max_wrap_len() {
            return Err(Error::Length {
                what: "secret to wrap",
                expected: self.max_wrap_len(),
                actual: secret.len(),
            });
        }
        let ciphertext = self
            .0
            .encrypt(&mut SysRng, Oaep::<Sha256>::new_with_label(label), secret)
            .map_err(|_| Error::Rsa)?;
        let mut bytes = Vec::with_capacity(2 + ciphertext.len());
        bytes.extend_from_slice(&[WRAPPED_KEY_VERSION, ALG_RSA_OAEP_SHA256]);
        bytes.extend_from_slice(&ciphertext);
        Ok(WrappedKey(bytes))
    }
}

impl WrappedKey {
    /// Takes untrusted bytes (as received) as a wrapped key; they are checked only when unwrapped.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Frames a bare RSA-OAEP-SHA-256 ciphertext (from another implementation) as a wrapped key.
    pub fn from_rsa_ciphertext(ciphertext: &[u8]) -> Self {
        let mut bytes = Vec::with_capacity(2 + ciphertext.len());
        bytes.extend_from_slice(&[WRAPPED_KEY_VERSION, ALG_RSA_OAEP_SHA256]);
        bytes.extend_from_slice(ciphertext);
        Self(bytes)
    }

    /// The encoded bytes, `version ‖ alg ‖ ciphertext`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bare RSA-OAEP ciphertext after the two header bytes (empty if the value is shorter).
    pub fn rsa_ciphertext(&self) -> &[u8] {
        self.0.get(2..).unwrap_or_default()
    }
}

/// Re-encodes a big-endian number in exactly `width` bytes.
fn fixed_width_be(bytes: &[u8], width: usize) -> Result<Zeroizing<Vec<u8>>> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = bytes.get(first..).unwrap_or_default();
    let pad = width.checked_sub(significant.len()).ok_or(Error::Rsa)?;
    let mut out = Zeroizing::new(vec![0u8; pad]);
    out.extend_from_slice(significant);
    Ok(out)
}

fn modulus_bits(key: &impl PublicKeyParts) -> usize {
    let n = key.n_bytes();
    let Some(first) = n.iter().position(|b| *b != 0) else {
        return 0;
    };
    let leading = n.get(first).map_or(0, |b| b.leading_zeros() as usize);
    (n.len() - first) * 8 - leading
}

fn check_policy(key: &impl PublicKeyParts) -> Result<()> {
    let bits = modulus_bits(key);
    if bits < MIN_RSA_BITS {
        return Err(Error::RsaKeyTooSmall { bits });
    }
    if bits > MAX_RSA_BITS {
        return Err(Error::RsaKeyTooLarge { bits });
    }
    let e = key.e_bytes();
    let significant = e
        .iter()
        .position(|b| *b != 0)
        .and_then(|first| e.get(first..));
    if significant != Some(&RSA_PUBLIC_EXPONENT.to_be_bytes()[1..]) {
        return Err(Error::RsaExponent);
    }
    Ok(())
}
