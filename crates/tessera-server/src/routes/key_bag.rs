//! The key bag: an owner's sealed exchange secrets, stored and read by their owner only.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_keys::{KeyBagEntry, KeyBagEntryId};
use tessera_wire::KeyBagSwap;

use super::{blocking, body, requester, respond};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn get_key_bag(
    state: &Arc<State>,
    request: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let entries = blocking(state, move |store| Ok(store.key_bag(owner)?)).await?;
    Ok(respond(request, StatusCode::OK, &entries))
}

pub(super) async fn put_key_bag_entry(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: &str,
) -> Result<Resp, ApiError> {
    let owner = requester(state, &request)?.owner;
    let id = KeyBagEntryId::from_bytes(http::parse_hex::<32>(id)?);
    let entry: KeyBagEntry = body(state, request).await?;
    if entry.owner != owner || entry.id != id {
        return Err(ApiError::bad_request(
            "a key-bag entry goes to its owner's bag under its own id",
        ));
    }
    blocking(state, move |store| Ok(store.put_key_bag_entry(&entry)?)).await?;
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}

/// Replaces one entry of the requester's own bag by compare-and-swap (the owner state): 409 if the stored entry is
/// not the one the client names as `previous`.
pub(super) async fn swap_key_bag_entry(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: &str,
) -> Result<Resp, ApiError> {
    let owner = requester(state, &request)?.owner;
    let id = KeyBagEntryId::from_bytes(http::parse_hex::<32>(id)?);
    let swap: KeyBagSwap = body(state, request).await?;
    let same_slot = |entry: &KeyBagEntry| entry.owner == owner && entry.id == id;
    if !same_slot(&swap.entry) || !swap.previous.as_ref().is_none_or(same_slot) {
        return Err(ApiError::bad_request(
            "a key-bag entry goes to its owner's bag under its own id",
        ));
    }
    blocking(state, move |store| {
        Ok(store.swap_key_bag_entry(&swap.entry, swap.previous.as_ref())?)
    })
    .await?;
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}
