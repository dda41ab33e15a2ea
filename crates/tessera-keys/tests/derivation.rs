//! Principle P5 and access control: every secret an owner uses is reproduced from its private key plus public records.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::HashSet;

use common::{
    T0, alice, alice_id, assert_different_aead_keys, assert_same_aead_key, bob, entity,
    entity_types, exchange, fixture_pem, to_json_value, trusted,
};
use tessera_keys::{
    AccessControlKey, ExchangeData, ExchangeSecret, KeyBag, KeyBagEntry, OwnerKeys, UnwrapKey,
};
use tessera_primitives::{
    Prk, RsaKeySize, RsaPrivateKey, Secret32, Signature, SigningKey, WrappedKey, hmac_sha256,
    sha256,
};

/// Derives `keys` again from its private key after a PKCS#8 PEM round trip, as a new device would.
fn rederive_from_pem(keys: &OwnerKeys) -> OwnerKeys {
    let pem = keys.rsa_private_key().to_pkcs8_pem().unwrap();
    let rsa = RsaPrivateKey::from_pkcs8_pem(pem.expose_secret()).unwrap();
    OwnerKeys::derive(keys.owner(), rsa, keys.bundle().unwrap().created()).unwrap()
}

/// Derives `keys` again from its private key after a PKCS#8 DER round trip.
fn rederive_from_der(keys: &OwnerKeys) -> OwnerKeys {
    let der = keys.rsa_private_key().to_pkcs8_der().unwrap();
    let rsa = RsaPrivateKey::from_pkcs8_der(der.expose_secret()).unwrap();
    OwnerKeys::derive(keys.owner(), rsa, keys.bundle().unwrap().created()).unwrap()
}

/// Asserts that two derivations agree on everything public and on every derived secret.
fn assert_same_owner_keys(a: &OwnerKeys, b: &OwnerKeys) {
    assert_eq!(a.owner(), b.owner());
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.verifying_key(), b.verifying_key());
    let (bundle_a, bundle_b) = (a.bundle().unwrap(), b.bundle().unwrap());
    // Ed25519 is deterministic, so even the self-signatures are equal.
    assert_eq!(bundle_a, bundle_b);
    assert_eq!(
        bundle_a.canonical_bytes().unwrap(),
        bundle_b.canonical_bytes().unwrap()
    );
    assert_eq!(bundle_a.fingerprint(), a.fingerprint());
    assert_eq!(
        a.rsa_private_key()
            .to_canonical_bytes()
            .unwrap()
            .expose_secret(),
        b.rsa_private_key()
            .to_canonical_bytes()
            .unwrap()
            .expose_secret()
    );
    assert_same_aead_key(a.self_key(), b.self_key());
    // The key-bag id key is not exposed; its output is.
    let (data, _) = exchange(alice(), bob(), T0 + 1);
    assert_eq!(
        KeyBag::entry_id(a, &data.id()),
        KeyBag::entry_id(b, &data.id())
    );
}

/// Asserts that two exchange secrets hold the same secret: same ids, same exchange key, same access keys.
fn assert_same_exchange_secret(a: &ExchangeSecret, b: &ExchangeSecret) {
    assert_eq!(a.id(), b.id());
    assert_eq!(a.delegator(), b.delegator());
    assert_eq!(a.delegate(), b.delegate());
    assert_same_aead_key(a.opening_key(), b.opening_key());
    for entity_type in entity_types() {
        assert_eq!(
            a.delegation_key(&entity_type),
            b.delegation_key(&entity_type),
            "{entity_type}"
        );
        assert!(
            a.access_control_key(&entity_type)
                .ct_eq(&b.access_control_key(&entity_type)),
            "{entity_type}"
        );
    }
}

#[test]
fn fixture_keys_rederive_identically_after_pem_and_der_round_trips() {
    for keys in [alice(), bob()] {
        assert_same_owner_keys(keys, &rederive_from_pem(keys));
        assert_same_owner_keys(keys, &rederive_from_der(keys));
    }
}

