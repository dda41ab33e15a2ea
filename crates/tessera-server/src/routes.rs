//! Routing and handlers of `/v1`. Every handler checks who asks before it reads, and answers 404 for a record the
//! requester may not see, never 403, so that nobody learns whether it exists.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE};
use hyper::{Method, Request, Response, StatusCode};
use tessera_keys::{
    DelegationKey, ExchangeData, ExchangeDataId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
    PinnedFingerprints, TrustPolicy,
};
use tessera_primitives::stream::HEADER_LEN;
use tessera_sharing::{
    AttachmentId, EncryptedEntity, EntityId, Permission, SearchTag, SideMapEntry, rules,
};
use tessera_store::{RecoveryData, Store};
use tracing::Instrument;

use crate::auth::{MAX_KEYS_PER_SESSION, Registration, Requester};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;
use tessera_wire::{
    AccessKeys, BulkWritten, Challenge, ChallengeRequest, Entities, EntityUpdate, LoginRequest,
    OCTET_STREAM, RecoveryBody, RevokeBody, Session, ShareBody, Written,
};

/// The OpenAPI description of this API, committed beside the code and served as is.
const OPENAPI: &str = include_str!("../openapi.json");

/// Answers one request: routing, a timeout, a tracing span with ids and sizes only, and metrics.
pub(crate) async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let span =
        tracing::info_span!("request", method = %request.method(), path = %request.uri().path());
    let bytes_in = request.body().size_hint().exact().unwrap_or(0);
    let timeout = state.limits.request_timeout;
    let answer = tokio::time::timeout(timeout, route(&state, request))
        .instrument(span.clone())
        .await;
    let response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => http::error(error),
        Err(_) => http::error(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
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
        (&Method::POST, ["v1", "auth", "challenge"]) => challenge(state, request).await,
        (&Method::POST, ["v1", "auth", "login"]) => login(state, request).await,
        (&Method::POST, ["v1", "auth", "access-keys"]) => {
            register_access_keys(state, request).await
        }
        (&Method::POST, ["v1", "owners"]) => register_owner(state, request).await,
        (&Method::GET, ["v1", "owners", id]) => get_owner(state, &request, parse_owner(id)?).await,
        (&Method::PUT, ["v1", "owners", id]) => {
            update_owner(state, request, parse_owner(id)?).await
        }
        (&Method::POST, ["v1", "exchange-data"]) => create_exchange_data(state, request).await,
        (&Method::GET, ["v1", "exchange-data"]) => list_exchange_data(state, &request).await,
        (&Method::GET, ["v1", "exchange-data", id]) => {
            get_exchange_data(state, &request, parse_exchange_id(id)?).await
        }
        (&Method::PUT, ["v1", "exchange-data", id]) => {
            add_wraps(state, request, parse_exchange_id(id)?).await
        }
        (&Method::GET, ["v1", "key-bag"]) => get_key_bag(state, &request).await,
        (&Method::PUT, ["v1", "key-bag", id]) => put_key_bag_entry(state, request, id).await,
        (&Method::POST, ["v1", "entities"]) => create_entities(state, request).await,
        (&Method::GET, ["v1", "entities"]) => query_entities(state, &request).await,
        (&Method::POST, ["v1", "entities", "share"]) => share(state, request).await,
        (&Method::POST, ["v1", "entities", "revoke"]) => revoke(state, request).await,
        (&Method::GET, ["v1", "entities", id]) => {
            get_entity(state, &request, parse_entity(id)?).await
        }
        (&Method::PUT, ["v1", "entities", id]) => {
            update_entity(state, request, parse_entity(id)?, false).await
        }
        (&Method::DELETE, ["v1", "entities", id]) => {
            delete_entity(state, &request, parse_entity(id)?).await
        }
        (&Method::PUT, ["v1", "entities", id, "rotation"]) => {
            update_entity(state, request, parse_entity(id)?, true).await
        }
        (&Method::PUT, ["v1", "entities", id, "attachments", aid]) => {
            put_attachment(state, request, parse_entity(id)?, parse_attachment(aid)?).await
        }
        (&Method::GET, ["v1", "entities", id, "attachments", aid]) => {
            get_attachment(state, &request, parse_entity(id)?, parse_attachment(aid)?).await
        }
        (&Method::PUT, ["v1", "recovery", id]) => {
            put_recovery(state, request, http::parse_hex::<32>(id)?).await
        }
        (&Method::GET, ["v1", "recovery", id]) => {
            get_recovery(state, &request, http::parse_hex::<32>(id)?).await
        }
        (&Method::PUT, ["v1", "side-map"]) => put_side_map(state, request).await,
        (&Method::GET, ["v1", "side-map", key]) => {
            get_side_map(
                state,
                &request,
                DelegationKey::from_bytes(http::parse_hex::<32>(key)?),
            )
            .await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_route",
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

fn parse_exchange_id(text: &str) -> Result<ExchangeDataId, ApiError> {
    Ok(ExchangeDataId::from_bytes(http::parse_hex::<16>(text)?))
}

fn expected_rev<B>(request: &Request<B>) -> Result<u64, ApiError> {
    http::query(request.uri().query(), "rev")
        .ok_or_else(|| ApiError::bad_request("the revision being replaced is required: ?rev=N"))?
        .parse()
        .map_err(|_| ApiError::bad_request("malformed revision"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether the requester may see `entity`: it holds one of its delegation keys or is an explicit delegate.
fn visible(entity: &EncryptedEntity, requester: &Requester) -> bool {
    entity
        .security_metadata
        .delegations
        .iter()
        .any(|(key, d)| requester.holds(key) || d.delegate == Some(requester.owner))
}

/// Whether the requester may write `entity`: one of the delegations it holds grants write.
fn writable(entity: &EncryptedEntity, requester: &Requester) -> bool {
    entity.security_metadata.delegations.iter().any(|(key, d)| {
        d.permission == Permission::Write
            && (requester.holds(key) || d.delegate == Some(requester.owner))
    })
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

// ---- authentication ----

async fn challenge(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let accept = http::accepted(request.headers());
    let ask: ChallengeRequest = body(state, request).await?;
    // A challenge is issued whether or not the owner exists, so that this endpoint reveals nothing.
    let challenge = state.sessions.challenge(ask.owner).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_challenges",
            "too many logins in progress; retry in a minute",
        )
    })?;
    Ok(http::respond(
        accept,
        StatusCode::OK,
        &Challenge { challenge },
    ))
}

async fn login(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let accept = http::accepted(request.headers());
    let login: LoginRequest = body(state, request).await?;
    if !state.sessions.take_challenge(login.owner, &login.challenge) {
        return Err(ApiError::unauthorized());
    }
    let owner_id = login.owner;
    let owner = blocking(state, move |store| Ok(store.get_owner(owner_id)?)).await?;
    let verified = owner.is_some_and(|owner| {
        owner
            .value
            .bundles
            .iter()
            .find(|bundle| bundle.fingerprint() == login.fingerprint)
            .is_some_and(|bundle| {
                bundle
                    .verify_login(&login.challenge, &login.signature)
                    .is_ok()
            })
    });
    if !verified {
        return Err(ApiError::unauthorized());
    }
    let lifetime = state.limits.session_lifetime;
    let token = state
        .sessions
        .open(login.owner, lifetime)
        .ok_or_else(ApiError::internal)?;
    tracing::info!(owner = %login.owner, "session opened");
    Ok(http::respond(
        accept,
        StatusCode::OK,
        &Session {
            token,
            expires: now() + lifetime.as_secs(),
        },
    ))
}

async fn register_access_keys(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let token = http::bearer(request.headers())
        .ok_or_else(ApiError::unauthorized)?
        .to_owned();
    let keys: AccessKeys = body(state, request).await?;
    if keys.keys.len() > state.limits.max_access_keys {
        return Err(http::too_many_keys(state.limits.max_access_keys));
    }
    let count = keys.keys.len();
    let keys = keys
        .keys
        .into_iter()
        .map(|k| tessera_keys::AccessControlKey::from_bytes(k.0));
    match state.sessions.register(&token, keys) {
        Ok(()) => {}
        Err(Registration::NoSession) => return Err(ApiError::unauthorized()),
        Err(Registration::TooMany) => return Err(http::too_many_keys(MAX_KEYS_PER_SESSION)),
    }
    tracing::debug!(count, "access keys registered");
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}

// ---- owners ----

async fn register_owner(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let admin = http::admin_token(request.headers()).is_some_and(|token| state.is_admin(token));
    let parent = if admin {
        None
    } else {
        Some(requester(state, &request)?.owner)
    };
    let accept = http::accepted(request.headers());
    let owner: Owner = body(state, request).await?;
    if parent.is_some_and(|parent| owner.parent != Some(parent)) {
        return Err(ApiError::forbidden(
            "an owner can only register owners below itself",
        ));
    }
    check_bundles(&owner, None)?;
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

async fn get_owner(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: OwnerId,
) -> Result<Resp, ApiError> {
    requester(state, request)?;
    let owner = blocking(state, move |store| Ok(store.get_owner(id)?)).await?;
    let owner = owner.ok_or_else(ApiError::not_found)?;
    Ok(respond(request, StatusCode::OK, &owner))
}

async fn update_owner(
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

// ---- exchange data ----

async fn create_exchange_data(
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

async fn get_exchange_data(
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

async fn list_exchange_data(
    state: &Arc<State>,
    request: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let list = blocking(state, move |store| Ok(store.exchange_data_of(owner)?)).await?;
    Ok(respond(request, StatusCode::OK, &list))
}

async fn add_wraps(
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

// ---- key bag and side map ----

async fn get_key_bag(state: &Arc<State>, request: &Request<Incoming>) -> Result<Resp, ApiError> {
    let owner = requester(state, request)?.owner;
    let entries = blocking(state, move |store| Ok(store.key_bag(owner)?)).await?;
    Ok(respond(request, StatusCode::OK, &entries))
}

async fn put_key_bag_entry(
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

async fn put_side_map(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
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

async fn get_side_map(
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

// ---- entities ----

async fn create_entities(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let Entities { entities } = body(state, request).await?;
    if entities.is_empty() || entities.len() > state.limits.max_bulk_entities {
        return Err(ApiError::bad_request(format!(
            "send 1 to {} entities per request",
            state.limits.max_bulk_entities
        )));
    }
    for entity in &entities {
        rules::validate_new_entity(entity)?;
        let root = rules::root(&entity.security_metadata)?;
        let root_delegation = entity.security_metadata.delegations.get(&root);
        let own_root = root_delegation.is_some_and(|d| {
            d.delegator == Some(requester.owner) && d.delegate == Some(requester.owner)
        });
        if !requester.holds(&root) && !own_root {
            return Err(ApiError::forbidden(
                "the creator must hold the root delegation",
            ));
        }
    }
    let ids: Vec<EntityId> = entities.iter().map(|e| e.id).collect();
    let revs = state
        .committer
        .create(entities)
        .await
        .ok_or_else(ApiError::internal)?
        .map_err(hide_revision)?;
    tracing::debug!(count = ids.len(), "entities created");
    Ok(http::respond(
        accept,
        StatusCode::CREATED,
        &BulkWritten {
            written: ids.into_iter().zip(revs).collect(),
        },
    ))
}

/// A create that collides with an existing id answers 409 without the stored revision, which would tell someone
/// who may not see the record how often it changed.
fn hide_revision(error: tessera_store::Error) -> ApiError {
    match error {
        tessera_store::Error::Conflict { .. } => ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "a record with this id already exists",
        ),
        other => other.into(),
    }
}

async fn get_entity(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: EntityId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let entity = load_visible(state, id, &requester).await?;
    Ok(respond(request, StatusCode::OK, &entity))
}

async fn update_entity(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: EntityId,
    rotation: bool,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let update: EntityUpdate = body(state, request).await?;
    if update.entity.id != id {
        return Err(ApiError::bad_request("the body names another entity"));
    }
    let stored = load_visible(state, id, &requester).await?;
    if !writable(&stored, &requester) {
        return Err(ApiError::forbidden("write access is required"));
    }
    if stored.rev != update.expected_rev {
        return Err(tessera_store::Error::Conflict {
            what: "entity",
            expected: Some(update.expected_rev),
            actual: Some(stored.rev),
        }
        .into());
    }
    if rotation {
        rules::validate_rotation(&stored, &update.entity, |key| requester.holds(key))?;
    } else {
        rules::validate_update(&stored, &update.entity)?;
    }
    let rev = blocking(state, move |store| {
        Ok(store.update_entity(&update.entity, update.expected_rev)?)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &Written { rev }))
}

async fn delete_entity(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: EntityId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let rev = expected_rev(request)?;
    let stored = load_visible(state, id, &requester).await?;
    if !writable(&stored, &requester) {
        return Err(ApiError::forbidden("write access is required"));
    }
    blocking(state, move |store| Ok(store.delete_entity(id, rev)?)).await?;
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}

/// Loads every entity a bulk request names (each visible to the requester), changes them, and stores them in one
/// commit naming the revisions read, so that a concurrent write makes the whole request a conflict.
async fn bulk_change<K, F>(
    state: &Arc<State>,
    requester: &Requester,
    by_entity: BTreeMap<EntityId, K>,
    mut change: F,
) -> Result<BulkWritten, ApiError>
where
    F: FnMut(&mut EncryptedEntity, K) -> Result<(), ApiError>,
{
    if by_entity.is_empty() || by_entity.len() > state.limits.max_bulk_entities {
        return Err(ApiError::bad_request(format!(
            "name 1 to {} entities per request",
            state.limits.max_bulk_entities
        )));
    }
    let mut changed = Vec::with_capacity(by_entity.len());
    for (id, item) in by_entity {
        let mut entity = load_visible(state, id, requester).await?;
        let rev = entity.rev;
        change(&mut entity, item)?;
        changed.push((entity, rev));
    }
    let ids: Vec<EntityId> = changed.iter().map(|(e, _)| e.id).collect();
    let revs = blocking(state, move |store| Ok(store.update_entities(&changed)?)).await?;
    Ok(BulkWritten {
        written: ids.into_iter().zip(revs).collect(),
    })
}

async fn share(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let ShareBody { request: share } = body(state, request).await?;
    let mut by_entity: BTreeMap<EntityId, Vec<tessera_sharing::ShareEntry>> = BTreeMap::new();
    for entry in share.entries {
        by_entity.entry(entry.entity_id).or_default().push(entry);
    }
    let written = bulk_change(state, &requester, by_entity, |entity, entries| {
        Ok(rules::apply_share(entity, &entries, |key| {
            requester.holds(key)
        })?)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &written))
}

async fn revoke(state: &Arc<State>, request: Request<Incoming>) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let RevokeBody { revocations } = body(state, request).await?;
    let mut by_entity: BTreeMap<EntityId, Vec<DelegationKey>> = BTreeMap::new();
    for revocation in revocations {
        by_entity
            .entry(revocation.entity_id)
            .or_default()
            .push(revocation.delegation_key);
    }
    let written = bulk_change(state, &requester, by_entity, |entity, keys| {
        for key in keys {
            rules::apply_revoke(entity, &key, |held| requester.holds(held))?;
        }
        Ok(())
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &written))
}

async fn query_entities(state: &Arc<State>, request: &Request<Incoming>) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let query = request.uri().query();
    let ids = if let Some(tag) = http::query(query, "tag") {
        let tag = SearchTag::from_bytes(http::parse_hex::<32>(tag)?);
        blocking(state, move |store| Ok(store.entities_by_search_tag(&tag)?)).await?
    } else if let Some(key) = http::query(query, "delegation_key") {
        let key = DelegationKey::from_bytes(http::parse_hex::<32>(key)?);
        if !requester.holds(&key) {
            Vec::new()
        } else {
            blocking(state, move |store| {
                Ok(store.entities_by_delegation_key(&key)?)
            })
            .await?
        }
    } else {
        return Err(ApiError::bad_request(
            "query by ?tag=<hex> or ?delegation_key=<hex>",
        ));
    };
    if ids.len() > state.limits.max_bulk_entities {
        return Err(ApiError::bad_request("the query matches too many entities"));
    }
    let found = blocking(state, move |store| {
        ids.into_iter()
            .filter_map(|id| store.get_entity(id).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::from)
    })
    .await?;
    let entities = found
        .into_iter()
        .filter(|e| visible(e, &requester))
        .collect();
    Ok(respond(request, StatusCode::OK, &Entities { entities }))
}

// ---- attachments ----

/// How much of an attachment is held in memory at once: an upload is written to the store in batches of about this
/// many bytes, a download read from it in pieces of this many bytes.
const ATTACHMENT_BATCH: usize = 1 << 20;

/// Attachments with an upload in progress in this process. An upload stages its chunks under the attachment's id
/// alone, so two at once would mix their chunks: the second one is refused with 409 while the first runs.
static UPLOADS: Mutex<BTreeSet<(EntityId, AttachmentId)>> = Mutex::new(BTreeSet::new());

/// The claim of an upload on its attachment in [`UPLOADS`], released when the last clone is dropped: the
/// request's, and those of store writes still running on the blocking pool after the request itself was dropped
/// (a timeout, a client gone), so that no write of an abandoned upload lands in the next one.
struct Claim(EntityId, AttachmentId);

impl Claim {
    fn take(id: EntityId, attachment: AttachmentId) -> Result<Arc<Self>, ApiError> {
        let mut uploads = UPLOADS.lock().unwrap_or_else(PoisonError::into_inner);
        if !uploads.insert((id, attachment)) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "upload_in_progress",
                "another upload of this attachment is in progress",
            ));
        }
        Ok(Arc::new(Self(id, attachment)))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        UPLOADS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(self.0, self.1));
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
            let Claim(id, attachment) = *claim;
            Ok(store.put_attachment_chunks(id, attachment, first, &chunks)?)
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
            let Claim(id, attachment) = *claim;
            if let Err(error) = store.abort_attachment(id, attachment) {
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
async fn put_attachment(
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
async fn drain(body: &mut Incoming) {
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
async fn receive_attachment(
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
        claim: Claim::take(id, attachment)?,
        store: Arc::clone(&state.store),
        staged: false,
        finished: false,
    };
    let mut chunker = Chunker::default();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
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
            StatusCode::CONFLICT,
            "conflict",
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

async fn get_attachment(
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
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the stream has {total} bytes"),
        )
    };
    // A whole stream larger than a piece is streamed; anything else is read at once.
    let (total, bytes) = blocking(state, move |store| {
        let total = store
            .attachment_len(id, attachment)?
            .ok_or_else(ApiError::not_found)?;
        if range.is_none() && total > ATTACHMENT_BATCH as u64 {
            return Ok((total, None));
        }
        let range = range.unwrap_or(0..total);
        if range.start >= total.max(1) || range.start >= range.end {
            return Err(unsatisfiable(total));
        }
        let bytes = store
            .read_attachment(id, attachment, range)?
            .ok_or_else(ApiError::not_found)?;
        Ok((total, Some(bytes)))
    })
    .await?;
    let Some(bytes) = bytes else {
        let mut response = Response::new(stream_attachment(state, id, attachment, total));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(OCTET_STREAM));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(total));
        return Ok(response);
    };
    let length = bytes.len() as u64;
    let mut response = http::with_type(
        if partial {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        },
        OCTET_STREAM,
        Bytes::from(bytes),
    );
    if partial {
        let start = range_start(request).unwrap_or(0);
        let value = format!(
            "bytes {start}-{}/{total}",
            (start + length).saturating_sub(1)
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// A body of the whole sealed stream of an attachment of `total` bytes, read from the store in pieces of
/// [`ATTACHMENT_BATCH`] bytes by a task that reads a piece only once the previous one has left the channel: one
/// piece waits while another is being sent, whatever the attachment's size.
///
/// Each piece is its own read; were the attachment replaced meanwhile, the answer would mix two versions. So after
/// every piece the task checks that the length and the header (whose random nonce prefix every new sealing draws
/// afresh) are still the ones it started with, and cuts the answer short (an error the client sees, not a body
/// that looks complete) if not.
fn stream_attachment(
    state: &Arc<State>,
    id: EntityId,
    attachment: AttachmentId,
    total: u64,
) -> http::Body {
    let (sender, body) = http::channel(total, 1);
    let store = Arc::clone(&state.store);
    tokio::spawn(async move {
        let mut header: Option<Vec<u8>> = None;
        let mut offset = 0u64;
        while offset < total {
            // Room in the channel first, so that at most one piece waits there and one is being sent.
            let Ok(permit) = sender.reserve().await else {
                // The client has gone.
                return;
            };
            let end = offset.saturating_add(ATTACHMENT_BATCH as u64).min(total);
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
/// stream still has `total` bytes and (from the second piece on) the `header` of the first.
fn read_piece(
    store: &dyn Store,
    id: EntityId,
    attachment: AttachmentId,
    range: std::ops::Range<u64>,
    total: u64,
    header: Option<Vec<u8>>,
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let changed = || std::io::Error::other("the attachment changed while it was being read");
    let piece = store
        .read_attachment(id, attachment, range.clone())
        .map_err(std::io::Error::other)?
        .ok_or_else(changed)?;
    if piece.len() as u64 != range.end - range.start {
        return Err(changed());
    }
    let header_len = (HEADER_LEN as u64).min(total);
    let now = store
        .read_attachment(id, attachment, 0..header_len)
        .map_err(std::io::Error::other)?
        .ok_or_else(changed)?;
    let first = match header {
        Some(header) => header,
        None => piece
            .get(..now.len())
            .map(<[u8]>::to_vec)
            .ok_or_else(changed)?,
    };
    let len = store
        .attachment_len(id, attachment)
        .map_err(std::io::Error::other)?;
    if now != first || len != Some(total) {
        return Err(changed());
    }
    Ok((piece, first))
}

fn range_start<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(RANGE)
        .and_then(|v| parse_range(v).ok())
        .map(|r| r.start)
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

// ---- recovery ----

async fn put_recovery(
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
async fn get_recovery(
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
