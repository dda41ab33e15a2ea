//! The owner's trust state (protocol v2, P5): the key bundles it pinned for each partner and the highest content
//! version and key epoch it has seen of each record, sealed under its self key (derived from the private key) and
//! kept on the server as one more entry of its key bag, so that every device holding the key file has them.
//!
//! The entry's id is the key-bag id of a reserved exchange data id (all zeros, which no random version-4 id can be),
//! so the server cannot tell it from the others; its associated data differs from an exchange secret's, so neither
//! can be swapped for the other. Each save carries a generation one above the last; a device that has seen a
//! generation refuses an older one (a rollback of the state), and an app that keeps
//! [`Session::state_anchor`](crate::Session::state_anchor) across runs refuses a deleted or older state at login.
//! Saves are compare-and-swaps of that one entry: a device whose save meets another device's newer state merges it
//! (pins united, the highest marks kept) and saves again.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tessera_keys::{
    ExchangeDataId, Fingerprint, FormatVersion, KeyBag, KeyBagEntry, KeyBagEntryId, OwnerId,
    OwnerKeys,
};
use tessera_sharing::EntityId;

use crate::error::{Error, ErrorKind, Result};

const TAG_STATE_AAD: &[u8] = b"tessera/v2/owner-state\0";
/// The reserved exchange data id whose key-bag id names the state entry.
const STATE_SLOT: [u8; 16] = [0; 16];

/// What one owner remembers about its partners and records.
#[derive(Debug, Default)]
pub(crate) struct OwnerState {
    /// The generation of the last state loaded or saved.
    pub(crate) generation: u64,
    /// Pinned bundle fingerprints per partner.
    pub(crate) pins: BTreeMap<OwnerId, BTreeSet<Fingerprint>>,
    /// Highest `(content version, key epoch)` seen per record.
    pub(crate) seen: HashMap<EntityId, (u64, u32)>,
    /// Whether something changed since the last save.
    pub(crate) dirty: bool,
    /// The entry as last loaded or saved: what the next save replaces (compare-and-swap).
    pub(crate) stored: Option<KeyBagEntry>,
}

impl OwnerState {
    /// The key-bag entry id of `keys`' state.
    pub(crate) fn entry_id(keys: &OwnerKeys) -> KeyBagEntryId {
        KeyBag::entry_id(keys, &ExchangeDataId::from_bytes(STATE_SLOT))
    }

    /// Records that `entity` was seen at `(content_version, key_epoch)`.
    ///
    /// # Errors
    /// [`ErrorKind::Rollback`] if a newer content version or key epoch of it was seen before; nothing changes.
    pub(crate) fn see(
        &mut self,
        entity: EntityId,
        content_version: u64,
        key_epoch: u32,
    ) -> Result<()> {
        let mark = self.seen.entry(entity).or_insert((0, 0));
        if content_version < mark.0 || key_epoch < mark.1 {
            return Err(Error::new(
                ErrorKind::Rollback,
                format!(
                    "record {entity} was seen at content version {} and key epoch {}, the server returned content \
                     version {content_version} and key epoch {key_epoch}; do not write over it and report the server",
                    mark.0, mark.1
                ),
            ));
        }
        if (content_version, key_epoch) != *mark {
            *mark = (content_version.max(mark.0), key_epoch.max(mark.1));
            self.dirty = true;
        }
        Ok(())
    }

    /// Seals the state, one generation up, as `keys`' key-bag entry.
    ///
    /// # Errors
    /// [`ErrorKind::Internal`] if no nonce can be drawn.
    pub(crate) fn seal(&self, keys: &OwnerKeys, generation: u64) -> Result<KeyBagEntry> {
        let mut payload = zeroize::Zeroizing::new(Vec::with_capacity(
            32 + self.pins.len() * 50 + self.seen.len() * 28,
        ));
        payload.push(FormatVersion::V2.get());
        payload.extend_from_slice(&generation.to_be_bytes());
        payload.extend_from_slice(&len32(self.pins.len()).to_be_bytes());
        for (owner, fingerprints) in &self.pins {
            payload.extend_from_slice(owner.as_bytes());
            payload.extend_from_slice(&len32(fingerprints.len()).to_be_bytes());
            for fingerprint in fingerprints {
                payload.extend_from_slice(fingerprint.as_bytes());
            }
        }
        payload.extend_from_slice(&len32(self.seen.len()).to_be_bytes());
        let mut seen: Vec<_> = self.seen.iter().collect();
        seen.sort_unstable_by_key(|(id, _)| **id);
        for (id, (version, epoch)) in seen {
            payload.extend_from_slice(id.as_bytes());
            payload.extend_from_slice(&version.to_be_bytes());
            payload.extend_from_slice(&epoch.to_be_bytes());
        }
        let id = Self::entry_id(keys);
        let sealed = keys.self_key().seal(&payload, &aad(keys.owner(), &id))?;
        Ok(KeyBagEntry {
            version: FormatVersion::V2,
            owner: keys.owner(),
            id,
            sealed,
        })
    }