#[test]
fn the_fixture_pem_and_the_base64_decoded_der_give_the_same_owner() {
    // The fixture was written by OpenSSL; read it once as PEM and once as DER (decoded here), the owner is the same.
    let pem = fixture_pem("rsa2048.pem");
    let der = common::pem_to_der(&pem);
    let from_pem =
        OwnerKeys::derive(alice_id(), RsaPrivateKey::from_pkcs8_pem(&pem).unwrap(), T0).unwrap();
    let from_der =
        OwnerKeys::derive(alice_id(), RsaPrivateKey::from_pkcs8_der(&der).unwrap(), T0).unwrap();
    assert_same_owner_keys(&from_pem, &from_der);
    assert_same_owner_keys(&from_pem, alice());
}

#[test]
fn a_generated_key_rederives_identically() {
    let keys = OwnerKeys::generate(common::id(0xee), RsaKeySize::Bits2048, T0 + 5).unwrap();
    let again = rederive_from_pem(&keys);
    assert_same_owner_keys(&keys, &again);
    // And a third derivation from the DER of the second.
    assert_same_owner_keys(&keys, &rederive_from_der(&again));
}

#[test]
fn creation_time_and_owner_enter_the_fingerprint_not_the_secrets() {
    let a = alice();
    let later = OwnerKeys::derive(a.owner(), a.rsa_private_key().clone(), T0 + 1).unwrap();
    assert_ne!(later.fingerprint(), a.fingerprint());
    assert_eq!(later.verifying_key(), a.verifying_key());
    assert_same_aead_key(later.self_key(), a.self_key());

    let other_owner = OwnerKeys::derive(common::id(0x01), a.rsa_private_key().clone(), T0).unwrap();
    assert_ne!(other_owner.fingerprint(), a.fingerprint());
    assert_eq!(other_owner.bundle().unwrap().owner(), common::id(0x01));
}

#[test]
fn different_private_keys_derive_different_secrets() {
    let (a, b) = (alice(), bob());
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.verifying_key(), b.verifying_key());
    assert_different_aead_keys(a.self_key(), b.self_key());
}

#[test]
fn a_bag_entry_sealed_by_one_derivation_opens_with_the_other() {
    let (data, alice_side) = exchange(alice(), bob(), T0 + 2);
    let bob_side = data.open(bob(), &[&trusted(alice())]).unwrap();
    for (keys, secret) in [(alice(), &alice_side), (bob(), &bob_side)] {
        let entry = KeyBag::seal_entry(keys, secret).unwrap();
        let again = rederive_from_pem(keys);
        let reopened = KeyBag::open_entry(&again, &entry).unwrap();
        assert_same_exchange_secret(secret, &reopened);
        assert_eq!(reopened.is_self_signed(), secret.is_self_signed());
        // Sealed by the rederived keys, opened by the originals.
        let entry = KeyBag::seal_entry(&again, secret).unwrap();
        assert_same_exchange_secret(secret, &KeyBag::open_entry(keys, &entry).unwrap());
    }
}

#[test]
fn exchange_data_opened_by_both_derivations_gives_the_same_keys() {
    let (data, alice_side) = exchange(alice(), bob(), T0 + 3);
    let alice_trusted = trusted(alice());

    let bob_side = data.open(bob(), &[&alice_trusted]).unwrap();
    let bob_again = data
        .open(&rederive_from_pem(bob()), &[&alice_trusted])
        .unwrap();
    assert_same_exchange_secret(&bob_side, &bob_again);
    assert_same_exchange_secret(&alice_side, &bob_again);

    let alice_again = data
        .open(&rederive_from_der(alice()), &[&alice_trusted])
        .unwrap();
    assert_same_exchange_secret(&alice_side, &alice_again);
    // What the original delegator seals, every rederived party opens.
    let sealed = alice_side
        .sealing_key()
        .unwrap()
        .seal(b"entity key", b"Contact|1")
        .unwrap();
    for opener in [&bob_side, &bob_again, &alice_again] {
        assert_eq!(
            opener.opening_key().open(&sealed, b"Contact|1").unwrap(),
            b"entity key"
        );
    }
    // The rederived delegator still signed it, so it may encrypt with it; its output opens on the other side.
    let sealed = alice_again
        .sealing_key()
        .unwrap()
        .seal(b"entity key 2", b"Contact|2")
        .unwrap();
    assert_eq!(
        bob_side.opening_key().open(&sealed, b"Contact|2").unwrap(),
        b"entity key 2"
    );
}

