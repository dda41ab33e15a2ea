//! Attachments: sealed streams taken in and sent out piece by piece, so that memory holds about one batch per
//! transfer whatever the size.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE};
use hyper::{Request, Response, StatusCode};
use tessera_primitives::stream::HEADER_LEN;
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId};
use tessera_store::Store;
use tessera_wire::{ErrorCode, OCTET_STREAM};

use super::{blocking, load_visible, requester, writable};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

/// How much of an attachment is held in memory at once: an upload is written to the store in batches of about this
/// many bytes, a download read from it in pieces of this many bytes.
const ATTACHMENT_BATCH: usize = 1 << 20;

/// The attachments of one server with an upload in progress (part of its [`State`], so that two servers in one
/// process, as in tests, do not refuse each other's uploads). An upload stages its chunks under the attachment's id
/// alone, so two at once would mix their chunks: the second one is refused with 409 while the first runs.
#[derive(Debug, Default)]
pub(crate) struct Uploads(Arc<Mutex<BTreeSet<(EntityId, AttachmentId)>>>);

/// The claim of an upload on its attachment in [`Uploads`], released when the last clone is dropped: the
/// request's, and those of store writes still running on the blocking pool after the request itself was dropped
/// (a timeout, a client gone), so that no write of an abandoned upload lands in the next one.
struct Claim {
    uploads: Arc<Mutex<BTreeSet<(EntityId, AttachmentId)>>>,
    id: EntityId,
    attachment: AttachmentId,
}

impl Claim {
    fn take(
        uploads: &Uploads,
        id: EntityId,
        attachment: AttachmentId,
    ) -> Result<Arc<Self>, ApiError> {
        let mut set = uploads.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !set.insert((id, attachment)) {
            return Err(ApiError::new(
                ErrorCode::UploadInProgress,
                "another upload of this attachment is in progress",
            ));
        }
        Ok(Arc::new(Self {
            uploads: Arc::clone(&uploads.0),
            id,
            attachment,
        }))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.uploads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(self.id, self.attachment));
    }
}

/// An upload in progress. Dropped unfinished (refused, failed, or abandoned by the client) after it staged chunks,
/// it discards them on the blocking pool and frees the attachment after that; the attachment's readable content
/// never changed.
struct Upload {
    claim: Arc<Claim>,
    store: Arc<dyn Store>,
    /// Whether a write of chunks was started (it may have landed even if it did not answer).
    staged: bool,
    finished: bool,
}

impl Upload {
    /// Stages a batch of chunks in one commit, on the blocking pool.
    async fn stage(
        &mut self,
        state: &Arc<State>,
        (first, chunks): (u64, Vec<Vec<u8>>),
    ) -> Result<(), ApiError> {
        if chunks.is_empty() {
            return Ok(());
        }
        self.staged = true;
        let claim = Arc::clone(&self.claim);
        blocking(state, move |store| {
            Ok(store.put_attachment_chunks(claim.id, claim.attachment, first, &chunks)?)
        })
        .await
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.finished || !self.staged {
            return;
        }
        let claim = Arc::clone(&self.claim);
        let store = Arc::clone(&self.store);
        let discard = move || {
            if let Err(error) = store.abort_attachment(claim.id, claim.attachment) {
                tracing::warn!(%error, "staged attachment chunks not discarded");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(discard)),
            Err(_) => discard(),
        }
    }
}

/// Cuts a stream into the chunks the store takes ([`tessera_store::attachment_chunk_len`]: the header, then
/// encrypted segments), and hands them out in batches.
#[derive(Default)]
struct Chunker {
    /// Index of the first chunk of `ready`.
    first: u64,
    /// Complete chunks not handed out yet.
    ready: Vec<Vec<u8>>,
    ready_bytes: usize,
    /// The chunk being filled, shorter than its full length.
    current: Vec<u8>,
}

