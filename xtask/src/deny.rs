//! The cargo-deny step: prepares the offline RustSec advisory database, then runs every cargo-deny check offline.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{self, cargo};

/// The advisory database URL that deny.toml names in `db-urls`.
const DB_URL: &str = "https://github.com/rustsec/advisory-db";
/// The folder cargo-deny 0.20 opens for [`DB_URL`] under `db-path`: `advisory-db-` and the XXH64 hash
/// (seed 0xca80de71) of the lowercased URL, from `url_to_db_path` in cargo-deny; cargo-deny 0.20.2 names
/// it in its error when the folder is missing.
const DB_FOLDER: &str = "advisory-db-3157b0e258782691";
/// The offline copy of the database, relative to the repository root (see its README.md).
const SHARED_DB: &str = "../shared/advisory-db";
/// [`SHARED_DB`] relative to the folder that holds the repository, for messages without `..`.
const SHARED_DB_IN_PARENT: &str = "shared/advisory-db";
/// The cargo-deny release `deny.toml` follows.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// Prepares the advisory database (or reuses the prepared copy), then runs `cargo deny --offline --all-features check`.
pub(crate) fn run(root: &Path) -> Result<()> {
    if !util::succeeds(cargo(root).args(["deny", "--version"])) {
        // A fresh machine has no cargo-deny: install the version deny.toml is written for (about 3 minutes).
        println!("cargo-deny is not installed; installing cargo-deny {CARGO_DENY_VERSION}");
        util::run(cargo(root).args([
            "install",
            "--locked",
            &format!("cargo-deny@{CARGO_DENY_VERSION}"),
        ]))
        .context("could not install cargo-deny")?;
    }
    let db = prepare_db(root)?;
    fetch_all_platforms(root)?;
    util::run(cargo(root).args(["deny", "--offline", "--all-features", "check"])).with_context(|| {
        format!(
            "cargo-deny reported a problem above (if it could not open the advisory database or \
             called it stale, delete {} and run again to prepare it from {SHARED_DB})",
            db.display()
        )
    })
}

/// Downloads the sources of every crate in `Cargo.lock`, for every target platform (`cargo fetch --locked` without
/// `--target`).
///
/// cargo-deny runs `cargo metadata` over the whole graph, Windows- and macOS-only dependencies included, and with
/// `--offline` it cannot download them: on a machine whose cargo registry has only what a Linux build needed, it fails
/// with "failed to download `windows-sys`". Fetching crate sources is allowed; the advisory database stays the offline
/// copy. On a warm registry this is a no-op that takes well under a second.
fn fetch_all_platforms(root: &Path) -> Result<()> {
    util::run(cargo(root).args(["fetch", "--locked"])).context(
        "could not download the crate sources cargo-deny reads (is crates.io reachable? \
         does Cargo.lock match Cargo.toml? run `cargo fetch` to see)",
    )
}

/// Copies the shared database to `<db-path>/<DB_FOLDER>` as a git repository with one commit, unless a
/// copy of the same upstream commit is already there. Returns the folder.
fn prepare_db(root: &Path) -> Result<PathBuf> {
    let deny_toml =
        fs::read_to_string(root.join("deny.toml")).context("could not read deny.toml")?;
    let db_path = toml_string(&deny_toml, "db-path").context("deny.toml sets no `db-path`")?;
    if toml_string(&deny_toml, "db-urls").as_deref() != Some(DB_URL) {
        bail!(
            "deny.toml's `db-urls` must be [\"{DB_URL}\"]; xtask knows the folder name only for that URL"
        );
    }
    let db = root.join(db_path).join(DB_FOLDER);
    let source = root.parent().map_or_else(
        || root.join(SHARED_DB),
        |parent| parent.join(SHARED_DB_IN_PARENT),
    );
    let readme = fs::read_to_string(source.join("README.md")).with_context(|| {
        format!(
            "no offline advisory database at {} (expected README.md there)",
            source.display()
        )
    })?;
    let message = format!(
        "Offline copy of rustsec/advisory-db at {}",
        upstream_commit(&readme)
    );

    if is_prepared(&db, &message) {
        println!("reusing the advisory database at {}", db.display());
        return Ok(db);
    }

    println!(
        "preparing the advisory database at {} from {}",
        db.display(),
        source.display()
    );
    // Others may run CI in the same target folder at the same time: each process builds its own copy
    // and moves it into place, and whoever loses the race uses the winner's copy.
    let partial = db.with_extension(format!("partial-{}", std::process::id()));
    remove_dir_if_present(&partial)?;
    copy_dir(&source, &partial)?;
    git(&partial, &["init", "--quiet"])?;
    git(&partial, &["add", "--all"])?;
    git(
        &partial,
        &["commit", "--quiet", "--no-verify", "--message", &message],
    )?;
    if is_prepared(&db, &message) {
        // Another process prepared it meanwhile.
        remove_dir_if_present(&partial)?;
        return Ok(db);
    }
    remove_dir_if_present(&db)?;
    if let Err(err) = fs::rename(&partial, &db) {
        remove_dir_if_present(&partial)?;
        if !is_prepared(&db, &message) {
            return Err(err)
                .with_context(|| format!("could not move the prepared copy to {}", db.display()));
        }
    }
    Ok(db)
}

