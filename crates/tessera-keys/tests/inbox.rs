//! Inbox messages: exchange data sealed for its delegate's bundle, naming no sender, opened only by the delegate's
//! key, and still verified before the RSA key is used.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{T0, alice, bob, bob_second, carol, trusted};
use tessera_keys::{Error, ExchangeData, InboxMessage, InboxMessageId};

fn alice_to_bob() -> (ExchangeData, tessera_keys::ExchangeSecret) {
    ExchangeData::create(alice(), bob().owner(), &[&trusted(bob())], T0).unwrap()
}

#[test]
fn the_delegate_opens_the_exchange_data_and_its_secret() {
    let (data, secret) = alice_to_bob();
    let message = InboxMessage::seal(&data, &trusted(bob())).unwrap();
    assert!(message.is_for(bob()));
    let opened = message.open(bob()).unwrap();
    assert_eq!(opened, data);
    let shared = opened
        .open(bob(), &[&trusted(alice()), &trusted(bob())])
        .unwrap();
    assert_eq!(shared.id(), secret.id());
    let entity_type = tessera_keys::EntityType::new("Note").unwrap();
    assert_eq!(
        shared.delegation_key(&entity_type),
        secret.delegation_key(&entity_type)
    );
}

#[test]
fn nothing_in_clear_names_the_sender() {
    let (data, _) = alice_to_bob();
    let message = InboxMessage::seal(&data, &trusted(bob())).unwrap();
    let clear = serde_json::to_string(&message).unwrap();
    for name in [
        alice().owner().as_bytes().to_vec(),
        alice().fingerprint().as_bytes().to_vec(),
        bob().owner().as_bytes().to_vec(),
    ] {
        let hex = ::hex::encode(&name);
        assert!(!clear.contains(&hex), "{hex} in clear");
        assert!(
            !message.sealed.windows(name.len()).any(|w| w == name),
            "a party's id or fingerprint in the box"
        );
    }
    // Only the recipient's fingerprint: the inbox names the recipient anyway.
    assert_eq!(message.recipient, bob().fingerprint());
}

#[test]
fn another_key_of_anybody_cannot_open_it() {
    let (data, _) = alice_to_bob();
    let message = InboxMessage::seal(&data, &trusted(bob())).unwrap();
    assert!(matches!(message.open(carol()), Err(Error::Crypto)));
    assert!(matches!(message.open(bob_second()), Err(Error::Crypto)));
    // Relabelled for another key, it still does not open.
    let mut relabelled = message.clone();
    relabelled.recipient = carol().fingerprint();
    assert!(matches!(relabelled.open(carol()), Err(Error::Crypto)));
}

#[test]
fn a_box_moved_under_another_id_or_altered_does_not_open() {
    let (data, _) = alice_to_bob();
    let message = InboxMessage::seal(&data, &trusted(bob())).unwrap();
    let mut moved = message.clone();
    moved.id = InboxMessageId::generate().unwrap();
    assert!(matches!(moved.open(bob()), Err(Error::Crypto)));
    for index in (0..message.sealed.len()).step_by(7) {
        let mut altered = message.clone();
        altered.sealed[index] ^= 0x80;
        assert!(
            matches!(altered.open(bob()), Err(Error::Crypto)),
            "byte {index}"
        );
    }
    let mut truncated = message.clone();
    truncated.sealed.pop();
    assert!(matches!(truncated.open(bob()), Err(Error::Crypto)));
}

#[test]
fn a_message_can_only_be_sealed_for_the_delegate_and_read_by_it() {
    let (data, _) = alice_to_bob();
    // For a bundle of somebody else than the delegate: refused before anything is sealed.
    assert!(matches!(
        InboxMessage::seal(&data, &trusted(carol())),
        Err(Error::WrongOwner { .. })
    ));
    // Exchange data for Carol, replayed into Bob's inbox by whoever made it: Bob refuses it.
    let (for_carol, _) =
        ExchangeData::create(alice(), carol().owner(), &[&trusted(carol())], T0).unwrap();
    let message = InboxMessage::seal(&for_carol, &trusted(carol())).unwrap();
    assert!(message.open(carol()).is_ok());
    assert!(message.open(bob()).is_err());
}

#[test]
fn forged_exchange_data_opens_as_a_box_but_fails_verification_before_rsa() {
    // Anybody can seal a box for Bob's public key. Carol cannot sign as Alice, so she sends exchange data of her
    // own; the box opens, and verification against the bundles Bob trusts (Alice's) refuses it before RSA.
    let (from_carol, _) =
        ExchangeData::create(carol(), bob().owner(), &[&trusted(bob())], T0).unwrap();
    let message = InboxMessage::seal(&from_carol, &trusted(bob())).unwrap();
    let opened = message.open(bob()).unwrap();
    assert!(
        opened
            .open(bob(), &[&trusted(alice()), &trusted(bob())])
            .is_err()
    );
}
