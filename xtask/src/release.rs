//! `cargo xtask release <version>`: checks the changelog, bumps every crate, dry-runs `cargo publish`, commits and tags.
//!
//! The dry run of cargo always happens in a copy of the repository under the target folder, with the bump applied
//! there: the crates are packaged and verified exactly as they would be published at the new version, and the work
//! tree is not touched. Only a release without `--dry-run` then writes the bump into the work tree, commits it and
//! tags; only `--publish` uploads to crates.io.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{self, cargo};

/// The changelog at the repository root, which must have a section for the version being released.
const CHANGELOG: &str = "CHANGELOG.md";
/// The folder, under cargo's target folder, that holds the copy of the repository the dry run packages (`src`) and
/// the target folder of its packaging (`build-<digest>`).
const WORK_DIR: &str = "xtask-release";

/// Options of `cargo xtask release`.
#[derive(Debug)]
pub(crate) struct Options {
    version: Version,
    dry_run: bool,
    publish: bool,
}

impl Options {
    /// Parses the arguments after `release`: a version, `--dry-run` and `--publish` in any order.
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut version = None;
        let (mut dry_run, mut publish) = (false, false);
        for arg in args {
            match arg.as_str() {
                "--dry-run" => dry_run = true,
                "--publish" => publish = true,
                flag if flag.starts_with('-') => bail!(
                    "unknown option `{flag}` for `cargo xtask release` (known: --dry-run, --publish)"
                ),
                text if version.is_none() => version = Some(Version::parse(text)?),
                extra => bail!("`cargo xtask release` takes one version, got a second: `{extra}`"),
            }
        }
        let Some(version) = version else {
            bail!("usage: cargo xtask release <version> [--dry-run | --publish]");
        };
        if dry_run && publish {
            bail!("--dry-run and --publish contradict each other");
        }
        Ok(Self {
            version,
            dry_run,
            publish,
        })
    }

    /// A dry run of the given version (what CI runs).
    pub(crate) fn dry_run(version: Version) -> Self {
        Self {
            version,
            dry_run: true,
            publish: false,
        }
    }
}

/// Runs the release: the checks and the packaging dry run always; the bump, the commit and the tag unless
/// `--dry-run`; the upload only with `--publish`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let version = &options.version;
    let current = workspace_version(root)?;
    check_changelog(root, version)?;
    if !options.dry_run {
        check_can_release(root, &current, version)?;
    }

    util::header(&format!(
        "package the crates at {version} (current version {current})"
    ));
    let packaged = package_dry_run(root, version)?;
    let crates = &packaged.crates;
    if options.dry_run {
        println!(
            "\ndry run of {version} passed for {}; the work tree is unchanged, nothing was tagged or published",
            crates.join(", ")
        );
        return Ok(());
    }

    util::header(&format!("bump, commit and tag {version}"));
    if version == &current {
        println!("the workspace is already at {version}: nothing to bump or commit");
    } else {
        let manifest = root.join("Cargo.toml");
        let bump = bump_manifest(&read(&manifest)?, version)?;
        fs::write(&manifest, &bump.text)
            .with_context(|| format!("could not write {}", manifest.display()))?;
        print_changes(&bump.changes);
        stamp_changelog(root, version)?;
        // Only the workspace's own entries of Cargo.lock change; no dependency is upgraded.
        util::run(cargo(root).args(["update", "--workspace"]))?;
        util::run(git(root).args([
            "commit",
            "--all",
            "--message",
            &format!("release {version}"),
        ]))?;
    }
    let tag = tag_name(version);
    util::run(git(root).args([
        "tag",
        "--annotate",
        &tag,
        "--message",
        &format!("release {version}"),
    ]))?;

    if options.publish {
        util::header(&format!("publish {version} to crates.io"));
        // The target folder of the dry run holds the same sources at the same version (the work tree was clean
        // and only the bump was committed), so the temporary registry cargo unpacks again is the one just checked.
        util::run(
            cargo(root)
                .args(["publish", "--target-dir"])
                .arg(&packaged.build_dir)
                .args(package_args(crates)),
        )?;
    } else {
        println!("\nnot published (pass --publish to upload to crates.io)");
    }
    println!("push the release with: git push origin HEAD {tag}");
    Ok(())
}

