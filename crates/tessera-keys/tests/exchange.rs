//! Exchange data: verify-then-decrypt, the commitment against forged wraps, giving access back, the self-signed rule.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{
    Spy, T0, alice, alice_impostor, assert_same_aead_key, bob, bob_second, carol, entity_types,
    exchange, hex, json_edit, to_json_value, trusted, wrap_label,
};
use tessera_keys::{
    Error, ExchangeData, ExchangeSecret, Fingerprint, KeyBag, PinnedFingerprints, Tofu, TrustPolicy,
};
use tessera_primitives::WrappedKey;

/// Asserts that two exchange secrets hold the same secret.
fn assert_same_secret(a: &ExchangeSecret, b: &ExchangeSecret) {
    assert_eq!(a.id(), b.id());
    assert_same_aead_key(a.opening_key(), b.opening_key());
    for entity_type in entity_types() {
        assert_eq!(
            a.delegation_key(&entity_type),
            b.delegation_key(&entity_type)
        );
    }
}

/// `data` with the JSON field `field` replaced by `value`.
fn with_field(data: &ExchangeData, field: &str, value: serde_json::Value) -> ExchangeData {
    json_edit(data, |json| {
        assert!(json.get(field).is_some(), "no field {field}");
        json[field] = value;
    })
}

/// A hex string of `len` bytes with its last hex digit changed.
fn flip_last_hex_digit(text: &serde_json::Value) -> serde_json::Value {
    let mut text = text.as_str().unwrap().to_owned();
    let last = text.pop().unwrap();
    text.push(if last == '0' { '1' } else { '0' });
    serde_json::Value::String(text)
}

#[test]
fn a_correct_open_uses_the_private_key_exactly_once() {
    let (data, alice_side) = exchange(alice(), bob(), T0);
    let spy = Spy::new(bob());
    let opened = data.open(&spy, &[&trusted(alice())]).unwrap();
    assert_eq!(spy.unwraps(), 1);
    assert_same_secret(&opened, &alice_side);
    assert!(!opened.is_self_signed());
}

#[test]
fn forged_exchange_data_never_reaches_the_private_key() {
    let (data, _) = exchange(alice(), bob(), T0);
    let alice_trusted = trusted(alice());
    let json = to_json_value(&data);
    let forgeries = [
        (
            "created",
            with_field(&data, "created", serde_json::json!(T0 + 1)),
        ),
        (
            "delegate",
            with_field(
                &data,
                "delegate",
                serde_json::json!(carol().owner().to_string()),
            ),
        ),
        (
            "delegator",
            with_field(
                &data,
                "delegator",
                serde_json::json!(carol().owner().to_string()),
            ),
        ),
        (
            "id",
            with_field(&data, "id", flip_last_hex_digit(&json["id"])),
        ),
        (
            "commitment",
            with_field(
                &data,
                "commitment",
                flip_last_hex_digit(&json["commitment"]),
            ),
        ),
        (
            "signer",
            with_field(
                &data,
                "signer",
                serde_json::json!(bob().fingerprint().to_string()),
            ),
        ),
        (
            "signature",
            with_field(&data, "signature", flip_last_hex_digit(&json["signature"])),
        ),
    ];
    for (what, forged) in &forgeries {
        // The forgery still carries a wrap for Bob, so only the signature check keeps the key out.
        assert!(
            forged.wrapped_for().any(|f| f == bob().fingerprint()),
            "{what}"
        );
        let spy = Spy::new(bob());
        let result = forged.open(&spy, &[&alice_trusted]);
        assert!(result.is_err(), "{what}: opened");
        assert_eq!(spy.unwraps(), 0, "{what}: the private key was used");
        assert!(forged.verify(&alice_trusted).is_err(), "{what}");
    }
    // The original still opens.
    let spy = Spy::new(bob());
    data.open(&spy, &[&alice_trusted]).unwrap();
    assert_eq!(spy.unwraps(), 1);
}

