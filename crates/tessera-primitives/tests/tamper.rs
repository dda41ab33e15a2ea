//! Tamper tests: flipping any single byte of a sealed box, a wrapped key, a signature or a stream
//! yields the one opaque error, never a panic and never plaintext.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use tessera_primitives::stream::{
    self, ENCRYPTED_SEGMENT_LEN, HEADER_LEN, SEGMENT_LEN, StreamLayout, StreamOpener,
};
use tessera_primitives::{
    AeadKey, Error, RsaPrivateKey, Secret32, Signature, SigningKey, WrappedKey,
};

/// Calls `check` with every single-byte flip of `bytes` (each byte XORed with 0x01 and with 0x80).
fn for_each_flip(bytes: &[u8], mut check: impl FnMut(usize, &[u8])) {
    let mut copy = bytes.to_vec();
    for i in 0..copy.len() {
        for mask in [0x01, 0x80] {
            copy[i] ^= mask;
            check(i, &copy);
            copy[i] ^= mask;
        }
    }
}

#[test]
fn every_flipped_byte_of_a_sealed_box_is_rejected() {
    let key = AeadKey::from_secret(Secret32::from_bytes([1; 32]));
    let sealed = key
        .seal(b"diagnosis: hypertension", b"Patient|42|v1")
        .unwrap();
    let mut count = 0;
    for_each_flip(&sealed, |i, tampered| {
        assert!(
            matches!(key.open(tampered, b"Patient|42|v1"), Err(Error::Crypto)),
            "byte {i}"
        );
        count += 1;
    });
    assert_eq!(count, 2 * sealed.len());
}

#[test]
fn every_flipped_byte_of_a_wrapped_key_is_rejected() {
    let pem = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/keys/rsa2048.pem"
    ))
    .unwrap();
    let key = RsaPrivateKey::from_pkcs8_pem(&pem).unwrap();
    let wrapped = key
        .public_key()
        .wrap(&[7; 32], b"exchange-data-id|fingerprint")
        .unwrap();
    assert_eq!(wrapped.as_bytes().len(), 2 + 256);
    // One flip per byte keeps this at 258 RSA decryptions.
    let mut copy = wrapped.as_bytes().to_vec();
    for i in 0..copy.len() {
        copy[i] ^= 0x01;
        let result = key.unwrap(
            &WrappedKey::from_bytes(copy.clone()),
            b"exchange-data-id|fingerprint",
        );
        assert!(matches!(result, Err(Error::Crypto)), "byte {i}");
        copy[i] ^= 0x01;
    }
}

#[test]
fn every_flipped_byte_of_a_signature_or_message_is_rejected() {
    let key = SigningKey::from_seed(Secret32::from_bytes([2; 32]));
    let message = b"key bundle canonical bytes".to_vec();
    let signature = key.sign(&message);
    let public = key.verifying_key();
    public.verify(&message, &signature).unwrap();
    for_each_flip(signature.as_bytes(), |i, tampered| {
        let tampered = Signature::try_from(tampered).unwrap();
        assert!(
            matches!(public.verify(&message, &tampered), Err(Error::Crypto)),
            "signature byte {i}"
        );
    });
    for_each_flip(&message, |i, tampered| {
        assert!(
            matches!(public.verify(tampered, &signature), Err(Error::Crypto)),
            "message byte {i}"
        );
    });
    for_each_flip(public.as_bytes(), |i, tampered| {
        let other = tessera_primitives::VerifyingKey::try_from(tampered).unwrap();
        assert!(
            matches!(other.verify(&message, &signature), Err(Error::Crypto)),
            "public key byte {i}"
        );
    });
}

#[test]
fn every_flipped_byte_of_a_stream_is_rejected() {
    let key = AeadKey::from_secret(Secret32::from_bytes([3; 32]));
    let plaintext: Vec<u8> = (0..SEGMENT_LEN + 300).map(|i| i as u8).collect();
    let sealed = stream::seal_all(key.clone(), b"aad", &plaintext).unwrap();
    let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
    // A flip in the header breaks the whole stream; a flip in a segment breaks that segment, which is
    // all a random-access reader would open, so each flip is checked where it lands.
    for_each_flip(&sealed[..HEADER_LEN], |i, header| {
        let mut tampered = header.to_vec();
        tampered.extend_from_slice(&sealed[HEADER_LEN..]);
        assert!(
            matches!(
                stream::open_all(key.clone(), b"aad", &tampered),
                Err(Error::Crypto)
            ),
            "header byte {i}"
        );
    });
    let opener = StreamOpener::new(key.clone(), &sealed[..HEADER_LEN], b"aad").unwrap();
    for index in 0..layout.segments() {
        let range = layout.segment_range(index).unwrap();
        let segment = &sealed[range.start as usize..range.end as usize];
        let mut flips = 0;
        for_each_flip(segment, |i, tampered| {
            let opened = opener.open_segment(index, tampered, layout.is_last(index));
            assert!(
                matches!(opened, Err(Error::Crypto)),
                "segment {index} byte {i}"
            );
            flips += 1;
        });
        assert_eq!(flips, 2 * segment.len());
    }
    // And a sample of flips through the whole-stream opener, one per 4 KiB.
    for i in (HEADER_LEN..sealed.len())
        .step_by(4096)
        .chain([HEADER_LEN + ENCRYPTED_SEGMENT_LEN - 1, sealed.len() - 1])
    {
        let mut tampered = sealed.clone();
        tampered[i] ^= 0x40;
        assert!(
            matches!(
                stream::open_all(key.clone(), b"aad", &tampered),
                Err(Error::Crypto)
            ),
            "byte {i}"
        );
    }
}
