//! Data owners: their kinds, their public key bundles, and the private keys derived from one RSA key (P5).

use serde::{Deserialize, Serialize};
use tessera_primitives::{
    AeadKey, Prk, RsaKeySize, RsaPrivateKey, RsaPublicKey, Secret32, SecretBytes, Signature,
    SigningKey, VerifyingKey, WrappedKey, sha256,
};

use crate::canonical::Writer;
use crate::error::{Error, Result};
use crate::id::{Fingerprint, FormatVersion, OwnerId, fixed_bytes, var_bytes};

/// HKDF salt of the owner key derivation; its output keys are labelled below (docs/formats.md).
pub(crate) const OWNER_SALT: &str = "tessera/v1/owner-key";
pub(crate) const LABEL_SIGNING: &str = "tessera/v1/signing";
pub(crate) const LABEL_SELF: &str = "tessera/v1/self";
pub(crate) const LABEL_BAG_ID: &str = "tessera/v1/bag-id";
const TAG_BUNDLE: &str = "tessera/v1/key-bundle";
const TAG_BUNDLE_CHAIN: &str = "tessera/v1/key-bundle-chain";
const TAG_LOGIN: &str = "tessera/v2/login";

/// What kind of data owner an id belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OwnerKind {
    /// A healthcare party: a doctor, a nurse, an organisation.
    Hcp,
    /// A patient.
    Patient,
    /// A device acting for an owner.
    Device,
}

/// The public record of a data owner, as the server stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Format version.
    pub version: FormatVersion,
    /// The owner's id.
    pub id: OwnerId,
    /// The owner's kind.
    pub kind: OwnerKind,
    /// At registration, the owner registering this one (an HCP registering a patient), if any. The server checks
    /// it is the logged-in requester and then stores `None`: which HCP registered which patient is not kept.
    pub parent: Option<OwnerId>,
    /// The owner's key bundles, oldest first.
    pub bundles: Vec<KeyBundle>,
}

/// The secrets an owner derives from its RSA private key, deterministically (DESIGN.md §5, principle P5).
///
/// `prk = HKDF-Extract(salt = "tessera/v1/owner-key", ikm = canonical RSA key bytes)`, then one labelled
/// expansion per key. The same RSA key gives the same keys on every machine.
pub struct OwnerKeys {
    owner: OwnerId,
    rsa: RsaPrivateKey,
    created: u64,
    fingerprint: Fingerprint,
    signing: SigningKey,
    self_key: AeadKey,
    bag_id_key: Secret32,
}

tessera_primitives::redacted_debug!(OwnerKeys);

impl OwnerKeys {
    /// Derives every key of `owner` from its RSA private key. `created` is the creation time of the key's bundle
    /// (public, from the server); it enters the bundle's fingerprint, not the derived secrets.
    ///
    /// # Errors
    /// [`Error::Primitive`] if the key cannot be encoded.
    pub fn derive(owner: OwnerId, rsa: RsaPrivateKey, created: u64) -> Result<Self> {
        let canonical = rsa.to_canonical_bytes()?;
        let prk = Prk::extract(OWNER_SALT.as_bytes(), canonical.expose_secret());
        let signing = SigningKey::from_seed(prk.derive_secret32(LABEL_SIGNING, b""));
        let self_key = prk.derive_aead_key(LABEL_SELF, b"");
        let bag_id_key = prk.derive_secret32(LABEL_BAG_ID, b"");
        let body = KeyBundle::body(owner, &rsa.public_key(), &signing.verifying_key(), created)?;
        Ok(Self {
            owner,
            created,
            fingerprint: Fingerprint::from_bytes(sha256(&body)),
            rsa,
            signing,
            self_key,
            bag_id_key,
        })
    }

    /// Generates a new RSA key for `owner` and derives everything from it, with its bundle created at `created`.
    ///
    /// # Errors
    /// [`Error::Primitive`] if key generation fails.
    pub fn generate(owner: OwnerId, size: RsaKeySize, created: u64) -> Result<Self> {
        Self::derive(owner, RsaPrivateKey::generate(size)?, created)
    }

    /// The owner these keys belong to.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }

    /// Fingerprint of this key's bundle.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// The RSA private key, to store it (the one secret an owner keeps).
    pub fn rsa_private_key(&self) -> &RsaPrivateKey {
        &self.rsa
    }

    /// The derived Ed25519 verifying key.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The derived self key, which seals the owner's key bag, transfer keys and recovery blobs.
    pub fn self_key(&self) -> &AeadKey {
        &self.self_key
    }

    /// The self-signed public bundle of these keys.
    ///
    /// # Errors
    /// [`Error::Primitive`] if the RSA public key cannot be encoded.
    pub fn bundle(&self) -> Result<KeyBundle> {
        let created = self.created;
        let body = KeyBundle::body(
            self.owner,
            &self.rsa.public_key(),
            &self.verifying_key(),
            created,
        )?;
        Ok(KeyBundle {
            version: FormatVersion::V2,
            owner: self.owner,
            rsa: self.rsa.public_key(),
            ed25519: self.verifying_key(),
            created,
            self_signature: self.signing.sign(&body),
            chain: None,
        })
    }