#[test]
fn exchange_data_signed_with_an_untrusted_key_never_reaches_the_private_key() {
    let alice_trusted = trusted(alice());
    // An impostor (Alice's id, a key nobody trusts) creates perfectly formed exchange data for Bob.
    let (forged, _) = exchange(alice_impostor(), bob(), T0);
    assert_eq!(forged.delegator(), alice().owner());
    let spy = Spy::new(bob());
    assert!(matches!(
        forged.open(&spy, &[&alice_trusted]),
        Err(Error::Crypto)
    ));
    assert_eq!(spy.unwraps(), 0);

    // Claiming Alice's fingerprint as the signer does not help: the signature is the impostor's.
    let claimed = with_field(
        &forged,
        "signer",
        serde_json::json!(alice().fingerprint().to_string()),
    );
    assert_eq!(claimed.signer(), alice().fingerprint());
    let spy = Spy::new(bob());
    assert!(matches!(
        claimed.open(&spy, &[&alice_trusted]),
        Err(Error::Crypto)
    ));
    assert_eq!(spy.unwraps(), 0);

    // Mallory (Carol) creates data for Bob with a valid wrap and commitment, then claims Alice sent it.
    let (mallory, _) = exchange(carol(), bob(), T0);
    let as_alice = json_edit(&mallory, |json| {
        json["delegator"] = serde_json::json!(alice().owner().to_string());
        json["signer"] = serde_json::json!(alice().fingerprint().to_string());
    });
    let spy = Spy::new(bob());
    assert!(matches!(
        as_alice.open(&spy, &[&alice_trusted]),
        Err(Error::Crypto)
    ));
    assert_eq!(spy.unwraps(), 0);
    // Opened against Carol's real bundle, it is Carol's data, and it opens.
    let spy = Spy::new(bob());
    assert!(matches!(
        as_alice.open(&spy, &[&trusted(carol())]),
        Err(Error::WrongOwner { .. })
    ));
    mallory.open(&spy, &[&trusted(carol())]).unwrap();
    assert_eq!(spy.unwraps(), 1);
}

#[test]
fn a_signer_bundle_of_another_owner_is_refused_before_the_private_key() {
    let (data, _) = exchange(alice(), bob(), T0);
    let spy = Spy::new(bob());
    let result = data.open(&spy, &[&trusted(carol())]);
    assert!(
        matches!(result, Err(Error::WrongOwner { expected, found, .. }) if expected == alice().owner() && found == carol().owner()),
        "{result:?}"
    );
    // Another bundle of the right owner that did not sign it.
    let result = data.open(&spy, &[&trusted(alice_impostor())]);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    assert_eq!(spy.unwraps(), 0);
}

#[test]
fn a_key_without_a_wrap_is_told_so_without_using_it() {
    let (data, _) = exchange(alice(), bob(), T0);
    let spy = Spy::new(bob_second());
    let result = data.open(&spy, &[&trusted(alice())]);
    assert!(
        matches!(result, Err(Error::NoWrapForKey(f)) if f == bob_second().fingerprint()),
        "{result:?}"
    );
    assert_eq!(spy.unwraps(), 0);
}

/// `data` with the bytes of the wrap for `fingerprint` replaced by `wrapped` (its signer and signature kept),
/// through the JSON form.
fn with_wrap(data: &ExchangeData, fingerprint: Fingerprint, wrapped: &WrappedKey) -> ExchangeData {
    json_edit(data, |json| {
        let slot = &mut json["wrapped"][fingerprint.to_string()]["wrapped"];
        assert!(slot.is_string(), "no wrap for {fingerprint}");
        *slot = serde_json::json!(hex(wrapped.as_bytes()));
    })
}

#[test]
fn a_forged_wrap_never_reaches_the_private_key() {
    let (data, _) = exchange(alice(), bob(), T0);
    let alice_trusted = trusted(alice());
    let bob_fp = bob().fingerprint();
    let label = wrap_label(&data.id(), &bob_fp);
    let other_secret = [0x5a; 32];
    let forged_wrap = bob()
        .bundle()
        .unwrap()
        .rsa_public_key()
        .wrap(&other_secret, &label)
        .unwrap();
    // The forged wrap is well formed: it unwraps under the right label, to the other secret.
    assert_eq!(
        bob()
            .rsa_private_key()
            .unwrap(&forged_wrap, &label)
            .unwrap()
            .expose_secret(),
        &other_secret
    );
    let forged = with_wrap(&data, bob_fp, &forged_wrap);
    assert_ne!(forged, data);
    // The exchange data's signature does not cover the wraps: it still verifies.
    forged.verify(&alice_trusted).unwrap();
    assert_eq!(forged.canonical_bytes(), data.canonical_bytes());
    let spy = Spy::new(bob());
    let result = forged.open(&spy, &[&alice_trusted]);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    // The wrap's own signature caught the substitution before the key was used.
    assert_eq!(spy.unwraps(), 0);
    // The untouched wrap of Alice still opens.
    data.open(alice(), &[&alice_trusted]).unwrap();
    forged.open(alice(), &[&alice_trusted]).unwrap();
}

