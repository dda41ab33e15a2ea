//! Owner key files protected by a passphrase: Argon2id (RFC 9106) turns the passphrase into an AES-256-GCM key that
//! seals the private key. The layout is in docs/formats.md ("Owner key file").

use argon2::{Algorithm, Argon2, Params, Version};
use tessera_keys::{OwnerId, OwnerKeys};
use tessera_primitives::{AeadKey, Secret32, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::owner::{KeyFileHeader, read_header};

/// First line of a passphrase-protected owner key file.
pub(crate) const PROTECTED_MAGIC: &str = "tessera-owner-key: 2";

/// The version byte of the protected blob: Argon2id v0x13, then AES-256-GCM.
const PROTECTION_V1: u8 = 1;
/// Length of the Argon2 salt.
const SALT_LEN: usize = 16;
/// Version, memory, iterations, lanes, salt: the bytes before the sealed key.
const PARAMS_LEN: usize = 1 + 4 + 4 + 4 + SALT_LEN;
/// Associated-data label of the sealed private key.
const AAD_LABEL: &[u8] = b"tessera/v1/key-file";

/// The cost of deriving a key file's key from its passphrase (Argon2id, RFC 9106).
///
/// The default, 64 MiB and 3 passes on one lane, is RFC 9106's second recommended option with one lane: about a
/// quarter of a second on a laptop, and as much memory per guess for whoever tries passphrases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KdfParams {
    /// Memory, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes (parallelism).
    pub lanes: u32,
}

impl KdfParams {
    /// The most memory a key file may ask for (1 GiB), so that a hostile file cannot exhaust the reader's.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// The most passes a key file may ask for.
    pub const MAX_ITERATIONS: u32 = 64;
    /// The most lanes a key file may ask for.
    pub const MAX_LANES: u32 = 16;

    /// These costs.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`] if Argon2 refuses them (less than 8 KiB per lane, no pass, no lane) or they exceed
    /// the maxima above.
    pub fn new(memory_kib: u32, iterations: u32, lanes: u32) -> Result<Self> {
        let params = Self {
            memory_kib,
            iterations,
            lanes,
        };
        params.argon2()?;
        Ok(params)
    }

    fn argon2(self) -> Result<Argon2<'static>> {
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.iterations > Self::MAX_ITERATIONS
            || self.lanes > Self::MAX_LANES
        {
            return Err(Error::invalid(
                "the key file's Argon2 costs exceed what this reader accepts",
            ));
        }
        let params = Params::new(self.memory_kib, self.iterations, self.lanes, Some(32))
            .map_err(|error| Error::invalid(format!("unusable Argon2 costs: {error}")))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            lanes: 1,
        }
    }
}

/// Whether `text` is a passphrase-protected key file (read it with [`decode_protected_key_file`]).
pub fn is_protected_key_file(text: &str) -> bool {
    text.trim_start().starts_with(PROTECTED_MAGIC)
}

/// Writes an owner's keys as a key file whose private key is sealed under `passphrase`: the header of
/// [`encode_key_file`](crate::encode_key_file), then the sealed key.
///
/// # Security
/// The passphrase is the only protection of the owner's one secret once the file is copied: choose a long one.
/// The file should still be readable by its owner only.
///
/// # Errors
/// [`ErrorKind::Invalid`] for an empty passphrase; [`ErrorKind::Internal`] if randomness or encoding fails.
pub fn encode_protected_key_file(
    keys: &OwnerKeys,
    passphrase: &SecretString,
    params: KdfParams,
) -> Result<SecretString> {
    if passphrase.expose_secret().is_empty() {
        return Err(Error::invalid("the passphrase is empty"));
    }
    let created = keys.bundle()?.created();
    let salt: [u8; SALT_LEN] = tessera_primitives::random_array()?;
    let mut blob = Vec::with_capacity(PARAMS_LEN);
    blob.push(PROTECTION_V1);
    blob.extend_from_slice(&params.memory_kib.to_be_bytes());
    blob.extend_from_slice(&params.iterations.to_be_bytes());
    blob.extend_from_slice(&params.lanes.to_be_bytes());
    blob.extend_from_slice(&salt);
    let key = derive_key(passphrase, &salt, params)?;
    let pem = keys.rsa_private_key().to_pkcs8_pem()?;
    let aad = aad(&blob, keys.owner(), created);
    let sealed = key.seal(pem.expose_secret().as_bytes(), &aad)?;
    blob.extend_from_slice(&sealed);
    Ok(SecretString::new(format!(
        "{PROTECTED_MAGIC}\nowner: {}\ncreated: {created}\nprotected: {}\n",
        keys.owner(),
        tessera_keys::wire::hex(&blob)
    )))
}

