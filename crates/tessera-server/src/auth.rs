//! Sessions opened by a challenge–response login (the challenges are in `challenge.rs`): tokens are random,
//! stored hashed, expire, and hold the access-control keys an owner registered (as delegation keys, in memory only).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tessera_keys::{AccessControlKey, DelegationKey, OwnerId};

/// Most access-control keys one session may hold in total.
pub(crate) const MAX_KEYS_PER_SESSION: usize = 1 << 20;

/// What a request proved about who sends it.
#[derive(Clone, Debug)]
pub(crate) struct Requester {
    pub(crate) owner: OwnerId,
    registered: Arc<HashSet<DelegationKey>>,
    presented: HashSet<DelegationKey>,
}

impl Requester {
    /// Whether the requester proved access to `key` (registered in the session or presented with the request).
    pub(crate) fn holds(&self, key: &DelegationKey) -> bool {
        self.presented.contains(key) || self.registered.contains(key)
    }

    /// Adds the keys presented with this request.
    pub(crate) fn present(&mut self, keys: impl IntoIterator<Item = AccessControlKey>) {
        self.presented
            .extend(keys.into_iter().map(|key| key.delegation_key()));
    }
}

#[derive(Debug)]
struct SessionState {
    owner: OwnerId,
    expires: Instant,
    registered: Arc<HashSet<DelegationKey>>,
}

/// Open sessions.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    sessions: Mutex<HashMap<[u8; 32], SessionState>>,
}

impl Sessions {
    /// Opens a session for `owner`; returns the token (hex) and how long it lives.
    pub(crate) fn open(&self, owner: OwnerId, lifetime: Duration) -> Option<String> {
        let token = tessera_primitives::random_array::<32>().ok()?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        sessions.retain(|_, state| state.expires > now);
        sessions.insert(
            tessera_primitives::sha256(&token),
            SessionState {
                owner,
                expires: now + lifetime,
                registered: Arc::new(HashSet::new()),
            },
        );
        Some(tessera_keys::wire::hex(&token))
    }

    /// The requester behind a bearer token, if the session exists and has not expired.
    pub(crate) fn requester(&self, token_hex: &str) -> Option<Requester> {
        let token = decode_token(token_hex)?;
        let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let state = sessions.get(&tessera_primitives::sha256(&token))?;
        (state.expires > Instant::now()).then(|| Requester {
            owner: state.owner,
            registered: Arc::clone(&state.registered),
            presented: HashSet::new(),
        })
    }

    /// Adds access-control keys to a live session (as delegation keys).
    pub(crate) fn register(
        &self,
        token_hex: &str,
        keys: impl IntoIterator<Item = AccessControlKey>,
    ) -> Result<(), Registration> {
        let token = decode_token(token_hex).ok_or(Registration::NoSession)?;
        let hash = tessera_primitives::sha256(&token);
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let state = sessions.get(&hash).ok_or(Registration::NoSession)?;
        if state.expires <= Instant::now() {
            sessions.remove(&hash);
            return Err(Registration::NoSession);
        }
        let mut registered = HashSet::clone(&state.registered);
        registered.extend(keys.into_iter().map(|key| key.delegation_key()));
        if registered.len() > MAX_KEYS_PER_SESSION {
            return Err(Registration::TooMany);
        }
        if let Some(state) = sessions.get_mut(&hash) {
            state.registered = Arc::new(registered);
        }
        Ok(())
    }
}

/// Why keys could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Registration {
    /// The session does not exist or has expired.
    NoSession,
    /// The session would hold more than [`MAX_KEYS_PER_SESSION`] keys.
    TooMany,
}

/// The token's 32 bytes from its lowercase hex, through the one strict decoder (`tessera_keys::wire::unhex`).
fn decode_token(token_hex: &str) -> Option<[u8; 32]> {
    tessera_keys::wire::unhex(token_hex)?.try_into().ok()
}