/// The version of `[workspace.package]` in the root manifest, which every crate inherits.
pub(crate) fn workspace_version(root: &Path) -> Result<Version> {
    let manifest = root.join("Cargo.toml");
    let text = read(&manifest)?;
    let range =
        package_version_range(&text).with_context(|| format!("in {}", manifest.display()))?;
    let value = text.get(range).unwrap_or_default();
    Version::parse(value).with_context(|| format!("in {}", manifest.display()))
}

/// `git status --porcelain` of the work tree, untracked files included, to compare before and after a step.
pub(crate) fn work_tree_status(root: &Path) -> Result<String> {
    util::output(git(root).args(["status", "--porcelain", "--untracked-files=all"]))
}

/// A semantic version `MAJOR.MINOR.PATCH` with an optional pre-release (`1.2.0-rc.1`), as crates.io accepts it.
/// Build metadata (`+...`) is refused: crates.io ignores it when comparing, so it cannot tell two releases apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
}

impl Version {
    /// Parses and validates a version.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let invalid = || format!("`{text}` is not a version of the form MAJOR.MINOR.PATCH[-PRE]");
        if text.starts_with(['v', 'V']) {
            bail!("{}: write it without the leading `v`", invalid());
        }
        if text.contains('+') {
            bail!("{}: build metadata (`+...`) is not supported", invalid());
        }
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let numbers = core
            .split('.')
            .map(parse_number)
            .collect::<Option<Vec<u64>>>()
            .with_context(invalid)?;
        let [major, minor, patch] = numbers[..] else {
            bail!(invalid());
        };
        let pre: Vec<String> = match pre {
            None => Vec::new(),
            Some(pre) => pre.split('.').map(str::to_owned).collect(),
        };
        if let Some(bad) = pre.iter().find(|id| !is_pre_release_identifier(id)) {
            bail!(
                "{}: pre-release identifier `{bad}` must be non-empty ASCII letters, digits or `-`, \
                 and a numeric one has no leading zero",
                invalid()
            );
        }
        Ok(Self {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre.join("."))?;
        }
        Ok(())
    }
}

/// Semantic-versioning precedence: numbers first, then a pre-release sorts before its release, identifiers compared
/// one by one (numeric ones as numbers and before alphanumeric ones), a shorter list of equal identifiers first.
impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let numbers =
            (self.major, self.minor, self.patch).cmp(&(other.major, other.minor, other.patch));
        let pre = match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let pairs = self.pre.iter().zip(&other.pre);
                pairs
                    .map(|(a, b)| compare_identifiers(a, b))
                    .find(|ordering| ordering.is_ne())
                    .unwrap_or_else(|| self.pre.len().cmp(&other.pre.len()))
            }
        };
        numbers.then(pre)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The root manifest with every crate's version set to a new one, and a line per change for the plan.
#[derive(Debug)]
struct Bump {
    text: String,
    changes: Vec<String>,
}

/// Sets `[workspace.package] version` (which every crate inherits) and the `version` of every entry with a `path`
/// in `[workspace.dependencies]` (the requirement other crates publish with) to `version`.
///
/// The text is edited in place, one value at a time, so comments, order and formatting survive. Layouts this
/// line-based edit cannot handle safely (a `[workspace.dependencies.<name>]` table, a path entry without a version)
/// are refused with an error rather than skipped.
fn bump_manifest(text: &str, version: &Version) -> Result<Bump> {
    let new = version.to_string();
    let mut edits: Vec<(Range<usize>, String)> = Vec::new();
    let range = package_version_range(text)?;
    edits.push((range, "[workspace.package] version".to_owned()));
    let mut table = String::new();
    for (start, line) in lines_with_offsets(text) {
        if let Some(name) = table_header(line) {
            if name.starts_with("workspace.dependencies.") {
                bail!(
                    "`[{name}]` in the root manifest: write workspace dependencies as inline tables \
                     (`name = {{ path = \"...\", version = \"...\" }}`) so the release can bump them"
                );
            }
            table = name;
            continue;
        }
        if table != "workspace.dependencies" || value_range(line, "path").is_none() {
            continue;
        }
        let name = line.split('=').next().unwrap_or_default().trim();
        let Some(value) = value_range(line, "version") else {
            bail!(
                "`{name}` in [workspace.dependencies] has a path but no version: \
                 crates that depend on it cannot be published"
            );
        };
        edits.push((start + value.start..start + value.end, name.to_owned()));
    }
    if edits.len() < 2 {
        bail!(
            "no entry with a `path` in [workspace.dependencies]: nothing says which crates are ours"
        );
    }
    let mut bumped = text.to_owned();
    let mut changes = Vec::new();
    // From the end, so that the earlier ranges stay valid.
    for (range, what) in edits.into_iter().rev() {
        let old = text.get(range.clone()).unwrap_or_default();
        changes.push(if old == new {
            format!("{what}: {new} (unchanged)")
        } else {
            format!("{what}: {old} -> {new}")
        });
        bumped.replace_range(range, &new);
    }
    changes.reverse();
    Ok(Bump {
        text: bumped,
        changes,
    })
}