/// Reads a key file written by [`encode_protected_key_file`] with its passphrase.
///
/// # Errors
/// [`ErrorKind::Crypto`] if the passphrase is wrong or the file was altered (one answer for both);
/// [`ErrorKind::Invalid`] if the file is malformed or asks for more Argon2 memory or passes than
/// [`KdfParams`] allows.
pub fn decode_protected_key_file(text: &str, passphrase: &SecretString) -> Result<OwnerKeys> {
    let KeyFileHeader {
        owner,
        created,
        rest,
    } = read_header(text, PROTECTED_MAGIC)?;
    let hex = rest
        .lines()
        .map(str::trim)
        .find_map(|line| line.strip_prefix("protected:"))
        .ok_or_else(|| Error::invalid("the key file holds no `protected:` line"))?;
    let blob = tessera_keys::wire::unhex(hex.trim())
        .ok_or_else(|| Error::invalid("the key file's `protected:` line is not lowercase hex"))?;
    let (params_bytes, sealed) = blob
        .split_at_checked(PARAMS_LEN)
        .ok_or_else(|| Error::invalid("the key file's protected key is truncated"))?;
    let (version, costs) = params_bytes
        .split_first()
        .ok_or_else(|| Error::invalid("the key file's protected key is truncated"))?;
    if *version != PROTECTION_V1 {
        return Err(Error::invalid(format!(
            "the key file's protection has version {version}, which this build does not read"
        )));
    }
    let word = |at: usize| -> u32 {
        let mut bytes = [0; 4];
        if let Some(slice) = costs.get(at..at + 4) {
            bytes.copy_from_slice(slice);
        }
        u32::from_be_bytes(bytes)
    };
    let params = KdfParams {
        memory_kib: word(0),
        iterations: word(4),
        lanes: word(8),
    };
    let salt = costs.get(12..).unwrap_or_default();
    let key = derive_key(passphrase, salt, params)?;
    let pem = key
        .open(sealed, &aad(params_bytes, owner, created))
        .map(Zeroizing::new)
        .map_err(|_| {
            Error::new(
                ErrorKind::Crypto,
                "the passphrase does not open this key file (or the file was altered)",
            )
        })?;
    let pem = std::str::from_utf8(&pem)
        .map_err(|_| Error::invalid("the key file's private key is not PEM"))?;
    let rsa = tessera_primitives::RsaPrivateKey::from_pkcs8_pem(pem)?;
    Ok(OwnerKeys::derive(owner, rsa, created)?)
}

/// The key-file key: Argon2id of the passphrase (its UTF-8 bytes) and the salt, 32 bytes.
fn derive_key(passphrase: &SecretString, salt: &[u8], params: KdfParams) -> Result<AeadKey> {
    let mut key = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase.expose_secret().as_bytes(), salt, key.as_mut())
        .map_err(|error| Error::invalid(format!("Argon2 failed: {error}")))?;
    Ok(AeadKey::from_secret(Secret32::from_bytes(*key)))
}

