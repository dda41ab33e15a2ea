//! Exchange data: one secret shared by a delegator and a delegate, wrapped for each trusted key of both,
//! committed and signed (DESIGN.md §5.2), and the keys derived from it (§5.3).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tessera_primitives::{
    AeadKey, Prk, Secret32, Signature, WrappedKey, hmac_sha256, verify_hmac_sha256,
};

use crate::canonical::{Reader, Writer};
use crate::error::{Error, Result};
use crate::id::{
    ACCESS_CONTROL_KEY_LEN, AccessControlKey, DelegationKey, EntityType, ExchangeDataId,
    Fingerprint, FormatVersion, OwnerId, fixed_bytes, var_bytes,
};
use crate::owner::{OwnerKeys, SignatureBytes, UnwrapKey};
use crate::trust::TrustedBundle;

const TAG_EXCHANGE_DATA: &str = "tessera/v1/exchange-data";
const TAG_COMMIT: &[u8] = b"tessera/v1/commit\0";
const TAG_WRAP: &str = "tessera/v2/wrap";
pub(crate) const LABEL_EXCHANGE_KEY: &str = "tessera/v1/exchange-key";
pub(crate) const LABEL_ACCESS: &str = "tessera/v1/access";
pub(crate) const LABEL_ACK: &str = "tessera/v1/ack";

/// The most wraps one exchange data may carry when read from an inbox message (two parties, a few keys each).
pub const MAX_WRAPS: u32 = 32;

/// A wrapped exchange secret as it travels: `version ‖ alg ‖ RSA-OAEP ciphertext`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WrappedSecret(#[serde(with = "var_bytes")] pub Vec<u8>);

/// One wrap of an exchange secret, signed by the party (delegator or delegate) that made it.
///
/// The signature is Ed25519 by the signer's derived signing key over
/// `"tessera/v2/wrap" ‖ 0x00 ‖ version ‖ exchange data id ‖ delegator ‖ delegate ‖ commitment ‖ recipient fingerprint
/// ‖ signer fingerprint ‖ var(wrap bytes)` (docs/formats.md), so a wrap cannot be altered, made by anybody else,
/// or moved to another key or other exchange data without the signature failing.
///
/// # Security
/// [`ExchangeData::open`] verifies this signature against a trusted bundle of a party before the private key
/// sees the ciphertext: no ciphertext chosen by the server reaches RSA decryption.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedWrap {
    /// The wrapped secret.
    pub wrapped: WrappedSecret,
    /// Fingerprint of the party bundle that signed the wrap.
    pub signer: Fingerprint,
    /// The signer's Ed25519 signature over the wrap's canonical bytes.
    pub signature: SignatureBytes,
}

/// Exchange data, public and stored on the server: who shares with whom, the commitment to the secret,
/// the delegator's signature, and the secret wrapped once per trusted key of both parties, each wrap signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeData {
    version: FormatVersion,
    id: ExchangeDataId,
    delegator: OwnerId,
    delegate: OwnerId,
    created: u64,
    #[serde(with = "fixed_bytes")]
    commitment: [u8; 32],
    signer: Fingerprint,
    signature: SignatureBytes,
    wrapped: BTreeMap<Fingerprint, SignedWrap>,
}

impl ExchangeData {
    /// Creates exchange data from `delegator` to `delegate` with a fresh secret, wrapped for the delegator's own key
    /// and for every bundle in `recipients` (trusted keys of either party), and signs it and every wrap.
    ///
    /// # Errors
    /// [`Error::WrongOwner`] if a recipient belongs to neither party; [`Error::Malformed`] if no recipient belongs
    /// to the delegate; [`Error::Primitive`] if randomness or wrapping fails.
    pub fn create(
        delegator: &OwnerKeys,
        delegate: OwnerId,
        recipients: &[&TrustedBundle],
        created: u64,
    ) -> Result<(Self, ExchangeSecret)> {
        for recipient in recipients {
            if recipient.owner() != delegate && recipient.owner() != delegator.owner() {
                return Err(Error::WrongOwner {
                    fingerprint: recipient.fingerprint(),
                    expected: delegate,
                    found: recipient.owner(),
                });
            }
        }
        if !recipients.iter().any(|r| r.owner() == delegate) && delegate != delegator.owner() {
            return Err(Error::Malformed {
                what: "exchange data",
                reason: "no trusted key of the delegate to wrap the secret for",
            });
        }
        let id = ExchangeDataId::generate()?;
        let secret = Secret32::generate()?;
        let mut data = Self {
            version: FormatVersion::V2,
            id,
            delegator: delegator.owner(),
            delegate,
            created,
            commitment: commitment(&secret, &id),
            signer: delegator.fingerprint(),
            signature: SignatureBytes([0; 64]),
            wrapped: BTreeMap::new(),
        };
        data.signature = SignatureBytes(delegator.sign(&data.canonical_bytes()).to_bytes());
        let own_key = delegator.rsa_private_key().public_key();
        data.insert_wrap(delegator, &secret, delegator.fingerprint(), &own_key)?;
        for recipient in recipients {
            data.insert_wrap(
                delegator,
                &secret,
                recipient.fingerprint(),
                recipient.bundle().rsa_public_key(),
            )?;
        }
        let opened = ExchangeSecret::new(id, data.delegator, delegate, secret, true);
        Ok((data, opened))
    }

