//! Fixtures shared by the tests and benchmarks of every layer (feature `test-utils`, never in the default API).
//!
//! RSA key generation is slow in debug builds, so tests derive owners from the pre-generated PKCS#8 keys in
//! `crates/tessera-primitives/tests/data/keys/` (their provenance is in the README there). The files are read
//! from the workspace at run time: these helpers work in this repository, not from a published crate.

use tessera_primitives::RsaPrivateKey;

use crate::{
    ExchangeData, ExchangeSecret, OwnerKeys, PinnedFingerprints, TrustPolicy, TrustedBundle,
};

/// The directory of the fixture RSA keys (`rsa2048.pem`, `rsa3072.pem`, `rsa4096.pem`, … and their `.pub.pem`).
pub const FIXTURE_KEYS_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tessera-primitives/tests/data/keys"
);

/// Why a fixture could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FixtureError {
    /// The fixture file could not be read.
    #[error("cannot read fixture {path}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The fixture is not a key this build accepts.
    #[error("fixture {name} is not a usable key")]
    Key {
        /// The fixture's file name.
        name: String,
        /// Why.
        #[source]
        source: tessera_primitives::Error,
    },
}

/// The text of fixture key file `name` (for example `rsa2048.pem`).
///
/// # Errors
/// [`FixtureError::Read`] if the file cannot be read.
pub fn fixture_pem(name: &str) -> Result<String, FixtureError> {
    let path = format!("{FIXTURE_KEYS_DIR}/{name}");
    std::fs::read_to_string(&path).map_err(|source| FixtureError::Read { path, source })
}

/// The fixture RSA private key in file `name` (for example `rsa2048.pem`).
///
/// # Errors
/// [`FixtureError::Read`] if the file cannot be read, [`FixtureError::Key`] if it is not a PKCS#8 key this
/// build accepts.
pub fn fixture_rsa(name: &str) -> Result<RsaPrivateKey, FixtureError> {
    RsaPrivateKey::from_pkcs8_pem(&fixture_pem(name)?).map_err(|source| FixtureError::Key {
        name: name.to_owned(),
        source,
    })
}

/// `keys`' bundle, accepted by a policy that pins exactly its fingerprint.
///
/// # Errors
/// If the bundle cannot be built or does not verify (see [`OwnerKeys::bundle`] and [`TrustPolicy::trust`]).
pub fn trusted(keys: &OwnerKeys) -> crate::Result<TrustedBundle> {
    PinnedFingerprints::new([keys.fingerprint()]).trust(keys.bundle()?)
}

/// Exchange data from `delegator` to `delegate`, wrapped for `delegate`'s trusted bundle, created at `created`.
///
/// # Errors
/// As [`trusted`] and [`ExchangeData::create`].
pub fn exchange(
    delegator: &OwnerKeys,
    delegate: &OwnerKeys,
    created: u64,
) -> crate::Result<(ExchangeData, ExchangeSecret)> {
    ExchangeData::create(delegator, delegate.owner(), &[&trusted(delegate)?], created)
}
