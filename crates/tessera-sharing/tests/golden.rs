//! The wire format of a fully populated entity, pinned by committed golden files (`tests/data/entity.json` and `entity.bincode`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{Spec, Who, create_with_id, from_bincode, object, share_into, to_bincode, ty, world};
use serde_json::{Map, Value, json};
use tessera_keys::{DelegationKey, ExchangeDataId, FormatVersion, OwnerId};
use tessera_sharing::attachment::seal_attachment;
use tessera_sharing::{
    EncryptedEntity, EncryptionManifest, EntityId, ParentLink, Permission, SecretId, SecretIdScope,
    Visibility, decrypt, revise,
};

use Permission::{Read, Write};
use Who::{A, B, C, P};

const ENTITY_ID: &str = "6f1c2a4e-8b3d-4c5e-9a7f-0123456789ab";
const PATIENT_ENTITY_ID: &str = "0d8e7f6a-5b4c-4d3e-8f2a-1b0c9d8e7f6a";
const ATTACHMENT: &[u8] = b"golden attachment content";

fn data_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn manifest() -> EncryptionManifest {
    EncryptionManifest::new(["diagnosis", "services[].value", "tags{}.label"]).unwrap()
}

fn document() -> Map<String, Value> {
    object(json!({
        "active": true,
        "code": {"system": "ICPC-2", "value": "K86"},
        "diagnosis": "essential hypertension",
        "none": null,
        "score": 1.5,
        "services": [
            {"label": "blood pressure", "value": "150/95"},
            {"label": "weight", "value": "82 kg"}
        ],
        "tags": {"x": {"colour": "red", "label": "cardio"}},
        "version": 3
    }))
}

fn expected_public() -> Map<String, Value> {
    object(json!({
        "active": true,
        "code": {"system": "ICPC-2", "value": "K86"},
        "none": null,
        "score": 1.5,
        "services": [{"label": "blood pressure"}, {"label": "weight"}],
        "tags": {"x": {"colour": "red"}},
        "version": 3
    }))
}

/// JSON as committed: pretty, with a final newline.
fn json_text(entity: &EncryptedEntity) -> String {
    format!("{}\n", serde_json::to_string_pretty(entity).unwrap())
}

/// Writes the golden files. Run once, commit the output, never again (sealed values are random each time).
#[test]
#[ignore = "writes tests/data/entity.{json,bincode}; run only to create them"]
fn regenerate_golden_files() {
    let w = world();
    let spec = Spec {
        entity_type: ty("Contact"),
        document: document(),
        manifest: manifest(),
        secret_ids: vec![
            (SecretId::generate().unwrap(), SecretIdScope::Shared),
            (SecretId::generate().unwrap(), SecretIdScope::Confidential),
        ],
        parents: vec![ParentLink {
            parent: PATIENT_ENTITY_ID.parse().unwrap(),
            secret_id: SecretId::generate().unwrap(),
        }],
        autos: vec![w.target(A, P, Visibility::AnonymousDelegate, Write)],
        ..Spec::note()
    };
    let (mut entity, opened) = create_with_id(A, ENTITY_ID.parse().unwrap(), spec);
    share_into(&mut entity, &opened, &[w.explicit(A, B, Write)]);
    let by_b = decrypt(&entity, &w.access(B)).unwrap();
    share_into(
        &mut entity,
        &by_b,
        &[
            w.explicit(B, C, Read),
            w.target(B, P, Visibility::Anonymous, Read),
        ],
    );
    let by_p = decrypt(&entity, &w.access(P)).unwrap();
    share_into(
        &mut entity,
        &by_p,
        &[w.target(P, C, Visibility::AnonymousDelegator, Read)],
    );
    // The attachment goes in through a plain update, a new content version signed by A.
    let (reference, _) = seal_attachment(&opened, ATTACHMENT).unwrap();
    let mut entity = revise(&entity, &opened, w.keys(A), |e| {
        e.attachments.push(reference);
        Ok(())
    })
    .unwrap();
    entity.rev = 7;
    for who in [A, B, C, P] {
        decrypt(&entity, &w.access(who)).unwrap();
    }
    tessera_sharing::rules::validate_metadata(&entity.security_metadata).unwrap();

    std::fs::write(data_path("entity.json"), json_text(&entity)).unwrap();
    std::fs::write(data_path("entity.bincode"), to_bincode(&entity)).unwrap();
}

