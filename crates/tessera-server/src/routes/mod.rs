//! Routing of `/v1`: the route table, and the helpers every handler shares. Every handler checks who asks
//! before it reads, and answers 404 for a record the requester may not see, never 403, so that nobody learns
//! whether it exists. The handlers live in one module per resource.

mod attachments;
mod entities;
mod inbox;
mod key_bag;
mod owners;
mod recovery;
mod session;
mod side_map;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::{Method, Request, StatusCode};
use tessera_keys::{DelegationKey, OwnerId, unix_now as now};
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId, Permission};
use tessera_store::Store;
use tessera_wire::ErrorCode;
use tracing::Instrument;

use crate::auth::Requester;
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(crate) use self::attachments::Uploads;

/// The OpenAPI description of this API, committed beside the code and served as is.
const OPENAPI: &str = include_str!("../../openapi.json");

/// The route of `path` for log lines: every segment of 16 characters or more (an owner, entity, inbox-message,
/// key-bag or attachment id; no literal segment of the API is that long) becomes `{id}`, so that no owner or record
/// id reaches a log line at info level (`/v1/owners/0b6a…` → `/v1/owners/{id}`).
fn route_of(path: &str) -> String {
    path.split('/')
        .map(|segment| if segment.len() >= 16 { "{id}" } else { segment })
        .collect::<Vec<_>>()
        .join("/")
}

/// Answers one request: routing, a timeout, a tracing span with ids and sizes only, and metrics. On a connection
/// taken beyond the connection limit (`overloaded`), only the health check is answered; everything else is 503.
pub(crate) async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    overloaded: bool,
) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = %route_of(request.uri().path())
    );
    let bytes_in = request.body().size_hint().exact().unwrap_or(0);
    let answer = if overloaded && !is_health(&request) {
        Ok(Err(ApiError::new(
            ErrorCode::Busy,
            format!(
                "the server is at its limit of {} connections; retry shortly",
                state.limits.max_connections
            ),
        )))
    } else if is_upload(&request) {
        // An upload is bounded by its progress (`Limits::progress_timeout`, between two pieces of its body), not
        // by a total time that a large upload on a slow link would exceed.
        Ok(route(&state, request).instrument(span.clone()).await)
    } else {
        tokio::time::timeout(state.limits.request_timeout, route(&state, request))
            .instrument(span.clone())
            .await
    };
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => http::error(error),
        Err(_) => http::error(ApiError::new(
            ErrorCode::Timeout,
            "the request took too long",
        )),
    };
    let bytes_out = response.body().size_hint().exact().unwrap_or(0);
    let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            bytes_in,
            bytes_out,
            micros,
            "answered"
        )
    });
    state
        .metrics
        .record(response.status().as_u16(), bytes_in, bytes_out, micros);
    Ok(response)
}

/// Whether `request` is the health check, which an overloaded server still answers.
fn is_health<B>(request: &Request<B>) -> bool {
    request.method() == Method::GET && request.uri().path() == "/v1/health"
}

/// Whether `request` uploads an attachment (`PUT /v1/entities/{id}/attachments/{aid}`).
fn is_upload<B>(request: &Request<B>) -> bool {
    request.method() == Method::PUT
        && matches!(
            request
                .uri()
                .path()
                .trim_start_matches('/')
                .split('/')
                .collect::<Vec<_>>()
                .as_slice(),
            ["v1", "entities", _, "attachments", _]
        )
}

