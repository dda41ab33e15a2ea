//! `tessera demo` runs every principle end to end and passes: exit code 0 and one PASS line per principle.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use std::process::Command;

#[test]
fn demo_passes_every_principle() {
    let output = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status.code()
    );
    for principle in 1..=6 {
        let prefix = format!("P{principle} PASS ");
        assert_eq!(
            stdout
                .lines()
                .filter(|line| line.starts_with(&prefix))
                .count(),
            1,
            "no `{prefix}` line in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Not a terminal: no progress bar may leak into the output.
    assert!(!stdout.contains('\r') && !stderr.contains('\r'), "{stderr}");
}