#[test]
fn wraps_with_a_wrong_label_or_length_or_from_other_data_are_rejected() {
    let (data, _) = exchange(alice(), bob(), T0);
    let (other, _) = exchange(alice(), bob(), T0);
    let alice_trusted = trusted(alice());
    let bob_fp = bob().fingerprint();
    let bob_public = bob().bundle().unwrap();
    let bob_public = bob_public.rsa_public_key();

    // A wrap of the other data's secret, moved over (its label names the other id).
    let other_json = to_json_value(&other);
    let moved = json_edit(&data, |json| {
        json["wrapped"][bob_fp.to_string()] = other_json["wrapped"][bob_fp.to_string()].clone();
    });
    let cases = [
        ("moved from other data", moved),
        // Label of another key.
        (
            "label of another key",
            with_wrap(
                &data,
                bob_fp,
                &bob_public
                    .wrap(&[1; 32], &wrap_label(&data.id(), &alice().fingerprint()))
                    .unwrap(),
            ),
        ),
        // Right label, a 16-byte secret.
        (
            "short secret",
            with_wrap(
                &data,
                bob_fp,
                &bob_public
                    .wrap(&[1; 16], &wrap_label(&data.id(), &bob_fp))
                    .unwrap(),
            ),
        ),
        // Right label, a 33-byte secret.
        (
            "long secret",
            with_wrap(
                &data,
                bob_fp,
                &bob_public
                    .wrap(&[1; 33], &wrap_label(&data.id(), &bob_fp))
                    .unwrap(),
            ),
        ),
        (
            "empty wrap",
            with_wrap(&data, bob_fp, &WrappedKey::from_bytes(Vec::new())),
        ),
    ];
    for (what, forged) in &cases {
        forged.verify(&alice_trusted).unwrap();
        let spy = Spy::new(bob());
        let result = forged.open(&spy, &[&alice_trusted]);
        assert!(matches!(result, Err(Error::Crypto)), "{what}: {result:?}");
        assert_eq!(spy.unwraps(), 0, "{what}: the private key was used");
    }
}

