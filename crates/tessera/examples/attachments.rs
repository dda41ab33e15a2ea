//! User story: a doctor streams a scan into an attachment of a note (sealed and sent one 64 KiB segment at a time),
//! shares the note, and the colleague streams the scan back (decrypted segment by segment as it arrives, counting
//! the bytes as a progress bar would), downloads it whole, and reads a byte range of it (only the segments holding it
//! are fetched and decrypted). The server stores the scan in a temporary redb database.
//! Run with `cargo run -p tessera-sdk --example attachments`.

use std::io::Cursor;
use std::sync::Arc;

use anyhow::ensure;
use serde_json::json;
use tessera::{Client, EntityType, OwnerKind, RsaKeySize, Session, Share, Tofu, register_owner};
use tokio::io::AsyncReadExt;

const ADMIN_TOKEN: &str = "example-admin-token";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(tessera_store::RedbStore::open(
        dir.path().join("tessera.redb"),
    )?);
    let config = tessera_server::ServerConfig::new("127.0.0.1:0".parse()?, ADMIN_TOKEN);
    let server = tessera_server::Server::start(config, store).await?;
    let url = format!("http://{}", server.local_addr());

    let alice_keys = register_owner(
        &Client::new(&url),
        ADMIN_TOKEN,
        OwnerKind::Hcp,
        RsaKeySize::Bits2048,
    )
    .await?;
    let bob_keys = register_owner(
        &Client::new(&url),
        ADMIN_TOKEN,
        OwnerKind::Hcp,
        RsaKeySize::Bits2048,
    )
    .await?;
    let bob_id = bob_keys.owner();

    let alice = Session::login(Client::new(&url), alice_keys, Tofu::new()).await?;
    let note = EntityType::new("Note")?;
    let saved = alice
        .create(&note, &json!({"text": "X-ray attached"}))
        .await?;
    let scan: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    // Any `AsyncRead` will do (a `tokio::fs::File`, a socket); it must yield exactly the announced length.
    let (attachment, rev) = alice
        .add_attachment_stream(
            &saved.entity,
            saved.rev,
            Cursor::new(scan.clone()),
            scan.len() as u64,
        )
        .await?;
    alice.share(&saved.entity, &[Share::read(bob_id)]).await?;
    println!(
        "Alice attached {} bytes as {attachment} (note now at revision {rev}) and shared the note",
        scan.len()
    );

    let bob = Session::login(Client::new(&url), bob_keys, Tofu::new()).await?;
    let record = bob.get_json(&saved.entity).await?;
    let info = record
        .attachments
        .first()
        .ok_or_else(|| anyhow::anyhow!("no attachment"))?;
    println!(
        "Bob sees attachment {}: {} bytes, {} bytes encrypted",
        info.id, info.len, info.encrypted_len
    );

    // Streamed: memory holds one segment whatever the size; a failure to decrypt is an error of a read.
    let mut stream = bob.attachment_stream(&saved.entity, attachment).await?;
    let total = stream.len();
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 100_000];
    let mut reads = 0;
    loop {
        let n =
            stream.read(&mut buffer).await.map_err(|error| {
                match tessera::Error::in_io_error(&error) {
                    Some(inner) if inner.is_crypto() => {
                        anyhow::anyhow!("the scan was tampered with")
                    }
                    _ => error.into(),
                }
            })?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(buffer.get(..n).unwrap_or_default());
        reads += 1;
    }
    ensure!(received == scan, "the streamed scan differs");
    println!(
        "Bob streamed the scan: {}/{total} bytes in {reads} reads",
        received.len()
    );

    let whole = bob.attachment(&saved.entity, attachment).await?;
    ensure!(whole == scan, "the downloaded scan differs");
    let range = bob
        .attachment_range(&saved.entity, attachment, 500_000..500_100)
        .await?;
    ensure!(
        Some(range.as_slice()) == scan.get(500_000..500_100),
        "the range differs"
    );
    println!("Bob downloaded the scan whole and read bytes 500000..500100 from one segment");

    server.shutdown().await;
    println!("ok");
    Ok(())
}
