//! Attachments streamed in and out of a real server over redb: a stream of several MiB goes in and comes back byte
//! for byte (whole, from a reader, and by segment); an upload over the limit (413), of the wrong length (400), cut
//! off by its client, or racing another upload of the same attachment (409) leaves the previous content readable
//! and nothing staged; a download whose attachment is replaced half way is cut short rather than mixed; a download
//! read through an `AsyncRead` comes back byte for byte, and an unknown attachment is a 404 before any byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::{TestServer, Who, get_with_token, note, revised, status, status_code, ty, world};
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use tessera_client::Client;
use tessera_primitives::stream::{ENCRYPTED_SEGMENT_LEN, HEADER_LEN, SEGMENT_LEN};
use tessera_sharing::attachment::{attachment_opener, open_attachment, seal_attachment};
use tessera_sharing::{AttachmentId, AttachmentRef, DecryptedEntity, EncryptedEntity, EntityId};
use tessera_store::{RedbStore, Store};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use Who::A;

/// Content that differs from one byte and one segment to the next.
fn content(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + i / SEGMENT_LEN + seed) % 251).unwrap())
        .collect()
}

/// A server over a fresh redb file with `max_attachment_bytes` as given, the store, and A logged in with its keys.
async fn server(
    max_attachment_bytes: usize,
) -> (TestServer, Arc<RedbStore>, Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("tessera.redb")).unwrap());
    let server = TestServer::start(Arc::clone(&store) as Arc<dyn Store>, |config| {
        config.limits.max_attachment_bytes = max_attachment_bytes;
    })
    .await;
    server.register_world().await;
    let a = server.login_with_keys(A, &ty("Note")).await;
    (server, store, a, dir)
}

/// A note of A's with an attachment sealed from each of `contents` referenced (not uploaded), as stored; with the
/// opened note and the references with their sealed streams.
async fn note_with(
    a: &Client,
    contents: &[&[u8]],
) -> (
    EncryptedEntity,
    DecryptedEntity,
    Vec<(AttachmentRef, Vec<u8>)>,
) {
    let (entity, opened) = note(A);
    let sealed: Vec<_> = contents
        .iter()
        .map(|content| seal_attachment(&opened, content).unwrap())
        .collect();
    // The references are part of the signed version (protocol v2): the creator creates the entity, then writes
    // them in its next version.
    a.create_entity(&entity).await.unwrap();
    let with_refs = revised(A, &a.entity(entity.id).await.unwrap(), &opened, |e| {
        e.attachments
            .extend(sealed.iter().map(|(reference, _)| reference.clone()));
    });
    a.update_entity(&with_refs, 1).await.unwrap();
    (a.entity(entity.id).await.unwrap(), opened, sealed)
}

/// The path of an attachment.
fn path(entity: EntityId, attachment: AttachmentId) -> String {
    format!("/v1/entities/{entity}/attachments/{attachment}")
}

/// A session token of A's with A's access keys registered in it, for raw requests.
async fn token(server: &TestServer) -> String {
    let mut client = server.client();
    let session = client.login(world().keys(A)).await.unwrap();
    client
        .register_access_keys(&world().access_keys(A, &ty("Note")))
        .await
        .unwrap();
    session.token.expose_secret().to_owned()
}

