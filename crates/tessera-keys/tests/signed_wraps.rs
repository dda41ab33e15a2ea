//! Protocol v2: no ciphertext chosen by the server reaches an RSA private key (deny.toml, RUSTSEC-2023-0071).
//!
//! Every wrap of exchange data is signed by a party of that exchange data (the delegator at creation, either party
//! through `add_wrap`), and `ExchangeData::open` verifies the exchange data's signature and then the wrap's
//! signature against trusted bundles of the parties before it calls `UnwrapKey::unwrap_key`. A spy key counts those
//! calls: every wrap the server could choose is refused with zero of them; genuine wraps open with exactly one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{
    Spy, T0, alice, alice_impostor, alice_second, bob, bob_second, carol, exchange, hex, json_edit,
    to_json_value, trusted, wrap_label,
};
use tessera_keys::{Error, ExchangeData, Fingerprint, OwnerKeys, TrustedBundle};
use tessera_primitives::{Prk, Signature, SigningKey};

/// The canonical bytes a wrap's signer signs, read independently from docs/formats.md:
/// `"tessera/v2/wrap" ‖ 0x00 ‖ version ‖ id ‖ delegator ‖ delegate ‖ commitment ‖ recipient ‖ signer ‖ var(wrap)`.
fn wrap_message(
    data: &ExchangeData,
    recipient: &Fingerprint,
    signer: &Fingerprint,
    wrap: &[u8],
) -> Vec<u8> {
    let json = to_json_value(data);
    let mut message = b"tessera/v2/wrap\0".to_vec();
    message.push(2);
    message.extend_from_slice(data.id().as_bytes());
    message.extend_from_slice(data.delegator().as_bytes());
    message.extend_from_slice(data.delegate().as_bytes());
    message.extend_from_slice(&::hex::decode(json["commitment"].as_str().unwrap()).unwrap());
    message.extend_from_slice(recipient.as_bytes());
    message.extend_from_slice(signer.as_bytes());
    message.extend_from_slice(&u32::try_from(wrap.len()).unwrap().to_be_bytes());
    message.extend_from_slice(wrap);
    message
}

/// The Ed25519 key `keys` derives, rebuilt from its private key as docs/formats.md says (the crate keeps its own
/// private), so that the test can sign as any owner.
fn signing_key(keys: &OwnerKeys) -> SigningKey {
    let canonical = keys.rsa_private_key().to_canonical_bytes().unwrap();
    let prk = Prk::extract(b"tessera/v1/owner-key", canonical.expose_secret());
    let signing = SigningKey::from_seed(prk.derive_secret32("tessera/v1/signing", b""));
    assert_eq!(signing.verifying_key(), keys.verifying_key());
    signing
}

/// The wrap bytes stored for `recipient`.
fn wrap_bytes(data: &ExchangeData, recipient: &Fingerprint) -> Vec<u8> {
    data.wrap(recipient).unwrap().wrapped.0.clone()
}

/// `data` with the wrap for `recipient` replaced by `wrap`, signed by `signer` (a correct signature by that key).
fn signed_by(
    data: &ExchangeData,
    recipient: &Fingerprint,
    signer: &OwnerKeys,
    wrap: &[u8],
) -> ExchangeData {
    let message = wrap_message(data, recipient, &signer.fingerprint(), wrap);
    let signature = signing_key(signer).sign(&message).to_bytes();
    json_edit(data, |json| {
        json["wrapped"][recipient.to_string()] = serde_json::json!({
            "wrapped": hex(wrap),
            "signer": signer.fingerprint().to_string(),
            "signature": hex(&signature),
        });
    })
}

/// `data` with `edit` applied to the JSON of the wrap for `recipient`.
fn edit_wrap(
    data: &ExchangeData,
    recipient: &Fingerprint,
    edit: impl FnOnce(&mut serde_json::Value),
) -> ExchangeData {
    json_edit(data, |json| {
        let slot = &mut json["wrapped"][recipient.to_string()];
        assert!(slot.is_object(), "no wrap for {recipient}");
        edit(slot);
    })
}

/// Opens `data` with a spy of `keys` and `parties`; returns the result and how often the private key was used.
fn open_counting(
    data: &ExchangeData,
    keys: &OwnerKeys,
    parties: &[&TrustedBundle],
) -> (tessera_keys::Result<tessera_keys::ExchangeSecret>, usize) {
    let spy = Spy::new(keys);
    let result = data.open(&spy, parties);
    (result, spy.unwraps())
}

#[test]
fn the_test_reads_the_wrap_encoding_as_the_crate_writes_it() {
    // The independent encoding above verifies the genuine signature: the forgeries below differ only where they say.
    let (data, _) = exchange(alice(), bob(), T0);
    let bob_fp = bob().fingerprint();
    let wrap = data.wrap(&bob_fp).unwrap();
    assert_eq!(wrap.signer, alice().fingerprint());
    let message = wrap_message(&data, &bob_fp, &wrap.signer, &wrap.wrapped.0);
    alice()
        .verifying_key()
        .verify(&message, &Signature::from(wrap.signature.0))
        .unwrap();
    // Re-signing the genuine bytes as Alice through the test's own signer gives the same (deterministic) wrap.
    let resigned = signed_by(&data, &bob_fp, alice(), &wrap.wrapped.0);
    assert_eq!(resigned, data);
}

