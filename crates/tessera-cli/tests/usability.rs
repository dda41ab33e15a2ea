//! What a new user meets: manifests that cannot leak by mistake.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{Cli, Served, any_file_contains};

const MARKER: &str = "MARKER-allergic-to-penicillin";

#[test]
fn a_misspelt_encrypt_path_fails_and_never_stores_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = Served::start(&data);
    let cli = Cli {
        served: &served,
        dir: dir.path().to_owned(),
    };
    cli.json(&["owner", "create", "--kind", "hcp", "--out", "hcp.key"]);
    let content = format!(r#"{{"text": "{MARKER}", "lang": "PUBLIC-lang-value"}}"#);

    let stderr = cli.fails(&[
        "entity",
        "put",
        "-k",
        "hcp.key",
        "--type",
        "Note",
        "--encrypt",
        "txt",
        &content,
    ]);
    for expected in [
        "`txt`",
        "matches no field of this Note record",
        "`text`",
        "nothing was written",
        "stored in clear",
        "Correct the path",
    ] {
        assert!(stderr.contains(expected), "{expected:?} not in {stderr:?}");
    }
    assert!(!stderr.contains(MARKER), "{stderr}");
    assert!(
        !any_file_contains(&data, MARKER.as_bytes()),
        "plaintext stored"
    );

    // The right path encrypts the field: still no marker in the database.
    let saved = cli.json(&[
        "entity",
        "put",
        "-k",
        "hcp.key",
        "--type",
        "Note",
        "--encrypt",
        "text",
        &content,
    ]);
    assert_eq!(saved["rev"], 1);
    assert!(
        !any_file_contains(&data, MARKER.as_bytes()),
        "plaintext stored"
    );
    // A field left public is in the database in clear, so the search above does find what is stored.
    assert!(any_file_contains(&data, b"PUBLIC-lang-value"));
}
