//! Property tests: manifests split and merge any JSON document losslessly, entities round trip through both encodings and through encryption, and decoding any bytes never panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Who, from_bincode, to_bincode, to_json, ty, world};
use proptest::prelude::*;
use proptest::sample::subsequence;
use serde_json::{Map, Value, json};
use tessera_keys::{DelegationKey, FormatVersion, OwnerId};
use tessera_sharing::{
    AttachmentId, AttachmentRef, EncryptedEntity, EncryptionManifest, EntityId, JsonPath,
    NewEntity, Permission, Sealed, SearchTag, SecureDelegation, SecurityMetadata, ShareEntry,
    ShareRequest, SideMapEntry, Visibility, create, decrypt, merge,
};

/// Field names from a small alphabet, so that random paths often exist.
fn key() -> impl Strategy<Value = String> {
    "[a-d]{1,2}"
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Binary fractions with at most 9 significant digits; any f64 is the subject of `floats_survive_*` below.
        (any::<i16>(), 0..4u32)
            .prop_map(|(n, shift)| Value::from(f64::from(n) / f64::from(1u32 << shift))),
        "\\PC{0,8}".prop_map(Value::from),
    ]
}

fn object_of(entries: BTreeMap<String, Value>) -> Map<String, Value> {
    entries.into_iter().collect()
}

/// Any JSON value nested at most three levels below the document, so documents are at most four deep.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(object_of(m))),
        ]
    })
}

fn document() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), value(), 0..5).prop_map(object_of)
}

