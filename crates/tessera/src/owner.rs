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
/// [`crate::ErrorKind::Invalid`] if the header or the key is malformed, or if the file is protected by a
/// passphrase (read it with [`decode_protected_key_file`](crate::decode_protected_key_file)).
pub fn decode_key_file(text: &str) -> Result<OwnerKeys> {
    if crate::key_file::is_protected_key_file(text) {
        return Err(Error::invalid(
            "the key file is protected by a passphrase; read it with decode_protected_key_file",
        ));
    }
    let KeyFileHeader {
        owner,
        created,
        rest,
    } = read_header(text, KEY_FILE_MAGIC)?;
    let pem = rest
        .find("-----BEGIN")
        .and_then(|at| rest.get(at..))
        .ok_or_else(|| Error::invalid("the key file holds no PEM private key"))?;
    let rsa = RsaPrivateKey::from_pkcs8_pem(pem)?;
    Ok(OwnerKeys::derive(owner, rsa, created)?)
}

/// The header of a key file: the owner id and the creation time of its first bundle, and what follows them.
pub(crate) struct KeyFileHeader<'a> {
    pub(crate) owner: OwnerId,
    pub(crate) created: u64,
    pub(crate) rest: &'a str,
}

/// Reads the header of a key file whose first line is `magic`: `name: value` lines up to a PEM block, a
/// `protected:` line or a line that is not `name: value`.
pub(crate) fn read_header<'a>(text: &'a str, magic: &str) -> Result<KeyFileHeader<'a>> {
    let text = text.trim_start();
    let Some(body) = text.strip_prefix(magic) else {
        return Err(Error::invalid(format!(
            "not a Tessera owner key file (expected `{magic}` first)"
        )));
    };
    let mut owner = None;
    let mut created = None;
    let mut rest = body;
    for line in body.split_inclusive('\n') {
        let field = line.trim();
        match field
            .split_once(':')
            .map(|(name, value)| (name.trim(), value))
        {
            _ if field.is_empty() => {}
            _ if field.starts_with("-----") => break,
            Some(("owner", value)) => owner = value.trim().parse::<OwnerId>().ok(),
            Some(("created", value)) => created = value.trim().parse::<u64>().ok(),
            Some(("protected", _)) | None => break,
            // A header line of a later minor version: ignored.
            Some(_) => {}
        }
        rest = rest.get(line.len()..).unwrap_or_default();
    }
    let owner = owner.ok_or_else(|| Error::invalid("the key file names no valid owner id"))?;
    let created =
        created.ok_or_else(|| Error::invalid("the key file names no valid creation time"))?;
    Ok(KeyFileHeader {
        owner,
        created,
        rest,
    })
}