#[test]
fn a_new_device_reproduces_everything_from_the_private_key_and_public_records() {
    // What the server holds: bundles, exchange data, the key bag. All public or sealed; serialized as JSON.
    let (data_1, alice_side_1) = exchange(alice(), bob(), T0 + 4);
    let (data_2, alice_side_2) = exchange(alice(), bob(), T0 + 5);
    let bob_side_1 = data_1.open(bob(), &[&trusted(alice())]).unwrap();
    let stored_bag =
        serde_json::to_string(&vec![KeyBag::seal_entry(bob(), &bob_side_1).unwrap()]).unwrap();
    let stored_data = serde_json::to_string(&vec![data_1.clone(), data_2.clone()]).unwrap();
    let stored_bundle = serde_json::to_string(&alice().bundle().unwrap()).unwrap();

    // The new device holds only Bob's PEM.
    let pem = bob().rsa_private_key().to_pkcs8_pem().unwrap();
    let device = OwnerKeys::derive(
        bob().owner(),
        RsaPrivateKey::from_pkcs8_pem(pem.expose_secret()).unwrap(),
        T0 + 10,
    )
    .unwrap();
    let entries: Vec<KeyBagEntry> = serde_json::from_str(&stored_bag).unwrap();
    let mut bag = KeyBag::load(&device, &entries).unwrap();
    assert_eq!(bag.len(), 1);
    let all: Vec<ExchangeData> = serde_json::from_str(&stored_data).unwrap();
    let alice_trusted = tessera_keys::PinnedFingerprints::new([alice().fingerprint()]);
    let alice_bundle = tessera_keys::TrustPolicy::trust(
        &alice_trusted,
        serde_json::from_str(&stored_bundle).unwrap(),
    )
    .unwrap();
    for data in &all {
        if bag.get(&data.id()).is_none() {
            bag.insert(data.open(&device, &[&alice_bundle]).unwrap());
        }
    }
    assert_eq!(bag.len(), 2);
    assert_same_exchange_secret(bag.get(&data_1.id()).unwrap(), &alice_side_1);
    assert_same_exchange_secret(bag.get(&data_2.id()).unwrap(), &alice_side_2);
}

#[test]
fn unwrap_key_of_owner_keys_reports_its_own_owner_and_fingerprint() {
    let keys = bob();
    assert_eq!(UnwrapKey::owner(keys), keys.owner());
    assert_eq!(
        UnwrapKey::fingerprint(keys),
        keys.bundle().unwrap().fingerprint()
    );
}

