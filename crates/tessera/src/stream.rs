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
mod tests;
