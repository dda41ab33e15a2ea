//! The session's operations against a real server on 127.0.0.1:0: create, read, update, delete, share (explicit and
//! anonymous), revoke, revoke-and-rotate, children by search tag, attachments, key-bag logins, trust, session renewal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::time::Duration;

use common::{Fixture, copy};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tessera::{
    EncryptionManifest, EntityRef, EntityType, ErrorKind, NewRecord, OwnerKind, Permission,
    PinnedFingerprints, Session, Share, Visibility,
};
use tessera_store::Store;
use tokio::io::AsyncReadExt;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    title: String,
    text: String,
}

fn note_type() -> EntityType {
    EntityType::new("Note").unwrap()
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

#[tokio::test]
async fn create_get_update_delete_round_trip() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let note = Note {
        title: "Consultation".into(),
        text: "allergic to penicillin".into(),
    };
    let saved = alice.create(&note_type(), &note).await.unwrap();
    assert_eq!(saved.rev, 1);
    let read = alice.get::<Note>(&saved.entity).await.unwrap();
    assert_eq!(read.content, note);
    assert_eq!(read.permission, Permission::Write);

    let changed = Note {
        text: "allergic to penicillin and latex".into(),
        ..note
    };
    let rev = alice.update(&saved.entity, 1, &changed).await.unwrap();
    assert_eq!(rev, 2);
    assert_eq!(
        alice.get::<Note>(&saved.entity).await.unwrap().content,
        changed
    );

    // A stale revision is a conflict, checked before anything is sent.
    let stale = alice.update(&saved.entity, 1, &changed).await.unwrap_err();
    assert!(stale.is_conflict(), "{stale:?}");

    alice.delete(&saved.entity, 2).await.unwrap();
    let gone = alice.get_json(&saved.entity).await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test]
async fn without_a_manifest_every_field_is_encrypted_and_with_one_only_the_listed_fields() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let secret_note = alice
        .create_json(
            &note_type(),
            object(json!({"text": "penicillin", "lang": "en"})),
        )
        .await
        .unwrap();
    let stored = fx.store.get_entity(secret_note.entity.id).unwrap().unwrap();
    assert!(stored.public.is_empty(), "{:?}", stored.public);

    let letter = EntityType::new("Letter").unwrap();
    alice.set_manifest(letter.clone(), EncryptionManifest::new(["text"]).unwrap());
    let saved = alice
        .create_json(&letter, object(json!({"text": "penicillin", "lang": "en"})))
        .await
        .unwrap();
    let stored = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    assert_eq!(Value::Object(stored.public.clone()), json!({"lang": "en"}));
    let raw = serde_json::to_string(&stored).unwrap();
    assert!(!raw.contains("penicillin"));
    let read = alice.get_json(&saved.entity).await.unwrap();
    assert_eq!(
        Value::Object(read.content),
        json!({"text": "penicillin", "lang": "en"})
    );
}

#[tokio::test]
async fn shared_records_are_read_by_the_delegate_and_nobody_else() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let (_, eve) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_json(&note_type(), object(json!({"text": "penicillin"})))
        .await
        .unwrap();

    // Before the share, Bob gets the same answer as for a record that does not exist (P3).
    assert!(
        bob.get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let rev = alice
        .share(&saved.entity, &[Share::read(bob_keys.owner())])
        .await
        .unwrap();
    assert_eq!(rev, 2);
    // Bob's session picks up the new exchange data by itself.
    let read = bob.get_json(&saved.entity).await.unwrap();
    assert_eq!(read.content["text"], "penicillin");
    assert_eq!(read.permission, Permission::Read);

    // Sharing again is a no-op; a known partner costs no new exchange data.
    assert_eq!(
        alice
            .share(&saved.entity, &[Share::read(bob_keys.owner())])
            .await
            .unwrap(),
        2
    );
    assert_eq!(alice.stats().created_exchange_data, 2);

    // Eve is not shared with: 404 from the server, and the ciphertext itself does not open (P4).
    assert!(
        eve.get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let stolen = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    assert!(eve.open_entity(&stolen).unwrap_err().is_no_access());

    // Bob may read but not write.
    let denied = bob
        .update_json(&saved.entity, 2, object(json!({"text": "changed"})))
        .await
        .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Forbidden);
}

