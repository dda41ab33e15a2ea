//! What a new user meets: manifests that cannot leak by mistake, errors that say what happened and what to do, and
//! the commands and behaviours of issue 18.
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

/// A server, an HCP with a note, and a second HCP.
struct World {
    dir: tempfile::TempDir,
    served: Served,
    note: String,
    bob: String,
}

impl World {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let served = Served::start(&dir.path().join("data"));
        let world = Self {
            dir,
            served,
            note: String::new(),
            bob: String::new(),
        };
        let cli = world.cli();
        cli.json(&["owner", "create", "--kind", "hcp", "--out", "alice.key"]);
        let bob = cli.json(&["owner", "create", "--kind", "hcp", "--out", "bob.key"]);
        let note = cli.json(&[
            "entity",
            "put",
            "-k",
            "alice.key",
            "--type",
            "Note",
            r#"{"text": "hello"}"#,
        ]);
        Self {
            note: note["id"].as_str().unwrap().to_owned(),
            bob: bob["owner"].as_str().unwrap().to_owned(),
            ..world
        }
    }

    fn cli(&self) -> Cli<'_> {
        Cli {
            served: &self.served,
            dir: self.dir.path().to_owned(),
        }
    }
}

#[test]
fn errors_say_what_happened_and_what_to_do() {
    let world = World::start();
    let cli = world.cli();
    let note = world.note.as_str();

    // A wrong --type is not reported as tampering.
    let stderr = cli.fails(&[
        "entity",
        "get",
        "-k",
        "alice.key",
        "--type",
        "Patient",
        note,
    ]);
    assert!(!stderr.contains("another entity"), "{stderr}");
    // This owner holds no access key of type Patient, so the server finds nothing of that type; a session that
    // does is told the record's real type (the SDK's `records_of_another_type_are_refused`).
    assert!(
        stderr.contains("check its id and type") || stderr.contains("is of type Note, not Patient"),
        "{stderr}"
    );

    // A stale revision: said once, with the revisions as numbers and what to do.
    let stderr = cli.fails(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Note",
        "--update",
        note,
        "--rev",
        "7",
        r#"{"text": "x"}"#,
    ]);
    assert_eq!(stderr.matches("conflict").count(), 1, "{stderr}");
    assert!(stderr.contains("at revision 1, not 7"), "{stderr}");
    assert!(stderr.contains("read it again"), "{stderr}");
    let stderr = cli.fails(&[
        "entity",
        "delete",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
        "--rev",
        "7",
    ]);
    assert_eq!(stderr.matches("conflict").count(), 1, "{stderr}");
    assert!(!stderr.contains("Some("), "{stderr}");
    assert!(
        stderr.contains("revision 1") && stderr.contains("read it again"),
        "{stderr}"
    );

    // Sharing with an owner that does not exist.
    let stranger = "0b6a4e4c-1d35-4f57-9f5a-2c4e8c0b6a11";
    let stderr = cli.fails(&[
        "entity",
        "share",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
        "--with",
        stranger,
    ]);
    assert!(
        stderr.contains(&format!(
            "owner {stranger} is not registered on this server"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("no such record"), "{stderr}");

    // A wrong administrator token.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["owner", "create", "--kind", "hcp", "--out", "carol.key"])
        .env("TESSERA_SERVER", &world.served.url)
        .env("TESSERA_ADMIN_TOKEN", "not-the-servers-admin-token")
        .current_dir(world.dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the server refused the administrator token"),
        "{stderr}"
    );
    assert!(!stderr.contains("expired session"), "{stderr}");
    assert!(!world.dir.path().join("carol.key").exists());

    // An unreachable server: its URL, and what to check.
    let stderr = cli.fails(&[
        "whoami",
        "-k",
        "alice.key",
        "--server",
        "http://127.0.0.1:1",
    ]);
    assert!(
        stderr.contains("cannot reach the server at http://127.0.0.1:1"),
        "{stderr}"
    );
    assert!(stderr.contains("check the server's URL"), "{stderr}");
    assert!(stderr.contains("onnect"), "the cause is named: {stderr}");
    assert_eq!(stderr.matches("transport fail").count(), 1, "{stderr}");

    // A URL without a scheme.
    let authority = world.served.url.trim_start_matches("http://");
    for args in [
        vec!["whoami", "-k", "alice.key", "--server", authority],
        vec![
            "owner", "create", "--kind", "hcp", "--out", "dave.key", "--server", authority,
        ],
    ] {
        let stderr = cli.fails(&args);
        assert!(stderr.contains("no scheme"), "{stderr}");
        assert!(stderr.contains("http://127.0.0.1:8080"), "{stderr}");
    }
}

#[test]
fn a_second_server_on_a_locked_database_says_so() {
    let world = World::start();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(world.dir.path().join("data"))
        .env("TESSERA_ADMIN_TOKEN", common::ADMIN)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("locked by another process"), "{stderr}");
}