/// One expected delegation: key, clear parties, exchange data id, parents, permission, sealed secret ids.
struct Expected {
    key: &'static str,
    delegator: Option<Who>,
    delegate: Option<Who>,
    exchange_data_id: Option<&'static str>,
    parents: &'static [&'static str],
    permission: Permission,
    secret_ids: usize,
}

fn dk(hex_text: &str) -> DelegationKey {
    DelegationKey::from_bytes(hex::decode(hex_text).unwrap().try_into().unwrap())
}

#[test]
fn the_golden_entity_decodes_field_by_field_and_re_encodes_to_the_same_bytes() {
    let json = std::fs::read_to_string(data_path("entity.json")).unwrap();
    let bin = std::fs::read(data_path("entity.bincode")).unwrap();
    let from_json: EncryptedEntity = serde_json::from_str(&json).unwrap();
    let from_bin: EncryptedEntity = from_bincode(&bin).unwrap();
    assert_eq!(from_json, from_bin);
    assert_eq!(json_text(&from_json), json, "JSON drifted");
    assert_eq!(to_bincode(&from_bin), bin, "bincode drifted");

    let entity = from_bin;
    assert_eq!(entity.version, FormatVersion::V2);
    assert_eq!(entity.id, ENTITY_ID.parse::<EntityId>().unwrap());
    assert_eq!(entity.entity_type, ty("Contact"));
    assert_eq!(entity.rev, 7);
    // Created (1), then the attachment added by a plain update (2); never rotated.
    assert_eq!(entity.content_version, 2);
    assert_eq!(entity.key_epoch, 0);
    // The writer proof: A's version proof and its chain of one link (its root), sealed.
    assert!(
        entity.writer_proof.0.len() > 30 + 1 + 200,
        "{}",
        entity.writer_proof.0.len()
    );
    assert_eq!(entity.public, expected_public());
    let sensitive = manifest().split(document()).1;
    assert_eq!(
        entity.encrypted_self.0.len(),
        serde_json::to_vec(&sensitive).unwrap().len() + 30
    );
    assert_eq!(hex::encode(entity.key_commitment), KEY_COMMITMENT);
    let tags: Vec<String> = entity
        .secret_foreign_keys
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(tags, [SEARCH_TAG]);

    let expected = expected_delegations();
    let delegations = &entity.security_metadata.delegations;
    assert_eq!(
        delegations.keys().copied().collect::<BTreeSet<_>>(),
        expected.iter().map(|e| dk(e.key)).collect::<BTreeSet<_>>()
    );
    for e in &expected {
        let d = &delegations[&dk(e.key)];
        assert_eq!(d.delegator, e.delegator.map(Who::id), "{}", e.key);
        assert_eq!(d.delegate, e.delegate.map(Who::id), "{}", e.key);
        assert_eq!(
            d.exchange_data_id,
            e.exchange_data_id
                .map(|id| ExchangeDataId::from_bytes(hex::decode(id).unwrap().try_into().unwrap())),
            "{}",
            e.key
        );
        assert_eq!(
            d.parents,
            e.parents.iter().map(|p| dk(p)).collect::<BTreeSet<_>>(),
            "{}",
            e.key
        );
        assert_eq!(d.permission, e.permission, "{}", e.key);
        let lengths = |sealed: &[tessera_sharing::Sealed]| -> Vec<usize> {
            sealed.iter().map(|s| s.0.len()).collect()
        };
        // Entity key (32) ‖ creator (16) ‖ delegator's tag (32).
        assert_eq!(lengths(&d.entity_keys), [30 + 32 + 16 + 32], "{}", e.key);
        // A write delegation other than the root carries its sealed chain; the root's is in the writer proof.
        let chains = usize::from(e.permission == Write && !e.parents.is_empty());
        assert_eq!(d.chain.len(), chains, "{}", e.key);
        assert_eq!(
            lengths(&d.secret_ids),
            vec![30 + 33; e.secret_ids],
            "{}",
            e.key
        );
        assert_eq!(lengths(&d.owning_entity_ids), [30 + 16], "{}", e.key);
    }

    assert_eq!(entity.attachments.len(), 1);
    let attachment = &entity.attachments[0];
    assert_eq!(attachment.id.to_string(), ATTACHMENT_ID);
    assert_eq!(attachment.sealed_key.0.len(), 30 + 32);
    assert_eq!(
        attachment.encrypted_len,
        tessera_primitives::stream::encrypted_len(ATTACHMENT.len() as u64)
    );
    assert_eq!(attachment.encrypted_len, 50);

    // The patient's owner id and the parent entity's id appear nowhere.
    let patient: OwnerId = P.id();
    common::assert_no_trace(&entity, patient.as_bytes(), &patient.to_string(), "patient");
    let parent: EntityId = PATIENT_ENTITY_ID.parse().unwrap();
    common::assert_no_trace(&entity, parent.as_bytes(), PATIENT_ENTITY_ID, "parent");
}

