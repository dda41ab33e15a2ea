//! Known-answer tests from the RFCs themselves: HKDF-SHA-256 (RFC 5869 Appendix A) and Ed25519 (RFC 8032 §7.1).
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "helpers outside #[test] functions stop the test on a malformed data file; clippy.toml's test allowance does not reach them"
)]

// The vectors live in `tests/data/` as JSON files that name their RFC section and were cross-checked with
// Python's `cryptography` package; each test runs every vector of its file and asserts how many it ran, so
// an emptied or truncated file fails.

use serde_json::Value;
use tessera_primitives::{Error, Prk, Secret32, Signature, SigningKey, VerifyingKey, hkdf_sha256};

/// RFC 5869 Appendix A, test cases 1 to 3 (the SHA-256 ones).
#[test]
fn rfc5869_hkdf_sha256() {
    let vectors = load(include_str!("data/rfc5869_hkdf_sha256.json"));
    for vector in &vectors {
        let name = field_str(vector, "name");
        let (ikm, salt, info) = (
            hex_field(vector, "ikm"),
            hex_field(vector, "salt"),
            hex_field(vector, "info"),
        );
        let (prk, okm) = (hex_field(vector, "prk"), hex_field(vector, "okm"));
        let len = usize::try_from(vector["l"].as_u64().unwrap()).unwrap();
        assert_eq!(okm.len(), len, "{name}: L");

        let mut out = vec![0u8; len];
        hkdf_sha256(&salt, &ikm, &info, &mut out).unwrap();
        assert_eq!(out, okm, "{name}: OKM");

        // `Prk` has no accessor for its bytes, so its extraction is checked indirectly: the PRK it extracts
        // must expand exactly like the RFC's PRK taken as a secret.
        let rfc_prk = Prk::from_secret(Secret32::try_from(prk.as_slice()).unwrap());
        let extracted = Prk::extract(&salt, &ikm);
        let (mut from_rfc, mut from_extract) = ([0u8; 64], [0u8; 64]);
        rfc_prk
            .expand_label("tessera/v1/test", b"rfc5869", &mut from_rfc)
            .unwrap();
        extracted
            .expand_label("tessera/v1/test", b"rfc5869", &mut from_extract)
            .unwrap();
        assert_eq!(from_extract, from_rfc, "{name}: PRK");
    }
    // Test cases 1, 2 and 3.
    assert_eq!(vectors.len(), 3, "rfc5869 vectors");
}

/// RFC 8032 §7.1, TEST 1 to TEST 3: the seed gives the public key and exactly the signature, which verifies;
/// flipping any single bit of the signature makes it fail.
#[test]
fn rfc8032_ed25519() {
    let vectors = load(include_str!("data/rfc8032_ed25519.json"));
    for vector in &vectors {
        let name = field_str(vector, "name");
        let seed = Secret32::try_from(hex_field(vector, "secret_key").as_slice()).unwrap();
        let public = hex_field(vector, "public_key");
        let message = hex_field(vector, "message");
        let signature = hex_field(vector, "signature");

        let key = SigningKey::from_seed(seed);
        assert_eq!(
            key.verifying_key().as_bytes().as_slice(),
            public,
            "{name}: public key"
        );
        let signed = key.sign(&message);
        assert_eq!(signed.as_bytes().as_slice(), signature, "{name}: signature");

        let verifying = VerifyingKey::try_from(public.as_slice()).unwrap();
        verifying
            .verify(
                &message,
                &Signature::try_from(signature.as_slice()).unwrap(),
            )
            .unwrap();

        for bit in 0..signature.len() * 8 {
            let mut flipped = signature.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            let flipped = Signature::try_from(flipped.as_slice()).unwrap();
            assert!(
                matches!(verifying.verify(&message, &flipped), Err(Error::Crypto)),
                "{name}: signature with bit {bit} flipped verifies"
            );
        }
    }
    // TEST 1, TEST 2 and TEST 3.
    assert_eq!(vectors.len(), 3, "rfc8032 vectors");
}

/// The `vectors` array of a data file.
fn load(json: &str) -> Vec<Value> {
    let file: Value = serde_json::from_str(json).unwrap();
    assert!(
        file["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("RFC ")),
        "data file names its RFC"
    );
    file["vectors"].as_array().unwrap().clone()
}

fn field_str<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field]
        .as_str()
        .unwrap_or_else(|| panic!("missing string field {field}"))
}

fn hex_field(vector: &Value, field: &str) -> Vec<u8> {
    hex::decode(field_str(vector, field)).unwrap()
}