#[tokio::test]
async fn a_write_delegate_updates_and_the_creator_reads_the_update() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_record(
            NewRecord::new(note_type(), object(json!({"text": "v1"})))
                .share_with(Share::write(bob_keys.owner())),
        )
        .await
        .unwrap();
    let rev = bob
        .update_json(
            &saved.entity,
            saved.rev,
            object(json!({"text": "v2 by bob"})),
        )
        .await
        .unwrap();
    let read = alice.get_json(&saved.entity).await.unwrap();
    assert_eq!(read.rev, rev);
    assert_eq!(read.content["text"], "v2 by bob");
}

#[tokio::test]
async fn a_patient_shares_anonymously_and_its_id_never_appears_in_the_record() {
    let fx = Fixture::start().await;
    let (patient_keys, patient) = fx.session(OwnerKind::Patient).await;
    let (doctor_keys, doctor) = fx.session(OwnerKind::Hcp).await;
    let measurement = EntityType::new("Measurement").unwrap();
    let saved = patient
        .create_record(
            NewRecord::new(measurement.clone(), object(json!({"glucose": 5.4}))).share_with(
                Share::read(doctor_keys.owner()).with_visibility(Visibility::AnonymousDelegator),
            ),
        )
        .await
        .unwrap();
    let stored = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    let raw = serde_json::to_string(&stored).unwrap();
    assert!(!raw.contains(&patient_keys.owner().to_string()));
    assert_eq!(stored.security_metadata.delegations.len(), 2);
    for delegation in stored.security_metadata.delegations.values() {
        assert_eq!(delegation.delegator, None);
        assert_eq!(delegation.exchange_data_id, None);
    }
    let read = doctor.get_json(&saved.entity).await.unwrap();
    assert_eq!(read.content["glucose"], 5.4);
}

