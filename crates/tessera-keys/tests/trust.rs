//! Trust policies: TOFU pinning and rotation chains, pinned fingerprints, callbacks, broken self-signatures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    T0, alice, bob, bob_impostor, bob_second, bob_third, carol, json_edit, to_json_value,
};
use tessera_keys::{
    CallbackTrust, Error, ExchangeData, Fingerprint, KeyBundle, OwnerKeys, PinnedFingerprints,
    Tofu, TrustPolicy,
};

/// `keys`' bundle, chained from `older`.
fn successor(older: &OwnerKeys, keys: &OwnerKeys) -> KeyBundle {
    let mut bundle = keys.bundle().unwrap();
    older.sign_successor(&mut bundle).unwrap();
    bundle
}

/// `bundle` with its self-signature's last hex digit changed.
fn with_broken_self_signature(bundle: &KeyBundle) -> KeyBundle {
    json_edit(bundle, |json| {
        let mut text = json["self_signature"].as_str().unwrap().to_owned();
        let last = text.pop().unwrap();
        text.push(if last == '0' { '1' } else { '0' });
        json["self_signature"] = serde_json::json!(text);
    })
}

fn assert_untrusted(result: tessera_keys::Result<tessera_keys::TrustedBundle>, bundle: &KeyBundle) {
    match result {
        Err(Error::Untrusted {
            owner,
            fingerprint,
            reason,
        }) => {
            assert_eq!(owner, bundle.owner());
            assert_eq!(fingerprint, bundle.fingerprint());
            assert!(!reason.is_empty());
        }
        other => panic!("expected Untrusted, got {other:?}"),
    }
}

#[test]
fn tofu_pins_the_first_bundle_and_accepts_it_again() {
    let policy = Tofu::new();
    assert!(policy.pinned(bob().owner()).is_empty());
    let trusted = policy.trust(bob().bundle().unwrap()).unwrap();
    assert_eq!(trusted.fingerprint(), bob().fingerprint());
    assert_eq!(trusted.owner(), bob().owner());
    assert_eq!(trusted.bundle(), &bob().bundle().unwrap());
    assert_eq!(policy.pinned(bob().owner()), vec![bob().fingerprint()]);

    let again = policy.trust(bob().bundle().unwrap()).unwrap();
    assert_eq!(again, trusted);
    assert_eq!(policy.pinned(bob().owner()), vec![bob().fingerprint()]);
    // Other owners are independent: Carol is first seen now.
    policy.trust(carol().bundle().unwrap()).unwrap();
    assert_eq!(policy.pinned(carol().owner()), vec![carol().fingerprint()]);
    assert_eq!(policy.pinned(bob().owner()), vec![bob().fingerprint()]);
}

#[test]
fn tofu_refuses_a_substituted_bundle() {
    let policy = Tofu::new();
    policy.trust(bob().bundle().unwrap()).unwrap();
    // Same owner, same creation time, another key, no chain: what a malicious server would substitute.
    let substitute = bob_impostor().bundle().unwrap();
    substitute.verify_self_signature().unwrap();
    assert_untrusted(policy.trust(substitute.clone()), &substitute);
    // Another genuine-looking new key without a chain is refused too.
    let unchained = bob_second().bundle().unwrap();
    assert_untrusted(policy.trust(unchained.clone()), &unchained);
    assert_eq!(policy.pinned(bob().owner()), vec![bob().fingerprint()]);
    // The refusal is sticky: asking again does not wear the policy down.
    assert_untrusted(policy.trust(substitute.clone()), &substitute);
}

