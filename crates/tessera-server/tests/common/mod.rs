//! Shared fixtures of the transport tests: four owners with exchange data between every ordered pair (built once per test binary), a server on `127.0.0.1:0` with helpers to register and log them in, entities with marker strings, and a raw HTTP helper for requests the client cannot make.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a part of the shared fixtures"
)]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{Map, Value, json};
use tessera_client::Client;
use tessera_keys::{
    AccessControlKey, EntityType, ExchangeData, ExchangeSecret, FormatVersion, InboxMessage, Owner,
    OwnerKeys, OwnerKind, TrustedBundle,
};
use tessera_server::{Server, ServerConfig};
use tessera_sharing::test_utils;
use tessera_sharing::{
    AccessIndex, DecryptedEntity, DelegationTarget, EncryptedEntity, EncryptionManifest, EntityId,
    EntityKeys, NewEntity, ParentLink, Permission, SecretId, SecretIdScope, ShareEntry, Visibility,
    create, revise, share,
};
use tessera_store::{MemoryStore, Store};
use tessera_wire::Format;

/// The administrator token of every test server.
pub const ADMIN: &str = "admin-token-of-the-tests";

#[allow(
    unused_imports,
    reason = "each test binary uses a part of the shared fixtures"
)]
pub use tessera_sharing::test_utils::{T0, Who};

/// The shared four-owner world, with the lookups the tests use unwrapped and the server helpers below.
pub struct World(test_utils::World);

/// The world of this test binary, built on first use.
pub fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World(test_utils::World::build().unwrap()))
}

impl World {
    /// `who`'s keys.
    pub fn keys(&self, who: Who) -> &OwnerKeys {
        self.0.keys(who).unwrap()
    }

    /// `who`'s trusted bundle.
    pub fn bundle(&self, who: Who) -> &TrustedBundle {
        self.0.bundle(who).unwrap()
    }

    /// The exchange data from `from` to `to`.
    pub fn data(&self, from: Who, to: Who) -> &ExchangeData {
        self.0.data(from, to).unwrap()
    }

    /// The secret of the exchange data `from` → `to` as `holder` opened it.
    pub fn secret(&self, holder: Who, from: Who, to: Who) -> &ExchangeSecret {
        self.0.secret(holder, from, to).unwrap()
    }

    /// The secret of `from` → `to` on the delegator's side.
    pub fn own(&self, from: Who, to: Who) -> &ExchangeSecret {
        self.secret(from, from, to)
    }

    /// `who`'s access index over every secret it holds.
    pub fn access(&self, who: Who) -> AccessIndex {
        self.0.access(who)
    }

    /// Every access-control key of `who` for entities of `entity_type`.
    pub fn access_keys(&self, who: Who, entity_type: &EntityType) -> Vec<AccessControlKey> {
        self.access(who).access_control_keys(entity_type)
    }

    /// A delegation from `from` to `to` (a root when they are the same).
    pub fn target(
        &self,
        from: Who,
        to: Who,
        visibility: Visibility,
        permission: Permission,
    ) -> DelegationTarget<'_> {
        DelegationTarget {
            exchange: self.own(from, to),
            visibility,
            permission,
        }
    }

    /// The delegation key of `from` → `to` for `entity_type`.
    pub fn dk(&self, from: Who, to: Who, entity_type: &EntityType) -> tessera_keys::DelegationKey {
        self.own(from, to).delegation_key(entity_type)
    }

    /// The public record of `who` as it registers: P is a patient below A, the others top-level HCPs.
    pub fn owner_record(&self, who: Who) -> Owner {
        Owner {
            version: FormatVersion::V2,
            id: who.id(),
            kind: if who == Who::P {
                OwnerKind::Patient
            } else {
                OwnerKind::Hcp
            },
            parent: (who == Who::P).then_some(Who::A.id()),
            bundles: vec![self.keys(who).bundle().unwrap()],
        }
    }
}

/// A valid entity type.
pub fn ty(name: &str) -> EntityType {
    EntityType::new(name).unwrap()
}

/// The manifest of the `Note` documents of these tests: `diagnosis` and `note` are sealed, `title` is public.
pub fn manifest() -> EncryptionManifest {
    EncryptionManifest::new(["diagnosis", "note"]).unwrap()
}

/// A note document with a public title and two sensitive fields.
pub fn document(title: &str, diagnosis: &str, note: &str) -> Map<String, Value> {
    match json!({"title": title, "diagnosis": diagnosis, "note": note}) {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

/// What to create.
pub struct Spec<'a> {
    /// The entity type.
    pub entity_type: EntityType,
    /// The document.
    pub document: Map<String, Value>,
    /// Secret ids of the new entity.
    pub secret_ids: Vec<(SecretId, SecretIdScope)>,
    /// Links to parents.
    pub parents: Vec<ParentLink>,
    /// Visibility of the root delegation.
    pub root_visibility: Visibility,
    /// Auto-delegations.
    pub autos: Vec<DelegationTarget<'a>>,
}

impl Spec<'_> {
    /// A `Note` with a marker-free document, an explicit root and nothing else.
    pub fn note() -> Self {
        Self {
            entity_type: ty("Note"),
            document: document("a note", "flu", "rest and fluids"),
            secret_ids: vec![],
            parents: vec![],
            root_visibility: Visibility::Explicit,
            autos: vec![],
        }
    }
}

/// `creator` creates (client-side) an entity as `spec` says, with a fresh id.
pub fn create_as(creator: Who, spec: Spec<'_>) -> (EncryptedEntity, DecryptedEntity) {
    let w = world();
    create(
        NewEntity {
            id: EntityId::generate().unwrap(),
            entity_type: spec.entity_type,
            document: spec.document,
            manifest: &manifest(),
            secret_ids: spec.secret_ids,
            parents: spec.parents,
        },
        w.target(creator, creator, spec.root_visibility, Permission::Write),
        &spec.autos,
        w.keys(creator),
    )
    .unwrap()
}

