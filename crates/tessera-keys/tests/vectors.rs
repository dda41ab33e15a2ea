//! Known-answer vectors of the key layer, generated once by `cargo xtask vectors` and committed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use tessera_keys::vectors::{
    ExchangeVector, OwnerVector, VECTOR_ENTITY_TYPES, VectorFile, owner_from_pem,
};
use tessera_keys::{KeyBag, PinnedFingerprints, TrustPolicy};

fn file() -> VectorFile {
    let text = include_str!("data/vectors.json");
    serde_json::from_str(text).expect("vectors.json decodes")
}

fn fixture_pem(name: &str) -> String {
    tessera_keys::test_utils::fixture_pem(name).unwrap()
}

#[test]
fn owner_derivations_match_the_committed_vectors() {
    let file = file();
    let mut checked = 0;
    for (key_file, expected) in [
        (&file.delegator_key_file, &file.delegator),
        (&file.delegate_key_file, &file.delegate),
    ] {
        let keys =
            owner_from_pem(&fixture_pem(key_file), expected.owner, expected.created).unwrap();
        assert_eq!(
            &OwnerVector::compute(&keys).unwrap(),
            expected,
            "owner from {key_file}"
        );
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn exchange_derivations_match_the_committed_vectors() {
    let file = file();
    let delegator = owner_from_pem(
        &fixture_pem(&file.delegator_key_file),
        file.delegator.owner,
        file.delegator.created,
    )
    .unwrap();
    let delegate = owner_from_pem(
        &fixture_pem(&file.delegate_key_file),
        file.delegate.owner,
        file.delegate.created,
    )
    .unwrap();
    let policy = PinnedFingerprints::new([delegator.fingerprint(), delegate.fingerprint()]);
    let delegator_bundle = policy.trust(delegator.bundle().unwrap()).unwrap();

    // The committed exchange data still verifies and opens, for both parties, to the committed keys.
    let opened = file
        .exchange_data
        .open(&delegate, &[&delegator_bundle])
        .unwrap();
    let computed = ExchangeVector::compute(&file.exchange_data, &opened, &delegate).unwrap();
    assert_eq!(computed, file.exchange);
    assert_eq!(computed.access.len(), VECTOR_ENTITY_TYPES.len());
    let by_delegator = file
        .exchange_data
        .open(&delegator, &[&delegator_bundle])
        .unwrap();
    assert_eq!(
        by_delegator.opening_key().expose_secret(),
        opened.opening_key().expose_secret()
    );

    // The committed key-bag entry opens to the same secret, with no RSA operation.
    let from_bag = KeyBag::open_entry(&delegate, &file.delegate_bag_entry).unwrap();
    assert_eq!(
        ExchangeVector::compute(&file.exchange_data, &from_bag, &delegate).unwrap(),
        file.exchange
    );
    assert_eq!(
        file.delegate_bag_entry.id.to_string(),
        file.exchange.delegate_bag_entry_id
    );
}
