//! Wire encodings: unknown format versions are clear errors, and JSON and bincode round trips change nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::fmt::Debug;

use bincode::Options as _;
use common::{
    T0, alice, alice_second, bob, bob_id, entity, exchange, from_bincode, hex, to_bincode,
    to_json_value, trusted,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_keys::{
    ChainLink, DelegationKey, EntityType, ExchangeData, ExchangeDataId, Fingerprint, FormatVersion,
    KeyBag, KeyBagEntry, KeyBagEntryId, KeyBundle, Owner, OwnerId, OwnerKind, SignatureBytes,
    SignedWrap, WrappedSecret,
};

/// A chained bundle: Alice's second key, signed by her first.
fn chained_bundle() -> KeyBundle {
    let mut bundle = alice_second().bundle().unwrap();
    alice().sign_successor(&mut bundle).unwrap();
    bundle
}

/// Exchange data from Alice to Bob, wrapped for three keys.
fn exchange_data() -> ExchangeData {
    let mut recipients = vec![trusted(bob())];
    let second = tessera_keys::PinnedFingerprints::new([alice_second().fingerprint()]);
    recipients.push(tessera_keys::TrustPolicy::trust(&second, chained_bundle()).unwrap());
    ExchangeData::create(
        alice(),
        bob_id(),
        &recipients.iter().collect::<Vec<_>>(),
        T0,
    )
    .unwrap()
    .0
}

fn bag_entry() -> KeyBagEntry {
    let (_, secret) = exchange(alice(), bob(), T0);
    KeyBag::seal_entry(alice(), &secret).unwrap()
}

fn owner_record() -> Owner {
    Owner {
        version: FormatVersion::V2,
        id: alice().owner(),
        kind: OwnerKind::Hcp,
        parent: Some(OwnerId::from_bytes([0x77; 16])),
        bundles: vec![alice().bundle().unwrap(), chained_bundle()],
    }
}

/// Asserts that JSON and bincode round trips give equal values and the same bytes again.
fn assert_round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) -> T {
    let json = serde_json::to_string(value).unwrap();
    let from_json: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&from_json, value);
    assert_eq!(serde_json::to_string(&from_json).unwrap(), json);
    // Pretty JSON is the same value.
    let pretty: T = serde_json::from_str(&serde_json::to_string_pretty(value).unwrap()).unwrap();
    assert_eq!(&pretty, value);

    let bytes = to_bincode(value);
    let from_bytes: T = from_bincode(&bytes).unwrap();
    assert_eq!(&from_bytes, value);
    assert_eq!(to_bincode(&from_bytes), bytes);
    // Trailing bytes and truncation are refused.
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(from_bincode::<T>(&longer).is_err());
    for len in 0..bytes.len() {
        assert!(
            from_bincode::<T>(&bytes[..len]).is_err(),
            "truncated to {len}"
        );
    }
    from_bytes
}

#[test]
fn key_bundles_round_trip_with_unchanged_canonical_bytes() {
    for bundle in [
        alice().bundle().unwrap(),
        bob().bundle().unwrap(),
        chained_bundle(),
    ] {
        let canonical = bundle.canonical_bytes().unwrap();
        let decoded = assert_round_trips(&bundle);
        assert_eq!(decoded.canonical_bytes().unwrap(), canonical);
        assert_eq!(decoded.fingerprint(), bundle.fingerprint());
        assert_eq!(
            decoded.self_signature_bytes(),
            bundle.self_signature_bytes()
        );
        assert_eq!(decoded.chain(), bundle.chain());
        decoded.verify_self_signature().unwrap();
        let json: KeyBundle = serde_json::from_value(to_json_value(&bundle)).unwrap();
        assert_eq!(json.canonical_bytes().unwrap(), canonical);
    }
    let decoded: KeyBundle = from_bincode(&to_bincode(&chained_bundle())).unwrap();
    decoded
        .verify_chain_from(&alice().bundle().unwrap())
        .unwrap();
}

#[test]
fn exchange_data_round_trips_with_unchanged_canonical_bytes_and_still_opens() {
    let data = exchange_data();
    assert_eq!(data.wrapped_for().count(), 3);
    let decoded = assert_round_trips(&data);
    assert_eq!(decoded.canonical_bytes(), data.canonical_bytes());
    let json: ExchangeData = serde_json::from_value(to_json_value(&data)).unwrap();
    assert_eq!(json.canonical_bytes(), data.canonical_bytes());
    for copy in [&decoded, &json] {
        copy.verify(&trusted(alice())).unwrap();
        let opened = copy.open(bob(), &[&trusted(alice())]).unwrap();
        let original = data.open(alice(), &[&trusted(alice())]).unwrap();
        assert_eq!(
            opened.delegation_key(&entity("Patient")),
            original.delegation_key(&entity("Patient"))
        );
    }
}

