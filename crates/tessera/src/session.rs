//! A session: one owner logged in to a server, with its opened exchange secrets, its trust policy and the access
//! keys it registered. The entity operations live in `entity.rs` and `attachment.rs`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use tessera_client::Client as HttpClient;
use tessera_keys::{
    AccessControlKey, DelegationKey, EntityType, ExchangeData, ExchangeDataId, ExchangeSecret,
    Fingerprint, InboxMessage, InboxMessageId, KeyBag, KeyBagEntry, KeyBundle, Owner, OwnerId,
    OwnerKeys, OwnerKind, PinnedFingerprints, TrustPolicy, TrustedBundle, unix_now,
};
use tessera_primitives::RsaKeySize;
use tessera_sharing::{EncryptedEntity, EncryptionManifest, VerifiedBatches, Visibility};

use crate::client::Client;
use crate::error::{Error, ErrorKind, Result};
use crate::exchange_cache::{DEFAULT_EXCHANGE_CACHE_CAPACITY, ExchangeCache};
use crate::owner_state::OwnerState;

mod inbox;
mod lookup;

pub(crate) use lookup::SessionLookup;

/// Access-control keys per registration request, well below the server's default limit of 4096.
const KEYS_PER_REGISTRATION: usize = 1000;

/// Counters of what the session did, for diagnostics and for showing principle P5 (a login without RSA).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Exchange secrets loaded from the key bag at login (one AES-GCM open each, no RSA).
    pub key_bag_entries: usize,
    /// Exchange data opened with the private key (one RSA decryption each) since login.
    pub opened_with_rsa: usize,
    /// Exchange data this session created (one per new partner).
    pub created_exchange_data: usize,
    /// Inbox messages left unopened because their sender is not trusted (yet); they stay in the inbox.
    pub unopened_exchange_data: usize,
    /// Inbox messages discarded because they did not open, did not verify, or repeated exchange data this owner
    /// already had (anybody can seal a message for a public key: such messages are deleted, never used).
    pub discarded_inbox_messages: usize,
    /// Exchange secrets the session knows (from the key bag, opened or created since login).
    pub exchange_secrets: usize,
    /// Exchange secrets held opened now: at most the cache capacity
    /// ([`Session::set_exchange_cache_capacity`]); the others stay sealed as in the key bag.
    pub opened_exchange_secrets: usize,
    /// Sealed exchange secrets re-opened since login, after they left the cache or for a pass over every partner
    /// (one AES-GCM open each, no RSA).
    pub reopened_from_key_bag: usize,
    /// Records a query or a children listing found but left out because they failed to open or verify.
    pub unreadable_records: usize,
}

