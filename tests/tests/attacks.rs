//! The malicious-server suite (protocol v2, docs/threat-model.md): a real server, and the test playing its operator
//! through the store (rewriting what is stored) or through the operator's wrapper store (answering differently
//! from what is stored). Every `attack_*` test asserts the secure outcome: the victim refuses, and no plaintext or
//! key reaches the attacker.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::sync::Arc;

use common::{Env, Owner, object};
use serde_json::{Value, json};
use tessera::stored::{EncryptedEntity, ExchangeData, KeyBagEntry};
use tessera::{
    CallbackTrust, EncryptionManifest, EntityRef, EntityType, ErrorKind, NewRecord, OwnerId,
    OwnerKind, Permission, Query, Session, Share, Tofu, TrustPolicy,
};
use tessera_keys::{InboxMessage, KeyBag, OwnerKeys};
use tessera_sharing::{
    AccessIndex, DelegationTarget, NewEntity, SecretId, SecretIdScope, Visibility,
};
use tessera_store::Store;

const SECRET: &str = "the forged or withheld content must never be shown";

fn note() -> EntityType {
    EntityType::new("Note").unwrap()
}

/// A server and two HCPs, Alice and Bob, logged in.
struct Cast {
    env: Env,
    alice: Owner,
    bob: Owner,
    a: Session,
    b: Session,
}

async fn cast() -> Cast {
    let env = Env::start().await;
    let alice = env.register(OwnerKind::Hcp).await;
    let bob = env.register(OwnerKind::Hcp).await;
    let a = env.login(&alice).await;
    let b = env.login(&bob).await;
    Cast {
        env,
        alice,
        bob,
        a,
        b,
    }
}

/// A note of `session` with `text`, shared with `shares`.
async fn create(session: &Session, text: &str, shares: &[Share]) -> EntityRef {
    let mut record = NewRecord::new(note(), object(json!({ "text": text })));
    for share in shares {
        record = record.share_with(*share);
    }
    session.create_record(record).await.unwrap().entity
}

/// Rewrites the stored entity `id` as the operator could (no server rule applies).
fn tamper(env: &Env, id: tessera::EntityId, change: impl FnOnce(&mut EncryptedEntity)) {
    let mut entity = env.entity(id);
    let rev = entity.rev;
    change(&mut entity);
    env.store.update_entity(&entity, rev).unwrap();
}

/// The key of the one onward delegation of `entity` to `delegate` (found through the owners' key bags: no
/// delegation names its parties in clear).
fn delegation_to(
    env: &Env,
    entity: &EncryptedEntity,
    delegate: OwnerId,
) -> tessera::stored::DelegationKey {
    let keys = env.delegation_keys_to(entity, delegate);
    assert_eq!(keys.len(), 1, "one delegation to {delegate}");
    keys[0]
}

/// Asserts that `result` failed with `kind`.
fn refused<T: std::fmt::Debug>(result: tessera::Result<T>, kind: ErrorKind) {
    match result {
        Ok(value) => panic!("the attack succeeded: {value:?}"),
        Err(error) => assert_eq!(error.kind(), kind, "{error}"),
    }
}

/// Asserts that `session` refuses to read `entity` with `kind`, and never shows `SECRET`.
async fn refuses(session: &Session, entity: &EntityRef, kind: ErrorKind) {
    let result = session.get_json(entity).await;
    if let Ok(record) = &result {
        assert!(
            !Value::Object(record.content.clone())
                .to_string()
                .contains(SECRET)
        );
    }
    refused(result, kind);
}

/// The exchange secrets in `owner`'s key bag, opened as its device would (the state entry left out).
fn secrets_of(env: &Env, owner: &Owner) -> Vec<tessera_keys::ExchangeSecret> {
    let keys = owner.keys();
    env.store
        .key_bag(owner.id)
        .unwrap()
        .iter()
        .filter_map(|entry| KeyBag::open_entry(&keys, entry).ok())
        .collect()
}

/// A key bundle of `owner`'s id with a key the operator made.
fn impostor(owner: OwnerId) -> (OwnerKeys, tessera::stored::Owner) {
    let keys = OwnerKeys::generate(
        owner,
        tessera::RsaKeySize::Bits2048,
        tessera_keys::unix_now(),
    )
    .unwrap();
    let record = tessera::stored::Owner {
        version: tessera_keys::FormatVersion::V2,
        id: owner,
        kind: OwnerKind::Hcp,
        parent: None,
        bundles: vec![keys.bundle().unwrap()],
    };
    (keys, record)
}

