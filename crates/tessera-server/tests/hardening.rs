//! Hostile clients without a session (issue 16): a flood of login challenges, many large unauthenticated bodies,
//! half-sent headers, idle keep-alive connections and a connection flood, each against a real server on loopback
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// A raw connection to the server.
async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.unwrap()
}

/// Sends `request` on a new connection and reads until the server closes it (every request here says
/// `connection: close`, or goes where the server turns keep-alive off); the answer as text.
async fn exchange(server: &TestServer, request: &[u8]) -> String {
    let mut stream = connect(server).await;
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream).await
}

/// Everything the server sends until it closes the connection (10 s at most, else the test fails).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await {
        Ok(Ok(_)) => {}
        // A reset after the answer (the server closed with unread bytes) ends the answer too.
        Ok(Err(error)) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(error)) => panic!("reading the answer failed: {error}"),
        Err(_) => panic!("the server kept the connection open for 10 s"),
    }
    String::from_utf8_lossy(&answer).into_owned()
}

/// The head of a `POST path` of `len` body bytes.
fn post_head(server: &TestServer, path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n",
        server.addr
    )
}

/// A login of `len` junk bytes (only its size matters to the budget), its body sent only if the server has not
/// answered its head within 300 ms: a refusal comes before the body is read, and a body sent to a server that
/// closes without reading it could reset the connection and lose the answer.
async fn junk_login(server: &TestServer, len: usize) -> String {
    let mut stream = connect(server).await;
    stream
        .write_all(post_head(server, "/v1/auth/login", len).as_bytes())
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    if let Ok(read) =
        tokio::time::timeout(Duration::from_millis(300), stream.read(&mut first)).await
    {
        let read = read.unwrap();
        let rest = read_until_closed(&mut stream).await;
        return format!("{}{rest}", String::from_utf8_lossy(&first[..read]));
    }
    stream.write_all(&vec![b'x'; len]).await.unwrap();
    read_until_closed(&mut stream).await
}

const HEALTH: &str = "GET /v1/health HTTP/1.1\r\nhost: tessera\r\nconnection: close\r\n\r\n";

/// Bodies sent before authentication are small (16 KiB) and share a budget (here 4 such bodies): clients that
/// send large bodies slowly hold at most the budget, further large ones are refused with 503 `busy` before a byte
/// of their body is read, and the health check and a legitimate login (a small body) still succeed. The memory
/// held for unauthenticated bodies is bounded by `max_unauthenticated_bytes` plus 2 KiB per connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_are_bounded() {
    const BODY: usize = 16 << 10;
    let server = server_with_a(|config| {
        config.limits.max_unauthenticated_body_bytes = BODY;
        config.limits.max_unauthenticated_bytes = 4 * BODY;
    })
    .await;
    // Over the per-request limit: 413 from the declared length, whatever the budget.
    let answer = exchange(
        &server,
        post_head(&server, "/v1/auth/login", BODY + 1).as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");
    // Three slow senders of full-size bodies, each holding a quarter of the budget; one more still fits.
    let mut holders = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(&server).await;
        stream
            .write_all(post_head(&server, "/v1/auth/login", BODY).as_bytes())
            .await
            .unwrap();
        stream.write_all(&[b'x'; 100]).await.unwrap();
        holders.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let answer = junk_login(&server, BODY).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "admitted and read: {answer}"
    );
    // A fourth holder spends the budget: a large body is now refused, at once.
    let mut stream = connect(&server).await;
    stream
        .write_all(post_head(&server, "/v1/auth/login", BODY).as_bytes())
        .await
        .unwrap();
    holders.push(stream);
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let answer = junk_login(&server, BODY).await;
            if answer.starts_with("HTTP/1.1 503") {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a large body is refused once the budget is spent");
    assert!(refused.contains("\"busy\""), "{refused}");
    assert!(refused.contains("application/json"), "{refused}");
    for _ in 0..20 {
        let answer = junk_login(&server, BODY).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    }
    // Meanwhile the health check answers and A logs in (its body is small).
    assert!(
        exchange(&server, HEALTH.as_bytes())
            .await
            .starts_with("HTTP/1.1 200")
    );
    log_in_a(&server).await;
    // The senders give up: the budget is free again.
    drop(holders);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !junk_login(&server, BODY).await.starts_with("HTTP/1.1 400") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the budget is released when the senders go");
    server.shutdown().await;
}