/// Fails unless the changelog has a `## [<version>]` heading (Keep a Changelog: `## [1.2.0] - 2026-01-31`).
fn check_changelog(root: &Path, version: &Version) -> Result<()> {
    let path = root.join(CHANGELOG);
    let text = read(&path)?;
    if !has_changelog_section(&text, version) {
        bail!(
            "{} has no `## [{version}]` heading: write the release notes of {version} there first",
            path.display()
        );
    }
    Ok(())
}

fn has_changelog_section(text: &str, version: &Version) -> bool {
    let heading = format!("## [{version}]");
    text.lines().any(|line| {
        line.strip_prefix(&heading)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    })
}

/// The checks of a real release, before anything slow: a clean work tree (the commit must hold exactly what was
/// packaged), a tag that does not exist yet, and a version that does not go backwards.
fn check_can_release(root: &Path, current: &Version, version: &Version) -> Result<()> {
    let status = work_tree_status(root)?;
    if !status.trim().is_empty() {
        bail!("the work tree has changes; commit or stash them before releasing:\n{status}");
    }
    let tag = tag_name(version);
    let existing = util::output(git(root).args(["tag", "--list", &tag]))?;
    if !existing.trim().is_empty() {
        bail!("tag {tag} exists already: {version} has been released");
    }
    if version < current {
        bail!("{version} is lower than the workspace's current version {current}");
    }
    if let Some(placeholder) = placeholder_metadata(&read(&root.join("Cargo.toml"))?) {
        bail!(
            "{placeholder} in the root Cargo.toml is a placeholder: write the real value before releasing"
        );
    }
    Ok(())
}

/// The first package field of `[workspace.package]` that still holds a placeholder URL (a host reserved for
/// examples by RFC 2606), which crates.io would publish as is.
fn placeholder_metadata(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        if let Some(header) = table_header(line) {
            in_package = header == "workspace.package";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().trim_matches('"'));
        let host = value
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default());
        if in_package && host.is_some_and(is_reserved_host) {
            return Some(format!("`{key} = \"{value}\"`"));
        }
    }
    None
}

/// Whether `host` is reserved for documentation and tests (RFC 2606): the `.invalid`, `.example`, `.test` and
/// `.localhost` top-level domains and `example.com`, `example.net`, `example.org` with their subdomains.
fn is_reserved_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let top = host.rsplit('.').next().unwrap_or_default();
    matches!(top, "invalid" | "example" | "test" | "localhost")
        || ["example.com", "example.net", "example.org"]
            .iter()
            .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

/// Dates the changelog section of `version` with today's date (UTC) if it still says `Unreleased`, so that the
/// release commit carries it.
fn stamp_changelog(root: &Path, version: &Version) -> Result<()> {
    let path = root.join(CHANGELOG);
    let text = read(&path)?;
    if let Some(stamped) = stamp_section(&text, version, &today()) {
        fs::write(&path, stamped).with_context(|| format!("could not write {}", path.display()))?;
        println!("{CHANGELOG}: dated the {version} section {}", today());
    }
    Ok(())
}

/// `text` with the heading `## [<version>] - Unreleased` changed to `## [<version>] - <date>`, or `None` if the
/// heading carries a date already.
fn stamp_section(text: &str, version: &Version, date: &str) -> Option<String> {
    let heading = format!("## [{version}]");
    let mut changed = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\r', '\n']);
        let undated = body.strip_prefix(&heading).is_some_and(|rest| {
            rest.trim()
                .trim_start_matches(['-', '–'])
                .trim()
                .eq_ignore_ascii_case("unreleased")
        });
        if undated && !changed {
            out.push_str(&format!("{heading} - {date}"));
            out.push_str(&line[body.len()..]);
            changed = true;
        } else {
            out.push_str(line);
        }
    }
    changed.then_some(out)
}