// Values of the committed files (random when generated, fixed since).
const KEY_COMMITMENT: &str = "dbec3c53343294cd683a705dc4f5a40cf46a827de7a164c32631571b4576309e";
const SEARCH_TAG: &str = "d38fe3da630a02294900046648c5bd181a089ccbace303e7be4cbd78100c999c";
const ATTACHMENT_ID: &str = "ec3dfa0a-9546-441d-9b69-02e8f521617f";
const ROOT: &str = "badc91be0a1042fbce56987d5c09b7eb39b90782080b32a0ca454675290713ca";
const A_TO_P: &str = "46b26b24b662723db124294fff5ea20f4669ca080dd8fe5d729261af51cddd85";
const A_TO_B: &str = "26b7bcce9f55d4273a2dbc6730b612a519bd8b4cbcb271c02bbadbe113261c65";

fn expected_delegations() -> Vec<Expected> {
    vec![
        // A → A: the root, explicit.
        Expected {
            key: ROOT,
            delegator: Some(A),
            delegate: Some(A),
            exchange_data_id: Some("40c122b6800a8a679a749c73c8fd037e"),
            parents: &[],
            permission: Write,
            secret_ids: 2,
        },
        // A → P: auto-delegation, the patient anonymous.
        Expected {
            key: A_TO_P,
            delegator: Some(A),
            delegate: None,
            exchange_data_id: None,
            parents: &[ROOT],
            permission: Write,
            secret_ids: 1,
        },
        // A → B: shared, explicit.
        Expected {
            key: A_TO_B,
            delegator: Some(A),
            delegate: Some(B),
            exchange_data_id: Some("7ff5099a6193dd2f57d1a488f043c44e"),
            parents: &[ROOT],
            permission: Write,
            secret_ids: 1,
        },
        // B → C: shared on, explicit.
        Expected {
            key: "22c8cfe05ae8bbdd1c2d4bbf116b43f705dd395407807441cda0e2ccb2f748b2",
            delegator: Some(B),
            delegate: Some(C),
            exchange_data_id: Some("efb8568243a48e3790bbbfeb8071334a"),
            parents: &[A_TO_B],
            permission: Read,
            secret_ids: 1,
        },
        // B → P: shared on, both anonymous.
        Expected {
            key: "285cf11df3c3a6085cc8c2faecfbecb5a035fec6d2126658feecc617e1d77435",
            delegator: None,
            delegate: None,
            exchange_data_id: None,
            parents: &[A_TO_B],
            permission: Read,
            secret_ids: 1,
        },
        // P → C: the patient shares on, itself anonymous.
        Expected {
            key: "8ab82b646991143e0fbdc4c10f1c919497cb06422eed595b672e981ef153f623",
            delegator: None,
            delegate: Some(C),
            exchange_data_id: None,
            parents: &[A_TO_P],
            permission: Read,
            secret_ids: 1,
        },
    ]
}
