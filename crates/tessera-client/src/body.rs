//! Answer bodies: read whole under a size limit ([`answer`], [`read_limited`], [`successful`]), an attachment
//! download read as it arrives ([`AttachmentReader`]), and an upload read from an [`AsyncRead`] as it is sent.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::Response;
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::CONTENT_LENGTH;
use tessera_wire::{ErrorBody, ErrorCode};
use tokio::io::{AsyncRead, ReadBuf};

use crate::client::ERROR_ANSWER;
use crate::error::{Error, Result};

/// Largest piece of a streamed upload read at once.
const UPLOAD_PIECE: usize = 64 << 10;

/// An attachment's sealed stream (or a range of it) as it arrives from the server
/// ([`Client::attachment_reader`](crate::Client::attachment_reader)): an [`AsyncRead`] over the answer's body, piece
/// by piece, that never holds more than the piece being read.
///
/// A failure of the connection before the body's end is an [`std::io::Error`] (a body cut short by the server
/// too: the answer announces its length, and HTTP reports a shorter body as an error). The bytes are the sealed
/// stream: open them with the attachment's key (the `tessera` crate's `Session::attachment_stream` does).
#[derive(Debug)]
pub struct AttachmentReader {
    body: Incoming,
    /// The rest of the piece being read.
    piece: Bytes,
    len: Option<u64>,
    /// Whether the body ended, and how: a failed body keeps failing rather than looking complete.
    end: Option<End>,
}

/// How an [`AttachmentReader`]'s body ended.
#[derive(Clone, Copy, Debug)]
enum End {
    Complete,
    Failed,
}

impl AttachmentReader {
    pub(crate) fn new(body: Incoming, len: Option<u64>) -> Self {
        Self {
            body,
            piece: Bytes::new(),
            len,
            end: None,
        }
    }

    /// Length of the answer's body (its `Content-Length`), when the server announced it.
    pub fn len(&self) -> Option<u64> {
        self.len
    }

    /// Whether the answer's body is empty, when the server announced its length.
    pub fn is_empty(&self) -> Option<bool> {
        self.len.map(|len| len == 0)
    }
}

impl AsyncRead for AttachmentReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.piece.is_empty() {
                let n = this.piece.len().min(out.remaining());
                out.put_slice(&this.piece.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match this.end {
                Some(End::Complete) => return Poll::Ready(Ok(())),
                Some(End::Failed) => {
                    return Poll::Ready(Err(std::io::Error::other("the answer's body failed")));
                }
                None if out.remaining() == 0 => return Poll::Ready(Ok(())),
                None => {}
            }
            match Pin::new(&mut this.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.end = Some(End::Complete),
                Poll::Ready(Some(Err(error))) => {
                    this.end = Some(End::Failed);
                    return Poll::Ready(Err(std::io::Error::other(error)));
                }
                // Trailers carry nothing an attachment needs.
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.piece = data;
                    }
                }
            }
        }
    }
}

/// A request body of exactly `remaining` bytes read from `reader`, in pieces of up to [`UPLOAD_PIECE`] bytes.
pub(crate) struct ReaderBody<R> {
    reader: R,
    remaining: u64,
    buffer: Vec<u8>,
}

impl<R> ReaderBody<R> {
    pub(crate) fn new(reader: R, len: u64) -> Self {
        Self {
            reader,
            remaining: len,
            buffer: Vec::new(),
        }
    }
}

impl<R: AsyncRead + Unpin> hyper::body::Body for ReaderBody<R> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let wanted = usize::try_from(this.remaining).map_or(UPLOAD_PIECE, |r| r.min(UPLOAD_PIECE));
        this.buffer.resize(wanted, 0);
        let mut buffer = ReadBuf::new(&mut this.buffer);
        match Pin::new(&mut this.reader).poll_read(cx, &mut buffer) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(error)) => Poll::Ready(Some(Err(error))),
            Poll::Ready(Ok(())) if buffer.filled().is_empty() => {
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the attachment ended before its announced length",
                ))))
            }
            Poll::Ready(Ok(())) => {
                let piece = Bytes::copy_from_slice(buffer.filled());
                this.remaining = this.remaining.saturating_sub(piece.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The body of a successful answer, read up to `limit` bytes, or the error an unsuccessful one reports.
pub(crate) async fn answer(response: Response<Incoming>, limit: usize) -> Result<Bytes> {
    read_limited(successful(response).await?, limit)
        .await?
        .ok_or(Error::AnswerTooLarge { limit })
}

/// The body of `response` if it has at most `limit` bytes, `None` if it has more: refused before reading when
/// its announced length says so, else as soon as more arrived, so that memory stays bounded by `limit`.
async fn read_limited(response: Response<Incoming>, limit: usize) -> Result<Option<Bytes>> {
    let announced = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if announced.is_some_and(|len| len > u64::try_from(limit).unwrap_or(u64::MAX)) {
        return Ok(None);
    }
    match Limited::new(response.into_body(), limit).collect().await {
        Ok(collected) => Ok(Some(collected.to_bytes())),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Ok(None),
        Err(error) => Err(Error::Transport(error.to_string())),
    }
}

/// A successful answer with its body unread, or the error an unsuccessful one reports (its body read up to
/// [`ERROR_ANSWER`](crate::client::ERROR_ANSWER) bytes).
pub(crate) async fn successful(response: Response<Incoming>) -> Result<Response<Incoming>> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let bytes = read_limited(response, ERROR_ANSWER).await?;
    let body: Option<ErrorBody> = bytes
        .as_ref()
        .and_then(|bytes| serde_json::from_slice(bytes).ok());
    let message = match (body.as_ref(), bytes) {
        (Some(body), _) => body.message.clone(),
        (None, Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        (None, None) => format!("(an error body of more than {ERROR_ANSWER} bytes, not read)"),
    };
    Err(Error::Status {
        status: status.as_u16(),
        code: body.as_ref().map_or(ErrorCode::Unknown, |b| b.error),
        message,
    })
}