/// Today's date in UTC as `YYYY-MM-DD`.
fn today() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    civil_date(seconds / 86_400)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_date(days: u64) -> String {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Copies the repository into the target folder, bumps the copy to `version` and runs `cargo publish --dry-run` for
/// its publishable crates, which cargo packages together (a crate's unpublished workspace dependencies resolve
/// through a temporary local registry) and verifies by building each package as extracted from its `.crate`.
/// Returns the crates in publishing order and the target folder used.
///
/// The packaging gets a target folder named after a digest of the sources and the version. Cargo unpacks the crates
/// of its temporary registry into `$CARGO_HOME/registry/src/<hash of the registry's path>/<crate>-<version>` and,
/// as for any registry, reuses that folder and what it compiled from it whenever the same name and version come
/// again: with one fixed folder, the second dry run of 0.1.0 would verify each crate against its dependencies' sources
/// from the first. A folder per content keeps the reuse exactly where it is right (nothing changed) and costs one cold
/// build of the dependencies (about a minute and a half on two cores) after every change.
fn package_dry_run(root: &Path, version: &Version) -> Result<Packaged> {
    let work = util::target_dir(root)?.join(WORK_DIR);
    let copy = work.join("src");
    let (count, digest) = copy_repository(root, &copy)?;
    println!(
        "copied {count} files of the work tree to {}",
        copy.display()
    );

    let manifest = copy.join("Cargo.toml");
    let bump = bump_manifest(&read(&manifest)?, version)?;
    fs::write(&manifest, &bump.text)
        .with_context(|| format!("could not write {}", manifest.display()))?;
    print_changes(&bump.changes);

    let crates = publishable_crates(&util::metadata(&copy)?, version)?;
    println!("publishing order: {}", crates.join(" -> "));
    let build = fresh_build_dir(&work, digest, version)?;
    // The verification only proves that each package compiles as extracted: no debug info and no incremental
    // caches, which cost compile time and disk in a target folder that is thrown away after every change.
    util::run(
        cargo(&copy)
            .args(["publish", "--dry-run", "--target-dir"])
            .arg(&build)
            .args(package_args(&crates))
            .env("CARGO_PROFILE_DEV_DEBUG", "0")
            .env("CARGO_INCREMENTAL", "0"),
    )?;
    println!(
        "the packaged sources are under {}",
        build.join("package").display()
    );
    Ok(Packaged {
        crates,
        build_dir: build,
    })
}

/// What the packaging dry run checked.
struct Packaged {
    /// The publishable crates, each after the crates it depends on.
    crates: Vec<String>,
    /// The target folder of the packaging.
    build_dir: PathBuf,
}

/// `<work>/build-<digest of the sources and the version>`, after removing the build folders of other contents.
fn fresh_build_dir(work: &Path, digest: u64, version: &Version) -> Result<PathBuf> {
    let mut hasher = DefaultHasher::new();
    (digest, version.to_string()).hash(&mut hasher);
    let name = format!("build-{:016x}", hasher.finish());
    for entry in fs::read_dir(work).with_context(|| format!("could not read {}", work.display()))? {
        let entry = entry.with_context(|| format!("could not read {}", work.display()))?;
        let stale = entry
            .file_name()
            .to_str()
            .is_some_and(|other| other.starts_with("build-") && other != name);
        if stale {
            let path = entry.path();
            fs::remove_dir_all(&path)
                .with_context(|| format!("could not remove {}", path.display()))?;
        }
    }
    Ok(work.join(name))
}

/// Replaces `dest` with a copy of the files of the work tree that git tracks or would track (untracked files
/// included, ignored ones not), as they are on disk. The copy has no `.git`: cargo packages it as it is.
/// Returns the number of files and a digest of their paths and contents.
fn copy_repository(root: &Path, dest: &Path) -> Result<(usize, u64)> {
    if dest.exists() {
        fs::remove_dir_all(dest).with_context(|| format!("could not remove {}", dest.display()))?;
    }
    let listing = util::output(git(root).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]))?;
    let files: BTreeSet<&str> = listing.split('\0').filter(|f| !f.is_empty()).collect();
    let mut hasher = DefaultHasher::new();
    let mut count = 0;
    for file in files {
        let from = root.join(file);
        // A tracked file deleted in the work tree is not part of it.
        if !from.is_file() {
            continue;
        }
        let to = dest.join(file);
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("could not create {}", parent.display()))?;
        }
        fs::copy(&from, &to)
            .with_context(|| format!("could not copy {} to {}", from.display(), to.display()))?;
        (
            file,
            fs::read(&to).with_context(|| format!("could not read {}", to.display()))?,
        )
            .hash(&mut hasher);
        count += 1;
    }
    Ok((count, hasher.finish()))
}

