//! Shared fixtures of the key layer's integration tests: owner keys derived once per test binary, wire helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared fixtures"
)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_keys::UnwrapKey;
use tessera_keys::test_utils;
use tessera_keys::{
    EntityType, ExchangeData, ExchangeDataId, Fingerprint, OwnerId, OwnerKeys, TrustedBundle,
};
use tessera_primitives::{AeadKey, RsaKeySize, RsaPrivateKey, SecretBytes, WrappedKey};

/// Creation time of the first bundles.
pub(crate) const T0: u64 = 1_700_000_000;

/// The owner id whose 16 bytes are all `byte` (fixed, so that failures reproduce).
pub(crate) fn id(byte: u8) -> OwnerId {
    OwnerId::from_bytes([byte; 16])
}

/// Alice, the usual delegator.
pub(crate) fn alice_id() -> OwnerId {
    id(0xa1)
}

/// Bob, the usual delegate.
pub(crate) fn bob_id() -> OwnerId {
    id(0xb0)
}

/// Carol, a third owner who is party to nothing.
pub(crate) fn carol_id() -> OwnerId {
    id(0xc0)
}

/// Dave, a delegate with a fresh 2048-bit key (fast unwraps for the tamper tests).
pub(crate) fn dave_id() -> OwnerId {
    id(0xd0)
}

/// The PKCS#8 PEM of a fixture key of the primitives crate.
pub(crate) fn fixture_pem(name: &str) -> String {
    test_utils::fixture_pem(name).unwrap()
}

/// A fixture RSA key of the primitives crate.
pub(crate) fn fixture_rsa(name: &str) -> RsaPrivateKey {
    test_utils::fixture_rsa(name).unwrap()
}

fn once(
    cell: &'static OnceLock<OwnerKeys>,
    make: impl FnOnce() -> OwnerKeys,
) -> &'static OwnerKeys {
    cell.get_or_init(make)
}

/// Alice's keys: fixture `rsa2048.pem`, bundle created at `T0`.
pub(crate) fn alice() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::derive(alice_id(), fixture_rsa("rsa2048.pem"), T0).unwrap()
    })
}

/// Bob's keys: fixture `rsa3072.pem`, bundle created at `T0 + 10`.
pub(crate) fn bob() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::derive(bob_id(), fixture_rsa("rsa3072.pem"), T0 + 10).unwrap()
    })
}

/// Carol's keys: fixture `rsa4096.pem`, bundle created at `T0 + 20`.
pub(crate) fn carol() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::derive(carol_id(), fixture_rsa("rsa4096.pem"), T0 + 20).unwrap()
    })
}

/// Bob's second key (a new device or a rotation): a freshly generated 2048-bit key, created at `T0 + 1000`.
pub(crate) fn bob_second() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::generate(bob_id(), RsaKeySize::Bits2048, T0 + 1000).unwrap()
    })
}

/// Bob's third key, created at `T0 + 2000`.
pub(crate) fn bob_third() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::generate(bob_id(), RsaKeySize::Bits2048, T0 + 2000).unwrap()
    })
}

/// Alice's second key, created at `T0 + 1000` (chained from her first in the rotation tests).
pub(crate) fn alice_second() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::generate(alice_id(), RsaKeySize::Bits2048, T0 + 1000).unwrap()
    })
}

/// Someone who claims to be Alice: Alice's owner id, a key nobody trusts.
pub(crate) fn alice_impostor() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::generate(alice_id(), RsaKeySize::Bits2048, T0).unwrap()
    })
}

/// Someone who claims to be Bob: Bob's owner id and creation time, a key nobody trusts.
pub(crate) fn bob_impostor() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::generate(bob_id(), RsaKeySize::Bits2048, T0 + 10).unwrap()
    })
}

/// Dave's keys: a freshly generated 2048-bit key.
pub(crate) fn dave() -> &'static OwnerKeys {
    static CELL: OnceLock<OwnerKeys> = OnceLock::new();
    once(&CELL, || {
        OwnerKeys::generate(dave_id(), RsaKeySize::Bits2048, T0 + 30).unwrap()
    })
}

/// `keys`' bundle, accepted by a policy that pins exactly its fingerprint.
pub(crate) fn trusted(keys: &OwnerKeys) -> TrustedBundle {
    test_utils::trusted(keys).unwrap()
}

