//! New owners (keys and the public record the server stores) and the owner key file.

use crate::client::Client;
use tessera_keys::{FormatVersion, Owner, OwnerId, OwnerKeys, OwnerKind, unix_now};
use tessera_primitives::{RsaKeySize, RsaPrivateKey, SecretString};

use crate::error::{Error, Result};

/// First line of an owner key file, naming its format and version.
const KEY_FILE_MAGIC: &str = "tessera-owner-key: 1";

/// Generates a new owner: its keys (the private key is its only secret) and its public record, to register with
/// the server. `parent` is the owner registering it, if any (an HCP creating a patient).
///
/// # Errors
/// [`crate::ErrorKind::Internal`] if key generation or randomness fails.
pub fn generate_owner(
    kind: OwnerKind,
    parent: Option<OwnerId>,
    size: RsaKeySize,
) -> Result<(OwnerKeys, Owner)> {
    let keys = OwnerKeys::generate(OwnerId::generate()?, size, unix_now())?;
    let record = Owner {
        version: FormatVersion::V2,
        id: keys.owner(),
        kind,
        parent,
        bundles: vec![keys.bundle()?],
    };
    Ok((keys, record))
}

/// Generates a top-level owner and registers it with the server's administrator token.
/// To register an owner below a logged-in one, use [`crate::Session::register_owner`].
///
/// # Errors
/// [`crate::ErrorKind::Unauthorized`] or [`crate::ErrorKind::Forbidden`] with a wrong token;
/// [`crate::ErrorKind::Transport`] if the server cannot be reached.
pub async fn register_owner(
    client: &Client,
    admin_token: &str,
    kind: OwnerKind,
    size: RsaKeySize,
) -> Result<OwnerKeys> {
    let (keys, record) = generate_owner(kind, None, size)?;
    register_generated(client, admin_token, &record).await?;
    Ok(keys)
}

/// Registers a top-level owner generated with [`generate_owner`] (with no parent) with the server's administrator
/// token, for a caller that saves the new keys before registering them (so that no owner exists whose key is lost).
///
/// # Errors
/// As [`register_owner`].
pub async fn register_generated(client: &Client, admin_token: &str, record: &Owner) -> Result<()> {
    client
        .inner()
        .register_owner_as_admin(admin_token, record)
        .await
        .map_err(|error| match Error::from_client(error) {
            refused if refused.is_unauthorized() || refused.is_forbidden() => refused.explained(
                "the server refused the administrator token: it is not the one the server was started with \
                 (TESSERA_ADMIN_TOKEN); nothing was registered",
            ),
            other => other,
        })
        .map(drop)
}

/// Writes an owner's keys as a key file: a small header with the owner id and the key bundle's creation time
/// (both public, needed to re-derive the bundle and its fingerprint), then the RSA private key as PKCS#8 PEM.
///
/// ```text
/// tessera-owner-key: 1
/// owner: 0b6a4e4c-1d35-4f57-9f5a-2c4e8c0b6a11
/// created: 1732390000
/// -----BEGIN PRIVATE KEY-----
/// …
/// -----END PRIVATE KEY-----
/// ```
///
/// # Security
/// The text holds the owner's only secret (principle P5): store it with owner-only permissions.
///
/// # Errors
/// [`crate::ErrorKind::Internal`] if the key cannot be encoded.
pub fn encode_key_file(keys: &OwnerKeys) -> Result<SecretString> {
    let pem = keys.rsa_private_key().to_pkcs8_pem()?;
    let created = keys.bundle()?.created();
    Ok(SecretString::new(format!(
        "{KEY_FILE_MAGIC}\nowner: {}\ncreated: {created}\n{}",
        keys.owner(),
        pem.expose_secret()
    )))
}

/// Reads a key file written by [`encode_key_file`] and re-derives every key of the owner from it.
///
/// # Errors
/// [`crate::ErrorKind::Invalid`] if the header or the key is malformed.
pub fn decode_key_file(text: &str) -> Result<OwnerKeys> {
    let (header, pem) = text
        .find("-----BEGIN")
        .map(|at| text.split_at(at))
        .ok_or_else(|| Error::invalid("the key file holds no PEM private key"))?;
    let mut lines = header
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty());
    if lines.next() != Some(KEY_FILE_MAGIC) {
        return Err(Error::invalid(format!(
            "not a Tessera owner key file (expected `{KEY_FILE_MAGIC}` first)"
        )));
    }
    let mut owner = None;
    let mut created = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Error::invalid("malformed key file header line"));
        };
        match name.trim() {
            "owner" => owner = value.trim().parse::<OwnerId>().ok(),
            "created" => created = value.trim().parse::<u64>().ok(),
            _ => {}
        }
    }
    let owner = owner.ok_or_else(|| Error::invalid("the key file names no valid owner id"))?;
    let created =
        created.ok_or_else(|| Error::invalid("the key file names no valid creation time"))?;
    let rsa = RsaPrivateKey::from_pkcs8_pem(pem)?;
    Ok(OwnerKeys::derive(owner, rsa, created)?)
}
