//! Interoperability with implementations we did not write: Python's `cryptography` package and the
//! system's `openssl` command open our AES-GCM sealed boxes and RSA-OAEP wraps, and we open theirs.
//!
//! Python also re-derives an owner's keys from its RSA key, following docs/formats.md alone.
//!
//! A peer that is not installed is skipped with a message; if neither is installed the test fails
//! unless `TESSERA_ALLOW_NO_INTEROP_PEER=1` is set, because `.ci/run` installs `cryptography`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use tessera_primitives::{
    ALG_AES_256_GCM, AeadKey, NONCE_LEN, RsaKeySize, RsaPrivateKey, SEALED_BOX_HEADER_LEN,
    SEALED_BOX_VERSION, Secret32, WrappedKey,
};

const LABEL: &[u8] = b"exchange-data-id|fingerprint";
const AAD: &[u8] = b"Patient|0b9f|v1";
const PLAINTEXT: &[u8] = b"{\"note\":\"allergic to penicillin\"}";

fn python_peer() -> Option<PathBuf> {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|out| out.status.success());
    ok.then(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/peer.py"))
}

fn openssl_available() -> bool {
    Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|out| out.status.success())
}

fn run(command: &mut Command) -> Result<Vec<u8>> {
    let out = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

fn python(peer: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let hex_out = run(Command::new("python3").arg(peer).args(args))?;
    Ok(hex::decode(String::from_utf8(hex_out)?.trim())?)
}

/// A fresh RSA key, written as PKCS#8 and SPKI PEM files for the peers (so our encodings are tested too).
struct KeyFiles {
    key: RsaPrivateKey,
    dir: tempfile::TempDir,
}

impl KeyFiles {
    fn new() -> Result<Self> {
        let key = RsaPrivateKey::generate(RsaKeySize::Bits2048)?;
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("key.pem"),
            key.to_pkcs8_pem()?.expose_secret(),
        )?;
        std::fs::write(dir.path().join("pub.pem"), key.public_key().to_spki_pem()?)?;
        Ok(Self { key, dir })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[test]
fn python_cryptography_interoperates() -> Result<()> {
    let Some(peer) = python_peer() else {
        return skip_or_fail("python3 with the `cryptography` package");
    };

    // Our sealed box, opened by Python.
    let key = AeadKey::from_secret(Secret32::generate()?);
    let sealed = key.seal(PLAINTEXT, AAD)?;
    ensure!(sealed[..2] == [SEALED_BOX_VERSION, ALG_AES_256_GCM]);
    let (nonce, body) = sealed[2..].split_at(NONCE_LEN);
    let opened = python(
        &peer,
        &[
            "aesgcm-open",
            &hex::encode(key.expose_secret()),
            &hex::encode(nonce),
            &hex::encode(body),
            &hex::encode(AAD),
        ],
    )?;
    ensure!(opened == PLAINTEXT, "python opened something else");

    // Python's AES-GCM output, framed as a sealed box and opened by us.
    let nonce = [0x24; NONCE_LEN];
    let theirs = python(
        &peer,
        &[
            "aesgcm-seal",
            &hex::encode(key.expose_secret()),
            &hex::encode(nonce),
            &hex::encode(PLAINTEXT),
            &hex::encode(AAD),
        ],
    )?;
    let mut framed = vec![SEALED_BOX_VERSION, ALG_AES_256_GCM];
    framed.extend_from_slice(&nonce);
    framed.extend_from_slice(&theirs);
    ensure!(framed.len() == SEALED_BOX_HEADER_LEN + PLAINTEXT.len() + 16);
    ensure!(key.open(&framed, AAD)? == PLAINTEXT);
    ensure!(key.open(&framed, b"other").is_err());

    // RSA-OAEP both ways, with a label.
    let files = KeyFiles::new()?;
    let secret = [0x5c; 32];
    let wrapped = files.key.public_key().wrap(&secret, LABEL)?;
    let unwrapped = python(
        &peer,
        &[
            "oaep-decrypt",
            &files.path("key.pem"),
            &hex::encode(LABEL),
            &hex::encode(wrapped.rsa_ciphertext()),
        ],
    )?;
    ensure!(unwrapped == secret, "python unwrapped something else");
    let theirs = python(
        &peer,
        &[
            "oaep-encrypt",
            &files.path("pub.pem"),
            &hex::encode(LABEL),
            &hex::encode(secret),
        ],
    )?;
    let ours = files
        .key
        .unwrap(&WrappedKey::from_rsa_ciphertext(&theirs), LABEL)?;
    ensure!(ours.expose_secret() == secret);
    ensure!(
        files
            .key
            .unwrap(&WrappedKey::from_rsa_ciphertext(&theirs), b"other label")
            .is_err()
    );
    Ok(())
}

#[test]
fn python_reproduces_the_owner_key_derivation() -> Result<()> {
    let Some(peer) = python_peer() else {
        return skip_or_fail("python3 with the `cryptography` package");
    };
    // A fresh key each run: Python derives the signing and self keys from the PKCS#8 file on its own (P5).
    let files = KeyFiles::new()?;
    let owner =
        tessera_keys::OwnerKeys::derive(tessera_keys::OwnerId::generate()?, files.key.clone(), 0)?;
    let script = peer.with_file_name("derive.py");
    let out = String::from_utf8(run(Command::new("python3")
        .arg(script)
        .arg(files.path("key.pem")))?)?;
    let expected = format!(
        "{} {}",
        hex::encode(owner.verifying_key().as_bytes()),
        hex::encode(owner.self_key().expose_secret())
    );
    ensure!(
        out.trim() == expected,
        "python derived {out}, we derived {expected}"
    );
    Ok(())
}

#[test]
fn openssl_command_interoperates_on_rsa_oaep() -> Result<()> {
    if !openssl_available() {
        return skip_or_fail("the openssl command");
    }
    // `openssl enc` has no AEAD mode, so this peer covers RSA-OAEP only; Python covers AES-GCM.
    let files = KeyFiles::new()?;
    let secret = [0x3a; 32];
    let options = |cmd: &mut Command| {
        cmd.args([
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ])
        .args([
            "-pkeyopt",
            &format!("rsa_oaep_label:{}", hex::encode(LABEL)),
        ]);
    };

    let wrapped = files.key.public_key().wrap(&secret, LABEL)?;
    std::fs::write(files.path("ours.bin"), wrapped.rsa_ciphertext())?;
    let mut decrypt = Command::new("openssl");
    decrypt.args([
        "pkeyutl",
        "-decrypt",
        "-inkey",
        &files.path("key.pem"),
        "-in",
        &files.path("ours.bin"),
    ]);
    options(&mut decrypt);
    ensure!(
        run(&mut decrypt)? == secret,
        "openssl unwrapped something else"
    );

    std::fs::write(files.path("secret.bin"), secret)?;
    let mut encrypt = Command::new("openssl");
    encrypt.args([
        "pkeyutl",
        "-encrypt",
        "-pubin",
        "-inkey",
        &files.path("pub.pem"),
        "-in",
        &files.path("secret.bin"),
    ]);
    options(&mut encrypt);
    let theirs = run(&mut encrypt)?;
    ensure!(
        files
            .key
            .unwrap(&WrappedKey::from_rsa_ciphertext(&theirs), LABEL)?
            .expose_secret()
            == secret
    );
    Ok(())
}

fn skip_or_fail(peer: &str) -> Result<()> {
    let python = python_peer().is_some();
    let openssl = openssl_available();
    if !python && !openssl && std::env::var_os("TESSERA_ALLOW_NO_INTEROP_PEER").is_none() {
        bail!(
            "no interop peer installed: install Python's `cryptography` (pip install cryptography) or openssl, or set TESSERA_ALLOW_NO_INTEROP_PEER=1"
        );
    }
    eprintln!("SKIPPED: {peer} is not installed; the other peer covers interoperability");
    Ok(())
}