impl Chunker {
    fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let index = self.first.saturating_add(self.ready.len() as u64);
            let full = tessera_store::attachment_chunk_len(index);
            if self.current.capacity() == 0 {
                self.current.reserve_exact(full);
            }
            let wanted = full.saturating_sub(self.current.len()).min(data.len());
            let (head, tail) = data.split_at(wanted);
            self.current.extend_from_slice(head);
            data = tail;
            if self.current.len() >= full {
                self.ready_bytes += self.current.len();
                self.ready.push(std::mem::take(&mut self.current));
            }
        }
    }

    /// Bytes in complete chunks not handed out yet.
    fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// The complete chunks so far, with the index of the first.
    fn take(&mut self) -> (u64, Vec<Vec<u8>>) {
        let ready = std::mem::take(&mut self.ready);
        let first = self.first;
        self.first = first.saturating_add(ready.len() as u64);
        self.ready_bytes = 0;
        (first, ready)
    }

    /// Every chunk left once the stream has ended, the last one possibly short.
    fn take_rest(&mut self) -> (u64, Vec<Vec<u8>>) {
        if !self.current.is_empty() {
            self.ready.push(std::mem::take(&mut self.current));
        }
        self.take()
    }
}

/// The length the entity's reference gives the attachment's sealed stream.
fn referenced_len(entity: &EncryptedEntity, attachment: AttachmentId) -> Result<u64, ApiError> {
    entity
        .attachments
        .iter()
        .find(|a| a.id == attachment)
        .map(|a| a.encrypted_len)
        .ok_or_else(|| ApiError::bad_request("add the attachment's reference to the entity first"))
}

fn length_differs() -> ApiError {
    ApiError::bad_request("the stream length differs from the entity's attachment reference")
}

/// Most of a refused upload the server still reads (and drops) so that its client, still sending, gets the answer:
/// closing a connection with unread bytes resets it, and a client that is still writing then often sees the reset
/// instead of the answer. A lingering close, as web servers do it.
const DRAIN_BYTES: u64 = 16 << 20;
/// Longest the server spends on that.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes an attachment's sealed stream in as it arrives ([`receive_attachment`]); if it is refused, reads what is
/// left of the body (within [`DRAIN_BYTES`] and [`DRAIN_TIME`]) before answering.
pub(super) async fn put_attachment(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: EntityId,
    attachment: AttachmentId,
) -> Result<Resp, ApiError> {
    let (parts, mut body) = request.into_parts();
    let head = Request::from_parts(parts, ());
    let answer = receive_attachment(state, &head, &mut body, id, attachment).await;
    if answer.is_err() {
        drain(&mut body).await;
    }
    answer
}

/// Reads and drops what is left of `body`, unless it is known to be longer than [`DRAIN_BYTES`]; gives up past
/// [`DRAIN_BYTES`] or [`DRAIN_TIME`].
pub(super) async fn drain(body: &mut Incoming) {
    if body.is_end_stream() || body.size_hint().lower() > DRAIN_BYTES {
        return;
    }
    let mut left = DRAIN_BYTES;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            match left.checked_sub(data.len() as u64) {
                Some(rest) => left = rest,
                None => return,
            }
        }
    })
    .await;
}