/// An owner logged in to a Tessera server: the entry point of the SDK.
///
/// At login the session opens the owner's key bag (no RSA operation for known partners, DESIGN.md §5.4) and its
/// inbox: exchange data partners created for it since, each sealed for this owner's bundle so that the server
/// never learns who sent it (verified with the sender's trusted key bundle, then decrypted, then sealed into the
/// bag, then deleted from the inbox). It creates exchange data with a partner on the first share (and delivers it
/// to the partner's inbox) and reuses it afterwards, and registers its access-control keys with the server for each
/// entity type it touches.
///
/// Opened exchange secrets are cached, least recently used first out, at most
/// [`DEFAULT_EXCHANGE_CACHE_CAPACITY`](crate::DEFAULT_EXCHANGE_CACHE_CAPACITY) of them unless
/// [`Session::set_exchange_cache_capacity`] says otherwise; the others stay sealed exactly as in the key bag and are
/// re-opened on use without any RSA operation.
///
/// Every method takes `&self`: a session can be shared between tasks (`Arc<Session>`). An expired server session
/// is renewed transparently (one new challenge–response login).
pub struct Session {
    client: RwLock<HttpClient>,
    keys: Arc<OwnerKeys>,
    own_bundle: TrustedBundle,
    kind: OwnerKind,
    trust: Arc<dyn TrustPolicy>,
    state: Mutex<State>,
    /// Batch signatures verified so far (one verification per batch, whatever the number of its records).
    verified: VerifiedBatches,
    /// Serialises the creation of exchange data, so that two concurrent first shares with a partner make one.
    creating: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("owner", &self.keys.owner())
            .field("kind", &self.kind)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What the session knows, behind one lock that is never held across an `.await`.
pub(crate) struct State {
    exchange: ExchangeCache,
    /// Exchange data this owner signed, by delegate: the ones it encrypts new data with.
    outgoing: HashMap<OwnerId, ExchangeDataId>,
    registered: HashSet<(EntityType, ExchangeDataId)>,
    /// Inbox messages from senders the trust policy refused, left in the inbox and not tried again this session.
    unopened: HashSet<InboxMessageId>,
    manifests: HashMap<EntityType, EncryptionManifest>,
    root_visibility: Visibility,
    pub(crate) stats: SessionStats,
    /// Trusted key bundles of the owners whose signatures this session checked, by owner.
    signers: HashMap<OwnerId, Vec<TrustedBundle>>,
    /// Pins and the versions seen of each record, as saved in the key bag.
    pub(crate) owner_state: OwnerState,
}

impl State {
    /// Keeps an opened secret and its sealed key-bag entry.
    fn insert(&mut self, owner: OwnerId, secret: ExchangeSecret, entry: KeyBagEntry) {
        if secret.delegator() == owner && secret.is_self_signed() {
            self.outgoing
                .entry(secret.delegate())
                .or_insert(secret.id());
        }
        self.exchange.insert(secret, entry);
    }
}

impl Session {
    /// Logs in as `keys`' owner, trusting partners' key bundles through `trust`.
    ///
    /// # Errors
    /// [`ErrorKind::Unauthorized`] if the server does not know the owner or its key; [`ErrorKind::Crypto`] if the key
    /// bag does not open with this key; [`ErrorKind::Transport`] if the server cannot be reached.
    pub async fn login(
        client: Client,
        keys: OwnerKeys,
        trust: impl TrustPolicy + 'static,
    ) -> Result<Self> {
        Self::login_shared(client, keys, Arc::new(trust)).await
    }

    /// As [`Session::login`], with a trust policy shared with other sessions (one pin store for several owners of
    /// one device, for example).
    ///
    /// # Errors
    /// As [`Session::login`].
    pub async fn login_shared(
        client: Client,
        keys: OwnerKeys,
        trust: Arc<dyn TrustPolicy>,
    ) -> Result<Self> {
        Self::login_anchored(client, keys, trust, 0).await
    }

    /// As [`Session::login_shared`], refusing an owner state older than generation `anchor`: keep
    /// [`Session::state_anchor`] on the device between runs (next to the key file) and pass it here, so that a
    /// server that deleted or rolled back this owner's pins and seen versions is caught at login.
    ///
    /// # Errors
    /// [`ErrorKind::Rollback`] if the server's state is older than `anchor` or missing while `anchor` is not 0; as
    /// [`Session::login`].
    pub async fn login_anchored(
        client: Client,
        keys: OwnerKeys,
        trust: Arc<dyn TrustPolicy>,
        anchor: u64,
    ) -> Result<Self> {
        let mut client = client.into_inner();
        client.login(&keys).await.map_err(Error::from_client)?;
        // This owner's own bundle is trusted because it is derived from the private key, not read from the server.
        let own_bundle = PinnedFingerprints::new([keys.fingerprint()]).trust(keys.bundle()?)?;
        let record = client
            .owner(keys.owner())
            .await
            .map_err(Error::from_client)?
            .value;
        if record.id != keys.owner() {
            return Err(Error::new(
                ErrorKind::Crypto,
                "the server returned another owner's record",
            ));
        }
        let entries = client.key_bag().await.map_err(Error::from_client)?;
        let keys = Arc::new(keys);
        let owner = keys.owner();
        let mut state = State {
            exchange: ExchangeCache::new(Arc::clone(&keys), DEFAULT_EXCHANGE_CACHE_CAPACITY),
            outgoing: HashMap::new(),
            registered: HashSet::new(),
            unopened: HashSet::new(),
            manifests: HashMap::new(),
            // Every owner's records are anonymous: the server's `kind` (which it could change) decides nothing.
            root_visibility: Visibility::Anonymous,
            stats: SessionStats {
                key_bag_entries: entries.len(),
                ..SessionStats::default()
            },
            signers: HashMap::new(),
            owner_state: OwnerState {
                generation: anchor,
                ..OwnerState::default()
            },
        };
        let state_id = OwnerState::entry_id(&keys);
        let mut found_state = false;
        for entry in entries {
            if entry.id == state_id {
                state
                    .owner_state
                    .merge_loaded(OwnerState::open(&keys, &entry)?)?;
                found_state = true;
                continue;
            }
            let secret = KeyBag::open_entry(&keys, &entry)?;
            state.insert(owner, secret, entry);
        }
        if anchor > 0 && !found_state {
            return Err(Error::new(
                ErrorKind::Rollback,
                "this owner's state is missing on the server although this device saw it: the server deleted it; \
                 report the server",
            ));
        }
        state.stats.key_bag_entries = state.exchange.len();
        let session = Self {
            client: RwLock::new(client),
            keys,
            own_bundle,
            kind: record.kind,
            trust,
            state: Mutex::new(state),
            verified: VerifiedBatches::new(),
            creating: tokio::sync::Mutex::new(()),
        };
        session.refresh().await?;
        Ok(session)
    }

