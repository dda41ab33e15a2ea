//! Hostile clients without a session (issue 16): a flood of login challenges against a real server on loopback
//! while a legitimate owner keeps logging in.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{ADMIN, TestServer, Who, world};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tessera_keys::OwnerId;
use tessera_server::ServerConfig;
use tessera_store::MemoryStore;
use tessera_wire::{ChallengeRequest, Format};

use Who::A;

/// A pooled HTTP/1.1 client that keeps its connections (the typed client would, too; a new connection per
/// request would measure the kernel, not the server).
type Pooled = HyperClient<HttpConnector, Full<Bytes>>;

fn pooled() -> Pooled {
    HyperClient::builder(TokioExecutor::new()).build_http()
}

/// Sends `body` to `path` and returns the status and the body.
async fn post(client: &Pooled, base: &str, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body.to_vec())
}

/// A server on loopback with A registered, its configuration adjusted by `configure`.
async fn server_with_a(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let server = TestServer::start(Arc::new(MemoryStore::new()), configure).await;
    server
        .client()
        .register_owner_as_admin(ADMIN, &world().owner_record(A))
        .await
        .unwrap();
    server
}

/// Logs A in through the typed client; panics with the error if the login fails.
async fn log_in_a(server: &TestServer) {
    let mut client = server.client();
    client
        .login(world().keys(A))
        .await
        .unwrap_or_else(|error| panic!("A's login failed: {error}"));
}

/// More challenge requests than the 65,536 pending challenges the server used to hold (after which every login
/// answered 429 for a minute), half of them for A itself, the rest for random owners; A logs in during the flood
/// and after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_flood_does_not_lock_out_a_login() {
    const FLOOD: usize = 70_000;
    const FLOODERS: usize = 16;
    let server = server_with_a(|_| {}).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let flood = async {
        let client = pooled();
        let tasks: Vec<_> = (0..FLOODERS)
            .map(|flooder| {
                let (client, base) = (client.clone(), server.base.clone());
                let (sent, refused) = (Arc::clone(&sent), Arc::clone(&refused));
                tokio::spawn(async move {
                    for index in 0..FLOOD / FLOODERS {
                        let owner = if (flooder + index) % 2 == 0 {
                            A.id()
                        } else {
                            OwnerId::generate().unwrap()
                        };
                        let body = Format::Json.encode(&ChallengeRequest { owner }).unwrap();
                        let (status, _) = post(&client, &base, "/v1/auth/challenge", body).await;
                        if status != 200 {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    };
    let logins_during = async {
        // Logs in while the flood runs, until it has sent most of its requests.
        let mut logins = 0;
        while sent.load(Ordering::Relaxed) < FLOOD * 9 / 10 {
            log_in_a(&server).await;
            logins += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        logins
    };
    let ((), logins) = tokio::time::timeout(Duration::from_secs(300), async {
        tokio::join!(flood, logins_during)
    })
    .await
    .expect("the flood did not finish within 300 s");
    assert_eq!(sent.load(Ordering::Relaxed), FLOOD / FLOODERS * FLOODERS);
    assert_eq!(
        refused.load(Ordering::Relaxed),
        0,
        "challenges are stateless: none is ever refused"
    );
    assert!(logins >= 1, "A logged in during the flood");
    // Right after the flood, when the old table would have been full for a minute.
    log_in_a(&server).await;
    server.shutdown().await;
}
