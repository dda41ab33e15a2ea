//! The CLI harness: `tessera serve` as a child process on a free port, and the `tessera` command run against it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a part of the harness"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

pub const ADMIN: &str = "cli-test-admin-token";

/// A `tessera serve` child process on a free port, killed when dropped.
pub struct Served {
    child: Child,
    pub url: String,
}

impl Served {
    pub fn start(data_dir: &Path) -> Self {
        Self::spawn(data_dir, &[], "warn", None)
    }

    /// A server on the PostgreSQL database at `database` (`--database`); `data_dir` is given too, to show that it
    /// is not used.
    pub fn start_on_database(data_dir: &Path, database: &str) -> Self {
        Self::spawn(data_dir, &["--database", database], "warn", None)
    }

    /// A server logging at info level; everything it prints (stdout and stderr) is copied into `log`.
    pub fn start_logging(data_dir: &Path, log: std::fs::File) -> Self {
        Self::spawn(data_dir, &[], "info", Some(log))
    }

    fn spawn(data_dir: &Path, extra: &[&str], level: &str, mut log: Option<std::fs::File>) -> Self {
        let stderr = match &log {
            Some(file) => Stdio::from(file.try_clone().unwrap()),
            None => Stdio::null(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("TESSERA_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", level)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        // Log lines may come before the line with the address; they are kept in the log.
        let url = loop {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0,
                "the server stopped before it listened"
            );
            if let Some(file) = log.as_mut() {
                std::io::Write::write_all(file, line.as_bytes()).unwrap();
            }
            if let Some(url) = line
                .split_whitespace()
                .find(|word| word.starts_with("http://"))
            {
                break url.to_owned();
            }
        };
        if let Some(mut file) = log {
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut file));
        }
        Self { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Cli<'a> {
    pub served: &'a Served,
    pub dir: PathBuf,
}

impl Cli<'_> {
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .env("TESSERA_SERVER", &self.served.url)
            .env("TESSERA_ADMIN_TOKEN", ADMIN)
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed and print JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "{args:?} failed with {:?}: {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Runs a command that must fail with exit code 1; returns what it wrote on stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        stderr
    }
}

/// Whether any file under `dir` (recursively) holds `needle`.
pub fn any_file_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|entry| {
        let path = entry.unwrap().path();
        if path.is_dir() {
            return any_file_contains(&path, needle);
        }
        let bytes = std::fs::read(&path).unwrap();
        bytes.windows(needle.len()).any(|window| window == needle)
    })
}
