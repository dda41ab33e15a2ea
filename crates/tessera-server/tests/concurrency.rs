//! Concurrent writers against a real server over redb: creates that share a group commit each keep their own all-or-none answer, a race for one id has one winner, and concurrent updates of one revision have one winner.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::sync::Arc;

use common::{TestServer, Who, note, revised, status, ty};
use serde_json::json;
use tessera_client::Client;
use tessera_sharing::EncryptedEntity;
use tessera_store::{RedbStore, Store};

/// Concurrent client tasks.
const TASKS: usize = 12;
/// Requests per task.
const REQUESTS: usize = 12;

/// A server over a fresh redb file (real durable commits, so that concurrent creates get grouped).
async fn redb_server() -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("tessera.redb")).unwrap();
    let server = TestServer::start(Arc::new(store) as Arc<dyn Store>, |_| {}).await;
    server.register_world().await;
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_keep_their_own_all_or_none_answers() {
    let (server, _dir) = redb_server().await;
    let a = server.login_with_keys(Who::A, &ty("Note")).await;
    let existing: Vec<EncryptedEntity> = (0..4).map(|_| note(Who::A).0).collect();
    a.create_entities(&existing).await.unwrap();

    // Every third request also names an existing id: it must fail whole, the others succeed whole.
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client: Client = a.clone();
        let existing = existing.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for request in 0..REQUESTS {
                let mut batch = vec![note(Who::A).0, note(Who::A).0];
                let spoiled = (task + request) % 3 == 0;
                if spoiled {
                    batch.push(existing[(task + request) % existing.len()].clone());
                }
                let result = client.create_entities(&batch).await;
                outcomes.push((batch, spoiled, result));
            }
            outcomes
        }));
    }
    let mut succeeded = 0;
    let mut refused = 0;
    for task in tasks {
        for (batch, spoiled, result) in task.await.unwrap() {
            if spoiled {
                assert_eq!(status(result), 409);
                refused += 1;
                for entity in &batch[..2] {
                    assert_eq!(status(a.entity(entity.id).await), 404);
                }
            } else {
                let written = result.unwrap();
                assert_eq!(
                    written.written,
                    batch.iter().map(|e| (e.id, 1)).collect::<Vec<_>>()
                );
                succeeded += 1;
                for entity in &batch {
                    assert_eq!(a.entity(entity.id).await.unwrap().rev, 1);
                }
            }
        }
    }
    assert_eq!(succeeded + refused, TASKS * REQUESTS);
    assert!(refused > 0 && succeeded > 0);
    let all = a
        .query_by_delegation_key(&common::world().dk(Who::A, Who::A, &ty("Note")))
        .await
        .unwrap();
    assert_eq!(all.len(), existing.len() + 2 * succeeded);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_for_one_id_has_one_winner() {
    let (server, _dir) = redb_server().await;
    let a = server.login_with_keys(Who::A, &ty("Note")).await;
    for _ in 0..5 {
        let (template, opened) = note(Who::A);
        let mut tasks = Vec::new();
        for racer in 0..TASKS {
            let client = a.clone();
            let mut entity = revised(Who::A, &template, &opened, |e| {
                e.public.insert("racer".into(), json!(racer));
            });
            // Every racer creates the same new id, so each entry is a first version (the server does not check
            // signatures; readers do, and this test is about the store's race).
            entity.content_version = 1;
            tasks.push(tokio::spawn(async move {
                (racer, client.create_entity(&entity).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (racer, result) = task.await.unwrap();
            match result {
                Ok(rev) => {
                    assert_eq!(rev, 1);
                    winners.push(racer);
                }
                Err(error) => assert!(error.is_conflict(), "{error}"),
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let stored = a.entity(template.id).await.unwrap();
        assert_eq!(stored.public["racer"], json!(winners[0]));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_revision_have_one_winner() {
    let (server, _dir) = redb_server().await;
    let a = server.login_with_keys(Who::A, &ty("Note")).await;
    let (entity, opened) = note(Who::A);
    a.create_entity(&entity).await.unwrap();
    for round in 1..=3u64 {
        let stored = a.entity(entity.id).await.unwrap();
        assert_eq!(stored.rev, round);
        let mut tasks = Vec::new();
        for writer in 0..TASKS {
            let client = a.clone();
            let update = revised(Who::A, &stored, &opened, |e| {
                e.public.insert("writer".into(), json!(writer));
            });
            tasks.push(tokio::spawn(async move {
                (writer, client.update_entity(&update, round).await)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (writer, result) = task.await.unwrap();
            match result {
                Ok(rev) => {
                    assert_eq!(rev, round + 1);
                    winners.push(writer);
                }
                Err(error) => assert!(error.is_conflict(), "{error}"),
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let after = a.entity(entity.id).await.unwrap();
        assert_eq!(after.public["writer"], json!(winners[0]));
    }
    server.shutdown().await;
}
