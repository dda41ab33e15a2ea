//! Anonymous boxes: public-key encryption to an Ed25519 key through its X25519 twin, without naming the sender.
//!
//! A sender seals for a recipient's Ed25519 verifying key `A` (the one a key bundle already publishes and signs);
//! only the holder of the matching seed opens. The construction is ECIES, as `age`'s X25519 recipients and HPKE's
//! base mode are:
//!
//! 1. `u_A` = the Montgomery form of `A` (the birational map of RFC 7748 §4.1; small-order keys refused);
//! 2. an ephemeral scalar `e` from the OS, `E = X25519(e, 9)`, `s = X25519(e, u_A)`; an all-zero `s` is refused;
//! 3. `key = HKDF-SHA-256(salt = E ‖ u_A, ikm = s, info = "tessera/v2/anon-box" ‖ 0x00 ‖ context)`;
//! 4. the box is `version (1) ‖ E (32) ‖ AES-256-GCM sealed box` ([`AeadKey::seal`]) of the plaintext, with
//!    `version ‖ E` as associated data.
//!
//! The recipient's X25519 scalar is the Ed25519 secret scalar itself (the first half of `SHA-512(seed)`, clamped),
//! so the box needs no new key in the bundle. Using one key for Ed25519 signatures and X25519 agreement is the
//! choice of `age`'s `ssh-ed25519` recipients and of libsodium's `crypto_sign_ed25519_sk_to_curve25519`; it is
//! proven secure jointly (Degabriele, Lehmann, Paterson, Smart and Strefler, "On the joint security of encryption
//! and signature in EMV", and Thormarker, "On using the same key pair for Ed25519 and an X25519 based KEM", 2021),
//! and every derivation here is domain separated from the signatures' messages.
//!
//! # Security
//! A box says nothing about its sender and is not authenticated by one: anybody who knows `A` can make one.
//! What the plaintext claims about its origin must be checked by the caller (a signature inside it). The
//! recipient's secret never meets a ciphertext outside X25519 and AES-GCM: no RSA, so a forged box is no oracle.

use curve25519_dalek::edwards::CompressedEdwardsY;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ring::digest::{SHA512, digest};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::aead::{AeadKey, SEALED_BOX_OVERHEAD};
use crate::error::{Error, Result};
use crate::kdf::Prk;
use crate::random;
use crate::secret::SecretBytes;
use crate::signature::{SigningKey, VerifyingKey};

/// The first byte of every anonymous box.
pub const ANON_BOX_VERSION: u8 = 1;

/// Bytes an anonymous box adds to its plaintext: version, ephemeral key and the AES-GCM sealed box's overhead.
pub const ANON_BOX_OVERHEAD: usize = 1 + 32 + SEALED_BOX_OVERHEAD;

const LABEL_ANON_BOX: &str = "tessera/v2/anon-box";

/// Seals `plaintext` for the holder of `recipient`'s seed, bound to `context` (which the recipient must give again
/// to open: a box made for one purpose does not open for another).
///
/// # Errors
/// [`Error::Crypto`] if `recipient` is not a valid Ed25519 point or has small order (no secret could be agreed
/// with it); [`Error::Randomness`] if the OS gives no randomness.
pub fn seal_to(recipient: &VerifyingKey, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let their = montgomery_of(recipient)?;
    let ephemeral = Zeroizing::new(random::array::<32>()?);
    let ours = MontgomeryPoint::mul_base_clamped(*ephemeral);
    let key = box_key(their.mul_clamped(*ephemeral), &ours, &their, context)?;
    let header = header(&ours);
    let sealed = key.seal(plaintext, &header)?;
    let mut out = Vec::with_capacity(header.len() + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&sealed);
    Ok(out)
}

impl SigningKey {
    /// Opens a box made by [`seal_to`] for this key's verifying key with the same `context`.
    ///
    /// # Errors
    /// [`Error::Crypto`] for anything wrong with the box: its version, length, ephemeral key, tag, recipient or
    /// context.
    pub fn open_anon_box(&self, context: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        let (&version, rest) = sealed.split_first().ok_or(Error::Crypto)?;
        let (ephemeral, body) = rest.split_at_checked(32).ok_or(Error::Crypto)?;
        if version != ANON_BOX_VERSION {
            return Err(Error::Crypto);
        }
        let ephemeral = MontgomeryPoint(ephemeral.try_into().map_err(|_| Error::Crypto)?);
        let ours = montgomery_of(&self.verifying_key())?;
        let scalar = self.x25519_scalar();
        let key = box_key(ephemeral.mul_clamped(*scalar), &ephemeral, &ours, context)?;
        Ok(SecretBytes::new(key.open(body, &header(&ephemeral))?))
    }