/// The associated data of the sealed key: label, 0x00, the version byte, costs and salt, the owner id and the
/// creation time of its first bundle, so that no header field can be changed without the key failing to open.
fn aad(params: &[u8], owner: OwnerId, created: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 1 + params.len() + 16 + 8);
    aad.extend_from_slice(AAD_LABEL);
    aad.push(0);
    aad.extend_from_slice(params);
    aad.extend_from_slice(owner.as_bytes());
    aad.extend_from_slice(&created.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Small costs, so that tests stay fast.
    fn cheap() -> KdfParams {
        KdfParams::new(64, 1, 1).unwrap()
    }

    fn keys() -> OwnerKeys {
        let kind = tessera_keys::OwnerKind::Hcp;
        crate::generate_owner(kind, None, tessera_primitives::RsaKeySize::Bits2048)
            .unwrap()
            .0
    }

    #[test]
    fn a_protected_key_file_opens_with_its_passphrase_only() {
        let keys = keys();
        let passphrase = SecretString::new("correct horse battery staple".into());
        let text = encode_protected_key_file(&keys, &passphrase, cheap()).unwrap();
        assert!(is_protected_key_file(text.expose_secret()));
        let pem = keys.rsa_private_key().to_pkcs8_pem().unwrap();
        let body = pem.expose_secret().lines().nth(1).unwrap();
        assert!(
            !text.expose_secret().contains(body),
            "the private key is in clear"
        );

        let opened = decode_protected_key_file(text.expose_secret(), &passphrase).unwrap();
        assert_eq!(opened.owner(), keys.owner());
        assert_eq!(opened.fingerprint(), keys.fingerprint());

        let wrong = SecretString::new("wrong".into());
        let error = decode_protected_key_file(text.expose_secret(), &wrong).unwrap_err();
        assert!(error.is_crypto());
        assert!(error.to_string().contains("passphrase"), "{error}");
        let error = crate::decode_key_file(text.expose_secret()).unwrap_err();
        assert!(
            error.to_string().contains("protected by a passphrase"),
            "{error}"
        );
        assert!(
            encode_protected_key_file(&keys, &SecretString::new(String::new()), cheap()).is_err()
        );
    }

    #[test]
    fn every_changed_byte_of_a_protected_key_file_is_refused() {
        let keys = keys();
        let passphrase = SecretString::new("p".into());
        let text = encode_protected_key_file(&keys, &passphrase, cheap()).unwrap();
        let text = text.expose_secret();
        // Another owner id or creation time in the header: the key does not open.
        let other = crate::OwnerId::from_bytes([7; 16]);
        let moved = text.replace(&keys.owner().to_string(), &other.to_string());
        assert!(decode_protected_key_file(&moved, &passphrase).is_err());
        let line = text.lines().find(|l| l.starts_with("protected:")).unwrap();
        let hex = line.trim_start_matches("protected:").trim();
        for at in (0..hex.len()).step_by(7) {
            let mut flipped: Vec<u8> = hex.bytes().collect();
            flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
            let flipped = text.replace(hex, std::str::from_utf8(&flipped).unwrap());
            assert!(
                decode_protected_key_file(&flipped, &passphrase).is_err(),
                "byte {at}"
            );
        }
        for cut in [0, 10, PARAMS_LEN * 2, hex.len() - 2] {
            let cut = text.replace(hex, &hex[..cut]);
            assert!(decode_protected_key_file(&cut, &passphrase).is_err());
        }
    }

    #[test]
    fn costs_out_of_bounds_are_refused() {
        assert!(KdfParams::new(4, 1, 1).is_err());
        assert!(KdfParams::new(64, 0, 1).is_err());
        assert!(KdfParams::new(KdfParams::MAX_MEMORY_KIB + 1, 1, 1).is_err());
        assert!(KdfParams::new(64, KdfParams::MAX_ITERATIONS + 1, 1).is_err());
        assert_eq!(KdfParams::default().memory_kib, 65536);
    }

    #[test]
    fn passphrases_do_not_print() {
        let passphrase = SecretString::new("hunter2".into());
        assert!(!format!("{passphrase:?}").contains("hunter2"));
    }
}