/// The exchange data from `delegator` to `delegate`, as the operator would read it had it the delegate's key: the
/// inbox message the server was given, opened with the delegate's key by the test.
fn exchange_between(env: &Env, delegator: &Owner, delegate: &Owner) -> ExchangeData {
    let keys = delegate.keys();
    env.operator
        .lies()
        .delivered
        .iter()
        .filter(|(recipient, _)| *recipient == delegate.id)
        .filter_map(|(_, message)| message.open(&keys).ok())
        .find(|data| data.delegator() == delegator.id)
        .unwrap()
}

/// The id of the exchange data from `owner` to `partner`, read from `owner`'s key bag.
fn exchange_id(env: &Env, owner: &Owner, partner: OwnerId) -> tessera::stored::ExchangeDataId {
    secrets_of(env, owner)
        .iter()
        .find(|secret| secret.delegator() == owner.id && secret.delegate() == partner)
        .unwrap()
        .id()
}

/// Hides from `owner`'s devices the key-bag entry of its exchange data with `partner`, so that the next share makes
/// new exchange data (the operator's way to force a new wrap).
fn hide_exchange(env: &Env, owner: &Owner, partner: OwnerId) {
    let id = exchange_id(env, owner, partner);
    env.operator
        .lies()
        .hidden_bag
        .insert((owner.id, KeyBag::entry_id(&owner.keys(), &id)));
}

/// Files `message` in `recipient`'s inbox as the operator can: directly in the store.
fn file(env: &Env, recipient: OwnerId, message: &InboxMessage) {
    env.store.put_inbox_message(recipient, message).unwrap();
}

// ---- key bundles and exchange data ----

#[tokio::test]
async fn attack_bundle_substituted_same_process() {
    let c = cast().await;
    // Alice meets Bob as a signer first: Bob writes a record and shares it with her.
    let shared = create(&c.b, "from bob", &[Share::read(c.alice.id)]).await;
    c.a.get_json(&shared).await.unwrap();
    // Now the operator serves its own bundle under Bob's id: Alice's first share with Bob is refused.
    c.env
        .operator
        .lies()
        .owners
        .insert(c.bob.id, impostor(c.bob.id).1);
    let entity = create(&c.a, SECRET, &[]).await;
    refused(
        c.a.share(&entity, &[Share::read(c.bob.id)]).await,
        ErrorKind::Untrusted,
    );
    assert!(
        secrets_of(&c.env, &c.alice)
            .iter()
            .all(|s| !(s.delegator() == c.alice.id && s.delegate() == c.bob.id)),
        "no exchange data from Alice to Bob was made"
    );
    assert!(
        c.env.store.inbox(c.bob.id).unwrap().is_empty(),
        "nothing was sealed for the operator's key"
    );
}

#[tokio::test]
async fn attack_bundle_substituted_new_process() {
    let c = cast().await;
    let first = create(&c.a, "first", &[Share::read(c.bob.id)]).await;
    c.b.get_json(&first).await.unwrap();
    // A new process of Alice with a fresh trust-on-first-use policy, after the operator hid the exchange data
    // and swapped Bob's bundle: the pin saved in Alice's owner state refuses it.
    hide_exchange(&c.env, &c.alice, c.bob.id);
    c.env
        .operator
        .lies()
        .owners
        .insert(c.bob.id, impostor(c.bob.id).1);
    let again = Session::login(c.env.client(), c.alice.keys(), Tofu::new())
        .await
        .unwrap();
    let entity = create(&again, SECRET, &[]).await;
    refused(
        again.share(&entity, &[Share::read(c.bob.id)]).await,
        ErrorKind::Untrusted,
    );
}

#[tokio::test]
async fn attack_bundle_substituted_new_device() {
    let c = cast().await;
    create(&c.a, "first", &[Share::read(c.bob.id)]).await;
    hide_exchange(&c.env, &c.alice, c.bob.id);
    c.env
        .operator
        .lies()
        .owners
        .insert(c.bob.id, impostor(c.bob.id).1);
    // A new device with only the key file and an app whose policy accepts anything: the saved pins still bind it.
    let trust_all = CallbackTrust::new(|_: &tessera::KeyBundle, _| true);
    let device = Session::login(c.env.client(), c.alice.keys(), trust_all)
        .await
        .unwrap();
    refused(
        device
            .create_record(
                NewRecord::new(note(), object(json!({ "text": SECRET })))
                    .share_with(Share::read(c.bob.id)),
            )
            .await,
        ErrorKind::Untrusted,
    );
}

#[tokio::test]
async fn attack_bundles_swapped_between_owners() {
    let c = cast().await;
    let carol = c.env.register(OwnerKind::Hcp).await;
    // The operator answers Bob's record with Carol's.
    let carols = c.env.store.get_owner(carol.id).unwrap().unwrap().value;
    c.env.operator.lies().owners.insert(c.bob.id, carols);
    let entity = create(&c.a, SECRET, &[]).await;
    let result = c.a.share(&entity, &[Share::read(c.bob.id)]).await;
    assert!(
        result.is_err(),
        "a share wrapped for Carol's key under Bob's name"
    );
    assert!(c.env.store.inbox(carol.id).unwrap().is_empty());
    assert!(c.env.operator.lies().delivered.is_empty());
}

