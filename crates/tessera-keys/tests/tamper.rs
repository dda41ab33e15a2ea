//! Tamper tests: every single-byte flip of a key bundle, exchange data or key-bag entry, in bincode and JSON, is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::{
    Spy, T0, alice, alice_second, dave, entity_types, from_bincode, to_bincode, to_json_value,
    trusted,
};
use serde::de::DeserializeOwned;
use tessera_keys::{
    DelegationKey, ExchangeData, KeyBag, KeyBagEntry, KeyBundle, OwnerKeys, PinnedFingerprints,
    Tofu, TrustPolicy, TrustedBundle,
};

/// The two encodings under test.
#[derive(Clone, Copy, Debug)]
enum Encoding {
    Bincode,
    Json,
}

impl Encoding {
    fn encode<T: serde::Serialize>(self, value: &T) -> Vec<u8> {
        match self {
            Self::Bincode => to_bincode(value),
            Self::Json => serde_json::to_vec(value).unwrap(),
        }
    }

    fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Option<T> {
        match self {
            Self::Bincode => from_bincode(bytes).ok(),
            Self::Json => serde_json::from_slice(bytes).ok(),
        }
    }

    /// The bit masks each byte is flipped with. JSON keeps to the low bit, which turns hex digits into other
    /// hex digits (`0`↔`1`, `b`↔`c`, …) rather than into invalid text.
    fn masks(self) -> &'static [u8] {
        match self {
            Self::Bincode => &[0x01, 0x80],
            Self::Json => &[0x01],
        }
    }
}

/// Calls `check` with every single-byte flip of `encoded`, reporting the position of any panic; returns the count.
fn for_each_flip(encoded: &[u8], masks: &[u8], mut check: impl FnMut(&[u8])) -> usize {
    let mut copy = encoded.to_vec();
    let mut count = 0;
    for i in 0..copy.len() {
        for &mask in masks {
            copy[i] ^= mask;
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| check(&copy))) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                panic!("byte {i} of {}, mask {mask:#04x}: {message}", encoded.len());
            }
            copy[i] ^= mask;
            count += 1;
        }
    }
    count
}

// ---------------------------------------------------------------------------------------------------------------
// Key bundles

/// Counts of how the flips of one artefact were caught.
#[derive(Debug, Default)]
struct Caught {
    decode: usize,
    /// Decoded to a value equal to the original: harmless, but shows the encoding is not canonical.
    unchanged: usize,
    signature: usize,
    fingerprint: usize,
    chain: usize,
}

/// Checks one tampered bundle: it either does not decode, or fails its self-signature, or has another fingerprint
/// than the original (caught by pinning the original), or (for a chained bundle) fails its chain from `older`.
fn check_bundle(
    original: &KeyBundle,
    older: Option<&KeyBundle>,
    tampered: Option<KeyBundle>,
    caught: &mut Caught,
) {
    let Some(tampered) = tampered else {
        caught.decode += 1;
        return;
    };
    if &tampered == original {
        caught.unchanged += 1;
        return;
    }
    let pinned = PinnedFingerprints::new([original.fingerprint()]);
    let self_signature_ok = tampered.verify_self_signature().is_ok();
    let same_fingerprint = tampered.fingerprint() == original.fingerprint();
    let chain_ok = older.is_none_or(|older| tampered.verify_chain_from(older).is_ok());
    assert!(
        !(self_signature_ok && same_fingerprint && chain_ok),
        "tampered bundle accepted"
    );
    if !self_signature_ok {
        caught.signature += 1;
        assert!(pinned.trust(tampered.clone()).is_err());
    } else if !same_fingerprint {
        caught.fingerprint += 1;
        assert!(pinned.trust(tampered.clone()).is_err());
    } else {
        caught.chain += 1;
    }
    if let Some(older) = older {
        // A TOFU policy that pinned the older bundle refuses the tampered successor.
        let tofu = Tofu::new();
        tofu.trust(older.clone()).unwrap();
        assert!(
            tofu.trust(tampered).is_err(),
            "TOFU accepted a tampered successor"
        );
    }
}