#[test]
fn key_bag_entries_and_owners_round_trip() {
    let entry = bag_entry();
    let decoded = assert_round_trips(&entry);
    KeyBag::open_entry(alice(), &decoded).unwrap();

    let owner = owner_record();
    let decoded = assert_round_trips(&owner);
    for (bundle, original) in decoded.bundles.iter().zip(&owner.bundles) {
        assert_eq!(
            bundle.canonical_bytes().unwrap(),
            original.canonical_bytes().unwrap()
        );
    }
    let without_parent = Owner {
        parent: None,
        kind: OwnerKind::Patient,
        bundles: Vec::new(),
        ..owner
    };
    assert_round_trips(&without_parent);
}

#[test]
fn small_values_round_trip() {
    assert_round_trips(&OwnerId::from_bytes([0x42; 16]));
    assert_round_trips(&ExchangeDataId::from_bytes([0x43; 16]));
    assert_round_trips(&Fingerprint::from_bytes([0x44; 32]));
    assert_round_trips(&DelegationKey::from_bytes([0x45; 32]));
    assert_round_trips(&KeyBagEntryId::from_bytes([0x46; 32]));
    assert_round_trips(&SignatureBytes([0x47; 64]));
    assert_round_trips(&WrappedSecret(vec![1, 2, 3]));
    assert_round_trips(&WrappedSecret(Vec::new()));
    assert_round_trips(&SignedWrap {
        wrapped: WrappedSecret(vec![4, 5, 6]),
        signer: Fingerprint::from_bytes([0x48; 32]),
        signature: SignatureBytes([0x49; 64]),
    });
    assert_round_trips(&FormatVersion::V2);
    assert_round_trips(&entity("Health-Element_2.0"));
    for kind in [OwnerKind::Hcp, OwnerKind::Patient, OwnerKind::Device] {
        assert_round_trips(&kind);
    }
    assert_round_trips(&chained_bundle().chain().unwrap().clone());
    let _: &ChainLink = chained_bundle().chain().unwrap();
}

#[test]
fn json_writes_lowercase_hex_and_hyphenated_owner_ids() {
    let data = exchange_data();
    let json = to_json_value(&data);
    assert_eq!(json["version"], 2);
    assert_eq!(json["id"], hex(data.id().as_bytes()));
    assert_eq!(json["delegator"], "a1a1a1a1-a1a1-a1a1-a1a1-a1a1a1a1a1a1");
    assert_eq!(json["delegate"], bob_id().to_string());
    assert_eq!(json["created"], T0);
    assert_eq!(json["signer"], hex(alice().fingerprint().as_bytes()));
    for field in ["commitment", "signature"] {
        let text = json[field].as_str().unwrap();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{field}"
        );
    }
    let wrapped = json["wrapped"].as_object().unwrap();
    assert_eq!(wrapped.len(), 3);
    assert!(wrapped.contains_key(&hex(bob().fingerprint().as_bytes())));

    let bundle = alice().bundle().unwrap();
    let json = to_json_value(&bundle);
    assert_eq!(json["owner"], alice().owner().to_string());
    assert_eq!(
        json["rsa_spki"],
        hex(&bundle.rsa_public_key().to_spki_der().unwrap())
    );
    assert_eq!(json["ed25519"], hex(bundle.verifying_key().as_bytes()));
    assert_eq!(json["self_signature"], hex(&bundle.self_signature_bytes()));
    assert_eq!(json["chain"], serde_json::Value::Null);
    assert_eq!(serde_json::to_value(OwnerKind::Device).unwrap(), "Device");
    assert_eq!(serde_json::to_value(entity("Contact")).unwrap(), "Contact");
}

#[test]
fn bincode_writes_raw_bytes() {
    // Ids are length-prefixed raw bytes (a one-byte varint length), not hex.
    let id = ExchangeDataId::from_bytes([0xab; 16]);
    let bytes = to_bincode(&id);
    assert_eq!(bytes.len(), 1 + 16);
    assert_eq!(bytes[1..], [0xab; 16]);
    let owner = OwnerId::from_bytes([0xcd; 16]);
    assert_eq!(to_bincode(&owner)[1..], [0xcd; 16]);
    // Every travelling record starts with its version byte.
    assert_eq!(to_bincode(&bag_entry())[0], 2);
    assert_eq!(to_bincode(&alice().bundle().unwrap())[0], 2);
    assert_eq!(to_bincode(&exchange_data())[0], 2);
    assert_eq!(to_bincode(&owner_record())[0], 2);
}

