//! Helpers shared by the commands: the repository root, running cargo and other programs, `cargo metadata`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The workspace root: xtask lives one level below it.
pub(crate) fn repo_root() -> Result<PathBuf> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .with_context(|| format!("{} has no parent folder", manifest_dir.display()))?;
    Ok(root.to_path_buf())
}

/// The cargo that started us (cargo sets `CARGO` for `cargo run`), so every step uses the same toolchain.
pub(crate) fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(program);
    command.current_dir(root);
    command
}

/// Prints a step header.
pub(crate) fn header(title: &str) {
    println!("\n==> {title}");
}

/// Runs a command with inherited output and fails with the command line unless it exits successfully.
pub(crate) fn run(command: &mut Command) -> Result<()> {
    let line = describe(command);
    println!("$ {line}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs a command, capturing its output; fails with the command line and its stderr unless it exits successfully.
pub(crate) fn output(command: &mut Command) -> Result<String> {
    let line = describe(command);
    let output = command
        .output()
        .with_context(|| format!("could not start `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Whether a command can be started and exits successfully, with its output discarded (for "is this tool installed?").
pub(crate) fn succeeds(command: &mut Command) -> bool {
    command
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

/// `cargo metadata --format-version 1 --no-deps`: the workspace members, their dependencies as declared, the target folder.
pub(crate) fn metadata(root: &Path) -> Result<Value> {
    let text = output(cargo(root).args(["metadata", "--format-version", "1", "--no-deps"]))?;
    serde_json::from_str(&text).context("could not parse the output of `cargo metadata`")
}

/// The cargo target folder (honours `CARGO_TARGET_DIR` and `build.target-dir`).
pub(crate) fn target_dir(root: &Path) -> Result<PathBuf> {
    let metadata = metadata(root)?;
    let dir = metadata
        .get("target_directory")
        .and_then(Value::as_str)
        .context("`cargo metadata` gave no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// A command as a shell-like line, with the environment variables it sets, for messages.
fn describe(command: &Command) -> String {
    let envs = command.get_envs().filter_map(|(key, value)| {
        value.map(|value| {
            format!(
                "{}={}",
                key.to_string_lossy(),
                quote(&value.to_string_lossy())
            )
        })
    });
    let program = Path::new(command.get_program())
        .file_name()
        .unwrap_or(command.get_program())
        .to_string_lossy()
        .into_owned();
    let args = command.get_args().map(|arg| quote(&arg.to_string_lossy()));
    envs.chain(std::iter::once(program))
        .chain(args)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a word that contains spaces, so a printed command line can be pasted into a shell.
fn quote(word: &str) -> String {
    if word.contains(char::is_whitespace) {
        format!("\"{word}\"")
    } else {
        word.to_owned()
    }
}