#[tokio::test]
async fn revoke_cuts_access_and_rotate_makes_old_keys_useless() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let (carol_keys, carol) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_record(
            NewRecord::new(note_type(), object(json!({"text": "secret"})))
                .share_with(Share::read(bob_keys.owner()))
                .share_with(Share::read(carol_keys.owner())),
        )
        .await
        .unwrap();
    let (attachment, _) = alice
        .add_attachment(&saved.entity, saved.rev, b"scan")
        .await
        .unwrap();
    assert_eq!(
        bob.get_json(&saved.entity).await.unwrap().content["text"],
        "secret"
    );

    // Plain revocation: the server stops serving the record to Bob at once.
    let before_revoke = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    alice
        .revoke(&saved.entity, &[bob_keys.owner()])
        .await
        .unwrap();
    assert!(
        bob.get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // But the key did not change: with his old delegation, the content stored now still opens for Bob.
    // That is what rotation is for.
    let mut bob_view = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    assert!(bob.open_entity(&bob_view).unwrap_err().is_no_access());
    bob_view.security_metadata = before_revoke.security_metadata;
    assert!(bob.open_entity(&bob_view).is_ok());

    // Revoke and rotate Carol: new key, content and attachment re-encrypted, Carol's old key opens nothing.
    let carol_old_view = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    // `open_entity` asks no server: Carol's session first learns of Alice's exchange data.
    assert!(
        carol
            .open_entity(&carol_old_view)
            .unwrap_err()
            .is_no_access()
    );
    assert_eq!(carol.refresh().await.unwrap(), 1);
    assert!(carol.open_entity(&carol_old_view).is_ok());
    let rotated = alice
        .revoke_and_rotate(&saved.entity, &[carol_keys.owner()])
        .await
        .unwrap();
    assert_eq!(rotated.attachments, 1);
    assert!(rotated.removed >= 1);
    assert!(
        carol
            .get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let mut after = fx.store.get_entity(saved.entity.id).unwrap().unwrap();
    assert_ne!(after.key_commitment, carol_old_view.key_commitment);
    // Even with her old delegation put back beside the new ciphertext, Carol cannot open it.
    after.security_metadata = carol_old_view.security_metadata.clone();
    assert!(carol.open_entity(&after).unwrap_err().is_crypto());

    // Alice still reads everything.
    assert_eq!(
        alice.get_json(&saved.entity).await.unwrap().content["text"],
        "secret"
    );
    assert_eq!(
        alice.attachment(&saved.entity, attachment).await.unwrap(),
        b"scan"
    );
}

#[tokio::test]
async fn children_are_found_by_tag_per_type_and_link_back_to_their_parent() {
    let fx = Fixture::start().await;
    let (_, doctor) = fx.session(OwnerKind::Hcp).await;
    let (patient_keys, patient) = fx.session(OwnerKind::Patient).await;
    let patient_type = EntityType::new("Patient").unwrap();
    let contact = EntityType::new("Contact").unwrap();
    let document = EntityType::new("Document").unwrap();
    let to_patient =
        Share::read(patient_keys.owner()).with_visibility(Visibility::AnonymousDelegate);
    let record = doctor
        .create_record(
            NewRecord::new(patient_type, object(json!({"name": "Charlie"}))).share_with(to_patient),
        )
        .await
        .unwrap();
    let mut contacts = Vec::new();
    for visit in 0..3 {
        contacts.push(
            doctor
                .create_record(
                    NewRecord::new(contact.clone(), object(json!({"visit": visit})))
                        .child_of(record.entity.clone())
                        .share_with(to_patient),
                )
                .await
                .unwrap(),
        );
    }
    let letter = doctor
        .create_record(
            NewRecord::new(document.clone(), object(json!({"title": "letter"})))
                .child_of(record.entity.clone()),
        )
        .await
        .unwrap();
    // A contact of another patient record.
    let other = doctor
        .create_json(
            &EntityType::new("Patient").unwrap(),
            object(json!({"name": "Dana"})),
        )
        .await
        .unwrap();
    doctor
        .create_record(
            NewRecord::new(contact.clone(), object(json!({"visit": 99}))).child_of(other.entity),
        )
        .await
        .unwrap();

    let found = doctor
        .children_json(&record.entity, &contact)
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|c| c.parents == vec![record.entity.id]));
    assert_eq!(
        doctor
            .children_json(&record.entity, &document)
            .await
            .unwrap()
            .len(),
        1
    );

    // Per-type tags: the contacts share one tag, the document has another.
    let contact_tags = fx
        .store
        .get_entity(contacts[0].entity.id)
        .unwrap()
        .unwrap()
        .secret_foreign_keys;
    let document_tags = fx
        .store
        .get_entity(letter.entity.id)
        .unwrap()
        .unwrap()
        .secret_foreign_keys;
    assert!(contact_tags.is_disjoint(&document_tags));

    // The patient, shared with the record and the contacts but not the document, finds the contacts only.
    assert_eq!(
        patient
            .children_json(&record.entity, &contact)
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(
        patient
            .children_json(&record.entity, &document)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn attachments_round_trip_whole_by_range_and_as_a_stream() {
    let fx = Fixture::start().await;
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_record(
            NewRecord::new(note_type(), object(json!({"text": "scan attached"})))
                .share_with(Share::read(bob_keys.owner())),
        )
        .await
        .unwrap();
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (attachment, rev) = alice
        .add_attachment(&saved.entity, saved.rev, &content)
        .await
        .unwrap();
    assert_eq!(rev, saved.rev + 1);

    let record = bob.get_json(&saved.entity).await.unwrap();
    assert_eq!(record.attachments.len(), 1);
    assert_eq!(record.attachments[0].len, content.len() as u64);
    assert_eq!(
        bob.attachment(&saved.entity, attachment).await.unwrap(),
        content
    );
    // A range across the first segment boundary (64 KiB).
    let range = bob
        .attachment_range(&saved.entity, attachment, 65_000..70_000)
        .await
        .unwrap();
    assert_eq!(range, content[65_000..70_000]);
    // A range past the end is clamped.
    let tail = bob
        .attachment_range(&saved.entity, attachment, 199_990..300_000)
        .await
        .unwrap();
    assert_eq!(tail, content[199_990..]);
    // As a stream, counting the bytes as they come (what a progress bar shows).
    let mut stream = bob
        .attachment_stream(&saved.entity, attachment)
        .await
        .unwrap();
    assert_eq!(stream.len(), 200_000);
    let mut whole = Vec::new();
    let mut progress = Vec::new();
    let mut buffer = vec![0u8; 50_000];
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        if n == 0 {
            break;
        }
        whole.extend_from_slice(&buffer[..n]);
        progress.push(whole.len());
    }
    assert_eq!(whole, content);
    assert!(progress.len() > 1, "{progress:?}");
    assert_eq!(progress.last(), Some(&200_000));

    // Bob may not add attachments to a record he may only read.
    let denied = bob
        .add_attachment(&saved.entity, rev, b"x")
        .await
        .unwrap_err();
    assert!(denied.is_forbidden());
}

#[tokio::test]
async fn a_second_login_opens_everything_from_the_key_bag_without_rsa() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_record(
            NewRecord::new(note_type(), object(json!({"text": "hello"})))
                .share_with(Share::read(bob_keys.owner())),
        )
        .await
        .unwrap();
    // Bob's first session opens Alice's exchange data with RSA and seals it into his key bag.
    bob.get_json(&saved.entity).await.unwrap();
    assert_eq!(bob.stats().opened_with_rsa, 1);

    let again = fx.login(&copy(&bob_keys)).await;
    assert_eq!(again.stats().opened_with_rsa, 0);
    assert_eq!(again.stats().key_bag_entries, 1);
    assert_eq!(
        again.get_json(&saved.entity).await.unwrap().content["text"],
        "hello"
    );
}