#[test]
fn whoami_attachments_pins_and_no_silent_overwrite() {
    let world = World::start();
    let cli = world.cli();
    let note = world.note.as_str();

    let me = cli.json(&["whoami", "-k", "alice.key"]);
    let own = cli.json(&["owner", "fingerprint", "-k", "alice.key"]);
    assert_eq!(me["owner"], own["owner"]);
    assert_eq!(me["short_code"], own["short_code"]);
    assert_eq!(me["server"], world.served.url.as_str());

    // Attachments are listed.
    std::fs::write(world.dir.path().join("scan.bin"), b"scan").unwrap();
    let uploaded = cli.json(&[
        "attachment",
        "upload",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
        "scan.bin",
    ]);
    let listed = cli.json(&[
        "attachment",
        "list",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
    ]);
    assert_eq!(listed[0]["id"], uploaded["attachment"]);
    assert_eq!(listed[0]["bytes"], 4);

    // The first contact with a partner is said, with the short code pinned.
    let output = cli.run(&[
        "entity",
        "share",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
        "--with",
        &world.bob,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let bob = cli.json(&["owner", "fingerprint", "-k", "bob.key"]);
    let short_code = bob["short_code"].as_str().unwrap();
    assert!(
        stderr.contains(&format!("first contact with owner {}", world.bob)),
        "{stderr}"
    );
    assert!(stderr.contains(short_code), "{stderr}");
    // Known from then on: not said again.
    let output = cli.run(&["entity", "get", "-k", "alice.key", "--type", "Note", note]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("first contact"));

    // A download does not replace a file without --force.
    let attachment = uploaded["attachment"].as_str().unwrap();
    std::fs::write(world.dir.path().join("keep.bin"), b"mine").unwrap();
    let download = |extra: &[&str]| {
        let mut args = vec![
            "attachment",
            "download",
            "-k",
            "alice.key",
            "--type",
            "Note",
            note,
            attachment,
            "-o",
            "keep.bin",
        ];
        args.extend_from_slice(extra);
        cli.run(&args)
    };
    let refused = download(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("keep.bin exists; pass --force"), "{stderr}");
    assert_eq!(
        std::fs::read(world.dir.path().join("keep.bin")).unwrap(),
        b"mine"
    );
    assert!(download(&["--force"]).status.success());
    assert_eq!(
        std::fs::read(world.dir.path().join("keep.bin")).unwrap(),
        b"scan"
    );
}

#[test]
fn owner_create_writes_the_key_file_before_registering() {
    let world = World::start();
    let cli = world.cli();
    // The server is unreachable: the key file's directory is refused first, so nothing was sent.
    let stderr = cli.fails(&[
        "owner",
        "create",
        "--kind",
        "hcp",
        "--server",
        "http://127.0.0.1:1",
        "--out",
        "/nonexistent-tessera-dir/x.key",
    ]);
    assert!(
        stderr.contains("cannot write the key file /nonexistent-tessera-dir/x.key"),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot reach"), "{stderr}");
    // A failed registration leaves no key file (and no temporary file) behind.
    let stderr = cli.fails(&[
        "owner",
        "create",
        "--kind",
        "hcp",
        "--server",
        "http://127.0.0.1:1",
        "--out",
        "y.key",
    ]);
    assert!(stderr.contains("cannot reach"), "{stderr}");
    let names: Vec<String> = std::fs::read_dir(world.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|name| name == "y.key" || name.starts_with(".tmp")),
        "{names:?}"
    );
    // Below a parent too.
    let child = cli.json(&[
        "owner",
        "create",
        "--kind",
        "patient",
        "--out",
        "p.key",
        "--parent-key",
        "alice.key",
    ]);
    assert_eq!(
        cli.json(&["whoami", "-k", "p.key"])["owner"],
        child["owner"]
    );
}

#[test]
fn serve_refuses_short_admin_tokens_and_logs_without_colours_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TESSERA_ADMIN_TOKEN", "x")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("TESSERA_ADMIN_TOKEN is 1 characters long"),
        "{stderr}"
    );
    assert!(stderr.contains("at least 16"), "{stderr}");

    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TESSERA_ADMIN_TOKEN", common::ADMIN)
        .env("RUST_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let text = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains("tessera server listening") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log_path).unwrap_or(text);
    assert!(text.contains(" INFO "), "the log is in the file: {text}");
    assert!(!text.contains('\u{1b}'), "colour codes in {text:?}");
}

#[test]
fn the_server_log_names_no_owner_and_no_record_at_info_level() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let served = Served::start_logging(
        &dir.path().join("data"),
        std::fs::File::create(&log_path).unwrap(),
    );
    let cli = Cli {
        served: &served,
        dir: dir.path().to_owned(),
    };
    let alice = cli.json(&["owner", "create", "--kind", "hcp", "--out", "alice.key"]);
    let alice = alice["owner"].as_str().unwrap();
    let note = cli.json(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Note",
        r#"{"text": "hello"}"#,
    ]);
    let note = note["id"].as_str().unwrap();
    cli.json(&["entity", "get", "-k", "alice.key", "--type", "Note", note]);
    drop(served);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.contains("session opened"), "logins are logged: {log}");
    assert!(
        log.contains("route=/v1/auth/login"),
        "lines carry the route of their request: {log}"
    );
    // Ids appear in several spellings (with or without hyphens); none of them may be in the log.
    for id in [alice, note] {
        let bare = id.replace('-', "");
        assert!(
            !log.contains(id) && !log.contains(&bare),
            "{id} is in the info-level log: {log}"
        );
    }
}

