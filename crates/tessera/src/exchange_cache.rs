//! The exchange secrets of a session (DESIGN.md §5.4): every one the owner can use is kept *sealed*, exactly as its
//! key-bag entry on the server, and at most `capacity` of them are kept *opened*, the least recently used leaving
//! first. A miss re-opens the sealed entry with the owner's self key: one AES-GCM open and the secret's key
//! derivations, never an RSA operation.
//!
//! Finding records needs every partner's delegation keys and access-control keys, not only the cached ones, so the
//! delegation keys of each entity type are indexed once for all known secrets (re-opening evicted ones on the way,
//! without disturbing the cache order) and kept as plain 32-byte keys pointing to exchange data ids. That index is
//! the client's only one: [`ExchangeCache::lookup`] answers the sharing layer's
//! [`DelegationLookup`](tessera_sharing::DelegationLookup) questions from it (through the session), so reading a
//! record computes no delegation key and copies no secret.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tessera_keys::{
    AccessControlKey, DelegationKey, EntityType, ExchangeDataId, ExchangeSecret, KeyBag,
    KeyBagEntry, OwnerId, OwnerKeys, Result,
};

/// Opened exchange secrets a session keeps by default (see [`crate::Session::set_exchange_cache_capacity`]).
pub const DEFAULT_EXCHANGE_CACHE_CAPACITY: usize = 1024;

/// What the session knows of one exchange data without opening it, and its sealed secret.
struct Known {
    delegator: OwnerId,
    delegate: OwnerId,
    self_signed: bool,
    entry: KeyBagEntry,
}

/// An opened secret and the tick of its last use (its key in `ExchangeCache::recency`).
struct Opened {
    secret: Arc<ExchangeSecret>,
    used: u64,
}

/// Sealed exchange secrets, an LRU of opened ones, and per-type delegation-key indexes.
pub(crate) struct ExchangeCache {
    keys: Arc<OwnerKeys>,
    known: HashMap<ExchangeDataId, Known>,
    opened: HashMap<ExchangeDataId, Opened>,
    /// Opened ids by last use, oldest first.
    recency: BTreeMap<u64, ExchangeDataId>,
    tick: u64,
    capacity: usize,
    by_type: HashMap<EntityType, HashMap<DelegationKey, ExchangeDataId>>,
    reopened: usize,
}

impl ExchangeCache {
    /// An empty cache for `keys`' owner, keeping at most `capacity` (at least one) secrets opened.
    pub(crate) fn new(keys: Arc<OwnerKeys>, capacity: usize) -> Self {
        Self {
            keys,
            known: HashMap::new(),
            opened: HashMap::new(),
            recency: BTreeMap::new(),
            tick: 0,
            capacity: capacity.max(1),
            by_type: HashMap::new(),
            reopened: 0,
        }
    }

    /// Adds an opened secret and its sealed key-bag entry (which must seal that secret for this owner).
    pub(crate) fn insert(&mut self, secret: ExchangeSecret, entry: KeyBagEntry) {
        let id = secret.id();
        for (entity_type, index) in &mut self.by_type {
            index.insert(secret.delegation_key(entity_type), id);
        }
        self.known.insert(
            id,
            Known {
                delegator: secret.delegator(),
                delegate: secret.delegate(),
                self_signed: secret.is_self_signed(),
                entry,
            },
        );
        self.keep_opened(Arc::new(secret));
    }

    /// Whether the session knows exchange data `id`.
    pub(crate) fn contains(&self, id: &ExchangeDataId) -> bool {
        self.known.contains_key(id)
    }

