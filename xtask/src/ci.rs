//! `cargo xtask ci`: every check CI runs, in order, stopping at the first failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::util::{self, cargo};
use crate::{deny, layers, postgres, release};

/// Options of `cargo xtask ci`.
pub(crate) struct Options {
    skip_deny: bool,
}

impl Options {
    /// Parses the arguments after `ci`.
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self { skip_deny: false };
        for arg in args {
            match arg.as_str() {
                "--skip-deny" => options.skip_deny = true,
                other => {
                    bail!("unknown option `{other}` for `cargo xtask ci` (known: --skip-deny)")
                }
            }
        }
        Ok(options)
    }
}

type Step = fn(&Path) -> Result<()>;

/// Runs the checks. The cheap static ones come first so that a formatting or layering mistake fails in seconds;
/// the test suite comes last, so that its runner's summary closes the output CI reads.
pub(crate) fn run(root: &Path, options: Options) -> Result<()> {
    let mut steps: Vec<(&str, Step)> = vec![
        ("rustfmt", fmt),
        ("layer check", layers::run),
        ("clippy", clippy),
        ("rustdoc", rustdoc),
    ];
    if options.skip_deny {
        println!("(--skip-deny: cargo-deny will not run)");
    } else {
        steps.push(("cargo-deny", deny::run));
    }
    steps.push(("release dry run", release_dry_run));
    steps.push(("doctests", doctests));
    steps.push(("examples", examples));
    steps.push(("tests", tests));
    let count = steps.len();
    let started = Instant::now();
    let mut times: Vec<(&str, Duration)> = Vec::with_capacity(count);
    for (index, (name, step)) in steps.into_iter().enumerate() {
        util::header(&format!("[{}/{count}] {name}", index + 1));
        let step_started = Instant::now();
        let result = step(root);
        times.push((name, step_started.elapsed()));
        if result.is_err() {
            print_times(&times, started.elapsed());
        }
        result.with_context(|| format!("CI step `{name}` failed"))?;
    }
    print_times(&times, started.elapsed());
    println!("\nall {count} CI steps passed");
    Ok(())
}

/// Prints the wall time of each step that ran and of the whole run, so that slow steps are visible in every CI log.
fn print_times(times: &[(&str, Duration)], total: Duration) {
    println!("\nCI step times (wall clock):");
    for (name, time) in times {
        println!("  {name:<16} {:>8.1} s", time.as_secs_f64());
    }
    println!("  {:<16} {:>8.1} s", "total", total.as_secs_f64());
}

fn fmt(root: &Path) -> Result<()> {
    util::run(cargo(root).args(["fmt", "--all", "--", "--check"]))
        .context("formatting differs; run `cargo fmt --all`")
}

fn clippy(root: &Path) -> Result<()> {
    util::run(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Unit, integration and binary tests: cargo-nextest when it is installed, else `cargo test` (doctests run separately).
/// The interoperability tests need Python's `cryptography` package, and the PostgreSQL tests PostgreSQL's server
/// binaries: both are installed first when missing.
fn tests(root: &Path) -> Result<()> {
    ensure_python_cryptography();
    postgres::ensure_installed()?;
    if util::succeeds(cargo(root).args(["nextest", "--version"])) {
        util::run(cargo(root).args(["nextest", "run", "--workspace", "--all-features"]))
    } else {
        println!("cargo-nextest is not installed; falling back to `cargo test`");
        util::run(cargo(root).args([
            "test",
            "--workspace",
            "--all-features",
            "--lib",
            "--bins",
            "--tests",
        ]))
    }
}

/// `cargo xtask release <current version> --dry-run`: every publishable crate packages and builds on its own as
/// crates.io would get it. The step must leave the work tree as it found it.
fn release_dry_run(root: &Path) -> Result<()> {
    let before = release::work_tree_status(root)?;
    release::run(
        root,
        &release::Options::dry_run(release::workspace_version(root)?),
    )?;
    let after = release::work_tree_status(root)?;
    if after != before {
        bail!(
            "the release dry run changed the work tree (`git status --porcelain`):\nbefore:\n{before}\nafter:\n{after}"
        );
    }
    Ok(())
}

fn doctests(root: &Path) -> Result<()> {
    util::run(cargo(root).args(["test", "--workspace", "--all-features", "--doc"]))
}

fn rustdoc(root: &Path) -> Result<()> {
    util::run(
        cargo(root)
            .args(["doc", "--workspace", "--all-features", "--no-deps"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
}

/// Installs Python's `cryptography` package when `python3` lacks it (the interop tests' peer). A machine without
/// Python or pip keeps going: the interop tests then fall back to the `openssl` command or fail with a clear message.
fn ensure_python_cryptography() {
    let has = |args: &[&str]| util::succeeds(std::process::Command::new("python3").args(args));
    if has(&["-c", "import cryptography"]) {
        return;
    }
    println!(
        "Python's cryptography package is missing; installing it for the interoperability tests"
    );
    let _ = has(&["-m", "pip", "install", "--quiet", "cryptography"])
        || has(&[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--break-system-packages",
            "cryptography",
        ]);
}

/// Runs every example of the facade (one per user story); each exits non-zero when what it shows does not hold.
///
/// The examples are built once, with the same flags as the other steps (`--workspace --all-features`), so that this
/// step reuses what clippy's and the tests' builds share instead of compiling the layers again with default features,
/// and then each binary runs directly.
fn examples(root: &Path) -> Result<()> {
    let dir = root.join("crates/tessera/examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    if names.is_empty() {
        bail!("no example in {}", dir.display());
    }
    util::run(cargo(root).args(["build", "--workspace", "--all-features", "--examples"]))?;
    let built = util::target_dir(root)?.join("debug").join("examples");
    for name in names {
        let binary = built.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        util::run(std::process::Command::new(&binary).current_dir(root))
            .with_context(|| format!("example `{name}` failed"))?;
    }
    Ok(())
}