/// A new version of `stored` that `writer` (holding write access, `opened` its keys) writes with `change` applied
/// to a copy: the content version one up and signed by the writer, as protocol v2 asks of every update.
pub fn revised(
    writer: Who,
    stored: &EncryptedEntity,
    opened: &EntityKeys,
    change: impl FnOnce(&mut EncryptedEntity),
) -> EncryptedEntity {
    revise(stored, opened, world().keys(writer), |entity| {
        change(entity);
        Ok(())
    })
    .unwrap()
}

/// The share entries by which `sharer` (`opened` its keys of `stored`) shares `stored` with `targets`, signed by
/// the sharer.
pub fn shared(
    sharer: Who,
    stored: &EncryptedEntity,
    opened: &EntityKeys,
    targets: &[DelegationTarget<'_>],
) -> Vec<ShareEntry> {
    share(stored, opened, targets, world().keys(sharer)).unwrap()
}

/// `creator` creates (client-side) a `Note` with only its root delegation.
pub fn note(creator: Who) -> (EncryptedEntity, DecryptedEntity) {
    create_as(creator, Spec::note())
}

/// A server on `127.0.0.1:0` and its address.
pub struct TestServer {
    server: Server,
    /// `http://127.0.0.1:port`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl TestServer {
    /// A server over a fresh in-memory store with default limits.
    pub async fn memory() -> Self {
        Self::start(Arc::new(MemoryStore::new()), |_| {}).await
    }

    /// A server over `store`, its configuration adjusted by `configure`.
    pub async fn start(store: Arc<dyn Store>, configure: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), ADMIN);
        configure(&mut config);
        let server = Server::start(config, store).await.unwrap();
        let addr = server.local_addr();
        Self {
            server,
            base: format!("http://{addr}"),
            addr,
        }
    }

    /// A client without a session, speaking bincode.
    pub fn client(&self) -> Client {
        Client::new(self.base.clone())
    }

    /// A client without a session, speaking `format`.
    pub fn client_in(&self, format: Format) -> Client {
        Client::new(self.base.clone()).with_format(format)
    }

    /// A bincode client logged in as `who`.
    pub async fn login(&self, who: Who) -> Client {
        self.login_in(who, Format::Bincode).await
    }

    /// A client logged in as `who`, speaking `format`.
    pub async fn login_in(&self, who: Who, format: Format) -> Client {
        let mut client = self.client_in(format);
        client.login(world().keys(who)).await.unwrap();
        client
    }

    /// A client logged in as `who` that registered its access-control keys for `entity_type` in the session.
    pub async fn login_with_keys(&self, who: Who, entity_type: &EntityType) -> Client {
        let client = self.login(who).await;
        client
            .register_access_keys(&world().access_keys(who, entity_type))
            .await
            .unwrap();
        client
    }

    /// Registers A, B and C with the administrator token and P through A, then delivers the exchange data of every
    /// pair of two owners to its delegate's inbox, sealed for the delegate's bundle (each delegator delivers its own).
    pub async fn register_world(&self) {
        let w = world();
        let anonymous = self.client();
        for who in [Who::A, Who::B, Who::C] {
            let written = anonymous
                .register_owner_as_admin(ADMIN, &w.owner_record(who))
                .await
                .unwrap();
            assert_eq!(written.rev, 1);
        }
        let a = self.login(Who::A).await;
        assert_eq!(
            a.register_owner(&w.owner_record(Who::P)).await.unwrap().rev,
            1
        );
        for from in Who::ALL {
            let client = self.login(from).await;
            for to in Who::ALL.into_iter().filter(|to| *to != from) {
                let message = InboxMessage::seal(w.data(from, to), w.bundle(to)).unwrap();
                client.deliver(to.id(), &message).await.unwrap();
            }
        }
    }

    /// Stops the server (graceful shutdown).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// An answer to a raw request.
#[derive(Debug)]
pub struct RawAnswer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: hyper::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl RawAnswer {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends a request the typed client cannot make (malformed bodies, odd headers) and reads the whole answer.
/// Returns `Err` with the transport error if the server closed the connection without answering.
pub async fn raw(
    base: &str,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<RawAnswer, String> {
    let client: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build_http();
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    let request = builder.body(Full::new(Bytes::from(body))).unwrap();
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes()
        .to_vec();
    Ok(RawAnswer {
        status,
        headers,
        body,
    })
}

/// `GET path` with a bearer token and no body.
pub async fn get_with_token(base: &str, path: &str, token: &str) -> RawAnswer {
    raw(base, Method::GET, path, &[bearer(token)], vec![])
        .await
        .unwrap()
}

/// The `Authorization` header of a client session token.
pub fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The HTTP status of a failed client call.
#[track_caller]
pub fn status<T: std::fmt::Debug>(result: tessera_client::Result<T>) -> u16 {
    match result {
        Err(error) => error
            .status()
            .unwrap_or_else(|| panic!("expected an HTTP error status, got {error:?}")),
        Ok(value) => panic!("expected an error status, got Ok({value:?})"),
    }
}

/// The HTTP status and the machine-readable code of a failed client call.
#[track_caller]
pub fn status_code<T: std::fmt::Debug>(result: tessera_client::Result<T>) -> (u16, String) {
    match result {
        Err(tessera_client::Error::Status { status, code, .. }) => (status, code.to_string()),
        other => panic!("expected an HTTP error status, got {other:?}"),
    }
}