/// A client that sends half its headers and stops is disconnected after the header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_header_is_closed() {
    let server = server_with_a(|config| {
        config.limits.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"POST /v1/auth/challenge HTTP/1.1\r\nhost: tessera\r\ncontent-ty")
        .await
        .unwrap();
    // Closed within the test's 10 s (the default timeout would not be reached), without an answer to a request
    // that never arrived, or with a 408.
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        exchange(&server, HEALTH.as_bytes())
            .await
            .starts_with("HTTP/1.1 200")
    );
    server.shutdown().await;
}

/// A kept-alive connection with no request in progress is closed after the idle timeout; one in use is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = server_with_a(|config| {
        config.limits.idle_timeout = Duration::from_millis(500);
        config.limits.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut stream = connect(&server).await;
    // Two requests on the one connection, the second after a pause shorter than the idle timeout.
    for _ in 0..2 {
        stream
            .write_all(b"GET /v1/health HTTP/1.1\r\nhost: tessera\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 512];
        let read = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "one whole answer: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Then silence: the server closes the connection by itself.
    assert_eq!(read_until_closed(&mut stream).await, "");
    // A silent connection that never sent a byte is closed too.
    let mut silent = connect(&server).await;
    assert_eq!(read_until_closed(&mut silent).await, "");
    server.shutdown().await;
}

/// At the connection limit, held connections do not silence the server: a few more connections are accepted to
/// answer the health check (and 503 `busy` to anything else), beyond those new connections are closed at once,
/// and once the held connections go, requests are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_limit_degrades_gracefully() {
    const LIMIT: usize = 8;
    // Beyond the limit, max(LIMIT / 16, 8) connections answer the health check.
    const OVERFLOW: usize = 8;
    let server = server_with_a(|config| {
        config.limits.max_connections = LIMIT;
        config.limits.idle_timeout = Duration::from_secs(60);
        config.limits.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(connect(&server).await);
    }
    // The accept loop takes connections in order: the next ones are beyond the limit.
    let answer = exchange(&server, HEALTH.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = Format::Json
        .encode(&ChallengeRequest { owner: A.id() })
        .unwrap();
    let mut request = post_head(&server, "/v1/auth/challenge", body.len()).into_bytes();
    request.extend_from_slice(&body);
    let answer = exchange(&server, &request).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"busy\""), "{answer}");
    // Hold the overflow connections too: the next one is closed without an answer.
    for _ in 0..OVERFLOW {
        held.push(connect(&server).await);
    }
    let answer = exchange(&server, HEALTH.as_bytes()).await;
    assert_eq!(answer, "", "closed at once beyond the overflow");
    // The held connections go: everything is served again, and A logs in.
    drop(held);
    tokio::time::timeout(Duration::from_secs(10), async {
        while !exchange(&server, &request)
            .await
            .starts_with("HTTP/1.1 200")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("served again once the held connections are closed");
    log_in_a(&server).await;
    server.shutdown().await;
}

/// The standalone binary refuses a missing or guessable administrator token before it opens anything.
#[test]
fn the_server_binary_refuses_a_short_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera-server"))
        .arg("127.0.0.1:0")
        .arg(dir.path().join("data"))
        .env("TESSERA_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("TESSERA_ADMIN_TOKEN is 5 characters long")
            && stderr.contains("at least 16"),
        "{stderr}"
    );
    assert!(!dir.path().join("data").exists(), "nothing was created");
}
