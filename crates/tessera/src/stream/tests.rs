//! Unit tests of the streaming adapters: sealing and opening as `AsyncRead` against the whole-buffer helpers, sources
//! of the wrong length, streams cut, extended, reordered or tampered, and failing sources.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use std::sync::OnceLock;

use serde_json::Map;
use tessera_keys::{EntityType, ExchangeData, ExchangeSecret, OwnerId, OwnerKeys};
use tessera_primitives::RsaKeySize;
use tessera_sharing::attachment::{self, pending_opener};
use tessera_sharing::{
    DecryptedEntity, DelegationTarget, EntityId, NewEntity, Permission, Visibility,
};

use super::*;

/// The lengths every test goes through: empty, one byte, around one segment, and several with a short last one.
const LENGTHS: [usize; 6] = [
    0,
    1,
    SEGMENT_LEN - 1,
    SEGMENT_LEN,
    SEGMENT_LEN + 1,
    3 * SEGMENT_LEN + 7,
];

/// A note opened by its creator, whose owner's keys are generated once per test binary.
fn opened() -> DecryptedEntity {
    static OWNER: OnceLock<(OwnerKeys, ExchangeSecret)> = OnceLock::new();
    let (keys, own) = OWNER.get_or_init(|| {
        let keys =
            OwnerKeys::generate(OwnerId::from_bytes([7; 16]), RsaKeySize::Bits2048, 0).unwrap();
        let own = ExchangeData::create(&keys, keys.owner(), &[], 0).unwrap().1;
        (keys, own)
    });
    let document = Map::new();
    let manifest = crate::content::encrypt_everything(&document).unwrap();
    let new = NewEntity {
        id: EntityId::generate().unwrap(),
        entity_type: EntityType::new("Note").unwrap(),
        document,
        manifest: &manifest,
        secret_ids: Vec::new(),
        parents: Vec::new(),
    };
    let root = DelegationTarget {
        exchange: own,
        visibility: Visibility::Explicit,
        permission: Permission::Write,
    };
    tessera_sharing::create(new, root, &[], keys).unwrap().1
}

/// `len` bytes that differ from one segment to the next.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + i / SEGMENT_LEN) % 251).unwrap())
        .collect()
}

/// A source that gives at most `piece` bytes per read and is not ready every other poll.
struct Trickle {
    data: Vec<u8>,
    at: usize,
    piece: usize,
    ready: bool,
}

impl Trickle {
    fn new(data: Vec<u8>, piece: usize) -> Self {
        Self {
            data,
            at: 0,
            piece,
            ready: false,
        }
    }
}

impl AsyncRead for Trickle {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.ready = !this.ready;
        if !this.ready {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let n = this
            .piece
            .min(out.remaining())
            .min(this.data.len() - this.at);
        out.put_slice(&this.data[this.at..this.at + n]);
        this.at += n;
        Poll::Ready(Ok(()))
    }
}

/// A source that fails after its data.
struct Failing(Vec<u8>);

impl AsyncRead for Failing {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.0.is_empty() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")));
        }
        let n = this.0.len().min(out.remaining());
        out.put_slice(&this.0.drain(..n).collect::<Vec<_>>());
        Poll::Ready(Ok(()))
    }
}

/// Reads `reader` to its end or its first error through a buffer of `chunk` bytes; returns what was read, the
/// error, and the largest buffer capacity `capacity` reported after any read.
async fn drain<R: AsyncRead + Unpin>(
    reader: &mut R,
    chunk: usize,
    capacity: impl Fn(&R) -> usize,
) -> (Vec<u8>, Option<io::Error>, usize) {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::new();
    let mut buffer = vec![0u8; chunk];
    let mut largest = capacity(reader);
    loop {
        let result = reader.read(&mut buffer).await;
        largest = largest.max(capacity(reader));
        match result {
            Ok(0) => return (read, None, largest),
            Ok(n) => read.extend_from_slice(&buffer[..n]),
            Err(error) => return (read, Some(error), largest),
        }
    }
}

/// Seals `source` as an attachment of `opened` announced as `len` bytes long through a [`SealingReader`].
async fn seal<R: AsyncRead + Unpin>(
    opened: &DecryptedEntity,
    source: R,
    len: u64,
) -> (
    AttachmentRef,
    Vec<u8>,
    Option<io::Error>,
    Option<Error>,
    usize,
) {
    let (reference, sealer) = attachment::attachment_sealer(opened, len).unwrap();
    let (mut reader, failure) = SealingReader::new(source, sealer, len);
    let (sealed, error, largest) = drain(&mut reader, 10_000, SealingReader::capacity).await;
    if error.is_some() {
        let again = drain(&mut reader, 10, SealingReader::capacity).await;
        assert!(again.0.is_empty() && again.1.is_some(), "a failure ends");
    }
    (reference, sealed, error, take_failure(&failure), largest)
}

