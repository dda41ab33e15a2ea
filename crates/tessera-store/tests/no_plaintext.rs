//! What a database thief sees (DESIGN.md §2, P4, P6): the redb file holds no plaintext, no exchange key and no
//! access-control key, only ciphertext, ids and delegation keys.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use serde_json::json;
use tessera_keys::KeyBag;
use tessera_primitives::stream::SEGMENT_LEN;
use tessera_sharing::attachment::seal_attachment;
use tessera_sharing::{EncryptedEntity, ParentLink, SecretId, SideMapEntry};
use tessera_store::conformance::fixtures;
use tessera_store::{RecoveryData, RedbStore, Store};

const DIAGNOSIS: &str = "MARKER-DIAGNOSIS-7f3a";
const NOTE: &str = "MARKER-NOTE-91c2";
const ATTACHMENT: &str = "MARKER-ATTACHMENT-55aa";
/// A public field: it must be in the file, which shows that the scan would find a marker that is there.
const PUBLIC: &str = "PUBLIC-MARKER-c0de";

#[test]
fn the_database_file_holds_no_plaintext_and_no_key() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.redb");
    let root_key = f.root_key();
    {
        let store = RedbStore::open(&path).unwrap();
        store.put_owner(&f.owner(&f.doctor), None).unwrap();
        store.put_owner(&f.owner(&f.colleague), None).unwrap();
        store
            .put_inbox_message(f.colleague.owner(), &f.inbox_message())
            .unwrap();
        for (_, secret) in [&f.own, &f.shared] {
            store
                .put_key_bag_entry(&KeyBag::seal_entry(&f.doctor, secret).unwrap())
                .unwrap();
        }
        let document =
            json!({"title": PUBLIC, "diagnosis": DIAGNOSIS, "note": format!("{NOTE} {NOTE}")});
        let (patient, opened) = f.entity_with(document.clone(), Vec::new());
        let link = ParentLink {
            parent: patient.id,
            secret_id: SecretId::generate().unwrap(),
        };
        let (child, _) = f.entity_with(document.clone(), vec![link]);
        let batch: Vec<EncryptedEntity> = (0..20).map(|_| f.entity(document.clone())).collect();
        store.create_entity(&patient).unwrap();
        store.create_entity(&child).unwrap();
        store.create_entities(&batch).unwrap();
        let content = ATTACHMENT.repeat(SEGMENT_LEN / ATTACHMENT.len() + 100);
        let (reference, sealed) = seal_attachment(&opened, content.as_bytes()).unwrap();
        store
            .put_attachment(patient.id, reference.id, &sealed)
            .unwrap();
        let updated = EncryptedEntity {
            attachments: vec![reference],
            ..patient.clone()
        };
        store.update_entity(&updated, 1).unwrap();
        store
            .put_side_map_entry(
                &SideMapEntry::seal(&f.doctor, f.colleague_key(), f.shared.0.id()).unwrap(),
            )
            .unwrap();
        store
            .put_recovery_data(&RecoveryData {
                id: [1; 32],
                sealed: f.doctor.self_key().seal(b"recovery", b"test").unwrap(),
                expires: 1_800_000_000,
            })
            .unwrap();
    }
    let file = std::fs::read(&path).unwrap();

    assert!(
        contains(&file, PUBLIC.as_bytes()),
        "the scan finds public fields"
    );
    assert!(
        contains(&file, root_key.as_bytes()),
        "the scan finds raw key bytes"
    );

    let mut secrets: Vec<(String, Vec<u8>)> = [DIAGNOSIS, NOTE, ATTACHMENT]
        .iter()
        .map(|marker| (marker.to_string(), marker.as_bytes().to_vec()))
        .collect();
    for (name, (_, secret)) in [("own", &f.own), ("shared", &f.shared)] {
        secrets.push((
            format!("{name} exchange key"),
            secret.opening_key().expose_secret().to_vec(),
        ));
        secrets.push((
            format!("{name} access-control key"),
            secret
                .access_control_key(&f.entity_type)
                .expose_secret()
                .to_vec(),
        ));
    }
    secrets.push((
        "doctor's self key".to_owned(),
        f.doctor.self_key().expose_secret().to_vec(),
    ));
    let der = f.doctor.rsa_private_key().to_pkcs8_der().unwrap();
    let der = der.expose_secret();
    secrets.push(("doctor's private key".to_owned(), der.to_vec()));
    // A window inside the private exponent and primes, far from the header bytes shared with public keys.
    secrets.push((
        "a window of the doctor's private key".to_owned(),
        der[der.len() / 2..der.len() / 2 + 32].to_vec(),
    ));

    for (name, secret) in &secrets {
        assert!(!contains(&file, secret), "the file holds the {name}");
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    haystack
        .iter()
        .enumerate()
        .filter(|&(_, &byte)| byte == first)
        .any(|(at, _)| haystack.get(at + 1..at + 1 + rest.len()) == Some(rest))
}
