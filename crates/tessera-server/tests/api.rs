//! The API end to end with a real server on `127.0.0.1:0` and the real client: registration, login, entities, sharing, queries, attachments, inboxes, key bags, side maps, recovery, owners, and 404 (never 403) for what a requester may not see.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use bytes::Bytes;
use common::{
    ADMIN, Spec, T0, TestServer, Who, bearer, create_as, get_with_token, note, raw, revised,
    shared, status, status_code, ty, world,
};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tessera_keys::{
    FormatVersion, InboxMessage, InboxMessageId, KeyBag, Owner, OwnerId, OwnerKeys, OwnerKind,
    Tofu, TrustPolicy,
};
use tessera_primitives::RsaKeySize;
use tessera_primitives::stream::{HEADER_LEN, SEGMENT_LEN};
use tessera_sharing::attachment::{attachment_opener, open_attachment, seal_attachment};
use tessera_sharing::{
    AttachmentId, EntityId, ParentLink, Permission, SecretId, SecretIdScope, ShareRequest,
    SideMapEntry, Visibility, decrypt, revoke_and_rotate,
};
use tessera_wire::{ChallengeRequest, Format, LoginRequest, RecoveryBody, Revocation, Session};

use Permission::{Read, Write};
use Visibility::Explicit;
use Who::{A, B, C, P};

/// Content that differs from one segment to the next.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + i / SEGMENT_LEN) % 251).unwrap())
        .collect()
}

/// Seconds since the Unix epoch.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_register_with_the_admin_token_or_below_their_parent() {
    let w = world();
    let server = TestServer::memory().await;
    let anonymous = server.client();

    // A wrong administrator token is refused and registers nothing: A cannot log in.
    let refused = anonymous
        .register_owner_as_admin("not-the-admin-token", &w.owner_record(A))
        .await;
    assert_eq!(status(refused), 401);
    let mut probe = server.client();
    assert_eq!(status(probe.login(w.keys(A)).await), 401);
    // Without any token, registration needs a session.
    assert_eq!(
        status(anonymous.register_owner(&w.owner_record(A)).await),
        401
    );

    for who in [A, B, C] {
        let written = anonymous
            .register_owner_as_admin(ADMIN, &w.owner_record(who))
            .await
            .unwrap();
        assert_eq!(written.rev, 1);
    }
    // Registering the same owner again conflicts.
    let again = anonymous
        .register_owner_as_admin(ADMIN, &w.owner_record(A))
        .await;
    assert_eq!(status(again), 409);

    // An HCP registers a patient below itself.
    let a = server.login(A).await;
    assert_eq!(a.register_owner(&w.owner_record(P)).await.unwrap().rev, 1);
    let stored = a.owner(P.id()).await.unwrap();
    assert_eq!(stored.rev, 1);
    // The right to register was checked against the session; the parent is not kept (protocol v2 privacy).
    assert_eq!(
        stored.value,
        Owner {
            parent: None,
            ..w.owner_record(P)
        }
    );
    let _ = server.login(P).await;

    // B cannot register a patient below A, nor a top-level owner.
    let b = server.login(B).await;
    let stranger =
        OwnerKeys::generate(OwnerId::generate().unwrap(), RsaKeySize::Bits2048, T0).unwrap();
    let record = |parent| Owner {
        version: FormatVersion::V2,
        id: stranger.owner(),
        kind: OwnerKind::Patient,
        parent,
        bundles: vec![stranger.bundle().unwrap()],
    };
    assert_eq!(status(b.register_owner(&record(Some(A.id()))).await), 403);
    assert_eq!(status(b.register_owner(&record(None)).await), 403);
    assert_eq!(status(a.owner(stranger.owner()).await), 404);

    // A record whose bundle belongs to another owner is refused.
    let mut forged = record(Some(A.id()));
    forged.bundles = vec![w.keys(C).bundle().unwrap()];
    assert_eq!(status(a.register_owner(&forged).await), 400);
    assert_eq!(status(a.owner(stranger.owner()).await), 404);

    // The right parent registers it.
    assert_eq!(
        a.register_owner(&record(Some(A.id()))).await.unwrap().rev,
        1
    );
    let mut stranger_client = server.client();
    stranger_client.login(&stranger).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_a_single_use_challenge_signed_by_a_stored_bundle() {
    let w = world();
    let server = TestServer::memory().await;
    server.register_world().await;
    let json = Format::Json;
    let challenge = |owner: OwnerId| {
        let base = server.base.clone();
        async move {
            let body = json.encode(&ChallengeRequest { owner }).unwrap();
            let answer = raw(
                &base,
                Method::POST,
                "/v1/auth/challenge",
                &[("content-type", "application/json".into())],
                body,
            )
            .await
            .unwrap();
            assert_eq!(answer.status, 200, "{}", answer.text());
            let challenge: tessera_wire::Challenge = json.decode(&answer.body, 1 << 20).unwrap();
            challenge.challenge
        }
    };
    let login = |request: LoginRequest| {
        let base = server.base.clone();
        async move {
            raw(
                &base,
                Method::POST,
                "/v1/auth/login",
                &[("content-type", "application/json".into())],
                json.encode(&request).unwrap(),
            )
            .await
            .unwrap()
        }
    };
    let name = tessera_wire::server_name(&server.base).unwrap();
    let signed = |who: Who, by: &OwnerKeys, challenge: [u8; 32]| LoginRequest {
        owner: who.id(),
        challenge,
        fingerprint: by.fingerprint(),
        server: name.clone(),
        signature: by.sign_login_challenge(&name, &challenge).unwrap(),
    };

    // A good answer opens a session; the same challenge cannot be used twice.
    let first = challenge(A.id()).await;
    let answer = login(signed(A, w.keys(A), first)).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let session: Session = json.decode(&answer.body, 1 << 20).unwrap();
    assert!(session.expires > now());
    assert_eq!(login(signed(A, w.keys(A), first)).await.status, 401);

    // Signed by another owner's key, or a challenge issued to someone else: refused.
    let second = challenge(A.id()).await;
    let mut by_c = signed(A, w.keys(C), second);
    by_c.fingerprint = w.keys(A).fingerprint();
    assert_eq!(login(by_c).await.status, 401);
    let for_c = challenge(C.id()).await;
    assert_eq!(login(signed(A, w.keys(A), for_c)).await.status, 401);
    // A challenge nobody issued.
    assert_eq!(login(signed(A, w.keys(A), [9; 32])).await.status, 401);

    // The token works as a bearer token.
    let entity = EntityId::generate().unwrap();
    let answer = get_with_token(
        &server.base,
        &format!("/v1/entities/{entity}"),
        session.token.expose_secret(),
    )
    .await;
    assert_eq!(answer.status, 404, "{}", answer.text());

    // An unregistered owner cannot log in (its challenge is issued all the same).
    let stranger =
        OwnerKeys::generate(OwnerId::generate().unwrap(), RsaKeySize::Bits2048, T0).unwrap();
    let mut client = server.client();
    assert_eq!(status(client.login(&stranger).await), 401);
    server.shutdown().await;
}