fn tamper_bundle(encoding: Encoding, original: &KeyBundle, older: Option<&KeyBundle>) -> Caught {
    let encoded = encoding.encode(original);
    assert_eq!(
        encoding.decode::<KeyBundle>(&encoded).as_ref(),
        Some(original)
    );
    let mut caught = Caught::default();
    let count = for_each_flip(&encoded, encoding.masks(), |bytes| {
        check_bundle(original, older, encoding.decode(bytes), &mut caught);
    });
    assert_eq!(count, encoded.len() * encoding.masks().len());
    assert_eq!(
        caught.decode + caught.unchanged + caught.signature + caught.fingerprint + caught.chain,
        count
    );
    // The flips reached past the decoder: the signature and the signed fields were checked.
    assert!(caught.signature >= 64, "{encoding:?}: {caught:?}");
    caught
}

#[test]
fn every_flipped_byte_of_a_key_bundle_is_caught() {
    let bundle = alice().bundle().unwrap();
    let caught = tamper_bundle(Encoding::Bincode, &bundle, None);
    assert_eq!(caught.chain, 0, "{caught:?}");
    // bincode is canonical: no flip decodes to the same bundle.
    assert_eq!(caught.unchanged, 0, "{caught:?}");
    let caught = tamper_bundle(Encoding::Json, &bundle, None);
    assert_eq!(caught.chain, 0, "{caught:?}");
    // Neither is JSON: unknown fields are refused, so a flip of a field name (`"chain"` → `"bhain"`) fails to decode.
    assert_eq!(caught.unchanged, 0, "{caught:?}");
}