/// The publishable workspace members (`publish` not `false`), each after the members it depends on, from
/// `cargo metadata`. Fails if one of them is not at `version` (it does not inherit the workspace version) or
/// depends on a member that is not published.
fn publishable_crates(metadata: &Value, version: &Version) -> Result<Vec<String>> {
    let packages = metadata
        .get("packages")
        .and_then(Value::as_array)
        .context("`cargo metadata` gave no packages")?;
    let mut publishable: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut unpublished = BTreeSet::new();
    for package in packages {
        let name = field(package, "name")?;
        // `publish` is null (anywhere), a list of registries, or an empty list for `publish = false`.
        let is_publishable = package
            .get("publish")
            .and_then(Value::as_array)
            .is_none_or(|registries| !registries.is_empty());
        if !is_publishable {
            unpublished.insert(name.to_owned());
            continue;
        }
        let package_version = field(package, "version")?;
        if package_version != version.to_string() {
            bail!(
                "{name} is at {package_version}, not {version}: \
                 its manifest should say `version.workspace = true`"
            );
        }
        // A dev-dependency that names no version is left out of the published manifest; one that names a
        // version must be on the registry first, like any other dependency.
        let deps = package
            .get("dependencies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|dep| dep.get("path").is_some())
            .filter(|dep| {
                dep.get("kind").and_then(Value::as_str) != Some("dev")
                    || dep.get("req").and_then(Value::as_str) != Some("*")
            })
            .map(|dep| field(dep, "name").map(str::to_owned))
            .collect::<Result<BTreeSet<String>>>()?;
        publishable.insert(name.to_owned(), deps);
    }
    for (name, deps) in &publishable {
        if let Some(dep) = deps.iter().find(|dep| unpublished.contains(*dep)) {
            bail!("{name} depends on {dep}, which has `publish = false`");
        }
    }
    dependency_order(publishable)
}

/// Orders crates so that each comes after its dependencies, alphabetically among those ready at the same time.
fn dependency_order(mut pending: BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>> {
    let mut order: Vec<String> = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .find(|(_, deps)| deps.iter().all(|dep| !pending.contains_key(dep)))
            .map(|(name, _)| name.clone());
        let Some(name) = ready else {
            let names: Vec<&str> = pending.keys().map(String::as_str).collect();
            bail!("dependency cycle among {}", names.join(", "));
        };
        pending.remove(&name);
        order.push(name);
    }
    Ok(order)
}

/// `-p <crate>` for each crate.
fn package_args(crates: &[String]) -> Vec<String> {
    crates
        .iter()
        .flat_map(|name| ["--package".to_owned(), name.clone()])
        .collect()
}

fn tag_name(version: &Version) -> String {
    format!("v{version}")
}

fn print_changes(changes: &[String]) {
    for change in changes {
        println!("  {change}");
    }
}

fn git(root: &Path) -> Command {
    let mut command = Command::new("git");
    command.current_dir(root);
    command
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
}

fn field<'a>(value: &'a Value, name: &str) -> Result<&'a str> {
    value
        .get(name)
        .and_then(Value::as_str)
        .with_context(|| format!("`cargo metadata` gave an entry without `{name}`"))
}

/// A decimal number without a leading zero (semantic versioning forbids them).
fn parse_number(text: &str) -> Option<u64> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

fn is_pre_release_identifier(id: &str) -> bool {
    let allowed = id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let numeric = id.bytes().all(|b| b.is_ascii_digit());
    !id.is_empty() && allowed && !(numeric && id.len() > 1 && id.starts_with('0'))
}

/// Numeric identifiers compare as numbers (without leading zeros: by length, then digits) and sort before
/// alphanumeric ones, which compare as ASCII.
fn compare_identifiers(a: &str, b: &str) -> Ordering {
    let numeric = |id: &str| id.bytes().all(|b| b.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        (true, true) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

/// The byte range of the `version` value in `[workspace.package]`, which must be there exactly once.
fn package_version_range(text: &str) -> Result<Range<usize>> {
    let mut table = String::new();
    let mut found = Vec::new();
    for (start, line) in lines_with_offsets(text) {
        if let Some(name) = table_header(line) {
            table = name;
        } else if table == "workspace.package"
            && let Some(value) = value_range(line, "version")
        {
            found.push(start + value.start..start + value.end);
        }
    }
    match found.as_slice() {
        [range] => Ok(range.clone()),
        [] => bail!("no `version = \"...\"` in [workspace.package]"),
        _ => bail!("more than one `version` in [workspace.package]"),
    }
}

/// Each line with the byte offset where it starts.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_inclusive('\n').scan(0, |offset, line| {
        let start = *offset;
        *offset += line.len();
        Some((start, line.trim_end_matches(['\n', '\r'])))
    })
}

