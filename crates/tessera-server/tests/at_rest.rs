//! What a thief of the server's redb file sees after a whole scenario through the API: no plaintext marker, no exchange key, no access-control key, no self key, no session or administrator token — only ciphertext, ids and delegation keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::sync::Arc;

use common::{
    ADMIN, Spec, TestServer, Who, contains, create_as, document, revised, shared, ty, world,
};
use tessera_keys::KeyBag;
use tessera_keys::wire::hex;
use tessera_primitives::stream::SEGMENT_LEN;
use tessera_sharing::attachment::seal_attachment;
use tessera_sharing::{
    ParentLink, Permission, SecretId, SecretIdScope, ShareRequest, SideMapEntry, Visibility,
    decrypt,
};
use tessera_store::{RedbStore, Store};
use tessera_wire::{Format, RecoveryBody};

use Who::{A, B, P};

const DIAGNOSIS: &str = "MARKER-7f3a-DIAGNOSIS";
const NOTE: &str = "MARKER-7f3a-NOTE";
const CHILD: &str = "MARKER-7f3a-CONTACT";
const LATER: &str = "MARKER-7f3a-LATER";
const ATTACHMENT: &str = "MARKER-7f3a-ATTACHMENT";
const RECOVERY: &str = "MARKER-7f3a-RECOVERY";
/// A public field: it must be in the file, which shows that the scan finds a marker that is there.
const PUBLIC: &str = "PUBLIC-7f3a-TITLE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_file_holds_no_plaintext_and_no_key() {
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.redb");
    let store = Arc::new(RedbStore::open(&path).unwrap());
    let server = TestServer::start(Arc::clone(&store) as Arc<dyn Store>, |_| {}).await;
    server.register_world().await;
    let types = [ty("Patient"), ty("Contact")];
    let mut sessions = Vec::new();

    // A (in JSON) creates a patient record and a child of it, shares both with B and, anonymously, with P.
    let mut a = server.client_in(Format::Json);
    sessions.push(a.login(w.keys(A)).await.unwrap().token);
    let mut a_keys = w.access_keys(A, &types[0]);
    a_keys.extend(w.access_keys(A, &types[1]));
    a.register_access_keys(&a_keys).await.unwrap();
    let secret_id = SecretId::generate().unwrap();
    let (patient, patient_opened) = create_as(
        A,
        Spec {
            entity_type: types[0].clone(),
            document: document(PUBLIC, DIAGNOSIS, NOTE),
            secret_ids: vec![(secret_id.clone(), SecretIdScope::Shared)],
            ..Spec::note()
        },
    );
    let (child, child_opened) = create_as(
        A,
        Spec {
            entity_type: types[1].clone(),
            document: document(PUBLIC, CHILD, CHILD),
            parents: vec![ParentLink {
                parent: patient.id,
                secret_id: secret_id.clone(),
            }],
            ..Spec::note()
        },
    );
    a.create_entities(&[patient.clone(), child.clone()])
        .await
        .unwrap();
    let targets = [
        w.target(A, B, Visibility::Explicit, Permission::Read),
        w.target(A, P, Visibility::AnonymousDelegate, Permission::Read),
    ];
    let mut entries = shared(A, &patient, &patient_opened, &targets);
    entries.extend(shared(A, &child, &child_opened, &targets));
    a.share(&ShareRequest::new(entries)).await.unwrap();

    // An attachment of two segments and a bit, referenced through an update that also changes a public field.
    let content = ATTACHMENT.repeat(2 * SEGMENT_LEN / ATTACHMENT.len() + 10);
    let (reference, sealed) = seal_attachment(&patient_opened, content.as_bytes()).unwrap();
    let stored = revised(
        A,
        &a.entity(patient.id).await.unwrap(),
        &patient_opened,
        |e| {
            e.attachments.push(reference.clone());
            e.public
                .insert("status".into(), serde_json::json!("reviewed"));
        },
    );
    a.update_entity(&stored, stored.rev).await.unwrap();
    a.put_attachment(patient.id, reference.id, sealed)
        .await
        .unwrap();

    // Key bags, a side-map entry and recovery data.
    for who in [A, B, P] {
        let mut client = server.client();
        sessions.push(client.login(w.keys(who)).await.unwrap().token);
        for from in Who::ALL {
            let holder_side = if from == who {
                w.own(who, A)
            } else {
                w.secret(who, from, who)
            };
            let entry = KeyBag::seal_entry(w.keys(who), holder_side).unwrap();
            client.put_key_bag_entry(&entry).await.unwrap();
        }
        // B reads through the API too, presenting its keys in headers.
        if who == B {
            client.present_access_keys(&w.access_keys(B, &types[0]));
            let read = decrypt(&client.entity(patient.id).await.unwrap(), &w.access(B)).unwrap();
            assert_eq!(read.document["diagnosis"], DIAGNOSIS);
        }
    }
    let side = SideMapEntry::seal(w.keys(A), w.dk(A, P, &types[0]), w.data(A, P).id()).unwrap();
    a.put_side_map_entry(&side).await.unwrap();
    let recovery = RecoveryBody {
        sealed: w
            .keys(A)
            .self_key()
            .seal(RECOVERY.as_bytes(), b"recovery")
            .unwrap(),
        expires: 4_000_000_000,
    };
    a.put_recovery(&[3; 32], &recovery).await.unwrap();
    // One more entity, with other sensitive values, created after everything else.
    let (later, _) = create_as(
        A,
        Spec {
            entity_type: types[0].clone(),
            document: document(PUBLIC, LATER, LATER),
            ..Spec::note()
        },
    );
    a.create_entity(&later).await.unwrap();

    // Stop the server and close the database. The server's commit thread lets go of the store once the server's
    // state is dropped, shortly after `shutdown` returns.
    server.shutdown().await;
    drop(a);
    let stopped = std::time::Instant::now();
    while Arc::strong_count(&store) > 1 && stopped.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        Arc::strong_count(&store),
        1,
        "the server released the store after shutdown"
    );
    drop(store);
    let file = std::fs::read(&path).unwrap();

    assert!(
        contains(&file, PUBLIC.as_bytes()),
        "the scan finds public fields"
    );
    for marker in [DIAGNOSIS, NOTE, CHILD, LATER, ATTACHMENT, RECOVERY] {
        assert!(!contains(&file, marker.as_bytes()), "{marker} in the file");
        assert!(
            !contains(&file, &marker.as_bytes()[..12]),
            "a prefix of {marker} in the file"
        );
    }
    let mut secrets = 0;
    for holder in Who::ALL {
        let keys = w.keys(holder);
        let self_key = keys.self_key().expose_secret();
        assert!(!contains(&file, self_key), "{holder:?}'s self key");
        assert!(!contains(&file, hex(self_key).as_bytes()));
        for from in Who::ALL {
            for to in Who::ALL {
                let Some(secret) =
                    (holder == from || holder == to).then(|| w.secret(holder, from, to))
                else {
                    continue;
                };
                secrets += 1;
                let exchange_key = secret.opening_key().expose_secret();
                assert!(
                    !contains(&file, exchange_key),
                    "exchange key {from:?}→{to:?}"
                );
                assert!(!contains(&file, hex(exchange_key).as_bytes()));
                for entity_type in types.iter().chain([&ty("Note")]) {
                    let access_key = secret.access_control_key(entity_type);
                    let bytes = access_key.expose_secret();
                    assert!(
                        !contains(&file, bytes),
                        "access-control key {from:?}→{to:?} {entity_type}"
                    );
                    assert!(!contains(&file, hex(bytes).as_bytes()));
                }
            }
        }
    }
    assert_eq!(secrets, 28, "every secret of the world was checked");
    for token in &sessions {
        assert!(
            !contains(&file, token.expose_secret().as_bytes()),
            "a session token"
        );
    }
    assert!(
        !contains(&file, ADMIN.as_bytes()),
        "the administrator token"
    );

    // The file is the database the server wrote: it reopens with every record.
    let reopened = RedbStore::open(&path).unwrap();
    assert_eq!(
        reopened
            .get_entity(patient.id)
            .unwrap()
            .unwrap()
            .attachments,
        vec![reference]
    );
    assert_eq!(reopened.key_bag(B.id()).unwrap().len(), 4);
}