/// Opens `sealed` as attachment `reference` of `opened` through an [`Opening`] reading `piece` bytes at a
/// time, the source announcing `announced` bytes.
async fn open(
    opened: &DecryptedEntity,
    reference: &AttachmentRef,
    sealed: Vec<u8>,
    announced: Option<u64>,
) -> (Vec<u8>, Option<io::Error>, usize) {
    let pending = pending_opener(opened, reference).unwrap();
    let mut opening = Opening::new(
        Trickle::new(sealed, 40_000),
        pending,
        reference.encrypted_len,
        announced,
    );
    let (read, error, largest) = drain(&mut opening, 7_000, Opening::capacity).await;
    if error.is_some() {
        let again = drain(&mut opening, 10, Opening::capacity).await;
        assert!(again.0.is_empty() && again.1.is_some(), "a failure ends");
    }
    (read, error, largest)
}

#[track_caller]
fn assert_crypto(error: Option<io::Error>) {
    let error = error.expect("the stream opened");
    assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
    let inner = Error::in_io_error(&error).expect("no SDK error inside");
    assert!(inner.is_crypto(), "{inner:?}");
}

#[tokio::test]
async fn sealing_as_read_makes_the_stream_of_whole_buffer_sealing_holding_one_segment() {
    let opened = opened();
    for len in LENGTHS {
        let data = content(len);
        for piece in [1_000, 100_000] {
            let (reference, sealed, error, failure, largest) =
                seal(&opened, Trickle::new(data.clone(), piece), len as u64).await;
            assert!(error.is_none() && failure.is_none(), "{len}: {error:?}");
            assert_eq!(sealed.len() as u64, reference.encrypted_len, "{len}");
            let back = attachment::open_attachment(&opened, &reference, &sealed).unwrap();
            assert!(back == data, "{len}/{piece}: the content differs");
            assert!(
                largest <= ENCRYPTED_SEGMENT_LEN,
                "{len}: held {largest} bytes"
            );
        }
    }
}

#[tokio::test]
async fn a_source_shorter_or_longer_than_announced_never_completes_the_stream() {
    let opened = opened();
    for len in LENGTHS {
        let data = content(len);
        let encrypted = tessera_primitives::stream::encrypted_len(len as u64);
        // One byte short (or, for empty content, announced one byte long).
        let (short, announced) = match len {
            0 => (Vec::new(), 1),
            _ => (data[..len - 1].to_vec(), len as u64),
        };
        let (_, sealed, error, failure, _) =
            seal(&opened, Trickle::new(short, 5_000), announced).await;
        let error = error.expect("a short source was sealed");
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "{len}");
        assert!(failure.unwrap().is_invalid(), "{len}");
        assert!(
            (sealed.len() as u64) < tessera_primitives::stream::encrypted_len(announced),
            "{len}"
        );
        // One byte more than announced: the last segment is never emitted.
        let mut long = data.clone();
        long.push(0);
        let (_, sealed, error, failure, _) =
            seal(&opened, Trickle::new(long, 5_000), len as u64).await;
        let error = error.expect("a long source was sealed");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{len}");
        assert!(failure.unwrap().is_invalid(), "{len}");
        assert!((sealed.len() as u64) < encrypted, "{len}");
    }
    // A source that fails: its error, as invalid content.
    let (_, _, error, failure, _) = seal(&opened, Failing(content(100_000)), 200_000).await;
    assert_eq!(error.unwrap().kind(), io::ErrorKind::ConnectionReset);
    assert!(failure.unwrap().is_invalid());
}

#[tokio::test]
async fn opening_as_read_serves_the_content_holding_one_segment() {
    let opened = opened();
    for len in LENGTHS {
        let data = content(len);
        let (reference, sealed) = attachment::seal_attachment(&opened, &data).unwrap();
        let announced = Some(sealed.len() as u64);
        for announced in [announced, None] {
            let (read, error, largest) = open(&opened, &reference, sealed.clone(), announced).await;
            assert!(error.is_none(), "{len}: {error:?}");
            assert!(read == data, "{len}: the content differs");
            assert!(
                largest <= ENCRYPTED_SEGMENT_LEN,
                "{len}: held {largest} bytes"
            );
        }
    }
}