#[test]
fn genuine_wraps_open_with_exactly_one_use_of_the_private_key() {
    let (mut data, alice_side) = exchange(alice(), bob(), T0);
    let (alice_t, bob_t) = (trusted(alice()), trusted(bob()));
    let parties = [&alice_t, &bob_t];

    for keys in [alice(), bob()] {
        let (result, unwraps) = open_counting(&data, keys, &parties);
        result.unwrap();
        assert_eq!(unwraps, 1);
    }
    // The delegator's bundle alone is enough for the wraps the delegator made.
    let (result, unwraps) = open_counting(&data, bob(), &[&alice_t]);
    result.unwrap();
    assert_eq!(unwraps, 1);

    // The delegate gives access back: a wrap for its own new key and one for the delegator's new key, signed by
    // the delegate. Each opens with exactly one use of the key it was made for.
    let bob_side = data.open(bob(), &parties).unwrap();
    data.add_wrap(bob(), &bob_side, &trusted(bob_second()))
        .unwrap();
    data.add_wrap(bob(), &bob_side, &trusted(alice_second()))
        .unwrap();
    for keys in [bob_second(), alice_second()] {
        assert_eq!(
            data.wrap(&keys.fingerprint()).unwrap().signer,
            bob().fingerprint()
        );
        let (result, unwraps) = open_counting(&data, keys, &parties);
        let opened = result.unwrap();
        assert_eq!(unwraps, 1);
        assert_eq!(
            opened.opening_key().expose_secret(),
            alice_side.opening_key().expose_secret()
        );
    }
    // Without a trusted bundle of the delegate, the delegate's wraps are not verified and not used.
    let (result, unwraps) = open_counting(&data, bob_second(), &[&alice_t]);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    assert_eq!(unwraps, 0);
}

