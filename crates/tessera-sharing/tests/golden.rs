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
    Visibility, decrypt,
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
    let (reference, _) = seal_attachment(&opened, ATTACHMENT).unwrap();
    entity.attachments.push(reference);
    entity.rev = 7;
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
        assert_eq!(lengths(&d.entity_keys), [30 + 32], "{}", e.key);
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
const KEY_COMMITMENT: &str = "db4c0892c1f37354e6e801eb126252580de4dd42a1f76adf6125fcc9346799ba";
const SEARCH_TAG: &str = "01283f664dc3d3128a24d9e690c890e5f9188087a0e26afad4c5c76eecd20d62";
const ATTACHMENT_ID: &str = "5d6e4b80-d034-4a46-9652-ad698d43584e";
const ROOT: &str = "56c573670d48e358f58df7b2048484eedacf016c6fdd822d964610587521d52f";
const A_TO_P: &str = "9e368dccae787ab4f992a5312056799a2d33ef0593fdf9e485e5594fd34ed06a";
const A_TO_B: &str = "21447d2b5011637419ec66cdd9c9c158927303f4fbe355531f27dbaeae5c9596";

fn expected_delegations() -> Vec<Expected> {
    vec![
        // A → A: the root, explicit.
        Expected {
            key: ROOT,
            delegator: Some(A),
            delegate: Some(A),
            exchange_data_id: Some("a462ff391c90e0c8c2a6ddaf5897b968"),
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
            exchange_data_id: Some("3b40872a600d66533f9c18966dc2999e"),
            parents: &[ROOT],
            permission: Write,
            secret_ids: 1,
        },
        // B → C: shared on, explicit.
        Expected {
            key: "43749cd10a30b19f3e4514aa915c3c62d57cee7c50a79f336401e5b6e7648d07",
            delegator: Some(B),
            delegate: Some(C),
            exchange_data_id: Some("9a3707960e20d9161fa6b5e3c71ed95a"),
            parents: &[A_TO_B],
            permission: Read,
            secret_ids: 1,
        },
        // B → P: shared on, both anonymous.
        Expected {
            key: "778b2a0c9254ea5c62cf3e5b98379a8b9297fa28040cdb54bd312f3d7346d899",
            delegator: None,
            delegate: None,
            exchange_data_id: None,
            parents: &[A_TO_B],
            permission: Read,
            secret_ids: 1,
        },
        // P → C: the patient shares on, itself anonymous.
        Expected {
            key: "2dbf6ccc799ce068c9788c9f21f1cbf8ffc99e9ecf6f70d0205344283e3743b2",
            delegator: None,
            delegate: Some(C),
            exchange_data_id: None,
            parents: &[A_TO_P],
            permission: Read,
            secret_ids: 1,
        },
    ]
}
