//! Login is bound to the server's name (protocol v2): a login relayed through another address is refused, a
//! direct one accepted; configured public URLs are names too; a server without a name of its own trusts `Host`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{ADMIN, RawAnswer, TestServer, Who, raw, world};
use hyper::Method;
use tessera_client::{Client, Error};
use tessera_server::{Server, ServerConfig};
use tessera_store::MemoryStore;
use tessera_wire::{Challenge, ChallengeRequest, ErrorCode, Format, LoginRequest, Session};
use tokio::net::{TcpListener, TcpStream};

use Who::A;

/// A byte-forwarding TCP proxy to `target` on a port of its own (what a malicious server relaying another's
/// challenge amounts to); returns its address.
async fn proxy(target: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    addr
}

/// A server on `127.0.0.1:0` where A is registered, configured by `configure`.
async fn server_with_a(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let server = TestServer::start(Arc::new(MemoryStore::new()), configure).await;
    register_a(&server.base).await;
    server
}

async fn register_a(base: &str) {
    Client::new(base)
        .register_owner_as_admin(ADMIN, &world().owner_record(A))
        .await
        .unwrap();
}

/// A challenge for A from the server at `base`, asked in JSON.
async fn challenge(base: &str) -> [u8; 32] {
    let body = Format::Json
        .encode(&ChallengeRequest { owner: A.id() })
        .unwrap();
    let answer = post_json(base, "/v1/auth/challenge", body).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let challenge: Challenge = Format::Json.decode(&answer.body, 1 << 10).unwrap();
    challenge.challenge
}

/// A's login answer to `challenge`, signed for `signed_for` and claiming `claimed`.
fn login_request(challenge: [u8; 32], signed_for: &str, claimed: &str) -> Vec<u8> {
    let keys = world().keys(A);
    Format::Json
        .encode(&LoginRequest {
            owner: A.id(),
            challenge,
            fingerprint: keys.fingerprint(),
            server: claimed.to_owned(),
            signature: keys.sign_login_challenge(signed_for, &challenge).unwrap(),
        })
        .unwrap()
}

async fn post_json(base: &str, path: &str, body: Vec<u8>) -> RawAnswer {
    raw(
        base,
        Method::POST,
        path,
        &[("content-type", "application/json".into())],
        body,
    )
    .await
    .unwrap()
}

/// The status, code and message of a refused client call.
#[track_caller]
fn refusal<T: std::fmt::Debug>(result: tessera_client::Result<T>) -> (u16, ErrorCode, String) {
    match result {
        Err(Error::Status {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an error status, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_login_is_refused_and_a_direct_one_accepted() {
    let server = server_with_a(|_| {}).await;
    let relay = proxy(server.addr).await;
    let relayed_base = format!("http://{relay}");

    // The relay forwards bytes faithfully: other requests go through.
    let mut relayed = Client::new(relayed_base.clone());
    relayed.health().await.unwrap();
    // A login through it is signed for the relay's name, which the server does not have: refused, with a
    // message saying which name to use, and not naming the owner.
    let (status, code, message) = refusal(relayed.login(world().keys(A)).await);
    assert_eq!((status, code), (401, ErrorCode::Unauthorized), "{message}");
    assert!(message.contains(&format!("http://{relay}")), "{message}");
    assert!(message.contains(&server.base), "{message}");
    assert!(message.contains("scheme://host:port"), "{message}");
    assert!(!message.contains(&A.id().to_string()), "{message}");

    // Directly, and by the loopback's name: accepted.
    let mut direct = Client::new(server.base.clone());
    direct.login(world().keys(A)).await.unwrap();
    let mut by_name = Client::new(format!("http://localhost:{}/", server.addr.port()));
    by_name.login(world().keys(A)).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_cannot_rename_the_login_it_forwards() {
    let server = server_with_a(|_| {}).await;
    let relay = proxy(server.addr).await;
    let own = tessera_wire::server_name(&server.base).unwrap();
    let relay_name = tessera_wire::server_name(&format!("http://{relay}")).unwrap();

    // The client signed for the relay; the relay claims the server's own name: the signature does not verify.
    let first = challenge(&server.base).await;
    let answer = post_json(
        &server.base,
        "/v1/auth/login",
        login_request(first, &relay_name, &own),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    // Signed and claimed for the server's own name: accepted.
    let second = challenge(&server.base).await;
    let answer = post_json(
        &server.base,
        "/v1/auth/login",
        login_request(second, &own, &own),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let _: Session = Format::Json.decode(&answer.body, 1 << 10).unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_public_url_is_a_name_of_the_server() {
    let server = server_with_a(|config| {
        config.public_urls.push("https://Records.Example/".into());
    })
    .await;
    // A client whose base URL is https://records.example signs this name (it cannot reach the test server by
    // it, so the request is sent directly).
    let name = tessera_wire::server_name("https://records.example").unwrap();
    assert_eq!(name, "https://records.example:443");
    let answer = post_json(
        &server.base,
        "/v1/auth/login",
        login_request(challenge(&server.base).await, &name, &name),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // Another port or scheme of that host is another name.
    let other = "https://records.example:8443";
    let answer = post_json(
        &server.base,
        "/v1/auth/login",
        login_request(challenge(&server.base).await, other, other),
    )
    .await;
    assert_eq!(answer.status, 401, "{}", answer.text());
    assert!(answer.text().contains("https://records.example:443"));
    // The listening address stays a name.
    Client::new(server.base.clone())
        .login(world().keys(A))
        .await
        .unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unspecified_address_trusts_host_unless_a_public_url_is_given() {
    // No name of its own: the Host header the client sent names the server.
    let config = ServerConfig::new("0.0.0.0:0".parse().unwrap(), ADMIN);
    let server = Server::start(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", server.local_addr().port());
    register_a(&base).await;
    Client::new(base.clone())
        .login(world().keys(A))
        .await
        .unwrap();
    server.shutdown().await;

    // With a public URL, only that name is accepted.
    let config = ServerConfig::new("0.0.0.0:0".parse().unwrap(), ADMIN)
        .with_public_url("https://records.example");
    let server = Server::start(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", server.local_addr().port());
    register_a(&base).await;
    let (status, _, message) = refusal(Client::new(base).login(world().keys(A)).await);
    assert_eq!(status, 401, "{message}");
    assert!(message.contains("https://records.example:443"), "{message}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_public_url_that_is_not_one_is_refused_at_start() {
    let config =
        ServerConfig::new("127.0.0.1:0".parse().unwrap(), ADMIN).with_public_url("records.example");
    let error = Server::start(config, Arc::new(MemoryStore::new()))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("give one like"), "{error}");
}