/// Takes an attachment's sealed stream in as it arrives: cut into chunks, staged in the store about every
/// [`ATTACHMENT_BATCH`] bytes (so an upload holds about that much memory, whatever its size), and made readable
/// at once at the end if its length is the one the entity's reference gives. Until then, and if anything fails,
/// readers keep the previous content.
pub(super) async fn receive_attachment(
    state: &Arc<State>,
    request: &Request<()>,
    body: &mut Incoming,
    id: EntityId,
    attachment: AttachmentId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let entity = load_visible(state, id, &requester).await?;
    if !writable(&entity, &requester) {
        return Err(ApiError::forbidden("write access is required"));
    }
    let expected_len = referenced_len(&entity, attachment)?;
    let max = state.limits.max_attachment_bytes;
    let limit = u64::try_from(max).unwrap_or(u64::MAX);
    // A declared length is checked before a byte is read.
    if let Some(declared) = body.size_hint().exact() {
        if declared > limit {
            return Err(http::too_large(max));
        }
        if declared != expected_len {
            return Err(length_differs());
        }
    }
    let mut upload = Upload {
        claim: Claim::take(&state.uploads, id, attachment)?,
        store: Arc::clone(&state.store),
        staged: false,
        finished: false,
    };
    let mut chunker = Chunker::default();
    let mut received = 0u64;
    let progress = state.limits.progress_timeout;
    let stalled = || {
        ApiError::new(
            ErrorCode::Timeout,
            format!(
                "the upload made no progress for {} s; resume it with a new request",
                progress.as_secs()
            ),
        )
    };
    while let Some(frame) = tokio::time::timeout(progress, body.frame())
        .await
        .map_err(|_| stalled())?
    {
        let frame = frame.map_err(|_| ApiError::bad_request("the body could not be read"))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received = received.saturating_add(data.len() as u64);
        if received > limit {
            return Err(http::too_large(max));
        }
        if received > expected_len {
            return Err(length_differs());
        }
        chunker.push(&data);
        if chunker.ready_bytes() >= ATTACHMENT_BATCH {
            upload.stage(state, chunker.take()).await?;
        }
    }
    if received != expected_len {
        return Err(length_differs());
    }
    upload.stage(state, chunker.take_rest()).await?;
    // The entity may have changed while the body arrived: the reference must still give this length, and the
    // requester still write access.
    let entity = load_visible(state, id, &requester).await?;
    if !writable(&entity, &requester) {
        return Err(ApiError::forbidden("write access is required"));
    }
    if referenced_len(&entity, attachment).ok() != Some(received) {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "the entity's reference to the attachment changed during the upload",
        ));
    }
    let claim = Arc::clone(&upload.claim);
    blocking(state, move |store| {
        let _claim = claim;
        Ok(store.finish_attachment(id, attachment, received)?)
    })
    .await?;
    upload.finished = true;
    tracing::debug!(bytes = received, "attachment stored");
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        OCTET_STREAM,
        Bytes::new(),
    ))
}

pub(super) async fn get_attachment(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: EntityId,
    attachment: AttachmentId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    load_visible(state, id, &requester).await?;
    let range = request.headers().get(RANGE).map(parse_range).transpose()?;
    let partial = range.is_some();
    let unsatisfiable = |total: u64| {
        ApiError::new(
            ErrorCode::RangeNotSatisfiable,
            format!("the stream has {total} bytes"),
        )
    };
    // More than a piece is streamed, ranged or not; anything else is read at once.
    let (total, wanted, bytes) = blocking(state, move |store| {
        let total = store
            .attachment_len(id, attachment)?
            .ok_or_else(ApiError::not_found)?;
        let requested = range.unwrap_or(0..total);
        if requested.start >= total.max(1) || requested.start >= requested.end {
            return Err(unsatisfiable(total));
        }
        let wanted = requested.start..requested.end.min(total);
        if wanted.end - wanted.start > ATTACHMENT_BATCH as u64 {
            return Ok((total, wanted, None));
        }
        let bytes = store
            .read_attachment(id, attachment, wanted.clone())?
            .ok_or_else(ApiError::not_found)?;
        Ok((total, wanted, Some(bytes)))
    })
    .await?;
    let status = if partial {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let length = wanted.end - wanted.start;
    let mut response = match bytes {
        Some(bytes) => http::with_type(status, OCTET_STREAM, Bytes::from(bytes)),
        None => {
            let mut response = Response::new(stream_attachment(
                state,
                id,
                attachment,
                wanted.clone(),
                total,
            ));
            *response.status_mut() = status;
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
            response
        }
    };
    if partial {
        let value = format!(
            "bytes {}-{}/{total}",
            wanted.start,
            wanted.end.saturating_sub(1)
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// A body of bytes `wanted` of the sealed stream of an attachment of `total` bytes (all of it, or a range), read
/// from the store in pieces of [`ATTACHMENT_BATCH`] bytes by a task that reads a piece only once the previous one
/// has left the channel: one piece waits while another is being sent, whatever the size asked for.
///
/// Each piece is its own read; were the attachment replaced meanwhile, the answer would mix two versions. So around
/// every piece the task checks that the length and the header (whose random nonce prefix every new sealing draws
/// afresh) are still the ones it started with, and cuts the answer short (an error the client sees, not a body
/// that looks complete) if not.
fn stream_attachment(
    state: &Arc<State>,
    id: EntityId,
    attachment: AttachmentId,
    wanted: std::ops::Range<u64>,
    total: u64,
) -> http::Body {
    let (sender, body) = http::channel(wanted.end.saturating_sub(wanted.start), 1);
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        let mut header: Option<Vec<u8>> = None;
        let mut offset = wanted.start;
        while offset < wanted.end {
            // Room in the channel first, so that at most one piece waits there and one is being sent.
            let Ok(permit) = sender.reserve().await else {
                // The client has gone.
                return;
            };
            let end = offset
                .saturating_add(ATTACHMENT_BATCH as u64)
                .min(wanted.end);
            let store = Arc::clone(&store);
            let known = header.clone();
            let read = tokio::task::spawn_blocking(move || {
                read_piece(store.as_ref(), id, attachment, offset..end, total, known)
            })
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("the read task failed")));
            let piece = match read {
                Ok((piece, first_header)) => {
                    header = Some(first_header);
                    piece
                }
                Err(error) => {
                    tracing::warn!(%error, "attachment download cut short");
                    permit.send(Err(error));
                    return;
                }
            };
            offset = end;
            permit.send(Ok(Bytes::from(piece)));
        }
    });
    body
}

