//! The six principles of DESIGN.md §1, each shown end to end against a real server with a redb file and real sessions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Env, Ledger, Owner, PatientFile, assert_no_links, contains, object, occurrences};
use serde_json::json;
use tessera::stored::KeyBagEntry;
use tessera::{
    Client, EncryptionManifest, EntityId, EntityRef, EntityType, ErrorKind, NewRecord, OwnerKind,
    Permission, PinnedFingerprints, Session, Share, Tofu, Visibility,
};
use tessera_keys::KeyBag;
use tessera_store::Store;

fn entity_type(name: &str) -> EntityType {
    EntityType::new(name).unwrap()
}

/// Windows of an owner's secrets that must never reach the server: three 32-byte windows of the smaller RSA prime
/// (the canonical private bytes end with it), the derived self key, and every line of the key file's PEM body.
fn secret_windows(owner: &Owner) -> Vec<Vec<u8>> {
    let keys = owner.keys();
    let canonical = keys.rsa_private_key().to_canonical_bytes().unwrap();
    let bytes = canonical.expose_secret();
    // `k ‖ n ‖ min(p, q)`, the prime left-padded with zeros to the modulus length.
    let k = (bytes.len() - 2) / 2;
    let padded = &bytes[2 + k..];
    let prime = &padded[padded.iter().take_while(|b| **b == 0).count()..];
    assert!(prime.len() >= k / 2 - 1);
    let mut windows: Vec<Vec<u8>> = [0, prime.len() / 2 - 16, prime.len() - 32]
        .iter()
        .map(|&at| prime[at..at + 32].to_vec())
        .collect();
    windows.push(keys.self_key().expose_secret().to_vec());
    let file = owner.key_file.expose_secret();
    windows.extend(
        file.lines()
            .skip_while(|line| !line.starts_with("-----BEGIN"))
            .filter(|line| !line.starts_with("-----") && line.len() >= 8)
            .map(|line| line.as_bytes().to_vec()),
    );
    windows
}

#[tokio::test]
async fn p1_each_owner_has_its_own_key_pair() {
    let mut env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let device = env.register(OwnerKind::Device).await;
    let alice_session = env.login(&alice).await;
    let charlie = env.register_below(&alice_session, OwnerKind::Patient).await;
    let owners = [&alice, &bob, &device, &charlie];

    // Each owner has its own key pair, and the server holds only its public half in a self-signed bundle.
    let mut fingerprints = BTreeSet::new();
    let mut moduli = BTreeSet::new();
    for owner in owners {
        let keys = owner.keys();
        let stored = env.store.get_owner(owner.id).unwrap().unwrap().value;
        assert_eq!(stored.id, owner.id);
        assert_eq!(stored.kind, owner.kind);
        assert_eq!(stored.bundles.len(), 1);
        let bundle = &stored.bundles[0];
        bundle.verify_self_signature().unwrap();
        assert_eq!(bundle.owner(), owner.id);
        assert_eq!(bundle.fingerprint(), keys.fingerprint());
        assert_eq!(*bundle.verifying_key(), keys.verifying_key());
        let spki = bundle.rsa_public_key().to_spki_der().unwrap();
        assert_eq!(
            spki,
            keys.rsa_private_key().public_key().to_spki_der().unwrap()
        );
        assert_eq!(keys.rsa_private_key().bits(), 2048);
        fingerprints.insert(keys.fingerprint());
        moduli.insert(spki);
    }
    assert_eq!(
        fingerprints.len(),
        owners.len(),
        "two owners share a bundle"
    );
    assert_eq!(moduli.len(), owners.len(), "two owners share an RSA key");
    let stored_charlie = env.store.get_owner(charlie.id).unwrap().unwrap().value;
    // Alice's right to register Charlie was checked; the link is not kept (protocol v2 privacy).
    assert_eq!(stored_charlie.parent, None);

    // Only the owner holds its private key, and the server lets nobody act as an owner without it: Bob's key with
    // Alice's id, or a brand new key claiming to be Alice, is refused at login.
    let bob_file = bob.key_file.expose_secret();
    let impostor = bob_file.replace(&bob.id.to_string(), &alice.id.to_string());
    assert_ne!(impostor, bob_file);
    let refused = Session::login(
        env.client(),
        tessera::decode_key_file(&impostor).unwrap(),
        Tofu::new(),
    )
    .await
    .unwrap_err();
    assert!(refused.is_unauthorized(), "{refused:?}");
    let (fresh, _) =
        tessera::generate_owner(OwnerKind::Hcp, None, tessera::RsaKeySize::Bits2048).unwrap();
    let fresh_file = tessera::encode_key_file(&fresh).unwrap();
    let forged = fresh_file
        .expose_secret()
        .replace(&fresh.owner().to_string(), &alice.id.to_string());
    let refused = Session::login(
        env.client(),
        tessera::decode_key_file(&forged).unwrap(),
        Tofu::new(),
    )
    .await
    .unwrap_err();
    assert!(refused.is_unauthorized(), "{refused:?}");
    // Nor may a bundle be re-registered for an existing owner by the administrator.
    let mut takeover = env.store.get_owner(alice.id).unwrap().unwrap().value;
    takeover.bundles = vec![tessera::decode_key_file(&forged).unwrap().bundle().unwrap()];
    assert!(
        tessera_client::Client::new(&env.url)
            .register_owner_as_admin(common::ADMIN, &takeover)
            .await
            .is_err()
    );

    // Every owner works with its own key: records, shares, key bags, exchange data all go through the server...
    let bob_session = env.login(&bob).await;
    let charlie_session = env.login(&charlie).await;
    let note = entity_type("Note");
    let saved = alice_session
        .create_record(
            NewRecord::new(note.clone(), object(json!({"text": "p1"})))
                .share_with(Share::read(bob.id))
                .share_with(Share::read(charlie.id).with_visibility(Visibility::AnonymousDelegate)),
        )
        .await
        .unwrap();
    bob_session.get_json(&saved.entity).await.unwrap();
    charlie_session.get_json(&saved.entity).await.unwrap();
    let device_session = env.login(&device).await;
    device_session
        .create_json(&note, object(json!({"text": "device"})))
        .await
        .unwrap();
    drop((alice_session, bob_session, charlie_session, device_session));

    // ...yet the database file holds no byte of any private key, derived self key or key file.
    let database = env.stop().await;
    for owner in owners {
        let windows = secret_windows(owner);
        assert!(windows.len() > 10);
        let found = occurrences(&database, &windows);
        assert!(
            found.is_empty(),
            "the database holds secret material {found:?} of owner {}",
            owner.id
        );
    }
}