/// A request body without a declared length (so sent chunked), fed piece by piece through a channel; it ends when
/// the sender is dropped.
struct Fed(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Fed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|piece| piece.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// The status and body of an answer, or the transport error.
type Answer = tokio::task::JoinHandle<Result<(u16, String), String>>;

/// Starts a PUT of a fed body to `path`; returns the sender that feeds it and the task that answers.
fn put_fed(base: &str, token: &str, path: &str) -> (mpsc::Sender<Bytes>, Answer) {
    let (sender, receiver) = mpsc::channel(4);
    let request = Request::builder()
        .method(Method::PUT)
        .uri(format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Fed(receiver))
        .unwrap();
    let task = tokio::spawn(async move {
        let client: HyperClient<_, Fed> = HyperClient::builder(TokioExecutor::new()).build_http();
        let response = client
            .request(request)
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{e:?}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    });
    (sender, task)
}

/// Feeds `bytes` in pieces of `piece` bytes.
async fn feed(sender: &mpsc::Sender<Bytes>, bytes: &[u8], piece: usize) {
    for part in bytes.chunks(piece) {
        if sender.send(Bytes::copy_from_slice(part)).await.is_err() {
            // The server answered early and the request is gone.
            return;
        }
    }
}

/// Waits until no upload of the attachment is in progress (the previous one has discarded what it staged), with a
/// chunked empty body that the server refuses (400) once it may take the upload, then checks that nothing is
/// staged: finishing an upload of just the header must find no header chunk.
async fn assert_nothing_staged(
    server: &TestServer,
    store: &RedbStore,
    token: &str,
    entity: EntityId,
    attachment: AttachmentId,
) {
    for _ in 0..200 {
        let (sender, task) = put_fed(&server.base, token, &path(entity, attachment));
        drop(sender);
        let (answered, body) = task.await.unwrap().unwrap();
        if answered == 400 {
            assert!(body.contains("length differs"), "{body}");
            assert!(matches!(
                store.finish_attachment(entity, attachment, HEADER_LEN as u64),
                Err(tessera_store::Error::Invalid(_))
            ));
            return;
        }
        assert_eq!(answered, 409, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upload was never released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_attachment_streams_in_and_out_byte_for_byte() {
    let (server, store, a, _dir) = server(64 << 20).await;
    let data = content(8 * (1 << 20) + 12_345, 0);
    let (entity, opened, mut sealed) = note_with(&a, &[&data]).await;
    let (reference, stream) = sealed.pop().unwrap();
    assert!(stream.len() >= 8 << 20);
    let (id, aid) = (entity.id, reference.id);

    // Whole, from a buffer.
    a.put_attachment(id, aid, stream.clone()).await.unwrap();
    let whole = a.attachment(id, aid, None).await.unwrap();
    assert_eq!(whole.len(), stream.len());
    assert!(whole == stream, "the download differs from the upload");
    let read = tessera_sharing::decrypt(&entity, &world().access(A)).unwrap();
    assert_eq!(open_attachment(&read, &reference, &whole).unwrap(), data);
    assert_eq!(
        store
            .read_attachment(id, aid, 0..u64::MAX)
            .unwrap()
            .unwrap(),
        stream
    );

    // The streamed answer announces its length.
    let token = token(&server).await;
    let answer = get_with_token(&server.base, &path(id, aid), &token).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.headers["content-length"].to_str().unwrap(),
        stream.len().to_string()
    );
    assert_eq!(
        answer.headers["content-type"].to_str().unwrap(),
        "application/octet-stream"
    );
    assert!(answer.body == stream);

    // A segment in the middle, by range, opens alone.
    let (opener, layout) = attachment_opener(&read, &reference, &whole[..HEADER_LEN]).unwrap();
    let index = layout.segments() / 2;
    let range = layout.segment_range(index).unwrap();
    let segment = a.attachment(id, aid, Some(range.clone())).await.unwrap();
    assert_eq!(segment.len(), ENCRYPTED_SEGMENT_LEN);
    let start = index as usize * SEGMENT_LEN;
    assert_eq!(
        opener.open_segment(index, &segment, false).unwrap(),
        data[start..start + SEGMENT_LEN]
    );

    // Again from a reader, in pieces that do not follow the segments: the same bytes come back.
    let other = content(9 * (1 << 20) + 1, 7);
    let (second, second_stream) = seal_attachment(&opened, &other).unwrap();
    let with_second = revised(A, &a.entity(id).await.unwrap(), &opened, |e| {
        e.attachments.push(second.clone());
    });
    a.update_entity(&with_second, with_second.rev)
        .await
        .unwrap();
    a.put_attachment_from(
        id,
        second.id,
        std::io::Cursor::new(second_stream.clone()),
        second_stream.len() as u64,
    )
    .await
    .unwrap();
    let back = a.attachment(id, second.id, None).await.unwrap();
    assert!(
        back == second_stream,
        "the download differs from the upload"
    );
    assert_eq!(open_attachment(&read, &second, &back).unwrap(), other);

    // Fed chunked, in odd pieces, to an attachment that had content: replaced whole.
    let (sender, task) = put_fed(&server.base, &token, &path(id, aid));
    let replacement = content(stream.len(), 3);
    feed(&sender, &replacement, 100_003).await;
    drop(sender);
    assert_eq!(task.await.unwrap().unwrap().0, 204);
    assert!(a.attachment(id, aid, None).await.unwrap() == replacement);
    // A reader shorter than it said fails on the client's side, and changes nothing.
    let cut = second_stream[..second_stream.len() - 10].to_vec();
    let result = a
        .put_attachment_from(
            id,
            second.id,
            std::io::Cursor::new(cut),
            second_stream.len() as u64,
        )
        .await;
    assert!(result.is_err(), "{result:?}");
    assert!(a.attachment(id, second.id, None).await.unwrap() == second_stream);
    assert_nothing_staged(&server, &store, &token, id, second.id).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_streams_through_an_attachment_reader_byte_for_byte() {
    let (server, _store, a, _dir) = server(64 << 20).await;
    let data = content((1 << 20) + 54_321, 11);
    let (entity, opened, mut sealed) = note_with(&a, &[&data]).await;
    let (reference, stream) = sealed.pop().unwrap();
    let (id, aid) = (entity.id, reference.id);
    a.put_attachment_from(
        id,
        aid,
        std::io::Cursor::new(stream.clone()),
        stream.len() as u64,
    )
    .await
    .unwrap();

    // Whole, read through a small buffer: many reads per piece of the answer.
    let mut reader = a.attachment_reader(id, aid, None).await.unwrap();
    assert_eq!(reader.len(), Some(stream.len() as u64));
    let mut back = Vec::new();
    let mut buffer = [0u8; 1000];
    loop {
        let n = reader.read(&mut buffer).await.unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buffer[..n]);
    }
    assert!(back == stream, "the download differs from the upload");
    assert_eq!(reader.read(&mut buffer).await.unwrap(), 0, "past the end");
    assert_eq!(open_attachment(&opened, &reference, &back).unwrap(), data);

    // A range across a segment boundary.
    let range =
        (HEADER_LEN + ENCRYPTED_SEGMENT_LEN - 100) as u64..(3 * ENCRYPTED_SEGMENT_LEN) as u64;
    let mut reader = a
        .attachment_reader(id, aid, Some(range.clone()))
        .await
        .unwrap();
    assert_eq!(reader.len(), Some(range.end - range.start));
    let mut part = Vec::new();
    reader.read_to_end(&mut part).await.unwrap();
    assert!(part[..] == stream[range.start as usize..range.end as usize]);

    // An attachment the entity does not have: the typed status, before any byte is read.
    let unknown = AttachmentId::generate().unwrap();
    assert_eq!(
        status_code(a.attachment_reader(id, unknown, None).await),
        (404, "not_found".to_owned())
    );
    // A range past the end: 416.
    let past = stream.len() as u64 + 10..stream.len() as u64 + 20;
    assert_eq!(status(a.attachment_reader(id, aid, Some(past)).await), 416);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_limit_is_413_and_keeps_the_previous_content() {
    let limit = 2 << 20;
    let (server, store, a, _dir) = server(limit).await;
    let token = token(&server).await;
    let small = content(100_000, 1);
    let (entity, opened, mut sealed) = note_with(&a, &[&small]).await;
    let (reference, previous) = sealed.pop().unwrap();
    let (id, aid) = (entity.id, reference.id);
    a.put_attachment(id, aid, previous.clone()).await.unwrap();

    // The entity now references a stream over the limit under the same attachment id.
    let (mut big, big_stream) = seal_attachment(&opened, &content(limit + 500_000, 2)).unwrap();
    big.id = aid;
    let updated = revised(A, &a.entity(id).await.unwrap(), &opened, |e| {
        e.attachments = vec![big.clone()];
    });
    a.update_entity(&updated, updated.rev).await.unwrap();
    let unchanged = || async {
        assert!(a.attachment(id, aid, None).await.unwrap() == previous);
        assert_eq!(
            store.attachment_len(id, aid).unwrap(),
            Some(previous.len() as u64)
        );
    };

    // Declared up front: refused before a byte is read.
    assert_eq!(
        status_code(a.put_attachment(id, aid, big_stream.clone()).await),
        (413, "payload_too_large".to_owned())
    );
    unchanged().await;
    let result = a
        .put_attachment_from(
            id,
            aid,
            std::io::Cursor::new(big_stream.clone()),
            big_stream.len() as u64,
        )
        .await;
    assert_eq!(status(result), 413);
    unchanged().await;

    // Undeclared (chunked): refused once the limit is crossed, after chunks were staged, which are discarded.
    let (sender, task) = put_fed(&server.base, &token, &path(id, aid));
    feed(&sender, &big_stream, 64 << 10).await;
    drop(sender);
    // The server reads and drops the rest of a refused body, so the client, still sending, gets the answer.
    let (answered, body) = task.await.unwrap().unwrap();
    assert_eq!(answered, 413, "{body}");
    unchanged().await;
    assert_nothing_staged(&server, &store, &token, id, aid).await;
    unchanged().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_of_the_wrong_length_is_400_and_changes_nothing() {
    let (server, store, a, _dir) = server(64 << 20).await;
    let token = token(&server).await;
    let data = content(3 << 20, 4);
    let (entity, _, mut sealed) = note_with(&a, &[&data]).await;
    let (reference, stream) = sealed.pop().unwrap();
    let (id, aid) = (entity.id, reference.id);
    a.put_attachment(id, aid, stream.clone()).await.unwrap();
    let replacement = content(stream.len(), 5);
    let unchanged = || async {
        assert!(a.attachment(id, aid, None).await.unwrap() == stream);
    };

    // Declared: one byte short, one byte long.
    for wrong in [
        &replacement[..replacement.len() - 1],
        &[&replacement[..], b"x"].concat()[..],
    ] {
        assert_eq!(status(a.put_attachment(id, aid, wrong.to_vec()).await), 400);
        unchanged().await;
    }
    // Undeclared: the whole body arrives and is staged, then found one byte short.
    let (sender, task) = put_fed(&server.base, &token, &path(id, aid));
    feed(&sender, &replacement[..replacement.len() - 1], 200_000).await;
    drop(sender);
    let (answered, body) = task.await.unwrap().unwrap();
    assert_eq!(answered, 400, "{body}");
    unchanged().await;
    assert_nothing_staged(&server, &store, &token, id, aid).await;
    // Undeclared and too long: refused as soon as the body passes the referenced length.
    let (sender, task) = put_fed(&server.base, &token, &path(id, aid));
    feed(&sender, &[&replacement[..], &[0; 1000]].concat(), 300_000).await;
    drop(sender);
    let (answered, body) = task.await.unwrap().unwrap();
    assert_eq!(answered, 400, "{body}");
    unchanged().await;
    assert_nothing_staged(&server, &store, &token, id, aid).await;
    // The right length still goes through.
    a.put_attachment(id, aid, replacement.clone())
        .await
        .unwrap();
    assert!(a.attachment(id, aid, None).await.unwrap() == replacement);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_of_one_attachment_run_one_at_a_time_and_abandoned_ones_leave_nothing() {
    let (server, store, a, _dir) = server(64 << 20).await;
    let token = token(&server).await;
    let data = content(2 << 20, 6);
    let (entity, _, mut sealed) = note_with(&a, &[&data]).await;
    let (reference, stream) = sealed.pop().unwrap();
    let (id, aid) = (entity.id, reference.id);
    a.put_attachment(id, aid, stream.clone()).await.unwrap();
    let replacement = content(stream.len(), 8);

    // A first upload, half sent; a second one meanwhile is refused with 409.
    let (sender, first) = put_fed(&server.base, &token, &path(id, aid));
    let half = replacement.len() / 2;
    feed(&sender, &replacement[..half], 65_536).await;
    // Once the server has taken the first upload, an empty chunked upload is refused with 409 (before that, with
    // 400 and no effect).
    let mut waited = 0;
    loop {
        let (probe, answer) = put_fed(&server.base, &token, &path(id, aid));
        drop(probe);
        let (answered, body) = answer.await.unwrap().unwrap();
        if answered == 409 {
            break;
        }
        assert_eq!(answered, 400, "{body}");
        waited += 1;
        assert!(waited < 500, "the first upload never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        status_code(a.put_attachment(id, aid, replacement.clone()).await),
        (409, "upload_in_progress".to_owned())
    );
    assert!(a.attachment(id, aid, None).await.unwrap() == stream);
    feed(&sender, &replacement[half..], 65_536).await;
    drop(sender);
    assert_eq!(first.await.unwrap().unwrap().0, 204);
    assert!(a.attachment(id, aid, None).await.unwrap() == replacement);

    // An upload abandoned by its client half way: the content stays, the staged chunks go, the next upload runs.
    let (sender, abandoned) = put_fed(&server.base, &token, &path(id, aid));
    // Over 1 MiB, so that the server has staged a batch.
    feed(&sender, &stream[..half + half / 2], 65_536).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    abandoned.abort();
    drop(sender);
    assert!(abandoned.await.unwrap_err().is_cancelled());
    assert!(a.attachment(id, aid, None).await.unwrap() == replacement);
    assert_nothing_staged(&server, &store, &token, id, aid).await;
    a.put_attachment(id, aid, stream.clone()).await.unwrap();
    assert!(a.attachment(id, aid, None).await.unwrap() == stream);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_is_cut_short_rather_than_mixed_when_the_attachment_is_replaced() {
    let (server, store, a, _dir) = server(64 << 20).await;
    let token = token(&server).await;
    let (entity, _, mut sealed) = note_with(&a, &[b"placeholder"]).await;
    let (reference, _) = sealed.pop().unwrap();
    let (id, aid) = (entity.id, reference.id);
    // The server serves whatever the store holds; stored directly, the stream need not be sealed. Large enough
    // that most of it is still in the store when the client pauses, whatever the socket buffers hold.
    let len = 40 << 20;
    let first = content(len, 9);
    let second = content(len, 10);
    assert_ne!(first[..HEADER_LEN], second[..HEADER_LEN]);
    store.put_attachment(id, aid, &first).unwrap();

    let url = format!("{}{}", server.base, path(id, aid));
    let target = (id, aid);
    download_across_replacement(&store, &url, &token, target, None, &first, &second).await;
    // The same for a range longer than a piece, which is streamed too (it was read whole before).
    store.put_attachment(id, aid, &first).unwrap();
    download_across_replacement(
        &store,
        &url,
        &token,
        target,
        Some("bytes=0-"),
        &first,
        &second,
    )
    .await;
    // A new download has the new content.
    assert!(a.attachment(id, aid, None).await.unwrap() == second);

    // Through the client's reader, the cut is an I/O error, never an early end of file.
    let mut reader = a.attachment_reader(id, aid, None).await.unwrap();
    let mut start = vec![0u8; 1 << 20];
    reader.read_exact(&mut start).await.unwrap();
    assert!(start[..] == second[..1 << 20]);
    store.put_attachment(id, aid, &first).unwrap();
    let mut rest = Vec::new();
    let error = reader.read_to_end(&mut rest).await.unwrap_err();
    assert!((1 << 20) + rest.len() < len, "{error}");
    assert!(
        reader.read(&mut [0; 16]).await.is_err(),
        "a failed body keeps failing"
    );
    server.shutdown().await;
}

/// An upload is bounded by its progress, not by the request timeout: one that keeps sending for over three times
/// the request timeout completes; one that stops sending is answered 408 after the progress timeout, and readers
/// keep the content of the one that completed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_bounded_by_its_progress_not_its_total_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("tessera.redb")).unwrap());
    let server = TestServer::start(Arc::clone(&store) as Arc<dyn Store>, |config| {
        config.limits.request_timeout = Duration::from_millis(300);
        config.limits.progress_timeout = Duration::from_secs(1);
    })
    .await;
    server.register_world().await;
    let a = server.login_with_keys(A, &ty("Note")).await;
    let data = content(4 * SEGMENT_LEN, 7);
    let (entity, _, sealed) = note_with(&a, &[&data]).await;
    let (reference, stream) = &sealed[0];
    let token = token(&server).await;
    let at = path(entity.id, reference.id);
    // Slow but steady: ten pieces 100 ms apart.
    let (sender, task) = put_fed(&server.base, &token, &at);
    for part in stream.chunks(stream.len().div_ceil(10)) {
        sender.send(Bytes::copy_from_slice(part)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(sender);
    let (answered, body) = task.await.unwrap().unwrap();
    assert_eq!(answered, 204, "{body}");
    // Stalled: half the stream, then nothing.
    let (sender, task) = put_fed(&server.base, &token, &at);
    sender
        .send(Bytes::copy_from_slice(&stream[..stream.len() / 2]))
        .await
        .unwrap();
    let (answered, body) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("a stalled upload is answered")
        .unwrap()
        .unwrap();
    assert_eq!(answered, 408, "{body}");
    assert!(
        body.contains("\"timeout\"") && body.contains("no progress"),
        "{body}"
    );
    drop(sender);
    let answer = get_with_token(&server.base, &at, &token).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.body == *stream,
        "the completed upload is what readers get"
    );
    server.shutdown().await;
}

/// Ranges longer than one piece (1 MiB) are streamed like whole downloads (`Range: bytes=0-` no longer loads the
/// whole stream): the same bytes, status 206, `Content-Range` and `Content-Length`, from offsets inside a piece.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_ranges_stream_the_right_bytes() {
    let (server, _store, a, _dir) = server(64 << 20).await;
    let data = content(3 * (1 << 20) + 12_345, 5);
    let (entity, _, sealed) = note_with(&a, &[&data]).await;
    let (reference, stream) = &sealed[0];
    a.put_attachment(entity.id, reference.id, stream.clone())
        .await
        .unwrap();
    let token = token(&server).await;
    let total = stream.len();
    for (range, start, end) in [
        ("bytes=0-".to_owned(), 0, total),
        (
            format!("bytes=1000-{}", 1000 + (5 << 19)),
            1000,
            1001 + (5 << 19),
        ),
        (format!("bytes={}-{}", 1 << 20, total + 99), 1 << 20, total),
    ] {
        let answer = common::raw(
            &server.base,
            Method::GET,
            &path(entity.id, reference.id),
            &[common::bearer(&token), ("range", range.clone())],
            vec![],
        )
        .await
        .unwrap();
        assert_eq!(answer.status, 206, "{range}");
        assert_eq!(
            answer.headers["content-range"].to_str().unwrap(),
            format!("bytes {start}-{}/{total}", end - 1),
            "{range}"
        );
        assert_eq!(
            answer.headers["content-length"].to_str().unwrap(),
            (end - start).to_string(),
            "{range}"
        );
        assert!(answer.body == stream[start..end], "{range}: other bytes");
    }
    server.shutdown().await;
}

/// Downloads `url`, the attachment `(id, aid)` (with `range`, if any), while the store holds `first`, replaces it
/// with `second` after the first MiB arrived, and checks that the answer is cut short (an error, never a complete
/// body) with bytes of `first` only.
async fn download_across_replacement(
    store: &RedbStore,
    url: &str,
    token: &str,
    (id, aid): (EntityId, AttachmentId),
    range: Option<&str>,
    first: &[u8],
    second: &[u8],
) {
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header("authorization", format!("Bearer {token}"));
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let request = request.body(http_body_util::Empty::<Bytes>::new()).unwrap();
    let client: HyperClient<_, http_body_util::Empty<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(
        response.status(),
        if range.is_some() { 206 } else { 200 },
        "{range:?}"
    );
    let mut body = response.into_body();
    let mut received = Vec::new();
    while received.len() < 1 << 20 {
        let frame = body.frame().await.unwrap().unwrap();
        received.extend_from_slice(&frame.into_data().unwrap());
    }
    store.put_attachment(id, aid, second).unwrap();
    let outcome = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    received.extend_from_slice(&data);
                }
            }
            Some(Err(error)) => break Err(error),
        }
    };
    assert!(
        outcome.is_err(),
        "{range:?}: the download completed across a replacement"
    );
    assert!(received.len() < first.len());
    assert!(
        received[..] == first[..received.len()],
        "{range:?}: bytes of two versions"
    );
}