/// Bytes `range` of an attachment's stream of `total` bytes, with the stream's header, after checking that the
/// stream still has `total` bytes and the `header` the answer started with (for the first piece: the header read
/// just before it).
fn read_piece(
    store: &dyn Store,
    id: EntityId,
    attachment: AttachmentId,
    range: std::ops::Range<u64>,
    total: u64,
    header: Option<Vec<u8>>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let first = match header {
        Some(header) => header,
        None => read_header(store, id, attachment, total)?,
    };
    let piece = store
        .read_attachment(id, attachment, range.clone())
        .map_err(std::io::Error::other)?
        .ok_or_else(changed)?;
    if piece.len() as u64 != range.end - range.start {
        return Err(changed());
    }
    let now = read_header(store, id, attachment, total)?;
    let len = store
        .attachment_len(id, attachment)
        .map_err(std::io::Error::other)?;
    if now != first || len != Some(total) {
        return Err(changed());
    }
    Ok((piece, first))
}

/// The header of an attachment's stream of `total` bytes, as stored now.
fn read_header(
    store: &dyn Store,
    id: EntityId,
    attachment: AttachmentId,
    total: u64,
) -> std::io::Result<Vec<u8>> {
    let header_len = (HEADER_LEN as u64).min(total);
    store
        .read_attachment(id, attachment, 0..header_len)
        .map_err(std::io::Error::other)?
        .ok_or_else(changed)
}

fn changed() -> std::io::Error {
    std::io::Error::other("the attachment changed while it was being read")
}

/// Parses `bytes=a-b` (inclusive) or `bytes=a-` into a half-open range.
fn parse_range(value: &HeaderValue) -> Result<std::ops::Range<u64>, ApiError> {
    let invalid =
        || ApiError::bad_request("only one range of the form bytes=a-b or bytes=a- is supported");
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("bytes="))
        .ok_or_else(invalid)?;
    let (start, end) = spec.split_once('-').ok_or_else(invalid)?;
    let start: u64 = start.parse().map_err(|_| invalid())?;
    let end = if end.is_empty() {
        u64::MAX
    } else {
        end.parse::<u64>().map_err(|_| invalid())?.saturating_add(1)
    };
    Ok(start..end)
}
