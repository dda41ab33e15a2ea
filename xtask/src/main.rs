//! `cargo xtask`: the project's automation (CI checks, benchmark summaries, releases), written in Rust so it runs wherever cargo does.

mod bench;
mod ci;
mod deny;
mod layers;
mod postgres;
mod release;
mod util;
mod vectors;

use std::process::ExitCode;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  ci [--skip-deny]      fmt, layer check, clippy, rustdoc, cargo-deny, release dry run,
                        doctests, examples, tests
                        (--skip-deny skips cargo-deny for quick local runs)
  bench [--quick] [ARGS...]
                        run the criterion benchmarks of tessera-benches and write
                        target/bench-summary.md; ARGS go to criterion (e.g. a filter);
                        --quick shortens warm-up and measurement
  deny                  only the cargo-deny step of `ci`
  layers                only the layer check of `ci`
  release <VERSION> [--dry-run | --publish]
                        check CHANGELOG.md has `## [VERSION]`, bump every crate to VERSION,
                        `cargo publish --dry-run` the publishable crates in dependency order
                        (in a bumped copy under target/xtask-release), then commit
                        \"release VERSION\" and tag vVERSION; --dry-run stops after the
                        packaging and changes nothing; --publish also uploads to crates.io
  vectors [--force]     generate the key layer's known-answer vectors once
                        (crates/tessera-keys/tests/data/vectors.json); --force regenerates";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nxtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let mut args = args.into_iter();
    let command = args.next();
    let rest: Vec<String> = args.collect();
    let root = util::repo_root()?;
    match command.as_deref() {
        Some("ci") => ci::run(&root, ci::Options::parse(&rest)?),
        Some("bench") => bench::run(&root, &rest),
        Some("deny") => no_options("deny", &rest).and_then(|()| deny::run(&root)),
        Some("layers") => no_options("layers", &rest).and_then(|()| layers::run(&root)),
        Some("release") => release::run(&root, &release::Options::parse(&rest)?),
        Some("vectors") => match rest.as_slice() {
            [] => vectors::run(&root, false),
            [flag] if flag == "--force" => vectors::run(&root, true),
            [other, ..] => bail!("`cargo xtask vectors` takes only --force, got `{other}`"),
        },
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n\n{USAGE}"),
    }
}

fn no_options(command: &str, rest: &[String]) -> Result<()> {
    match rest.first() {
        None => Ok(()),
        Some(arg) => bail!("`cargo xtask {command}` takes no arguments, got `{arg}`"),
    }
}