    /// Signs `next`, a newer bundle of the same owner, so that peers who trust this bundle accept it (rotation).
    ///
    /// # Errors
    /// [`Error::WrongOwner`] if `next` belongs to another owner.
    pub fn sign_successor(&self, next: &mut KeyBundle) -> Result<()> {
        if next.owner != self.owner {
            return Err(Error::WrongOwner {
                fingerprint: next.fingerprint(),
                expected: self.owner,
                found: next.owner,
            });
        }
        let message = KeyBundle::chain_message(&self.fingerprint, &next.fingerprint());
        next.chain = Some(ChainLink {
            signer: self.fingerprint,
            signature: SignatureBytes(self.signing.sign(&message).to_bytes()),
        });
        Ok(())
    }

    /// Answers a server's login challenge: an Ed25519 signature over
    /// `"tessera/v2/login" ‖ 0x00 ‖ version ‖ owner id ‖ var(server) ‖ var(challenge)` (docs/formats.md), so it
    /// cannot be replayed elsewhere, nor relayed to another server: `server` is the name the client knows the
    /// server by (the normalised origin of its base URL, `tessera_wire::server_name`), never one the server sent.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the server name or the challenge is longer than 4 GiB.
    pub fn sign_login_challenge(&self, server: &str, challenge: &[u8]) -> Result<SignatureBytes> {
        Ok(SignatureBytes(
            self.sign(&login_message(self.owner, server, challenge)?)
                .to_bytes(),
        ))
    }

    /// Signs `message` with the derived Ed25519 key.
    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    /// Opens an anonymous box sealed for this owner's bundle (its signing key's X25519 twin).
    pub(crate) fn open_anon_box(&self, context: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        Ok(self.signing.open_anon_box(context, sealed)?)
    }

    pub(crate) fn bag_id_key(&self) -> &Secret32 {
        &self.bag_id_key
    }
}

/// Something that can unwrap a key wrapped for one bundle: an owner's keys, or a hardware token.
///
/// Exchange data is opened through this trait so that verify-then-decrypt can be observed in tests.
pub trait UnwrapKey {
    /// Owner of the key.
    fn owner(&self) -> OwnerId;
    /// Fingerprint of the bundle whose RSA public key matches this private key.
    fn fingerprint(&self) -> Fingerprint;
    /// Unwraps `wrapped` with OAEP label `label`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if it does not unwrap.
    fn unwrap_key(&self, wrapped: &WrappedKey, label: &[u8]) -> Result<SecretBytes>;
}

impl UnwrapKey for OwnerKeys {
    fn owner(&self) -> OwnerId {
        self.owner
    }

    fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, label: &[u8]) -> Result<SecretBytes> {
        Ok(self.rsa.unwrap(wrapped, label)?)
    }
}

/// A 64-byte Ed25519 signature as it travels.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SignatureBytes(#[serde(with = "fixed_bytes")] pub [u8; 64]);

impl std::fmt::Debug for SignatureBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignatureBytes({})", crate::id::hex(&self.0))
    }
}

/// A signature by an older bundle of the same owner over a newer bundle's fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainLink {
    /// Fingerprint of the older, signing bundle.
    pub signer: Fingerprint,
    /// Ed25519 signature over `"tessera/v1/key-bundle-chain" ‖ 0x00 ‖ signer ‖ fingerprint of the new bundle`.
    pub signature: SignatureBytes,
}

/// A key bundle: an owner's RSA public key and Ed25519 public key, with a creation time, self-signed (DESIGN.md §5.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "KeyBundleWire", into = "KeyBundleWire")]
pub struct KeyBundle {
    version: FormatVersion,
    owner: OwnerId,
    rsa: RsaPublicKey,
    ed25519: VerifyingKey,
    created: u64,
    self_signature: Signature,
    chain: Option<ChainLink>,
}

/// The wire form of a [`KeyBundle`]: keys as bytes, checked when converted back.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyBundleWire {
    version: FormatVersion,
    owner: OwnerId,
    #[serde(with = "var_bytes")]
    rsa_spki: Vec<u8>,
    #[serde(with = "fixed_bytes")]
    ed25519: [u8; 32],
    created: u64,
    self_signature: SignatureBytes,
    chain: Option<ChainLink>,
}

impl TryFrom<KeyBundleWire> for KeyBundle {
    type Error = Error;

    fn try_from(wire: KeyBundleWire) -> Result<Self> {
        Ok(Self {
            version: wire.version,
            owner: wire.owner,
            rsa: RsaPublicKey::from_spki_der(&wire.rsa_spki)?,
            ed25519: VerifyingKey::from(wire.ed25519),
            created: wire.created,
            self_signature: Signature::from(wire.self_signature.0),
            chain: wire.chain,
        })
    }
}

