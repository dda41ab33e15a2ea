//! PostgreSQL for the test step: the PostgreSQL tests start a throwaway cluster with the machine's server binaries
//! (tessera-store's `conformance::server_url`), so CI installs them when they are missing, as it installs cargo-deny.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// The variable that points the tests at an existing server instead (then nothing is installed).
const TEST_POSTGRES_ENV: &str = "TESSERA_TEST_POSTGRES";

/// Installs the Debian package `postgresql` when no `initdb` is found where the tests look for it (`pg_config
/// --bindir`, `/usr/lib/postgresql/*/bin`, `PATH`) and `TESSERA_TEST_POSTGRES` is unset: `apt-get update` once, then
/// `apt-get install -y postgresql`, non-interactively (through `sudo -n` when not root).
pub(crate) fn ensure_installed() -> Result<()> {
    if std::env::var_os(TEST_POSTGRES_ENV).is_some_and(|url| !url.is_empty()) {
        return Ok(());
    }
    if let Some(dir) = bindir() {
        println!("PostgreSQL server binaries: {}", dir.display());
        return Ok(());
    }
    println!(
        "PostgreSQL is not installed; installing the Debian package `postgresql` for the PostgreSQL tests"
    );
    let root = util::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let apt_get = |args: &[&str]| {
        let mut command = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        command.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    util::run(&mut apt_get(&["update"])).context("`apt-get update` failed")?;
    util::run(&mut apt_get(&[
        "install",
        "-y",
        "--no-install-recommends",
        "postgresql",
    ]))
    .context(
        "could not install PostgreSQL (`apt-get install postgresql`); install it by hand, or set \
         TESSERA_TEST_POSTGRES to the URL of a server whose user may create databases",
    )?;
    if bindir().is_none() {
        bail!(
            "the `postgresql` package is installed but no initdb was found in /usr/lib/postgresql/*/bin"
        );
    }
    Ok(())
}

/// Where the PostgreSQL server binaries are, as the tests look for them.
fn bindir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(dir) = util::output(Command::new("pg_config").arg("--bindir")) {
        let dir = PathBuf::from(dir.trim());
        if has_initdb(&dir) {
            return Some(dir);
        }
    }
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .find(|dir| has_initdb(dir));
    if installed.is_some() {
        return installed;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).find(|dir| has_initdb(dir))
}