/// An entity type that is known to be valid.
pub(crate) fn entity(name: &str) -> EntityType {
    EntityType::new(name).unwrap()
}

/// A few entity types.
pub(crate) fn entity_types() -> Vec<EntityType> {
    ["Patient", "Contact", "HealthElement", "Document"]
        .into_iter()
        .map(entity)
        .collect()
}

/// The wire options of DESIGN.md §4: bincode 1 with a size limit and trailing-bytes rejection.
pub(crate) fn bincode_options() -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_limit(1 << 20)
        .reject_trailing_bytes()
}

/// Encodes `value` with [`bincode_options`].
pub(crate) fn to_bincode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode_options().serialize(value).unwrap()
}

/// Decodes `bytes` with [`bincode_options`].
pub(crate) fn from_bincode<T: DeserializeOwned>(bytes: &[u8]) -> bincode::Result<T> {
    bincode_options().deserialize(bytes)
}

/// Encodes `value` as a JSON value.
pub(crate) fn to_json_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

/// Re-decodes `value` after `edit` changed its JSON form (how a malicious server would forge it).
pub(crate) fn json_edit<T: Serialize + DeserializeOwned>(
    value: &T,
    edit: impl FnOnce(&mut serde_json::Value),
) -> T {
    let mut json = to_json_value(value);
    edit(&mut json);
    serde_json::from_value(json).unwrap()
}

/// Lowercase hex, as the JSON form writes byte strings.
pub(crate) fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// The OAEP label of the wrap of exchange data `id` for key `fingerprint`: `id ‖ fingerprint` (docs/formats.md).
pub(crate) fn wrap_label(id: &ExchangeDataId, fingerprint: &Fingerprint) -> Vec<u8> {
    let mut label = id.as_bytes().to_vec();
    label.extend_from_slice(fingerprint.as_bytes());
    label
}

/// Asserts that two AEAD keys are the same key: equal bytes, and what one seals the other opens.
pub(crate) fn assert_same_aead_key(a: &AeadKey, b: &AeadKey) {
    assert_eq!(a.expose_secret(), b.expose_secret());
    let sealed = a.seal(b"same key?", b"aad").unwrap();
    assert_eq!(b.open(&sealed, b"aad").unwrap(), b"same key?");
    let sealed = b.seal(b"and back", b"aad").unwrap();
    assert_eq!(a.open(&sealed, b"aad").unwrap(), b"and back");
}

/// Asserts that two AEAD keys differ: different bytes, and what one seals the other refuses.
pub(crate) fn assert_different_aead_keys(a: &AeadKey, b: &AeadKey) {
    assert_ne!(a.expose_secret(), b.expose_secret());
    let sealed = a.seal(b"same key?", b"aad").unwrap();
    assert!(b.open(&sealed, b"aad").is_err());
}

/// Exchange data from `delegator` to `delegate` wrapped for `delegate`'s trusted bundle.
pub(crate) fn exchange(
    delegator: &OwnerKeys,
    delegate: &OwnerKeys,
    created: u64,
) -> (ExchangeData, tessera_keys::ExchangeSecret) {
    test_utils::exchange(delegator, delegate, created).unwrap()
}

/// The DER inside a PEM block (standard base64, enough for the fixture files).
pub(crate) fn pem_to_der(pem: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        for c in line.bytes() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => continue,
            };
            buffer = (buffer << 6) | u32::from(value);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
            }
        }
    }
    out
}

/// Wraps an owner's keys and counts how often the private key is used.
pub(crate) struct Spy<'a> {
    keys: &'a OwnerKeys,
    unwraps: AtomicUsize,
}

impl<'a> Spy<'a> {
    pub(crate) fn new(keys: &'a OwnerKeys) -> Self {
        Self {
            keys,
            unwraps: AtomicUsize::new(0),
        }
    }

    pub(crate) fn unwraps(&self) -> usize {
        self.unwraps.load(Ordering::SeqCst)
    }
}

impl UnwrapKey for Spy<'_> {
    fn owner(&self) -> OwnerId {
        self.keys.owner()
    }

    fn fingerprint(&self) -> Fingerprint {
        self.keys.fingerprint()
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, label: &[u8]) -> tessera_keys::Result<SecretBytes> {
        self.unwraps.fetch_add(1, Ordering::SeqCst);
        self.keys.unwrap_key(wrapped, label)
    }
}
