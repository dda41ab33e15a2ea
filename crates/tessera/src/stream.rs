//! Attachments as async streams: the adapter that seals content as an upload reads it, and [`AttachmentStream`],
//! which opens a download segment by segment as it arrives. Each holds one segment at a time, whatever the size.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tessera_client::AttachmentReader;
use tessera_primitives::stream::{
    ENCRYPTED_SEGMENT_LEN, HEADER_LEN, SEGMENT_LEN, StreamLayout, StreamOpener, StreamSealer,
};
use tessera_sharing::AttachmentRef;
use tessera_sharing::attachment::PendingOpener;
use tokio::io::{AsyncRead, ReadBuf};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind};
use crate::record::AttachmentInfo;

/// The decrypted content of an attachment as it downloads ([`Session::attachment_stream`](crate::Session::attachment_stream)):
/// an [`AsyncRead`] that reads the sealed stream one 64 KiB segment at a time, opens each, and serves its plaintext.
/// It holds one segment, whatever the attachment's size; count the bytes read for a progress bar.
///
/// # Errors
/// Every error a read returns wraps a [`tessera::Error`](Error): get it back with [`Error::in_io_error`]. A stream
/// that does not open (a tampered segment, a stream cut short or extended, reordered segments, a length other than
/// the one the record's reference gives) is an [`io::ErrorKind::InvalidData`] error wrapping an error of kind
/// [`ErrorKind::Crypto`]; a connection that fails is an error of kind [`ErrorKind::Transport`]. After an error, every
/// later read fails too.
///
/// # Security
/// Plaintext is served only from segments that opened; a segment that fails to open releases nothing, and the
/// plaintext held is wiped when the stream is dropped. The segments served before an error are authentic: they are
/// the beginning of the attachment, but not all of it.
pub struct AttachmentStream {
    opening: Opening<AttachmentReader>,
    len: u64,
}

impl std::fmt::Debug for AttachmentStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AttachmentStream")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl AttachmentStream {
    /// The stream of attachment `reference` read from `source` (its sealed stream) and opened with `pending`.
    pub(crate) fn new(
        source: AttachmentReader,
        pending: PendingOpener,
        reference: &AttachmentRef,
    ) -> Self {
        let announced = source.len();
        Self {
            opening: Opening::new(source, pending, reference.encrypted_len, announced),
            len: AttachmentInfo::from_ref(reference).len,
        }
    }

    /// Length of the content, in bytes: what reading the stream to its end yields.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsyncRead for AttachmentStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().opening).poll_read(cx, out)
    }
}

/// Where the error of a failed [`SealingReader`] is left for the upload to report: the client only sees that the
/// request body failed.
pub(crate) type Failure = Arc<Mutex<Option<Error>>>;

