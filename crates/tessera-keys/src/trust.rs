//! Trust in public key bundles: a bundle from the server is used only once a [`TrustPolicy`] accepts it.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::id::{Fingerprint, OwnerId};
use crate::owner::KeyBundle;

/// A key bundle whose self-signature verified and that a [`TrustPolicy`] accepted.
///
/// Exchange data is created for and verified against trusted bundles only, so a bundle substituted by a
/// malicious server cannot be used unless the policy lets it through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedBundle {
    bundle: KeyBundle,
    fingerprint: Fingerprint,
}

impl TrustedBundle {
    /// The bundle.
    pub fn bundle(&self) -> &KeyBundle {
        &self.bundle
    }

    /// Its fingerprint (computed once).
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Its owner.
    pub fn owner(&self) -> OwnerId {
        self.bundle.owner()
    }
}

/// Decides which key bundles to trust. Implementations must be safe to share between tasks.
pub trait TrustPolicy: Send + Sync {
    /// Accepts or refuses `bundle`, whose self-signature has already been verified.
    ///
    /// # Errors
    /// [`Error::Untrusted`] with the reason for a refusal.
    fn check(&self, bundle: &KeyBundle, fingerprint: Fingerprint) -> Result<()>;

    /// Verifies `bundle`'s self-signature, asks the policy, and returns it as trusted.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the self-signature fails; [`Error::Untrusted`] if the policy refuses the bundle.
    fn trust(&self, bundle: KeyBundle) -> Result<TrustedBundle> {
        bundle.verify_self_signature()?;
        let fingerprint = bundle.fingerprint();
        self.check(&bundle, fingerprint)?;
        Ok(TrustedBundle {
            bundle,
            fingerprint,
        })
    }
}

/// Trust on first use: the first bundles seen for an owner are pinned; a later, different bundle is accepted only
/// when an already pinned bundle of that owner signed it (a rotation chain). A silent change is refused.
#[derive(Debug, Default)]
pub struct Tofu {
    pinned: Mutex<HashMap<OwnerId, Vec<KeyBundle>>>,
}

impl Tofu {
    /// An empty policy that pins everything on first sight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fingerprints currently pinned for `owner`.
    pub fn pinned(&self, owner: OwnerId) -> Vec<Fingerprint> {
        self.lock()
            .get(&owner)
            .map(|bundles| bundles.iter().map(KeyBundle::fingerprint).collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OwnerId, Vec<KeyBundle>>> {
        // A panic while holding the lock cannot leave the map half-updated (each update is one push),
        // so a poisoned lock is still consistent.
        self.pinned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TrustPolicy for Tofu {
    fn check(&self, bundle: &KeyBundle, fingerprint: Fingerprint) -> Result<()> {
        let mut pinned = self.lock();
        let known = pinned.entry(bundle.owner()).or_default();
        if known.is_empty() {
            known.push(bundle.clone());
            return Ok(());
        }
        if known.iter().any(|k| k.fingerprint() == fingerprint) {
            return Ok(());
        }
        if known
            .iter()
            .any(|older| bundle.verify_chain_from(older).is_ok())
        {
            known.push(bundle.clone());
            return Ok(());
        }
        Err(Error::Untrusted {
            owner: bundle.owner(),
            fingerprint,
            reason: "differs from the pinned bundle and is not signed by it",
        })
    }
}

/// Trusts exactly the listed fingerprints (verified out of band, for example by comparing short codes).
#[derive(Clone, Debug, Default)]
pub struct PinnedFingerprints {
    allowed: BTreeSet<Fingerprint>,
}

impl PinnedFingerprints {
    /// Trusts these fingerprints and no others.
    pub fn new(allowed: impl IntoIterator<Item = Fingerprint>) -> Self {
        Self {
            allowed: allowed.into_iter().collect(),
        }
    }

    /// Adds a fingerprint.
    pub fn allow(&mut self, fingerprint: Fingerprint) {
        self.allowed.insert(fingerprint);
    }
}

impl TrustPolicy for PinnedFingerprints {
    fn check(&self, bundle: &KeyBundle, fingerprint: Fingerprint) -> Result<()> {
        if self.allowed.contains(&fingerprint) {
            Ok(())
        } else {
            Err(Error::Untrusted {
                owner: bundle.owner(),
                fingerprint,
                reason: "fingerprint is not pinned",
            })
        }
    }
}

/// Asks a caller-supplied function (a user prompt, a directory lookup).
pub struct CallbackTrust<F>(F);

impl<F> CallbackTrust<F>
where
    F: Fn(&KeyBundle, Fingerprint) -> bool + Send + Sync,
{
    /// Trusts the bundles for which `decide` returns true.
    pub fn new(decide: F) -> Self {
        Self(decide)
    }
}

impl<F> std::fmt::Debug for CallbackTrust<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackTrust")
    }
}

impl<F> TrustPolicy for CallbackTrust<F>
where
    F: Fn(&KeyBundle, Fingerprint) -> bool + Send + Sync,
{
    fn check(&self, bundle: &KeyBundle, fingerprint: Fingerprint) -> Result<()> {
        if (self.0)(bundle, fingerprint) {
            Ok(())
        } else {
            Err(Error::Untrusted {
                owner: bundle.owner(),
                fingerprint,
                reason: "refused by the trust callback",
            })
        }
    }
}
