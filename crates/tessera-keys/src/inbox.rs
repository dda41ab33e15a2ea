//! Inbox messages: exchange data delivered to its delegate without telling the server who sent it.
//!
//! Protocol v2 stores no exchange data on the server. A delegator seals the whole [`ExchangeData`] (parties,
//! signatures, wraps) for a trusted bundle of the delegate in an anonymous box (`tessera_primitives::seal_to`),
//! and the server files the box in the delegate's inbox, under the delegate's id and a random message id, knowing
//! nothing else. The delegate opens it, verifies it as before (signature against a trusted bundle of the
//! delegator, then its wrap, then RSA), keeps the secret in its sealed key bag and deletes the message: at rest,
//! nothing names a delegator, and a delivered message leaves no trace (docs/threat-model.md, "Privacy at rest").

use serde::{Deserialize, Serialize};
use tessera_primitives::seal_to;

use crate::canonical::Writer;
use crate::error::{Error, Result};
use crate::exchange::ExchangeData;
use crate::id::{Fingerprint, FormatVersion, InboxMessageId, var_bytes};
use crate::owner::OwnerKeys;
use crate::trust::TrustedBundle;

const TAG_INBOX: &str = "tessera/v2/inbox";

/// The largest sealed part of an inbox message this layer reads (exchange data with [`crate::exchange::MAX_WRAPS`]
/// wraps of 4096-bit keys fits well below it).
pub const MAX_INBOX_MESSAGE_LEN: usize = 32 * 1024;

/// One message in an owner's inbox: exchange data sealed for one key bundle of the recipient.
///
/// Only the recipient's bundle fingerprint travels in clear (the inbox already names the recipient); the sender,
/// the signatures and the wraps are inside the box.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboxMessage {
    /// Format version of the message.
    pub version: FormatVersion,
    /// Random id, chosen by the sender; bound into the box, so a box moved under another id does not open.
    pub id: InboxMessageId,
    /// Fingerprint of the recipient's bundle the box is sealed for.
    pub recipient: Fingerprint,
    /// The anonymous box.
    #[serde(with = "var_bytes")]
    pub sealed: Vec<u8>,
}

impl InboxMessage {
    /// Seals `data` for `recipient`, a trusted bundle of its delegate.
    ///
    /// # Errors
    /// [`Error::WrongOwner`] if `recipient` is not the delegate's; [`Error::Primitive`] if randomness fails or the
    /// bundle's key agrees on no secret.
    pub fn seal(data: &ExchangeData, recipient: &TrustedBundle) -> Result<Self> {
        if recipient.owner() != data.delegate() {
            return Err(Error::WrongOwner {
                fingerprint: recipient.fingerprint(),
                expected: data.delegate(),
                found: recipient.owner(),
            });
        }
        let id = InboxMessageId::generate()?;
        let fingerprint = recipient.fingerprint();
        let plaintext = zeroize::Zeroizing::new(data.encode()?);
        let sealed = seal_to(
            recipient.bundle().verifying_key(),
            &context(FormatVersion::V2, &id, &fingerprint),
            &plaintext,
        )?;
        Ok(Self {
            version: FormatVersion::V2,
            id,
            recipient: fingerprint,
            sealed,
        })
    }

    /// Whether the message is sealed for `keys`' bundle (a message for another bundle of the same owner is left for
    /// the device that holds that key).
    pub fn is_for(&self, keys: &OwnerKeys) -> bool {
        self.recipient == keys.fingerprint()
    }

    /// Opens the box with `keys` and reads the exchange data in it, which must name `keys`' owner as its delegate.
    ///
    /// # Security
    /// Nothing in the result is authenticated yet: anybody can seal a box for a public key. Open the secret only
    /// through [`ExchangeData::open`], which verifies the delegator's signature and the wrap's against bundles the
    /// caller trusts before the RSA key is used.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the message is not for `keys`, is too long, does not open, is not exchange data this
    /// build reads, or names another delegate.
    pub fn open(&self, keys: &OwnerKeys) -> Result<ExchangeData> {
        if !self.is_for(keys) || self.sealed.len() > MAX_INBOX_MESSAGE_LEN {
            return Err(Error::Crypto);
        }
        let plaintext = keys.open_anon_box(
            &context(self.version, &self.id, &self.recipient),
            &self.sealed,
        )?;
        let data = ExchangeData::decode(plaintext.expose_secret()).map_err(|_| Error::Crypto)?;
        if data.delegate() != keys.owner() {
            return Err(Error::Crypto);
        }
        Ok(data)
    }
}

/// The box's context: `"tessera/v2/inbox" ‖ 0x00 ‖ version ‖ message id ‖ recipient fingerprint`.
fn context(version: FormatVersion, id: &InboxMessageId, recipient: &Fingerprint) -> Vec<u8> {
    Writer::new(TAG_INBOX)
        .u8(version.get())
        .fixed(id.as_bytes())
        .fixed(recipient.as_bytes())
        .finish()
}
