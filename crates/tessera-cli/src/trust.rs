//! Trust on first use across runs: the key fingerprints of partners are pinned in a file beside the key file
//! (`<key>.known`), one `owner-id fingerprint` per line. A partner whose key changed is refused until its new
//! fingerprint is checked out of band and its line removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tessera::{CallbackTrust, Fingerprint, KeyBundle, OwnerId};

type Pins = BTreeMap<OwnerId, BTreeSet<String>>;

/// The pinned fingerprints of one key file's partners.
pub(crate) struct KnownOwners {
    path: PathBuf,
    pins: Arc<Mutex<(Pins, bool)>>,
}

impl KnownOwners {
    /// The pins of `path`, or none if the file does not exist yet.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let mut pins = Pins::new();
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            for (number, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                let mut fields = line.split_whitespace();
                let (Some(owner), Some(fingerprint)) = (fields.next(), fields.next()) else {
                    anyhow::bail!(
                        "{}:{}: expected `owner-id fingerprint`",
                        path.display(),
                        number + 1
                    );
                };
                let owner: OwnerId = owner.parse().with_context(|| {
                    format!("{}:{}: malformed owner id", path.display(), number + 1)
                })?;
                pins.entry(owner)
                    .or_default()
                    .insert(fingerprint.to_ascii_lowercase());
            }
        }
        Ok(Self {
            path: path.to_owned(),
            pins: Arc::new(Mutex::new((pins, false))),
        })
    }

    /// A trust policy over these pins: an owner seen for the first time is pinned, a known owner must present a
    /// pinned fingerprint.
    pub(crate) fn policy(
        &self,
    ) -> CallbackTrust<impl Fn(&KeyBundle, Fingerprint) -> bool + Send + Sync + use<>> {
        let pins = Arc::clone(&self.pins);
        let path = self.path.clone();
        CallbackTrust::new(move |bundle: &KeyBundle, fingerprint: Fingerprint| {
            let mut guard = pins.lock().unwrap_or_else(PoisonError::into_inner);
            let (pins, changed) = &mut *guard;
            let hex = fingerprint.to_string();
            match pins.get(&bundle.owner()) {
                Some(known) if known.contains(&hex) => true,
                Some(_) => {
                    eprintln!(
                        "warning: owner {} presents key {} which differs from the one pinned in {}; \
                         refusing it (verify the new short code out of band, then remove the old line)",
                        bundle.owner(),
                        fingerprint.short_code(),
                        path.display()
                    );
                    false
                }
                None => {
                    eprintln!(
                        "note: first contact with owner {}: its key {} (short code {}) is now pinned in {}; \
                         compare the short code with that owner out of band (`tessera owner fingerprint`)",
                        bundle.owner(),
                        hex,
                        fingerprint.short_code(),
                        path.display()
                    );
                    pins.entry(bundle.owner()).or_default().insert(hex);
                    *changed = true;
                    true
                }
            }
        })
    }

    /// Writes the pins back if a new owner was pinned.
    pub(crate) fn save(&self) -> anyhow::Result<()> {
        let guard = self.pins.lock().unwrap_or_else(PoisonError::into_inner);
        let (pins, changed) = &*guard;
        if !changed {
            return Ok(());
        }
        let mut text =
            String::from("# Key fingerprints of partners, pinned on first use by `tessera`.\n");
        for (owner, fingerprints) in pins {
            for fingerprint in fingerprints {
                text.push_str(&format!("{owner} {fingerprint}\n"));
            }
        }
        std::fs::write(&self.path, text)
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}