/// Takes the error a [`SealingReader`] left, if any.
pub(crate) fn take_failure(failure: &Failure) -> Option<Error> {
    failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// The sealed stream of exactly `len` bytes of content read from `source`: the header, then each segment once the
/// source has filled it. One segment is held at a time. A source that ends before `len` bytes, or that has more
/// (one extra read after the last segment's content finds out, before the last segment is released, so that the
/// upload never completes), fails the read and leaves its error in the [`Failure`].
pub(crate) struct SealingReader<R> {
    source: R,
    sealer: StreamSealer,
    len: u64,
    /// Content bytes of the source not yet read into a segment.
    remaining: u64,
    /// The content of the segment being filled, then its sealed form being emitted (or the header).
    buf: Zeroizing<Vec<u8>>,
    /// Bytes of `buf` filled (while filling) or emitted (while emitting).
    at: usize,
    state: Sealing,
    failure: Failure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sealing {
    /// Emitting `buf`; `last` once it holds the last segment.
    Emitting {
        last: bool,
    },
    /// Reading content into `buf`.
    Filling,
    /// Checking that the source ends with the last segment's content.
    CheckingEnd,
    Done,
    Failed,
}

impl<R: AsyncRead + Unpin> SealingReader<R> {
    /// Seals `len` bytes of `source` with `sealer`; returns the reader and where it leaves its error.
    pub(crate) fn new(source: R, sealer: StreamSealer, len: u64) -> (Self, Failure) {
        let mut buf = Zeroizing::new(Vec::with_capacity(ENCRYPTED_SEGMENT_LEN));
        buf.extend_from_slice(&sealer.header());
        let failure = Failure::default();
        let reader = Self {
            source,
            sealer,
            len,
            remaining: len,
            buf,
            at: 0,
            state: Sealing::Emitting { last: false },
            failure: Arc::clone(&failure),
        };
        (reader, failure)
    }

    /// Records `error`, which the read returns as an I/O error of `kind`.
    fn fail(&mut self, kind: io::ErrorKind, error: Error) -> io::Error {
        self.state = Sealing::Failed;
        let message = error.to_string();
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
        io::Error::new(kind, message)
    }

    /// Seals the content in `buf` as the next segment and starts emitting it.
    fn seal(&mut self, last: bool) -> io::Result<()> {
        if let Err(error) = self.sealer.seal_segment_in_place(&mut self.buf, last) {
            return Err(self.fail(io::ErrorKind::Other, error.into()));
        }
        self.at = 0;
        self.state = Sealing::Emitting { last };
        Ok(())
    }

    /// Content bytes read so far.
    fn read_so_far(&self) -> u64 {
        self.len - self.remaining + self.at as u64
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for SealingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.state {
                Sealing::Emitting { last } => {
                    if serve(&this.buf, &mut this.at, out) {
                        return Poll::Ready(Ok(()));
                    }
                    if last {
                        this.state = Sealing::Done;
                        continue;
                    }
                    let want = usize::try_from(this.remaining)
                        .map_or(SEGMENT_LEN, |remaining| remaining.min(SEGMENT_LEN));
                    this.buf.clear();
                    this.buf.resize(want, 0);
                    this.at = 0;
                    this.state = Sealing::Filling;
                }
                Sealing::Filling => {
                    let Some(rest) = this.buf.get_mut(this.at..).filter(|rest| !rest.is_empty())
                    else {
                        this.remaining -= this.buf.len() as u64;
                        if this.remaining == 0 {
                            this.state = Sealing::CheckingEnd;
                        } else if let Err(error) = this.seal(false) {
                            return Poll::Ready(Err(error));
                        }
                        continue;
                    };
                    let mut rest = ReadBuf::new(rest);
                    match Pin::new(&mut this.source).poll_read(cx, &mut rest) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            let detail = format!("reading the content failed: {error}");
                            return Poll::Ready(Err(
                                this.fail(error.kind(), Error::invalid(detail))
                            ));
                        }
                        Poll::Ready(Ok(())) if rest.filled().is_empty() => {
                            let detail = format!(
                                "the content ended after {} of its announced {} bytes",
                                this.read_so_far(),
                                this.len
                            );
                            let kind = io::ErrorKind::UnexpectedEof;
                            return Poll::Ready(Err(this.fail(kind, Error::invalid(detail))));
                        }
                        Poll::Ready(Ok(())) => this.at += rest.filled().len(),
                    }
                }
                Sealing::CheckingEnd => {
                    let mut byte = [0u8; 1];
                    let mut probe = ReadBuf::new(&mut byte);
                    match Pin::new(&mut this.source).poll_read(cx, &mut probe) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            let detail = format!("reading the content failed: {error}");
                            return Poll::Ready(Err(
                                this.fail(error.kind(), Error::invalid(detail))
                            ));
                        }
                        Poll::Ready(Ok(())) if !probe.filled().is_empty() => {
                            let detail = format!(
                                "the content is longer than its announced {} bytes",
                                this.len
                            );
                            let kind = io::ErrorKind::InvalidInput;
                            return Poll::Ready(Err(this.fail(kind, Error::invalid(detail))));
                        }
                        Poll::Ready(Ok(())) => {
                            if let Err(error) = this.seal(true) {
                                return Poll::Ready(Err(error));
                            }
                        }
                    }
                }
                Sealing::Done => return Poll::Ready(Ok(())),
                Sealing::Failed => {
                    return Poll::Ready(Err(io::Error::other("the content failed earlier")));
                }
            }
        }
    }
}