    /// Every known exchange data id.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &ExchangeDataId> {
        self.known.keys()
    }

    /// Number of known secrets.
    pub(crate) fn len(&self) -> usize {
        self.known.len()
    }

    /// Number of secrets held opened.
    pub(crate) fn opened_len(&self) -> usize {
        self.opened.len()
    }

    /// Secrets re-opened from their sealed entry since the cache was made.
    pub(crate) fn reopened(&self) -> usize {
        self.reopened
    }

    /// Changes the number of secrets kept opened, closing the least recently used ones beyond it.
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        self.evict();
    }

    /// The secret of exchange data `id`, if known: from the cache (now the most recently used), or re-opened from
    /// its sealed entry and cached.
    ///
    /// # Errors
    /// `Crypto` if a sealed entry that opened before no longer does, `ExchangeMismatch` if it holds another secret.
    pub(crate) fn get(&mut self, id: &ExchangeDataId) -> Result<Option<Arc<ExchangeSecret>>> {
        if let Some(opened) = self.opened.get_mut(id) {
            self.recency.remove(&opened.used);
            self.tick += 1;
            opened.used = self.tick;
            self.recency.insert(self.tick, *id);
            return Ok(Some(Arc::clone(&opened.secret)));
        }
        let Some(secret) = self.reopen(id)? else {
            return Ok(None);
        };
        let secret = Arc::new(secret);
        self.keep_opened(Arc::clone(&secret));
        Ok(Some(secret))
    }

    /// The secret behind `delegation_key` for entities of `entity_type`, if this owner holds it, as
    /// [`ExchangeCache::get`] gives it (indexing the type's delegation keys first, once).
    ///
    /// # Errors
    /// As [`ExchangeCache::get`].
    pub(crate) fn lookup(
        &mut self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> Result<Option<Arc<ExchangeSecret>>> {
        self.index(entity_type)?;
        let id = self
            .by_type
            .get(entity_type)
            .and_then(|index| index.get(delegation_key))
            .copied();
        match id {
            Some(id) => self.get(&id),
            None => Ok(None),
        }
    }

    /// Ids of the exchange data from `delegator` to `delegate`, in no particular order; with `signed_only`, only
    /// those the delegator signed (the ones it may encrypt new data with).
    pub(crate) fn between(
        &self,
        delegator: OwnerId,
        delegate: OwnerId,
        signed_only: bool,
    ) -> Vec<ExchangeDataId> {
        self.known
            .iter()
            .filter(|(_, k)| {
                k.delegator == delegator
                    && k.delegate == delegate
                    && (k.self_signed || !signed_only)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Calls `f` with the secret of each of `ids` that is known, without changing which secrets stay opened
    /// (evicted ones are re-opened for the call only): for passes over every partner.
    ///
    /// # Errors
    /// As [`ExchangeCache::get`].
    pub(crate) fn scan<T>(
        &mut self,
        ids: &[ExchangeDataId],
        mut f: impl FnMut(&ExchangeSecret) -> T,
    ) -> Result<Vec<T>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(opened) = self.opened.get(id) {
                out.push(f(opened.secret.as_ref()));
            } else if let Some(secret) = self.reopen(id)? {
                out.push(f(&secret));
            }
        }
        Ok(out)
    }

    /// The access-control keys of `ids` for `entity_type`. The first call for a type also indexes its delegation
    /// keys in the same pass over every known secret (both need every partner's secret once after login).
    ///
    /// # Errors
    /// As [`ExchangeCache::get`].
    pub(crate) fn access_control_keys(
        &mut self,
        entity_type: &EntityType,
        ids: &[ExchangeDataId],
    ) -> Result<Vec<AccessControlKey>> {
        if self.by_type.contains_key(entity_type) {
            return self.scan(ids, |secret| secret.access_control_key(entity_type));
        }
        let wanted: HashSet<&ExchangeDataId> = ids.iter().collect();
        let all: Vec<ExchangeDataId> = self.known.keys().copied().collect();
        let mut index = HashMap::with_capacity(all.len());
        let mut keys = Vec::with_capacity(ids.len());
        self.scan(&all, |secret| {
            index.insert(secret.delegation_key(entity_type), secret.id());
            if wanted.contains(&secret.id()) {
                keys.push(secret.access_control_key(entity_type));
            }
        })?;
        self.by_type.insert(entity_type.clone(), index);
        Ok(keys)
    }

    /// Indexes the delegation keys of every known secret for `entity_type`, once.
    fn index(&mut self, entity_type: &EntityType) -> Result<()> {
        if !self.by_type.contains_key(entity_type) {
            self.access_control_keys(entity_type, &[])?;
        }
        Ok(())
    }

    /// Opens the sealed entry of `id`, if known.
    fn reopen(&mut self, id: &ExchangeDataId) -> Result<Option<ExchangeSecret>> {
        let Some(known) = self.known.get(id) else {
            return Ok(None);
        };
        let secret = KeyBag::open_entry(&self.keys, &known.entry)?;
        if secret.id() != *id {
            // A key-bag entry holds another exchange secret than the one it was stored for.
            return Err(tessera_keys::Error::ExchangeMismatch);
        }
        self.reopened += 1;
        Ok(Some(secret))
    }

    fn keep_opened(&mut self, secret: Arc<ExchangeSecret>) {
        let id = secret.id();
        self.tick += 1;
        if let Some(previous) = self.opened.insert(
            id,
            Opened {
                secret,
                used: self.tick,
            },
        ) {
            self.recency.remove(&previous.used);
        }
        self.recency.insert(self.tick, id);
        self.evict();
    }

    fn evict(&mut self) {
        while self.opened.len() > self.capacity {
            let Some((_, id)) = self.recency.pop_first() else {
                return;
            };
            self.opened.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        reason = "tests fail loudly on a broken fixture"
    )]

    use super::*;
    use tessera_keys::ExchangeData;

    fn owner() -> Arc<OwnerKeys> {
        let (keys, _) = crate::owner::generate_owner(
            tessera_keys::OwnerKind::Hcp,
            None,
            tessera_primitives::RsaKeySize::Bits2048,
        )
        .unwrap();
        Arc::new(keys)
    }

    /// `n` exchange secrets of `keys`' owner (with itself, which needs no partner key), with their entries.
    fn secrets(keys: &OwnerKeys, n: usize) -> Vec<(ExchangeSecret, KeyBagEntry)> {
        (0..n)
            .map(|_| {
                let (_, secret) = ExchangeData::create(keys, keys.owner(), &[], 1).unwrap();
                let entry = KeyBag::seal_entry(keys, &secret).unwrap();
                (secret, entry)
            })
            .collect()
    }

    #[test]
    fn keeps_at_most_capacity_opened_and_reopens_the_rest_from_the_sealed_entries() {
        let keys = owner();
        let all = secrets(&keys, 5);
        let mut cache = ExchangeCache::new(Arc::clone(&keys), 2);
        for (secret, entry) in &all {
            cache.insert(secret.clone(), entry.clone());
        }
        assert_eq!(
            (cache.len(), cache.opened_len(), cache.reopened()),
            (5, 2, 0)
        );
        let note = EntityType::new("Note").unwrap();
        for (secret, _) in all.iter().rev() {
            let got = cache.get(&secret.id()).unwrap().unwrap();
            assert_eq!(got.delegation_key(&note), secret.delegation_key(&note));
            assert!(cache.opened_len() <= 2);
        }
        // The two inserted last were still cached; the first three were re-opened.
        assert_eq!(cache.reopened(), 3);
        assert!(
            cache
                .get(&ExchangeDataId::generate().unwrap())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn the_least_recently_used_secret_leaves_first() {
        let keys = owner();
        let all = secrets(&keys, 3);
        let mut cache = ExchangeCache::new(Arc::clone(&keys), 2);
        cache.insert(all[0].0.clone(), all[0].1.clone());
        cache.insert(all[1].0.clone(), all[1].1.clone());
        cache.get(&all[0].0.id()).unwrap();
        cache.insert(all[2].0.clone(), all[2].1.clone());
        // 1 was the least recently used: 0 and 2 open without a re-open, 1 needs one.
        cache.get(&all[0].0.id()).unwrap();
        cache.get(&all[2].0.id()).unwrap();
        assert_eq!(cache.reopened(), 0);
        cache.get(&all[1].0.id()).unwrap();
        assert_eq!(cache.reopened(), 1);
    }

    #[test]
    fn delegation_keys_of_every_known_secret_are_found_and_scans_leave_the_cache_order_alone() {
        let keys = owner();
        let all = secrets(&keys, 6);
        let mut cache = ExchangeCache::new(Arc::clone(&keys), 1);
        let note = EntityType::new("Note").unwrap();
        for (secret, entry) in &all[..3] {
            cache.insert(secret.clone(), entry.clone());
        }
        // Index built with three known, then three more inserted: all six are found.
        let unknown = secrets(&keys, 1).remove(0).0.delegation_key(&note);
        assert!(cache.lookup(&note, &unknown).unwrap().is_none());
        for (secret, entry) in &all[3..] {
            cache.insert(secret.clone(), entry.clone());
        }
        let wanted: Vec<DelegationKey> = all.iter().map(|(s, _)| s.delegation_key(&note)).collect();
        let mut found_ids: Vec<_> = wanted
            .iter()
            .filter_map(|key| cache.lookup(&note, key).unwrap())
            .map(|secret| secret.id())
            .collect();
        let mut all_ids: Vec<_> = all.iter().map(|(s, _)| s.id()).collect();
        found_ids.sort_unstable();
        all_ids.sort_unstable();
        assert_eq!(found_ids, all_ids);
        assert_eq!(cache.opened_len(), 1);

        let last = all[5].0.id();
        cache.get(&last).unwrap();
        let before = cache.reopened();
        let ids: Vec<_> = all.iter().map(|(s, _)| s.id()).collect();
        assert_eq!(cache.scan(&ids, ExchangeSecret::id).unwrap(), ids);
        cache.get(&last).unwrap();
        assert_eq!(
            cache.reopened(),
            before + 5,
            "the scan evicted the cached secret"
        );
    }

    #[test]
    fn the_first_access_key_pass_for_a_type_also_indexes_its_delegation_keys() {
        let keys = owner();
        let all = secrets(&keys, 4);
        let mut cache = ExchangeCache::new(Arc::clone(&keys), 1);
        for (secret, entry) in &all {
            cache.insert(secret.clone(), entry.clone());
        }
        let note = EntityType::new("Note").unwrap();
        let ids: Vec<_> = all.iter().map(|(s, _)| s.id()).collect();
        let got = cache.access_control_keys(&note, &ids[..2]).unwrap();
        assert_eq!(got.len(), 2);
        for (secret, _) in &all[..2] {
            let key = secret.access_control_key(&note);
            assert!(got.iter().any(|k| k.ct_eq(&key)));
        }
        assert_eq!(
            cache.reopened(),
            3,
            "one pass over the three sealed secrets"
        );
        let wanted = all[0].0.delegation_key(&note);
        assert!(cache.lookup(&note, &wanted).unwrap().is_some());
        assert_eq!(
            cache.reopened(),
            4,
            "no second pass: only the secret asked for"
        );
    }

    #[test]
    fn an_entry_of_another_owner_or_another_secret_does_not_reopen() {
        let keys = owner();
        let other = owner();
        let mut mine = secrets(&keys, 3);
        let (_, foreign) = secrets(&other, 1).remove(0);
        let (third, third_entry) = mine.remove(2);
        let (second, _) = mine.remove(1);
        let (first, _) = mine.remove(0);
        let mut cache = ExchangeCache::new(Arc::clone(&keys), 1);
        cache.insert(first.clone(), foreign);
        cache.insert(second.clone(), third_entry);
        cache.insert(third.clone(), KeyBag::seal_entry(&keys, &third).unwrap());
        let kind = |error| crate::Error::from(error).kind();
        assert_eq!(
            kind(cache.get(&first.id()).unwrap_err()),
            crate::ErrorKind::Crypto
        );
        assert_eq!(
            kind(cache.get(&second.id()).unwrap_err()),
            crate::ErrorKind::Crypto
        );
    }
}
