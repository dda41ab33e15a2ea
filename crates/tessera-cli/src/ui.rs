//! Terminal output: progress bars and spinners (hidden when stdout is not a terminal), JSON results.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress should be drawn: only for a person watching a terminal, never into a pipe or a file.
fn interactive() -> bool {
    std::io::stdout().is_terminal()
}

/// A spinner with `message`, ticking until finished.
pub(crate) fn spinner(message: impl Into<String>) -> ProgressBar {
    if !interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message.into());
    if let Ok(style) = ProgressStyle::with_template("  {spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(80));
    bar
}

/// A progress bar over `total` bytes.
pub(crate) fn bytes(message: impl Into<String>, total: u64) -> ProgressBar {
    if !interactive() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total).with_message(message.into());
    if let Ok(style) =
        ProgressStyle::with_template("  {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Prints a result as pretty JSON on stdout.
pub(crate) fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The message of a failed command: each context, then the error, then its causes, joined with `: `. A cause
/// whose text is already shown is skipped, and the chain stops at an SDK error made from the HTTP client's: the
/// SDK's message already holds what the server said and what to do, which the client's error would only repeat.
pub(crate) fn describe(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|shown| shown.contains(&text)) {
            parts.push(text);
        }
        let from_client = cause
            .downcast_ref::<tessera::Error>()
            .and_then(std::error::Error::source)
            .is_some_and(|source| source.is::<tessera_client::Error>());
        if from_client {
            break;
        }
    }
    parts.join(": ")
}