#[test]
fn access_control_keys_differ_per_entity_type() {
    let (data, alice_side) = exchange(alice(), bob(), T0 + 6);
    let bob_side = data.open(bob(), &[&trusted(alice())]).unwrap();
    let types = entity_types();
    let mut delegation_keys = HashSet::new();
    let mut access_keys = HashSet::new();
    for entity_type in &types {
        let ack = alice_side.access_control_key(entity_type);
        let dk = alice_side.delegation_key(entity_type);
        // Delegator and delegate agree.
        assert!(ack.ct_eq(&bob_side.access_control_key(entity_type)));
        assert_eq!(dk, bob_side.delegation_key(entity_type));
        assert_eq!(ack.delegation_key(), dk);
        assert!(ack.matches(&dk));
        assert!(delegation_keys.insert(dk), "{entity_type}");
        assert!(access_keys.insert(*ack.expose_secret()), "{entity_type}");
    }
    assert_eq!(delegation_keys.len(), types.len());
    // A key of one type never opens another type's entities.
    for entity_type in &types {
        let ack = bob_side.access_control_key(entity_type);
        let matching = delegation_keys.iter().filter(|dk| ack.matches(dk)).count();
        assert_eq!(matching, 1, "{entity_type}");
    }
    // Case matters: "Patient" and "patient" are different types.
    assert_ne!(
        alice_side.delegation_key(&entity("Patient")),
        alice_side.delegation_key(&entity("patient"))
    );
}

#[test]
fn access_control_keys_differ_per_exchange_data_and_direction() {
    let patient = entity("Patient");
    let (data_1, side_1) = exchange(alice(), bob(), T0 + 7);
    let (data_2, side_2) = exchange(alice(), bob(), T0 + 7);
    let (reverse, reverse_side) = exchange(bob(), alice(), T0 + 7);
    assert_ne!(data_1.id(), data_2.id());
    let keys = [
        side_1.delegation_key(&patient),
        side_2.delegation_key(&patient),
        reverse_side.delegation_key(&patient),
    ];
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 3);
    assert_different_aead_keys(side_1.opening_key(), side_2.opening_key());
    assert_different_aead_keys(side_1.opening_key(), reverse_side.opening_key());

    // Each delegate derives the keys of its own exchange data, and only those.
    let bob_1 = data_1.open(bob(), &[&trusted(alice())]).unwrap();
    let bob_2 = data_2.open(bob(), &[&trusted(alice())]).unwrap();
    let alice_reverse = reverse.open(alice(), &[&trusted(bob())]).unwrap();
    assert_eq!(bob_1.delegation_key(&patient), keys[0]);
    assert_eq!(bob_2.delegation_key(&patient), keys[1]);
    assert_eq!(alice_reverse.delegation_key(&patient), keys[2]);
    assert!(alice_reverse.access_control_key(&patient).matches(&keys[2]));
    assert!(!alice_reverse.access_control_key(&patient).matches(&keys[0]));
}

#[test]
fn access_control_key_matches_only_its_own_delegation_key() {
    let (data, alice_side) = exchange(alice(), bob(), T0 + 8);
    let (_, other_side) = exchange(alice(), bob(), T0 + 8);
    let bob_side = data.open(bob(), &[&trusted(alice())]).unwrap();
    let (patient, contact) = (entity("Patient"), entity("Contact"));

    let ack = bob_side.access_control_key(&patient);
    let stored = alice_side.delegation_key(&patient);
    assert!(ack.matches(&stored));
    // A server rebuilds the key from the 16 presented bytes.
    let presented = AccessControlKey::from_bytes(*ack.expose_secret());
    assert!(presented.matches(&stored));
    assert!(presented.ct_eq(&ack));
    // Another type, other exchange data, a flipped bit: no match.
    assert!(!bob_side.access_control_key(&contact).matches(&stored));
    assert!(!other_side.access_control_key(&patient).matches(&stored));
    assert!(!ack.matches(&alice_side.delegation_key(&contact)));
    for bit in 0..128 {
        let mut bytes = *ack.expose_secret();
        bytes[bit / 8] ^= 1 << (bit % 8);
        assert!(
            !AccessControlKey::from_bytes(bytes).matches(&stored),
            "bit {bit}"
        );
    }
    // The stored delegation key is not itself an access-control key of anything.
    let mut as_ack = [0u8; 16];
    as_ack.copy_from_slice(&stored.as_bytes()[..16]);
    assert!(!AccessControlKey::from_bytes(as_ack).matches(&stored));
    assert_eq!(format!("{ack:?}"), "[redacted]");
}

