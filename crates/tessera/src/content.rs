//! Encryption manifests as the session applies them: a type without a registered manifest has every top-level field
//! encrypted, and a registered one must match the record it encrypts.

use serde_json::{Map, Value};
use tessera_keys::EntityType;
use tessera_sharing::EncryptionManifest;

use crate::error::{Error, Result};

/// The manifest that encrypts every top-level field of `document`: the default for types without a manifest, so
/// that forgetting one never publishes a field.
///
/// # Errors
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) for a field name a manifest path cannot name (one holding `.`, `[`, `]`, `{` or `}`):
/// such a field would silently stay public, so the caller must register a manifest for the type instead.
pub(crate) fn encrypt_everything(document: &Map<String, Value>) -> Result<EncryptionManifest> {
    if let Some(name) = document
        .keys()
        .find(|name| name.is_empty() || name.contains(['.', '[', ']', '{', '}']))
    {
        return Err(Error::invalid(format!(
            "field `{name}` cannot be named in an encryption manifest; register a manifest for this type"
        )));
    }
    EncryptionManifest::new(document.keys().map(String::as_str)).map_err(Error::from)
}

/// The manifest a write of `document` uses: the type's `registered` one, checked against `document`, or one that
/// encrypts every field of it.
///
/// # Errors
/// As [`check_manifest`] and [`encrypt_everything`].
pub(crate) fn manifest_for(
    registered: Option<EncryptionManifest>,
    entity_type: &EntityType,
    document: &Map<String, Value>,
) -> Result<EncryptionManifest> {
    match registered {
        Some(manifest) => {
            check_manifest(entity_type, &manifest, document)?;
            Ok(manifest)
        }
        None => encrypt_everything(document),
    }
}

/// Checks that every path of `manifest` names a field of `document`.
///
/// # Errors
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) naming the first path that matches nothing, the record's top-level field names (never
/// their values) and what to do; the record is not written.
fn check_manifest(
    entity_type: &EntityType,
    manifest: &EncryptionManifest,
    document: &Map<String, Value>,
) -> Result<()> {
    let Some(path) = manifest.unmatched(document).next() else {
        return Ok(());
    };
    let fields: Vec<String> = document.keys().map(|name| format!("`{name}`")).collect();
    let fields = if fields.is_empty() {
        "it has none".to_owned()
    } else {
        format!("its top-level fields are {}", fields.join(", "))
    };
    Err(Error::invalid(format!(
        "the encryption manifest path `{}` matches no field of this {entity_type} record ({fields}); \
         nothing was written, because the field it was meant to encrypt would have been stored in clear. \
         Correct the path or remove it from the manifest",
        path.as_str()
    )))
}
