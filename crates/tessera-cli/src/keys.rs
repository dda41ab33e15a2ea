//! Owner key files on disk: read (protected by a passphrase, or in clear with a warning), written readable by the
//! owner only, beside their place first and then put in place, and protected by `tessera keys protect`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};
use tempfile::NamedTempFile;
use tessera::{OwnerKeys, SecretString};

use crate::cli::{KdfArgs, ProtectArgs};

/// The environment variable a key file's passphrase is read from (otherwise it is asked on the terminal).
pub(crate) const PASSPHRASE_ENV: &str = "TESSERA_PASSPHRASE";

pub(crate) fn read_key_file(path: &Path) -> anyhow::Result<OwnerKeys> {
    let text = SecretString::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    warn_if_readable_by_others(path);
    if tessera::is_protected_key_file(text.expose_secret()) {
        let passphrase = passphrase(&format!("passphrase of {}: ", path.display()), false)?;
        return tessera::decode_protected_key_file(text.expose_secret(), &passphrase)
            .with_context(|| format!("cannot open the key file {}", path.display()));
    }
    let keys = tessera::decode_key_file(text.expose_secret())
        .with_context(|| format!("{} is not a usable key file", path.display()))?;
    eprintln!(
        "warning: {} holds its private key unencrypted; protect it with a passphrase: tessera keys protect -k {}",
        path.display(),
        path.display()
    );
    Ok(keys)
}

/// The passphrase of a key file: from [`PASSPHRASE_ENV`], or asked on the terminal (twice if `confirm`).
pub(crate) fn passphrase(prompt: &str, confirm: bool) -> anyhow::Result<SecretString> {
    if let Ok(value) = std::env::var(PASSPHRASE_ENV)
        && !value.is_empty()
    {
        return Ok(SecretString::new(value));
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "a passphrase is needed: set {PASSPHRASE_ENV}, or run the command in a terminal to be asked for it"
        );
    }
    let first = SecretString::new(rpassword::prompt_password(prompt)?);
    if confirm {
        let again = SecretString::new(rpassword::prompt_password("the same passphrase again: ")?);
        if !first.ct_eq(&again) {
            bail!("the two passphrases differ; nothing was changed");
        }
    }
    Ok(first)
}

/// `tessera keys protect`: seals the private key of a plaintext key file under a passphrase, in place.
pub(crate) fn protect(args: &ProtectArgs) -> anyhow::Result<()> {
    let path = &args.key;
    let text = SecretString::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key file {}", path.display()))?,
    );
    if tessera::is_protected_key_file(text.expose_secret()) {
        bail!("{} is already protected by a passphrase", path.display());
    }
    let keys = tessera::decode_key_file(text.expose_secret())
        .with_context(|| format!("{} is not a usable key file", path.display()))?;
    let passphrase = passphrase(&format!("new passphrase of {}: ", path.display()), true)?;
    let protected = protected_text(&keys, &passphrase, path, &args.kdf)?;
    let pending = write_pending(path, &protected)?;
    persist(pending, path, true)
}

/// The text of `keys`' key file (to be written at `path`) protected by `passphrase`, read back once so that a
/// file that would not open is never written.
pub(crate) fn protected_text(
    keys: &OwnerKeys,
    passphrase: &SecretString,
    path: &Path,
    kdf: &KdfArgs,
) -> anyhow::Result<SecretString> {
    let params = tessera::KdfParams::new(kdf.memory_kib, kdf.iterations, 1)?;
    let protected = tessera::encode_protected_key_file(keys, passphrase, params)?;
    let reopened = tessera::decode_protected_key_file(protected.expose_secret(), passphrase)?;
    if reopened.owner() != keys.owner() {
        bail!(
            "the protected key file does not read back; {} is not written",
            path.display()
        );
    }
    Ok(protected)
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