#[test]
fn every_flipped_byte_of_a_chained_key_bundle_is_caught() {
    let older = alice().bundle().unwrap();
    let mut bundle = alice_second().bundle().unwrap();
    alice().sign_successor(&mut bundle).unwrap();
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let caught = tamper_bundle(encoding, &bundle, Some(&older));
        // The chain (signer and signature) is outside the fingerprint: only its own check catches it.
        assert!(caught.chain >= 64, "{encoding:?}: {caught:?}");
        assert_eq!(caught.unchanged, 0, "{encoding:?}: {caught:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Exchange data

const SIGNED_FIELDS: [&str; 8] = [
    "version",
    "id",
    "delegator",
    "delegate",
    "created",
    "commitment",
    "signer",
    "signature",
];

#[derive(Debug, Default)]
struct ExchangeCaught {
    decode: usize,
    /// The signed part (or the signature) changed: both parties refuse, neither private key is used.
    signed: usize,
    /// A party's own wrap changed (or vanished): that party refuses.
    own_wrap: [usize; 2],
    /// A party's wrap was untouched while the other's changed: that party still opens to the right secret.
    still_opens: [usize; 2],
}

struct ExchangeFixture {
    data: ExchangeData,
    json: serde_json::Value,
    signer: TrustedBundle,
    parties: [&'static OwnerKeys; 2],
    expected: DelegationKey,
}

fn exchange_fixture() -> ExchangeFixture {
    // Both parties hold 2048-bit keys, so each flip inside a wrap costs about two milliseconds of RSA.
    let (delegator, delegate) = (alice(), dave());
    let (data, created) =
        ExchangeData::create(delegator, delegate.owner(), &[&trusted(delegate)], T0).unwrap();
    let expected = created.delegation_key(&entity_types()[0]);
    ExchangeFixture {
        json: to_json_value(&data),
        data,
        signer: trusted(delegator),
        parties: [delegator, delegate],
        expected,
    }
}

fn check_exchange(
    fixture: &ExchangeFixture,
    tampered: Option<ExchangeData>,
    verify_survivors: bool,
    caught: &mut ExchangeCaught,
) {
    let Some(tampered) = tampered else {
        caught.decode += 1;
        return;
    };
    assert_ne!(tampered, fixture.data, "decoded to the original value");
    let json = to_json_value(&tampered);
    let signed_changed = SIGNED_FIELDS
        .iter()
        .any(|field| json[field] != fixture.json[field]);
    if signed_changed {
        assert!(
            tampered.verify(&fixture.signer).is_err(),
            "signature still verifies"
        );
        for keys in fixture.parties {
            let spy = Spy::new(keys);
            assert!(tampered.open(&spy, &[&fixture.signer]).is_err(), "opened");
            assert_eq!(spy.unwraps(), 0, "private key used");
        }
        caught.signed += 1;
        return;
    }
    // Only the wraps changed: the signature still verifies, and each party is judged by its own wrap.
    tampered.verify(&fixture.signer).unwrap();
    let mut any_wrap_changed = false;
    for (party, keys) in fixture.parties.iter().enumerate() {
        let slot = keys.fingerprint().to_string();
        if json["wrapped"][&slot] == fixture.json["wrapped"][&slot] {
            if verify_survivors {
                let opened = tampered.open(*keys, &[&fixture.signer]).unwrap();
                assert_eq!(opened.delegation_key(&entity_types()[0]), fixture.expected);
                caught.still_opens[party] += 1;
            }
        } else {
            any_wrap_changed = true;
            // Every wrap is signed: a changed one is refused before the private key sees it.
            let spy = Spy::new(keys);
            assert!(
                tampered.open(&spy, &[&fixture.signer]).is_err(),
                "party {party} opened a tampered wrap"
            );
            assert_eq!(spy.unwraps(), 0, "party {party}: private key used");
            caught.own_wrap[party] += 1;
        }
    }
    assert!(
        any_wrap_changed,
        "neither the signed part nor a party's wrap changed"
    );
}

fn tamper_exchange(encoding: Encoding, verify_survivors: bool) -> ExchangeCaught {
    let fixture = exchange_fixture();
    let encoded = encoding.encode(&fixture.data);
    assert_eq!(
        encoding.decode::<ExchangeData>(&encoded).as_ref(),
        Some(&fixture.data)
    );
    let mut caught = ExchangeCaught::default();
    let count = for_each_flip(&encoded, encoding.masks(), |bytes| {
        check_exchange(
            &fixture,
            encoding.decode(bytes),
            verify_survivors,
            &mut caught,
        );
    });
    assert_eq!(count, encoded.len() * encoding.masks().len());
    let wrap_flips = count - caught.decode - caught.signed;
    assert_eq!(
        wrap_flips,
        (0..2).map(|p| caught.own_wrap[p]).sum::<usize>(),
        "{caught:?}"
    );
    // Every region was reached: the signed fields and each party's wrap (256-byte RSA ciphertexts).
    assert!(caught.signed >= 64, "{encoding:?}: {caught:?}");
    for party in 0..2 {
        assert!(caught.own_wrap[party] >= 256, "{encoding:?}: {caught:?}");
        if verify_survivors {
            assert_eq!(
                caught.still_opens[party],
                caught.own_wrap[1 - party],
                "{caught:?}"
            );
        }
    }
    caught
}

#[test]
fn every_flipped_byte_of_bincode_exchange_data_is_caught() {
    // Skip nothing: every byte, with both masks, and the untouched party checked to still open.
    let caught = tamper_exchange(Encoding::Bincode, true);
    assert!(caught.decode > 0, "{caught:?}");
}

#[test]
fn every_flipped_byte_of_json_exchange_data_is_caught() {
    let caught = tamper_exchange(Encoding::Json, false);
    assert!(caught.decode > 0, "{caught:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Key-bag entries

#[test]
fn every_flipped_byte_of_a_key_bag_entry_is_caught() {
    let keys = alice();
    let (data, secret) =
        ExchangeData::create(keys, dave().owner(), &[&trusted(dave())], T0).unwrap();
    let entry = KeyBag::seal_entry(keys, &secret).unwrap();
    assert_eq!(entry.id, KeyBag::entry_id(keys, &data.id()));
    for encoding in [Encoding::Bincode, Encoding::Json] {
        let encoded = encoding.encode(&entry);
        let (mut decode_errors, mut open_errors) = (0, 0);
        let count = for_each_flip(&encoded, encoding.masks(), |bytes| {
            match encoding.decode::<KeyBagEntry>(bytes) {
                None => decode_errors += 1,
                Some(tampered) => {
                    assert_ne!(tampered, entry, "decoded to the original value");
                    assert!(KeyBag::open_entry(keys, &tampered).is_err(), "opened");
                    assert!(KeyBag::load(keys, &[tampered]).is_err(), "loaded");
                    open_errors += 1;
                }
            }
        });
        assert_eq!(count, encoded.len() * encoding.masks().len());
        assert_eq!(decode_errors + open_errors, count);
        // The owner (16), the id (32) and the sealed box (112) are all reached.
        assert!(open_errors >= 160, "{encoding:?}: {open_errors} of {count}");
    }
}