async fn route(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["v1", "health"]) => Ok(http::with_type(
            StatusCode::OK,
            "text/plain",
            Bytes::from_static(b"ok"),
        )),
        (&Method::GET, ["metrics"]) => Ok(http::with_type(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            Bytes::from(state.metrics.render()),
        )),
        (&Method::GET, ["v1", "openapi.json"]) => Ok(http::with_type(
            StatusCode::OK,
            tessera_wire::JSON,
            Bytes::from_static(OPENAPI.as_bytes()),
        )),
        (&Method::POST, ["v1", "auth", "challenge"]) => session::challenge(state, request).await,
        (&Method::POST, ["v1", "auth", "login"]) => session::login(state, request).await,
        (&Method::POST, ["v1", "auth", "access-keys"]) => {
            session::register_access_keys(state, request).await
        }
        (&Method::POST, ["v1", "owners"]) => owners::register_owner(state, request).await,
        (&Method::GET, ["v1", "owners", id]) => {
            owners::get_owner(state, &request, parse_owner(id)?).await
        }
        (&Method::PUT, ["v1", "owners", id]) => {
            owners::update_owner(state, request, parse_owner(id)?).await
        }
        (&Method::GET, ["v1", "inbox"]) => inbox::list(state, &request).await,
        (&Method::POST, ["v1", "owners", id, "inbox"]) => {
            inbox::deliver(state, request, parse_owner(id)?).await
        }
        (&Method::DELETE, ["v1", "inbox", id]) => inbox::delete(state, &request, id).await,
        (&Method::GET, ["v1", "key-bag"]) => key_bag::get_key_bag(state, &request).await,
        (&Method::PUT, ["v1", "key-bag", id, "swap"]) => {
            key_bag::swap_key_bag_entry(state, request, id).await
        }
        (&Method::PUT, ["v1", "key-bag", id]) => {
            key_bag::put_key_bag_entry(state, request, id).await
        }
        (&Method::POST, ["v1", "entities"]) => entities::create_entities(state, request).await,
        (&Method::GET, ["v1", "entities"]) => entities::query_entities(state, &request).await,
        (&Method::POST, ["v1", "entities", "share"]) => entities::share(state, request).await,
        (&Method::POST, ["v1", "entities", "revoke"]) => entities::revoke(state, request).await,
        (&Method::GET, ["v1", "entities", id]) => {
            entities::get_entity(state, &request, parse_entity(id)?).await
        }
        (&Method::PUT, ["v1", "entities", id]) => {
            entities::update_entity(state, request, parse_entity(id)?, false).await
        }
        (&Method::DELETE, ["v1", "entities", id]) => {
            entities::delete_entity(state, &request, parse_entity(id)?).await
        }
        (&Method::PUT, ["v1", "entities", id, "rotation"]) => {
            entities::update_entity(state, request, parse_entity(id)?, true).await
        }
        (&Method::PUT, ["v1", "entities", id, "attachments", aid]) => {
            attachments::put_attachment(state, request, parse_entity(id)?, parse_attachment(aid)?)
                .await
        }
        (&Method::GET, ["v1", "entities", id, "attachments", aid]) => {
            attachments::get_attachment(state, &request, parse_entity(id)?, parse_attachment(aid)?)
                .await
        }
        (&Method::PUT, ["v1", "recovery", id]) => {
            recovery::put_recovery(state, request, http::parse_hex::<32>(id)?).await
        }
        (&Method::GET, ["v1", "recovery", id]) => {
            recovery::get_recovery(state, &request, http::parse_hex::<32>(id)?).await
        }
        (&Method::PUT, ["v1", "side-map"]) => side_map::put_side_map(state, request).await,
        (&Method::GET, ["v1", "side-map", key]) => {
            side_map::get_side_map(
                state,
                &request,
                DelegationKey::from_bytes(http::parse_hex::<32>(key)?),
            )
            .await
        }
        _ => Err(ApiError::new(
            ErrorCode::NoRoute,
            format!("no route for {method} {path}"),
        )),
    }
}

// ---- helpers ----

