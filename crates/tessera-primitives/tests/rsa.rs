//! RSA-OAEP key wrapping: generation, encodings, import policy and wrap/unwrap behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use tessera_primitives::{Error, RsaKeySize, RsaPrivateKey, RsaPublicKey, WrappedKey};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/data/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn key2048() -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(&fixture("rsa2048.pem")).unwrap()
}

#[test]
fn generates_every_supported_size() {
    for size in [
        RsaKeySize::Bits2048,
        RsaKeySize::Bits3072,
        RsaKeySize::Bits4096,
    ] {
        let key = RsaPrivateKey::generate(size).unwrap();
        assert_eq!(key.bits(), size.bits());
        assert_eq!(key.public_key().bits(), size.bits());
        let wrapped = key.public_key().wrap(b"secret", b"label").unwrap();
        assert_eq!(
            key.unwrap(&wrapped, b"label").unwrap().expose_secret(),
            b"secret"
        );
    }
    assert_eq!(RsaKeySize::default(), RsaKeySize::Bits2048);
}

#[test]
fn imports_fixture_sizes_in_pem_and_der() {
    for (name, bits) in [("rsa2048", 2048), ("rsa3072", 3072), ("rsa4096", 4096)] {
        let private = RsaPrivateKey::from_pkcs8_pem(&fixture(&format!("{name}.pem"))).unwrap();
        let public = RsaPublicKey::from_spki_pem(&fixture(&format!("{name}.pub.pem"))).unwrap();
        assert_eq!(private.bits(), bits);
        assert_eq!(private.public_key(), public);

        // DER and PEM round trips give back the same keys.
        let der = private.to_pkcs8_der().unwrap();
        let again = RsaPrivateKey::from_pkcs8_der(der.expose_secret()).unwrap();
        assert_eq!(again.public_key(), public);
        let pem = private.to_pkcs8_pem().unwrap();
        assert!(
            pem.expose_secret()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert_eq!(
            RsaPrivateKey::from_pkcs8_pem(pem.expose_secret())
                .unwrap()
                .public_key(),
            public
        );
        let spki = public.to_spki_der().unwrap();
        assert_eq!(RsaPublicKey::from_spki_der(&spki).unwrap(), public);
        let spki_pem = public.to_spki_pem().unwrap();
        assert_eq!(spki_pem, fixture(&format!("{name}.pub.pem")));
        assert_eq!(RsaPublicKey::from_spki_pem(&spki_pem).unwrap(), public);

        let wrapped = public.wrap(&[9; 32], b"ctx").unwrap();
        assert_eq!(wrapped.rsa_ciphertext().len(), bits / 8);
        assert_eq!(
            private.unwrap(&wrapped, b"ctx").unwrap().expose_secret(),
            &[9; 32]
        );
    }
}

#[test]
fn import_rejects_small_keys_with_a_clear_error() {
    let private = RsaPrivateKey::from_pkcs8_pem(&fixture("rsa1024.pem"));
    assert!(
        matches!(private, Err(Error::RsaKeyTooSmall { bits: 1024 })),
        "{private:?}"
    );
    let public = RsaPublicKey::from_spki_pem(&fixture("rsa1024.pub.pem"));
    assert!(
        matches!(public, Err(Error::RsaKeyTooSmall { bits: 1024 })),
        "{public:?}"
    );
    let message = public.unwrap_err().to_string();
    assert!(
        message.contains("1024") && message.contains("2048"),
        "{message}"
    );
}

#[test]
fn import_rejects_other_exponents_with_a_clear_error() {
    assert!(matches!(
        RsaPrivateKey::from_pkcs8_pem(&fixture("rsa2048_e3.pem")),
        Err(Error::RsaExponent)
    ));
    let public = RsaPublicKey::from_spki_pem(&fixture("rsa2048_e3.pub.pem"));
    assert!(matches!(public, Err(Error::RsaExponent)));
    assert!(public.unwrap_err().to_string().contains("65537"));
}

#[test]
fn import_rejects_oversized_and_malformed_keys() {
    assert!(RsaPrivateKey::from_pkcs8_pem(&fixture("rsa8192.pem")).is_err());
    assert!(RsaPublicKey::from_spki_pem(&fixture("rsa8192.pub.pem")).is_err());
    assert!(matches!(
        RsaPrivateKey::from_pkcs8_der(b"not a key"),
        Err(Error::KeyEncoding { kind: "pkcs8 der" })
    ));
    assert!(matches!(
        RsaPublicKey::from_spki_der(&[]),
        Err(Error::KeyEncoding { kind: "spki der" })
    ));
    // A public key is not a private key, and the other way round.
    assert!(matches!(
        RsaPrivateKey::from_pkcs8_pem(&fixture("rsa2048.pub.pem")),
        Err(Error::KeyEncoding { .. })
    ));
    assert!(matches!(
        RsaPublicKey::from_spki_pem(&fixture("rsa2048.pem")),
        Err(Error::KeyEncoding { .. })
    ));
}

#[test]
fn unwrap_needs_the_same_label_and_key() {
    let key = key2048();
    let wrapped = key
        .public_key()
        .wrap(b"exchange secret", b"id|fingerprint")
        .unwrap();
    assert_eq!(
        key.unwrap(&wrapped, b"id|fingerprint")
            .unwrap()
            .expose_secret(),
        b"exchange secret"
    );
    assert!(matches!(
        key.unwrap(&wrapped, b"id|fingerprinT"),
        Err(Error::Crypto)
    ));
    assert!(matches!(key.unwrap(&wrapped, b""), Err(Error::Crypto)));
    let other = RsaPrivateKey::from_pkcs8_pem(&fixture("rsa3072.pem")).unwrap();
    assert!(matches!(
        other.unwrap(&wrapped, b"id|fingerprint"),
        Err(Error::Crypto)
    ));
    // OAEP is randomised: two wraps of one secret differ.
    assert_ne!(
        wrapped,
        key.public_key()
            .wrap(b"exchange secret", b"id|fingerprint")
            .unwrap()
    );
}

#[test]
fn wrap_bounds_the_secret_length() {
    let public = key2048().public_key();
    assert_eq!(public.max_wrap_len(), 190);
    assert!(public.wrap(&[1; 190], b"").is_ok());
    assert!(matches!(
        public.wrap(&[1; 191], b""),
        Err(Error::Length {
            expected: 190,
            actual: 191,
            ..
        })
    ));
}

#[test]
fn unwrap_rejects_malformed_frames_opaquely() {
    let key = key2048();
    let good = key.public_key().wrap(b"k", b"").unwrap();
    let mut other_version = good.as_bytes().to_vec();
    other_version[0] = 2;
    let mut other_alg = good.as_bytes().to_vec();
    other_alg[1] = 9;
    for bytes in [
        vec![],
        vec![1],
        vec![1, 1],
        other_version,
        other_alg,
        good.as_bytes()[..100].to_vec(),
    ] {
        assert!(matches!(
            key.unwrap(&WrappedKey::from_bytes(bytes), b""),
            Err(Error::Crypto)
        ));
    }
}

#[test]
fn private_keys_never_print() {
    assert_eq!(format!("{:?}", key2048()), "[redacted]");
    assert_eq!(
        format!("{:?}", key2048().to_pkcs8_pem().unwrap()),
        "[redacted]"
    );
    assert_eq!(
        format!("{:?}", key2048().public_key()),
        "RsaPublicKey(2048 bits)"
    );
}

#[test]
fn canonical_bytes_do_not_depend_on_the_encoding_tool() {
    // The same key from Python's PKCS#8 and from our own re-encoding gives the same canonical bytes.
    let theirs = key2048();
    let ours =
        RsaPrivateKey::from_pkcs8_der(theirs.to_pkcs8_der().unwrap().expose_secret()).unwrap();
    let canonical = theirs.to_canonical_bytes().unwrap();
    assert!(canonical.ct_eq(&ours.to_canonical_bytes().unwrap()));
    assert_eq!(canonical.len(), 2 + 2 * 256);
    assert_eq!(&canonical.expose_secret()[..2], &256u16.to_be_bytes());
    // The modulus follows the length, then a prime that is half the modulus size, left-padded.
    let spki = theirs.public_key().to_spki_der().unwrap();
    let modulus = &canonical.expose_secret()[2..258];
    assert!(spki.windows(256).any(|w| w == modulus));
    assert!(
        canonical.expose_secret()[258..258 + 128]
            .iter()
            .all(|b| *b == 0)
    );
    assert!(
        !canonical.ct_eq(
            &RsaPrivateKey::from_pkcs8_pem(&fixture("rsa3072.pem"))
                .unwrap()
                .to_canonical_bytes()
                .unwrap()
        )
    );
}