#[tokio::test]
async fn attack_forged_exchange_data() {
    let c = cast().await;
    // Exchange data claiming Bob as delegator, made and signed with the operator's key for Bob's id.
    let (forger, _) = impostor(c.bob.id);
    let alice_bundle = c.a_bundle().await;
    let (forged, _) = ExchangeData::create(&forger, c.alice.id, &[&alice_bundle], 1).unwrap();
    // Anybody can seal an inbox message for Alice's public key.
    file(
        &c.env,
        c.alice.id,
        &InboxMessage::seal(&forged, &alice_bundle).unwrap(),
    );
    let before = c.a.stats();
    assert_eq!(c.a.refresh().await.unwrap(), 0);
    let after = c.a.stats();
    assert_eq!(
        after.opened_with_rsa, before.opened_with_rsa,
        "the private key was used"
    );
    assert_eq!(
        after.unopened_exchange_data,
        before.unopened_exchange_data + 1
    );
}

impl Cast {
    /// Alice's bundle as a partner trusts it.
    async fn a_bundle(&self) -> tessera_keys::TrustedBundle {
        Tofu::new()
            .trust(self.alice.keys().bundle().unwrap())
            .unwrap()
    }
}

#[tokio::test]
async fn attack_server_chosen_wrap() {
    let c = cast().await;
    let shared = create(&c.b, SECRET, &[Share::read(c.alice.id)]).await;
    // Alice takes the genuine exchange data from her inbox into her bag.
    c.a.refresh().await.unwrap();
    let data = exchange_between(&c.env, &c.bob, &c.alice);
    // The operator puts a ciphertext of its choice (a wrap of another secret for Alice's key) where Alice's wrap is,
    // seals the result for Alice, and hides the genuine secret from her bag so that her next login opens this one.
    let mut json = serde_json::to_value(&data).unwrap();
    let alice_fp = c.alice.keys().fingerprint().to_string();
    let bob_fp = c.bob.keys().fingerprint().to_string();
    json["wrapped"][&alice_fp] = json["wrapped"][&bob_fp].clone();
    let forged: ExchangeData = serde_json::from_value(json).unwrap();
    file(
        &c.env,
        c.alice.id,
        &InboxMessage::seal(&forged, &c.a_bundle().await).unwrap(),
    );
    c.env
        .operator
        .lies()
        .hidden_bag
        .insert((c.alice.id, KeyBag::entry_id(&c.alice.keys(), &data.id())));
    let fresh = Session::login(c.env.client(), c.alice.keys(), Tofu::new())
        .await
        .unwrap();
    assert_eq!(
        fresh.stats().opened_with_rsa,
        0,
        "the chosen wrap reached RSA"
    );
    refuses(&fresh, &shared, ErrorKind::NotFound).await;
}

#[tokio::test]
async fn attack_exchange_data_replayed_to_another_pair() {
    let c = cast().await;
    let carol = c.env.register(OwnerKind::Hcp).await;
    create(&c.a, SECRET, &[Share::read(c.bob.id)]).await;
    // Bob takes the genuine exchange data from his inbox into his bag.
    assert_eq!(c.b.refresh().await.unwrap(), 1);
    // Alice → Bob's message, kept by the operator, filed in Carol's inbox as if it were hers (a copy naming Carol is
    // impossible: the parties are signed, and the box is sealed for Bob's key), and in Bob's a second time.
    let (_, message) = c
        .env
        .operator
        .lies()
        .delivered
        .iter()
        .find(|(recipient, _)| *recipient == c.bob.id)
        .cloned()
        .unwrap();
    let mut replayed = message.clone();
    replayed.id = tessera_keys::InboxMessageId::generate().unwrap();
    c.env
        .operator
        .lies()
        .extra_inbox
        .insert(carol.id, vec![message.clone()]);
    file(&c.env, c.bob.id, &message);
    file(&c.env, c.bob.id, &replayed);
    let bob_before = c.b.stats();
    assert_eq!(c.b.refresh().await.unwrap(), 0);
    let bob_after = c.b.stats();
    assert_eq!(bob_after.opened_with_rsa, bob_before.opened_with_rsa);
    // The replay under its own id is discarded (it no longer opens under another id); the original one is known.
    assert_eq!(
        bob_after.discarded_inbox_messages,
        bob_before.discarded_inbox_messages + 2
    );
    assert!(c.env.store.inbox(c.bob.id).unwrap().is_empty());
    let carol_session = c.env.login(&carol).await;
    assert_eq!(carol_session.refresh().await.unwrap(), 0);
    let stats = carol_session.stats();
    assert_eq!((stats.opened_with_rsa, stats.exchange_secrets), (0, 0));
}