/// Whether `db` is a git repository whose commit is the copy of the current shared database.
fn is_prepared(db: &Path, message: &str) -> bool {
    db.join(".git").is_dir() && head_subject(db).as_deref() == Some(message)
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("could not remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The value of a `key = "value"` or `key = ["value"]` line, enough for the two keys xtask reads.
fn toml_string(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, value) = line.split_once('=')?;
        (name.trim() == key).then(|| {
            value
                .trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .trim_matches('"')
                .to_owned()
        })
    })
}

/// The upstream commit named in the shared copy's README (`as of commit <hex>`), or "an unknown commit".
fn upstream_commit(readme: &str) -> &str {
    readme
        .split_once("as of commit ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("an unknown commit")
}

fn head_subject(repo: &Path) -> Option<String> {
    let mut command = git_command(repo);
    command.args(["log", "-1", "--format=%s"]);
    util::output(&mut command)
        .ok()
        .map(|subject| subject.trim().to_owned())
}

/// Runs git in `repo` with a fixed identity and no signing, so it works on a machine without git configuration.
fn git(repo: &Path, args: &[&str]) -> Result<()> {
    let mut command = git_command(repo);
    command.args(args);
    util::output(&mut command).map(drop)
}

fn git_command(repo: &Path) -> Command {
    let mut command = Command::new("git");
    // A caller inside a git hook exports these; they would point git at the wrong repository.
    for var in ["GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"] {
        command.env_remove(var);
    }
    command.current_dir(repo).args([
        "-c",
        "user.name=tessera xtask",
        "-c",
        "user.email=xtask@tessera.invalid",
        "-c",
        "commit.gpgsign=false",
    ]);
    command
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to).with_context(|| format!("could not create {}", to.display()))?;
    let entries =
        fs::read_dir(from).with_context(|| format!("could not read {}", from.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("could not read {}", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).with_context(|| {
                format!(
                    "could not copy {} to {}",
                    entry.path().display(),
                    target.display()
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_keys_of_deny_toml() {
        let text = "[advisories]\ndb-path = \"target/advisory-dbs\"\ndb-urls = [\"https://github.com/rustsec/advisory-db\"]\n";
        assert_eq!(
            toml_string(text, "db-path").as_deref(),
            Some("target/advisory-dbs")
        );
        assert_eq!(toml_string(text, "db-urls").as_deref(), Some(DB_URL));
        assert_eq!(toml_string(text, "db"), None);
    }

    #[test]
    fn finds_the_upstream_commit() {
        assert_eq!(
            upstream_commit("as of commit bf5c0d2 (2026-08-21)."),
            "bf5c0d2"
        );
        assert_eq!(upstream_commit("no commit here"), "an unknown commit");
    }

    #[test]
    fn deny_toml_matches_what_xtask_expects() -> Result<()> {
        let text = fs::read_to_string(util::repo_root()?.join("deny.toml"))?;
        assert_eq!(toml_string(&text, "db-urls").as_deref(), Some(DB_URL));
        assert!(toml_string(&text, "db-path").is_some_and(|path| path.starts_with("target/")));
        Ok(())
    }
}