#[test]
fn tofu_accepts_and_pins_a_chained_successor() {
    let policy = Tofu::new();
    policy.trust(bob().bundle().unwrap()).unwrap();
    let second = successor(bob(), bob_second());
    let link = second.chain().unwrap();
    assert_eq!(link.signer, bob().fingerprint());
    second.verify_chain_from(&bob().bundle().unwrap()).unwrap();
    // The chain is not part of the fingerprint.
    assert_eq!(second.fingerprint(), bob_second().fingerprint());

    let trusted = policy.trust(second).unwrap();
    assert_eq!(trusted.fingerprint(), bob_second().fingerprint());
    assert_eq!(
        policy.pinned(bob().owner()),
        vec![bob().fingerprint(), bob_second().fingerprint()]
    );
    // Once pinned, the successor is accepted even without its chain, and it can chain the next one.
    policy.trust(bob_second().bundle().unwrap()).unwrap();
    policy.trust(successor(bob_second(), bob_third())).unwrap();
    assert_eq!(policy.pinned(bob().owner()).len(), 3);
}

#[test]
fn tofu_refuses_a_successor_chained_by_an_unpinned_or_forged_signer() {
    let policy = Tofu::new();
    policy.trust(bob().bundle().unwrap()).unwrap();

    // Chained by the impostor, which is not pinned.
    let by_impostor = successor(bob_impostor(), bob_second());
    assert_untrusted(policy.trust(by_impostor.clone()), &by_impostor);

    // The impostor's chain claiming Bob's pinned key as signer: the signature is still the impostor's.
    let claimed = json_edit(&by_impostor, |json| {
        json["chain"]["signer"] = serde_json::json!(bob().fingerprint().to_string());
    });
    assert_eq!(claimed.chain().unwrap().signer, bob().fingerprint());
    assert!(matches!(
        claimed.verify_chain_from(&bob().bundle().unwrap()),
        Err(Error::Crypto)
    ));
    assert_untrusted(policy.trust(claimed.clone()), &claimed);

    // Bob's genuine chain signature moved onto another bundle: it signs the other fingerprint.
    let genuine = to_json_value(&successor(bob(), bob_second()));
    let moved = json_edit(&bob_third().bundle().unwrap(), |json| {
        json["chain"] = genuine["chain"].clone();
    });
    assert_untrusted(policy.trust(moved.clone()), &moved);
    assert_eq!(policy.pinned(bob().owner()), vec![bob().fingerprint()]);
}

#[test]
fn chains_are_refused_across_owners() {
    let mut carols = carol().bundle().unwrap();
    let result = bob().sign_successor(&mut carols);
    assert!(
        matches!(result, Err(Error::WrongOwner { expected, found, .. }) if expected == bob().owner() && found == carol().owner()),
        "{result:?}"
    );
    assert!(carols.chain().is_none());
    let second = successor(bob(), bob_second());
    assert!(matches!(
        second.verify_chain_from(&carol().bundle().unwrap()),
        Err(Error::WrongOwner { .. })
    ));
    // A bundle without a chain has no chain from anyone.
    assert!(matches!(
        bob_second()
            .bundle()
            .unwrap()
            .verify_chain_from(&bob().bundle().unwrap()),
        Err(Error::Crypto)
    ));
}

#[test]
fn pinned_fingerprints_accept_the_listed_bundles_only() {
    let mut policy = PinnedFingerprints::new([bob().fingerprint()]);
    policy.trust(bob().bundle().unwrap()).unwrap();
    for refused in [
        bob_impostor().bundle().unwrap(),
        successor(bob(), bob_second()),
        carol().bundle().unwrap(),
    ] {
        assert_untrusted(policy.trust(refused.clone()), &refused);
    }
    policy.allow(carol().fingerprint());
    policy.trust(carol().bundle().unwrap()).unwrap();
    // Nothing is pinned implicitly.
    let second = successor(bob(), bob_second());
    assert_untrusted(policy.trust(second.clone()), &second);
    assert!(
        PinnedFingerprints::default()
            .trust(bob().bundle().unwrap())
            .is_err()
    );
}

#[test]
fn callback_trust_obeys_the_callback() {
    let seen: Mutex<Vec<Fingerprint>> = Mutex::new(Vec::new());
    let policy = CallbackTrust::new(|bundle: &KeyBundle, fingerprint: Fingerprint| {
        assert_eq!(bundle.fingerprint(), fingerprint);
        seen.lock().unwrap().push(fingerprint);
        bundle.owner() == bob().owner()
    });
    policy.trust(bob().bundle().unwrap()).unwrap();
    policy.trust(bob_impostor().bundle().unwrap()).unwrap();
    let refused = carol().bundle().unwrap();
    assert_untrusted(policy.trust(refused.clone()), &refused);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            bob().fingerprint(),
            bob_impostor().fingerprint(),
            carol().fingerprint()
        ]
    );
    assert_eq!(format!("{policy:?}"), "CallbackTrust");
}