#[tokio::test]
async fn streams_cut_extended_reordered_or_tampered_fail_as_crypto_releasing_no_bad_segment() {
    let opened = opened();
    // Small: every cut and every flipped byte.
    let data = content(100);
    let (reference, sealed) = attachment::seal_attachment(&opened, &data).unwrap();
    for cut in 0..sealed.len() {
        let (read, error, _) = open(&opened, &reference, sealed[..cut].to_vec(), None).await;
        assert!(read.is_empty(), "cut at {cut}");
        assert_crypto(error);
    }
    for index in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[index] ^= 0x01;
        let (read, error, _) = open(&opened, &reference, flipped, None).await;
        assert!(read.is_empty(), "flipped {index}");
        assert_crypto(error);
    }
    let extended = [&sealed[..], &[0]].concat();
    let (read, error, _) = open(&opened, &reference, extended, None).await;
    assert!(read.is_empty());
    assert_crypto(error);
    // Announced with another length than the reference's: nothing is read.
    let (read, error, _) = open(&opened, &reference, sealed.clone(), Some(10)).await;
    assert!(read.is_empty());
    assert_crypto(error);

    // Four segments: what is served before the failure is exactly the segments that opened.
    let data = content(3 * SEGMENT_LEN + 7);
    let (reference, sealed) = attachment::seal_attachment(&opened, &data).unwrap();
    let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
    let range = |index: u32| {
        let range = layout.segment_range(index).unwrap();
        range.start as usize..range.end as usize
    };
    let check = |read: Vec<u8>, error: Option<io::Error>, good: usize| {
        assert_eq!(read.len(), good * SEGMENT_LEN);
        assert!(read == data[..read.len()]);
        assert_crypto(error);
    };
    for index in 0..layout.segments() {
        let segment = range(index);
        for at in [
            segment.start,
            segment.start.midpoint(segment.end),
            segment.end - 1,
        ] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x80;
            let (read, error, _) = open(&opened, &reference, flipped, None).await;
            check(read, error, index as usize);
        }
    }
    let mut header = sealed.clone();
    header[HEADER_LEN - 1] ^= 0x01;
    let (read, error, _) = open(&opened, &reference, header, None).await;
    check(read, error, 0);
    // Cut inside the third segment, or after a whole one: the second is the last that opens.
    let (read, error, _) = open(
        &opened,
        &reference,
        sealed[..range(2).start + 10].to_vec(),
        None,
    )
    .await;
    check(read, error, 2);
    let (read, error, _) = open(&opened, &reference, sealed[..range(2).end].to_vec(), None).await;
    check(read, error, 3);
    // Extended, by a byte or by a copy of a segment: the last segment is not released.
    for extra in [&[0u8][..], &sealed[range(1)]] {
        let extended = [&sealed[..], extra].concat();
        let (read, error, _) = open(&opened, &reference, extended, None).await;
        check(read, error, 3);
    }
    // Two segments swapped.
    let mut swapped = sealed[..range(0).start].to_vec();
    swapped.extend_from_slice(&sealed[range(1)]);
    swapped.extend_from_slice(&sealed[range(0)]);
    swapped.extend_from_slice(&sealed[range(2).start..]);
    let (read, error, _) = open(&opened, &reference, swapped, None).await;
    check(read, error, 0);
}

#[tokio::test]
async fn a_failing_source_is_a_transport_error() {
    let opened = opened();
    let data = content(SEGMENT_LEN + 10);
    let (reference, sealed) = attachment::seal_attachment(&opened, &data).unwrap();
    let pending = pending_opener(&opened, &reference).unwrap();
    let cut = Failing(sealed[..range_end_of_first(&sealed) + 10].to_vec());
    let mut opening = Opening::new(cut, pending, reference.encrypted_len, None);
    let (read, error, _) = drain(&mut opening, 4_096, Opening::capacity).await;
    assert!(read == data[..SEGMENT_LEN]);
    let error = error.unwrap();
    assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    assert_eq!(
        Error::in_io_error(&error).unwrap().kind(),
        ErrorKind::Transport
    );
    let again = drain(&mut opening, 10, Opening::capacity).await;
    assert!(again.0.is_empty());
    let again = again.1.unwrap();
    assert!(Error::in_io_error(&again).unwrap().is_transport());
}

/// The end of the first segment of a stream of more than one.
fn range_end_of_first(sealed: &[u8]) -> usize {
    let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
    layout.segment_range(0).unwrap().end as usize
}
