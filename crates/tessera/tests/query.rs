//! `Session::query` and `Session::create_many` against a real server: the records an owner created, shared with a
//! partner, or received from a partner (explicitly or anonymously), per type, and nothing revoked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::BTreeSet;

use common::Fixture;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tessera::{EntityType, NewRecord, OwnerKind, Query, Record, Session, Share, Visibility};

#[derive(Debug, Deserialize)]
struct Note {
    text: String,
}

fn note() -> EntityType {
    EntityType::new("Note").unwrap()
}

async fn texts(session: &Session, query: Query) -> BTreeSet<String> {
    let found: Vec<Record<Map<String, Value>>> = session.query_json(&note(), query).await.unwrap();
    found
        .into_iter()
        .map(|r| r.content["text"].as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn queries_find_what_was_created_shared_and_received_and_nothing_revoked() {
    let fixture = Fixture::start().await;
    let (_, alice) = fixture.session(OwnerKind::Hcp).await;
    let (_, bob) = fixture.session(OwnerKind::Hcp).await;
    let (_, patient) = fixture.session(OwnerKind::Patient).await;
    let (_, eve) = fixture.session(OwnerKind::Hcp).await;

    let mut mine = Vec::new();
    for text in ["a1", "a2", "a3"] {
        mine.push(alice.create(&note(), &json!({"text": text})).await.unwrap());
    }
    for saved in &mine[..2] {
        alice
            .share(&saved.entity, &[Share::read(bob.owner())])
            .await
            .unwrap();
    }
    // A record of another type never shows up in a query for notes.
    let contact = EntityType::new("Contact").unwrap();
    let other = alice
        .create(&contact, &json!({"text": "c1"}))
        .await
        .unwrap();
    alice
        .share(&other.entity, &[Share::read(bob.owner())])
        .await
        .unwrap();

    let from_bob = bob.create(&note(), &json!({"text": "b1"})).await.unwrap();
    bob.share(&from_bob.entity, &[Share::write(alice.owner())])
        .await
        .unwrap();
    let from_patient = patient
        .create(&note(), &json!({"text": "p1"}))
        .await
        .unwrap();
    patient
        .share(
            &from_patient.entity,
            &[Share::read(alice.owner()).with_visibility(Visibility::AnonymousDelegator)],
        )
        .await
        .unwrap();

    assert_eq!(
        texts(&alice, Query::Created).await,
        set(&["a1", "a2", "a3"])
    );
    assert_eq!(
        texts(&alice, Query::SharedWith(bob.owner())).await,
        set(&["a1", "a2"])
    );
    // Picked up without a refresh by hand: the query opens the partners' new exchange data first.
    assert_eq!(
        texts(&alice, Query::SharedBy(bob.owner())).await,
        set(&["b1"])
    );
    assert_eq!(
        texts(&alice, Query::SharedBy(patient.owner())).await,
        set(&["p1"])
    );
    assert_eq!(
        texts(&bob, Query::SharedBy(alice.owner())).await,
        set(&["a1", "a2"])
    );
    assert_eq!(
        bob.query_json(&contact, Query::SharedBy(alice.owner()))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        texts(&alice, Query::SharedWith(eve.owner()))
            .await
            .is_empty()
    );
    assert!(texts(&eve, Query::SharedBy(alice.owner())).await.is_empty());
    assert!(texts(&eve, Query::Created).await.is_empty());

    // Typed records.
    let typed: Vec<Record<Note>> = bob
        .query(&note(), Query::SharedBy(alice.owner()))
        .await
        .unwrap();
    assert_eq!(typed.len(), 2);
    assert!(typed.iter().all(|r| r.content.text.starts_with('a')));

    // A revoked share is gone from both sides' queries.
    alice.revoke(&mine[1].entity, &[bob.owner()]).await.unwrap();
    assert_eq!(
        texts(&bob, Query::SharedBy(alice.owner())).await,
        set(&["a1"])
    );
    assert_eq!(
        texts(&alice, Query::SharedWith(bob.owner())).await,
        set(&["a1"])
    );
    assert_eq!(
        texts(&alice, Query::Created).await,
        set(&["a1", "a2", "a3"])
    );
    fixture.server.shutdown().await;
}

#[tokio::test]
async fn create_many_stores_records_of_several_types_with_their_shares_in_one_request() {
    let fixture = Fixture::start().await;
    let (_, alice) = fixture.session(OwnerKind::Hcp).await;
    let (_, bob) = fixture.session(OwnerKind::Hcp).await;
    let contact = EntityType::new("Contact").unwrap();
    assert!(alice.create_many(Vec::new()).await.unwrap().is_empty());

    let records = vec![
        NewRecord::from_value(note(), &json!({"text": "n1"})).unwrap(),
        NewRecord::from_value(note(), &json!({"text": "n2"}))
            .unwrap()
            .share_with(Share::read(bob.owner())),
        NewRecord::from_value(contact.clone(), &json!({"text": "c1"}))
            .unwrap()
            .share_with(Share::write(bob.owner())),
    ];
    let saved = alice.create_many(records).await.unwrap();
    assert_eq!(saved.len(), 3);
    for (saved, text) in saved.iter().zip(["n1", "n2", "c1"]) {
        let record = alice.get_json(&saved.entity).await.unwrap();
        assert_eq!(record.content["text"], text);
        assert_eq!(record.rev, saved.rev);
    }
    assert_eq!(
        texts(&bob, Query::SharedBy(alice.owner())).await,
        set(&["n2"])
    );
    assert_eq!(
        bob.get_json(&saved[2].entity).await.unwrap().permission,
        tessera::Permission::Write
    );
    assert!(
        bob.get_json(&saved[0].entity)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Above the server's bulk limit nothing is stored.
    let too_many: Vec<NewRecord> = (0..1001)
        .map(|i| NewRecord::from_value(note(), &json!({"text": format!("x{i}")})).unwrap())
        .collect();
    let error = alice.create_many(too_many).await.unwrap_err();
    assert!(error.is_invalid(), "{error:?}");
    assert_eq!(texts(&alice, Query::Created).await, set(&["n1", "n2"]));
    fixture.server.shutdown().await;
}

#[tokio::test]
async fn a_query_larger_than_a_server_answer_is_read_page_by_page() {
    // A server answering at most 4 records per request: 11 notes come back whole, each once.
    let fixture = Fixture::configured(|config| config.limits.max_bulk_entities = 4).await;
    let (_, alice) = fixture.session(OwnerKind::Hcp).await;
    let (_, bob) = fixture.session(OwnerKind::Hcp).await;
    let mut created = BTreeSet::new();
    for n in 0..11 {
        let text = format!("n{n}");
        let saved = alice
            .create_record(
                NewRecord::new(note(), json!({ "text": text }).as_object().unwrap().clone())
                    .share_with(Share::read(bob.owner())),
            )
            .await
            .unwrap();
        assert_eq!(saved.entity.entity_type, note());
        created.insert(text);
    }
    assert_eq!(texts(&alice, Query::Created).await, created);
    assert_eq!(texts(&bob, Query::SharedBy(alice.owner())).await, created);
    let found: Vec<Record<Map<String, Value>>> =
        alice.query_json(&note(), Query::Created).await.unwrap();
    assert_eq!(found.len(), 11, "no record twice");
}
