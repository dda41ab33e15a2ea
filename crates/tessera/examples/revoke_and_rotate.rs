//! User story: a doctor shares a note with two colleagues, then revokes one and rotates the note's key: the revoked
//! colleague gets "not found" and cannot open the new ciphertext even with the key it had; the other still reads.
//! Run with `cargo run -p tessera-sdk --example revoke_and_rotate`.

use std::sync::Arc;

use anyhow::ensure;
use serde_json::json;
use tessera::{Client, EntityType, OwnerKind, RsaKeySize, Session, Share, Tofu, register_owner};
use tessera_store::Store;

const ADMIN_TOKEN: &str = "example-admin-token";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = tessera_server::ServerConfig::new("127.0.0.1:0".parse()?, ADMIN_TOKEN);
    let store = Arc::new(tessera_store::MemoryStore::new());
    let server = tessera_server::Server::start(config, store.clone()).await?;
    let url = format!("http://{}", server.local_addr());
    let register = |kind| {
        let client = Client::new(&url);
        async move { register_owner(&client, ADMIN_TOKEN, kind, RsaKeySize::Bits2048).await }
    };

    let alice = Session::login(
        Client::new(&url),
        register(OwnerKind::Hcp).await?,
        Tofu::new(),
    )
    .await?;
    let bob = Session::login(
        Client::new(&url),
        register(OwnerKind::Hcp).await?,
        Tofu::new(),
    )
    .await?;
    let carol = Session::login(
        Client::new(&url),
        register(OwnerKind::Hcp).await?,
        Tofu::new(),
    )
    .await?;

    let note = EntityType::new("Note")?;
    let saved = alice
        .create(&note, &json!({"text": "suspected fracture"}))
        .await?;
    alice
        .share(
            &saved.entity,
            &[Share::read(bob.owner()), Share::read(carol.owner())],
        )
        .await?;
    ensure!(
        bob.get_json(&saved.entity).await?.content.get("text")
            == Some(&json!("suspected fracture"))
    );
    ensure!(
        carol.get_json(&saved.entity).await?.content.get("text")
            == Some(&json!("suspected fracture"))
    );
    let before = store
        .get_entity(saved.entity.id)?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;

    let rotated = alice
        .revoke_and_rotate(&saved.entity, &[bob.owner()])
        .await?;
    println!(
        "revoked Bob and rotated the key: {} delegation(s) removed, now revision {}",
        rotated.removed, rotated.rev
    );

    let refused = bob.get_json(&saved.entity).await;
    ensure!(
        refused.as_ref().is_err_and(tessera::Error::is_not_found),
        "Bob still reads: {refused:?}"
    );
    // Bob kept his copy of the old record, with his delegation; put beside the new ciphertext it opens nothing.
    let mut after = store
        .get_entity(saved.entity.id)?
        .ok_or_else(|| anyhow::anyhow!("missing"))?;
    ensure!(
        after.key_commitment != before.key_commitment,
        "the key did not change"
    );
    after.security_metadata = before.security_metadata;
    let opened = bob.open_entity(&after);
    ensure!(
        opened.as_ref().is_err_and(tessera::Error::is_crypto),
        "Bob's old key still opens: {opened:?}"
    );
    println!("Bob: not found on the server, and his old key does not open the new ciphertext");

    ensure!(
        carol.get_json(&saved.entity).await?.content.get("text")
            == Some(&json!("suspected fracture"))
    );
    println!("Carol still reads the note");

    server.shutdown().await;
    println!("ok");
    Ok(())
}