// ---- delegations ----

/// A delegation the operator injects on `entity` for `victim`, through exchange data of an owner it registered
/// (Mallory), with a key and content of its choice; `permission` as given.
async fn inject(c: &Cast, entity: &EntityRef, permission: Permission) {
    let mallory = c.env.register(OwnerKind::Hcp).await;
    let m = c.env.login(&mallory).await;
    // Mallory shares something with Bob, so that Bob opens Mallory's exchange data.
    let bait = create(&m, "hello", &[Share::read(c.bob.id)]).await;
    c.b.get_json(&bait).await.unwrap();
    let keys = mallory.keys();
    let secrets = secrets_of(&c.env, &mallory);
    let own = secrets.iter().find(|s| s.delegate() == mallory.id).unwrap();
    let to_bob = secrets.iter().find(|s| s.delegate() == c.bob.id).unwrap();
    let manifest = EncryptionManifest::new(["text"]).unwrap();
    let (forged, _) = tessera_sharing::create(
        NewEntity {
            id: entity.id,
            entity_type: note(),
            document: object(json!({ "text": SECRET })),
            manifest: &manifest,
            secret_ids: vec![(SecretId::generate().unwrap(), SecretIdScope::Shared)],
            parents: Vec::new(),
        },
        DelegationTarget {
            exchange: own,
            visibility: Visibility::Anonymous,
            permission: Permission::Write,
        },
        &[DelegationTarget {
            exchange: to_bob,
            visibility: Visibility::Anonymous,
            permission,
        }],
        &keys,
    )
    .unwrap();
    let root = delegation_to_root(&c.env.entity(entity.id));
    tamper(&c.env, entity.id, |stored| {
        // The injected delegation hangs below the genuine root, and the content is the operator's.
        let (key, mut delegation) = forged
            .security_metadata
            .delegations
            .iter()
            .find(|(_, d)| !d.parents.is_empty())
            .map(|(k, d)| (*k, d.clone()))
            .unwrap();
        delegation.parents = [root].into();
        stored.security_metadata.delegations.insert(key, delegation);
        stored.encrypted_self = forged.encrypted_self.clone();
        stored.key_commitment = forged.key_commitment;
        stored.writer_proof = forged.writer_proof.clone();
    });
}

fn delegation_to_root(entity: &EncryptedEntity) -> tessera::stored::DelegationKey {
    tessera_sharing::rules::root(&entity.security_metadata).unwrap()
}

#[tokio::test]
async fn attack_injected_delegation() {
    let c = cast().await;
    let entity = create(&c.a, "genuine", &[Share::read(c.bob.id)]).await;
    c.b.get_json(&entity).await.unwrap();
    inject(&c, &entity, Permission::Read).await;
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
    // Alice's next edit is not sealed under the operator's key: she cannot open the record either.
    refused(
        c.a.update_json(
            &entity,
            c.env.entity(entity.id).rev,
            object(json!({"text": "edit"})),
        )
        .await,
        ErrorKind::Crypto,
    );
}

#[tokio::test]
async fn attack_injected_write_delegation_does_not_outrank() {
    let c = cast().await;
    let entity = create(&c.a, "genuine", &[Share::read(c.bob.id)]).await;
    inject(&c, &entity, Permission::Write).await;
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
    refused(
        c.b.update_json(
            &entity,
            c.env.entity(entity.id).rev,
            object(json!({"text": "x"})),
        )
        .await,
        ErrorKind::Crypto,
    );
}

