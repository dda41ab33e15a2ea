//! The session as the sharing layer's [`DelegationLookup`].

use std::sync::Arc;

use tessera_keys::{
    DelegationKey, EntityType, ExchangeSecret, Fingerprint, OwnerId, TrustedBundle,
};
use tessera_sharing::{DelegationLookup, VerifiedBatches};

use super::Session;

/// The session's exchange cache as the sharing layer's [`DelegationLookup`]: its one index of delegation keys
/// answers, and the session's lock is taken per question, never while a record's content is decrypted.
pub(crate) struct SessionLookup<'a>(pub(super) &'a Session);

impl DelegationLookup for SessionLookup<'_> {
    fn owner(&self) -> OwnerId {
        self.0.owner()
    }

    fn exchange_secret(
        &self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> tessera_sharing::Result<Option<Arc<ExchangeSecret>>> {
        Ok(self.0.lock().exchange.lookup(entity_type, delegation_key)?)
    }

    fn exchange_secrets(
        &self,
        entity_type: &EntityType,
        delegation_keys: &mut dyn Iterator<Item = &DelegationKey>,
    ) -> tessera_sharing::Result<Vec<(DelegationKey, Arc<ExchangeSecret>)>> {
        let mut state = self.0.lock();
        let mut found = Vec::new();
        for key in delegation_keys {
            if let Some(secret) = state.exchange.lookup(entity_type, key)? {
                found.push((*key, secret));
            }
        }
        Ok(found)
    }

    fn signer(
        &self,
        owner: OwnerId,
        fingerprint: Fingerprint,
    ) -> tessera_sharing::Result<Option<TrustedBundle>> {
        if owner == self.0.owner() && fingerprint == self.0.own_bundle.fingerprint() {
            return Ok(Some(self.0.own_bundle.clone()));
        }
        Ok(self.0.lock().signers.get(&owner).and_then(|bundles| {
            bundles
                .iter()
                .find(|b| b.fingerprint() == fingerprint)
                .cloned()
        }))
    }

    fn verified_batches(&self) -> Option<&VerifiedBatches> {
        Some(&self.0.verified)
    }
}