#[tokio::test]
async fn p2_owner_creates_encrypts_and_shares() {
    let mut env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let alice_session = env.login(&alice).await;
    let charlie = env.register_below(&alice_session, OwnerKind::Patient).await;
    let bob_session = env.login(&bob).await;
    let charlie_session = env.login(&charlie).await;

    // Alice creates a note: the manifest's fields are sealed, the rest stays public.
    let note = entity_type("Note");
    alice_session.set_manifest(
        note.clone(),
        EncryptionManifest::new(["title", "text"]).unwrap(),
    );
    let content = object(json!({
        "language": "en",
        "title": "Consultation-7b2d",
        "text": "allergic-to-penicillin-91c4; prescribed-azithromycin-5e0a",
    }));
    let saved = alice_session
        .create_json(&note, content.clone())
        .await
        .unwrap();
    let stored = env.entity(saved.entity.id);
    assert_eq!(
        serde_json::Value::Object(stored.public.clone()),
        json!({"language": "en"})
    );
    assert!(!stored.encrypted_self.0.is_empty());
    let raw = env.stored_bytes(saved.entity.id);
    for word in [
        "Consultation-7b2d",
        "allergic-to-penicillin-91c4",
        "azithromycin",
    ] {
        assert!(!contains(&raw, word.as_bytes()), "{word} stored in clear");
    }
    assert_eq!(stored.security_metadata.delegations.len(), 1);
    assert_eq!(
        alice_session.get_json(&saved.entity).await.unwrap().content,
        content
    );

    // She shares it: Bob may read, Charlie (a patient, never named) may write.
    let rev = alice_session
        .share(
            &saved.entity,
            &[
                Share::read(bob.id),
                Share::write(charlie.id).with_visibility(Visibility::AnonymousDelegate),
            ],
        )
        .await
        .unwrap();
    assert_eq!(rev, saved.rev + 1);
    let read = bob_session.get_json(&saved.entity).await.unwrap();
    assert_eq!(read.content, content);
    assert_eq!(read.permission, Permission::Read);
    let read = charlie_session.get_json(&saved.entity).await.unwrap();
    assert_eq!(read.content, content);
    assert_eq!(read.permission, Permission::Write);

    // Charlie updates it; everybody reads the update with the key they have, and the sharing is untouched.
    let before = env.entity(saved.entity.id).security_metadata;
    let mut updated = content.clone();
    updated.insert("text".into(), json!("follow-up-in-two-weeks-33aa"));
    let rev = charlie_session
        .update_json(&saved.entity, read.rev, updated.clone())
        .await
        .unwrap();
    for session in [&alice_session, &bob_session, &charlie_session] {
        let read = session.get_json(&saved.entity).await.unwrap();
        assert_eq!(read.content, updated);
        assert_eq!(read.rev, rev);
    }
    assert_eq!(env.entity(saved.entity.id).security_metadata, before);
    // Bob may read only.
    let denied = bob_session
        .update_json(&saved.entity, rev, content.clone())
        .await
        .unwrap_err();
    assert_eq!(denied.kind(), ErrorKind::Forbidden);

    // An encrypted attachment travels the same way.
    let scan: Vec<u8> = (0..150_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (attachment, _) = alice_session
        .add_attachment(&saved.entity, rev, &scan)
        .await
        .unwrap();
    assert_eq!(
        bob_session
            .attachment(&saved.entity, attachment)
            .await
            .unwrap(),
        scan
    );

    // A patient is a data owner too: Charlie creates a reading and shares it with Bob without being named.
    let measurement = entity_type("Measurement");
    let reading = charlie_session
        .create_record(
            NewRecord::new(
                measurement,
                object(json!({"glucose": "glucose-5.4-mmol-8d1f"})),
            )
            .share_with(Share::read(bob.id).with_visibility(Visibility::AnonymousDelegator)),
        )
        .await
        .unwrap();
    assert_eq!(
        bob_session.get_json(&reading.entity).await.unwrap().content["glucose"],
        "glucose-5.4-mmol-8d1f"
    );
    // Sharing several records with a known partner at once costs no new exchange data.
    let second = alice_session
        .create_json(
            &note,
            object(json!({"title": "second-note-c3c3", "text": "x"})),
        )
        .await
        .unwrap();
    let created = alice_session.stats().created_exchange_data;
    let written = alice_session
        .share_many(
            &[saved.entity.clone(), second.entity.clone()],
            &[Share::read(bob.id)],
        )
        .await
        .unwrap();
    assert_eq!(written.len(), 2);
    assert_eq!(alice_session.stats().created_exchange_data, created);
    assert_eq!(
        bob_session.get_json(&second.entity).await.unwrap().content["title"],
        "second-note-c3c3"
    );
    drop((alice_session, bob_session, charlie_session));

    let database = env.stop().await;
    let words: Vec<Vec<u8>> = [
        "Consultation-7b2d",
        "allergic-to-penicillin-91c4",
        "prescribed-azithromycin-5e0a",
        "follow-up-in-two-weeks-33aa",
        "glucose-5.4-mmol-8d1f",
        "second-note-c3c3",
    ]
    .iter()
    .map(|word| word.as_bytes().to_vec())
    .chain([0usize, 65_536, 100_000, 149_900].map(|at| scan[at..at + 32].to_vec()))
    .collect();
    assert_eq!(
        occurrences(&database, &words),
        BTreeSet::new(),
        "plaintext in the database"
    );
}

#[tokio::test]
async fn p3_only_granted_owners_retrieve() {
    let env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let carol = env.register(OwnerKind::Hcp).await;
    let eve = env.register(OwnerKind::Hcp).await;
    let [alice_session, bob_session, carol_session, eve_session] = [
        env.login(&alice).await,
        env.login(&bob).await,
        env.login(&carol).await,
        env.login(&eve).await,
    ];
    let note = entity_type("Note");
    let letter = entity_type("Letter");
    let contact = entity_type("Contact");
    let saved = alice_session
        .create_json(&note, object(json!({"text": "granted only"})))
        .await
        .unwrap();
    let (attachment, _) = alice_session
        .add_attachment(&saved.entity, saved.rev, b"x-ray")
        .await
        .unwrap();
    let patient_record = alice_session
        .create_json(&entity_type("Patient"), object(json!({"name": "n"})))
        .await
        .unwrap();
    let visit = alice_session
        .create_record(
            NewRecord::new(contact.clone(), object(json!({"reason": "r"})))
                .child_of(patient_record.entity.clone()),
        )
        .await
        .unwrap();

    // Not granted: the same answer as for a record that does not exist, so the server is no existence oracle.
    let missing = EntityRef::new(note.clone(), EntityId::generate().unwrap());
    let asked = eve_session.get_json(&saved.entity).await.unwrap_err();
    let asked_missing = eve_session.get_json(&missing).await.unwrap_err();
    assert!(asked.is_not_found(), "{asked:?}");
    assert!(asked_missing.is_not_found(), "{asked_missing:?}");
    assert_eq!(asked.to_string(), asked_missing.to_string());

    // Without a session: 401 before any lookup.
    let anonymous = tessera_client::Client::new(&env.url)
        .entity(saved.entity.id)
        .await;
    assert!(anonymous.unwrap_err().is_unauthorized());

    // Logged in, Eve asks by id, for the attachment, and presents what a stolen database copy gives: the entity's
    // delegation keys and the child's search tag. The server serves none of it.
    let mut eve_client = tessera_client::Client::new(&env.url);
    eve_client.login(&eve.keys()).await.unwrap();
    assert!(
        eve_client
            .entity(saved.entity.id)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(
        eve_client
            .attachment(saved.entity.id, attachment, None)
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );
    for key in env
        .entity(saved.entity.id)
        .security_metadata
        .delegations
        .keys()
    {
        assert!(
            eve_client
                .query_by_delegation_key(key)
                .await
                .unwrap()
                .is_empty()
        );
    }
    for tag in &env.entity(visit.entity.id).secret_foreign_keys {
        assert!(eve_client.query_by_tag(tag).await.unwrap().is_empty());
    }
    // Access-control keys Eve holds for her own records do not open Alice's.
    let own = eve_session
        .create_json(&note, object(json!({"text": "eve's"})))
        .await
        .unwrap();
    eve_session.get_json(&own.entity).await.unwrap();
    assert!(
        eve_session
            .get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // Granted: Bob retrieves the note, but not Alice's other records, not even those of another type that a
    // delegation key for (Alice, Bob) would cover if types were not mixed in.
    let letter_saved = alice_session
        .create_json(&letter, object(json!({"text": "not for bob"})))
        .await
        .unwrap();
    alice_session
        .share(&saved.entity, &[Share::read(bob.id)])
        .await
        .unwrap();
    assert_eq!(
        bob_session.get_json(&saved.entity).await.unwrap().content["text"],
        "granted only"
    );
    assert_eq!(
        bob_session
            .attachment(&saved.entity, attachment)
            .await
            .unwrap(),
        b"x-ray"
    );
    assert!(
        bob_session
            .get_json(&letter_saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        bob_session
            .get_json(&patient_record.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );

    // A grantee cannot widen its own permission, nor write.
    let widened = bob_session
        .share(&saved.entity, &[Share::write(carol.id)])
        .await
        .unwrap_err();
    assert!(widened.is_rule(), "{widened:?}");
    let rev = bob_session.get_json(&saved.entity).await.unwrap().rev;
    let written = bob_session
        .update_json(&saved.entity, rev, object(json!({"text": "bob"})))
        .await
        .unwrap_err();
    assert!(written.is_forbidden(), "{written:?}");
    // It may share onward what it has; Carol then retrieves it.
    bob_session
        .share(&saved.entity, &[Share::read(carol.id)])
        .await
        .unwrap();
    carol_session.get_json(&saved.entity).await.unwrap();
    // Carol, not an ancestor of Bob's delegation, cannot revoke it.
    let refused = carol_session
        .revoke(&saved.entity, &[bob.id])
        .await
        .unwrap_err();
    // (Carol cannot even find it: delegations name nobody, and this one is not hers.)
    assert!(
        refused.is_rule() || refused.is_forbidden() || refused.is_not_found(),
        "{refused:?}"
    );
    bob_session.get_json(&saved.entity).await.unwrap();

    // Revoked: Bob loses access at once, and so does Carol, who had it through Bob; Eve never had it.
    alice_session
        .revoke(&saved.entity, &[bob.id])
        .await
        .unwrap();
    for (session, name) in [
        (&bob_session, "bob"),
        (&carol_session, "carol"),
        (&eve_session, "eve"),
    ] {
        let error = session.get_json(&saved.entity).await.unwrap_err();
        assert!(error.is_not_found(), "{name}: {error:?}");
        let error = session
            .attachment(&saved.entity, attachment)
            .await
            .unwrap_err();
        assert!(error.is_not_found(), "{name}: {error:?}");
    }
    // Sessions logged in afresh do no better.
    for owner in [&bob, &carol, &eve] {
        let session = env.login(owner).await;
        assert!(
            session
                .get_json(&saved.entity)
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
    assert_eq!(
        alice_session.get_json(&saved.entity).await.unwrap().content["text"],
        "granted only"
    );
}

#[tokio::test]
async fn p4_other_owner_cannot_decrypt() {
    let mut env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let eve = env.register(OwnerKind::Hcp).await;
    let alice_session = env.login(&alice).await;
    let charlie = env.register_below(&alice_session, OwnerKind::Patient).await;
    let [bob_session, eve_session, charlie_session] = [
        env.login(&bob).await,
        env.login(&eve).await,
        env.login(&charlie).await,
    ];
    let note = entity_type("Note");
    let text = "penicillin-allergy-4f1e";
    let saved = alice_session
        .create_record(
            NewRecord::new(note.clone(), object(json!({"text": text})))
                .share_with(Share::read(bob.id))
                .share_with(Share::read(charlie.id).with_visibility(Visibility::AnonymousDelegate)),
        )
        .await
        .unwrap();
    let (attachment, _) = alice_session
        .add_attachment(&saved.entity, saved.rev, b"attachment-bytes-6c6c")
        .await
        .unwrap();
    // Eve holds a delegation of another note of Alice's: the same pair and type as a share of this note would use.
    let eves_note = alice_session
        .create_record(
            NewRecord::new(note.clone(), object(json!({"text": "for eve"})))
                .share_with(Share::read(eve.id)),
        )
        .await
        .unwrap();
    eve_session.get_json(&eves_note.entity).await.unwrap();
    for session in [&bob_session, &charlie_session] {
        assert_eq!(
            session.get_json(&saved.entity).await.unwrap().content["text"],
            text
        );
    }
    let stolen = env.entity(saved.entity.id);

    // A legitimate owner without a delegation: handed the stored entity, Eve cannot open it.
    assert!(
        eve_session
            .get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(eve_session.open_entity(&stolen).unwrap_err().is_no_access());
    // Nor by grafting her delegation of the other note onto it: the sealed key is bound to its entity.
    let mut grafted = stolen.clone();
    grafted.security_metadata.delegations.extend(
        env.entity(eves_note.entity.id)
            .security_metadata
            .delegations
            .into_iter()
            .filter(|(_, d)| d.delegate == Some(eve.id)),
    );
    let error = eve_session.open_entity(&grafted).unwrap_err();
    assert!(error.is_crypto() || error.is_no_access(), "{error:?}");
    // Nor by moving the ciphertext of this note into hers.
    let mut swapped = env.entity(eves_note.entity.id);
    swapped.encrypted_self = stolen.encrypted_self.clone();
    assert!(eve_session.open_entity(&swapped).unwrap_err().is_crypto());

    // The server operator: everything the server holds, and an owner of its own registered with the admin token.
    let owners = [&alice, &bob, &eve, &charlie];
    let mut bags: Vec<KeyBagEntry> = Vec::new();
    for owner in owners {
        assert_eq!(
            env.store
                .get_owner(owner.id)
                .unwrap()
                .unwrap()
                .value
                .bundles
                .len(),
            1
        );
        // No exchange data at rest: it travelled sealed through each delegate's inbox, which is empty once read.
        assert!(env.store.inbox(owner.id).unwrap().is_empty());
        bags.extend(common::exchange_entries(&env.store, owner));
    }
    // Alice with herself, Bob, Charlie and Eve: 4 in Alice's bag and one in each delegate's (the owner state, one
    // more entry per owner, is not an exchange secret).
    assert_eq!(bags.len(), 7);
    let mallory = env.register(OwnerKind::Hcp).await;
    let mallory_keys = mallory.keys();
    let mallory_session = env.login(&mallory).await;
    assert!(
        mallory_session
            .open_entity(&stolen)
            .unwrap_err()
            .is_no_access()
    );
    assert!(
        mallory_session
            .get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    // Every key-bag entry, as stored and relabelled as the operator's own: nothing opens.
    for entry in &bags {
        assert!(KeyBag::open_entry(&mallory_keys, entry).is_err());
        let mut relabelled = entry.clone();
        relabelled.owner = mallory.id;
        assert!(KeyBag::open_entry(&mallory_keys, &relabelled).is_err());
    }
    // Put a stolen delegation under the operator's own name: it still opens nothing.
    let mut renamed = stolen.clone();
    for delegation in renamed.security_metadata.delegations.values_mut() {
        delegation.delegate = Some(mallory.id);
    }
    let error = mallory_session.open_entity(&renamed).unwrap_err();
    assert!(error.is_no_access() || error.is_crypto(), "{error:?}");

    // Revoke and rotate: once Bob is removed and the key replaced, his old delegation opens nothing stored.
    alice_session
        .revoke_and_rotate(&saved.entity, &[bob.id])
        .await
        .unwrap();
    assert!(
        bob_session
            .get_json(&saved.entity)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let mut after = env.entity(saved.entity.id);
    assert_ne!(after.key_commitment, stolen.key_commitment);
    after.security_metadata = stolen.security_metadata.clone();
    assert!(bob_session.open_entity(&after).unwrap_err().is_crypto());
    // The granted ones still decrypt.
    for session in [&alice_session, &charlie_session] {
        assert_eq!(
            session.get_json(&saved.entity).await.unwrap().content["text"],
            text
        );
    }
    assert_eq!(
        charlie_session
            .attachment(&saved.entity, attachment)
            .await
            .unwrap(),
        b"attachment-bytes-6c6c"
    );

    // The key material the owners derive (exchange keys, access-control keys, self keys) is nowhere in the file.
    let types = [note.clone()];
    let ledger = Ledger::build(&env.store, &owners, &types);
    let mut secrets: Vec<Vec<u8>> = Vec::new();
    for secret in ledger.secrets.values() {
        secrets.push(secret.opening_key().expose_secret().to_vec());
        secrets.push(secret.access_control_key(&note).expose_secret().to_vec());
    }
    for owner in owners {
        secrets.push(owner.keys().self_key().expose_secret().to_vec());
    }
    drop((
        alice_session,
        bob_session,
        eve_session,
        charlie_session,
        mallory_session,
    ));
    let database = env.stop().await;
    assert_eq!(occurrences(&database, &secrets), BTreeSet::new());
    assert!(!contains(&database, text.as_bytes()));
    assert!(!contains(&database, b"attachment-bytes-6c6c"));
}

#[tokio::test]
async fn p5_private_key_is_the_only_secret() {
    let env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let dana = env.register(OwnerKind::Hcp).await;
    let alice_session = env.login(&alice).await;
    let charlie = env.register_below(&alice_session, OwnerKind::Patient).await;
    let patient_type = entity_type("Patient");
    let contact = entity_type("Contact");
    let note = entity_type("Note");
    let measurement = entity_type("Measurement");
    let to_charlie = |share: Share| share.with_visibility(Visibility::AnonymousDelegate);

    // Alice keeps Charlie's file and shares it with him; a note he may edit.
    let record = alice_session
        .create_record(
            NewRecord::new(patient_type.clone(), object(json!({"name": "Charlie"})))
                .share_with(to_charlie(Share::read(charlie.id))),
        )
        .await
        .unwrap();
    for visit in ["ankle", "ankle follow-up"] {
        alice_session
            .create_record(
                NewRecord::new(contact.clone(), object(json!({"reason": visit})))
                    .child_of(record.entity.clone())
                    .share_with(to_charlie(Share::read(charlie.id))),
            )
            .await
            .unwrap();
    }
    let editable = alice_session
        .create_record(
            NewRecord::new(note.clone(), object(json!({"text": "diary"})))
                .share_with(to_charlie(Share::write(charlie.id))),
        )
        .await
        .unwrap();

    // Charlie's first device: opens Alice's exchange data with RSA once, shares a reading with Bob.
    let first = env.login(&charlie).await;
    assert_eq!(first.stats().opened_with_rsa, 1);
    assert_eq!(
        first
            .children_json(&record.entity, &contact)
            .await
            .unwrap()
            .len(),
        2
    );
    let reading = first
        .create_record(
            NewRecord::new(measurement.clone(), object(json!({"glucose": 5.4})))
                .share_with(Share::read(bob.id).with_visibility(Visibility::AnonymousDelegator)),
        )
        .await
        .unwrap();
    assert_eq!(first.stats().created_exchange_data, 2);
    let first_self_key = charlie.keys().self_key().expose_secret().to_vec();
    drop(first);

    // The key file is the only secret: its header holds the owner id and the bundle's creation time, both public.
    let text = charlie.key_file.expose_secret();
    let header: Vec<&str> = text
        .lines()
        .take_while(|line| !line.starts_with("-----BEGIN"))
        .collect();
    let stored = env.store.get_owner(charlie.id).unwrap().unwrap().value;
    assert_eq!(
        header,
        [
            "tessera-owner-key: 1".to_owned(),
            format!("owner: {}", charlie.id),
            format!("created: {}", stored.bundles[0].created()),
        ]
    );
    assert!(text.trim_end().ends_with("-----END PRIVATE KEY-----"));

    // A fresh device with the key file alone re-derives every key: the same bundle the server holds, the same self
    // key, and the key bag opens without any RSA operation for the partners already in it.
    let keys = tessera::decode_key_file(text).unwrap();
    assert_eq!(keys.owner(), charlie.id);
    assert_eq!(keys.fingerprint(), stored.bundles[0].fingerprint());
    assert_eq!(keys.bundle().unwrap(), stored.bundles[0]);
    assert_eq!(keys.self_key().expose_secret().to_vec(), first_self_key);
    let device = Session::login(
        Client::new(&env.url),
        keys,
        PinnedFingerprints::new([
            alice.keys().fingerprint(),
            bob.keys().fingerprint(),
            dana.keys().fingerprint(),
        ]),
    )
    .await
    .unwrap();
    let stats = device.stats();
    assert_eq!(stats.key_bag_entries, 3, "{stats:?}");
    assert_eq!(stats.opened_with_rsa, 0, "{stats:?}");
    assert_eq!(stats.unopened_exchange_data, 0, "{stats:?}");

    // It reads everything shared with Charlie, his own reading, the children; edits the note; shares with a known
    // partner: still no RSA operation and no new exchange data.
    assert_eq!(
        device.get_json(&record.entity).await.unwrap().content["name"],
        "Charlie"
    );
    let mut reasons: Vec<String> = device
        .children_json(&record.entity, &contact)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.content["reason"].as_str().unwrap().to_owned())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["ankle", "ankle follow-up"]);
    assert_eq!(
        device.get_json(&reading.entity).await.unwrap().content["glucose"],
        5.4
    );
    let diary = device.get_json(&editable.entity).await.unwrap();
    assert_eq!(diary.permission, Permission::Write);
    device
        .update_json(
            &editable.entity,
            diary.rev,
            object(json!({"text": "diary, day 2"})),
        )
        .await
        .unwrap();
    assert_eq!(
        alice_session
            .get_json(&editable.entity)
            .await
            .unwrap()
            .content["text"],
        "diary, day 2"
    );
    let second_reading = device
        .create_record(
            NewRecord::new(measurement.clone(), object(json!({"glucose": 6.1})))
                .share_with(Share::read(bob.id).with_visibility(Visibility::AnonymousDelegator)),
        )
        .await
        .unwrap();
    let bob_session = env.login(&bob).await;
    assert_eq!(
        bob_session
            .get_json(&second_reading.entity)
            .await
            .unwrap()
            .content["glucose"],
        6.1
    );
    let stats = device.stats();
    assert_eq!(stats.opened_with_rsa, 0, "{stats:?}");
    assert_eq!(stats.created_exchange_data, 0, "{stats:?}");

    // A partner new to Charlie costs exactly one RSA operation, once; the next device gets it from the key bag.
    let dana_session = env.login(&dana).await;
    let letter = dana_session
        .create_record(
            NewRecord::new(note.clone(), object(json!({"text": "from dana"})))
                .share_with(to_charlie(Share::read(charlie.id))),
        )
        .await
        .unwrap();
    assert_eq!(
        device.get_json(&letter.entity).await.unwrap().content["text"],
        "from dana"
    );
    assert_eq!(device.stats().opened_with_rsa, 1);
    let third = env.login(&charlie).await;
    assert_eq!(third.stats().key_bag_entries, 4);
    assert_eq!(third.stats().opened_with_rsa, 0);
    for entity in [
        &record.entity,
        &editable.entity,
        &reading.entity,
        &letter.entity,
    ] {
        third.get_json(entity).await.unwrap();
    }
    assert_eq!(third.stats().opened_with_rsa, 0);
}

#[tokio::test]
async fn p6_stored_data_reveals_no_links() {
    let mut env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let alice_session = env.login(&alice).await;
    let charlie = env.register_below(&alice_session, OwnerKind::Patient).await;
    let dana = env.register_below(&alice_session, OwnerKind::Patient).await;
    let [bob_session, charlie_session, dana_session] = [
        env.login(&bob).await,
        env.login(&charlie).await,
        env.login(&dana).await,
    ];
    let patient_type = entity_type("Patient");
    let contact = entity_type("Contact");
    let lab = entity_type("LabResult");
    let measurement = entity_type("Measurement");
    let types = [
        patient_type.clone(),
        contact.clone(),
        lab.clone(),
        measurement.clone(),
    ];
    let anonymous_to = |id| Share::read(id).with_visibility(Visibility::AnonymousDelegate);

    // Alice keeps two patients' files: Charlie's with frequent visits and a lab result, Dana's with one visit.
    // Both are shared with their patient (never named) and Charlie's also with Bob.
    let mut files = Vec::new();
    let mut entities = Vec::new();
    let mut words = Vec::new();
    for (patient, visits, labs) in [(&charlie, 4, 1), (&dana, 1, 0)] {
        let name = format!("name-{}", patient.id);
        words.push(name.clone());
        let mut record = NewRecord::new(patient_type.clone(), object(json!({"name": name})))
            .share_with(anonymous_to(patient.id));
        if patient.id == charlie.id {
            record = record.share_with(Share::read(bob.id));
        }
        let record = alice_session.create_record(record).await.unwrap().entity;
        entities.push(record.id);
        let mut children = BTreeMap::new();
        for (child_type, count) in [(&contact, visits), (&lab, labs)] {
            for n in 0..count {
                let reason = format!("reason-{n}-{}", patient.id);
                words.push(reason.clone());
                let mut child =
                    NewRecord::new(child_type.clone(), object(json!({"reason": reason})))
                        .child_of(record.clone())
                        .share_with(anonymous_to(patient.id));
                if patient.id == charlie.id {
                    child = child.share_with(Share::read(bob.id));
                }
                let id = alice_session.create_record(child).await.unwrap().entity.id;
                entities.push(id);
                children
                    .entry(child_type.clone())
                    .or_insert_with(Vec::new)
                    .push(id);
            }
        }
        files.push(PatientFile {
            patient: patient.id,
            record: record.id,
            children,
        });
    }
    // Charlie shares readings with Bob and Alice, Dana with Alice, all without being named.
    for (session, doctors) in [
        (&charlie_session, vec![bob.id, alice.id]),
        (&dana_session, vec![alice.id]),
    ] {
        let value = format!("reading-{}", session.owner());
        words.push(value.clone());
        let mut reading = NewRecord::new(measurement.clone(), object(json!({"value": value})));
        for doctor in doctors {
            reading = reading
                .share_with(Share::read(doctor).with_visibility(Visibility::AnonymousDelegator));
        }
        entities.push(session.create_record(reading).await.unwrap().entity.id);
    }
    // Everyone reads what was shared, so every delegate's key bag holds its exchange data.
    for file in &files {
        let record = EntityRef::new(patient_type.clone(), file.record);
        let session = if file.patient == charlie.id {
            assert_eq!(
                bob_session
                    .children_json(&record, &contact)
                    .await
                    .unwrap()
                    .len(),
                4
            );
            &charlie_session
        } else {
            &dana_session
        };
        session.get_json(&record).await.unwrap();
        let visits = session.children_json(&record, &contact).await.unwrap();
        assert_eq!(visits.len(), file.children[&contact].len());
        assert!(visits.iter().all(|v| v.parents == vec![file.record]));
    }
    for id in &entities[entities.len() - 2..] {
        alice_session
            .get_json(&EntityRef::new(measurement.clone(), *id))
            .await
            .unwrap();
    }

    let patients = BTreeSet::from([charlie.id, dana.id]);
    let owners = [&alice, &bob, &charlie, &dana];
    let ledger = Ledger::build(&env.store, &owners, &types);
    assert!(ledger.exchange_per_pair().values().all(|count| *count == 1));
    let report = assert_no_links(&env, &ledger, &entities, &patients, &files);
    assert_eq!(report.entities, entities.len());
    // Alice to Charlie 6, to Dana 2; Charlie's reading 3 (root, Bob, Alice), Dana's 2.
    assert_eq!(report.anonymous_delegations, 13, "{report:?}");
    let (types_per_pair, pairs_per_type) = report.spread();
    assert!(
        types_per_pair >= 3 && pairs_per_type >= 4,
        "the world is too small to show distinct keys: {report:?}"
    );
    // Charlie's frequent visits: four records share a tag that no record or owner of Charlie's carries.
    let visit_tags = &env
        .entity(files[0].children[&contact][0])
        .secret_foreign_keys;
    for id in &files[0].children[&contact] {
        assert_eq!(&env.entity(*id).secret_foreign_keys, visit_tags);
    }
    let owner_record = serde_json::to_string(&env.store.get_owner(charlie.id).unwrap()).unwrap();
    assert!(
        visit_tags
            .iter()
            .all(|tag| !owner_record.contains(&tag.to_string()))
    );
    // The bytes checked are the bytes stored: each record's encoding is in the database file as it stands.
    let database = env.database();
    for id in &entities {
        assert!(
            contains(&database, &env.stored_bytes(*id)),
            "entity {id} is not stored as encoded"
        );
    }

    drop((alice_session, bob_session, charlie_session, dana_session));
    let database = env.stop().await;
    let words: Vec<Vec<u8>> = words.into_iter().map(String::into_bytes).collect();
    assert_eq!(occurrences(&database, &words), BTreeSet::new());
}