    /// The id.
    pub fn id(&self) -> ExchangeDataId {
        self.id
    }

    /// The owner that created and signed it, and that encrypts new data with it.
    pub fn delegator(&self) -> OwnerId {
        self.delegator
    }

    /// The owner it shares with.
    pub fn delegate(&self) -> OwnerId {
        self.delegate
    }

    /// Creation time, in seconds since the Unix epoch.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// Fingerprint of the delegator bundle that signed it.
    pub fn signer(&self) -> Fingerprint {
        self.signer
    }

    /// The signed wrap for the key with `fingerprint`, if any (not verified: see [`ExchangeData::open`]).
    pub fn wrap(&self, fingerprint: &Fingerprint) -> Option<&SignedWrap> {
        self.wrapped.get(fingerprint)
    }

    /// Fingerprints of the keys the secret is wrapped for.
    pub fn wrapped_for(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.wrapped.keys().copied()
    }

    /// The canonical bytes the delegator signs (docs/formats.md); the wraps are not part of them, each wrap carries
    /// its own signature (see [`SignedWrap`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        self.signed_fields(Writer::new(TAG_EXCHANGE_DATA)).finish()
    }

    /// The fields the delegator signs, in order: version, id, delegator, delegate, created, commitment, signer.
    fn signed_fields(&self, writer: Writer) -> Writer {
        writer
            .u8(self.version.get())
            .fixed(self.id.as_bytes())
            .fixed(self.delegator.as_bytes())
            .fixed(self.delegate.as_bytes())
            .u64(self.created)
            .fixed(&self.commitment)
            .fixed(self.signer.as_bytes())
    }

    /// The whole exchange data, wraps included, as the plaintext of an inbox message (docs/formats.md,
    /// "Inbox message"): `version ‖ id ‖ delegator ‖ delegate ‖ created ‖ commitment ‖ signer ‖ signature ‖ u32
    /// count ‖ count × (recipient ‖ var(wrap) ‖ wrap signer ‖ wrap signature)`, wraps in ascending recipient order.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let count = u32::try_from(self.wrapped.len()).map_err(|_| Error::Malformed {
            what: "exchange data",
            reason: "too many wraps",
        })?;
        let mut writer = self
            .signed_fields(Writer::untagged())
            .fixed(&self.signature.0)
            .u32(count);
        for (recipient, wrap) in &self.wrapped {
            writer = writer
                .fixed(recipient.as_bytes())
                .var(&wrap.wrapped.0)?
                .fixed(wrap.signer.as_bytes())
                .fixed(&wrap.signature.0);
        }
        Ok(writer.finish())
    }

    /// Reads [`ExchangeData::encode`]'s bytes, strictly: one encoding per value (wraps in ascending order, no
    /// repeat, at most [`MAX_WRAPS`], nothing after the last).
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "exchange data";
        let mut reader = Reader::new(bytes, WHAT);
        let version = FormatVersion::check(reader.u8()?, WHAT)?;
        let mut data = Self {
            version,
            id: ExchangeDataId::from_bytes(reader.fixed()?),
            delegator: OwnerId::from_bytes(reader.fixed()?),
            delegate: OwnerId::from_bytes(reader.fixed()?),
            created: reader.u64()?,
            commitment: reader.fixed()?,
            signer: Fingerprint::from_bytes(reader.fixed()?),
            signature: SignatureBytes(reader.fixed()?),
            wrapped: BTreeMap::new(),
        };
        let count = reader.u32()?;
        if count > MAX_WRAPS {
            return Err(Error::Malformed {
                what: WHAT,
                reason: "too many wraps",
            });
        }
        for _ in 0..count {
            let recipient = Fingerprint::from_bytes(reader.fixed()?);
            let wrap = SignedWrap {
                wrapped: WrappedSecret(reader.var()?.to_vec()),
                signer: Fingerprint::from_bytes(reader.fixed()?),
                signature: SignatureBytes(reader.fixed()?),
            };
            let ascending = data
                .wrapped
                .last_key_value()
                .is_none_or(|(last, _)| *last < recipient);
            if !ascending {
                return Err(Error::Malformed {
                    what: WHAT,
                    reason: "wraps out of order or repeated",
                });
            }
            data.wrapped.insert(recipient, wrap);
        }
        reader.end()?;
        Ok(data)
    }

    /// Checks the delegator's signature with `signer`, a trusted bundle of the delegator.
    ///
    /// # Errors
    /// [`Error::WrongOwner`] if `signer` is not the delegator's; [`Error::Crypto`] if it is not the bundle that
    /// signed or the signature does not verify.
    pub fn verify(&self, signer: &TrustedBundle) -> Result<()> {
        if signer.owner() != self.delegator {
            return Err(Error::WrongOwner {
                fingerprint: signer.fingerprint(),
                expected: self.delegator,
                found: signer.owner(),
            });
        }
        if signer.fingerprint() != self.signer {
            return Err(Error::Crypto);
        }
        Ok(signer
            .bundle()
            .verifying_key()
            .verify(&self.canonical_bytes(), &Signature::from(self.signature.0))?)
    }

    /// Verifies the exchange data and the wrap for `key`, and only then unwraps the secret with `key` and checks it
    /// against the commitment.
    ///
    /// `parties` are the bundles of the delegator and of the delegate that the caller trusts (through its
    /// [`TrustPolicy`](crate::TrustPolicy)); their order does not matter. One slice rather than a `signer` argument
    /// plus a slice, because both checks pick their bundle by the fingerprint the data names: the exchange data's
    /// `signer` must be a delegator bundle among them, and each wrap's `signer` a bundle of either party among them
    /// (a wrap added later by the delegate with [`ExchangeData::add_wrap`] is signed by the delegate). A caller
    /// passes every bundle it trusts for the two parties and need not know which key signed what.
    ///
    /// Order: (1) every bundle in `parties` belongs to the delegator or the delegate; (2) the delegator's
    /// signature over [`ExchangeData::canonical_bytes`] verifies with the delegator bundle named by `signer`;
    /// (3) the wrap for `key`'s fingerprint exists; (4) that wrap's signature verifies with the party bundle
    /// named by the wrap's `signer`; (5) only then `key.unwrap_key`; (6) the secret matches the commitment.
    ///
    /// # Security
    /// Verify-then-decrypt for every byte the private key sees: a forged exchange data, and a wrap that is altered,
    /// unsigned, signed by anybody but a trusted key of a party, or moved from another key or exchange data, never
    /// reaches `unwrap_key` (`crates/tessera-keys/tests/signed_wraps.rs`). The commitment
    /// still catches a wrap of another secret signed by a party.
    ///
    /// # Errors
    /// [`Error::WrongOwner`] if a bundle of `parties` belongs to neither party; [`Error::Crypto`] if no delegator
    /// bundle of `parties` is the named signer, or the exchange data's signature does not verify;
    /// [`Error::NoWrapForKey`] if nothing is wrapped for `key`; [`Error::Crypto`] if the wrap's signer is not among
    /// `parties`, its signature does not verify, it does not unwrap or it does not match the commitment.
    pub fn open(&self, key: &impl UnwrapKey, parties: &[&TrustedBundle]) -> Result<ExchangeSecret> {
        self.check_parties(parties)?;
        let signer = parties
            .iter()
            .find(|bundle| bundle.owner() == self.delegator && bundle.fingerprint() == self.signer)
            .ok_or(Error::Crypto)?;
        self.verify(signer)?;
        let fingerprint = key.fingerprint();
        let wrap = self
            .wrapped
            .get(&fingerprint)
            .ok_or(Error::NoWrapForKey(fingerprint))?;
        self.verify_wrap(&fingerprint, wrap, parties)?;
        let unwrapped = key.unwrap_key(
            &WrappedKey::from_bytes(wrap.wrapped.0.clone()),
            &wrap_label(&self.id, &fingerprint),
        )?;
        let secret = Secret32::try_from(unwrapped.expose_secret()).map_err(|_| Error::Crypto)?;
        self.check_commitment(&secret)?;
        let self_signed = key.owner() == self.delegator;
        Ok(ExchangeSecret::new(
            self.id,
            self.delegator,
            self.delegate,
            secret,
            self_signed,
        ))
    }

    /// Wraps the secret for another trusted key of either party ("give access back"), signed by `adder`, a party
    /// that knows the secret (the delegator, or the delegate after opening it). The exchange data's own signature
    /// is unchanged.
    ///
    /// # Errors
    /// [`Error::ExchangeMismatch`] if `secret` belongs to other exchange data or fails the commitment;
    /// [`Error::WrongOwner`] if `adder` or `bundle` belongs to neither party; [`Error::Primitive`] if wrapping fails.
    pub fn add_wrap(
        &mut self,
        adder: &OwnerKeys,
        secret: &ExchangeSecret,
        bundle: &TrustedBundle,
    ) -> Result<()> {
        if secret.id != self.id || self.check_commitment(&secret.secret).is_err() {
            return Err(Error::ExchangeMismatch);
        }
        if !self.is_party(adder.owner()) {
            return Err(Error::WrongOwner {
                fingerprint: adder.fingerprint(),
                expected: self.delegator,
                found: adder.owner(),
            });
        }
        if !self.is_party(bundle.owner()) {
            return Err(Error::WrongOwner {
                fingerprint: bundle.fingerprint(),
                expected: self.delegate,
                found: bundle.owner(),
            });
        }
        self.insert_wrap(
            adder,
            &secret.secret,
            bundle.fingerprint(),
            bundle.bundle().rsa_public_key(),
        )
    }

    /// The canonical bytes a wrap's signer signs (docs/formats.md).
    fn wrap_message(
        &self,
        recipient: &Fingerprint,
        signer: &Fingerprint,
        wrapped: &[u8],
    ) -> Result<Vec<u8>> {
        Ok(Writer::new(TAG_WRAP)
            .u8(self.version.get())
            .fixed(self.id.as_bytes())
            .fixed(self.delegator.as_bytes())
            .fixed(self.delegate.as_bytes())
            .fixed(&self.commitment)
            .fixed(recipient.as_bytes())
            .fixed(signer.as_bytes())
            .var(wrapped)?
            .finish())
    }

    /// Checks the signature of `wrap`, the wrap for `recipient`, with the bundle of `parties` it names.
    fn verify_wrap(
        &self,
        recipient: &Fingerprint,
        wrap: &SignedWrap,
        parties: &[&TrustedBundle],
    ) -> Result<()> {
        // A signer outside the given bundles is as good as no signature: the server chose the field.
        let signer = parties
            .iter()
            .find(|bundle| bundle.fingerprint() == wrap.signer && self.is_party(bundle.owner()))
            .ok_or(Error::Crypto)?;
        let message = self
            .wrap_message(recipient, &wrap.signer, &wrap.wrapped.0)
            .map_err(|_| Error::Crypto)?;
        Ok(signer
            .bundle()
            .verifying_key()
            .verify(&message, &Signature::from(wrap.signature.0))?)
    }

    fn check_parties(&self, parties: &[&TrustedBundle]) -> Result<()> {
        match parties.iter().find(|bundle| !self.is_party(bundle.owner())) {
            Some(stranger) => Err(Error::WrongOwner {
                fingerprint: stranger.fingerprint(),
                expected: self.delegator,
                found: stranger.owner(),
            }),
            None => Ok(()),
        }
    }

    fn is_party(&self, owner: OwnerId) -> bool {
        owner == self.delegator || owner == self.delegate
    }

    fn insert_wrap(
        &mut self,
        signer: &OwnerKeys,
        secret: &Secret32,
        fingerprint: Fingerprint,
        key: &tessera_primitives::RsaPublicKey,
    ) -> Result<()> {
        let wrapped = key.wrap(secret.expose_secret(), &wrap_label(&self.id, &fingerprint))?;
        let wrapped = wrapped.as_bytes().to_vec();
        let signature =
            signer.sign(&self.wrap_message(&fingerprint, &signer.fingerprint(), &wrapped)?);
        self.wrapped.insert(
            fingerprint,
            SignedWrap {
                wrapped: WrappedSecret(wrapped),
                signer: signer.fingerprint(),
                signature: SignatureBytes(signature.to_bytes()),
            },
        );
        Ok(())
    }

    fn check_commitment(&self, secret: &Secret32) -> Result<()> {
        Ok(verify_hmac_sha256(
            secret.expose_secret(),
            &commitment_message(&self.id),
            &self.commitment,
        )?)
    }
}

