//! The key bag: many entries load, entries of another owner or tampered entries are refused, versions are checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::HashSet;

use common::{
    T0, alice, assert_same_aead_key, bob, entity_types, exchange, from_bincode, json_edit,
    to_bincode, to_json_value, trusted,
};
use tessera_keys::{Error, ExchangeDataId, ExchangeSecret, KeyBag, KeyBagEntry, KeyBagEntryId};

/// Asserts that two exchange secrets hold the same secret, with the same parties and the same sealing right.
fn assert_same_secret(a: &ExchangeSecret, b: &ExchangeSecret) {
    assert_eq!(a.id(), b.id());
    assert_eq!(a.delegator(), b.delegator());
    assert_eq!(a.delegate(), b.delegate());
    assert_eq!(a.is_self_signed(), b.is_self_signed());
    assert_same_aead_key(a.opening_key(), b.opening_key());
    for entity_type in entity_types() {
        assert_eq!(
            a.delegation_key(&entity_type),
            b.delegation_key(&entity_type)
        );
    }
}

/// `n` exchange secrets created by Alice for Bob.
fn alice_secrets(n: usize) -> Vec<ExchangeSecret> {
    (0..n)
        .map(|i| exchange(alice(), bob(), T0 + i as u64).1)
        .collect()
}

#[test]
fn many_entries_load_into_a_bag() {
    let secrets = alice_secrets(40);
    let entries: Vec<KeyBagEntry> = secrets
        .iter()
        .map(|secret| KeyBag::seal_entry(alice(), secret).unwrap())
        .collect();
    // Entry ids are opaque, distinct and reproducible from the exchange data id.
    let ids: HashSet<KeyBagEntryId> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), entries.len());
    for (entry, secret) in entries.iter().zip(&secrets) {
        assert_eq!(entry.id, KeyBag::entry_id(alice(), &secret.id()));
        assert_eq!(entry.owner, alice().owner());
        assert_ne!(entry.id.as_bytes()[..16], secret.id().as_bytes()[..]);
    }

    // As the server returns them (JSON), in another order.
    let mut stored: Vec<KeyBagEntry> =
        serde_json::from_str(&serde_json::to_string(&entries).unwrap()).unwrap();
    stored.reverse();
    let bag = KeyBag::load(alice(), &stored).unwrap();
    assert_eq!(bag.owner(), alice().owner());
    assert_eq!(bag.len(), secrets.len());
    assert!(!bag.is_empty());
    for secret in &secrets {
        assert_same_secret(bag.get(&secret.id()).unwrap(), secret);
        assert!(bag.get(&secret.id()).unwrap().sealing_key().is_ok());
    }
    let loaded_ids: HashSet<ExchangeDataId> = bag.iter().map(ExchangeSecret::id).collect();
    assert_eq!(loaded_ids, secrets.iter().map(ExchangeSecret::id).collect());
    assert!(bag.get(&ExchangeDataId::from_bytes([0; 16])).is_none());
}

#[test]
fn an_empty_bag_and_insertions() {
    let bag = KeyBag::load(bob(), &[]).unwrap();
    assert!(bag.is_empty());
    assert_eq!(bag.len(), 0);
    let mut bag = KeyBag::new(bob().owner());
    let (data, _) = exchange(alice(), bob(), T0);
    let opened = data.open(bob(), &[&trusted(alice())]).unwrap();
    bag.insert(opened.clone());
    bag.insert(opened.clone());
    assert_eq!(bag.len(), 1);
    assert_same_secret(bag.get(&data.id()).unwrap(), &opened);
}

#[test]
fn the_delegate_side_survives_the_bag_with_its_rights() {
    let (data, _) = exchange(alice(), bob(), T0);
    let opened = data.open(bob(), &[&trusted(alice())]).unwrap();
    let entry = KeyBag::seal_entry(bob(), &opened).unwrap();
    let reopened = KeyBag::open_entry(bob(), &entry).unwrap();
    assert_same_secret(&reopened, &opened);
    assert!(matches!(
        reopened.sealing_key(),
        Err(Error::NotSignedBySelf)
    ));
    // Each owner files the same exchange data under a different opaque id.
    assert_ne!(
        KeyBag::entry_id(alice(), &data.id()),
        KeyBag::entry_id(bob(), &data.id())
    );
    // Sealing twice gives another box under the same id.
    let again = KeyBag::seal_entry(bob(), &opened).unwrap();
    assert_eq!(again.id, entry.id);
    assert_ne!(again.sealed, entry.sealed);
}

