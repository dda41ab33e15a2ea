//! Hostile and broken requests against a real server: forged and expired sessions (401), oversized bodies (413), malformed bodies (400), too many access keys (431), rule violations (422), slow clients (408); each answers a clear 4xx and changes nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::time::Duration;

use common::{
    RawAnswer, TestServer, Who, bearer, get_with_token, note, raw, revised, shared, status,
    status_code, ty, world,
};
use hyper::Method;
use serde_json::json;
use tessera_client::Client;
use tessera_keys::AccessControlKey;
use tessera_sharing::attachment::seal_attachment;
use tessera_sharing::{EncryptedEntity, Permission, ShareRequest, Visibility, decrypt};
use tessera_store::MemoryStore;
use tessera_wire::{ACCESS_KEYS_HEADER, BINCODE, Entities, EntityUpdate, Format, JSON, Revocation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use Permission::{Read, Write};
use Visibility::Explicit;
use Who::{A, B, C, P};

/// `count` access-control keys that match nothing.
fn junk_keys(count: usize) -> Vec<AccessControlKey> {
    (0..count)
        .map(|i| {
            let mut bytes = [0x5a; 16];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            AccessControlKey::from_bytes(bytes)
        })
        .collect()
}

/// Asserts an error answer with a JSON body naming `code` and a message.
#[track_caller]
fn assert_error(answer: &RawAnswer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["error"], code, "{body}");
    assert!(
        !body["message"].as_str().unwrap().is_empty(),
        "a clear message: {body}"
    );
}

/// Asserts a 422 rule violation.
#[track_caller]
fn rule<T: std::fmt::Debug>(result: tessera_client::Result<T>) {
    let (status, code) = status_code(result);
    assert_eq!((status, code.as_str()), (422, "rule_violation"));
}