/// Opens a sealed stream read from `source` segment by segment ([`AttachmentStream`] over the download; any
/// [`AsyncRead`] in tests).
struct Opening<R> {
    source: R,
    /// The attachment's key, until the header arrives.
    pending: Option<PendingOpener>,
    opener: Option<StreamOpener>,
    layout: StreamLayout,
    /// The header or encrypted segment being read, then the plaintext of the segment being served.
    buf: Zeroizing<Vec<u8>>,
    /// Bytes of `buf` read (while reading) or served (while serving).
    at: usize,
    /// The segment being read or served.
    index: u32,
    state: Reading,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reading {
    Header,
    Segment,
    /// Checking that the source ends after the last segment, before its plaintext is served.
    Trailing,
    /// Serving the plaintext in `buf`; `last` for the last segment's.
    Serving {
        last: bool,
    },
    Done,
    Failed(ErrorKind),
}

impl<R: AsyncRead + Unpin> Opening<R> {
    /// Opens the stream of `encrypted_len` bytes that `source` announces as `announced` bytes long (if it does).
    fn new(source: R, pending: PendingOpener, encrypted_len: u64, announced: Option<u64>) -> Self {
        let layout = pending.layout();
        let mut buf = Zeroizing::new(Vec::with_capacity(ENCRYPTED_SEGMENT_LEN));
        buf.resize(HEADER_LEN, 0);
        // A stream of another length than the reference's cannot open: fail on the first read, before any segment.
        let state = if announced.is_some_and(|announced| announced != encrypted_len) {
            Reading::Failed(ErrorKind::Crypto)
        } else {
            Reading::Header
        };
        Self {
            source,
            pending: Some(pending),
            opener: None,
            layout,
            buf,
            at: 0,
            index: 0,
            state,
        }
    }

    /// Fails the stream with `kind`; returns the error to read.
    fn fail(&mut self, kind: ErrorKind) -> io::Error {
        self.state = Reading::Failed(kind);
        self.buf.clear();
        failed(kind, None)
    }

    /// Starts reading segment `index`.
    fn start_segment(&mut self, index: u32) -> Result<(), io::Error> {
        let Some(range) = self.layout.segment_range(index) else {
            return Err(self.fail(ErrorKind::Crypto));
        };
        let len = usize::try_from(range.end - range.start).unwrap_or(usize::MAX);
        self.buf.clear();
        self.buf.resize(len.min(ENCRYPTED_SEGMENT_LEN), 0);
        self.at = 0;
        self.index = index;
        self.state = Reading::Segment;
        Ok(())
    }

