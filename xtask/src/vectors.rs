//! `cargo xtask vectors`: generates the key layer's known-answer vectors once.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tessera_keys::vectors::{ExchangeVector, OwnerVector, VectorFile, owner_from_pem};
use tessera_keys::{ExchangeData, KeyBag, OwnerId, PinnedFingerprints, TrustPolicy};

const DELEGATOR_KEY: &str = "rsa2048.pem";
const DELEGATE_KEY: &str = "rsa3072.pem";

/// Writes `crates/tessera-keys/tests/data/vectors.json` unless it exists (vectors are only ever added to);
/// `force` regenerates it, which changes the randomised parts (wraps, nonces) but must not change the derived values.
pub(crate) fn run(root: &Path, force: bool) -> Result<()> {
    let out = root.join("crates/tessera-keys/tests/data/vectors.json");
    if out.exists() && !force {
        bail!(
            "{} exists; committed vectors are only ever added to (pass --force to regenerate)",
            out.display()
        );
    }
    let keys_dir = root.join("crates/tessera-primitives/tests/data/keys");
    let pem = |name: &str| {
        std::fs::read_to_string(keys_dir.join(name))
            .with_context(|| format!("reading fixture {name}"))
    };
    let delegator = owner_from_pem(
        &pem(DELEGATOR_KEY)?,
        OwnerId::from_bytes([0x11; 16]),
        1_700_000_000,
    )?;
    let delegate = owner_from_pem(
        &pem(DELEGATE_KEY)?,
        OwnerId::from_bytes([0x22; 16]),
        1_700_000_500,
    )?;
    let policy = PinnedFingerprints::new([delegator.fingerprint(), delegate.fingerprint()]);
    let delegator_bundle = policy.trust(delegator.bundle()?)?;
    let delegate_bundle = policy.trust(delegate.bundle()?)?;

    let (exchange_data, _) = ExchangeData::create(
        &delegator,
        delegate.owner(),
        &[&delegate_bundle],
        1_700_001_000,
    )?;
    let opened = exchange_data.open(&delegate, &[&delegator_bundle])?;
    let file = VectorFile {
        provenance:
            "generated once by `cargo xtask vectors` from the fixture keys of tessera-primitives; \
                     only ever added to"
                .to_owned(),
        delegator_key_file: DELEGATOR_KEY.to_owned(),
        delegate_key_file: DELEGATE_KEY.to_owned(),
        delegator: OwnerVector::compute(&delegator)?,
        delegate: OwnerVector::compute(&delegate)?,
        exchange: ExchangeVector::compute(&exchange_data, &opened, &delegate)?,
        delegate_bag_entry: KeyBag::seal_entry(&delegate, &opened)?,
        exchange_data,
    };
    let mut json = serde_json::to_string_pretty(&file)?;
    json.push('\n');
    std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}