/// `tag ‖ 0x00`, the start of every canonical encoding (docs/formats.md).
fn tagged(tag: &str) -> Vec<u8> {
    let mut out = tag.as_bytes().to_vec();
    out.push(0);
    out
}

#[test]
fn every_derivation_follows_docs_formats() {
    // An independent reading of docs/formats.md, from the private key and public records only.
    let keys = bob();
    let canonical_rsa = keys.rsa_private_key().to_canonical_bytes().unwrap();
    let prk = Prk::extract(b"tessera/v1/owner-key", canonical_rsa.expose_secret());
    let signing = SigningKey::from_seed(prk.derive_secret32("tessera/v1/signing", b""));
    assert_eq!(signing.verifying_key(), keys.verifying_key());
    assert_eq!(
        prk.derive_secret32("tessera/v1/self", b"").expose_secret(),
        keys.self_key().expose_secret()
    );
    let bag_id_key = prk.derive_secret32("tessera/v1/bag-id", b"");

    // Key bundle.
    let bundle = keys.bundle().unwrap();
    let spki = bundle.rsa_public_key().to_spki_der().unwrap();
    let mut canonical = tagged("tessera/v1/key-bundle");
    canonical.push(2);
    canonical.extend_from_slice(keys.owner().as_bytes());
    canonical.extend_from_slice(&u32::try_from(spki.len()).unwrap().to_be_bytes());
    canonical.extend_from_slice(&spki);
    canonical.extend_from_slice(keys.verifying_key().as_bytes());
    canonical.extend_from_slice(&(T0 + 10).to_be_bytes());
    assert_eq!(bundle.canonical_bytes().unwrap(), canonical);
    assert_eq!(bundle.fingerprint().as_bytes(), &sha256(&canonical));
    assert_eq!(keys.fingerprint().as_bytes(), &sha256(&canonical));
    keys.verifying_key()
        .verify(&canonical, &Signature::from(bundle.self_signature_bytes()))
        .unwrap();
    let short = common::hex(&bundle.fingerprint().as_bytes()[..10]);
    let groups: Vec<&str> = (0..5).map(|i| &short[4 * i..4 * i + 4]).collect();
    assert_eq!(bundle.fingerprint().short_code(), groups.join("-"));

    // Chain: the same RSA key at another creation time is another bundle (another fingerprint).
    let older = alice();
    let mut newer = OwnerKeys::derive(older.owner(), older.rsa_private_key().clone(), T0 + 77)
        .unwrap()
        .bundle()
        .unwrap();
    older.sign_successor(&mut newer).unwrap();
    let mut chain_message = tagged("tessera/v1/key-bundle-chain");
    chain_message.extend_from_slice(older.fingerprint().as_bytes());
    chain_message.extend_from_slice(newer.fingerprint().as_bytes());
    older
        .verifying_key()
        .verify(
            &chain_message,
            &Signature::from(newer.chain().unwrap().signature.0),
        )
        .unwrap();

    // Exchange data: recover S from Bob's wrap with his private key, then recompute everything.
    let (data, alice_side) = exchange(alice(), bob(), T0 + 50);
    let json = to_json_value(&data);
    let fp = keys.fingerprint();
    let signed_wrap = &json["wrapped"][fp.to_string()];
    let wrap = ::hex::decode(signed_wrap["wrapped"].as_str().unwrap()).unwrap();
    assert_eq!(wrap[..2], [1, 1], "version ‖ alg");
    let s = keys
        .rsa_private_key()
        .unwrap(
            &WrappedKey::from_bytes(wrap.clone()),
            &common::wrap_label(&data.id(), &fp),
        )
        .unwrap();
    let s: [u8; 32] = s.expose_secret().try_into().unwrap();
    let mut commit_message = tagged("tessera/v1/commit");
    commit_message.extend_from_slice(data.id().as_bytes());
    let commitment = hmac_sha256(&s, &commit_message);
    assert_eq!(json["commitment"], common::hex(&commitment));
    let mut canonical = tagged("tessera/v1/exchange-data");
    canonical.push(2);
    canonical.extend_from_slice(data.id().as_bytes());
    canonical.extend_from_slice(alice().owner().as_bytes());
    canonical.extend_from_slice(bob().owner().as_bytes());
    canonical.extend_from_slice(&(T0 + 50).to_be_bytes());
    canonical.extend_from_slice(&commitment);
    canonical.extend_from_slice(alice().fingerprint().as_bytes());
    assert_eq!(data.canonical_bytes(), canonical);
    let signature: [u8; 64] = ::hex::decode(json["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    alice()
        .verifying_key()
        .verify(&canonical, &Signature::from(signature))
        .unwrap();
    // Each wrap is signed by the party that made it (here the delegator, at creation).
    assert_eq!(signed_wrap["signer"], alice().fingerprint().to_string());
    let mut wrap_message = tagged("tessera/v2/wrap");
    wrap_message.push(2);
    wrap_message.extend_from_slice(data.id().as_bytes());
    wrap_message.extend_from_slice(alice().owner().as_bytes());
    wrap_message.extend_from_slice(bob().owner().as_bytes());
    wrap_message.extend_from_slice(&commitment);
    wrap_message.extend_from_slice(fp.as_bytes());
    wrap_message.extend_from_slice(alice().fingerprint().as_bytes());
    wrap_message.extend_from_slice(&u32::try_from(wrap.len()).unwrap().to_be_bytes());
    wrap_message.extend_from_slice(&wrap);
    let wrap_signature: [u8; 64] = ::hex::decode(signed_wrap["signature"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    alice()
        .verifying_key()
        .verify(&wrap_message, &Signature::from(wrap_signature))
        .unwrap();

    // Keys derived from S.
    let s_prk = Prk::from_secret(Secret32::from_bytes(s));
    assert_eq!(
        s_prk
            .derive_aead_key("tessera/v1/exchange-key", data.id().as_bytes())
            .expose_secret(),
        alice_side.opening_key().expose_secret()
    );
    let access = Prk::from_secret(s_prk.derive_secret32("tessera/v1/access", data.id().as_bytes()));
    for entity_type in entity_types() {
        let mut ack = [0u8; 16];
        access
            .expand_label("tessera/v1/ack", entity_type.as_str().as_bytes(), &mut ack)
            .unwrap();
        assert_eq!(
            alice_side.access_control_key(&entity_type).expose_secret(),
            &ack
        );
        let mut dk_input = tagged("tessera/v1/dk");
        dk_input.extend_from_slice(&ack);
        assert_eq!(
            alice_side.delegation_key(&entity_type).as_bytes(),
            &sha256(&dk_input)
        );
    }

    // Key-bag entry of Bob.
    let bob_side = data.open(keys, &[&trusted(alice())]).unwrap();
    let entry = KeyBag::seal_entry(keys, &bob_side).unwrap();
    let mut id_message = tagged("tessera/v1/bag-entry");
    id_message.extend_from_slice(data.id().as_bytes());
    assert_eq!(
        entry.id.as_bytes(),
        &hmac_sha256(bag_id_key.expose_secret(), &id_message)
    );
    let mut aad = tagged("tessera/v1/key-bag");
    aad.extend_from_slice(keys.owner().as_bytes());
    aad.extend_from_slice(entry.id.as_bytes());
    let payload = keys.self_key().open(&entry.sealed, &aad).unwrap();
    let mut expected = vec![2];
    expected.extend_from_slice(data.id().as_bytes());
    expected.extend_from_slice(alice().owner().as_bytes());
    expected.extend_from_slice(bob().owner().as_bytes());
    expected.push(0);
    expected.extend_from_slice(&s);
    assert_eq!(payload, expected);
}