#[test]
fn admin_compact_gives_deleted_space_back_and_refuses_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let served = Served::start(&data);
    let cli = Cli {
        served: &served,
        dir: dir.path().to_owned(),
    };
    let compact = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(["admin", "compact", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    cli.json(&["owner", "create", "--kind", "hcp", "--out", "alice.key"]);
    let note = cli.json(&[
        "entity",
        "put",
        "-k",
        "alice.key",
        "--type",
        "Note",
        r#"{"text": "x"}"#,
    ]);
    let note = note["id"].as_str().unwrap();
    std::fs::write(dir.path().join("scan.bin"), vec![7u8; 4 << 20]).unwrap();
    let uploaded = cli.json(&[
        "attachment",
        "upload",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
        "scan.bin",
    ]);
    let rev = uploaded["rev"].as_u64().unwrap().to_string();
    cli.json(&[
        "entity",
        "delete",
        "-k",
        "alice.key",
        "--type",
        "Note",
        note,
        "--rev",
        &rev,
    ]);

    // While the server runs, the database is its own.
    let refused = compact();
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("stop the server"), "{stderr}");

    drop(served);
    let output = compact();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let (before, after) = (
        done["before_bytes"].as_u64().unwrap(),
        done["after_bytes"].as_u64().unwrap(),
    );
    assert!(before > 4 << 20, "the upload grew the file: {done}");
    assert!(
        after * 2 < before,
        "the deleted attachment's space is given back: {done}"
    );
}

