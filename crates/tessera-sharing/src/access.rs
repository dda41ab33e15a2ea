//! What an owner can open: the [`DelegationLookup`] the entity operations ask for the exchange secret behind a
//! delegation key, and [`AccessIndex`], its simple implementation over a list of opened secrets.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use tessera_keys::{
    AccessControlKey, DelegationKey, EntityType, ExchangeSecret, Fingerprint, KeyBag, OwnerId,
    TrustedBundle,
};

use crate::error::Result;
use crate::proof::VerifiedBatches;

/// Where the entity operations ([`crate::decrypt`], [`crate::open_keys`], [`crate::revoke_and_rotate`]) find the
/// exchange secret behind a delegation key of an entity type.
///
/// One delegation key serves every entity of a type between two owners, so an implementation indexes its secrets
/// by `(entity type, delegation key)` once and answers each question with a map lookup. [`AccessIndex`] does so
/// for a list of opened secrets; an SDK session implements it over its own cache of sealed secrets, so that the
/// client keeps one index, not one per read.
pub trait DelegationLookup {
    /// The owner whose secrets these are.
    fn owner(&self) -> OwnerId;

    /// The secret behind `delegation_key` for entities of `entity_type`, if this owner holds it.
    ///
    /// # Errors
    /// [`crate::Error::Crypto`] if the implementation holds the secret but can no longer produce it (a sealed copy
    /// that does not open).
    fn exchange_secret(
        &self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> Result<Option<Arc<ExchangeSecret>>>;

    /// The secrets behind those of `delegation_keys` (all of entities of `entity_type`) this owner holds, with
    /// their keys, in one question: what opening an entity asks for its delegations. The default asks
    /// [`DelegationLookup::exchange_secret`] once per key; an implementation with a lock or a per-type index
    /// overrides it to take them once.
    ///
    /// # Errors
    /// As [`DelegationLookup::exchange_secret`].
    fn exchange_secrets(
        &self,
        entity_type: &EntityType,
        delegation_keys: &mut dyn Iterator<Item = &DelegationKey>,
    ) -> Result<Vec<(DelegationKey, Arc<ExchangeSecret>)>> {
        let mut found = Vec::new();
        for key in delegation_keys {
            if let Some(secret) = self.exchange_secret(entity_type, key)? {
                found.push((*key, secret));
            }
        }
        Ok(found)
    }

    /// The key bundle of `owner` with `fingerprint`, if this owner trusts it: the only keys a signature on an
    /// entity (a version, a write delegation) is verified with. `None` makes the operation fail with
    /// [`crate::Error::UnknownSigner`], after which the caller may fetch and trust that owner's bundles and retry.
    ///
    /// # Errors
    /// As the implementation's store of trusted bundles fails.
    fn signer(&self, owner: OwnerId, fingerprint: Fingerprint) -> Result<Option<TrustedBundle>>;

    /// Where verified batch signatures are remembered, if anywhere: with it, the records of one batch cost one
    /// signature verification per reader, not one each.
    fn verified_batches(&self) -> Option<&VerifiedBatches> {
        None
    }
}

/// An owner's exchange secrets and, per entity type, the delegation keys they give (computed once per type).
#[derive(Debug)]
pub struct AccessIndex {
    owner: OwnerId,
    secrets: Vec<Arc<ExchangeSecret>>,
    by_type: RwLock<HashMap<EntityType, Arc<HashMap<DelegationKey, usize>>>>,
    signers: HashMap<(OwnerId, Fingerprint), TrustedBundle>,
    verified: VerifiedBatches,
}

impl AccessIndex {
    /// The index of `owner`'s exchange secrets (as delegator or delegate).
    pub fn new(owner: OwnerId, secrets: impl IntoIterator<Item = ExchangeSecret>) -> Self {
        Self {
            owner,
            secrets: secrets.into_iter().map(Arc::new).collect(),
            by_type: RwLock::new(HashMap::new()),
            signers: HashMap::new(),
            verified: VerifiedBatches::new(),
        }
    }

    /// Trusts `bundles` to verify signatures (writers, delegators) with.
    #[must_use]
    pub fn with_signers(mut self, bundles: impl IntoIterator<Item = TrustedBundle>) -> Self {
        for bundle in bundles {
            self.signers
                .insert((bundle.owner(), bundle.fingerprint()), bundle);
        }
        self
    }

    /// The batch signatures this index verified so far.
    pub fn verified_batches(&self) -> &VerifiedBatches {
        &self.verified
    }

    /// The index of every secret in an opened key bag.
    pub fn from_key_bag(bag: &KeyBag) -> Self {
        Self::new(bag.owner(), bag.iter().cloned())
    }

    /// The owner.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }

    /// Adds a secret (after creating or opening exchange data).
    pub fn insert(&mut self, secret: ExchangeSecret) {
        self.secrets.push(Arc::new(secret));
        self.by_type
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The secret behind `delegation_key` for entities of `entity_type`, if this owner holds it.
    pub fn lookup(
        &self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> Option<&ExchangeSecret> {
        self.find(entity_type, delegation_key).map(Arc::as_ref)
    }

    /// Every delegation key this owner can open for `entity_type`.
    pub fn delegation_keys(&self, entity_type: &EntityType) -> Vec<DelegationKey> {
        self.index(entity_type).keys().copied().collect()
    }

    /// Every access-control key of this owner for `entity_type`, to present to a server.
    pub fn access_control_keys(&self, entity_type: &EntityType) -> Vec<AccessControlKey> {
        self.secrets
            .iter()
            .map(|s| s.access_control_key(entity_type))
            .collect()
    }

    /// Number of secrets.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether the index holds no secret.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    fn find(
        &self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> Option<&Arc<ExchangeSecret>> {
        let index = self.index(entity_type);
        index.get(delegation_key).and_then(|i| self.secrets.get(*i))
    }

    fn index(&self, entity_type: &EntityType) -> Arc<HashMap<DelegationKey, usize>> {
        if let Some(index) = self
            .by_type
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(entity_type)
        {
            return Arc::clone(index);
        }
        let index: Arc<HashMap<DelegationKey, usize>> = Arc::new(
            self.secrets
                .iter()
                .enumerate()
                .map(|(i, secret)| (secret.delegation_key(entity_type), i))
                .collect(),
        );
        self.by_type
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(entity_type.clone(), Arc::clone(&index));
        index
    }
}

impl DelegationLookup for AccessIndex {
    fn owner(&self) -> OwnerId {
        self.owner
    }

    fn exchange_secret(
        &self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> Result<Option<Arc<ExchangeSecret>>> {
        Ok(self.find(entity_type, delegation_key).cloned())
    }

    fn exchange_secrets(
        &self,
        entity_type: &EntityType,
        delegation_keys: &mut dyn Iterator<Item = &DelegationKey>,
    ) -> Result<Vec<(DelegationKey, Arc<ExchangeSecret>)>> {
        let index = self.index(entity_type);
        Ok(delegation_keys
            .filter_map(|key| {
                let secret = index.get(key).and_then(|i| self.secrets.get(*i))?;
                Some((*key, Arc::clone(secret)))
            })
            .collect())
    }

    fn signer(&self, owner: OwnerId, fingerprint: Fingerprint) -> Result<Option<TrustedBundle>> {
        Ok(self.signers.get(&(owner, fingerprint)).cloned())
    }

    fn verified_batches(&self) -> Option<&VerifiedBatches> {
        Some(&self.verified)
    }
}
