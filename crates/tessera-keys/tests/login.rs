//! The login answer (protocol v2) is bound to the owner, the challenge and the name the client knows the server by.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{alice, bob};

const SERVER: &str = "https://records.example:443";

#[test]
fn a_login_answer_verifies_for_its_server_only() {
    let challenge = [7u8; 32];
    let bundle = alice().bundle().unwrap();
    let signature = alice().sign_login_challenge(SERVER, &challenge).unwrap();
    assert!(bundle.verify_login(SERVER, &challenge, &signature).is_ok());

    // Relayed: the same answer presented to a server with another name is refused.
    for other in [
        "https://records.example:8443",
        "http://records.example:443",
        "https://relay.example:443",
        "",
    ] {
        assert!(
            bundle.verify_login(other, &challenge, &signature).is_err(),
            "{other:?} accepted"
        );
    }
    // Another challenge, or another owner's bundle: refused.
    assert!(bundle.verify_login(SERVER, &[8u8; 32], &signature).is_err());
    let bob_bundle = bob().bundle().unwrap();
    assert!(
        bob_bundle
            .verify_login(SERVER, &challenge, &signature)
            .is_err()
    );
}

#[test]
fn the_server_name_and_the_challenge_cannot_trade_bytes() {
    // var() prefixes lengths, so moving a byte from the name to the challenge changes the message.
    let signature = alice()
        .sign_login_challenge("https://a.example:1", b"xchallenge")
        .unwrap();
    let bundle = alice().bundle().unwrap();
    assert!(
        bundle
            .verify_login("https://a.example:1x", b"challenge", &signature)
            .is_err()
    );
}
