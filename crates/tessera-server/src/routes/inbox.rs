//! Inboxes: exchange data delivered sealed to its delegate (protocol v2). The server files a message under its
//! recipient and learns nothing else: not the sender (any logged-in owner may deliver), not the parties inside.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_keys::{InboxMessage, InboxMessageId, MAX_INBOX_MESSAGE_LEN, OwnerId};
use tessera_wire::{ErrorCode, INBOX_PAGE};

use super::{blocking, body, requester, respond};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

/// The most messages one inbox holds: a sender cannot grow another owner's inbox without bound, and the
/// recipient's next login empties it.
pub(crate) const MAX_INBOX_MESSAGES: u64 = 65_536;

pub(super) async fn deliver(
    state: &Arc<State>,
    request: Request<Incoming>,
    recipient: OwnerId,
) -> Result<Resp, ApiError> {
    requester(state, &request)?;
    let message: InboxMessage = body(state, request).await?;
    if message.sealed.len() > MAX_INBOX_MESSAGE_LEN {
        return Err(ApiError::bad_request(format!(
            "an inbox message holds at most {MAX_INBOX_MESSAGE_LEN} sealed bytes"
        )));
    }
    blocking(state, move |store| {
        let owner = store.get_owner(recipient)?.ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                "the recipient is not a registered owner; check the owner id (nothing was delivered)",
            )
        })?;
        if !owner
            .value
            .bundles
            .iter()
            .any(|bundle| bundle.fingerprint() == message.recipient)
        {
            return Err(ApiError::bad_request(
                "the message is sealed for a key bundle the recipient does not have; read its owner record again",
            ));
        }
        if store.inbox_len(recipient)? >= MAX_INBOX_MESSAGES {
            return Err(ApiError::new(
                ErrorCode::Busy,
                "the recipient's inbox is full: it empties when the recipient next logs in; retry later",
            ));
        }
        Ok(store.put_inbox_message(recipient, &message)?)
    })
    .await?;
    Ok(no_content())
}

pub(super) async fn list(
    state: &Arc<State>,
    request: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let mut messages = blocking(state, move |store| Ok(store.inbox(owner)?)).await?;
    messages.truncate(INBOX_PAGE);
    Ok(respond(request, StatusCode::OK, &messages))
}

pub(super) async fn delete(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: &str,
) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let id = InboxMessageId::from_bytes(http::parse_hex::<16>(id)?);
    let removed = blocking(state, move |store| {
        Ok(store.delete_inbox_message(owner, id)?)
    })
    .await?;
    if removed {
        Ok(no_content())
    } else {
        Err(ApiError::not_found())
    }
}

fn no_content() -> Resp {
    http::with_type(StatusCode::NO_CONTENT, tessera_wire::JSON, Bytes::new())
}