    /// Reads from the source until `buf` is full: `Ready(Ok)` then, an error if the source fails or ends first.
    fn fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(rest) = self.buf.get_mut(self.at..).filter(|rest| !rest.is_empty()) {
            let mut rest = ReadBuf::new(rest);
            match Pin::new(&mut self.source).poll_read(cx, &mut rest) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(error)) => {
                    self.state = Reading::Failed(ErrorKind::Transport);
                    self.buf.clear();
                    return Poll::Ready(Err(failed(ErrorKind::Transport, Some(error))));
                }
                // The stream ends before the length of its reference: cut short.
                Poll::Ready(Ok(())) if rest.filled().is_empty() => {
                    return Poll::Ready(Err(self.fail(ErrorKind::Crypto)));
                }
                Poll::Ready(Ok(())) => self.at += rest.filled().len(),
            }
        }
        Poll::Ready(Ok(()))
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Opening<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.state {
                Reading::Serving { last } => {
                    if serve(&this.buf, &mut this.at, out) {
                        return Poll::Ready(Ok(()));
                    }
                    if last {
                        this.state = Reading::Done;
                    } else if let Err(error) = this.start_segment(this.index.saturating_add(1)) {
                        return Poll::Ready(Err(error));
                    }
                }
                Reading::Header => {
                    if let Err(error) = std::task::ready!(this.fill(cx)) {
                        return Poll::Ready(Err(error));
                    }
                    let opener = this
                        .pending
                        .take()
                        .map(|pending| pending.into_opener(&this.buf));
                    let Some(Ok(opener)) = opener else {
                        return Poll::Ready(Err(this.fail(ErrorKind::Crypto)));
                    };
                    this.opener = Some(opener);
                    if let Err(error) = this.start_segment(0) {
                        return Poll::Ready(Err(error));
                    }
                }
                Reading::Segment => {
                    if let Err(error) = std::task::ready!(this.fill(cx)) {
                        return Poll::Ready(Err(error));
                    }
                    let last = this.layout.is_last(this.index);
                    let opened = this.opener.as_ref().map(|opener| {
                        opener.open_segment_in_place(this.index, &mut this.buf, last)
                    });
                    let Some(Ok(())) = opened else {
                        return Poll::Ready(Err(this.fail(ErrorKind::Crypto)));
                    };
                    this.at = 0;
                    this.state = if last {
                        Reading::Trailing
                    } else {
                        Reading::Serving { last: false }
                    };
                }
                Reading::Trailing => {
                    let mut byte = [0u8; 1];
                    let mut probe = ReadBuf::new(&mut byte);
                    match Pin::new(&mut this.source).poll_read(cx, &mut probe) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Err(error)) => {
                            this.state = Reading::Failed(ErrorKind::Transport);
                            this.buf.clear();
                            return Poll::Ready(Err(failed(ErrorKind::Transport, Some(error))));
                        }
                        // Bytes after the last segment: the stream was extended.
                        Poll::Ready(Ok(())) if !probe.filled().is_empty() => {
                            return Poll::Ready(Err(this.fail(ErrorKind::Crypto)));
                        }
                        Poll::Ready(Ok(())) => this.state = Reading::Serving { last: true },
                    }
                }
                Reading::Done => return Poll::Ready(Ok(())),
                Reading::Failed(kind) => return Poll::Ready(Err(failed(kind, None))),
            }
        }
    }
}

/// Copies into `out` as much as fits of what is left of `buf` after `at`, moving `at` on; whether anything was left.
fn serve(buf: &[u8], at: &mut usize, out: &mut ReadBuf<'_>) -> bool {
    let left = buf.get(*at..).unwrap_or_default();
    if left.is_empty() {
        return false;
    }
    let n = left.len().min(out.remaining());
    out.put_slice(left.get(..n).unwrap_or_default());
    *at += n;
    true
}

/// The I/O error of a stream that failed with `kind`: [`io::ErrorKind::InvalidData`] wrapping the opaque crypto
/// error, or the connection's error kind wrapping a transport error.
fn failed(kind: ErrorKind, cause: Option<io::Error>) -> io::Error {
    if kind == ErrorKind::Crypto {
        return io::Error::new(
            io::ErrorKind::InvalidData,
            Error::from(tessera_primitives::Error::Crypto),
        );
    }
    let (io_kind, detail) = match cause {
        Some(cause) => (cause.kind(), format!("the download failed: {cause}")),
        None => (
            io::ErrorKind::Other,
            "the download failed earlier".to_owned(),
        ),
    };
    io::Error::new(io_kind, Error::new(kind, detail))
}

#[cfg(test)]
mod tests {
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
        static SECRET: OnceLock<ExchangeSecret> = OnceLock::new();
        let own = SECRET.get_or_init(|| {
            let keys =
                OwnerKeys::generate(OwnerId::from_bytes([7; 16]), RsaKeySize::Bits2048, 0).unwrap();
            ExchangeData::create(&keys, keys.owner(), &[], 0).unwrap().1
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
        tessera_sharing::create(new, root, &[]).unwrap().1
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
                let (read, error, largest) =
                    open(&opened, &reference, sealed.clone(), announced).await;
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
        let (read, error, _) =
            open(&opened, &reference, sealed[..range(2).end].to_vec(), None).await;
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
}
