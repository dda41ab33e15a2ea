//! The `ring` and pure-Rust AES-GCM backends produce identical bytes and open each other's output.
#![cfg(all(feature = "pure-rust", feature = "test-utils"))]

use tessera_primitives::stream;
use tessera_primitives::{AeadBackend, AeadKey, Secret32};

fn keys(seed: u8) -> (AeadKey, AeadKey) {
    let secret = Secret32::from_bytes([seed; 32]);
    (
        AeadKey::with_backend(secret.clone(), AeadBackend::Ring),
        AeadKey::with_backend(secret, AeadBackend::PureRust),
    )
}

#[test]
fn identical_bytes_for_the_same_key_nonce_and_data() {
    let mut compared = 0;
    for (seed, len) in [
        (1u8, 0usize),
        (2, 1),
        (3, 15),
        (4, 16),
        (5, 17),
        (6, 1000),
        (7, 65_536),
        (8, 1 << 20),
    ] {
        let (ring, pure) = keys(seed);
        assert_eq!(ring.backend(), AeadBackend::Ring);
        assert_eq!(pure.backend(), AeadBackend::PureRust);
        let plaintext: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
        let aad = vec![seed; len % 40];
        let nonce = [seed.wrapping_mul(13); 12];
        let by_ring = ring.seal_with_nonce(nonce, &plaintext, &aad).unwrap();
        let by_pure = pure.seal_with_nonce(nonce, &plaintext, &aad).unwrap();
        assert_eq!(by_ring, by_pure, "length {len}");
        compared += 1;

        // Each opens the other's randomly-nonced output.
        assert_eq!(
            pure.open(&ring.seal(&plaintext, &aad).unwrap(), &aad)
                .unwrap(),
            plaintext
        );
        assert_eq!(
            ring.open(&pure.seal(&plaintext, &aad).unwrap(), &aad)
                .unwrap(),
            plaintext
        );
        assert!(pure.open(&by_ring, b"other aad").is_err());
    }
    assert_eq!(compared, 8);
}

#[test]
fn streams_cross_open() {
    let (ring, pure) = keys(9);
    let plaintext: Vec<u8> = (0..3 * stream::SEGMENT_LEN + 5).map(|i| i as u8).collect();
    let by_ring = stream::seal_all(ring.clone(), b"a", &plaintext).unwrap();
    let by_pure = stream::seal_all(pure.clone(), b"a", &plaintext).unwrap();
    assert_eq!(stream::open_all(pure, b"a", &by_ring).unwrap(), plaintext);
    assert_eq!(stream::open_all(ring, b"a", &by_pure).unwrap(), plaintext);
}