    /// The logged-in owner.
    pub fn owner(&self) -> OwnerId {
        self.keys.owner()
    }

    /// The generation of this owner's state (pins, versions seen) as last loaded or saved: keep it on the device
    /// and pass it to [`Session::login_anchored`] next time.
    pub fn state_anchor(&self) -> u64 {
        self.lock().owner_state.generation
    }

    /// The fingerprints this owner pinned for `partner` (in its owner state, shared by all its devices): the trust
    /// store a UI shows next to a partner's short code.
    pub fn pinned(&self, partner: OwnerId) -> Vec<Fingerprint> {
        self.lock()
            .owner_state
            .pins
            .get(&partner)
            .map(|pins| pins.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Saves this owner's state (the partners' pinned bundles, the highest version seen of each record) to its key
    /// bag, sealed, if it changed since the last save. Writes save it by themselves; call it after reads whose
    /// versions should be remembered by the owner's other devices.
    ///
    /// # Errors
    /// [`ErrorKind::Transport`] or [`ErrorKind::Server`] if it cannot be stored.
    pub async fn save_state(&self) -> Result<()> {
        const ATTEMPTS: usize = 4;
        for _ in 0..ATTEMPTS {
            let (entry, previous, generation) = {
                let state = self.lock();
                if !state.owner_state.dirty {
                    return Ok(());
                }
                let generation = state.owner_state.generation.saturating_add(1);
                (
                    state.owner_state.seal(&self.keys, generation)?,
                    state.owner_state.stored.clone(),
                    generation,
                )
            };
            let (new, old) = (&entry, previous.as_ref());
            match self
                .call(|c| async move { c.swap_key_bag_entry(new, old).await })
                .await
            {
                Ok(()) => {
                    let mut state = self.lock();
                    state.owner_state.generation = state.owner_state.generation.max(generation);
                    state.owner_state.stored = Some(entry);
                    state.owner_state.dirty = false;
                    return Ok(());
                }
                // Another device saved meanwhile: take its state in, then save the union.
                Err(error) if error.is_conflict() => self.reload_state().await?,
                Err(error) => return Err(error),
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            "this owner's state kept changing on the server while it was saved; try again",
        ))
    }

    /// Reads this owner's state from the server and merges it into the session's.
    async fn reload_state(&self) -> Result<()> {
        let entries = self.call(|c| async move { c.key_bag().await }).await?;
        let state_id = OwnerState::entry_id(&self.keys);
        let loaded = match entries.iter().find(|entry| entry.id == state_id) {
            Some(entry) => OwnerState::open(&self.keys, entry)?,
            None => OwnerState::default(),
        };
        let mut state = self.lock();
        let stored = loaded.stored.clone();
        state.owner_state.merge_loaded(loaded)?;
        state.owner_state.stored = stored;
        state.owner_state.dirty = true;
        Ok(())
    }

    /// Checks that a record opened now is not older than a version of it this owner has seen, and remembers it.
    ///
    /// # Errors
    /// [`ErrorKind::Rollback`] if it is older.
    pub(crate) fn check_fresh(&self, opened: &tessera_sharing::EntityKeys) -> Result<()> {
        self.lock()
            .owner_state
            .see(opened.id, opened.content_version, opened.key_epoch)
    }

    /// The owner's kind, as the server's record says. Informational: the server can change it, so the session
    /// decides nothing on it (every owner's records are anonymous).
    pub fn kind(&self) -> OwnerKind {
        self.kind
    }

    /// Fingerprint of the owner's key bundle: compare its short code out of band to verify an owner.
    pub fn fingerprint(&self) -> Fingerprint {
        self.keys.fingerprint()
    }

    /// What the session did so far.
    pub fn stats(&self) -> SessionStats {
        let state = self.lock();
        SessionStats {
            exchange_secrets: state.exchange.len(),
            opened_exchange_secrets: state.exchange.opened_len(),
            reopened_from_key_bag: state.exchange.reopened(),
            ..state.stats
        }
    }

    /// Keeps at most `capacity` (at least one) exchange secrets opened, the least recently used leaving first;
    /// the others stay sealed with the owner's self key, exactly as in its key bag, and are re-opened when used
    /// (one AES-GCM open, no RSA). Finding records still covers every partner: delegation keys are indexed for all
    /// of them. The default is [`DEFAULT_EXCHANGE_CACHE_CAPACITY`](crate::DEFAULT_EXCHANGE_CACHE_CAPACITY).
    pub fn set_exchange_cache_capacity(&self, capacity: usize) {
        self.lock().exchange.set_capacity(capacity);
    }

    /// Sets the encryption manifest of `entity_type`: the JSON paths of its records that are encrypted; every other
    /// field stays readable by the server (to index or search on it). A type without a manifest has every field
    /// encrypted.
    ///
    /// Each path must name a field of every record written ([`EncryptionManifest::check`]), or the write fails
    /// with [`ErrorKind::Invalid`] and writes nothing: a misspelt path never leaves its field in clear.
    pub fn set_manifest(&self, entity_type: EntityType, manifest: EncryptionManifest) {
        self.lock().manifests.insert(entity_type, manifest);
    }

    /// Which parties the root delegation of new records names in clear. Every owner defaults to
    /// [`Visibility::Anonymous`]: no owner id on its records, so a database dump does not tell whose records they
    /// are. [`Visibility::Explicit`] names the creator, for tools that must read the database without keys.
    pub fn set_root_visibility(&self, visibility: Visibility) {
        self.lock().root_visibility = visibility;
    }

    /// Generates keys for a new owner below this one (an HCP creating a patient) and registers it.
    /// Give the returned keys to the new owner: they are its only secret.
    ///
    /// # Errors
    /// [`ErrorKind::Forbidden`] if the server refuses; [`ErrorKind::Internal`] if key generation fails.
    pub async fn register_owner(&self, kind: OwnerKind, size: RsaKeySize) -> Result<OwnerKeys> {
        let (keys, record) = crate::owner::generate_owner(kind, Some(self.owner()), size)?;
        self.register_generated(&record).await?;
        Ok(keys)
    }

    /// Registers an owner generated with [`generate_owner`](crate::generate_owner) and this owner as its parent,
    /// for a caller that saves the new keys before registering them (so that no owner exists whose key is lost).
    ///
    /// # Errors
    /// As [`Session::register_owner`].
    pub async fn register_generated(&self, record: &Owner) -> Result<()> {
        self.call(|c| async move { c.register_owner(record).await })
            .await
            .map(drop)
    }

    // ---- crate-internal plumbing shared by the operations ----

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent (single inserts), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn client(&self) -> HttpClient {
        self.client
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The owner's keys, to sign what this session writes.
    pub(crate) fn keys(&self) -> &OwnerKeys {
        &self.keys
    }

    /// Opens `stored` with `open`; whenever a signature on it comes from an owner whose key bundles the session has
    /// not met yet, fetches them, trusts them through the policy, and opens again. The outer error is the
    /// session's (the bundles could not be fetched or were refused), the inner one the sharing layer's.
    pub(crate) async fn open_verified<T>(
        &self,
        stored: &EncryptedEntity,
        open: impl Fn(&EncryptedEntity, &Self) -> tessera_sharing::Result<T>,
    ) -> Result<tessera_sharing::Result<T>> {
        let mut learned = HashSet::new();
        loop {
            match open(stored, self) {
                Err(tessera_sharing::Error::UnknownSigner(owner)) if learned.insert(owner) => {
                    let bundles = self.trusted_bundles(owner).await?;
                    self.lock().signers.insert(owner, bundles);
                    // A signer met for the first time is pinned for every device of this owner.
                    self.save_state().await?;
                }
                // A signer whose bundles were just fetched and still do not hold the signing key.
                Err(tessera_sharing::Error::UnknownSigner(_)) => {
                    return Ok(Err(tessera_sharing::Error::Crypto));
                }
                other => return Ok(other),
            }
        }
    }

    /// The session's exchange secrets as the sharing layer asks for them when it opens or rotates a record.
    pub(crate) fn lookup(&self) -> SessionLookup<'_> {
        SessionLookup(self)
    }

    /// The manifest of `entity_type` checked against `document`, or one that encrypts every field of it.
    pub(crate) fn manifest_for(
        &self,
        entity_type: &EntityType,
        document: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<EncryptionManifest> {
        let registered = self.lock().manifests.get(entity_type).cloned();
        crate::content::manifest_for(registered, entity_type, document)
    }

    pub(crate) fn root_visibility(&self) -> Visibility {
        self.lock().root_visibility
    }

    /// Every exchange secret this owner signed for `delegate`.
    ///
    /// # Errors
    /// [`ErrorKind::Crypto`] if a sealed secret no longer opens.
    pub(crate) fn secrets_signed_for(&self, delegate: OwnerId) -> Result<Vec<ExchangeSecret>> {
        let mut state = self.lock();
        let ids = state.exchange.between(self.owner(), delegate, true);
        Ok(state.exchange.scan(&ids, ExchangeSecret::clone)?)
    }

    /// The delegation keys for `entity_type` of every exchange data from `delegator` to `delegate` this owner holds.
    ///
    /// # Errors
    /// [`ErrorKind::Crypto`] if a sealed secret no longer opens.
    pub(crate) fn delegation_keys_between(
        &self,
        entity_type: &EntityType,
        delegator: OwnerId,
        delegate: OwnerId,
    ) -> Result<Vec<DelegationKey>> {
        let mut state = self.lock();
        let ids = state.exchange.between(delegator, delegate, false);
        Ok(state
            .exchange
            .scan(&ids, |secret| secret.delegation_key(entity_type))?)
    }

    /// Runs a client call; if the server session expired, logs in again (re-registering the access keys) and
    /// retries once.
    pub(crate) async fn call<T, F, Fut>(&self, operation: F) -> Result<T>
    where
        F: Fn(HttpClient) -> Fut,
        Fut: Future<Output = tessera_client::Result<T>>,
    {
        match operation(self.client()).await {
            Err(error) if error.is_unauthorized() => {
                self.login_again().await?;
                operation(self.client()).await.map_err(Error::from_client)
            }
            other => other.map_err(Error::from_client),
        }
    }

    /// Runs a client call that cannot be repeated (a streamed upload reads its source once); if the server session
    /// expired, logs in again so that the next call finds a session, and returns the error.
    pub(crate) async fn call_once<T, Fut>(
        &self,
        operation: impl FnOnce(HttpClient) -> Fut,
    ) -> Result<T>
    where
        Fut: Future<Output = tessera_client::Result<T>>,
    {
        let result = operation(self.client()).await;
        if let Err(error) = &result
            && error.is_unauthorized()
        {
            self.login_again().await?;
        }
        result.map_err(Error::from_client)
    }

    async fn login_again(&self) -> Result<()> {
        let mut client = self.client();
        client.login(&self.keys).await.map_err(Error::from_client)?;
        let registered: Vec<(EntityType, ExchangeDataId)> =
            self.lock().registered.iter().cloned().collect();
        let keys = self.access_keys_for(&registered)?;
        for chunk in keys.chunks(KEYS_PER_REGISTRATION) {
            client
                .register_access_keys(chunk)
                .await
                .map_err(Error::from_client)?;
        }
        *self.client.write().unwrap_or_else(PoisonError::into_inner) = client;
        Ok(())
    }

    /// The access-control keys of `pairs`, in passes that leave the cache order alone.
    fn access_keys_for(
        &self,
        pairs: &[(EntityType, ExchangeDataId)],
    ) -> Result<Vec<AccessControlKey>> {
        let mut keys = Vec::with_capacity(pairs.len());
        let mut state = self.lock();
        let mut by_type: HashMap<&EntityType, Vec<ExchangeDataId>> = HashMap::new();
        for (entity_type, id) in pairs {
            by_type.entry(entity_type).or_default().push(*id);
        }
        for (entity_type, ids) in by_type {
            keys.extend(state.exchange.access_control_keys(entity_type, &ids)?);
        }
        Ok(keys)
    }

    /// Registers with the server the access-control keys of every exchange secret for `entity_type` that it does
    /// not hold yet, so that it shows this owner the entities of that type shared through them.
    pub(crate) async fn ensure_registered(&self, entity_type: &EntityType) -> Result<()> {
        let missing: Vec<(EntityType, ExchangeDataId)> = {
            let state = self.lock();
            state
                .exchange
                .ids()
                .map(|id| (entity_type.clone(), *id))
                .filter(|pair| !state.registered.contains(pair))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let keys = self.access_keys_for(&missing)?;
        for chunk in keys.chunks(KEYS_PER_REGISTRATION) {
            self.call(|c| async move { c.register_access_keys(chunk).await })
                .await?;
        }
        self.lock().registered.extend(missing);
        Ok(())
    }

    /// The exchange secret this owner encrypts for `delegate` with: known, or created now (the partner's key
    /// bundles trusted through the policy, the secret wrapped for each, the exchange data stored, the secret sealed
    /// into the key bag). Exchange data with itself serves the root delegations.
    pub(crate) async fn exchange_with(&self, delegate: OwnerId) -> Result<Arc<ExchangeSecret>> {
        if let Some(secret) = self.outgoing(delegate)? {
            return Ok(secret);
        }
        let _creating = self.creating.lock().await;
        if let Some(secret) = self.outgoing(delegate)? {
            return Ok(secret);
        }
        let recipients = if delegate == self.owner() {
            Vec::new()
        } else {
            self.trusted_bundles(delegate).await?
        };
        let recipients: Vec<&TrustedBundle> = recipients.iter().collect();
        let (data, secret) = ExchangeData::create(&self.keys, delegate, &recipients, unix_now())?;
        // Delivered before it is kept: a secret the partner never received must not encrypt anything. Exchange data
        // with itself needs no delivery (the key bag carries it to every device of this owner).
        for bundle in recipients
            .iter()
            .filter(|bundle| bundle.owner() == delegate)
        {
            let message = InboxMessage::seal(&data, bundle)?;
            let message = &message;
            self.call(|c| async move { c.deliver(delegate, message).await })
                .await
                .map_err(|error| error.for_owner(delegate))?;
        }
        self.remember(secret.clone()).await?;
        self.lock().stats.created_exchange_data += 1;
        // The partner's bundles were pinned on the way: keep them for every device of this owner.
        self.save_state().await?;
        Ok(Arc::new(secret))
    }

    fn outgoing(&self, delegate: OwnerId) -> Result<Option<Arc<ExchangeSecret>>> {
        let mut state = self.lock();
        match state.outgoing.get(&delegate).copied() {
            Some(id) => Ok(state.exchange.get(&id)?),
            None => Ok(None),
        }
    }

    /// Seals `secret` into the key bag on the server, then keeps it.
    async fn remember(&self, secret: ExchangeSecret) -> Result<()> {
        let entry = KeyBag::seal_entry(&self.keys, &secret)?;
        let sealed = &entry;
        self.call(|c| async move { c.put_key_bag_entry(sealed).await })
            .await?;
        let owner = self.owner();
        self.lock().insert(owner, secret, entry);
        Ok(())
    }

    /// Opens exchange data naming this owner: the delegator's signature is verified against a trusted bundle
    /// first, then the signature of this key's wrap against a trusted bundle of a party (the delegator's, or this
    /// owner's own for a wrap it added itself), and only then is the secret unwrapped with the private key
    /// (verify-then-decrypt).
    async fn open_exchange_data(&self, data: &ExchangeData) -> Result<ExchangeSecret> {
        let mut parties = vec![self.own_bundle.clone()];
        if data.delegator() != self.owner() {
            let delegator = self.trusted_bundles(data.delegator()).await?;
            if !delegator
                .iter()
                .any(|bundle| bundle.fingerprint() == data.signer())
            {
                return Err(Error::new(
                    ErrorKind::Untrusted,
                    "the exchange data is signed by a key bundle that is not trusted",
                ));
            }
            parties.extend(delegator);
        }
        let parties: Vec<&TrustedBundle> = parties.iter().collect();
        let secret = data.open(self.keys.as_ref(), &parties)?;
        self.lock().stats.opened_with_rsa += 1;
        Ok(secret)
    }

    /// The key bundles of `owner` that the trust policy accepts, offered in the order the owner registered them
    /// (so that a trust-on-first-use policy can follow a rotation chain).
    async fn trusted_bundles(&self, owner: OwnerId) -> Result<Vec<TrustedBundle>> {
        let record = self
            .call(|c| async move { c.owner(owner).await })
            .await
            .map_err(|error| error.for_owner(owner))?
            .value;
        if record.id != owner {
            return Err(Error::new(
                ErrorKind::Crypto,
                "the server returned another owner's record",
            ));
        }
        let mut trusted = Vec::new();
        let mut refusal = None;
        let bundles: Vec<KeyBundle> = record
            .bundles
            .into_iter()
            .filter(|b| b.owner() == owner)
            .collect();
        let pinned = self.lock().owner_state.pins.get(&owner).cloned();
        let mut newly_pinned = Vec::new();
        for bundle in &bundles {
            let decision = match &pinned {
                // Pins saved in the owner state bind every device of this owner: a bundle must be pinned, or
                // signed by a pinned bundle of the same owner (a rotation), and the policy must accept it too.
                Some(pins) => {
                    let fingerprint = bundle.fingerprint();
                    let chained = pins.contains(&fingerprint)
                        || bundles.iter().any(|older| {
                            pins.contains(&older.fingerprint())
                                && bundle.verify_chain_from(older).is_ok()
                        });
                    if chained {
                        self.trust.trust(bundle.clone())
                    } else {
                        Err(tessera_keys::Error::Untrusted {
                            owner,
                            fingerprint,
                            reason: "differs from the bundle this owner pinned and is not signed by it",
                        })
                    }
                }
                None => self.trust.trust(bundle.clone()),
            };
            match decision {
                Ok(bundle) => {
                    newly_pinned.push(bundle.fingerprint());
                    trusted.push(bundle);
                }
                Err(error) => refusal = Some(error),
            }
        }
        if !trusted.is_empty() {
            // The same bundles verify what this owner signs (versions, write delegations).
            self.lock().signers.insert(owner, trusted.clone());
        }
        if !newly_pinned.is_empty() {
            let mut state = self.lock();
            let pins = state.owner_state.pins.entry(owner).or_default();
            let before = pins.len();
            pins.extend(newly_pinned);
            if pins.len() != before {
                state.owner_state.dirty = true;
            }
        }
        match (trusted.is_empty(), refusal) {
            (false, _) => Ok(trusted),
            (true, Some(error)) => Err(error.into()),
            (true, None) => Err(Error::new(
                ErrorKind::Untrusted,
                "the owner has no key bundle",
            )),
        }
    }
}
