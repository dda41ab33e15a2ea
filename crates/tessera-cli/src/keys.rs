//! Owner key files on disk: read (with a warning when others may read them), written readable by the owner only,
//! beside their place first and then put in place.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use tempfile::NamedTempFile;
use tessera::{OwnerKeys, SecretString};

pub(crate) fn read_key_file(path: &Path) -> anyhow::Result<OwnerKeys> {
    let text = SecretString::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    warn_if_readable_by_others(path);
    tessera::decode_key_file(text.expose_secret())
        .with_context(|| format!("{} is not a usable key file", path.display()))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "warning: {} is accessible to other users; it holds a private key (chmod 600 it)",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// Writes `text` to a new file beside `out` (readable and writable by its owner only), so that a place that cannot be
/// written to fails before anything else is done; [`persist`] puts it at `out`. Dropped, the file is removed.
pub(crate) fn write_pending(out: &Path, text: &SecretString) -> anyhow::Result<NamedTempFile> {
    let dir = out
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut file = NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write the key file {}", out.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.expose_secret().as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .with_context(|| format!("cannot write the key file {}", out.display()))?;
    Ok(file)
}

/// Puts a file written by [`write_pending`] at `out`, replacing a file there only if `force`.
pub(crate) fn persist(pending: NamedTempFile, out: &Path, force: bool) -> anyhow::Result<()> {
    let persisted = if force {
        pending.persist(out).map(drop)
    } else {
        pending.persist_noclobber(out).map(drop)
    };
    persisted.with_context(|| format!("cannot write the key file {}", out.display()))
}