impl From<KeyBundle> for KeyBundleWire {
    fn from(bundle: KeyBundle) -> Self {
        Self {
            version: bundle.version,
            owner: bundle.owner,
            // Encoding a key this crate decoded or generated cannot fail; an empty field would fail to decode.
            rsa_spki: bundle.rsa.to_spki_der().unwrap_or_default(),
            ed25519: bundle.ed25519.to_bytes(),
            created: bundle.created,
            self_signature: SignatureBytes(bundle.self_signature.to_bytes()),
            chain: bundle.chain,
        }
    }
}

impl KeyBundle {
    /// The owner this bundle belongs to.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }

    /// The RSA public key, for wrapping secrets to this owner.
    pub fn rsa_public_key(&self) -> &RsaPublicKey {
        &self.rsa
    }

    /// The Ed25519 public key, for verifying this owner's signatures.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.ed25519
    }

    /// Creation time, in seconds since the Unix epoch.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The self-signature's 64 bytes.
    pub fn self_signature_bytes(&self) -> [u8; 64] {
        self.self_signature.to_bytes()
    }

    /// The link to the older bundle that signed this one, if any.
    pub fn chain(&self) -> Option<&ChainLink> {
        self.chain.as_ref()
    }

    /// The canonical bytes: what the fingerprint hashes and the self-signature signs (docs/formats.md).
    ///
    /// # Errors
    /// [`Error::Primitive`] if the RSA key cannot be encoded.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>> {
        Self::body(self.owner, &self.rsa, &self.ed25519, self.created)
    }

    /// SHA-256 of the canonical bytes.
    pub fn fingerprint(&self) -> Fingerprint {
        // Encoding a key this crate holds cannot fail; if it ever did, the empty body's hash matches no real bundle.
        Fingerprint::from_bytes(sha256(&self.canonical_bytes().unwrap_or_default()))
    }

    /// Checks the self-signature.
    ///
    /// # Errors
    /// [`Error::Crypto`] if it does not verify.
    pub fn verify_self_signature(&self) -> Result<()> {
        Ok(self
            .ed25519
            .verify(&self.canonical_bytes()?, &self.self_signature)?)
    }

    /// Checks an answer to a login challenge made with this bundle's key for its owner, addressed to the
    /// server named `server` (one of the verifying server's own names).
    ///
    /// # Errors
    /// [`Error::Crypto`] if the signature does not verify (a wrong key, challenge or server name).
    pub fn verify_login(
        &self,
        server: &str,
        challenge: &[u8],
        signature: &SignatureBytes,
    ) -> Result<()> {
        self.ed25519.verify(
            &login_message(self.owner, server, challenge)?,
            &Signature::from(signature.0),
        )?;
        Ok(())
    }

    /// Checks that `older`, a bundle of the same owner, signed this bundle.
    ///
    /// # Errors
    /// [`Error::Crypto`] if there is no chain link from `older` or its signature does not verify;
    /// [`Error::WrongOwner`] if `older` belongs to another owner.
    pub fn verify_chain_from(&self, older: &KeyBundle) -> Result<()> {
        if older.owner != self.owner {
            return Err(Error::WrongOwner {
                fingerprint: older.fingerprint(),
                expected: self.owner,
                found: older.owner,
            });
        }
        let link = self.chain.as_ref().ok_or(Error::Crypto)?;
        let older_fingerprint = older.fingerprint();
        if link.signer != older_fingerprint {
            return Err(Error::Crypto);
        }
        let message = Self::chain_message(&older_fingerprint, &self.fingerprint());
        Ok(older
            .ed25519
            .verify(&message, &Signature::from(link.signature.0))?)
    }

    fn body(
        owner: OwnerId,
        rsa: &RsaPublicKey,
        ed25519: &VerifyingKey,
        created: u64,
    ) -> Result<Vec<u8>> {
        Ok(Writer::new(TAG_BUNDLE)
            .u8(FormatVersion::V2.get())
            .fixed(owner.as_bytes())
            .var(&rsa.to_spki_der()?)?
            .fixed(ed25519.as_bytes())
            .u64(created)
            .finish())
    }

    fn chain_message(signer: &Fingerprint, next: &Fingerprint) -> Vec<u8> {
        Writer::new(TAG_BUNDLE_CHAIN)
            .fixed(signer.as_bytes())
            .fixed(next.as_bytes())
            .finish()
    }
}

/// `"tessera/v2/login" ‖ 0x00 ‖ version ‖ owner id ‖ var(server) ‖ var(challenge)`.
fn login_message(owner: OwnerId, server: &str, challenge: &[u8]) -> Result<Vec<u8>> {
    Ok(Writer::new(TAG_LOGIN)
        .u8(FormatVersion::V2.get())
        .fixed(owner.as_bytes())
        .var(server.as_bytes())?
        .var(challenge)?
        .finish())
}