    /// The Ed25519 secret scalar before clamping: the first half of `SHA-512(seed)` (RFC 8032 §5.1.5).
    fn x25519_scalar(&self) -> Zeroizing<[u8; 32]> {
        let hashed = digest(&SHA512, self.expose_seed());
        let mut scalar = Zeroizing::new([0u8; 32]);
        if let Some(half) = hashed.as_ref().get(..32) {
            scalar.copy_from_slice(half);
        }
        scalar
    }
}

/// The Montgomery u-coordinate of an Ed25519 public key, refusing non-points and small-order points.
fn montgomery_of(key: &VerifyingKey) -> Result<MontgomeryPoint> {
    let point = CompressedEdwardsY(key.to_bytes())
        .decompress()
        .ok_or(Error::Crypto)?;
    if point.is_small_order() {
        return Err(Error::Crypto);
    }
    Ok(point.to_montgomery())
}

fn header(ephemeral: &MontgomeryPoint) -> [u8; 33] {
    let mut header = [0u8; 33];
    header[0] = ANON_BOX_VERSION;
    header[1..].copy_from_slice(ephemeral.as_bytes());
    header
}

/// The box key from the agreed point, refusing the all-zero output of a small-order ephemeral key.
fn box_key(
    shared: MontgomeryPoint,
    ephemeral: &MontgomeryPoint,
    recipient: &MontgomeryPoint,
    context: &[u8],
) -> Result<AeadKey> {
    let shared = Zeroizing::new(shared.to_bytes());
    if bool::from(shared.ct_eq(&[0u8; 32])) {
        return Err(Error::Crypto);
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    Ok(Prk::extract(&salt, shared.as_ref()).derive_aead_key(LABEL_ANON_BOX, context))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::secret::Secret32;

    fn key(byte: u8) -> SigningKey {
        SigningKey::from_seed(Secret32::from_bytes([byte; 32]))
    }

    #[test]
    fn a_box_opens_for_its_recipient_and_context_only() {
        let alice = key(1);
        let sealed = seal_to(&alice.verifying_key(), b"inbox", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + ANON_BOX_OVERHEAD);
        assert_eq!(
            alice
                .open_anon_box(b"inbox", &sealed)
                .unwrap()
                .expose_secret(),
            b"hello"
        );
        assert!(key(2).open_anon_box(b"inbox", &sealed).is_err());
        assert!(alice.open_anon_box(b"other", &sealed).is_err());
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_fails() {
        let alice = key(3);
        let sealed = seal_to(&alice.verifying_key(), b"c", b"some plaintext").unwrap();
        for index in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[index] ^= 0x01;
            assert!(alice.open_anon_box(b"c", &bad).is_err(), "byte {index}");
        }
        for len in 0..sealed.len() {
            assert!(alice.open_anon_box(b"c", &sealed[..len]).is_err());
        }
    }

    #[test]
    fn small_order_keys_are_refused_both_ways() {
        // The Edwards identity (0, 1) has order 1; its encoding is 1 followed by zeros.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(seal_to(&VerifyingKey::from(identity), b"c", b"x").is_err());
        // An ephemeral key of order 1 on the Montgomery side (u = 0) agrees on zero: refused.
        let alice = key(4);
        let mut forged = vec![ANON_BOX_VERSION];
        forged.extend_from_slice(&[0u8; 32]);
        forged.extend_from_slice(&[0u8; SEALED_BOX_OVERHEAD]);
        assert!(alice.open_anon_box(b"c", &forged).is_err());
    }

    #[test]
    fn the_recipient_scalar_matches_the_published_key() {
        // RFC 8032 §7.1 test 1: the secret key (seed) and its public key. The X25519 public key computed from the
        // secret scalar must equal the birational image of the published Ed25519 key.
        let seed: [u8; 32] = [
            0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec,
            0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03,
            0x1c, 0xae, 0x7f, 0x60,
        ];
        let public: [u8; 32] = [
            0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64,
            0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68,
            0xf7, 0x07, 0x51, 0x1a,
        ];
        let signing = SigningKey::from_seed(Secret32::from_bytes(seed));
        assert_eq!(signing.verifying_key().to_bytes(), public);
        let from_secret = MontgomeryPoint::mul_base_clamped(*signing.x25519_scalar());
        let from_public = montgomery_of(&VerifyingKey::from(public)).unwrap();
        assert_eq!(from_secret, from_public);
    }
}
