//! Durability of the redb backend: everything survives a reopen, and every acknowledged write survives `kill -9`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use tessera_keys::wire::hex;
use tessera_primitives::sha256;
use tessera_primitives::stream::SEGMENT_LEN;
use tessera_sharing::attachment::seal_attachment;
use tessera_sharing::{EncryptedEntity, EntityId, SideMapEntry};
use tessera_store::conformance::fixtures;
use tessera_store::{RecoveryData, RedbStore, Store};

/// Set (to the database path) in the child process that writes until it is killed.
const WRITER_ENV: &str = "TESSERA_STORE_CRASH_WRITER";
/// Prefix of the child's acknowledgement lines, to tell them from the test harness's output.
const ACK: &str = "ACK ";
/// Acknowledged writes the parent waits for before it kills the writer.
const WANTED_ACKS: usize = 50;

#[test]
fn reopening_keeps_every_record() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.redb");
    let (entity, opened) = f.entity_with(json!({"title": "kept", "diagnosis": "flu"}), Vec::new());
    let (reference, sealed) = seal_attachment(&opened, &vec![7; 2 * SEGMENT_LEN + 3]).unwrap();
    let updated = EncryptedEntity {
        attachments: vec![reference.clone()],
        ..entity.clone()
    };
    let owner = f.owner(&f.doctor);
    let bag_entry = f.key_bag_entry();
    let message = f.inbox_message();
    let side = SideMapEntry::seal(&f.doctor, f.colleague_key(), f.shared.0.id()).unwrap();
    let recovery = RecoveryData {
        id: [5; 32],
        sealed: vec![1; 100],
        expires: 1_800_000_000,
    };
    {
        let store = RedbStore::open(&path).unwrap();
        store.put_owner(&owner, None).unwrap();
        store
            .put_inbox_message(f.colleague.owner(), &message)
            .unwrap();
        store.put_key_bag_entry(&bag_entry).unwrap();
        store.create_entity(&entity).unwrap();
        store.update_entity(&updated, 1).unwrap();
        store
            .put_attachment(entity.id, reference.id, &sealed)
            .unwrap();
        store.put_recovery_data(&recovery).unwrap();
        store.put_side_map_entry(&side).unwrap();
    }

    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.get_owner(owner.id).unwrap().unwrap().value, owner);
    assert_eq!(store.inbox(f.colleague.owner()).unwrap(), vec![message]);
    assert_eq!(store.key_bag(f.doctor.owner()).unwrap(), vec![bag_entry]);
    assert_eq!(
        store.get_entity(entity.id).unwrap(),
        Some(EncryptedEntity { rev: 2, ..updated })
    );
    assert_eq!(
        store
            .entities_by_delegation_key(&f.colleague_key())
            .unwrap(),
        vec![entity.id]
    );
    assert_eq!(
        store
            .read_attachment(entity.id, reference.id, 0..u64::MAX)
            .unwrap(),
        Some(sealed)
    );
    assert_eq!(
        store.get_recovery_data(&recovery.id).unwrap(),
        Some(recovery)
    );
    assert_eq!(
        store
            .side_map_entry(f.doctor.owner(), &f.colleague_key())
            .unwrap(),
        Some(side)
    );
}

#[test]
fn a_second_store_on_the_same_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.redb");
    let _store = RedbStore::open(&path).unwrap();
    assert!(RedbStore::open(&path).is_err());
}

/// Spawns this test binary as a writer, kills it with SIGKILL once it has acknowledged enough creates, and checks
/// that every acknowledged entity is in the reopened database with the content the writer reported.
#[test]
fn acknowledged_creates_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, acks) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(ack) = line.strip_prefix(ACK)
                && lines.send(ack.to_owned()).is_err()
            {
                break;
            }
        }
    });

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut acknowledged = Vec::new();
    while acknowledged.len() < WANTED_ACKS {
        let left = deadline.saturating_duration_since(Instant::now());
        match acks.recv_timeout(left) {
            Ok(ack) => acknowledged.push(ack),
            Err(error) => {
                let _ = child.kill();
                panic!(
                    "the writer stopped after {} acks: {error}",
                    acknowledged.len()
                );
            }
        }
    }
    // SIGKILL while the writer is still creating: its next commit is cut short at an arbitrary point.
    child.kill().unwrap();
    child.wait().unwrap();
    drop(acks);
    reader.join().unwrap();

    let store = RedbStore::open(&path).unwrap();
    for ack in &acknowledged {
        let (id, digest) = ack.split_once(' ').unwrap();
        let id: EntityId = id.parse().unwrap();
        let entity = store
            .get_entity(id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged entity {id} is lost"));
        assert_eq!(entity.rev, 1);
        assert_eq!(digest_of(&entity), digest, "content of {id}");
    }
}

/// The writer half of [`acknowledged_creates_survive_kill_9`]: a no-op unless the parent set [`WRITER_ENV`].
/// Creates entities one by one and in batches, and prints each id (with a digest of its content) only after the
/// commit that stored it returned.
#[test]
fn crash_writer() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    write_until_killed(Path::new(&path));
}

fn write_until_killed(path: &Path) {
    let f = fixtures();
    let store = RedbStore::open(path).unwrap();
    let started = Instant::now();
    let mut written = 0;
    // Bounded, so that a writer whose parent died does not run forever.
    while written < 20_000 && started.elapsed() < Duration::from_secs(60) {
        let batch: Vec<_> = (0..1 + written % 4)
            .map(|i| f.entity(json!({"seq": written + i, "diagnosis": "flu"})))
            .collect();
        if batch.len() == 1 {
            store.create_entity(&batch[0]).unwrap();
        } else {
            store.create_entities(&batch).unwrap();
        }
        for mut entity in batch {
            entity.rev = 1;
            println!("{ACK}{} {}", entity.id, digest_of(&entity));
            written += 1;
        }
    }
}

fn digest_of(entity: &EncryptedEntity) -> String {
    hex(&sha256(&serde_json::to_vec(entity).unwrap()))
}