/// A server with the world registered, A logged in with its `Note` keys, and a note of A shared with B (read).
async fn shared_note(server: &TestServer) -> (Client, EncryptedEntity) {
    let w = world();
    let note_type = ty("Note");
    server.register_world().await;
    let a = server.login_with_keys(A, &note_type).await;
    let (entity, opened) = note(A);
    a.create_entity(&entity).await.unwrap();
    let entries = shared(
        A,
        &a.entity(entity.id).await.unwrap(),
        &opened,
        &[w.target(A, B, Explicit, Read)],
    );
    a.share(&ShareRequest::new(entries)).await.unwrap();
    let stored = a.entity(entity.id).await.unwrap();
    (a, stored)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_forged_and_malformed_tokens_are_401() {
    let server = TestServer::memory().await;
    server.register_world().await;
    let (entity, _) = note(A);
    let path = format!("/v1/entities/{}", entity.id);
    let mut client = server.client();
    let session = client.login(world().keys(A)).await.unwrap();

    let forged = "ab".repeat(32);
    let mut tampered = session.token.expose_secret().to_owned();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let headers: Vec<(&str, String)> = vec![
        ("authorization", format!("Bearer {forged}")),
        ("authorization", format!("Bearer {tampered}")),
        (
            "authorization",
            format!("Bearer {}x", session.token.expose_secret()),
        ),
        ("authorization", "Bearer zz".into()),
        ("authorization", "Bearer ".into()),
        (
            "authorization",
            format!("Basic {}", session.token.expose_secret()),
        ),
        ("authorization", format!("Admin {}", common::ADMIN)),
        ("x-no-authorization", String::new()),
    ];
    for header in headers {
        let answer = raw(
            &server.base,
            Method::GET,
            &path,
            std::slice::from_ref(&header),
            vec![],
        )
        .await
        .unwrap();
        assert_error(&answer, 401, "unauthorized");
        // A write with the same header stores nothing.
        let body = Format::Json
            .encode(&Entities {
                entities: vec![entity.clone()],
            })
            .unwrap();
        let answer = raw(
            &server.base,
            Method::POST,
            "/v1/entities",
            &[header.clone(), ("content-type", JSON.into())],
            body,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 401, "{header:?}: {}", answer.text());
    }
    let mut forged_client = server.client();
    forged_client.set_token(forged);
    assert!(
        forged_client
            .entity(entity.id)
            .await
            .unwrap_err()
            .is_unauthorized()
    );
    assert_eq!(status(forged_client.create_entity(&entity).await), 401);
    // The real session works, and nothing was created.
    assert_eq!(status(client.entity(entity.id).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_401() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let server = TestServer::start(store, |config| {
        config.limits.session_lifetime = Duration::from_secs(1);
    })
    .await;
    server.register_world().await;
    let keys = world().access_keys(A, &ty("Note"));
    let mut a = server.client();
    let session = a.login(world().keys(A)).await.unwrap();
    a.register_access_keys(&keys).await.unwrap();
    let (entity, _) = note(A);
    a.create_entity(&entity).await.unwrap();
    a.entity(entity.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        status_code(a.entity(entity.id).await),
        (401, "unauthorized".to_owned())
    );
    let (other, _) = note(A);
    assert_eq!(status(a.create_entity(&other).await), 401);
    let answer = get_with_token(
        &server.base,
        &format!("/v1/entities/{}", entity.id),
        session.token.expose_secret(),
    )
    .await;
    assert_error(&answer, 401, "unauthorized");
    // Logging in again opens a new session; nothing was created by the expired one.
    a.login(world().keys(A)).await.unwrap();
    a.register_access_keys(&keys).await.unwrap();
    a.entity(entity.id).await.unwrap();
    assert_eq!(status(a.entity(other.id).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_keys_in_an_expired_session_is_401() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let server = TestServer::start(store, |config| {
        config.limits.session_lifetime = Duration::from_secs(1);
    })
    .await;
    server.register_world().await;
    let a = server.login(A).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let keys = world().access_keys(A, &ty("Note"));
    assert_eq!(status(a.register_access_keys(&keys).await), 401);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413_and_changes_nothing() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let server = TestServer::start(store, |config| {
        config.limits.max_body_bytes = 64 << 10;
        config.limits.max_attachment_bytes = 256 << 10;
    })
    .await;
    server.register_world().await;
    let a = server.login_with_keys(A, &ty("Note")).await;

    let (mut big, _) = note(A);
    big.public
        .insert("padding".into(), json!("x".repeat(100 << 10)));
    assert_eq!(status(a.create_entity(&big).await), 413);
    assert_eq!(status(a.entity(big.id).await), 404);
    let json_client = server.login_in(A, Format::Json).await;
    assert_eq!(status(json_client.create_entity(&big).await), 413);
    assert_eq!(status(a.entity(big.id).await), 404);

    // An update over the limit leaves the stored entity as it was.
    let (small, opened) = note(A);
    a.create_entity(&small).await.unwrap();
    let stored = a.entity(small.id).await.unwrap();
    let grown = revised(A, &stored, &opened, |e| {
        e.public
            .insert("padding".into(), json!("y".repeat(100 << 10)));
    });
    assert_eq!(status(a.update_entity(&grown, 1).await), 413);
    assert_eq!(a.entity(small.id).await.unwrap(), stored);

    // Attachments have their own limit.
    let (reference, sealed) = seal_attachment(&opened, &vec![7; 300 << 10]).unwrap();
    let with_ref = revised(A, &stored, &opened, |e| {
        e.attachments.push(reference.clone())
    });
    a.update_entity(&with_ref, 1).await.unwrap();
    assert_eq!(
        status(a.put_attachment(small.id, reference.id, sealed).await),
        413
    );
    assert_eq!(
        status(a.attachment(small.id, reference.id, None).await),
        404
    );
    let (fits, sealed) = seal_attachment(&opened, &vec![7; 200 << 10]).unwrap();
    let with_ref = revised(A, &a.entity(small.id).await.unwrap(), &opened, |e| {
        e.attachments.push(fits.clone());
    });
    a.update_entity(&with_ref, 2).await.unwrap();
    a.put_attachment(small.id, fits.id, sealed.clone())
        .await
        .unwrap();
    assert_eq!(a.attachment(small.id, fits.id, None).await.unwrap(), sealed);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_and_change_nothing() {
    let server = TestServer::memory().await;
    server.register_world().await;
    let mut a = server.client();
    let session = a.login(world().keys(A)).await.unwrap();
    a.register_access_keys(&world().access_keys(A, &ty("Note")))
        .await
        .unwrap();
    let (entity, opened) = note(A);
    let create = Entities {
        entities: vec![entity.clone()],
    };
    let bincode_body = Format::Bincode.encode(&create).unwrap();
    let json_body = Format::Json.encode(&create).unwrap();
    let with_trailing = |mut body: Vec<u8>, extra: &[u8]| {
        body.extend_from_slice(extra);
        body
    };
    let mut unknown_field: serde_json::Value = serde_json::from_slice(&json_body).unwrap();
    unknown_field["extra"] = json!(1);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("bincode garbage", BINCODE, vec![0xff; 64]),
        ("bincode empty", BINCODE, vec![]),
        (
            "bincode truncated",
            BINCODE,
            bincode_body[..bincode_body.len() / 2].to_vec(),
        ),
        (
            "bincode trailing byte",
            BINCODE,
            with_trailing(bincode_body.clone(), &[0]),
        ),
        (
            "bincode huge length prefix",
            BINCODE,
            vec![0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        ),
        ("JSON garbage", JSON, b"{\"entities\": [".to_vec()),
        ("JSON not an object", JSON, b"[1, 2, 3]".to_vec()),
        (
            "JSON trailing text",
            JSON,
            with_trailing(json_body.clone(), b" x"),
        ),
        (
            "JSON unknown field",
            JSON,
            serde_json::to_vec(&unknown_field).unwrap(),
        ),
        ("bincode sent as JSON", JSON, bincode_body.clone()),
        ("JSON sent as bincode", BINCODE, json_body.clone()),
    ];
    for (what, media_type, body) in cases {
        let answer = raw(
            &server.base,
            Method::POST,
            "/v1/entities",
            &[
                bearer(session.token.expose_secret()),
                ("content-type", media_type.into()),
            ],
            body,
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 400, "{what}: {}", answer.text());
        assert_error(&answer, 400, "bad_request");
    }
    let answer = raw(
        &server.base,
        Method::POST,
        "/v1/entities",
        &[
            bearer(session.token.expose_secret()),
            ("content-type", "text/plain".into()),
        ],
        json_body.clone(),
    )
    .await
    .unwrap();
    assert_error(&answer, 415, "unsupported_media_type");
    assert_eq!(status(a.entity(entity.id).await), 404);

    // The well-formed bodies do work, and an update with trailing bytes leaves the entity unchanged.
    a.create_entity(&entity).await.unwrap();
    let stored = a.entity(entity.id).await.unwrap();
    let changed = revised(A, &stored, &opened, |e| {
        e.public.insert("status".into(), json!("changed"));
    });
    let update = EntityUpdate {
        entity: changed,
        expected_rev: 1,
    };
    for (media_type, body) in [
        (
            BINCODE,
            with_trailing(Format::Bincode.encode(&update).unwrap(), &[1, 2, 3]),
        ),
        (
            JSON,
            with_trailing(Format::Json.encode(&update).unwrap(), b"}"),
        ),
    ] {
        let answer = raw(
            &server.base,
            Method::PUT,
            &format!("/v1/entities/{}", entity.id),
            &[
                bearer(session.token.expose_secret()),
                ("content-type", media_type.into()),
            ],
            body,
        )
        .await
        .unwrap();
        assert_error(&answer, 400, "bad_request");
    }
    assert_eq!(a.entity(entity.id).await.unwrap(), stored);
    // Malformed ids in paths are 400 too.
    for path in ["/v1/entities/not-a-uuid", "/v1/owners/123"] {
        let answer = get_with_token(&server.base, path, session.token.expose_secret()).await;
        assert_error(&answer, 400, "bad_request");
    }
    server.client().health().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_access_keys_in_headers_are_refused_and_change_nothing() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    let (_, stored) = shared_note(&server).await;
    let revoke_b = [Revocation {
        entity_id: stored.id,
        delegation_key: w.dk(A, B, &note_type),
    }];
    // A's real keys first, then junk up to 10,000: the keys would allow the revocation.
    let mut keys = w.access_keys(A, &note_type);
    keys.extend(junk_keys(10_000 - keys.len()));

    // Through the client: 64 keys per header line, 157 lines (hyper's own limit is 100 headers).
    let mut a = server.login(A).await;
    a.present_access_keys(&keys);
    let refused = a.revoke(&revoke_b).await;
    let code = status(refused);
    assert!((400..500).contains(&code), "answered {code}");

    // Raw: 10 header lines of 1,000 keys each, within hyper's limits, so the handler counts them.
    let mut session_client = server.client();
    let session = session_client.login(w.keys(A)).await.unwrap();
    let mut headers = vec![
        bearer(session.token.expose_secret()),
        ("content-type", JSON.to_owned()),
    ];
    for chunk in keys.chunks(1000) {
        let line = chunk
            .iter()
            .map(|k| tessera_keys::wire::hex(k.expose_secret()))
            .collect::<Vec<_>>()
            .join(",");
        headers.push((ACCESS_KEYS_HEADER, line));
    }
    let body = Format::Json
        .encode(&tessera_wire::RevokeBody {
            revocations: revoke_b.to_vec(),
        })
        .unwrap();
    let answer = raw(
        &server.base,
        Method::POST,
        "/v1/entities/revoke",
        &headers,
        body,
    )
    .await
    .unwrap();
    assert_error(&answer, 431, "too_many_access_keys");

    // Nothing changed: B (proving its key, protocol v2) still sees the entity at the same revision.
    let b = server.login_with_keys(B, &note_type).await;
    assert_eq!(b.entity(stored.id).await.unwrap(), stored);

    // At the limit (4,096 keys) the same request goes through.
    let mut at_limit = w.access_keys(A, &note_type);
    at_limit.extend(junk_keys(4096 - at_limit.len()));
    let mut a = server.login(A).await;
    a.present_access_keys(&at_limit);
    a.revoke(&revoke_b).await.unwrap();
    assert_eq!(status(b.entity(stored.id).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_in_a_registration_are_431_and_register_none() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    server.register_world().await;
    // A shares a note with P anonymously: P sees it only by proving its key.
    let a = server.login_with_keys(A, &note_type).await;
    let (entity, opened) = note(A);
    a.create_entity(&entity).await.unwrap();
    let entries = shared(
        A,
        &a.entity(entity.id).await.unwrap(),
        &opened,
        &[w.target(A, P, Visibility::AnonymousDelegate, Read)],
    );
    a.share(&ShareRequest::new(entries)).await.unwrap();

    let p = server.login(P).await;
    assert_eq!(status(p.entity(entity.id).await), 404);
    let mut keys = w.access_keys(P, &note_type);
    keys.extend(junk_keys(10_000 - keys.len()));
    assert_eq!(
        status_code(p.register_access_keys(&keys).await),
        (431, "too_many_access_keys".to_owned())
    );
    // None of them was registered, not even the first ones.
    assert_eq!(status(p.entity(entity.id).await), 404);
    keys.truncate(4096);
    p.register_access_keys(&keys).await.unwrap();
    let seen = p.entity(entity.id).await.unwrap();
    assert_eq!(
        decrypt(&seen, &w.access(P)).unwrap().document["note"],
        "rest and fluids"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_violations_are_422_and_change_nothing() {
    let w = world();
    let note_type = ty("Note");
    let server = TestServer::memory().await;
    let (a, shared_with_b) = shared_note(&server).await;
    let id = shared_with_b.id;
    // A shares with C too (read), so that C sees the entity below.
    let opened_a = decrypt(&shared_with_b, &w.access(A)).unwrap();
    let to_c = shared(
        A,
        &shared_with_b,
        &opened_a,
        &[w.target(A, C, Explicit, Read)],
    );
    a.share(&ShareRequest::new(to_c)).await.unwrap();
    let stored = a.entity(id).await.unwrap();

    // B (read access) shares with C granting write: a widening.
    let b = server.login_with_keys(B, &note_type).await;
    let opened_b = decrypt(&stored, &w.access(B)).unwrap();
    let mut widening = shared(B, &stored, &opened_b, &[w.target(B, C, Explicit, Read)]);
    widening[0].delegation.permission = Write;
    rule(b.share(&ShareRequest::new(widening)).await);

    // A requester that sees the entity but does not hold the parent an entry names cannot add it: C (its own
    // read delegation proved) sends B's entry, whose parent is B's delegation.
    let valid = shared(B, &stored, &opened_b, &[w.target(B, C, Explicit, Read)]);
    let c = server.login_with_keys(C, &note_type).await;
    rule(c.share(&ShareRequest::new(valid.clone())).await);
    // B without its keys registered used to see the entity through the clear delegate label and fail on the
    // parent rule; protocol v2 grants nothing on clear labels, so B does not even see the entity.
    let b_without_keys = server.login(B).await;
    assert_eq!(
        status(
            b_without_keys
                .share(&ShareRequest::new(valid.clone()))
                .await
        ),
        404
    );

    // A plain update that changes the security metadata (otherwise a valid new version signed by A).
    let without_b = revised(A, &stored, &opened_a, |e| {
        e.security_metadata
            .delegations
            .remove(&w.dk(A, B, &note_type));
    });
    rule(a.update_entity(&without_b, stored.rev).await);
    let with_c = revised(A, &stored, &opened_a, |e| {
        e.security_metadata
            .delegations
            .insert(valid[0].delegation_key, valid[0].delegation.clone());
    });
    rule(a.update_entity(&with_c, stored.rev).await);
    // A plain update whose content version is not the stored one plus one (a replay of the stored version, or
    // a version that skips one).
    rule(a.update_entity(&stored, stored.rev).await);
    let mut skipping = revised(A, &stored, &opened_a, |e| {
        e.public.insert("status".into(), json!("skips"));
    });
    skipping.content_version += 1;
    rule(a.update_entity(&skipping, stored.rev).await);

    // Revoking the root.
    rule(
        a.revoke(&[Revocation {
            entity_id: id,
            delegation_key: w.dk(A, A, &note_type),
        }])
        .await,
    );
    // Re-sending a delegation that exists (a share never overwrites).
    let again = shared(
        A,
        &EncryptedEntity {
            security_metadata: Default::default(),
            ..stored.clone()
        },
        &opened_a,
        &[w.target(A, B, Explicit, Read)],
    );
    rule(a.share(&ShareRequest::new(again)).await);

    // A bulk share is all or none: one valid entry and one widening, on two entities.
    let (second, second_opened) = note(A);
    a.create_entity(&second).await.unwrap();
    let second_stored = a.entity(second.id).await.unwrap();
    let mut entries = shared(
        A,
        &second_stored,
        &second_opened,
        &[w.target(A, C, Explicit, Read)],
    );
    let mut bad = shared(A, &stored, &opened_a, &[w.target(A, P, Explicit, Read)]);
    bad[0].delegation.parents = [w.dk(A, B, &note_type)].into();
    bad[0].delegation.permission = Write;
    entries.extend(bad);
    rule(a.share(&ShareRequest::new(entries)).await);
    assert_eq!(a.entity(second.id).await.unwrap(), second_stored);

    // An entity created without a root, or with two.
    let (mut rootless, _) = note(A);
    rootless.security_metadata.delegations.clear();
    rule(a.create_entity(&rootless).await);
    let (mut two_roots, _) = note(A);
    let (other, _) = note(C);
    two_roots
        .security_metadata
        .delegations
        .extend(other.security_metadata.delegations);
    rule(a.create_entity(&two_roots).await);
    assert_eq!(status(a.entity(rootless.id).await), 404);
    assert_eq!(status(a.entity(two_roots.id).await), 404);

    // Nothing changed.
    assert_eq!(a.entity(id).await.unwrap(), stored);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_is_bounded() {
    let note_type = ty("Note");
    let store = std::sync::Arc::new(MemoryStore::new());
    let server = TestServer::start(store, |config| {
        config.limits.max_bulk_entities = 3;
    })
    .await;
    server.register_world().await;
    let a = server.login_with_keys(A, &note_type).await;
    let entities: Vec<EncryptedEntity> = (0..4).map(|_| note(A).0).collect();
    assert_eq!(status(a.create_entities(&entities).await), 400);
    assert_eq!(status(a.create_entities(&[]).await), 400);
    let root = world().dk(A, A, &note_type);
    assert!(a.query_by_delegation_key(&root).await.unwrap().is_empty());
    a.create_entities(&entities[..3]).await.unwrap();
    assert_eq!(a.query_by_delegation_key(&root).await.unwrap().len(), 3);
    // A create naming an existing id is all or none as well.
    let fresh = note(A).0;
    let mixed = [fresh.clone(), entities[0].clone()];
    assert_eq!(status(a.create_entities(&mixed).await), 409);
    assert_eq!(status(a.entity(fresh.id).await), 404);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_its_body_too_slowly_gets_408() {
    let store = std::sync::Arc::new(MemoryStore::new());
    let server = TestServer::start(store, |config| {
        config.limits.request_timeout = Duration::from_millis(300);
    })
    .await;
    server.register_world().await;
    let mut a = server.client();
    let session = a.login(world().keys(A)).await.unwrap();
    let (entity, _) = note(A);
    let body = Format::Json
        .encode(&Entities {
            entities: vec![entity.clone()],
        })
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/entities HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: {JSON}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        server.addr,
        session.token.expose_secret(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the server answers a slow client")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"timeout\""), "{answer}");
    assert_eq!(status(a.entity(entity.id).await), 404);
    server.shutdown().await;
}
