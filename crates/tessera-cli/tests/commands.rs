//! The everyday commands against `tessera serve` run as a child process: owners, records, sharing, revocation,
//! queries, attachments, and the exit codes scripts rely on.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::process::Command;

use common::{Cli, Served};

#[test]
fn owners_share_records_and_attachments_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let served = Served::start(&dir.path().join("data"));
    let cli = Cli {
        served: &served,
        dir: dir.path().to_owned(),
    };

    let alice = cli.json(&["owner", "create", "--kind", "hcp", "--out", "alice.key"]);
    let bob = cli.json(&["owner", "create", "--kind", "hcp", "--out", "bob.key"]);
    let alice_id = alice["owner"].as_str().unwrap();
    let bob_id = bob["owner"].as_str().unwrap();
    assert_eq!(alice["short_code"].as_str().unwrap().len(), 24);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("alice.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let own = cli.json(&["owner", "fingerprint", "-k", "alice.key"]);
    assert_eq!(own["short_code"], alice["short_code"]);
    let seen = cli.json(&["owner", "fingerprint", "-k", "bob.key", "--of", alice_id]);
    assert_eq!(seen["bundles"][0]["short_code"], alice["short_code"]);

    // A patient registered below Alice.
    let patient = cli.json(&[
        "owner",
        "create",
        "--kind",
        "patient",
        "--out",
        "patient.key",
        "--parent-key",
        "alice.key",
    ]);
    assert!(patient["owner"].is_string());

    let note = cli.json(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Note",
        "--encrypt",
        "text",
        r#"{"text": "allergic to penicillin", "lang": "en"}"#,
    ]);
    let note_id = note["id"].as_str().unwrap();
    assert_eq!(note["rev"], 1);

    // Bob cannot read it yet: exit code 1 and a "not found" message.
    let refused = cli.run(&["entity", "get", "-k", "bob.key", "--type", "Note", note_id]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not found"));

    let shared = cli.json(&[
        "entity",
        "share",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note_id,
        "--with",
        bob_id,
    ]);
    assert_eq!(shared["rev"], 2);
    let read = cli.json(&["entity", "get", "-k", "bob.key", "--type", "Note", note_id]);
    assert_eq!(read["content"]["text"], "allergic to penicillin");
    assert_eq!(read["permission"], "read");
    // Trust on first use: Bob's pins now hold Alice's fingerprint.
    let pins = std::fs::read_to_string(dir.path().join("bob.key.known")).unwrap();
    assert!(pins.contains(alice["fingerprint"].as_str().unwrap()));

    let updated = cli.json(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Note",
        "--encrypt",
        "text",
        "--update",
        note_id,
        "--rev",
        "2",
        r#"{"text": "allergic to penicillin and latex", "lang": "en"}"#,
    ]);
    assert_eq!(updated["rev"], 3);

    // Children by search tag.
    let visit = cli.json(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Contact",
        "--parent",
        note_id,
        "--parent-type",
        "Note",
        r#"{"reason": "check-up"}"#,
    ]);
    let children = cli.json(&[
        "entity",
        "query",
        "-k",
        "alice.key",
        "--type",
        "Contact",
        "--parent",
        note_id,
        "--parent-type",
        "Note",
    ]);
    assert_eq!(children.as_array().unwrap().len(), 1);
    assert_eq!(children[0]["id"], visit["id"]);

    // Records by who created, shared or received them.
    let query = |key: &str, selection: &[&str]| {
        let mut args = vec!["entity", "query", "-k", key, "--type", "Note"];
        args.extend_from_slice(selection);
        cli.json(&args)
    };
    let created = query("alice.key", &["--created"]);
    assert_eq!(created.as_array().unwrap().len(), 1);
    assert_eq!(created[0]["id"], note["id"]);
    assert_eq!(
        query("alice.key", &["--shared-with", bob_id])[0]["id"],
        note["id"]
    );
    assert_eq!(
        query("bob.key", &["--shared-by", alice_id])[0]["id"],
        note["id"]
    );
    assert!(
        query("bob.key", &["--created"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    let unselected = cli.run(&["entity", "query", "-k", "bob.key", "--type", "Note"]);
    assert_eq!(unselected.status.code(), Some(2), "a usage error");

    // Attachments.
    let content: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(dir.path().join("scan.bin"), &content).unwrap();
    let uploaded = cli.json(&[
        "attachment",
        "upload",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note_id,
        "scan.bin",
    ]);
    let attachment = uploaded["attachment"].as_str().unwrap();
    let download = cli.run(&[
        "attachment",
        "download",
        "-k",
        "bob.key",
        "--type",
        "Note",
        note_id,
        attachment,
        "-o",
        "copy.bin",
    ]);
    assert!(
        download.status.success(),
        "{}",
        String::from_utf8_lossy(&download.stderr)
    );
    assert_eq!(std::fs::read(dir.path().join("copy.bin")).unwrap(), content);
    // To standard output, byte for byte, with no temporary file left beside the output.
    let piped = cli.run(&[
        "attachment",
        "download",
        "-k",
        "bob.key",
        "--type",
        "Note",
        note_id,
        attachment,
        "-o",
        "-",
    ]);
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(piped.stdout == content, "standard output differs");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Revoke and rotate: Bob is refused again.
    let rotated = cli.json(&[
        "entity",
        "revoke",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note_id,
        "--from",
        bob_id,
        "--rotate",
    ]);
    assert_eq!(rotated["reencrypted_attachments"], 1);
    let refused = cli.run(&["entity", "get", "-k", "bob.key", "--type", "Note", note_id]);
    assert_eq!(refused.status.code(), Some(1));
    let read = cli.json(&[
        "entity",
        "get",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note_id,
    ]);
    assert_eq!(read["content"]["text"], "allergic to penicillin and latex");
}

#[test]
fn usage_errors_exit_with_2_and_help_with_0() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .output()
            .unwrap()
    };
    assert_eq!(run(&["--help"]).status.code(), Some(0));
    assert_eq!(run(&["entity", "share", "--help"]).status.code(), Some(0));
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        run(&["owner", "create", "--kind", "wizard", "--out", "x"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&["entity", "get", "--type", "Note", "not-a-uuid", "-k", "k"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn failures_exit_with_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing_key = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["owner", "fingerprint", "-k"])
        .arg(dir.path().join("absent.key"))
        .output()
        .unwrap();
    assert_eq!(missing_key.status.code(), Some(1));
    let serve_without_token = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("TESSERA_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(serve_without_token.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&serve_without_token.stderr).contains("TESSERA_ADMIN_TOKEN"));
}