#[test]
fn no_server_chosen_wrap_reaches_the_private_key() {
    let recipients = [trusted(bob()), trusted(bob_second())];
    let (data, _) = ExchangeData::create(
        alice(),
        bob().owner(),
        &recipients.iter().collect::<Vec<_>>(),
        T0,
    )
    .unwrap();
    let (other, _) = exchange(alice(), bob(), T0);
    let (alice_t, bob_t, carol_t) = (trusted(alice()), trusted(bob()), trusted(carol()));
    let parties = [&alice_t, &bob_t];
    let bob_fp = bob().fingerprint();
    let genuine = wrap_bytes(&data, &bob_fp);
    let bob_public = bob().bundle().unwrap();
    // A well-formed wrap of another secret under the right label: only a signature can tell it apart.
    let other_secret = bob_public
        .rsa_public_key()
        .wrap(&[0x5a; 32], &wrap_label(&data.id(), &bob_fp))
        .unwrap();
    let mut flipped = genuine.clone();
    flipped[100] ^= 1;
    let other_json = to_json_value(&other);
    let data_json = to_json_value(&data);

    let forgeries: Vec<(&str, ExchangeData)> = vec![
        (
            "bytes replaced by a valid wrap of another secret",
            edit_wrap(&data, &bob_fp, |slot| {
                slot["wrapped"] = serde_json::json!(hex(other_secret.as_bytes()));
            }),
        ),
        (
            "one byte of the wrap flipped",
            edit_wrap(&data, &bob_fp, |slot| {
                slot["wrapped"] = serde_json::json!(hex(&flipped));
            }),
        ),
        (
            "empty wrap bytes",
            edit_wrap(&data, &bob_fp, |slot| {
                slot["wrapped"] = serde_json::json!("");
            }),
        ),
        (
            "wrap copied from other exchange data of the same parties",
            edit_wrap(&data, &bob_fp, |slot| {
                *slot = other_json["wrapped"][bob_fp.to_string()].clone();
            }),
        ),
        (
            "wrap moved from another fingerprint of the same party",
            edit_wrap(&data, &bob_fp, |slot| {
                *slot = data_json["wrapped"][bob_second().fingerprint().to_string()].clone();
            }),
        ),
        (
            "wrap moved from the delegator's fingerprint",
            edit_wrap(&data, &bob_fp, |slot| {
                *slot = data_json["wrapped"][alice().fingerprint().to_string()].clone();
            }),
        ),
        (
            "genuine bytes signed by a third owner",
            signed_by(&data, &bob_fp, carol(), &genuine),
        ),
        (
            "another secret signed by a third owner",
            signed_by(&data, &bob_fp, carol(), other_secret.as_bytes()),
        ),
        (
            "another secret signed by an impostor of the delegator (its id, an untrusted key)",
            signed_by(&data, &bob_fp, alice_impostor(), other_secret.as_bytes()),
        ),
        (
            "genuine signature, signer renamed to the delegate",
            edit_wrap(&data, &bob_fp, |slot| {
                slot["signer"] = serde_json::json!(bob_fp.to_string());
            }),
        ),
        (
            "signature zeroed",
            edit_wrap(&data, &bob_fp, |slot| {
                slot["signature"] = serde_json::json!(hex(&[0; 64]));
            }),
        ),
        (
            "signature and signer zeroed",
            edit_wrap(&data, &bob_fp, |slot| {
                slot["signature"] = serde_json::json!(hex(&[0; 64]));
                slot["signer"] = serde_json::json!(hex(&[0; 32]));
            }),
        ),
        (
            "exchange data: created altered",
            json_edit(&data, |json| json["created"] = serde_json::json!(T0 + 1)),
        ),
        (
            "exchange data: delegate altered",
            json_edit(&data, |json| {
                json["delegate"] = serde_json::json!(carol().owner().to_string());
            }),
        ),
        (
            "exchange data: commitment altered",
            json_edit(&data, |json| {
                json["commitment"] = serde_json::json!(hex(&[7; 32]));
            }),
        ),
        (
            "exchange data: signature zeroed",
            json_edit(&data, |json| {
                json["signature"] = serde_json::json!(hex(&[0; 64]));
            }),
        ),
        (
            "exchange data: signer renamed to the delegate",
            json_edit(&data, |json| {
                json["signer"] = serde_json::json!(bob_fp.to_string());
            }),
        ),
    ];
    let mut checked = 0;
    for (what, forged) in &forgeries {
        assert_ne!(forged, &data, "{what}: the forgery changed nothing");
        for bundles in [&parties[..], &[&alice_t]] {
            let (result, unwraps) = open_counting(forged, bob(), bundles);
            // `WrongOwner` only where the forgery renamed a party, so that a given bundle is no longer one.
            assert!(
                matches!(result, Err(Error::Crypto | Error::WrongOwner { .. })),
                "{what}: {:?}",
                result.map(|_| ())
            );
            assert_eq!(unwraps, 0, "{what}: the private key saw the ciphertext");
        }
        // Offering the third owner's bundle does not help it either: it is refused as a party.
        let (result, unwraps) = open_counting(forged, bob(), &[&alice_t, &bob_t, &carol_t]);
        assert!(
            matches!(result, Err(Error::WrongOwner { .. })),
            "{what}: {:?}",
            result.map(|_| ())
        );
        assert_eq!(unwraps, 0, "{what}: the private key saw the ciphertext");
        checked += 1;
    }
    assert_eq!(checked, 17);

    // A wrap without a signature (the v1 shape, or the fields stripped) does not even decode.
    let mut unsigned = data_json.clone();
    unsigned["wrapped"][bob_fp.to_string()] = serde_json::json!(hex(&genuine));
    assert!(serde_json::from_value::<ExchangeData>(unsigned).is_err());
    for field in ["signer", "signature"] {
        let mut stripped = data_json.clone();
        stripped["wrapped"][bob_fp.to_string()]
            .as_object_mut()
            .unwrap()
            .remove(field);
        assert!(
            serde_json::from_value::<ExchangeData>(stripped).is_err(),
            "{field}"
        );
    }

    // The untouched data still opens, with one use of the key.
    let (result, unwraps) = open_counting(&data, bob(), &parties);
    result.unwrap();
    assert_eq!(unwraps, 1);
}

#[test]
fn add_wrap_is_for_parties_only() {
    let (mut data, alice_side) = exchange(alice(), bob(), T0);
    let before = data.clone();
    let result = data.add_wrap(carol(), &alice_side, &trusted(bob_second()));
    assert!(
        matches!(result, Err(Error::WrongOwner { found, .. }) if found == carol().owner()),
        "{result:?}"
    );
    assert_eq!(data, before);
}

#[test]
fn a_party_signed_wrap_of_another_secret_is_caught_by_the_commitment() {
    // A party can sign anything; the commitment still keeps a wrong secret out. This is the one case in which the
    // private key is used on a ciphertext that does not open: the ciphertext was chosen by a party, not the server.
    let (data, _) = exchange(alice(), bob(), T0);
    let bob_fp = bob().fingerprint();
    let other_secret = bob()
        .bundle()
        .unwrap()
        .rsa_public_key()
        .wrap(&[0x5a; 32], &wrap_label(&data.id(), &bob_fp))
        .unwrap();
    let forged = signed_by(&data, &bob_fp, alice(), other_secret.as_bytes());
    let (result, unwraps) = open_counting(&forged, bob(), &[&trusted(alice())]);
    assert!(matches!(result, Err(Error::Crypto)), "{result:?}");
    assert_eq!(unwraps, 1);
}
