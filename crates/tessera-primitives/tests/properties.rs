//! Property tests: round trips for any input, and any byte string handed to an opener or decoder
//! returns an error without panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use std::io::Read;
use std::sync::OnceLock;

use proptest::prelude::*;
use tessera_primitives::stream::{self, SEGMENT_LEN, StreamLayout, StreamOpener, StreamReader};
use tessera_primitives::{
    AeadKey, Error, RsaPrivateKey, RsaPublicKey, Secret32, Signature, SigningKey, VerifyingKey,
    WrappedKey,
};

fn rsa_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/keys/rsa2048.pem"
        ))
        .unwrap();
        RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
    })
}

fn aead_key(seed: u8) -> AeadKey {
    AeadKey::from_secret(Secret32::from_bytes([seed; 32]))
}

proptest! {
    #[test]
    fn seal_open_round_trip(seed in any::<u8>(), plaintext in proptest::collection::vec(any::<u8>(), 0..4096),
                            aad in proptest::collection::vec(any::<u8>(), 0..256)) {
        let key = aead_key(seed);
        let sealed = key.seal(&plaintext, &aad).unwrap();
        prop_assert_eq!(sealed.len(), plaintext.len() + tessera_primitives::SEALED_BOX_OVERHEAD);
        prop_assert_eq!(key.open(&sealed, &aad).unwrap(), plaintext);
    }

    #[test]
    fn open_rejects_arbitrary_bytes(seed in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..512),
                                    aad in proptest::collection::vec(any::<u8>(), 0..32)) {
        prop_assert!(matches!(aead_key(seed).open(&bytes, &aad), Err(Error::Crypto)));
    }

    #[test]
    fn stream_round_trip_with_random_segment_reads(len in 0usize..(4 * SEGMENT_LEN), picks in proptest::collection::vec(any::<u32>(), 1..6)) {
        let plaintext: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let sealed = stream::seal_all(aead_key(9), b"att", &plaintext).unwrap();
        prop_assert_eq!(&stream::open_all(aead_key(9), b"att", &sealed).unwrap(), &plaintext);
        let mut read = Vec::new();
        StreamReader::new(aead_key(9), b"att", &sealed[..]).unwrap().read_to_end(&mut read).unwrap();
        prop_assert_eq!(&read, &plaintext);

        let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
        let opener = StreamOpener::new(aead_key(9), &sealed[..stream::HEADER_LEN], b"att").unwrap();
        for pick in picks {
            let index = pick % layout.segments();
            let range = layout.segment_range(index).unwrap();
            let segment = opener.open_segment(index, &sealed[range.start as usize..range.end as usize], layout.is_last(index)).unwrap();
            let start = index as usize * SEGMENT_LEN;
            prop_assert_eq!(&segment[..], &plaintext[start..(start + SEGMENT_LEN).min(len)]);
        }
    }

    #[test]
    fn stream_openers_reject_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048), index in any::<u32>(), last in any::<bool>()) {
        prop_assert!(stream::open_all(aead_key(1), b"", &bytes).is_err());
        let mut out = Vec::new();
        if let Ok(mut reader) = StreamReader::new(aead_key(1), b"", &bytes[..]) {
            prop_assert!(reader.read_to_end(&mut out).is_err());
        }
        if let Ok(opener) = StreamOpener::new(aead_key(1), &bytes[..bytes.len().min(stream::HEADER_LEN)], b"") {
            prop_assert!(opener.open_segment(index, &bytes, last).is_err());
        }
        let _ = StreamLayout::from_encrypted_len(bytes.len() as u64);
    }

    #[test]
    fn decoders_reject_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(RsaPrivateKey::from_pkcs8_der(&bytes).is_err());
        prop_assert!(RsaPublicKey::from_spki_der(&bytes).is_err());
        let text = String::from_utf8_lossy(&bytes);
        prop_assert!(RsaPrivateKey::from_pkcs8_pem(&text).is_err());
        prop_assert!(RsaPublicKey::from_spki_pem(&text).is_err());
        if let (Ok(key), Ok(sig)) = (VerifyingKey::try_from(bytes.get(..32).unwrap_or(&[])), Signature::try_from(bytes.get(32..96).unwrap_or(&[]))) {
            prop_assert!(key.verify(&bytes, &sig).is_err());
        }
        prop_assert!(Secret32::try_from(&bytes[..]).is_ok() == (bytes.len() == 32));
    }

    #[test]
    fn signatures_verify_for_any_message(seed in any::<[u8; 32]>(), message in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let key = SigningKey::from_seed(Secret32::from_bytes(seed));
        prop_assert!(key.verifying_key().verify(&message, &key.sign(&message)).is_ok());
    }
}

proptest! {
    // RSA operations cost milliseconds each: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn rsa_wrap_unwrap_round_trip(secret in proptest::collection::vec(any::<u8>(), 0..=190),
                                  label in proptest::collection::vec(any::<u8>(), 0..64)) {
        let key = rsa_key();
        let wrapped = key.public_key().wrap(&secret, &label).unwrap();
        let unwrapped = key.unwrap(&wrapped, &label).unwrap();
        prop_assert_eq!(unwrapped.expose_secret(), &secret[..]);
    }

    #[test]
    fn rsa_unwrap_rejects_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        prop_assert!(matches!(rsa_key().unwrap(&WrappedKey::from_bytes(bytes), b""), Err(Error::Crypto)));
    }

    #[test]
    fn rsa_unwrap_rejects_random_full_length_ciphertexts(mut ciphertext in proptest::collection::vec(any::<u8>(), 256)) {
        // Below the modulus, so that the RSA primitive runs and the padding check is what fails.
        ciphertext[0] &= 0x3f;
        let wrapped = WrappedKey::from_rsa_ciphertext(&ciphertext);
        prop_assert!(matches!(rsa_key().unwrap(&wrapped, b""), Err(Error::Crypto)));
    }
}