#[test]
fn key_files_are_protected_by_a_passphrase() {
    let world = World::start();
    let cli = world.cli();
    let key_path = world.dir.path().join("alice.key");
    let plain = std::fs::read_to_string(&key_path).unwrap();
    let pem_line = plain
        .lines()
        .find(|line| !line.contains(':') && !line.starts_with("-----"))
        .unwrap()
        .to_owned();

    // A plaintext key file still works, with a warning that says what to do.
    let output = cli.run(&["whoami", "-k", "alice.key"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("alice.key holds its private key unencrypted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tessera keys protect -k alice.key"),
        "{stderr}"
    );
    let before = cli.json(&["whoami", "-k", "alice.key"]);

    let with_passphrase = |passphrase: Option<&str>, args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"));
        command
            .args(args)
            .env("TESSERA_SERVER", &world.served.url)
            .env_remove("TESSERA_PASSPHRASE")
            .current_dir(world.dir.path())
            .stdin(std::process::Stdio::null());
        if let Some(passphrase) = passphrase {
            command.env("TESSERA_PASSPHRASE", passphrase);
        }
        command.output().unwrap()
    };
    let protect = [
        "keys",
        "protect",
        "-k",
        "alice.key",
        "--memory-kib",
        "64",
        "--iterations",
        "1",
    ];
    let output = with_passphrase(None, &protect);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("set TESSERA_PASSPHRASE"), "{stderr}");
    assert!(
        with_passphrase(Some("a long passphrase"), &protect)
            .status
            .success()
    );
    let protected = std::fs::read_to_string(&key_path).unwrap();
    assert!(
        protected.starts_with("tessera-owner-key: 2\n"),
        "{protected}"
    );
    assert!(
        !protected.contains(&pem_line),
        "the private key is in clear"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // Read with the passphrase, refused without it or with another, and not protected twice.
    let output = with_passphrase(Some("a long passphrase"), &["whoami", "-k", "alice.key"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("unencrypted"), "{stderr}");
    let after: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(after["owner"], before["owner"]);
    let output = with_passphrase(Some("another one"), &["whoami", "-k", "alice.key"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the passphrase does not open this key file"),
        "{stderr}"
    );
    let output = with_passphrase(None, &["whoami", "-k", "alice.key"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("set TESSERA_PASSPHRASE"));
    let output = with_passphrase(Some("a long passphrase"), &protect);
    assert!(String::from_utf8_lossy(&output.stderr).contains("already protected"));
}

#[test]
fn owner_create_can_write_a_protected_key_file() {
    let world = World::start();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(args)
            .env("TESSERA_SERVER", &world.served.url)
            .env("TESSERA_ADMIN_TOKEN", common::ADMIN)
            .env("TESSERA_PASSPHRASE", "a long passphrase")
            .current_dir(world.dir.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let created = run(&[
        "owner",
        "create",
        "--kind",
        "hcp",
        "--out",
        "carol.key",
        "--protect",
        "--memory-kib",
        "64",
        "--iterations",
        "1",
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&created.stdout).unwrap();
    let text = std::fs::read_to_string(world.dir.path().join("carol.key")).unwrap();
    assert!(text.starts_with("tessera-owner-key: 2\n"), "{text}");
    assert!(!text.contains("BEGIN PRIVATE KEY"));
    let me = run(&["whoami", "-k", "carol.key"]);
    assert!(
        me.status.success(),
        "{}",
        String::from_utf8_lossy(&me.stderr)
    );
    let me: serde_json::Value = serde_json::from_slice(&me.stdout).unwrap();
    assert_eq!(me["owner"], created["owner"]);
}