#[tokio::test]
async fn attack_sealed_key_moved_between_records() {
    let c = cast().await;
    let first = create(&c.a, "first", &[Share::read(c.bob.id)]).await;
    let second = create(&c.a, SECRET, &[Share::read(c.bob.id)]).await;
    let from = c.env.entity(first.id);
    let key = delegation_to(&c.env, &from, c.bob.id);
    tamper(&c.env, second.id, |stored| {
        let sealed = from.security_metadata.delegations[&key].entity_keys.clone();
        stored
            .security_metadata
            .delegations
            .get_mut(&key)
            .unwrap()
            .entity_keys = sealed;
    });
    refuses(&c.b, &second, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_sealed_values_swapped_between_fields() {
    let c = cast().await;
    let entity = create(&c.a, SECRET, &[Share::read(c.bob.id)]).await;
    let key = delegation_to(&c.env, &c.env.entity(entity.id), c.bob.id);
    tamper(&c.env, entity.id, |stored| {
        let d = stored.security_metadata.delegations.get_mut(&key).unwrap();
        std::mem::swap(&mut d.entity_keys, &mut d.secret_ids);
    });
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_content_moved_between_types() {
    let c = cast().await;
    let lab =
        c.a.create_json(
            &EntityType::new("Lab").unwrap(),
            object(json!({"text": SECRET})),
        )
        .await
        .unwrap()
        .entity;
    let entity = create(&c.a, "note", &[]).await;
    let moved = c.env.entity(lab.id);
    tamper(&c.env, entity.id, |stored| {
        stored.encrypted_self = moved.encrypted_self.clone();
    });
    refuses(&c.a, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_sealed_keys_swapped_between_delegations() {
    let c = cast().await;
    let carol = c.env.register(OwnerKind::Hcp).await;
    let entity = create(
        &c.a,
        SECRET,
        &[Share::read(c.bob.id), Share::write(carol.id)],
    )
    .await;
    let stored = c.env.entity(entity.id);
    let (to_bob, to_carol) = (
        delegation_to(&c.env, &stored, c.bob.id),
        delegation_to(&c.env, &stored, carol.id),
    );
    tamper(&c.env, entity.id, |stored| {
        let delegations = &mut stored.security_metadata.delegations;
        let bobs = delegations[&to_bob].entity_keys.clone();
        let carols = delegations[&to_carol].entity_keys.clone();
        delegations.get_mut(&to_bob).unwrap().entity_keys = carols;
        delegations.get_mut(&to_carol).unwrap().entity_keys = bobs;
    });
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
    refuses(&c.env.login(&carol).await, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_widened_permission() {
    let c = cast().await;
    let entity = create(&c.a, SECRET, &[Share::read(c.bob.id)]).await;
    let key = delegation_to(&c.env, &c.env.entity(entity.id), c.bob.id);
    tamper(&c.env, entity.id, |stored| {
        stored
            .security_metadata
            .delegations
            .get_mut(&key)
            .unwrap()
            .permission = Permission::Write;
    });
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
    let rev = c.env.entity(entity.id).rev;
    refused(
        c.b.update_json(&entity, rev, object(json!({"text": "bob was here"})))
            .await,
        ErrorKind::Crypto,
    );
    assert_eq!(c.env.entity(entity.id).rev, rev, "nothing was written");
}

#[tokio::test]
async fn attack_read_delegate_forges_content() {
    let c = cast().await;
    let carol = c.env.register(OwnerKind::Hcp).await;
    let entity = create(
        &c.a,
        "genuine",
        &[Share::read(c.bob.id), Share::read(carol.id)],
    )
    .await;
    c.b.get_json(&entity).await.unwrap();
    // Bob (read only) opens the record with the sharing layer directly: he holds no signed write chain, so the
    // library will not sign a version for him...
    let stored = c.env.entity(entity.id);
    let bundles = [c.alice.keys(), c.bob.keys()]
        .iter()
        .map(|k| Tofu::new().trust(k.bundle().unwrap()).unwrap())
        .collect::<Vec<_>>();
    let access = AccessIndex::new(c.bob.id, secrets_of(&c.env, &c.bob)).with_signers(bundles);
    let opened = tessera_sharing::open_keys(&stored, &access).unwrap();
    let manifest = EncryptionManifest::new(["text"]).unwrap();
    assert!(
        tessera_sharing::update(
            &stored,
            &opened,
            object(json!({"text": SECRET})),
            &manifest,
            &c.bob.keys()
        )
        .is_err()
    );
    // ...and a version the operator stores with content of another record and a writer proof it kept does not
    // pass with any reader.
    let other = create(
        &c.a,
        SECRET,
        &[Share::read(c.bob.id), Share::read(carol.id)],
    )
    .await;
    let forged = c.env.entity(other.id);
    tamper(&c.env, entity.id, |stored| {
        stored.encrypted_self = forged.encrypted_self.clone();
        stored.content_version += 1;
    });
    refuses(&c.a, &entity, ErrorKind::Crypto).await;
    refuses(&c.env.login(&carol).await, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_revoked_access_restored() {
    let c = cast().await;
    let carol = c.env.register(OwnerKind::Hcp).await;
    let entity = create(
        &c.a,
        "before",
        &[Share::read(c.bob.id), Share::read(carol.id)],
    )
    .await;
    let before = c.env.entity(entity.id);
    let bobs = delegation_to(&c.env, &before, c.bob.id);
    c.a.revoke_and_rotate(&entity, &[c.bob.id]).await.unwrap();
    // The operator puts Bob's revoked delegation back.
    tamper(&c.env, entity.id, |stored| {
        stored
            .security_metadata
            .delegations
            .insert(bobs, before.security_metadata.delegations[&bobs].clone());
    });
    // Bob's old delegation opens nothing of the new key epoch, and Alice's next rotation does not re-wrap it:
    // she refuses the record as it is (fail closed) instead of rotating through it.
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
    refused(
        c.a.revoke_and_rotate(&entity, &[carol.id]).await,
        ErrorKind::Crypto,
    );
    let after = c.env.entity(entity.id);
    assert_eq!(
        after.key_epoch, 1,
        "no rotation went through the re-inserted delegation"
    );
}

#[tokio::test]
async fn attack_record_substituted() {
    let c = cast().await;
    let asked = create(&c.a, "asked", &[]).await;
    let other = create(&c.a, SECRET, &[]).await;
    let mut substitute = c.env.entity(other.id);
    c.env
        .operator
        .lies()
        .entities
        .insert(asked.id, substitute.clone());
    refuses(&c.a, &asked, ErrorKind::Crypto).await;
    // The same record relabelled with the asked id.
    substitute.id = asked.id;
    c.env.operator.lies().entities.insert(asked.id, substitute);
    refuses(&c.a, &asked, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_query_with_one_forged_record() {
    let c = cast().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(create(&c.a, &format!("note {i}"), &[]).await);
    }
    tamper(&c.env, ids[1].id, |stored| {
        stored.content_version += 1;
    });
    let report = c.a.query_report(&note(), Query::Created).await.unwrap();
    assert_eq!(report.records.len(), 2);
    assert_eq!(report.unreadable.len(), 1);
    assert_eq!(report.unreadable[0].0, ids[1]);
    assert_eq!(report.unreadable[0].1.kind(), ErrorKind::Crypto);
    assert_eq!(
        c.a.query_json(&note(), Query::Created).await.unwrap().len(),
        2
    );
}

// ---- what a version says ----

async fn public_note(c: &Cast) -> EntityRef {
    c.a.set_manifest(note(), EncryptionManifest::new(["text"]).unwrap());
    c.a.create_json(&note(), object(json!({"text": SECRET, "status": "final"})))
        .await
        .unwrap()
        .entity
}

#[tokio::test]
async fn attack_public_field_altered() {
    let c = cast().await;
    let entity = public_note(&c).await;
    tamper(&c.env, entity.id, |stored| {
        stored.public.insert("status".into(), json!("draft"));
    });
    refuses(&c.a, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_search_tags_altered() {
    let c = cast().await;
    let parent = create(&c.a, "patient", &[]).await;
    let child =
        c.a.create_record(
            NewRecord::new(note(), object(json!({"text": SECRET}))).child_of(parent.clone()),
        )
        .await
        .unwrap()
        .entity;
    tamper(&c.env, child.id, |stored| {
        stored.secret_foreign_keys.clear()
    });
    refuses(&c.a, &child, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_attachment_reference_altered() {
    let c = cast().await;
    let entity = create(&c.a, SECRET, &[]).await;
    let rev = c.env.entity(entity.id).rev;
    c.a.add_attachment(&entity, rev, b"scan").await.unwrap();
    tamper(&c.env, entity.id, |stored| {
        stored.attachments[0].encrypted_len += 1;
    });
    refuses(&c.a, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_writer_proof_stripped() {
    let c = cast().await;
    let entity = create(&c.a, SECRET, &[Share::read(c.bob.id)]).await;
    tamper(&c.env, entity.id, |stored| stored.writer_proof.0.clear());
    refuses(&c.b, &entity, ErrorKind::Crypto).await;
}

#[tokio::test]
async fn attack_record_by_a_server_made_owner() {
    let c = cast().await;
    // An owner the operator registered writes a look-alike record for Bob.
    let mallory = c.env.register(OwnerKind::Hcp).await;
    let m = c.env.login(&mallory).await;
    let look_alike = create(&m, "prescription from Alice", &[Share::read(c.bob.id)]).await;
    let record = c.b.get_json(&look_alike).await.unwrap();
    assert_eq!(record.writer, mallory.id, "the app is told who wrote it");
    assert_eq!(record.creator, mallory.id);
    assert_ne!(record.writer, c.alice.id);
    // An app that trusts only Alice's pinned fingerprint refuses it outright.
    let pinned = tessera::PinnedFingerprints::new([
        c.alice.keys().fingerprint(),
        c.bob.keys().fingerprint(),
    ]);
    let careful = Session::login(c.env.client(), c.bob.keys(), pinned)
        .await
        .unwrap();
    assert!(careful.get_json(&look_alike).await.is_err());
}

// ---- rollback ----

#[tokio::test]
async fn attack_rollback_of_a_record() {
    let c = cast().await;
    let entity = create(&c.a, "v1", &[Share::read(c.bob.id)]).await;
    let old = c.env.entity(entity.id);
    let rev = old.rev;
    c.a.update_json(&entity, rev, object(json!({"text": "v2"})))
        .await
        .unwrap();
    c.b.get_json(&entity).await.unwrap();
    let mut replay = old;
    replay.rev = c.env.entity(entity.id).rev;
    c.env.operator.lies().entities.insert(entity.id, replay);
    refuses(&c.a, &entity, ErrorKind::Rollback).await;
    refuses(&c.b, &entity, ErrorKind::Rollback).await;
}

#[tokio::test]
async fn attack_rollback_of_a_rotation() {
    let c = cast().await;
    let entity = create(&c.a, "before", &[Share::read(c.bob.id)]).await;
    let before = c.env.entity(entity.id);
    c.a.revoke_and_rotate(&entity, &[c.bob.id]).await.unwrap();
    // The operator serves the version from before the rotation, whose key Bob still holds.
    let mut replay = before;
    replay.rev = c.env.entity(entity.id).rev;
    c.env
        .operator
        .lies()
        .entities
        .insert(entity.id, replay.clone());
    refused(
        c.a.update_json(&entity, replay.rev, object(json!({"text": SECRET})))
            .await,
        ErrorKind::Rollback,
    );
    c.env.operator.lies().entities.clear();
    let stored = c.env.entity(entity.id);
    assert_eq!(stored.key_epoch, 1, "nothing was sealed under the old key");
}

#[tokio::test]
async fn attack_rollback_seen_by_another_device() {
    let c = cast().await;
    let entity = create(&c.a, "v1", &[]).await;
    let old = c.env.entity(entity.id);
    c.a.update_json(&entity, old.rev, object(json!({"text": "v2"})))
        .await
        .unwrap();
    let mut replay = old;
    replay.rev = c.env.entity(entity.id).rev;
    c.env.operator.lies().entities.insert(entity.id, replay);
    // Another device of Alice, which never read the record: the owner state it loads knows version 2.
    let device = Session::login(c.env.client(), c.alice.keys(), Tofu::new())
        .await
        .unwrap();
    refuses(&device, &entity, ErrorKind::Rollback).await;
}

// ---- attachments ----

const SEGMENT: usize = 64 * 1024;

/// An attachment of three segments and more, with its encrypted stream as stored.
async fn attached(c: &Cast) -> (EntityRef, tessera::AttachmentId, Vec<u8>) {
    let entity = create(&c.a, "with scan", &[]).await;
    let rev = c.env.entity(entity.id).rev;
    let content: Vec<u8> = (0..3 * SEGMENT + 100).map(|i| (i % 251) as u8).collect();
    let (aid, _) = c.a.add_attachment(&entity, rev, &content).await.unwrap();
    let len = c.env.store.attachment_len(entity.id, aid).unwrap().unwrap();
    let stream = c
        .env
        .store
        .read_attachment(entity.id, aid, 0..len)
        .unwrap()
        .unwrap();
    (entity, aid, stream)
}

async fn download_fails(c: &Cast, entity: &EntityRef, aid: tessera::AttachmentId, bytes: Vec<u8>) {
    c.env
        .operator
        .lies()
        .attachments
        .insert((entity.id, aid), bytes);
    assert!(c.a.attachment(entity, aid).await.is_err());
}

/// The byte ranges of the stream's header and segments.
fn cut(stream: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = tessera_primitives::stream::HEADER_LEN;
    let segment = tessera_primitives::stream::ENCRYPTED_SEGMENT_LEN;
    (
        stream[..header].to_vec(),
        stream[header..]
            .chunks(segment)
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

#[tokio::test]
async fn attack_attachment_truncated() {
    let c = cast().await;
    let (entity, aid, stream) = attached(&c).await;
    let (header, segments) = cut(&stream);
    let truncated = [header, segments[..segments.len() - 1].concat()].concat();
    download_fails(&c, &entity, aid, truncated).await;
}

#[tokio::test]
async fn attack_attachment_reordered() {
    let c = cast().await;
    let (entity, aid, stream) = attached(&c).await;
    let (header, mut segments) = cut(&stream);
    segments.swap(0, 1);
    download_fails(&c, &entity, aid, [header, segments.concat()].concat()).await;
}

#[tokio::test]
async fn attack_attachment_extended() {
    let c = cast().await;
    let (entity, aid, stream) = attached(&c).await;
    let (header, mut segments) = cut(&stream);
    let extra = segments[0].clone();
    segments.push(extra);
    download_fails(&c, &entity, aid, [header, segments.concat()].concat()).await;
}

#[tokio::test]
async fn attack_attachments_swapped() {
    let c = cast().await;
    let (entity, aid, _) = attached(&c).await;
    let (_, _, other) = attached(&c).await;
    download_fails(&c, &entity, aid, other).await;
}

// ---- key bag and owner state ----

/// Alice's key-bag entries as stored, and the id of her state entry.
fn bag(c: &Cast) -> (Vec<KeyBagEntry>, tessera_keys::KeyBagEntryId) {
    let state = KeyBag::entry_id(
        &c.alice.keys(),
        &tessera::stored::ExchangeDataId::from_bytes([0; 16]),
    );
    (c.env.store.key_bag(c.alice.id).unwrap(), state)
}

async fn login_anchored(c: &Cast, anchor: u64) -> tessera::Result<Session> {
    Session::login_anchored(
        c.env.client(),
        c.alice.keys(),
        Arc::new(Tofu::new()),
        anchor,
    )
    .await
}

#[tokio::test]
async fn attack_key_bag_entries_swapped() {
    let c = cast().await;
    create(&c.a, "x", &[Share::read(c.bob.id)]).await;
    let (entries, state) = bag(&c);
    let secrets: Vec<&KeyBagEntry> = entries.iter().filter(|e| e.id != state).collect();
    assert!(secrets.len() >= 2);
    let mut swapped = secrets[0].clone();
    swapped.sealed = secrets[1].sealed.clone();
    c.env
        .store
        .swap_key_bag_entry(&swapped, Some(secrets[0]))
        .unwrap();
    refused(login_anchored(&c, 0).await, ErrorKind::Crypto);
}

#[tokio::test]
async fn attack_owner_state_replaced() {
    let c = cast().await;
    create(&c.a, "x", &[Share::read(c.bob.id)]).await;
    let (entries, state) = bag(&c);
    let stored_state = entries.iter().find(|e| e.id == state).unwrap().clone();
    let secret = entries.iter().find(|e| e.id != state).unwrap();
    let mut replaced = stored_state.clone();
    replaced.sealed = secret.sealed.clone();
    c.env
        .store
        .swap_key_bag_entry(&replaced, Some(&stored_state))
        .unwrap();
    refused(login_anchored(&c, 0).await, ErrorKind::Crypto);
}

#[tokio::test]
async fn attack_owner_state_deleted() {
    let c = cast().await;
    create(&c.a, "x", &[Share::read(c.bob.id)]).await;
    let anchor = c.a.state_anchor();
    assert!(anchor > 0);
    let (_, state) = bag(&c);
    c.env.operator.lies().hidden_bag.insert((c.alice.id, state));
    refused(login_anchored(&c, anchor).await, ErrorKind::Rollback);
}

#[tokio::test]
async fn attack_owner_state_rolled_back() {
    let c = cast().await;
    let entity = create(&c.a, "v1", &[Share::read(c.bob.id)]).await;
    let (entries, state) = bag(&c);
    let old_state = entries.iter().find(|e| e.id == state).unwrap().clone();
    let rev = c.env.entity(entity.id).rev;
    c.a.update_json(&entity, rev, object(json!({"text": "v2"})))
        .await
        .unwrap();
    let anchor = c.a.state_anchor();
    let (entries, _) = bag(&c);
    let current = entries.iter().find(|e| e.id == state).unwrap().clone();
    assert_ne!(current, old_state);
    c.env
        .store
        .swap_key_bag_entry(&old_state, Some(&current))
        .unwrap();
    refused(login_anchored(&c, anchor).await, ErrorKind::Rollback);
}

// ---- the server's own checks ----

#[tokio::test]
async fn attack_root_claimed_by_label() {
    let c = cast().await;
    let alices = create(&c.a, "alice's", &[]).await;
    let alice_root = delegation_to_root(&c.env.entity(alices.id));
    // Mallory builds a record whose root is Alice's delegation key, labelled with her own id on both sides: in
    // v1 the label alone let her create it. Now only the root's access-control key proves it.
    let mallory = c.env.register(OwnerKind::Hcp).await;
    let m = c.env.login(&mallory).await;
    let hers = create(&m, SECRET, &[]).await;
    let mut forged = c.env.entity(hers.id);
    forged.id = tessera::EntityId::generate().unwrap();
    let root = delegation_to_root(&forged);
    let mut delegation = forged.security_metadata.delegations.remove(&root).unwrap();
    delegation.delegator = Some(mallory.id);
    delegation.delegate = Some(mallory.id);
    forged
        .security_metadata
        .delegations
        .insert(alice_root, delegation);
    let mut client = tessera_client::Client::new(c.env.url.clone());
    client.login(&mallory.keys()).await.unwrap();
    let refused = client.create_entities(&[forged]).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused}");
    // And a clear label naming Mallory on Alice's record lets her see nothing.
    tamper(&c.env, alices.id, |stored| {
        for delegation in stored.security_metadata.delegations.values_mut() {
            delegation.delegate = Some(mallory.id);
        }
    });
    refused_not_found(client.entity(alices.id).await);
}

fn refused_not_found<T: std::fmt::Debug>(result: tessera_client::Result<T>) {
    let error = result.unwrap_err();
    assert_eq!(error.status(), Some(404), "{error}");
}
