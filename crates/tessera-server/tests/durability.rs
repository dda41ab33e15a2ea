//! Durability of the real `tessera-server` binary: every create it acknowledged survives a SIGKILL in the middle of a stream of creates, and a restart on the same data directory serves them all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use common::{ADMIN, Who, note, ty, world};
use tessera_client::Client;
use tessera_server::serve::ADMIN_TOKEN_ENV;
use tessera_sharing::EntityId;

/// Creates acknowledged before the kill.
const WANTED_ACKS: usize = 40;
/// Concurrent writers.
const WRITERS: usize = 4;
/// At most this many creates are attempted.
const MAX_CREATES: usize = 2000;
/// The stream stops after this long whatever happens.
const TIME_LIMIT: Duration = Duration::from_secs(20);

/// Starts `tessera-server` on a free port over `data_dir`; returns the process and its address.
fn start_server(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera-server"))
        .arg("127.0.0.1:0")
        .arg(data_dir)
        .env(ADMIN_TOKEN_ENV, ADMIN)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Drain stdout in a thread so that logs never fill the pipe; report the address line.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("the server did not print its address"));
    (child, format!("http://{addr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_create_survives_sigkill_and_restart() {
    let w = world();
    let note_type = ty("Note");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    let (mut child, base) = start_server(&data_dir);
    let mut client = Client::new(base.clone());
    client
        .register_owner_as_admin(ADMIN, &w.owner_record(Who::A))
        .await
        .unwrap();
    client.login(w.keys(Who::A)).await.unwrap();
    client
        .register_access_keys(&w.access_keys(Who::A, &note_type))
        .await
        .unwrap();

    // Stream creates from several tasks (so that group commits are in flight); each OK answer is an
    // acknowledgement.
    let acknowledged: Arc<Mutex<Vec<EntityId>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let acknowledged = Arc::clone(&acknowledged);
            let client = client.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut attempted = 0;
                while attempted < MAX_CREATES / WRITERS && started.elapsed() < TIME_LIMIT {
                    attempted += 1;
                    let (entity, _) = note(Who::A);
                    match client.create_entity(&entity).await {
                        Ok(rev) => {
                            assert_eq!(rev, 1);
                            acknowledged.lock().unwrap().push(entity.id);
                        }
                        Err(_) => break,
                    }
                }
                attempted
            })
        })
        .collect();
    let started = Instant::now();
    while acknowledged.lock().unwrap().len() < WANTED_ACKS && started.elapsed() < TIME_LIMIT {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut attempted = 0;
    for writer in writers {
        attempted += writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= WANTED_ACKS,
        "only {} creates acknowledged in {TIME_LIMIT:?}",
        acknowledged.len()
    );
    assert!(
        attempted > acknowledged.len(),
        "the kill happened while creates were still being sent"
    );

    // Restart on the same directory; sessions are gone, so log in again.
    let (mut child, base) = start_server(&data_dir);
    let mut client = Client::new(base);
    client.login(w.keys(Who::A)).await.unwrap();
    // Protocol v2: the server shows an entity only to a requester that proved one of its keys.
    client
        .register_access_keys(&w.access_keys(Who::A, &note_type))
        .await
        .unwrap();
    for id in &acknowledged {
        let entity = client
            .entity(*id)
            .await
            .unwrap_or_else(|e| panic!("acknowledged entity {id} lost: {e}"));
        assert_eq!(entity.rev, 1);
    }
    let stored = client
        .query_by_delegation_key(&w.dk(Who::A, Who::A, &note_type))
        .await
        .unwrap();
    // The creates in flight at the kill (one per writer at most) may or may not have been committed.
    assert!(
        stored.len() >= acknowledged.len() && stored.len() <= attempted,
        "{} stored, {} acknowledged, {attempted} attempted",
        stored.len(),
        acknowledged.len()
    );
    // The restarted server takes new writes.
    client.create_entity(&note(Who::A).0).await.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}