#[test]
fn a_wrap_added_for_a_new_trusted_key_opens_to_the_same_secret() {
    let (mut data, alice_side) = exchange(alice(), bob(), T0);
    let alice_trusted = trusted(alice());
    let before = to_json_value(&data);
    let bob_side = data.open(bob(), &[&alice_trusted]).unwrap();

    // Bob's new key, trusted by a TOFU policy because his first key signed it.
    let policy = Tofu::new();
    policy.trust(bob().bundle().unwrap()).unwrap();
    let mut second_bundle = bob_second().bundle().unwrap();
    bob().sign_successor(&mut second_bundle).unwrap();
    let second_trusted = policy.trust(second_bundle).unwrap();
    assert_eq!(second_trusted.fingerprint(), bob_second().fingerprint());

    // Bob gives himself access back, with the secret he opened; the exchange data is not re-signed, the new wrap
    // is signed by Bob.
    data.add_wrap(bob(), &bob_side, &second_trusted).unwrap();
    let after = to_json_value(&data);
    for field in [
        "version",
        "id",
        "delegator",
        "delegate",
        "created",
        "commitment",
        "signer",
        "signature",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(data.wrapped_for().count(), 3);
    assert!(data.wrapped_for().any(|f| f == bob_second().fingerprint()));
    data.verify(&alice_trusted).unwrap();

    // After a trip through the server, the new key opens it to the same secret.
    let stored: ExchangeData = serde_json::from_value(after).unwrap();
    let bob_trusted = trusted(bob());
    assert_eq!(
        stored.wrap(&bob_second().fingerprint()).unwrap().signer,
        bob().fingerprint()
    );
    // The new wrap is Bob's: without a trusted bundle of Bob it is not verified, so the key is not used.
    let spy = Spy::new(bob_second());
    let result = stored.open(&spy, &[&alice_trusted]);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    assert_eq!(spy.unwraps(), 0);
    let opened = stored.open(&spy, &[&alice_trusted, &bob_trusted]).unwrap();
    assert_eq!(spy.unwraps(), 1);
    assert_same_secret(&opened, &alice_side);
    assert_same_secret(&opened, &bob_side);
    assert!(matches!(opened.sealing_key(), Err(Error::NotSignedBySelf)));
    // The old wraps still open.
    assert_same_secret(&stored.open(bob(), &[&alice_trusted]).unwrap(), &alice_side);
    assert_same_secret(
        &stored.open(alice(), &[&alice_trusted]).unwrap(),
        &alice_side,
    );
}

#[test]
fn the_delegator_can_also_add_a_wrap_for_the_delegates_new_key() {
    let (mut data, alice_side) = exchange(alice(), bob(), T0);
    data.add_wrap(alice(), &alice_side, &trusted(bob_second()))
        .unwrap();
    let opened = data.open(bob_second(), &[&trusted(alice())]).unwrap();
    assert_same_secret(&opened, &alice_side);
    // Adding the same wrap again replaces it; the data still opens with every key.
    data.add_wrap(alice(), &alice_side, &trusted(bob_second()))
        .unwrap();
    assert_eq!(data.wrapped_for().count(), 3);
    assert_same_secret(
        &data.open(bob_second(), &[&trusted(alice())]).unwrap(),
        &alice_side,
    );
}

#[test]
fn add_wrap_refuses_a_secret_of_other_data_and_a_bundle_of_a_third_owner() {
    let (mut data, alice_side) = exchange(alice(), bob(), T0);
    let (_, other_side) = exchange(alice(), bob(), T0);
    let before = data.clone();

    let result = data.add_wrap(alice(), &other_side, &trusted(bob_second()));
    assert!(matches!(result, Err(Error::ExchangeMismatch)), "{result:?}");
    let result = data.add_wrap(alice(), &alice_side, &trusted(carol()));
    assert!(
        matches!(result, Err(Error::WrongOwner { found, .. }) if found == carol().owner()),
        "{result:?}"
    );
    assert_eq!(data, before, "a refused wrap changed the data");

    // A key-bag entry of the other data, reopened, is still the other data's secret.
    let entry = KeyBag::seal_entry(alice(), &other_side).unwrap();
    let reopened = KeyBag::open_entry(alice(), &entry).unwrap();
    assert!(matches!(
        data.add_wrap(alice(), &reopened, &trusted(bob_second())),
        Err(Error::ExchangeMismatch)
    ));
}

#[test]
fn add_wrap_refuses_a_secret_whose_id_was_moved_onto_this_data() {
    // Exchange data whose id is rewritten to the id of data the attacker knows the secret of: the commitment of the
    // rewritten data was computed for another secret, so `add_wrap` must refuse.
    let (data, _) = exchange(alice(), bob(), T0);
    let (other, other_side) = exchange(alice(), bob(), T0);
    let mut rewritten = with_field(&data, "id", to_json_value(&other)["id"].clone());
    assert_eq!(rewritten.id(), other_side.id());
    let result = rewritten.add_wrap(alice(), &other_side, &trusted(bob_second()));
    assert!(matches!(result, Err(Error::ExchangeMismatch)), "{result:?}");
}

#[test]
fn only_the_delegator_may_seal_with_exchange_data() {
    let (data, alice_created) = exchange(alice(), bob(), T0);
    let alice_trusted = trusted(alice());
    let bob_opened = data.open(bob(), &[&alice_trusted]).unwrap();
    let alice_opened = data.open(alice(), &[&alice_trusted]).unwrap();

    assert!(alice_created.is_self_signed());
    assert!(alice_opened.is_self_signed());
    assert!(!bob_opened.is_self_signed());
    assert!(alice_created.sealing_key().is_ok());
    assert!(alice_opened.sealing_key().is_ok());
    assert!(matches!(
        bob_opened.sealing_key(),
        Err(Error::NotSignedBySelf)
    ));
    // The rule survives a trip through the key bag.
    let from_bag =
        KeyBag::open_entry(bob(), &KeyBag::seal_entry(bob(), &bob_opened).unwrap()).unwrap();
    assert!(matches!(
        from_bag.sealing_key(),
        Err(Error::NotSignedBySelf)
    ));
    let from_bag = KeyBag::open_entry(
        alice(),
        &KeyBag::seal_entry(alice(), &alice_opened).unwrap(),
    )
    .unwrap();
    assert!(from_bag.sealing_key().is_ok());

    // The delegate opens what the delegator seals.
    let sealed = alice_created
        .sealing_key()
        .unwrap()
        .seal(b"k", b"aad")
        .unwrap();
    assert_eq!(
        bob_opened.opening_key().open(&sealed, b"aad").unwrap(),
        b"k"
    );
    // Debug output never shows the secret.
    assert_eq!(format!("{bob_opened:?}"), "[redacted]");
}

#[test]
fn the_delegate_rejects_a_broken_signature_or_wrap() {
    let (data, _) = exchange(alice(), bob(), T0);
    let alice_trusted = trusted(alice());
    let json = to_json_value(&data);

    let bad_signature = with_field(&data, "signature", flip_last_hex_digit(&json["signature"]));
    assert!(matches!(
        bad_signature.verify(&alice_trusted),
        Err(Error::Crypto)
    ));
    assert!(matches!(
        bad_signature.open(bob(), &[&alice_trusted]),
        Err(Error::Crypto)
    ));

    let forged_wrap = bob()
        .bundle()
        .unwrap()
        .rsa_public_key()
        .wrap(&[7; 32], &wrap_label(&data.id(), &bob().fingerprint()))
        .unwrap();
    let bad_wrap = with_wrap(&data, bob().fingerprint(), &forged_wrap);
    bad_wrap.verify(&alice_trusted).unwrap();
    assert!(matches!(
        bad_wrap.open(bob(), &[&alice_trusted]),
        Err(Error::Crypto)
    ));
}

#[test]
fn create_refuses_recipients_of_a_third_owner_and_requires_one_of_the_delegate() {
    let (bob_t, carol_t) = (trusted(bob()), trusted(carol()));
    let result = ExchangeData::create(alice(), bob().owner(), &[&bob_t, &carol_t], T0);
    assert!(
        matches!(&result, Err(Error::WrongOwner { expected, found, fingerprint })
            if *expected == bob().owner() && *found == carol().owner() && *fingerprint == carol().fingerprint()),
        "{:?}",
        result.map(|_| ())
    );
    let result = ExchangeData::create(alice(), bob().owner(), &[], T0);
    assert!(
        matches!(result, Err(Error::Malformed { .. })),
        "{:?}",
        result.map(|_| ())
    );
    let result = ExchangeData::create(alice(), bob().owner(), &[&carol_t], T0);
    assert!(
        matches!(result, Err(Error::WrongOwner { .. })),
        "{:?}",
        result.map(|_| ())
    );
    // Only the delegator's own keys are not enough either.
    let alice_t = trusted(alice());
    let result = ExchangeData::create(alice(), bob().owner(), &[&alice_t], T0);
    assert!(
        matches!(result, Err(Error::Malformed { .. })),
        "{:?}",
        result.map(|_| ())
    );
}

#[test]
fn create_wraps_for_the_delegator_and_every_recipient() {
    let recipients = [trusted(bob()), trusted(bob_second())];
    let (data, created) = ExchangeData::create(
        alice(),
        bob().owner(),
        &recipients.iter().collect::<Vec<_>>(),
        T0 + 42,
    )
    .unwrap();
    let mut wrapped: Vec<Fingerprint> = data.wrapped_for().collect();
    let mut expected = vec![
        alice().fingerprint(),
        bob().fingerprint(),
        bob_second().fingerprint(),
    ];
    wrapped.sort();
    expected.sort();
    assert_eq!(wrapped, expected);
    assert_eq!(data.delegator(), alice().owner());
    assert_eq!(data.delegate(), bob().owner());
    assert_eq!(data.created(), T0 + 42);
    assert_eq!(data.signer(), alice().fingerprint());
    assert_eq!(created.id(), data.id());
    for keys in [alice(), bob(), bob_second()] {
        assert_same_secret(&data.open(keys, &[&trusted(alice())]).unwrap(), &created);
    }
}

#[test]
fn exchange_data_signed_by_a_pinned_policy_bundle_only() {
    // The signer bundle must come through a policy; one the policy refuses never becomes a TrustedBundle.
    let policy = PinnedFingerprints::new([bob().fingerprint()]);
    let refused = policy.trust(alice().bundle().unwrap());
    assert!(
        matches!(refused, Err(Error::Untrusted { .. })),
        "{refused:?}"
    );
}

#[test]
fn exchange_data_with_oneself_needs_no_other_recipient() {
    // A delegator sharing with itself (its own other devices): allowed without recipients, wrapped for its key.
    let (data, created) = ExchangeData::create(alice(), alice().owner(), &[], T0).unwrap();
    assert_eq!(
        data.wrapped_for().collect::<Vec<_>>(),
        vec![alice().fingerprint()]
    );
    let opened = data.open(alice(), &[&trusted(alice())]).unwrap();
    assert!(opened.is_self_signed());
    assert_same_secret(&opened, &created);
}
