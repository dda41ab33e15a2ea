//! User story: a doctor attaches a scan to a note, shares the note, and the colleague downloads the scan whole and
//! reads a byte range of it (only the 64 KiB segments holding it are fetched and decrypted). The server stores the
//! scan in a temporary redb database. Run with `cargo run -p tessera --example attachments`.

use std::sync::Arc;

use anyhow::ensure;
use serde_json::json;
use tessera::{Client, EntityType, OwnerKind, RsaKeySize, Session, Share, Tofu, register_owner};

const ADMIN_TOKEN: &str = "example-admin-token";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(tessera_store::RedbStore::open(
        dir.path().join("tessera.redb"),
    )?);
    let config = tessera_transport::ServerConfig::new("127.0.0.1:0".parse()?, ADMIN_TOKEN);
    let server = tessera_transport::Server::start(config, store).await?;
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
    let (attachment, rev) = alice
        .add_attachment(&saved.entity, saved.rev, &scan)
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
