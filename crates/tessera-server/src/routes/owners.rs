//! Owners: registration (by the administrator, or below a logged-in owner), reads, and added key bundles.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_keys::{Owner, OwnerId};
use tessera_wire::Written;

use super::{blocking, body, expected_rev, requester, respond};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn register_owner(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let admin = http::admin_token(request.headers()).is_some_and(|token| state.is_admin(token));
    let parent = if admin {
        None
    } else {
        Some(requester(state, &request)?.owner)
    };
    let accept = http::accepted(request.headers());
    let mut owner: Owner = body(state, request).await?;
    if parent.is_some_and(|parent| owner.parent != Some(parent)) {
        return Err(ApiError::forbidden(
            "an owner can only register owners below itself",
        ));
    }
    check_bundles(&owner, None)?;
    // The registration right is checked now; the link itself is not kept, so that a database dump does not tell
    // which HCP registered which patient (protocol v2 privacy).
    owner.parent = None;
    let rev = blocking(state, move |store| Ok(store.put_owner(&owner, None)?)).await?;
    Ok(http::respond(accept, StatusCode::CREATED, &Written { rev }))
}

/// Every bundle is the owner's and self-signed; bundles beyond `existing` are chained from an existing one.
fn check_bundles(owner: &Owner, existing: Option<&Owner>) -> Result<(), ApiError> {
    if owner.bundles.is_empty() {
        return Err(ApiError::bad_request(
            "an owner needs at least one key bundle",
        ));
    }
    let known = existing.map_or(&[][..], |e| e.bundles.as_slice());
    if owner.bundles.get(..known.len()) != Some(known) {
        return Err(ApiError::bad_request(
            "existing key bundles cannot be changed or removed",
        ));
    }
    for bundle in &owner.bundles {
        if bundle.owner() != owner.id {
            return Err(ApiError::bad_request(
                "a key bundle belongs to another owner",
            ));
        }
        bundle.verify_self_signature()?;
    }
    for bundle in owner.bundles.get(known.len()..).unwrap_or_default() {
        if existing.is_some()
            && !known
                .iter()
                .any(|older| bundle.verify_chain_from(older).is_ok())
        {
            return Err(ApiError::bad_request(
                "a new key bundle must be signed by an existing one",
            ));
        }
    }
    Ok(())
}

pub(super) async fn get_owner(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: OwnerId,
) -> Result<Resp, ApiError> {
    requester(state, request)?;
    let owner = blocking(state, move |store| Ok(store.get_owner(id)?)).await?;
    let owner = owner.ok_or_else(ApiError::not_found)?;
    Ok(respond(request, StatusCode::OK, &owner))
}

pub(super) async fn update_owner(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: OwnerId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    if requester.owner != id {
        return Err(ApiError::forbidden(
            "only an owner can add its own key bundles",
        ));
    }
    let rev = expected_rev(&request)?;
    let accept = http::accepted(request.headers());
    let owner: Owner = body(state, request).await?;
    let rev = blocking(state, move |store| {
        let stored = store.get_owner(id)?.ok_or_else(ApiError::not_found)?;
        if owner.id != id || owner.kind != stored.value.kind || owner.parent != stored.value.parent
        {
            return Err(ApiError::bad_request(
                "an owner's id, kind and parent cannot change",
            ));
        }
        check_bundles(&owner, Some(&stored.value))?;
        Ok(store.put_owner(&owner, Some(rev))?)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &Written { rev }))
}