/// Create, read, update (right and stale revision), share, query, revoke and delete, in one format.
async fn entity_scenario(format: Format) {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login_in(A, format).await;
    a.register_access_keys(&w.access_keys(A, &note_type))
        .await
        .unwrap();
    // Protocol v2: the server grants visibility only on presented access-control keys, never on the clear
    // delegate label of a delegation, so B proves its keys to see what A shares with it.
    let b = server.login_in(B, format).await;
    b.register_access_keys(&w.access_keys(B, &note_type))
        .await
        .unwrap();

    let (entity, _) = create_as(
        A,
        Spec {
            document: common::document("visit", "MARKER-diagnosis", "MARKER-note"),
            ..Spec::note()
        },
    );
    let id = entity.id;
    assert_eq!(a.create_entity(&entity).await.unwrap(), 1);
    // Creating the same id again conflicts.
    assert_eq!(status(a.create_entity(&entity).await), 409);

    let stored = a.entity(id).await.unwrap();
    assert_eq!(stored.rev, 1);
    assert_eq!(
        stored,
        tessera_sharing::EncryptedEntity {
            rev: 1,
            ..entity.clone()
        }
    );
    let opened = decrypt(&stored, &w.access(A)).unwrap();
    assert_eq!(opened.document["diagnosis"], "MARKER-diagnosis");

    // Update with the right revision, then with a stale one.
    let update = revised(A, &stored, &opened, |e| {
        e.public.insert("status".into(), json!("reviewed"));
    });
    assert_eq!(a.update_entity(&update, 1).await.unwrap(), 2);
    let stale = revised(A, &stored, &opened, |e| {
        e.public.insert("status".into(), json!("lost update"));
    });
    assert_eq!(status(a.update_entity(&stale, 1).await), 409);
    let after = a.entity(id).await.unwrap();
    assert_eq!(after.rev, 2);
    assert_eq!(after.public["status"], "reviewed");

    // B sees nothing until A shares.
    assert_eq!(status(b.entity(id).await), 404);
    let entries = shared(A, &after, &opened, &[w.target(A, B, Explicit, Read)]);
    let written = a.share(&ShareRequest::new(entries)).await.unwrap();
    assert_eq!(written.written, vec![(id, 3)]);
    let seen_by_b = b.entity(id).await.unwrap();
    assert_eq!(seen_by_b.rev, 3);
    let read = decrypt(&seen_by_b, &w.access(B)).unwrap();
    assert_eq!(read.document["note"], "MARKER-note");
    assert_eq!(read.document["status"], "reviewed");
    assert_eq!(read.permission, Read);
    // Read access does not allow writing. B cannot sign a version (it has no write chain), so this update is
    // built by hand; it is well-formed for the server (content version one up), whose only objection is the
    // permission.
    let mut by_b = seen_by_b.clone();
    by_b.public.insert("status".into(), json!("changed by B"));
    by_b.content_version += 1;
    assert_eq!(status(b.update_entity(&by_b, 3).await), 403);

    // A finds it by its root delegation key; B by its own delegation key, which it proved.
    let found = a
        .query_by_delegation_key(&w.dk(A, A, &note_type))
        .await
        .unwrap();
    assert_eq!(found.iter().map(|e| e.id).collect::<Vec<_>>(), vec![id]);
    let found = b
        .query_by_delegation_key(&w.dk(A, B, &note_type))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);

    // Revocation: B no longer sees it.
    let revoked = a
        .revoke(&[Revocation {
            entity_id: id,
            delegation_key: w.dk(A, B, &note_type),
        }])
        .await
        .unwrap();
    assert_eq!(revoked.written, vec![(id, 4)]);
    assert_eq!(status(b.entity(id).await), 404);
    assert!(
        b.query_by_delegation_key(&w.dk(A, B, &note_type))
            .await
            .unwrap()
            .is_empty()
    );

    // Delete: a stale revision conflicts, the right one deletes.
    assert_eq!(status(a.delete_entity(id, 3).await), 409);
    assert_eq!(a.entity(id).await.unwrap().rev, 4);
    a.delete_entity(id, 4).await.unwrap();
    assert_eq!(status(a.entity(id).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_lifecycle_in_bincode() {
    entity_scenario(Format::Bincode).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_lifecycle_in_json() {
    entity_scenario(Format::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_presented_in_headers_work_like_registered_ones() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    // A patient sees what A shares with it anonymously only by proving the key.
    let (entity, opened) = note(A);
    let a = server.login_with_keys(A, &note_type).await;
    a.create_entity(&entity).await.unwrap();
    let entries = shared(
        A,
        &a.entity(entity.id).await.unwrap(),
        &opened,
        &[w.target(A, P, Visibility::AnonymousDelegate, Read)],
    );
    a.share(&ShareRequest::new(entries)).await.unwrap();

    let mut p = server.login(P).await;
    assert_eq!(status(p.entity(entity.id).await), 404);
    p.present_access_keys(&w.access_keys(P, &note_type));
    let seen = p.entity(entity.id).await.unwrap();
    assert_eq!(
        decrypt(&seen, &w.access(P)).unwrap().document["diagnosis"],
        "flu"
    );
    // Keys of another type do not match.
    p.present_access_keys(&w.access_keys(P, &ty("Contact")));
    assert_eq!(status(p.entity(entity.id).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_children_of_a_patient_are_found_by_search_tag() {
    let w = world();
    let patient_type = ty("Patient");
    let contact_type = ty("Contact");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login_with_keys(A, &patient_type).await;
    // The creator proves the root of every entity it creates (protocol v2: a clear label naming it proves
    // nothing), the contacts' too.
    a.register_access_keys(&w.access_keys(A, &contact_type))
        .await
        .unwrap();

    let secret_id = SecretId::generate().unwrap();
    let (patient, patient_opened) = create_as(
        A,
        Spec {
            entity_type: patient_type.clone(),
            secret_ids: vec![(secret_id.clone(), SecretIdScope::Shared)],
            ..Spec::note()
        },
    );
    a.create_entity(&patient).await.unwrap();
    let child = || {
        create_as(
            A,
            Spec {
                entity_type: contact_type.clone(),
                parents: vec![ParentLink {
                    parent: patient.id,
                    secret_id: secret_id.clone(),
                }],
                ..Spec::note()
            },
        )
    };
    let (first, first_opened) = child();
    let (second, _) = child();
    let (unrelated, _) = create_as(
        A,
        Spec {
            entity_type: contact_type.clone(),
            ..Spec::note()
        },
    );
    let written = a
        .create_entities(&[first.clone(), second.clone(), unrelated.clone()])
        .await
        .unwrap();
    assert_eq!(written.written.len(), 3);

    let tag = secret_id.search_tag(&contact_type);
    let mut found: Vec<EntityId> = a
        .query_by_tag(&tag)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    found.sort();
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(found, expected);

    // B sees neither the patient nor its children until A shares them; then B finds the tag itself. B proves
    // its keys (protocol v2: the server grants nothing on the clear delegate label).
    let b = server.login_with_keys(B, &patient_type).await;
    b.register_access_keys(&w.access_keys(B, &contact_type))
        .await
        .unwrap();
    assert!(b.query_by_tag(&tag).await.unwrap().is_empty());
    let a_contacts = server.login_with_keys(A, &contact_type).await;
    let patient_share = shared(
        A,
        &a.entity(patient.id).await.unwrap(),
        &patient_opened,
        &[w.target(A, B, Explicit, Read)],
    );
    let child_share = shared(
        A,
        &a.entity(first.id).await.unwrap(),
        &first_opened,
        &[w.target(A, B, Explicit, Read)],
    );
    a.share(&ShareRequest::new(patient_share)).await.unwrap();
    a_contacts
        .share(&ShareRequest::new(child_share))
        .await
        .unwrap();
    let patient_for_b = decrypt(&b.entity(patient.id).await.unwrap(), &w.access(B)).unwrap();
    let (secret_for_b, _) = &patient_for_b.secret_ids[0];
    let found_by_b = b
        .query_by_tag(&secret_for_b.search_tag(&contact_type))
        .await
        .unwrap();
    assert_eq!(
        found_by_b.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![first.id]
    );
    let child_for_b = decrypt(&found_by_b[0], &w.access(B)).unwrap();
    assert_eq!(child_for_b.owning_entity_ids, vec![patient.id]);

    // Malformed queries are refused.
    let answer = raw(
        &server.base,
        Method::GET,
        "/v1/entities?tag=zz",
        &[],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 401);
    let mut with_session = server.client();
    let session = with_session.login(w.keys(A)).await.unwrap();
    for query in ["?tag=zz", "?delegation_key=00", "", "?other=1"] {
        let answer = get_with_token(
            &server.base,
            &format!("/v1/entities{query}"),
            session.token.expose_secret(),
        )
        .await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_by_delegation_key_needs_the_key() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    // Protocol v2: creating needs the root's key (a clear label naming the creator proves nothing), so another
    // session of A creates, and this one starts without keys.
    let creator = server.login_with_keys(A, &note_type).await;
    let entities: Vec<_> = (0..3).map(|_| note(A).0).collect();
    creator.create_entities(&entities).await.unwrap();
    let a = server.login(A).await;
    let root = w.dk(A, A, &note_type);

    // Without proving the key, nothing; with it, all three.
    assert!(a.query_by_delegation_key(&root).await.unwrap().is_empty());
    a.register_access_keys(&w.access_keys(A, &note_type))
        .await
        .unwrap();
    assert_eq!(a.query_by_delegation_key(&root).await.unwrap().len(), 3);
    // The delegation key is public, but knowing it proves nothing.
    let b = server.login_with_keys(B, &note_type).await;
    assert!(b.query_by_delegation_key(&root).await.unwrap().is_empty());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_are_uploaded_whole_and_read_by_segment() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login_with_keys(A, &note_type).await;
    // B proves its keys (protocol v2: the server grants nothing on the clear delegate label).
    let b = server.login_with_keys(B, &note_type).await;
    let (entity, opened) = note(A);
    let id = entity.id;
    a.create_entity(&entity).await.unwrap();
    let entries = shared(
        A,
        &a.entity(id).await.unwrap(),
        &opened,
        &[w.target(A, B, Explicit, Read)],
    );
    a.share(&ShareRequest::new(entries)).await.unwrap();

    let data = content(3 * SEGMENT_LEN + 1234);
    let (reference, sealed) = seal_attachment(&opened, &data).unwrap();
    let aid = reference.id;
    // The reference must be on the entity first.
    assert_eq!(status(a.put_attachment(id, aid, sealed.clone()).await), 400);
    let with_ref = revised(A, &a.entity(id).await.unwrap(), &opened, |e| {
        e.attachments.push(reference.clone());
    });
    let rev = a.update_entity(&with_ref, with_ref.rev).await.unwrap();
    assert_eq!(rev, 3);
    // A stream of another length than the reference says is refused.
    assert_eq!(
        status(
            a.put_attachment(id, aid, sealed[..sealed.len() - 1].to_vec())
                .await
        ),
        400
    );
    assert_eq!(status(a.attachment(id, aid, None).await), 404);
    // B only reads.
    assert_eq!(status(b.put_attachment(id, aid, sealed.clone()).await), 403);
    a.put_attachment(id, aid, sealed.clone()).await.unwrap();

    // B reads the header, then every segment by range, last first, and opens each one.
    let read = decrypt(&b.entity(id).await.unwrap(), &w.access(B)).unwrap();
    let header = b
        .attachment(id, aid, Some(0..HEADER_LEN as u64))
        .await
        .unwrap();
    assert_eq!(header.len(), HEADER_LEN);
    let (opener, layout) = attachment_opener(&read, &read.attachments[0], &header).unwrap();
    assert_eq!(layout.segments(), 4);
    let mut segments = vec![Vec::new(); 4];
    for index in (0..layout.segments()).rev() {
        let range = layout.segment_range(index).unwrap();
        let bytes = b.attachment(id, aid, Some(range.clone())).await.unwrap();
        assert_eq!(bytes.len() as u64, range.end - range.start);
        segments[index as usize] = opener
            .open_segment(index, &bytes, layout.is_last(index))
            .unwrap();
    }
    assert_eq!(segments.concat(), data);
    // A middle segment opened as the last one fails: ranges cannot truncate a stream unnoticed.
    let range = layout.segment_range(1).unwrap();
    let middle = b.attachment(id, aid, Some(range)).await.unwrap();
    assert!(opener.open_segment(1, &middle, true).is_err());

    // The whole stream, and the headers of a ranged answer.
    let whole = b.attachment(id, aid, None).await.unwrap();
    assert_eq!(whole, sealed);
    assert_eq!(open_attachment(&read, &reference, &whole).unwrap(), data);
    let mut session_client = server.client();
    let session = session_client.login(w.keys(B)).await.unwrap();
    session_client
        .register_access_keys(&w.access_keys(B, &note_type))
        .await
        .unwrap();
    let total = sealed.len();
    let answer = raw(
        &server.base,
        Method::GET,
        &format!("/v1/entities/{id}/attachments/{aid}"),
        &[
            bearer(session.token.expose_secret()),
            ("range", "bytes=100-199".into()),
        ],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 206);
    assert_eq!(answer.body, sealed[100..200]);
    assert_eq!(
        answer.headers["content-range"].to_str().unwrap(),
        format!("bytes 100-199/{total}")
    );
    let answer = raw(
        &server.base,
        Method::GET,
        &format!("/v1/entities/{id}/attachments/{aid}"),
        &[
            bearer(session.token.expose_secret()),
            ("range", format!("bytes={}-", total - 10)),
        ],
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 206);
    assert_eq!(answer.body, sealed[total - 10..]);
    // Past the end, or backwards: 416; not a byte range: 400.
    let past = (total as u64 + 10)..(total as u64 + 20);
    assert_eq!(status(b.attachment(id, aid, Some(past)).await), 416);
    for (range, expected) in [
        ("bytes=200-100", 416),
        ("items=0-10", 400),
        ("bytes=-10", 400),
    ] {
        let answer = raw(
            &server.base,
            Method::GET,
            &format!("/v1/entities/{id}/attachments/{aid}"),
            &[
                bearer(session.token.expose_secret()),
                ("range", range.into()),
            ],
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(answer.status, expected, "{range}: {}", answer.text());
    }

    // C has no access: 404 for the attachment, as for an attachment that does not exist.
    let c = server.login(C).await;
    assert_eq!(status(c.attachment(id, aid, None).await), 404);
    assert_eq!(status(c.attachment(id, aid, Some(0..9)).await), 404);
    assert_eq!(status(c.put_attachment(id, aid, sealed.clone()).await), 404);
    let unknown = AttachmentId::generate().unwrap();
    assert_eq!(status(b.attachment(id, unknown, None).await), 404);

    // Deleting the entity deletes its attachments: recreated under the same id, it has none.
    let current = a.entity(id).await.unwrap();
    a.delete_entity(id, current.rev).await.unwrap();
    assert_eq!(status(a.attachment(id, aid, None).await), 404);
    // Recreated, then given the reference in its next (signed) version, as protocol v2 writes references.
    a.create_entity(&entity).await.unwrap();
    let recreated = revised(A, &a.entity(id).await.unwrap(), &opened, |e| {
        e.attachments = vec![reference];
    });
    a.update_entity(&recreated, 1).await.unwrap();
    assert_eq!(status(a.attachment(id, aid, Some(0..9)).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_messages_reach_only_their_recipient_and_name_no_sender() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login(A).await;
    let b = server.login(B).await;
    let c = server.login(C).await;

    // B's inbox holds exactly the exchange data the three others made for it, each sealed for B's bundle.
    let inbox = b.inbox().await.unwrap();
    assert_eq!(inbox.len(), 3);
    let mut senders: Vec<OwnerId> = inbox
        .iter()
        .map(|message| message.open(w.keys(B)).unwrap().delegator())
        .collect();
    senders.sort();
    let mut expected = vec![A.id(), C.id(), P.id()];
    expected.sort();
    assert_eq!(senders, expected);
    // Nobody else's listing holds them, and nobody else can delete them (404, as for an id that does not exist).
    assert!(
        a.inbox()
            .await
            .unwrap()
            .iter()
            .all(|m| inbox.iter().all(|n| n.id != m.id))
    );
    let first = inbox[0].id;
    let hidden = status_code(c.delete_inbox_message(first).await);
    let missing = status_code(
        c.delete_inbox_message(InboxMessageId::generate().unwrap())
            .await,
    );
    assert_eq!(hidden, (404, "not_found".to_owned()));
    assert_eq!(hidden, missing);
    b.delete_inbox_message(first).await.unwrap();
    assert_eq!(status(b.delete_inbox_message(first).await), 404);
    assert_eq!(b.inbox().await.unwrap().len(), 2);

    // Delivery: to an unregistered owner 404, for a bundle the recipient does not have 400, too large 400, and
    // nothing without a session.
    let message = InboxMessage::seal(w.data(A, B), w.bundle(B)).unwrap();
    assert_eq!(
        status(a.deliver(OwnerId::generate().unwrap(), &message).await),
        404
    );
    assert_eq!(status(a.deliver(C.id(), &message).await), 400);
    let mut huge = message.clone();
    huge.sealed = vec![0; tessera_keys::MAX_INBOX_MESSAGE_LEN + 1];
    assert_eq!(status(a.deliver(B.id(), &huge).await), 400);
    assert_eq!(status(server.client().deliver(B.id(), &message).await), 401);
    // Delivering the same message twice files it once.
    a.deliver(B.id(), &message).await.unwrap();
    a.deliver(B.id(), &message).await.unwrap();
    assert_eq!(b.inbox().await.unwrap().len(), 3);

    // B adds a key bundle chained from its first one.
    let new_keys = OwnerKeys::generate(B.id(), RsaKeySize::Bits2048, T0 + 100).unwrap();
    let mut new_bundle = new_keys.bundle().unwrap();
    let unchained = new_bundle.clone();
    w.keys(B).sign_successor(&mut new_bundle).unwrap();
    let record = b.owner(B.id()).await.unwrap();
    assert_eq!(record.rev, 1);
    let mut bad = record.value.clone();
    bad.bundles.push(unchained);
    assert_eq!(status(b.update_owner(&bad, 1).await), 400);
    let mut updated = record.value.clone();
    updated.bundles.push(new_bundle.clone());
    assert_eq!(status(a.update_owner(&updated, 1).await), 403);
    let mut kind_changed = updated.clone();
    kind_changed.kind = OwnerKind::Device;
    assert_eq!(status(b.update_owner(&kind_changed, 1).await), 400);
    assert_eq!(b.update_owner(&updated, 1).await.unwrap().rev, 2);
    assert_eq!(status(b.update_owner(&updated, 1).await), 409);
    assert_eq!(a.owner(B.id()).await.unwrap().value, updated);

    // A wraps the secret for B's new key and delivers it sealed for that bundle; the new key opens it.
    let mut wrapped = w.data(A, B).clone();
    let trusted = Tofu::new().trust(new_bundle).unwrap();
    wrapped.add_wrap(w.keys(A), w.own(A, B), &trusted).unwrap();
    a.deliver(B.id(), &InboxMessage::seal(&wrapped, &trusted).unwrap())
        .await
        .unwrap();
    let mut b_new = server.client();
    b_new.login(&new_keys).await.unwrap();
    let for_new: Vec<InboxMessage> = b_new
        .inbox()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.is_for(&new_keys))
        .collect();
    assert_eq!(for_new.len(), 1);
    let opened = for_new[0]
        .open(&new_keys)
        .unwrap()
        .open(&new_keys, &[w.bundle(A)])
        .unwrap();
    assert_eq!(opened.delegation_key(&note_type), w.dk(A, B, &note_type));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_bags_hold_only_their_owners_entries() {
    let w = world();
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login(A).await;
    let c = server.login(C).await;
    let entries = [
        KeyBag::seal_entry(w.keys(A), w.own(A, B)).unwrap(),
        KeyBag::seal_entry(w.keys(A), w.secret(A, B, A)).unwrap(),
    ];
    for entry in &entries {
        a.put_key_bag_entry(entry).await.unwrap();
    }
    // Storing the same entry again changes nothing; another entry under the same id conflicts.
    a.put_key_bag_entry(&entries[0]).await.unwrap();
    let mut other = entries[1].clone();
    other.id = entries[0].id;
    assert_eq!(status(a.put_key_bag_entry(&other).await), 409);

    let bag = a.key_bag().await.unwrap();
    assert_eq!(bag.len(), 2);
    let opened = KeyBag::load(w.keys(A), &bag).unwrap();
    assert!(opened.get(&w.data(A, B).id()).is_some());
    assert!(opened.get(&w.data(B, A).id()).is_some());

    // C's bag is empty, and C cannot put into A's.
    assert!(c.key_bag().await.unwrap().is_empty());
    let foreign = KeyBag::seal_entry(w.keys(A), w.own(A, C)).unwrap();
    assert_eq!(status(c.put_key_bag_entry(&foreign).await), 400);
    assert_eq!(a.key_bag().await.unwrap().len(), 2);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn side_map_entries_are_read_by_their_owner_only() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login(A).await;
    let c = server.login(C).await;
    let key = w.dk(A, P, &note_type);
    let entry = SideMapEntry::seal(w.keys(A), key, w.data(A, P).id()).unwrap();
    a.put_side_map_entry(&entry).await.unwrap();
    let read = a.side_map_entry(&key).await.unwrap();
    assert_eq!(read, entry);
    assert_eq!(read.open(w.keys(A)).unwrap(), w.data(A, P).id());

    assert_eq!(status(c.side_map_entry(&key).await), 404);
    assert_eq!(status(c.put_side_map_entry(&entry).await), 400);
    assert_eq!(status(a.side_map_entry(&w.dk(A, B, &note_type)).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_data_is_stored_with_a_session_and_fetched_without() {
    let server = TestServer::memory().await;
    server.register_world().await;
    let anonymous = server.client();
    let a = server.login(A).await;
    let body = RecoveryBody {
        sealed: b"sealed recovery payload".to_vec(),
        expires: now() + 3600,
    };
    assert_eq!(status(anonymous.put_recovery(&[7; 32], &body).await), 401);
    assert_eq!(status(anonymous.recovery(&[7; 32]).await), 404);
    a.put_recovery(&[7; 32], &body).await.unwrap();
    assert_eq!(anonymous.recovery(&[7; 32]).await.unwrap(), body);
    // Create only.
    let other = RecoveryBody {
        sealed: b"another payload".to_vec(),
        ..body.clone()
    };
    assert_eq!(status(a.put_recovery(&[7; 32], &other).await), 409);
    assert_eq!(anonymous.recovery(&[7; 32]).await.unwrap(), body);
    // Expired data is gone.
    let expired = RecoveryBody {
        expires: now() - 1,
        ..body.clone()
    };
    a.put_recovery(&[8; 32], &expired).await.unwrap();
    assert_eq!(status(anonymous.recovery(&[8; 32]).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_without_access_gets_404_never_403() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login_with_keys(A, &note_type).await;
    let (entity, opened) = note(A);
    let id = entity.id;
    a.create_entity(&entity).await.unwrap();
    let (reference, sealed) = seal_attachment(&opened, b"attachment").unwrap();
    let with_ref = revised(A, &a.entity(id).await.unwrap(), &opened, |e| {
        e.attachments.push(reference.clone());
    });
    a.update_entity(&with_ref, 1).await.unwrap();
    a.put_attachment(id, reference.id, sealed.clone())
        .await
        .unwrap();
    let stored = a.entity(id).await.unwrap();

    // C, even presenting all its keys, sees exactly what it sees of an entity that does not exist.
    let mut c = server.login_with_keys(C, &note_type).await;
    c.present_access_keys(&w.access_keys(C, &note_type));
    let missing = EntityId::generate().unwrap();
    let b_message = server.login(B).await.inbox().await.unwrap()[0].id;
    let pairs = [
        (
            status_code(c.entity(id).await),
            status_code(c.entity(missing).await),
        ),
        (
            status_code(c.update_entity(&stored, stored.rev).await),
            status_code(
                c.update_entity(
                    &tessera_sharing::EncryptedEntity {
                        id: missing,
                        ..stored.clone()
                    },
                    stored.rev,
                )
                .await,
            ),
        ),
        (
            status_code(c.delete_entity(id, stored.rev).await),
            status_code(c.delete_entity(missing, stored.rev).await),
        ),
        (
            status_code(c.attachment(id, reference.id, None).await),
            status_code(c.attachment(missing, reference.id, None).await),
        ),
        (
            status_code(c.put_attachment(id, reference.id, sealed.clone()).await),
            status_code(c.put_attachment(missing, reference.id, sealed).await),
        ),
        (
            status_code(
                c.revoke(&[Revocation {
                    entity_id: id,
                    delegation_key: w.dk(A, A, &note_type),
                }])
                .await,
            ),
            status_code(
                c.revoke(&[Revocation {
                    entity_id: missing,
                    delegation_key: w.dk(A, A, &note_type),
                }])
                .await,
            ),
        ),
        (
            status_code(c.delete_inbox_message(b_message).await),
            status_code(
                c.delete_inbox_message(InboxMessageId::generate().unwrap())
                    .await,
            ),
        ),
    ];
    for (index, (hidden, absent)) in pairs.into_iter().enumerate() {
        assert_eq!(hidden.0, 404, "case {index}");
        assert_eq!(hidden, absent, "case {index}");
    }
    // A share that C builds for itself is refused the same way.
    let forged = shared(A, &stored, &opened, &[w.target(A, C, Explicit, Read)]);
    assert_eq!(status(c.share(&ShareRequest::new(forged)).await), 404);
    let queried = c.query_by_delegation_key(&w.dk(A, A, &note_type)).await;
    assert!(queried.unwrap().is_empty());
    // Nothing changed.
    assert_eq!(a.entity(id).await.unwrap(), stored);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_over_an_invisible_entity_reveals_no_revision() {
    let server = TestServer::memory().await;
    server.register_world().await;
    let note_type = ty("Note");
    let a = server.login_with_keys(A, &note_type).await;
    let (entity, opened) = note(A);
    a.create_entity(&entity).await.unwrap();
    let mut stored = a.entity(entity.id).await.unwrap();
    for _ in 0..4 {
        let rev = stored.rev;
        let next = revised(A, &stored, &opened, |e| {
            e.public.insert("n".into(), json!(rev));
        });
        stored = tessera_sharing::EncryptedEntity {
            rev: a.update_entity(&next, rev).await.unwrap(),
            ..next
        };
    }
    assert_eq!(stored.rev, 5);
    // C cannot see the entity, yet learns from the conflict that it exists and has been written five times.
    // C proves the key of its own root, so that its create passes the creator check and meets the conflict.
    let c = server.login_with_keys(C, &note_type).await;
    assert_eq!(status(c.entity(entity.id).await), 404);
    let (mine, _) = create_as(C, Spec::note());
    let squatting = tessera_sharing::EncryptedEntity {
        id: entity.id,
        ..mine
    };
    let answer = c.create_entity(&squatting).await.unwrap_err();
    let text = answer.to_string();
    assert!(
        !text.contains("Some(5)") && !text.contains("revision 5"),
        "the answer to a non-viewer names the revision: {text}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_and_rotate_through_the_rotation_endpoint() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login_with_keys(A, &note_type).await;
    let (entity, opened) = note(A);
    let id = entity.id;
    a.create_entity(&entity).await.unwrap();
    let entries = shared(
        A,
        &a.entity(id).await.unwrap(),
        &opened,
        &[
            w.target(A, B, Explicit, Read),
            w.target(A, C, Explicit, Write),
        ],
    );
    a.share(&ShareRequest::new(entries)).await.unwrap();
    let stored = a.entity(id).await.unwrap();
    let (rotated, _) = revoke_and_rotate(
        &stored,
        &decrypt(&stored, &w.access(A)).unwrap(),
        &[w.dk(A, B, &note_type)],
        &w.access(A),
        w.keys(A),
    )
    .unwrap()
    .sign(w.keys(A))
    .unwrap();
    // C, with write access but not the root, cannot rotate.
    let c = server.login_with_keys(C, &note_type).await;
    assert_eq!(status(c.rotate_entity(&rotated, stored.rev).await), 422);
    assert_eq!(status(a.rotate_entity(&rotated, stored.rev - 1).await), 409);
    // Through the plain update endpoint, a rotation is a metadata change.
    assert_eq!(status(a.update_entity(&rotated, stored.rev).await), 422);
    let rev = a.rotate_entity(&rotated, stored.rev).await.unwrap();
    assert_eq!(rev, stored.rev + 1);
    // B, even proving its key, no longer sees the entity.
    let b = server.login_with_keys(B, &note_type).await;
    assert_eq!(status(b.entity(id).await), 404);
    let for_c = decrypt(&c.entity(id).await.unwrap(), &w.access(C)).unwrap();
    assert_eq!(for_c.document["note"], "rest and fluids");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_http2_with_prior_knowledge() {
    let server = TestServer::memory().await;
    let client: HyperClient<_, Full<Bytes>> = HyperClient::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for (path, expected) in [("/v1/health", 200), ("/v1/entities", 401)] {
        let request = hyper::Request::get(format!("{}{path}", server.base))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        assert_eq!(response.version(), hyper::Version::HTTP_2);
        assert_eq!(response.status().as_u16(), expected, "{path}");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(!body.is_empty());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_the_openapi_description() {
    let server = TestServer::memory().await;
    server.client().health().await.unwrap();
    let health = raw(&server.base, Method::GET, "/v1/health", &[], vec![])
        .await
        .unwrap();
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));

    let openapi = raw(&server.base, Method::GET, "/v1/openapi.json", &[], vec![])
        .await
        .unwrap();
    assert_eq!(openapi.status, 200);
    assert_eq!(
        openapi.headers["content-type"].to_str().unwrap(),
        "application/json"
    );
    let description = openapi.json();
    let paths = description["paths"].as_object().unwrap();
    // Every route of the server is described.
    for path in [
        "/v1/health",
        "/metrics",
        "/v1/openapi.json",
        "/v1/auth/challenge",
        "/v1/auth/login",
        "/v1/auth/access-keys",
        "/v1/owners",
        "/v1/owners/{id}",
        "/v1/owners/{id}/inbox",
        "/v1/inbox",
        "/v1/inbox/{id}",
        "/v1/key-bag",
        "/v1/key-bag/{id}",
        "/v1/entities",
        "/v1/entities/share",
        "/v1/entities/revoke",
        "/v1/entities/{id}",
        "/v1/entities/{id}/rotation",
        "/v1/entities/{id}/attachments/{attachment}",
        "/v1/recovery/{id}",
        "/v1/side-map",
        "/v1/side-map/{key}",
    ] {
        assert!(paths.contains_key(path), "{path} missing from openapi.json");
    }
    assert!(description["openapi"].as_str().unwrap().starts_with('3'));

    // A 404 to count.
    let unknown = raw(&server.base, Method::GET, "/v1/nothing-here", &[], vec![])
        .await
        .unwrap();
    assert_eq!(unknown.status, 404);
    let metrics = raw(&server.base, Method::GET, "/metrics", &[], vec![])
        .await
        .unwrap();
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(text.contains("tessera_requests_total"), "{text}");
    let count = |class: &str| -> u64 {
        text.lines()
            .find_map(|line| {
                line.strip_prefix(&format!("tessera_requests_total{{class=\"{class}\"}} "))
            })
            .unwrap_or_else(|| panic!("no {class} line in {text}"))
            .parse()
            .unwrap()
    };
    assert!(count("2xx") >= 3, "{text}");
    assert!(count("4xx") >= 1, "{text}");
    server.shutdown().await;
}

/// The error codes the OpenAPI description lists are exactly those the server sends, in the same spelling.
#[test]
fn the_openapi_description_lists_every_error_code() {
    let description: serde_json::Value =
        serde_json::from_str(include_str!("../openapi.json")).unwrap();
    let listed: Vec<&str> =
        description["components"]["schemas"]["ErrorBody"]["properties"]["error"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|code| code.as_str().unwrap())
            .collect();
    let sent: Vec<&str> = tessera_wire::ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .collect();
    assert_eq!(listed, sent);
}

/// A bulk share answers the entities in request order, as `BulkWritten` says, not in the order of their ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_share_answers_in_request_order() {
    let w = world();
    let server = TestServer::memory().await;
    server.register_world().await;
    let a = server.login(A).await;
    a.register_access_keys(&w.access_keys(A, &ty("Note")))
        .await
        .unwrap();
    let mut notes = Vec::new();
    for _ in 0..4 {
        let (entity, opened) = note(A);
        a.create_entity(&entity).await.unwrap();
        notes.push((a.entity(entity.id).await.unwrap(), opened));
    }
    // Descending ids: the reverse of the order a map by id would give.
    notes.sort_by_key(|(entity, _)| std::cmp::Reverse(entity.id));
    let mut entries = Vec::new();
    for (stored, opened) in &notes {
        entries.extend(shared(A, stored, opened, &[w.target(A, B, Explicit, Read)]));
    }
    let written = a.share(&ShareRequest::new(entries)).await.unwrap();
    let expected: Vec<(EntityId, u64)> = notes.iter().map(|(e, _)| (e.id, e.rev + 1)).collect();
    assert_eq!(written.written, expected);
    server.shutdown().await;
}