/// Every manifest path that reaches something in `document`.
fn existing_paths(document: &Map<String, Value>) -> Vec<String> {
    fn walk(object: &Map<String, Value>, prefix: &str, out: &mut BTreeSet<String>) {
        for (name, value) in object {
            let here = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            out.insert(here.clone());
            match value {
                Value::Object(inner) => {
                    walk(inner, &here, out);
                    for value in inner.values() {
                        if let Value::Object(element) = value {
                            walk(element, &format!("{here}{{}}"), out);
                        }
                    }
                }
                Value::Array(items) => {
                    for item in items {
                        if let Value::Object(element) = item {
                            walk(element, &format!("{here}[]"), out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(document, "", &mut out);
    out.into_iter().collect()
}

/// A path that may or may not exist: one to four segments, all but the last possibly walking arrays or maps.
fn random_path() -> impl Strategy<Value = String> {
    prop::collection::vec((key(), 0..3u8), 1..=4).prop_map(|segments| {
        let last = segments.len() - 1;
        segments
            .into_iter()
            .enumerate()
            .map(|(i, (name, walk))| match (i == last, walk) {
                (false, 1) => format!("{name}[]"),
                (false, 2) => format!("{name}{{}}"),
                _ => name,
            })
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// A document and a manifest of paths found in it and random ones, in any order.
fn document_and_paths() -> impl Strategy<Value = (Map<String, Value>, Vec<String>)> {
    document()
        .prop_flat_map(|document| {
            let found = existing_paths(&document);
            let take = found.len().min(6);
            (
                Just(document),
                subsequence(found, 0..=take),
                prop::collection::vec(random_path(), 0..3),
            )
        })
        .prop_flat_map(|(document, mut paths, random)| {
            paths.extend(random);
            (Just(document), Just(paths).prop_shuffle())
        })
}

/// Whether `path` reaches a field of `object` (the test's own reading of the manifest syntax).
fn present(object: &Map<String, Value>, segments: &[&str]) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return object.contains_key(*first);
    }
    let inner = |value: &Value| matches!(value, Value::Object(o) if present(o, rest));
    if let Some(name) = first.strip_suffix("[]") {
        matches!(object.get(name), Some(Value::Array(items)) if items.iter().any(inner))
    } else if let Some(name) = first.strip_suffix("{}") {
        matches!(object.get(name), Some(Value::Object(map)) if map.values().any(inner))
    } else {
        matches!(object.get(*first), Some(value) if inner(value))
    }
}

fn segments(path: &str) -> Vec<&str> {
    path.split('.').collect()
}

/// A structurally complete entity without real cryptography, for the encoding properties.
fn plain_entity(public: Map<String, Value>, seed: u8) -> EncryptedEntity {
    let key = DelegationKey::from_bytes([seed; 32]);
    let child = DelegationKey::from_bytes([seed.wrapping_add(1); 32]);
    let delegation =
        |parents: BTreeSet<DelegationKey>, delegate: Option<OwnerId>| SecureDelegation {
            delegator: Some(OwnerId::from_bytes([1; 16])),
            delegate,
            exchange_data_id: None,
            entity_keys: vec![Sealed(vec![seed; 62])],
            secret_ids: vec![Sealed(vec![2; 63])],
            owning_entity_ids: vec![Sealed(vec![3; 46])],
            parents,
            permission: Permission::Read,
            chain: vec![Sealed(vec![7; 90])],
        };
    EncryptedEntity {
        version: FormatVersion::V2,
        id: EntityId::from_bytes([seed; 16]),
        entity_type: ty("Contact"),
        rev: u64::from(seed),
        content_version: u64::from(seed) + 1,
        key_epoch: u32::from(seed / 2),
        public,
        encrypted_self: Sealed(vec![seed; 40]),
        key_commitment: [seed; 32],
        secret_foreign_keys: BTreeSet::from([SearchTag::from_bytes([9; 32])]),
        security_metadata: SecurityMetadata {
            delegations: BTreeMap::from([
                (key, delegation(BTreeSet::new(), None)),
                (
                    child,
                    delegation(BTreeSet::from([key]), Some(OwnerId::from_bytes([4; 16]))),
                ),
            ]),
        },
        attachments: vec![AttachmentRef {
            id: AttachmentId::from_bytes([5; 16]),
            sealed_key: Sealed(vec![6; 62]),
            encrypted_len: 50,
        }],
        writer_proof: Sealed(vec![seed; 70]),
    }
}

/// Decodes `bytes` as every travelling type of this crate, in both encodings; whatever decodes re-encodes to a
/// value that decodes back equal. Must never panic.
fn decode_everything(bytes: &[u8]) {
    if let Ok(entity) = from_bincode::<EncryptedEntity>(bytes) {
        assert_eq!(
            from_bincode::<EncryptedEntity>(&to_bincode(&entity)).unwrap(),
            entity
        );
    }
    if let Ok(entity) = serde_json::from_slice::<EncryptedEntity>(bytes) {
        let again: EncryptedEntity = serde_json::from_str(&to_json(&entity)).unwrap();
        assert_eq!(again, entity);
    }
    let _ = from_bincode::<ShareRequest>(bytes);
    let _ = serde_json::from_slice::<ShareRequest>(bytes);
    let _ = from_bincode::<SideMapEntry>(bytes);
    let _ = serde_json::from_slice::<SideMapEntry>(bytes);
    let _ = serde_json::from_slice::<EncryptionManifest>(bytes);
}

proptest! {
    #[test]
    fn split_then_merge_is_lossless((document, paths) in document_and_paths()) {
        let manifest = EncryptionManifest::new(paths.iter().map(String::as_str)).unwrap();
        let (public, sensitive) = manifest.split(document.clone());
        for path in &paths {
            let steps = segments(path);
            prop_assert!(!present(&public, &steps), "{path} still public: {public:?}");
            prop_assert_eq!(
                present(&sensitive, &steps),
                present(&document, &steps),
                "{} in the sensitive part", path
            );
        }
        let mut merged = public;
        merge(&mut merged, sensitive);
        prop_assert_eq!(merged, document);
    }

    #[test]
    fn an_empty_manifest_leaves_everything_public(document in document()) {
        let (public, sensitive) = EncryptionManifest::default().split(document.clone());
        prop_assert_eq!(public, document);
        prop_assert!(sensitive.is_empty());
    }

    #[test]
    fn manifests_parse_any_text_without_panicking(text in "\\PC{0,24}", paths in prop::collection::vec(random_path(), 0..4)) {
        let _ = JsonPath::parse(&text);
        let manifest = EncryptionManifest::new(paths.iter().map(String::as_str)).unwrap();
        let json = to_json(&manifest);
        prop_assert_eq!(serde_json::from_str::<EncryptionManifest>(&json).unwrap(), manifest);
    }

    #[test]
    fn entities_round_trip_through_both_encodings(public in document(), seed in any::<u8>()) {
        let entity = plain_entity(public, seed);
        let from_json: EncryptedEntity = serde_json::from_str(&to_json(&entity)).unwrap();
        prop_assert_eq!(&from_json, &entity);
        let from_bin: EncryptedEntity = from_bincode(&to_bincode(&entity)).unwrap();
        prop_assert_eq!(&from_bin, &entity);
        let request = ShareRequest::new(
            entity
                .security_metadata
                .delegations
                .iter()
                .map(|(key, delegation)| ShareEntry {
                    entity_id: entity.id,
                    delegation_key: *key,
                    delegation: delegation.clone(),
                })
                .collect(),
        );
        prop_assert_eq!(from_bincode::<ShareRequest>(&to_bincode(&request)).unwrap(), request);
    }

    #[test]
    fn create_then_decrypt_gives_back_any_document((document, paths) in document_and_paths()) {
        let w = world();
        let manifest = EncryptionManifest::new(paths.iter().map(String::as_str)).unwrap();
        let (entity, opened) = create(
            NewEntity {
                id: EntityId::generate().unwrap(),
                entity_type: ty("Note"),
                document: document.clone(),
                manifest: &manifest,
                secret_ids: vec![],
                parents: vec![],
            },
            w.target(Who::A, Who::A, Visibility::Explicit, Permission::Write),
            &[w.explicit(Who::A, Who::B, Permission::Read)],
            w.keys(Who::A),
        )
        .unwrap();
        prop_assert_eq!(&opened.document, &document);
        // Through the wire and back, then opened by the delegate.
        let stored: EncryptedEntity = from_bincode(&to_bincode(&entity)).unwrap();
        let read = decrypt(&stored, &w.access(Who::B)).unwrap();
        prop_assert_eq!(read.document, document);
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        decode_everything(&bytes);
    }

    #[test]
    fn decoding_a_damaged_entity_never_panics(
        seed in any::<u8>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..6),
        json in any::<bool>(),
    ) {
        let entity = plain_entity(common::note_document(), seed);
        let mut bytes = if json { to_json(&entity).into_bytes() } else { to_bincode(&entity) };
        for (at, byte, kind) in edits {
            let index = at.index(bytes.len());
            match kind {
                0 => bytes[index] = byte,
                1 => bytes.insert(index, byte),
                _ => bytes.truncate(index),
            }
            if bytes.is_empty() {
                break;
            }
        }
        decode_everything(&bytes);
    }
}

#[test]
fn hostile_lengths_and_nesting_are_refused_cleanly() {
    // A bincode vector length of 2⁶⁴ − 1 right after a valid prefix: refused by the size limit, not allocated.
    let entity = plain_entity(Map::new(), 1);
    let valid = to_bincode(&entity);
    for cut in [1, 17, 40, 80, valid.len() / 2] {
        let mut bytes = valid[..cut].to_vec();
        bytes.extend_from_slice(&[0xff; 9]);
        assert!(from_bincode::<EncryptedEntity>(&bytes).is_err());
    }
    // Deeply nested public JSON is an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let text = format!("{{\"a\":{deep}}}");
    let mut json = serde_json::to_value(&entity).unwrap();
    json["public"] = serde_json::from_str("{}").unwrap();
    let json = json
        .to_string()
        .replace("\"public\":{}", &format!("\"public\":{text}"));
    assert!(serde_json::from_str::<EncryptedEntity>(&json).is_err());
    // An unknown format version is refused: 1 (never deployed, not readable since protocol v2) and 3.
    for version in [1u8, 3] {
        let mut json = serde_json::to_value(&entity).unwrap();
        json["version"] = Value::from(version);
        assert!(serde_json::from_value::<EncryptedEntity>(json).is_err());
        let mut bytes = valid.clone();
        assert_eq!(bytes[0], FormatVersion::V2.get());
        bytes[0] = version;
        assert!(from_bincode::<EncryptedEntity>(&bytes).is_err());
    }
}

#[test]
fn floats_survive_encryption_and_the_wire() {
    let w = world();
    // Values proptest found; each parses back one unit in the last place off.
    let sensitive = -5.700_537_609_583_526e127_f64;
    let public = -2.104_330_427_647_961_3e-250_f64;
    let exact = -1_018_951.704_101_562_5_f64;
    for value in [sensitive, public, exact] {
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(serde_json::from_str::<f64>(&text).unwrap(), value, "{text}");
    }
    let document = common::object(json!({"private": sensitive, "public": [public]}));
    let manifest = EncryptionManifest::new(["private"]).unwrap();
    let (entity, _) = create(
        NewEntity {
            id: EntityId::generate().unwrap(),
            entity_type: ty("Note"),
            document: document.clone(),
            manifest: &manifest,
            secret_ids: vec![],
            parents: vec![],
        },
        w.target(Who::A, Who::A, Visibility::Explicit, Permission::Write),
        &[],
        w.keys(Who::A),
    )
    .unwrap();
    let read = decrypt(&entity, &w.access(Who::A)).unwrap();
    assert_eq!(read.document["private"].as_f64(), Some(sensitive), "sealed");
    let from_bin: EncryptedEntity = from_bincode(&to_bincode(&entity)).unwrap();
    assert_eq!(
        from_bin.public["public"][0].as_f64(),
        Some(public),
        "bincode"
    );
    let from_json: EncryptedEntity = serde_json::from_str(&to_json(&entity)).unwrap();
    assert_eq!(from_json.public["public"][0].as_f64(), Some(public), "JSON");
}