    /// Opens `keys`' state entry.
    ///
    /// # Errors
    /// [`ErrorKind::Crypto`] if it belongs to another owner, was altered or is not a state.
    pub(crate) fn open(keys: &OwnerKeys, entry: &KeyBagEntry) -> Result<Self> {
        let id = Self::entry_id(keys);
        if entry.owner != keys.owner() || entry.id != id {
            return Err(crypto());
        }
        let payload = zeroize::Zeroizing::new(
            keys.self_key()
                .open(&entry.sealed, &aad(keys.owner(), &id))
                .map_err(|_| crypto())?,
        );
        let mut reader = Reader(&payload);
        if reader.take::<1>()? != [FormatVersion::V2.get()] {
            return Err(crypto());
        }
        let generation = u64::from_be_bytes(reader.take()?);
        let mut pins = BTreeMap::new();
        for _ in 0..u32::from_be_bytes(reader.take()?) {
            let owner = OwnerId::from_bytes(reader.take()?);
            let mut fingerprints = BTreeSet::new();
            for _ in 0..u32::from_be_bytes(reader.take()?) {
                fingerprints.insert(Fingerprint::from_bytes(reader.take()?));
            }
            pins.insert(owner, fingerprints);
        }
        let mut seen = HashMap::new();
        for _ in 0..u32::from_be_bytes(reader.take()?) {
            let id = EntityId::from_bytes(reader.take()?);
            let version = u64::from_be_bytes(reader.take()?);
            let epoch = u32::from_be_bytes(reader.take()?);
            seen.insert(id, (version, epoch));
        }
        if !reader.0.is_empty() {
            return Err(crypto());
        }
        Ok(Self {
            generation,
            pins,
            seen,
            dirty: false,
            stored: Some(entry.clone()),
        })
    }

    /// Takes in a state loaded from the server: pins and marks are merged (the highest mark wins), and the
    /// generation moves to the loaded one.
    ///
    /// # Errors
    /// [`ErrorKind::Rollback`] if the loaded generation is older than one this session has seen.
    pub(crate) fn merge_loaded(&mut self, loaded: Self) -> Result<()> {
        if loaded.generation < self.generation {
            return Err(Error::new(
                ErrorKind::Rollback,
                format!(
                    "the server returned this owner's state at generation {}, older than generation {} already seen; \
                     it deleted or rolled back the state: report the server",
                    loaded.generation, self.generation
                ),
            ));
        }
        self.generation = loaded.generation;
        self.stored = loaded.stored;
        for (owner, fingerprints) in loaded.pins {
            self.pins.entry(owner).or_default().extend(fingerprints);
        }
        for (id, (version, epoch)) in loaded.seen {
            let mark = self.seen.entry(id).or_insert((0, 0));
            *mark = (mark.0.max(version), mark.1.max(epoch));
        }
        Ok(())
    }
}

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn aad(owner: OwnerId, id: &KeyBagEntryId) -> Vec<u8> {
    let mut aad = TAG_STATE_AAD.to_vec();
    aad.extend_from_slice(owner.as_bytes());
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn crypto() -> Error {
    Error::new(
        ErrorKind::Crypto,
        "this owner's state entry does not open with its key",
    )
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self.0.split_at_checked(N).ok_or_else(crypto)?;
        self.0 = rest;
        head.try_into().map_err(|_| crypto())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn a_state_round_trips_and_refuses_older_marks_and_generations() {
        let (keys, _) = crate::owner::generate_owner(
            tessera_keys::OwnerKind::Hcp,
            None,
            tessera_primitives::RsaKeySize::Bits2048,
        )
        .unwrap();
        let mut state = OwnerState::default();
        let record = EntityId::generate().unwrap();
        state.see(record, 3, 1).unwrap();
        state
            .pins
            .entry(keys.owner())
            .or_default()
            .insert(keys.fingerprint());
        let entry = state.seal(&keys, 7).unwrap();
        let opened = OwnerState::open(&keys, &entry).unwrap();
        assert_eq!(opened.generation, 7);
        assert_eq!(opened.seen.get(&record), Some(&(3, 1)));
        assert_eq!(opened.pins, state.pins);

        let mut fresh = OwnerState {
            generation: 8,
            ..OwnerState::default()
        };
        assert_eq!(
            fresh.merge_loaded(opened).unwrap_err().kind(),
            ErrorKind::Rollback
        );
        let mut later = OwnerState::open(&keys, &entry).unwrap();
        assert_eq!(
            later.see(record, 2, 1).unwrap_err().kind(),
            ErrorKind::Rollback
        );
        assert_eq!(
            later.see(record, 3, 0).unwrap_err().kind(),
            ErrorKind::Rollback
        );
        later.see(record, 4, 1).unwrap();

        let mut tampered = entry.clone();
        if let Some(byte) = tampered.sealed.last_mut() {
            *byte ^= 1;
        }
        assert_eq!(
            OwnerState::open(&keys, &tampered).unwrap_err().kind(),
            ErrorKind::Crypto
        );
    }
}
