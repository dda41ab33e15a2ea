//! Attachments as async streams against a real server on 127.0.0.1:0: every length around the 64 KiB segments
//! round-trips through `add_attachment_stream` and `attachment_stream` (and agrees with the whole-buffer calls); a
//! source shorter or longer than announced fails and leaves nothing readable; a stored stream that was tampered
//! with, cut or extended fails the reads with the crypto kind; a read-only delegate cannot add one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::io::Cursor;

use common::Fixture;
use serde_json::json;
use tessera::{
    AttachmentId, EntityRef, EntityType, ErrorKind, NewRecord, OwnerKind, Session, Share,
};
use tessera_primitives::stream::{SEGMENT_LEN, StreamLayout};
use tessera_store::Store;
use tokio::io::AsyncReadExt;

/// `len` bytes that differ from one segment to the next.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + i / SEGMENT_LEN) % 251).unwrap())
        .collect()
}

/// A note of Alice's shared with Bob for reading: Alice, Bob, the note and its revision.
async fn shared_note(fx: &Fixture) -> (Session, Session, EntityRef, u64) {
    let (bob_keys, bob) = fx.session(OwnerKind::Hcp).await;
    let (_, alice) = fx.session(OwnerKind::Hcp).await;
    let content = json!({"text": "scan attached"});
    let serde_json::Value::Object(content) = content else {
        unreachable!()
    };
    let saved = alice
        .create_record(
            NewRecord::new(EntityType::new("Note").unwrap(), content)
                .share_with(Share::read(bob_keys.owner())),
        )
        .await
        .unwrap();
    (alice, bob, saved.entity, saved.rev)
}

/// Reads `stream` to its end through a buffer of `chunk` bytes; returns what was read and the first error.
async fn read_all(
    stream: &mut tessera::AttachmentStream,
    chunk: usize,
) -> (Vec<u8>, Option<std::io::Error>) {
    let mut read = Vec::new();
    let mut buffer = vec![0u8; chunk];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) => return (read, None),
            Ok(n) => read.extend_from_slice(&buffer[..n]),
            Err(error) => return (read, Some(error)),
        }
    }
}

/// The id of the last attachment the record references.
async fn last_attachment(session: &Session, note: &EntityRef) -> AttachmentId {
    let record = session.get_json(note).await.unwrap();
    record.attachments.last().unwrap().id
}

#[tokio::test]
async fn every_length_round_trips_through_the_streams() {
    let fx = Fixture::start().await;
    let (alice, bob, note, mut rev) = shared_note(&fx).await;
    for len in [0, 1, 65_535, 65_536, 65_537, 3 * 65_536 + 7, (2 << 20) + 3] {
        let data = content(len);
        let (attachment, new_rev) = alice
            .add_attachment_stream(&note, rev, Cursor::new(data.clone()), len as u64)
            .await
            .unwrap();
        assert_eq!(new_rev, rev + 1, "{len}");
        rev = new_rev;

        let record = bob.get_json(&note).await.unwrap();
        let info = record
            .attachments
            .iter()
            .find(|a| a.id == attachment)
            .unwrap();
        assert_eq!(info.len, len as u64, "{len}");
        let mut stream = bob.attachment_stream(&note, attachment).await.unwrap();
        assert_eq!(stream.len(), len as u64, "{len}");
        assert_eq!(stream.is_empty(), len == 0, "{len}");
        // A small buffer: many reads per segment.
        let (read, error) = read_all(&mut stream, 1_000).await;
        assert!(error.is_none(), "{len}: {error:?}");
        assert!(read == data, "{len}: the streamed content differs");
        let mut whole = Vec::new();
        let mut again = alice.attachment_stream(&note, attachment).await.unwrap();
        again.read_to_end(&mut whole).await.unwrap();
        assert!(whole == data, "{len}: the content differs for its writer");
        assert!(
            bob.attachment(&note, attachment).await.unwrap() == data,
            "{len}: the whole-buffer read differs"
        );
    }
    // What the whole-buffer upload stores, the stream reads.
    let data = content(100_000);
    let (attachment, _) = alice.add_attachment(&note, rev, &data).await.unwrap();
    let mut stream = bob.attachment_stream(&note, attachment).await.unwrap();
    assert!(read_all(&mut stream, 65_536).await.0 == data);
}

