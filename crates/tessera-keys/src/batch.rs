//! Batch signatures (protocol v2): one Ed25519 signature by an owner over the root of a Merkle tree of the
//! statements it commits together (record versions, write delegations), so that signing a thousand records costs
//! one signature and verifying them one verification each reader remembers.
//!
//! The tree and the statements are the sharing layer's; this module only signs and verifies the root, under its
//! own domain tag, with the owner's derived signing key (which also signs bundles, exchange data and logins, each
//! under another tag).

use tessera_primitives::Signature;

use crate::canonical::Writer;
use crate::error::{Error, Result};
use crate::id::{Fingerprint, FormatVersion, OwnerId};
use crate::owner::{OwnerKeys, SignatureBytes};
use crate::trust::TrustedBundle;

const TAG_BATCH: &str = "tessera/v2/batch";

/// The bytes a batch signature covers:
/// `"tessera/v2/batch" ‖ 0x00 ‖ version ‖ signer owner id ‖ signer fingerprint ‖ u32 leaves ‖ root`.
pub fn batch_message(
    signer: OwnerId,
    fingerprint: Fingerprint,
    leaves: u32,
    root: &[u8; 32],
) -> Vec<u8> {
    Writer::new(TAG_BATCH)
        .u8(FormatVersion::V2.get())
        .fixed(signer.as_bytes())
        .fixed(fingerprint.as_bytes())
        .fixed(&leaves.to_be_bytes())
        .fixed(root)
        .finish()
}

impl OwnerKeys {
    /// Signs the root of a batch of `leaves` statements ([`batch_message`]).
    pub fn sign_batch(&self, leaves: u32, root: &[u8; 32]) -> SignatureBytes {
        SignatureBytes(
            self.sign(&batch_message(
                self.owner(),
                self.fingerprint(),
                leaves,
                root,
            ))
            .to_bytes(),
        )
    }
}

impl TrustedBundle {
    /// Verifies a batch signature made with this bundle's key.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the signature does not verify.
    pub fn verify_batch(
        &self,
        leaves: u32,
        root: &[u8; 32],
        signature: &SignatureBytes,
    ) -> Result<()> {
        let message = batch_message(self.owner(), self.fingerprint(), leaves, root);
        self.bundle()
            .verifying_key()
            .verify(&message, &Signature::from(signature.0))
            .map_err(|_| Error::Crypto)
    }
}