/// `HMAC-SHA-256(S, "tessera/v1/commit" ‖ 0x00 ‖ id)`.
fn commitment(secret: &Secret32, id: &ExchangeDataId) -> [u8; 32] {
    hmac_sha256(secret.expose_secret(), &commitment_message(id))
}

fn commitment_message(id: &ExchangeDataId) -> [u8; TAG_COMMIT.len() + 16] {
    let mut message = [0u8; TAG_COMMIT.len() + 16];
    let (tag, rest) = message.split_at_mut(TAG_COMMIT.len());
    tag.copy_from_slice(TAG_COMMIT);
    rest.copy_from_slice(id.as_bytes());
    message
}

/// OAEP label of a wrap: `id ‖ fingerprint`, binding the wrap to its exchange data and its key.
fn wrap_label(id: &ExchangeDataId, fingerprint: &Fingerprint) -> [u8; 48] {
    let mut label = [0u8; 48];
    let (head, tail) = label.split_at_mut(16);
    head.copy_from_slice(id.as_bytes());
    tail.copy_from_slice(fingerprint.as_bytes());
    label
}

/// An opened exchange data: its secret and the keys derived from it, cached.
///
/// # Security
/// Holds the exchange secret; wiped on drop, never printed.
#[derive(Clone)]
pub struct ExchangeSecret {
    id: ExchangeDataId,
    delegator: OwnerId,
    delegate: OwnerId,
    secret: Secret32,
    self_signed: bool,
    exchange_key: AeadKey,
    access_secret: Prk,
}

