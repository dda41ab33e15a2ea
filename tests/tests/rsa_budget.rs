//! The RSA budget of sharing through the SDK against a real server: RSA is paid once per pair of owners (the
//! delegator creates the exchange data, the delegate opens it once), never per record. After that, creating,
//! sharing and reading records between the pair costs no RSA operation, in the same sessions and in new ones
//! (the secrets come back from the key bag).
//!
//! What is counted: [`tessera::SessionStats::opened_with_rsa`] (RSA decryptions of exchange data) and
//! [`tessera::SessionStats::created_exchange_data`] (one RSA wrap and one signature each). The challenge–response
//! login itself is not counted by the SDK.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{Env, object};
use serde_json::json;
use tessera::{EntityType, NewRecord, OwnerKind, Session, SessionStats, Share};

/// The RSA-bearing counters of a session: exchange data opened with the private key, exchange data created.
fn rsa(stats: SessionStats) -> (usize, usize) {
    (stats.opened_with_rsa, stats.created_exchange_data)
}

/// Records created by `alice` and shared with `bob` in each of the three ways the SDK offers.
async fn create_and_share(
    alice: &Session,
    bob: tessera::OwnerId,
    note: &EntityType,
) -> Vec<tessera::EntityRef> {
    let mut shared = Vec::new();
    for round in 0..3 {
        let text = format!("note-{round}");
        let later = alice
            .create_json(note, object(json!({"text": text})))
            .await
            .unwrap();
        alice
            .share(&later.entity, &[Share::read(bob)])
            .await
            .unwrap();
        let at_creation = alice
            .create_record(
                NewRecord::new(note.clone(), object(json!({"text": text})))
                    .share_with(Share::read(bob)),
            )
            .await
            .unwrap();
        let many = alice
            .create_json(note, object(json!({"text": text})))
            .await
            .unwrap();
        alice
            .share_many(std::slice::from_ref(&many.entity), &[Share::read(bob)])
            .await
            .unwrap();
        shared.extend([later.entity, at_creation.entity, many.entity]);
    }
    shared
}

#[tokio::test]
async fn sharing_with_a_known_partner_costs_no_rsa() {
    let env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let note = EntityType::new("Note").unwrap();

    // The first share pays for the pair: Alice creates the exchange data, Bob opens it on his first read.
    let alice_session = env.login(&alice).await;
    let bob_session = env.login(&bob).await;
    let first = alice_session
        .create_json(&note, object(json!({"text": "first"})))
        .await
        .unwrap();
    alice_session
        .share(&first.entity, &[Share::read(bob.id)])
        .await
        .unwrap();
    bob_session.get_json(&first.entity).await.unwrap();
    let alice_paid = rsa(alice_session.stats());
    let bob_paid = rsa(bob_session.stats());
    assert!(
        alice_paid.1 >= 1,
        "the first share creates the exchange data: {alice_paid:?}"
    );
    assert_eq!(
        bob_paid.0, 1,
        "Bob opens the exchange data once: {bob_paid:?}"
    );

    // Every further create, share and read between the pair costs nothing more.
    let shared = create_and_share(&alice_session, bob.id, &note).await;
    for entity in shared.iter().chain([&first.entity]) {
        bob_session.get_json(entity).await.unwrap();
    }
    assert_eq!(rsa(alice_session.stats()), alice_paid);
    assert_eq!(rsa(bob_session.stats()), bob_paid);

    // Nor in new sessions: both find the pair's secret in their key bag.
    let alice_again = env.login(&alice).await;
    let bob_again = env.login(&bob).await;
    let shared = create_and_share(&alice_again, bob.id, &note).await;
    for entity in shared.iter().chain([&first.entity]) {
        bob_again.get_json(entity).await.unwrap();
    }
    assert_eq!(rsa(alice_again.stats()), (0, 0));
    assert_eq!(rsa(bob_again.stats()), (0, 0));
}