#[tokio::test]
async fn share_many_shares_several_records_in_one_request() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let mut entities = Vec::new();
    for i in 0..3 {
        entities.push(
            alice
                .create_json(&note_type(), object(json!({"n": i})))
                .await
                .unwrap()
                .entity,
        );
    }
    let written = alice
        .share_many(&entities, &[Share::read(bob_keys.owner())])
        .await
        .unwrap();
    assert_eq!(written.len(), 3);
    for (i, entity) in entities.iter().enumerate() {
        assert_eq!(bob.get_json(entity).await.unwrap().content["n"], i);
    }
}

#[tokio::test]
async fn a_partner_outside_the_trust_policy_is_refused() {
    let fx = Fixture::start().await;
    let alice_keys = fx.owner(OwnerKind::Hcp).await;
    let bob_keys = fx.owner(OwnerKind::Hcp).await;
    // Alice pins no fingerprint of Bob's: sharing with him is refused before anything is created for him.
    let alice = Session::login(fx.client(), copy(&alice_keys), PinnedFingerprints::new([]))
        .await
        .unwrap();
    let saved = alice
        .create_json(&note_type(), object(json!({"text": "x"})))
        .await
        .unwrap();
    let refused = alice
        .share(&saved.entity, &[Share::read(bob_keys.owner())])
        .await
        .unwrap_err();
    assert!(refused.is_untrusted(), "{refused:?}");

    // With Bob's fingerprint pinned (compared out of band), it works.
    let alice = Session::login(
        fx.client(),
        copy(&alice_keys),
        PinnedFingerprints::new([bob_keys.fingerprint()]),
    )
    .await
    .unwrap();
    alice
        .share(&saved.entity, &[Share::read(bob_keys.owner())])
        .await
        .unwrap();
}

#[tokio::test]
async fn an_expired_server_session_is_renewed_transparently() {
    let fx = Fixture::with_session_lifetime(Duration::from_secs(1)).await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_json(&note_type(), object(json!({"text": "x"})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The registered access keys went with the old session; the renewal registers them again.
    assert_eq!(
        alice.get_json(&saved.entity).await.unwrap().content["text"],
        "x"
    );
}

#[tokio::test]
async fn a_patient_registered_below_a_doctor_logs_in() {
    let fx = Fixture::start().await;
    let (_, doctor) = fx.session(OwnerKind::Hcp).await;
    let patient_keys = doctor
        .register_owner(OwnerKind::Patient, tessera::RsaKeySize::Bits2048)
        .await
        .unwrap();
    let patient = fx.login(&patient_keys).await;
    assert_eq!(patient.kind(), OwnerKind::Patient);
    let stored = fx.store.get_owner(patient.owner()).unwrap().unwrap();
    // The server checked the doctor's right to register the patient and kept no link between them.
    assert_eq!(stored.value.parent, None);
}

#[tokio::test]
async fn records_of_another_type_are_refused() {
    let fx = Fixture::start().await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let saved = alice
        .create_json(&note_type(), object(json!({"text": "x"})))
        .await
        .unwrap();
    let wrong = EntityRef::new(EntityType::new("Contact").unwrap(), saved.entity.id);
    let error = alice.get_json(&wrong).await.unwrap_err();
    // Said as a wrong type, not as tampering.
    assert!(error.is_invalid(), "{error:?}");
    assert!(
        error.to_string().contains("is of type Note, not Contact"),
        "{error}"
    );
}

#[test]
fn key_files_round_trip_and_reject_garbage() {
    let keys = tessera::generate_owner(OwnerKind::Device, None, tessera::RsaKeySize::Bits2048)
        .unwrap()
        .0;
    let again = copy(&keys);
    assert_eq!(again.owner(), keys.owner());
    assert_eq!(again.fingerprint(), keys.fingerprint());
    for garbage in [
        "",
        "hello",
        "tessera-owner-key: 1\nowner: nope\n-----BEGIN PRIVATE KEY-----\n",
    ] {
        assert!(tessera::decode_key_file(garbage).unwrap_err().is_invalid());
    }
}

#[test]
fn content_that_is_not_an_object_is_invalid() {
    let error = NewRecord::from_value(note_type(), &[1, 2, 3]).unwrap_err();
    assert!(error.is_invalid());
}
