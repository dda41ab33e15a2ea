//! Exchange data: stored by its delegator after verification, read by its two parties, extended with wraps.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_keys::{ExchangeData, ExchangeDataId, Owner, OwnerId, PinnedFingerprints, TrustPolicy};
use tessera_wire::Written;

use super::{blocking, body, expected_rev, hide_revision, requester, respond};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn create_exchange_data(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let data: ExchangeData = body(state, request).await?;
    if data.delegator() != requester.owner {
        return Err(ApiError::forbidden(
            "only the delegator can store its exchange data",
        ));
    }
    let rev = blocking(state, move |store| {
        let delegator = store
            .get_owner(data.delegator())?
            .ok_or_else(ApiError::not_found)?;
        if store.get_owner(data.delegate())?.is_none() {
            return Err(ApiError::bad_request(
                "the delegate is not a registered owner",
            ));
        }
        data.verify(&stored_bundle(&delegator.value, &data.signer())?)?;
        store.put_exchange_data(&data, None).map_err(hide_revision)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::CREATED, &Written { rev }))
}

fn participant(data: &ExchangeData, owner: OwnerId) -> bool {
    data.delegator() == owner || data.delegate() == owner
}

pub(super) async fn get_exchange_data(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: ExchangeDataId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let data = blocking(state, move |store| Ok(store.get_exchange_data(id)?)).await?;
    let data = data
        .filter(|d| participant(&d.value, requester.owner))
        .ok_or_else(ApiError::not_found)?;
    Ok(respond(request, StatusCode::OK, &data))
}

pub(super) async fn list_exchange_data(
    state: &Arc<State>,
    request: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let list = blocking(state, move |store| Ok(store.exchange_data_of(owner)?)).await?;
    Ok(respond(request, StatusCode::OK, &list))
}

pub(super) async fn add_wraps(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: ExchangeDataId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let rev = expected_rev(&request)?;
    let accept = http::accepted(request.headers());
    let data: ExchangeData = body(state, request).await?;
    let rev = blocking(state, move |store| {
        let stored = store
            .get_exchange_data(id)?
            .filter(|d| participant(&d.value, requester.owner))
            .ok_or_else(ApiError::not_found)?;
        let kept = stored
            .value
            .wrapped_for()
            .all(|fp| stored.value.wrap(&fp) == data.wrap(&fp));
        // A new wrap must be for a stored bundle of either party, or a garbage wrap could squat a key's slot.
        let party_keys: Vec<tessera_keys::Fingerprint> =
            [stored.value.delegator(), stored.value.delegate()]
                .into_iter()
                .filter_map(|owner| store.get_owner(owner).ok().flatten())
                .flat_map(|owner| {
                    owner
                        .value
                        .bundles
                        .iter()
                        .map(tessera_keys::KeyBundle::fingerprint)
                        .collect::<Vec<_>>()
                })
                .collect();
        let known = data.wrapped_for().all(|fp| party_keys.contains(&fp));
        if data.id() != id
            || data.canonical_bytes() != stored.value.canonical_bytes()
            || !kept
            || !known
        {
            return Err(ApiError::bad_request(
                "only wraps can be added to exchange data; the signed part and existing wraps stay",
            ));
        }
        Ok(store.put_exchange_data(&data, Some(rev))?)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &Written { rev }))
}

/// Trusts exactly the bundles stored for an owner (the server has no other source of truth).
fn stored_bundle(
    owner: &Owner,
    fingerprint: &tessera_keys::Fingerprint,
) -> Result<tessera_keys::TrustedBundle, ApiError> {
    let bundle = owner
        .bundles
        .iter()
        .find(|b| b.fingerprint() == *fingerprint)
        .cloned()
        .ok_or_else(|| ApiError::bad_request("signed by a key bundle the owner does not have"))?;
    Ok(PinnedFingerprints::new([*fingerprint]).trust(bundle)?)
}
