//! Encryption manifests that cannot leak by mistake: a path that matches no field of a record fails the write, names
//! the path, and leaves nothing in clear on the server.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::Fixture;
use serde_json::{Map, Value, json};
use tessera::{EncryptionManifest, EntityType, ErrorKind, NewRecord, OwnerKind, Query};
use tessera_store::Store;

const MARKER: &str = "MARKER-allergic-to-penicillin";

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

#[tokio::test]
async fn a_misspelt_path_fails_the_write_and_stores_nothing_in_clear() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let note = EntityType::new("Note").unwrap();
    alice.set_manifest(note.clone(), EncryptionManifest::new(["txt"]).unwrap());

    let refused = alice
        .create_json(&note, object(json!({"text": MARKER, "lang": "en"})))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Invalid);
    let message = refused.to_string();
    for expected in [
        "`txt`",
        "matches no field",
        "`text`",
        "nothing was written",
        "in clear",
    ] {
        assert!(
            message.contains(expected),
            "{expected:?} not in {message:?}"
        );
    }
    assert!(
        !message.contains(MARKER),
        "the message shows a value: {message}"
    );
    // The same through the batch API.
    let refused = alice
        .create_many(vec![NewRecord::new(
            note.clone(),
            object(json!({"text": MARKER})),
        )])
        .await
        .unwrap_err();
    assert!(refused.is_invalid());
    assert!(
        alice
            .query_json(&note, Query::Created)
            .await
            .unwrap()
            .is_empty(),
        "nothing was created"
    );

    // An update whose content the manifest no longer matches is refused too, and the stored record is unchanged.
    alice.set_manifest(note.clone(), EncryptionManifest::new(["text"]).unwrap());
    let saved = alice
        .create_json(&note, object(json!({"text": "first", "lang": "en"})))
        .await
        .unwrap();
    let refused = alice
        .update_json(&saved.entity, saved.rev, object(json!({"txt": MARKER})))
        .await
        .unwrap_err();
    assert!(refused.is_invalid());
    assert!(refused.to_string().contains("`text`"), "{refused}");
    let stored = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(MARKER));
    assert_eq!(Value::Object(stored.public), json!({"lang": "en"}));
}

#[tokio::test]
async fn paths_through_arrays_and_maps_must_match_an_element() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let patient = EntityType::new("Patient").unwrap();
    alice.set_manifest(
        patient.clone(),
        EncryptionManifest::new(["contacts[].phone", "labels{}.text"]).unwrap(),
    );
    // Empty lists hold nothing to protect: accepted.
    alice
        .create_json(&patient, object(json!({"contacts": [], "labels": {}})))
        .await
        .unwrap();
    let saved = alice
        .create_json(
            &patient,
            object(json!({"contacts": [{"phone": MARKER}], "labels": {"a": {"text": MARKER}}})),
        )
        .await
        .unwrap();
    let stored = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    assert!(!serde_json::to_string(&stored).unwrap().contains(MARKER));

    let refused = alice
        .create_json(
            &patient,
            object(json!({"contacts": [{"phne": MARKER}], "labels": {}})),
        )
        .await
        .unwrap_err();
    assert!(refused.is_invalid());
    assert!(
        refused.to_string().contains("`contacts[].phone`"),
        "{refused}"
    );
}