#[tokio::test]
async fn a_source_shorter_or_longer_than_announced_fails_and_leaves_nothing_readable() {
    let fx = Fixture::start().await;
    let (alice, bob, note, rev) = shared_note(&fx).await;
    let len = 3 * SEGMENT_LEN + 7;
    let data = content(len);

    let short = Cursor::new(data[..len - 1].to_vec());
    let error = alice
        .add_attachment_stream(&note, rev, short, len as u64)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    // The reference was added with the update; its content never arrived.
    let attachment = last_attachment(&alice, &note).await;
    assert_eq!(fx.store.attachment_len(note.id, attachment).unwrap(), None);
    assert!(
        bob.attachment_stream(&note, attachment)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        bob.attachment(&note, attachment)
            .await
            .unwrap_err()
            .is_not_found()
    );

    for extra in [1, SEGMENT_LEN] {
        let rev = alice.get_json(&note).await.unwrap().rev;
        let long = Cursor::new([&data[..], &vec![7; extra]].concat());
        let error = alice
            .add_attachment_stream(&note, rev, long, len as u64)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid, "{extra}: {error}");
        let attachment = last_attachment(&alice, &note).await;
        assert_eq!(fx.store.attachment_len(note.id, attachment).unwrap(), None);
        assert!(
            bob.attachment_stream(&note, attachment)
                .await
                .unwrap_err()
                .is_not_found()
        );
    }
}

#[tokio::test]
async fn a_stored_stream_tampered_with_cut_or_extended_fails_as_crypto() {
    let fx = Fixture::start().await;
    let (alice, bob, note, rev) = shared_note(&fx).await;
    let data = content(3 * SEGMENT_LEN + 7);
    let (attachment, _) = alice
        .add_attachment_stream(&note, rev, Cursor::new(data.clone()), data.len() as u64)
        .await
        .unwrap();
    let sealed = fx
        .store
        .read_attachment(note.id, attachment, 0..u64::MAX)
        .unwrap()
        .unwrap();
    let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
    let second = layout.segment_range(1).unwrap();
    let (start, end) = (second.start as usize, second.end as usize);

    let mut flipped = sealed.clone();
    flipped[start + 100] ^= 0x01;
    let cut = sealed[..sealed.len() - 1].to_vec();
    let extended = [&sealed[..], &[0]].concat();
    let mut swapped = sealed[..start].to_vec();
    swapped.extend_from_slice(&sealed[end..end + (end - start)]);
    swapped.extend_from_slice(&sealed[start..end]);
    swapped.extend_from_slice(&sealed[end + (end - start)..]);
    let garbage = content(sealed.len()).iter().map(|b| b ^ 0x5a).collect();
    // What each yields before failing: the segments that open, nothing of one that does not.
    let cases: [(&str, Vec<u8>, usize); 5] = [
        ("a flipped byte in the second segment", flipped, SEGMENT_LEN),
        ("one byte cut", cut, 0),
        ("one byte added", extended, 0),
        (
            "the second and third segments swapped",
            swapped,
            SEGMENT_LEN,
        ),
        ("bytes of the right length that are no stream", garbage, 0),
    ];
    for (what, stored, good) in cases {
        fx.store
            .put_attachment(note.id, attachment, &stored)
            .unwrap();
        let mut stream = bob.attachment_stream(&note, attachment).await.unwrap();
        let (read, error) = read_all(&mut stream, 4_096).await;
        let error = error.unwrap_or_else(|| panic!("{what}: the stream opened"));
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{what}");
        let inner = tessera::Error::in_io_error(&error).unwrap();
        assert_eq!(inner.kind(), ErrorKind::Crypto, "{what}");
        assert_eq!(read.len(), good, "{what}");
        assert!(read == data[..good], "{what}");
        // The whole-buffer read agrees.
        assert!(
            bob.attachment(&note, attachment)
                .await
                .unwrap_err()
                .is_crypto(),
            "{what}"
        );
    }
    // Put back, it opens again.
    fx.store
        .put_attachment(note.id, attachment, &sealed)
        .unwrap();
    let mut stream = bob.attachment_stream(&note, attachment).await.unwrap();
    assert!(read_all(&mut stream, 4_096).await.0 == data);
}

#[tokio::test]
async fn only_a_writer_at_the_stored_revision_adds_a_stream() {
    let fx = Fixture::start().await;
    let (alice, bob, note, rev) = shared_note(&fx).await;
    let data = content(1_000);
    let denied = bob
        .add_attachment_stream(&note, rev, Cursor::new(data.clone()), 1_000)
        .await
        .unwrap_err();
    assert!(denied.is_forbidden(), "{denied}");
    let stale = alice
        .add_attachment_stream(&note, rev + 1, Cursor::new(data.clone()), 1_000)
        .await
        .unwrap_err();
    assert!(stale.is_conflict(), "{stale}");
    // Neither added a reference.
    assert!(alice.get_json(&note).await.unwrap().attachments.is_empty());
    let unknown = AttachmentId::generate().unwrap();
    assert!(
        bob.attachment_stream(&note, unknown)
            .await
            .unwrap_err()
            .is_not_found()
    );
}
