#![doc = include_str!("../README.md")]

mod aead;
mod anon_box;
mod error;
mod hash;
mod kdf;
mod random;
mod rsa_oaep;
mod secret;
mod signature;
pub mod stream;

pub use crate::aead::{
    ALG_AES_256_GCM, AeadBackend, AeadKey, KEY_LEN, NONCE_LEN, SEALED_BOX_HEADER_LEN,
    SEALED_BOX_OVERHEAD, SEALED_BOX_VERSION, TAG_LEN,
};
pub use crate::anon_box::{ANON_BOX_OVERHEAD, ANON_BOX_VERSION, seal_to};
pub use crate::error::{Error, Result};
pub use crate::hash::{
    HmacSha256Key, SHA256_LEN, Sha256, constant_time_eq, hmac_sha256, sha256, verify_hmac_sha256,
};
pub use crate::kdf::{MAX_OUTPUT_LEN as HKDF_MAX_OUTPUT_LEN, Prk, hkdf_sha256};
pub use crate::random::{NonceBatch, array as random_array, fill as fill_random};
pub use crate::rsa_oaep::{
    ALG_RSA_OAEP_SHA256, MAX_RSA_BITS, MIN_RSA_BITS, RSA_PUBLIC_EXPONENT, RsaKeySize,
    RsaPrivateKey, RsaPublicKey, WRAPPED_KEY_VERSION, WrappedKey,
};
pub use crate::secret::{Secret32, SecretBytes, SecretString};
pub use crate::signature::{
    PUBLIC_KEY_LEN as ED25519_PUBLIC_KEY_LEN, SIGNATURE_LEN as ED25519_SIGNATURE_LEN,
};
pub use crate::signature::{Signature, SigningKey, VerifyingKey};

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AeadKey>();
    assert_send_sync::<RsaPrivateKey>();
    assert_send_sync::<RsaPublicKey>();
    assert_send_sync::<WrappedKey>();
    assert_send_sync::<SigningKey>();
    assert_send_sync::<VerifyingKey>();
    assert_send_sync::<Signature>();
    assert_send_sync::<Prk>();
    assert_send_sync::<SecretBytes>();
    assert_send_sync::<Secret32>();
    assert_send_sync::<SecretString>();
    assert_send_sync::<Error>();
    assert_send_sync::<stream::StreamSealer>();
    assert_send_sync::<stream::StreamOpener>();
};
