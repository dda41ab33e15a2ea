//! The side map: an owner's own entries, by delegation key.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_keys::DelegationKey;
use tessera_sharing::SideMapEntry;

use super::{blocking, body, requester, respond};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn put_side_map(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let owner = requester(state, &request)?.owner;
    let entry: SideMapEntry = body(state, request).await?;
    if entry.owner != owner {
        return Err(ApiError::bad_request("a side-map entry goes to its owner"));
    }
    blocking(state, move |store| Ok(store.put_side_map_entry(&entry)?)).await?;
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}

pub(super) async fn get_side_map(
    state: &Arc<State>,
    request: &Request<Incoming>,
    key: DelegationKey,
) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let entry = blocking(state, move |store| Ok(store.side_map_entry(owner, &key)?)).await?;
    Ok(respond(
        request,
        StatusCode::OK,
        &entry.ok_or_else(ApiError::not_found)?,
    ))
}
