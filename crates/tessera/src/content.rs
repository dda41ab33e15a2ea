//! Default encryption manifests: a type without a registered manifest has every top-level field encrypted.

use serde_json::{Map, Value};
use tessera_sharing::EncryptionManifest;

use crate::error::{Error, Result};

/// The manifest that encrypts every top-level field of `document`: the default for types without a manifest, so
/// that forgetting one never publishes a field.
///
/// # Errors
/// [`ErrorKind::Invalid`] for a field name a manifest path cannot name (one holding `.`, `[`, `]`, `{` or `}`):
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