#[test]
fn an_entry_of_another_owner_is_refused() {
    let secret = &alice_secrets(1)[0];
    let alices = KeyBag::seal_entry(alice(), secret).unwrap();
    let result = KeyBag::open_entry(bob(), &alices);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    // Claiming Bob as the owner does not help: Bob's self key does not open it.
    let claimed = KeyBagEntry {
        owner: bob().owner(),
        ..alices.clone()
    };
    let result = KeyBag::open_entry(bob(), &claimed);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    // Nor is Alice fooled by her own entry filed under Bob.
    let result = KeyBag::open_entry(alice(), &claimed);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    // One foreign entry spoils the whole load.
    let (data, _) = exchange(alice(), bob(), T0);
    let bobs = KeyBag::seal_entry(bob(), &data.open(bob(), &[&trusted(alice())]).unwrap()).unwrap();
    let result = KeyBag::load(bob(), &[bobs.clone(), alices]);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    assert_eq!(KeyBag::load(bob(), &[bobs]).unwrap().len(), 1);
}

#[test]
fn every_flipped_byte_of_a_sealed_entry_is_refused() {
    let secret = &alice_secrets(1)[0];
    let entry = KeyBag::seal_entry(alice(), secret).unwrap();
    let mut checked = 0;
    for i in 0..entry.sealed.len() {
        for mask in [0x01, 0x80] {
            let mut tampered = entry.clone();
            tampered.sealed[i] ^= mask;
            let result = KeyBag::open_entry(alice(), &tampered);
            assert!(
                matches!(result, Err(Error::Crypto)),
                "byte {i} mask {mask:#x}: {result:?}"
            );
            assert!(KeyBag::load(alice(), &[tampered]).is_err());
            checked += 1;
        }
    }
    // version ‖ alg ‖ nonce ‖ payload (1 + 16 + 16 + 16 + 1 + 32) ‖ tag
    assert_eq!(entry.sealed.len(), 2 + 12 + 82 + 16);
    assert_eq!(checked, 2 * entry.sealed.len());
}

#[test]
fn a_changed_truncated_or_extended_entry_is_refused() {
    let secrets = alice_secrets(2);
    let entry = KeyBag::seal_entry(alice(), &secrets[0]).unwrap();
    let other = KeyBag::seal_entry(alice(), &secrets[1]).unwrap();
    let mut cases: Vec<(String, KeyBagEntry)> = Vec::new();
    for bit in 0..256 {
        let mut id = *entry.id.as_bytes();
        id[bit / 8] ^= 1 << (bit % 8);
        cases.push((
            format!("id bit {bit}"),
            KeyBagEntry {
                id: KeyBagEntryId::from_bytes(id),
                ..entry.clone()
            },
        ));
    }
    // Entries swapped between ids (a server filing one exchange secret under another exchange data).
    cases.push((
        "id of another entry".into(),
        KeyBagEntry {
            id: other.id,
            ..entry.clone()
        },
    ));
    for len in [0, 1, 13, 14, 29, 30, entry.sealed.len() - 1] {
        cases.push((
            format!("truncated to {len}"),
            KeyBagEntry {
                sealed: entry.sealed[..len].to_vec(),
                ..entry.clone()
            },
        ));
    }
    let mut extended = entry.clone();
    extended.sealed.push(0);
    cases.push(("extended".into(), extended));
    for (what, tampered) in &cases {
        let result = KeyBag::open_entry(alice(), tampered);
        assert!(matches!(result, Err(Error::Crypto)), "{what}: {result:?}");
    }
    assert_eq!(cases.len(), 256 + 1 + 7 + 1);
}