/// Runs a store operation on the blocking pool.
async fn blocking<T, F>(state: &Arc<State>, operation: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
{
    let store = Arc::clone(&state.store);
    tokio::task::spawn_blocking(move || operation(store.as_ref()))
        .await
        .map_err(|_| ApiError::internal())?
}

/// The authenticated requester, with the access keys presented in the request's headers.
fn requester<B>(state: &State, request: &Request<B>) -> Result<Requester, ApiError> {
    let token = http::bearer(request.headers()).ok_or_else(ApiError::unauthorized)?;
    let mut requester = state
        .sessions
        .requester(token)
        .ok_or_else(ApiError::unauthorized)?;
    requester.present(http::access_keys(
        request.headers(),
        state.limits.max_access_keys,
    )?);
    Ok(requester)
}

/// Reads and decodes the body of a request whose sender has not proved who it is (a login), within the small
/// limits that apply before authentication (`http::read_unauthenticated`).
async fn unauthenticated_body<T: serde::de::DeserializeOwned>(
    state: &State,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = state.limits.max_unauthenticated_body_bytes;
    let bytes = http::read_unauthenticated(body, limit, &state.unauthenticated).await?;
    http::decode(&parts.headers, &bytes, limit)
}

/// Reads and decodes a body within the size limit.
async fn body<T: serde::de::DeserializeOwned>(
    state: &State,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = http::read_body(body, state.limits.max_body_bytes).await?;
    http::decode(&parts.headers, &bytes, state.limits.max_body_bytes)
}

fn respond<B, T: serde::Serialize>(request: &Request<B>, status: StatusCode, value: &T) -> Resp {
    http::respond(http::accepted(request.headers()), status, value)
}

fn parse_owner(text: &str) -> Result<OwnerId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("malformed owner id"))
}

fn parse_entity(text: &str) -> Result<EntityId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("malformed entity id"))
}

fn parse_attachment(text: &str) -> Result<AttachmentId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request("malformed attachment id"))
}

fn expected_rev<B>(request: &Request<B>) -> Result<u64, ApiError> {
    http::query(request.uri().query(), "rev")
        .ok_or_else(|| ApiError::bad_request("the revision being replaced is required: ?rev=N"))?
        .parse()
        .map_err(|_| ApiError::bad_request("malformed revision"))
}

/// Whether the requester may see `entity`: it presented the access-control key of one of its delegations (a
/// clear label naming the requester grants nothing).
fn visible(entity: &EncryptedEntity, requester: &Requester) -> bool {
    entity
        .security_metadata
        .delegations
        .keys()
        .any(|key| requester.holds(key))
}

/// Whether the requester may write `entity`: one of the delegations it holds grants write. Only presented
/// access-control keys count, never the clear labels of a delegation (protocol v2).
fn writable(entity: &EncryptedEntity, requester: &Requester) -> bool {
    entity
        .security_metadata
        .delegations
        .iter()
        .any(|(key, d)| d.permission == Permission::Write && requester.holds(key))
}

/// Loads an entity the requester may see, or answers 404.
async fn load_visible(
    state: &Arc<State>,
    id: EntityId,
    requester: &Requester,
) -> Result<EncryptedEntity, ApiError> {
    // A point read by id is answered from redb's cache in microseconds: it runs on the request's own thread,
    // which measured about twice the reads per second of a hop to the blocking pool (benches/transport.rs).
    let entity = state.store.get_entity(id)?;
    entity
        .filter(|e| visible(e, requester))
        .ok_or_else(ApiError::not_found)
}

/// A create that collides with an existing id answers 409 without the stored revision, which would tell someone
/// who may not see the record how often it changed.
fn hide_revision(error: tessera_store::Error) -> ApiError {
    match error {
        tessera_store::Error::Conflict { .. } => {
            ApiError::new(ErrorCode::Conflict, "a record with this id already exists")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn log_routes_hide_ids_and_keep_every_route_of_the_api() {
        assert_eq!(
            route_of("/v1/owners/0b6a4e4c-1d35-4f57-9f5a-2c4e8c0b6a11"),
            "/v1/owners/{id}"
        );
        assert_eq!(
            route_of(
                "/v1/entities/00112233445566778899aabbccddeeff/attachments/ffeeddccbbaa99887766554433221100"
            ),
            "/v1/entities/{id}/attachments/{id}"
        );
        // No literal segment of the API is taken for an id.
        let spec: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap_or_default();
        let paths = spec["paths"].as_object().cloned().unwrap_or_default();
        assert!(paths.len() > 10, "the spec lists the routes");
        for path in paths.keys() {
            assert_eq!(&route_of(path), path);
        }
    }
}