tessera_primitives::redacted_debug!(ExchangeSecret);

impl ExchangeSecret {
    pub(crate) fn new(
        id: ExchangeDataId,
        delegator: OwnerId,
        delegate: OwnerId,
        secret: Secret32,
        self_signed: bool,
    ) -> Self {
        let prk = Prk::from_secret(secret.clone());
        Self {
            id,
            delegator,
            delegate,
            exchange_key: prk.derive_aead_key(LABEL_EXCHANGE_KEY, id.as_bytes()),
            access_secret: Prk::from_secret(prk.derive_secret32(LABEL_ACCESS, id.as_bytes())),
            secret,
            self_signed,
        }
    }

    /// Id of the exchange data.
    pub fn id(&self) -> ExchangeDataId {
        self.id
    }

    /// The delegator.
    pub fn delegator(&self) -> OwnerId {
        self.delegator
    }

    /// The delegate.
    pub fn delegate(&self) -> OwnerId {
        self.delegate
    }

    /// Whether the owner that opened it also signed it, which it must have to encrypt new data with it.
    pub fn is_self_signed(&self) -> bool {
        self.self_signed
    }

    /// The exchange key, to seal new entity keys, secret ids and owning-entity ids for the delegate.
    ///
    /// # Errors
    /// [`Error::NotSignedBySelf`] unless the owner using it signed this exchange data (DESIGN.md §5.2).
    pub fn sealing_key(&self) -> Result<&AeadKey> {
        if self.self_signed {
            Ok(&self.exchange_key)
        } else {
            Err(Error::NotSignedBySelf)
        }
    }

    /// The exchange key, to open what the delegator sealed.
    pub fn opening_key(&self) -> &AeadKey {
        &self.exchange_key
    }

    /// The access-control key for entities of `entity_type` shared through this exchange data.
    pub fn access_control_key(&self, entity_type: &EntityType) -> AccessControlKey {
        let mut bytes = [0u8; ACCESS_CONTROL_KEY_LEN];
        // 16 bytes is far below HKDF's limit, so expansion cannot fail.
        let _ =
            self.access_secret
                .expand_label(LABEL_ACK, entity_type.as_str().as_bytes(), &mut bytes);
        let key = AccessControlKey::from_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        key
    }

    /// The delegation key the server stores for entities of `entity_type` shared through this exchange data.
    pub fn delegation_key(&self, entity_type: &EntityType) -> DelegationKey {
        self.access_control_key(entity_type).delegation_key()
    }

    /// The raw secret, for the key bag.
    pub(crate) fn secret(&self) -> &Secret32 {
        &self.secret
    }
}
