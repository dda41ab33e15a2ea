//! Recovery data: stored by a logged-in owner, fetched without a session by whoever knows its id.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_store::RecoveryData;
use tessera_wire::RecoveryBody;

use super::{blocking, body, now, requester, respond};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn put_recovery(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: [u8; 32],
) -> Result<Resp, ApiError> {
    requester(state, &request)?;
    let recovery: RecoveryBody = body(state, request).await?;
    let data = RecoveryData {
        id,
        sealed: recovery.sealed,
        expires: recovery.expires,
    };
    blocking(state, move |store| Ok(store.put_recovery_data(&data)?)).await?;
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}

/// Recovery data is fetched without a session (its owner has lost its key): knowing the id, the hash of the
/// recovery key, is the capability.
pub(super) async fn get_recovery(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: [u8; 32],
) -> Result<Resp, ApiError> {
    let data = blocking(state, move |store| Ok(store.get_recovery_data(&id)?)).await?;
    let data = data
        .filter(|d| d.expires > now())
        .ok_or_else(ApiError::not_found)?;
    Ok(respond(
        request,
        StatusCode::OK,
        &RecoveryBody {
            sealed: data.sealed,
            expires: data.expires,
        },
    ))
}