#[test]
fn malformed_fields_are_refused() {
    let data = exchange_data();
    let bad_values: [(&str, serde_json::Value); 9] = [
        ("id", serde_json::json!("00")),
        ("id", serde_json::json!(hex(&[0; 17]))),
        ("id", serde_json::json!(hex(&[0xab; 16]).to_uppercase())),
        ("id", serde_json::json!("zz".repeat(16))),
        ("delegator", serde_json::json!(hex(&[0; 16]))),
        (
            "delegator",
            serde_json::json!("A1A1A1A1-A1A1-A1A1-A1A1-A1A1A1A1A1A1"),
        ),
        ("signature", serde_json::json!(hex(&[0; 63]))),
        ("created", serde_json::json!(-1)),
        ("version", serde_json::json!("2")),
    ];
    for (field, value) in bad_values {
        let mut json = to_json_value(&data);
        json[field] = value.clone();
        assert!(
            serde_json::from_value::<ExchangeData>(json).is_err(),
            "{field} = {value}"
        );
    }
    let mut json = to_json_value(&data);
    json.as_object_mut().unwrap().remove("commitment");
    assert!(serde_json::from_value::<ExchangeData>(json).is_err());

    // A bundle whose RSA key is not an acceptable SPKI.
    let bundle = alice().bundle().unwrap();
    for spki in [String::new(), "00".into(), hex(&[0x30; 300])] {
        let mut json = to_json_value(&bundle);
        json["rsa_spki"] = serde_json::json!(spki);
        assert!(serde_json::from_value::<KeyBundle>(json).is_err(), "{spki}");
    }
    // A 1024-bit key and an exponent-3 key are refused by the primitives' policy.
    for name in ["rsa1024.pub.pem", "rsa2048_e3.pub.pem"] {
        let pem = common::fixture_pem(name);
        let der = common::pem_to_der(&pem);
        let mut json = to_json_value(&bundle);
        json["rsa_spki"] = serde_json::json!(hex(&der));
        assert!(serde_json::from_value::<KeyBundle>(json).is_err(), "{name}");
    }
    assert!(serde_json::from_str::<EntityType>("\"with space\"").is_err());
    assert!(serde_json::from_str::<EntityType>("\"\"").is_err());
}

#[test]
fn bincode_length_prefixes_beyond_the_input_or_the_limit_are_refused_without_allocating() {
    let bytes = to_bincode(&bag_entry());
    // version (1) ‖ owner: varint length 16 (1) + 16 ‖ id: 1 + 32 ‖ sealed: varint length ...
    let sealed_len_at = 1 + 17 + 33;
    assert_eq!(bytes[sealed_len_at], 112);
    // 0xfd announces a u64 length: claim 2^40 bytes.
    let mut huge = bytes[..sealed_len_at].to_vec();
    huge.push(0xfd);
    huge.extend_from_slice(&(1u64 << 40).to_le_bytes());
    // From a slice, bincode checks the length against the input before allocating.
    assert!(from_bincode::<KeyBagEntry>(&huge).is_err());
    // From a reader (where the unbounded default would allocate first), the limit refuses it.
    let error = common::bincode_options()
        .deserialize_from::<_, KeyBagEntry>(&huge[..])
        .unwrap_err();
    // (The byte-string decoder re-wraps the error as a custom one, so it is matched by its text.)
    assert!(error.to_string().contains("size limit"), "{error:?}");
    // The untouched encoding decodes both ways.
    assert!(from_bincode::<KeyBagEntry>(&bytes).is_ok());
    assert!(
        common::bincode_options()
            .deserialize_from::<_, KeyBagEntry>(&bytes[..])
            .is_ok()
    );
}

/// Asserts that `error` names the unsupported `version` and the supported one.
fn assert_version_error(error: &str, version: u8) {
    assert!(error.contains("version"), "{error}");
    assert!(error.contains(&format!("version {version}")), "{error}");
    assert!(error.contains("reads version 2"), "{error}");
}

fn check_unknown_versions<T: Serialize + DeserializeOwned + Debug>(value: &T, what: &str) {
    let mut checked = 0;
    for version in [0u8, 1, 3, 255] {
        let mut json = to_json_value(value);
        json["version"] = serde_json::json!(version);
        let error = serde_json::from_value::<T>(json).unwrap_err().to_string();
        assert_version_error(&error, version);

        let mut bytes = to_bincode(value);
        assert_eq!(bytes[0], 2, "{what}: the version is the first byte");
        bytes[0] = version;
        // bincode writes u8 as one raw byte, so 255 is still read as 255.
        let error = from_bincode::<T>(&bytes).unwrap_err().to_string();
        assert_version_error(&error, version);
        checked += 1;
    }
    assert_eq!(checked, 4, "{what}");
}

#[test]
fn unknown_format_versions_are_clear_errors() {
    check_unknown_versions(&alice().bundle().unwrap(), "key bundle");
    check_unknown_versions(&chained_bundle(), "chained key bundle");
    check_unknown_versions(&exchange_data(), "exchange data");
    check_unknown_versions(&bag_entry(), "key-bag entry");
    check_unknown_versions(&owner_record(), "owner");
}

#[test]
fn an_owner_with_a_bundle_of_an_unknown_version_is_refused() {
    let mut json = to_json_value(&owner_record());
    json["bundles"][1]["version"] = serde_json::json!(3);
    let error = serde_json::from_value::<Owner>(json)
        .unwrap_err()
        .to_string();
    assert_version_error(&error, 3);
}
