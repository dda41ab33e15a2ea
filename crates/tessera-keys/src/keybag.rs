//! The key bag (DESIGN.md §5.4): an owner's opened exchange secrets, sealed with its self key and stored on the
//! server under opaque ids, so that logging in needs no RSA private-key operation.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tessera_primitives::{Secret32, hmac_sha256};

use crate::canonical::{Reader, Writer};
use crate::error::{Error, Result};
use crate::exchange::ExchangeSecret;
use crate::id::{ExchangeDataId, FormatVersion, KeyBagEntryId, OwnerId, var_bytes};
use crate::owner::OwnerKeys;

const TAG_ENTRY_ID: &str = "tessera/v1/bag-entry";
const TAG_ENTRY_AAD: &str = "tessera/v1/key-bag";

/// One sealed key-bag entry as the server stores it. The server learns neither the exchange data it belongs to
/// nor anything of its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBagEntry {
    /// Format version.
    pub version: FormatVersion,
    /// The owner whose bag holds it.
    pub owner: OwnerId,
    /// Opaque id: `HMAC-SHA-256(bag-id key, "tessera/v1/bag-entry" ‖ 0x00 ‖ exchange data id)`.
    pub id: KeyBagEntryId,
    /// Sealed box of the payload (docs/formats.md) under the owner's self key.
    #[serde(with = "var_bytes")]
    pub sealed: Vec<u8>,
}

/// An owner's opened key bag: exchange secrets by exchange data id.
#[derive(Clone, Debug)]
pub struct KeyBag {
    owner: OwnerId,
    secrets: HashMap<ExchangeDataId, ExchangeSecret>,
}

impl KeyBag {
    /// An empty bag for `owner`.
    pub fn new(owner: OwnerId) -> Self {
        Self {
            owner,
            secrets: HashMap::new(),
        }
    }

    /// Opens every entry of a stored bag.
    ///
    /// # Errors
    /// [`Error::Crypto`] if any entry belongs to another owner, was tampered with, or does not open;
    /// [`Error::UnsupportedVersion`] for an entry of an unknown version.
    pub fn load(keys: &OwnerKeys, entries: &[KeyBagEntry]) -> Result<Self> {
        let mut bag = Self::new(keys.owner());
        bag.secrets.reserve(entries.len());
        for entry in entries {
            let secret = Self::open_entry(keys, entry)?;
            bag.secrets.insert(secret.id(), secret);
        }
        Ok(bag)
    }

    /// The opaque entry id of exchange data `id` in `keys`' bag.
    pub fn entry_id(keys: &OwnerKeys, id: &ExchangeDataId) -> KeyBagEntryId {
        let message = Writer::new(TAG_ENTRY_ID).fixed(id.as_bytes()).finish();
        KeyBagEntryId::from_bytes(hmac_sha256(keys.bag_id_key().expose_secret(), &message))
    }

    /// Seals `secret` as an entry of `keys`' bag.
    ///
    /// # Errors
    /// [`Error::Primitive`] if no nonce can be drawn.
    pub fn seal_entry(keys: &OwnerKeys, secret: &ExchangeSecret) -> Result<KeyBagEntry> {
        let id = Self::entry_id(keys, &secret.id());
        let payload = zeroize::Zeroizing::new(
            Writer::untagged()
                .u8(FormatVersion::V2.get())
                .fixed(secret.id().as_bytes())
                .fixed(secret.delegator().as_bytes())
                .fixed(secret.delegate().as_bytes())
                .u8(u8::from(secret.is_self_signed()))
                .fixed(secret.secret().expose_secret())
                .finish(),
        );
        let sealed = keys
            .self_key()
            .seal(&payload, &entry_aad(keys.owner(), &id))?;
        Ok(KeyBagEntry {
            version: FormatVersion::V2,
            owner: keys.owner(),
            id,
            sealed,
        })
    }

    /// Opens one entry of `keys`' bag.
    ///
    /// # Errors
    /// As [`KeyBag::load`].
    pub fn open_entry(keys: &OwnerKeys, entry: &KeyBagEntry) -> Result<ExchangeSecret> {
        if entry.owner != keys.owner() {
            return Err(Error::Crypto);
        }
        let payload = zeroize::Zeroizing::new(
            keys.self_key()
                .open(&entry.sealed, &entry_aad(entry.owner, &entry.id))?,
        );
        let mut reader = Reader::new(&payload, "key-bag entry");
        FormatVersion::check(reader.u8()?, "key-bag entry")?;
        let id = ExchangeDataId::from_bytes(reader.fixed()?);
        let delegator = OwnerId::from_bytes(reader.fixed()?);
        let delegate = OwnerId::from_bytes(reader.fixed()?);
        let self_signed = match reader.u8()? {
            0 => false,
            1 => true,
            _ => return Err(Error::Crypto),
        };
        let secret = Secret32::from_bytes(reader.fixed()?);
        reader.end()?;
        Ok(ExchangeSecret::new(
            id,
            delegator,
            delegate,
            secret,
            self_signed,
        ))
    }

    /// The owner of the bag.
    pub fn owner(&self) -> OwnerId {
        self.owner
    }

    /// Adds an opened exchange secret (after creating or opening exchange data).
    pub fn insert(&mut self, secret: ExchangeSecret) {
        self.secrets.insert(secret.id(), secret);
    }

    /// The secret of exchange data `id`, if the bag holds it.
    pub fn get(&self, id: &ExchangeDataId) -> Option<&ExchangeSecret> {
        self.secrets.get(id)
    }

    /// Every secret in the bag.
    pub fn iter(&self) -> impl Iterator<Item = &ExchangeSecret> {
        self.secrets.values()
    }

    /// Number of secrets.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether the bag is empty.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

fn entry_aad(owner: OwnerId, id: &KeyBagEntryId) -> Vec<u8> {
    Writer::new(TAG_ENTRY_AAD)
        .fixed(owner.as_bytes())
        .fixed(id.as_bytes())
        .finish()
}