/// The name of a `[table]` header line (`[[array]]` headers give their name too), without spaces.
fn table_header(line: &str) -> Option<String> {
    let line = line.trim_start();
    if !line.starts_with('[') {
        return None;
    }
    let end = line.find(']')?;
    let name = line.get(..end)?.trim_start_matches('[');
    Some(name.chars().filter(|c| !c.is_whitespace()).collect())
}

/// The byte range of the string value of a bare `key` on a line, either a top-level `key = "value"` or a key of an
/// inline table (`{ key = "value", ... }`). Strings and comments are skipped, so a key-like word inside a string
/// (a feature name, a URL) never matches, nor does a longer key that contains it (`package-version`).
fn value_range(line: &str, key: &str) -> Option<Range<usize>> {
    let bytes = line.as_bytes();
    let mut index = 0;
    // Whether a key may start here: at the line start or after `{` or `,`, spaces aside.
    let mut at_key = true;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'"' | b'\'' => {
                index = string_end(bytes, index)?;
                at_key = false;
                continue;
            }
            b'#' => return None,
            b'{' | b',' => at_key = true,
            b' ' | b'\t' => {}
            _ if at_key => {
                if let Some(value) = string_value_at(bytes, index, key) {
                    return Some(value);
                }
                at_key = false;
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// The range inside the quotes of `key = "value"` when `key` starts at `start`.
fn string_value_at(bytes: &[u8], start: usize, key: &str) -> Option<Range<usize>> {
    let after_key = bytes.get(start..)?.strip_prefix(key.as_bytes())?;
    let value = after_key
        .trim_ascii_start()
        .strip_prefix(b"=")?
        .trim_ascii_start();
    if !value.starts_with(b"\"") && !value.starts_with(b"'") {
        return None;
    }
    let value_start = bytes.len() - value.len();
    let end = string_end(bytes, value_start)?;
    Some(value_start + 1..end - 1)
}

/// The index just after the string that opens at `start` (a basic string with escapes, or a literal string).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = *bytes.get(start)?;
    let mut index = start + 1;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'\\' && quote == b'"' {
            index += 2;
            continue;
        }
        if byte == quote {
            return Some(index + 1);
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Version {
        Version::parse(text).expect("a valid version")
    }

    #[test]
    fn accepts_releases_and_pre_releases() {
        for text in [
            "0.1.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0-x-y.7.z-9",
        ] {
            assert_eq!(version(text).to_string(), text);
        }
    }

    #[test]
    fn rejects_malformed_versions() {
        for text in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "v1.2.3",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.x",
            "1..3",
            "1.2.3-",
            "1.2.3-alpha..1",
            "1.2.3-01",
            "1.2.3-al_pha",
            "1.2.3+build.5",
            " 1.2.3",
            "1.2.3 ",
            "99999999999999999999.0.0",
        ] {
            assert!(Version::parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn orders_by_semver_precedence() {
        let ordered = [
            "0.9.9",
            "1.0.0-0",
            "1.0.0-2",
            "1.0.0-10",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            if let [a, b] = pair {
                assert!(version(a) < version(b), "{a} < {b}");
            }
        }
        assert_eq!(version("1.0.0").cmp(&version("1.0.0")), Ordering::Equal);
    }

    const MANIFEST: &str = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.1.0" # every crate inherits it
edition = "2024"

[workspace.dependencies]
# Ours.
tessera-keys = { path = "crates/tessera-keys", version = "0.1.0" }
tessera = {version="0.1.0",path="crates/tessera"}
# Not ours: a `version` key inside strings or other keys must not match.
ring = "0.17.14"
aes-gcm = { version = "0.11.1", default-features = false, features = ["version = \"9\"", "path"] }
odd = { git = "https://example.invalid/path = 'x'", package-version = "1" }

[workspace.lints.rust]
unsafe_code = "forbid"

[profile.dev]
version = "not a package version"
"#;

    #[test]
    fn bumps_only_the_package_version_and_our_path_entries() -> Result<()> {
        let bump = bump_manifest(MANIFEST, &version("0.2.0-rc.1"))?;
        let expected = MANIFEST
            .replace(
                r#"version = "0.1.0" # every"#,
                r#"version = "0.2.0-rc.1" # every"#,
            )
            .replace(
                r#"tessera-keys", version = "0.1.0" }"#,
                r#"tessera-keys", version = "0.2.0-rc.1" }"#,
            )
            .replace(r#"{version="0.1.0",path"#, r#"{version="0.2.0-rc.1",path"#);
        assert_eq!(bump.text, expected);
        assert_eq!(
            bump.changes,
            [
                "[workspace.package] version: 0.1.0 -> 0.2.0-rc.1",
                "tessera-keys: 0.1.0 -> 0.2.0-rc.1",
                "tessera: 0.1.0 -> 0.2.0-rc.1",
            ]
        );
        // Bumping again to the same version changes nothing, and says so.
        let again = bump_manifest(&bump.text, &version("0.2.0-rc.1"))?;
        assert_eq!(again.text, bump.text);
        assert_eq!(again.changes[1], "tessera-keys: 0.2.0-rc.1 (unchanged)");
        Ok(())
    }

    #[test]
    fn keeps_windows_line_endings() -> Result<()> {
        let crlf = MANIFEST.replace('\n', "\r\n");
        let bump = bump_manifest(&crlf, &version("1.0.0"))?;
        assert_eq!(
            bump.text,
            bump_manifest(MANIFEST, &version("1.0.0"))?
                .text
                .replace('\n', "\r\n")
        );
        Ok(())
    }

    #[test]
    fn refuses_layouts_it_cannot_bump() {
        let v = version("1.0.0");
        let no_version = MANIFEST.replace(r#", version = "0.1.0" }"#, " }");
        assert!(bump_manifest(&no_version, &v).is_err());
        let table = format!(
            "{MANIFEST}\n[workspace.dependencies.tessera-store]\npath = \"x\"\nversion = \"0.1.0\"\n"
        );
        assert!(bump_manifest(&table, &v).is_err());
        let no_package_version = MANIFEST.replace(r#"version = "0.1.0" # every"#, "# no version");
        assert!(bump_manifest(&no_package_version, &v).is_err());
        let twice = MANIFEST.replace("edition = \"2024\"", "version = \"0.1.0\"");
        assert!(bump_manifest(&twice, &v).is_err());
        let no_path_entries = MANIFEST
            .lines()
            .filter(|line| !line.contains("path=\"crates/") && !line.contains("path = \"crates/"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(bump_manifest(&no_path_entries, &v).is_err());
    }

    #[test]
    fn bumps_this_repository_manifest() -> Result<()> {
        let root = util::repo_root()?;
        let text = read(&root.join("Cargo.toml"))?;
        let bump = bump_manifest(&text, &version("9.8.7"))?;
        assert!(bump.changes.len() > 1, "{:?}", bump.changes);
        assert!(
            bump.changes
                .iter()
                .all(|change| change.ends_with("-> 9.8.7"))
        );
        Ok(())
    }

    #[test]
    fn finds_the_changelog_section() {
        let text = "# Changelog\n\n## [Unreleased]\n\n## [0.10.0] - 2026-01-31\n\n## [0.1.0]\n";
        assert!(has_changelog_section(text, &version("0.10.0")));
        assert!(has_changelog_section(text, &version("0.1.0")));
        assert!(!has_changelog_section(text, &version("0.1.1")));
        assert!(!has_changelog_section(
            "### [0.2.0]\n- [0.2.0]\n",
            &version("0.2.0")
        ));
        assert!(!has_changelog_section(
            "## [0.2.0-rc.1]\n",
            &version("0.2.0")
        ));
    }

    #[test]
    fn orders_crates_after_their_dependencies() -> Result<()> {
        // `dev_store` is the requirement of tessera's dev-dependency on tessera-store, `dev_benches` that of
        // tessera-keys on the unpublished tessera-benches; "*" means a path without a version.
        let metadata = |dev_store: &str, dev_benches: &str| {
            serde_json::json!({ "packages": [
                { "name": "tessera", "version": "0.1.0", "publish": null, "dependencies": [
                    { "name": "tessera-keys", "kind": null, "req": "^0.1.0", "path": "/w/k" },
                    { "name": "tessera-store", "kind": "dev", "req": dev_store, "path": "/w/s" },
                    { "name": "serde", "kind": null, "req": "^1" } ] },
                { "name": "tessera-store", "version": "0.1.0", "publish": null, "dependencies": [
                    { "name": "tessera-keys", "kind": null, "req": "^0.1.0", "path": "/w/k" } ] },
                { "name": "tessera-keys", "version": "0.1.0", "publish": null, "dependencies": [
                    { "name": "tessera-benches", "kind": "dev", "req": dev_benches, "path": "/w/b" } ] },
                { "name": "tessera-benches", "version": "0.0.0", "publish": [], "dependencies": [] },
            ] })
        };
        let v010 = version("0.1.0");
        assert_eq!(
            publishable_crates(&metadata("*", "*"), &v010)?,
            ["tessera-keys", "tessera", "tessera-store"]
        );
        assert_eq!(
            publishable_crates(&metadata("^0.1.0", "*"), &v010)?,
            ["tessera-keys", "tessera-store", "tessera"]
        );
        assert!(publishable_crates(&metadata("*", "^0.1.0"), &v010).is_err());
        assert!(publishable_crates(&metadata("*", "*"), &version("0.2.0")).is_err());
        let cycle = serde_json::json!({ "packages": [
            { "name": "a", "version": "1.0.0", "dependencies": [ { "name": "b", "kind": "build", "req": "^1", "path": "/b" } ] },
            { "name": "b", "version": "1.0.0", "dependencies": [ { "name": "a", "kind": null, "req": "^1", "path": "/a" } ] },
        ] });
        assert!(publishable_crates(&cycle, &version("1.0.0")).is_err());
        Ok(())
    }

    #[test]
    fn dates_the_unreleased_section_once() {
        let text = "# Changelog\n\n## [Unreleased]\n\n## [0.1.0] - Unreleased\r\n\nfirst\n## [0.0.9] - 2026-01-02\n";
        let stamped = stamp_section(text, &version("0.1.0"), "2026-11-23").expect("stamped");
        assert_eq!(
            stamped,
            "# Changelog\n\n## [Unreleased]\n\n## [0.1.0] - 2026-11-23\r\n\nfirst\n## [0.0.9] - 2026-01-02\n"
        );
        assert_eq!(
            stamp_section(&stamped, &version("0.1.0"), "2027-01-01"),
            None
        );
        assert_eq!(stamp_section(text, &version("0.0.9"), "2027-01-01"), None);
    }

    #[test]
    fn computes_calendar_dates() {
        for (days, date) in [
            (0, "1970-01-01"),
            (59, "1970-03-01"),
            (11_016, "2000-02-29"),
            (20_780, "2026-11-23"),
            (20_819, "2027-01-01"),
        ] {
            assert_eq!(civil_date(days), date, "{days} days");
        }
    }

    #[test]
    fn finds_placeholder_metadata_in_the_workspace_package_only() {
        let manifest = "[workspace.package]\nversion = \"0.1.0\"\nrepository = \"https://example.invalid/tessera\"\n";
        assert_eq!(
            placeholder_metadata(manifest).as_deref(),
            Some("`repository = \"https://example.invalid/tessera\"`")
        );
        let real = "[workspace.package]\nrepository = \"https://git.example-health.org/tessera\"\n[workspace.dependencies]\nx = { path = \"x\" }\n";
        assert_eq!(placeholder_metadata(real), None);
        let elsewhere = "[workspace.package]\nlicense = \"MIT\"\n[package.metadata]\nurl = \"https://example.com\"\n";
        assert_eq!(placeholder_metadata(elsewhere), None);
        for host in [
            "example.org",
            "www.example.org",
            "tessera.test",
            "x.invalid",
        ] {
            let manifest = format!("[workspace.package]\nhomepage = \"https://{host}/\"\n");
            assert!(placeholder_metadata(&manifest).is_some(), "{host}");
        }
    }

    #[test]
    fn parses_options() -> Result<()> {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let options = Options::parse(&args(&["--dry-run", "0.2.0"]))?;
        assert!(options.dry_run && !options.publish && options.version == version("0.2.0"));
        assert!(Options::parse(&args(&["0.2.0", "--publish"]))?.publish);
        assert!(Options::parse(&args(&[])).is_err());
        assert!(Options::parse(&args(&["0.2.0", "0.3.0"])).is_err());
        assert!(Options::parse(&args(&["0.2.0", "--dry-run", "--publish"])).is_err());
        assert!(Options::parse(&args(&["0.2.0", "--force"])).is_err());
        Ok(())
    }
}
