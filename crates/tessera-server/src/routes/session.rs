//! Login by challenge and response, and the access-control keys a session holds.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Request, StatusCode};
use tessera_wire::{
    AccessKeys, BearerToken, Challenge, ChallengeRequest, ErrorCode, LoginRequest, Session,
};

use super::{blocking, body, now, unauthenticated_body};
use crate::auth::{MAX_KEYS_PER_SESSION, Registration};
use crate::challenge::{CHALLENGE_LIFETIME, MAX_LOGINS_PER_OWNER, Refused};
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn challenge(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let accept = http::accepted(request.headers());
    let ask: ChallengeRequest = unauthenticated_body(state, request).await?;
    // A challenge is issued whether or not the owner exists, so that this endpoint reveals nothing. It is
    // stateless (a MAC, `challenge.rs`): no number of requests can use up anyone else's.
    let challenge = state
        .challenges
        .issue(ask.owner)
        .ok_or_else(ApiError::internal)?;
    Ok(http::respond(
        accept,
        StatusCode::OK,
        &Challenge { challenge },
    ))
}

pub(super) async fn login(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let accept = http::accepted(request.headers());
    // The name the request was sent to, for a server that has no name of its own (see `ServerNames`).
    let host = request
        .uri()
        .authority()
        .map(|authority| authority.as_str().to_owned())
        .or_else(|| {
            request
                .headers()
                .get(HOST)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        });
    let login: LoginRequest = unauthenticated_body(state, request).await?;
    if !state.challenges.is_valid(login.owner, &login.challenge) {
        return Err(ApiError::unauthorized());
    }
    // A login signed for another name was relayed, or the client reached this server by a name it was not
    // told: refused before any signature is checked.
    if !state.names.accepts(&login.server, host.as_deref()) {
        tracing::info!("login refused: signed for another server name");
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "the login was signed for a server named {:?}, not this server; log in with the base URL \
                 this server is reached at (scheme://host:port, e.g. {}), or configure that URL on the server \
                 with --public-url",
                login
                    .server
                    .chars()
                    .take(tessera_wire::MAX_SERVER_NAME)
                    .collect::<String>(),
                state.names.expected()
            ),
        ));
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
                    .verify_login(&login.server, &login.challenge, &login.signature)
                    .is_ok()
            })
    });
    if !verified {
        return Err(ApiError::unauthorized());
    }
    // Recorded as used only now, so that nobody but the owner can fill the owner's record of used challenges.
    match state.challenges.consume(login.owner, &login.challenge) {
        Ok(()) => {}
        Err(Refused::Replayed) => return Err(ApiError::unauthorized()),
        Err(Refused::TooMany) => {
            return Err(ApiError::new(
                ErrorCode::TooManyChallenges,
                format!(
                    "more than {MAX_LOGINS_PER_OWNER} logins of this owner within {} s; reuse a session \
                     instead of logging in again, or retry in a minute",
                    CHALLENGE_LIFETIME.as_secs()
                ),
            ));
        }
    }
    let lifetime = state.limits.session_lifetime;
    let token = state
        .sessions
        .open(login.owner, lifetime)
        .ok_or_else(ApiError::internal)?;
    // The owner id only at debug level: info-level lines name no owner.
    tracing::info!("session opened");
    tracing::debug!(owner = %login.owner, "session opened for this owner");
    Ok(http::respond(
        accept,
        StatusCode::OK,
        &Session {
            token: BearerToken::new(token),
            expires: now() + lifetime.as_secs(),
        },
    ))
}

pub(super) async fn register_access_keys(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let token = http::bearer(request.headers())
        .ok_or_else(ApiError::unauthorized)?
        .to_owned();
    // The session is checked before the body is read, so that no body is held for a request without one.
    if state.sessions.requester(&token).is_none() {
        return Err(ApiError::unauthorized());
    }
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