#[test]
fn an_entry_of_an_unknown_version_is_a_clear_decode_error() {
    let entry = KeyBag::seal_entry(alice(), &alice_secrets(1)[0]).unwrap();
    // JSON.
    for version in [0, 1, 255] {
        let mut json = to_json_value(&entry);
        json["version"] = serde_json::json!(version);
        let error = serde_json::from_value::<KeyBagEntry>(json)
            .unwrap_err()
            .to_string();
        assert!(error.contains("version"), "{error}");
        assert!(error.contains(&format!("version {version}")), "{error}");
    }
    // bincode: the version is the first byte.
    let mut bytes = to_bincode(&entry);
    assert_eq!(bytes[0], 2);
    bytes[0] = 3;
    let error = from_bincode::<KeyBagEntry>(&bytes).unwrap_err().to_string();
    assert!(error.contains("version 3"), "{error}");
    // The current version decodes.
    assert_eq!(
        from_bincode::<KeyBagEntry>(&to_bincode(&entry)).unwrap(),
        entry
    );
    let edited: KeyBagEntry = json_edit(&entry, |_| {});
    assert_eq!(edited, entry);
}

/// Seals a hand-built payload as an entry of Alice's bag under `entry_id` (only the owner's self key can do this).
fn hand_sealed(payload: &[u8], entry_id: KeyBagEntryId) -> KeyBagEntry {
    let mut aad = b"tessera/v1/key-bag\0".to_vec();
    aad.extend_from_slice(alice().owner().as_bytes());
    aad.extend_from_slice(entry_id.as_bytes());
    KeyBagEntry {
        version: tessera_keys::FormatVersion::V2,
        owner: alice().owner(),
        id: entry_id,
        sealed: alice().self_key().seal(payload, &aad).unwrap(),
    }
}

/// `version ‖ id ‖ delegator ‖ delegate ‖ self-signed ‖ S` (docs/formats.md).
fn payload(version: u8, self_signed: u8, secret: [u8; 32]) -> Vec<u8> {
    let mut out = vec![version];
    out.extend_from_slice(&[0x11; 16]);
    out.extend_from_slice(alice().owner().as_bytes());
    out.extend_from_slice(bob().owner().as_bytes());
    out.push(self_signed);
    out.extend_from_slice(&secret);
    out
}

#[test]
fn sealed_payloads_are_read_exactly_as_documented() {
    let entry_id = KeyBag::entry_id(alice(), &ExchangeDataId::from_bytes([0x11; 16]));
    let opened =
        KeyBag::open_entry(alice(), &hand_sealed(&payload(2, 1, [0x22; 32]), entry_id)).unwrap();
    assert_eq!(opened.id(), ExchangeDataId::from_bytes([0x11; 16]));
    assert_eq!(opened.delegator(), alice().owner());
    assert_eq!(opened.delegate(), bob().owner());
    assert!(opened.is_self_signed());
    let opened =
        KeyBag::open_entry(alice(), &hand_sealed(&payload(2, 0, [0x22; 32]), entry_id)).unwrap();
    assert!(!opened.is_self_signed());

    // An unknown payload version is named.
    let result = KeyBag::open_entry(alice(), &hand_sealed(&payload(3, 1, [0x22; 32]), entry_id));
    match result {
        Err(
            error @ Error::UnsupportedVersion {
                version: 3,
                supported: 2,
                ..
            },
        ) => {
            assert!(error.to_string().contains("version 3"), "{error}");
        }
        other => panic!("expected UnsupportedVersion, got {:?}", other.map(|_| ())),
    }
    // A self-signed flag other than 0 or 1.
    let result = KeyBag::open_entry(alice(), &hand_sealed(&payload(2, 2, [0x22; 32]), entry_id));
    assert!(result.is_err());
    // Short and long payloads.
    let full = payload(2, 1, [0x22; 32]);
    for len in [0, 1, 17, full.len() - 1] {
        let result = KeyBag::open_entry(alice(), &hand_sealed(&full[..len], entry_id));
        assert!(
            matches!(result, Err(Error::Malformed { .. })),
            "{len}: {:?}",
            result.map(|_| ())
        );
    }
    let mut long = full.clone();
    long.push(0);
    let result = KeyBag::open_entry(alice(), &hand_sealed(&long, entry_id));
    assert!(
        matches!(result, Err(Error::Malformed { .. })),
        "{:?}",
        result.map(|_| ())
    );
}
