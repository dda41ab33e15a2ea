//! The client against hostile responders (a raw TCP listener that answers what it likes): an answer announced
//! larger than the limit, an endless chunked answer, an endless error body, and an oversized login challenge all
//! fail with a clear error, without the client holding more than its limit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera_client::{Client, DEFAULT_MAX_ANSWER_BYTES, Error};
use tessera_keys::{OwnerId, OwnerKeys};
use tessera_sharing::{AttachmentId, EntityId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the hostile responder answers every request with.
#[derive(Clone, Copy)]
enum Hostile {
    /// A `Content-Length` of 1 TB, a few bytes, then silence.
    HugeLength,
    /// A chunked 200 that never ends.
    EndlessChunked,
    /// A chunked 500 that never ends.
    EndlessError,
    /// A complete 200 of exactly `n` bytes.
    Exactly(usize),
}

/// Starts the responder; returns its address and a counter of the body bytes it managed to send.
async fn hostile(mode: Hostile) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, mode, Arc::clone(&counter)));
        }
    });
    (addr, sent)
}

async fn answer(mut stream: TcpStream, mode: Hostile, sent: Arc<AtomicU64>) {
    // Read the request's head (and whatever of the body came with it).
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let piece = vec![0x41u8; 64 << 10];
    match mode {
        Hostile::HugeLength => {
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/x-bincode\r\n\
                        content-length: 1000000000000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            if stream.write_all(&piece[..16]).await.is_ok() {
                sent.fetch_add(16, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Hostile::EndlessChunked | Hostile::EndlessError => {
            let status = match mode {
                Hostile::EndlessError => "500 Internal Server Error",
                _ => "200 OK",
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            );
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let mut chunk = format!("{:x}\r\n", piece.len()).into_bytes();
            chunk.extend_from_slice(&piece);
            chunk.extend_from_slice(b"\r\n");
            while stream.write_all(&chunk).await.is_ok() {
                sent.fetch_add(piece.len() as u64, Ordering::Relaxed);
            }
        }
        Hostile::Exactly(n) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-bincode\r\ncontent-length: {n}\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&vec![0u8; n]).await;
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// Runs `call` with a deadline: a client that waited for the whole body would hang here.
async fn within<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the client kept reading")
}

#[track_caller]
fn too_large<T: std::fmt::Debug>(result: tessera_client::Result<T>, expected: usize) {
    match result {
        Err(error @ Error::AnswerTooLarge { limit }) => {
            assert_eq!(limit, expected);
            let message = error.to_string();
            assert!(
                message.contains(&format!("the server's answer exceeds {expected} bytes")),
                "{message}"
            );
            assert!(message.contains("with_max_answer_bytes"), "{message}");
        }
        other => panic!("expected AnswerTooLarge, got {other:?}"),
    }
}

/// Owner keys derived from the fixture RSA key (no key generation in the test).
fn keys() -> OwnerKeys {
    OwnerKeys::derive(
        OwnerId::generate().unwrap(),
        tessera_keys::test_utils::fixture_rsa("rsa2048.pem").unwrap(),
        1_700_000_000,
    )
    .unwrap()
}

#[tokio::test]
async fn an_announced_length_above_the_limit_is_refused_unread() {
    let (addr, _) = hostile(Hostile::HugeLength).await;
    let client = Client::new(format!("http://{addr}"));
    let owner = OwnerId::generate().unwrap();
    too_large(within(client.owner(owner)).await, DEFAULT_MAX_ANSWER_BYTES);
}

#[tokio::test]
async fn an_endless_answer_stops_at_the_limit() {
    let (addr, sent) = hostile(Hostile::EndlessChunked).await;
    let limit = 1 << 20;
    let client = Client::new(format!("http://{addr}")).with_max_answer_bytes(limit);
    too_large(within(client.key_bag()).await, limit);
    // Whole-attachment downloads are bounded the same way.
    let (entity, attachment) = (
        EntityId::generate().unwrap(),
        AttachmentId::generate().unwrap(),
    );
    too_large(
        within(client.attachment(entity, attachment, None)).await,
        limit,
    );
    // The responder sent little more than the limit and what the socket buffers hold before the client hung up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent < 64 << 20, "{sent} bytes were sent");
}

#[tokio::test]
async fn an_endless_error_body_is_cut() {
    let (addr, _) = hostile(Hostile::EndlessError).await;
    let client = Client::new(format!("http://{addr}"));
    match within(client.key_bag()).await {
        Err(Error::Status {
            status, message, ..
        }) => {
            assert_eq!(status, 500);
            assert!(message.contains("not read"), "{message}");
        }
        other => panic!("expected a status, got {other:?}"),
    }
}

#[tokio::test]
async fn answers_of_a_known_small_size_have_a_small_cap() {
    // 1 MiB is under the client's limit but far above what a health check or a challenge needs.
    let (addr, _) = hostile(Hostile::Exactly(1 << 20)).await;
    let client = Client::new(format!("http://{addr}"));
    too_large(within(client.health()).await, 64 << 10);
    let mut client = Client::new(format!("http://{addr}"));
    too_large(within(client.login(&keys())).await, 64 << 10);
    // A client limit below the cap wins.
    let client = Client::new(format!("http://{addr}")).with_max_answer_bytes(1000);
    too_large(within(client.health()).await, 1000);
}

#[tokio::test]
async fn a_login_needs_a_base_url_with_a_host() {
    let mut client = Client::new("ftp://records.example");
    match client.login(&keys()).await {
        Err(Error::Request(message)) => assert!(message.contains("give one like"), "{message}"),
        other => panic!("expected a request error, got {other:?}"),
    }
}
