//! Request and response plumbing: bodies with size limits, streamed response bodies, content negotiation,
//! access-key headers, errors.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_keys::AccessControlKey;
use tokio::sync::{Semaphore, mpsc};

use crate::error::ApiError;
use tessera_wire::{ACCESS_KEYS_HEADER, ErrorBody, ErrorCode, Format, JSON};

/// The body of every answer: whole ([`full`]) for most, streamed ([`channel`]) for attachments.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

pub(crate) type Resp = Response<Body>;

/// A body of `bytes`, sent at once.
pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// A body of exactly `len` bytes that a task feeds through the returned sender, `capacity` pieces ahead of the
/// client at most. An `Err` sent, or the sender dropped before `len` bytes, aborts the answer (the client sees a
/// cut connection, never a short body that looks complete); a send fails once the client has gone.
pub(crate) fn channel(len: u64, capacity: usize) -> (mpsc::Sender<std::io::Result<Bytes>>, Body) {
    let (sender, receiver) = mpsc::channel(capacity);
    let body = ChannelBody {
        receiver,
        remaining: len,
    };
    (sender, body.boxed())
}

/// See [`channel`].
struct ChannelBody {
    receiver: mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        match this.receiver.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(bytes))) => match this.remaining.checked_sub(bytes.len() as u64) {
                Some(remaining) => {
                    this.remaining = remaining;
                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                }
                None => Poll::Ready(Some(Err(std::io::Error::other(
                    "a streamed body is longer than announced",
                )))),
            },
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error))),
            Poll::Ready(None) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "a streamed body ended before its announced length",
            )))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads a whole body, refusing more than `limit` bytes with 413.
pub(crate) async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error)
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(limit))
        }
        Err(_) => Err(ApiError::bad_request("the body could not be read")),
    }
}

/// Bodies of at most this many bytes are read before authentication without taking from the shared budget
/// ([`UnauthenticatedBudget`]): a login is about 600 bytes in JSON, and such bodies are bounded in total by the
/// connection limit (`Limits::max_connections` times this).
pub(crate) const SMALL_UNAUTHENTICATED_BODY: usize = 2048;

/// The bytes the server holds, in total, for the bodies of requests whose sender has not proved who it is, beyond
/// the small ones ([`SMALL_UNAUTHENTICATED_BODY`]). A request that finds it spent is answered 503 at once (before a
/// byte of its body is read), so that no number of connections sending large bodies can hold more memory.
#[derive(Debug)]
pub(crate) struct UnauthenticatedBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl UnauthenticatedBudget {
    /// A budget of `total` bytes.
    pub(crate) fn new(total: usize) -> Self {
        Self {
            bytes: Arc::new(Semaphore::new(total.min(Semaphore::MAX_PERMITS))),
            total,
        }
    }
}

/// Reads the whole body of a request before its sender is authenticated: refused with 413 above `limit` bytes
/// (at once when its declared length says so), and with 503 when it would take more than what is left of `budget`
/// (a body of unknown length counts as `limit` bytes).
pub(crate) async fn read_unauthenticated(
    body: Incoming,
    limit: usize,
    budget: &UnauthenticatedBudget,
) -> Result<Bytes, ApiError> {
    let declared = body.size_hint().exact();
    let needed = match declared {
        Some(len) if len > limit as u64 => return Err(too_large(limit)),
        Some(len) => usize::try_from(len).unwrap_or(limit),
        None => limit,
    };
    let _permit = if needed > SMALL_UNAUTHENTICATED_BODY {
        let permits = u32::try_from(needed).unwrap_or(u32::MAX);
        let permit = Arc::clone(&budget.bytes)
            .try_acquire_many_owned(permits)
            .map_err(|_| {
                ApiError::new(
                    ErrorCode::Busy,
                    format!(
                        "the server holds its limit of {} bytes of bodies from clients without a session; retry \
                         shortly",
                        budget.total
                    ),
                )
            })?;
        Some(permit)
    } else {
        None
    };
    read_body(body, needed).await
}

/// 413: a body over `limit` bytes.
pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body exceeds the limit of {limit} bytes"),
    )
}