#[test]
fn a_broken_self_signature_is_refused_before_any_policy_is_asked() {
    let broken = with_broken_self_signature(&bob().bundle().unwrap());
    // The fingerprint does not cover the signature, so a pinned fingerprint alone would accept it.
    assert_eq!(broken.fingerprint(), bob().fingerprint());
    assert!(matches!(broken.verify_self_signature(), Err(Error::Crypto)));

    let asked = AtomicUsize::new(0);
    let callback = CallbackTrust::new(|_: &KeyBundle, _: Fingerprint| {
        asked.fetch_add(1, Ordering::SeqCst);
        true
    });
    let tofu = Tofu::new();
    let pinned = PinnedFingerprints::new([bob().fingerprint()]);
    let policies: [&dyn TrustPolicy; 3] = [&callback, &tofu, &pinned];
    for policy in policies {
        let result = policy.trust(broken.clone());
        assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    }
    assert_eq!(asked.load(Ordering::SeqCst), 0);
    // TOFU did not pin the broken bundle: the genuine one is still first.
    assert!(tofu.pinned(bob().owner()).is_empty());
    tofu.trust(bob().bundle().unwrap()).unwrap();
}

#[test]
fn a_bundle_with_edited_fields_fails_its_self_signature() {
    let bundle = bob().bundle().unwrap();
    let edits: [(&str, serde_json::Value); 3] = [
        ("created", serde_json::json!(T0 + 11)),
        ("owner", serde_json::json!(carol().owner().to_string())),
        (
            "ed25519",
            serde_json::json!(common::hex(carol().verifying_key().as_bytes())),
        ),
    ];
    for (field, value) in edits {
        let edited = json_edit(&bundle, |json| json[field] = value);
        assert_ne!(edited.fingerprint(), bundle.fingerprint(), "{field}");
        assert!(
            matches!(edited.verify_self_signature(), Err(Error::Crypto)),
            "{field}"
        );
        assert!(
            matches!(Tofu::new().trust(edited), Err(Error::Crypto)),
            "{field}"
        );
    }
    // Carol's RSA key under Bob's bundle.
    let carol_spki = to_json_value(&carol().bundle().unwrap())["rsa_spki"].clone();
    let edited = json_edit(&bundle, |json| json["rsa_spki"] = carol_spki);
    assert!(matches!(edited.verify_self_signature(), Err(Error::Crypto)));
}

#[test]
fn exchange_data_is_created_only_for_parties() {
    let policy = Tofu::new();
    let bob_t = policy.trust(bob().bundle().unwrap()).unwrap();
    let carol_t = policy.trust(carol().bundle().unwrap()).unwrap();
    let result = ExchangeData::create(alice(), bob().owner(), &[&bob_t, &carol_t], T0);
    assert!(
        matches!(&result, Err(Error::WrongOwner { found, .. }) if *found == carol().owner()),
        "{:?}",
        result.map(|_| ())
    );
    let (data, _) = ExchangeData::create(alice(), bob().owner(), &[&bob_t], T0).unwrap();
    assert!(!data.wrapped_for().any(|f| f == carol().fingerprint()));
}

#[test]
fn tofu_is_shared_safely_between_threads() {
    let policy = Tofu::new();
    let bundles = [bob().bundle().unwrap(), bob_impostor().bundle().unwrap()];
    // Two threads race to present two different bundles of one owner: exactly one wins.
    let results: Vec<bool> = std::thread::scope(|scope| {
        let handles: Vec<_> = bundles
            .iter()
            .map(|bundle| scope.spawn(|| policy.trust(bundle.clone()).is_ok()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1, "{results:?}");
    assert_eq!(policy.pinned(bob().owner()).len(), 1);
}
