//! The side map for pairs with one explicit and one anonymous party: for the explicit party, a delegation key
//! maps to the exchange data id behind it, sealed under that party's self key (DESIGN.md §6).

use serde::{Deserialize, Serialize};
use tessera_keys::{DelegationKey, ExchangeDataId, FormatVersion, OwnerId, OwnerKeys};

use crate::error::{Error, Result};
use crate::model::Sealed;

const TAG_SIDE_MAP: &str = "tessera/v1/side-map";

/// One side-map entry as the server stores it; only its owner can open it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideMapEntry {
    /// Format version.
    pub version: FormatVersion,
    /// The explicit party the entry is for.
    pub owner: OwnerId,
    /// The delegation key it resolves.
    pub delegation_key: DelegationKey,
    /// The exchange data id, sealed under the owner's self key, AAD = `"tessera/v1/side-map" ‖ 0x00 ‖ owner ‖ delegation key`.
    pub sealed_exchange_data_id: Sealed,
}

impl SideMapEntry {
    /// Seals `exchange_data_id` for `keys`' owner under `delegation_key`.
    ///
    /// # Errors
    /// [`Error::Primitive`] if randomness fails.
    pub fn seal(
        keys: &OwnerKeys,
        delegation_key: DelegationKey,
        exchange_data_id: ExchangeDataId,
    ) -> Result<Self> {
        let sealed = keys.self_key().seal(
            exchange_data_id.as_bytes(),
            &aad(keys.owner(), &delegation_key),
        )?;
        Ok(Self {
            version: FormatVersion::V2,
            owner: keys.owner(),
            delegation_key,
            sealed_exchange_data_id: Sealed(sealed),
        })
    }

    /// Opens the entry with `keys`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if it belongs to another owner or was tampered with.
    pub fn open(&self, keys: &OwnerKeys) -> Result<ExchangeDataId> {
        if self.owner != keys.owner() {
            return Err(Error::Crypto);
        }
        let bytes = keys.self_key().open(
            &self.sealed_exchange_data_id.0,
            &aad(self.owner, &self.delegation_key),
        )?;
        ExchangeDataId::try_from(bytes.as_slice()).map_err(|_| Error::Crypto)
    }
}

fn aad(owner: OwnerId, delegation_key: &DelegationKey) -> Vec<u8> {
    let mut aad = Vec::with_capacity(TAG_SIDE_MAP.len() + 1 + 16 + 32);
    aad.extend_from_slice(TAG_SIDE_MAP.as_bytes());
    aad.push(0);
    aad.extend_from_slice(owner.as_bytes());
    aad.extend_from_slice(delegation_key.as_bytes());
    aad
}
