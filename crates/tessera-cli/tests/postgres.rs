//! `tessera serve --database postgres://…`: the server keeps its records in PostgreSQL (a fresh database on the
//! test server: `TESSERA_TEST_POSTGRES`, or a throwaway cluster the store's test harness starts).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{Cli, Served};
use tessera_store::conformance::TestDatabase;

#[test]
fn serve_keeps_records_in_postgres() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let served = Served::start_on_database(&data_dir, database.url());
    let cli = Cli {
        served: &served,
        dir: dir.path().to_owned(),
    };
    let alice = cli.json(&["owner", "create", "--kind", "hcp", "--out", "alice.key"]);
    assert!(alice["owner"].is_string());
    let note = cli.json(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Note",
        "--encrypt",
        "text",
        r#"{"text": "kept in PostgreSQL", "lang": "en"}"#,
    ]);
    let note_id = note["id"].as_str().unwrap().to_owned();
    assert_eq!(note["rev"], 1);
    let read = cli.json(&[
        "entity",
        "get",
        "-k",
        "alice.key",
        "--type",
        "Note",
        &note_id,
    ]);
    assert_eq!(read["content"]["text"], "kept in PostgreSQL");
    drop(served);

    // Nothing went to redb; a new server on the same database reads the record and the owner back.
    assert!(!data_dir.join("tessera.redb").exists());
    let again = Served::start_on_database(&dir.path().join("other"), database.url());
    let cli = Cli {
        served: &again,
        dir: dir.path().to_owned(),
    };
    let read = cli.json(&[
        "entity",
        "get",
        "-k",
        "alice.key",
        "--type",
        "Note",
        &note_id,
    ]);
    assert_eq!(read["content"]["text"], "kept in PostgreSQL");
}

#[test]
fn serve_names_an_unreachable_database_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(format!(
            "postgres://tessera:hunter2-secret@127.0.0.1:{port}/tessera"
        ))
        .arg("--data-dir")
        .arg(dir.path())
        .env("TESSERA_ADMIN_TOKEN", common::ADMIN)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unreachable"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