/// Decodes a body in the format its `Content-Type` names (JSON when absent).
pub(crate) fn decode<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    limit: usize,
) -> Result<T, ApiError> {
    let format = match headers.get(CONTENT_TYPE) {
        None => Format::Json,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(Format::from_media_type)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send application/json or application/x-bincode",
                )
            })?,
    };
    format.decode(body, limit as u64).map_err(|reason| {
        ApiError::bad_request(format!("malformed {} body: {reason}", format.media_type()))
    })
}

/// The format the client accepts: bincode if it asks for it, else JSON.
pub(crate) fn accepted(headers: &HeaderMap) -> Format {
    let wants_bincode = headers
        .get(ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .split(',')
                .any(|part| Format::from_media_type(part) == Some(Format::Bincode))
        });
    if wants_bincode {
        Format::Bincode
    } else {
        Format::Json
    }
}

/// An answer with `value` in `format`.
pub(crate) fn respond<T: Serialize>(format: Format, status: StatusCode, value: &T) -> Resp {
    match format.encode(value) {
        Ok(body) => with_type(status, format.media_type(), Bytes::from(body)),
        Err(_) => error(ApiError::internal()),
    }
}

/// An answer with raw bytes.
pub(crate) fn with_type(status: StatusCode, media_type: &'static str, body: Bytes) -> Resp {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}

/// An error answer, always JSON.
pub(crate) fn error(error: ApiError) -> Resp {
    let status = error.status();
    let body = ErrorBody {
        error: error.code,
        message: error.message,
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    with_type(status, JSON, Bytes::from(bytes))
}

/// The bearer token of the request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// The administrator token of the request, if any (`Authorization: Admin <token>`).
pub(crate) fn admin_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Admin ")
        .map(str::trim)
}

/// Access-control keys presented in `x-tessera-access-keys` headers (comma-separated hex, the header may repeat).
pub(crate) fn access_keys(
    headers: &HeaderMap,
    max: usize,
) -> Result<Vec<AccessControlKey>, ApiError> {
    let mut keys = Vec::new();
    for value in headers.get_all(ACCESS_KEYS_HEADER) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("access keys must be ASCII hex"))?;
        for item in text
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            if keys.len() == max {
                return Err(too_many_keys(max));
            }
            keys.push(parse_access_key(item)?);
        }
    }
    Ok(keys)
}

pub(crate) fn too_many_keys(max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::TooManyAccessKeys,
        format!("at most {max} access keys per request; register them once per session instead"),
    )
}

fn parse_access_key(hex: &str) -> Result<AccessControlKey, ApiError> {
    let bytes = tessera_keys::wire::unhex(hex)
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .ok_or_else(|| ApiError::bad_request("an access key is 32 lowercase hex digits"))?;
    Ok(AccessControlKey::from_bytes(bytes))
}

/// Parses lowercase hex of exactly `N` bytes from a path or query (the one strict decoder, `tessera_keys::wire::unhex`:
/// uppercase or a sign is refused, so one key has one spelling).
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], ApiError> {
    tessera_keys::wire::unhex(text)
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or_else(|| ApiError::bad_request(format!("expected {} lowercase hex digits", 2 * N)))
}

/// The value of query parameter `name`.
pub(crate) fn query<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_has_one_spelling() {
        assert_eq!(parse_hex::<2>("0aff").ok(), Some([0x0a, 0xff]));
        for other in [
            "0AFF", "0aFf", "+aff", "0a+f", "0af", "0aff0", "0x0a", "0a f",
        ] {
            assert!(parse_hex::<2>(other).is_err(), "{other:?} decoded");
        }
        let key = "00112233445566778899aabbccddeeff";
        assert!(parse_access_key(key).is_ok());
        assert!(parse_access_key(&key.to_uppercase()).is_err());
        assert!(parse_access_key(&key.replace("00", "+0")).is_err());
    }

    #[test]
    fn access_keys_refuse_other_lengths() {
        assert!(parse_access_key("").is_err());
        assert!(parse_access_key("00112233445566778899aabbccddee").is_err());
        assert!(parse_access_key("00112233445566778899aabbccddeeff00").is_err());
    }
}
