//! User story: a doctor writes a consultation note and shares it with a colleague, who reads it; a third doctor,
//! not shared with, gets "not found". Run with `cargo run -p tessera-sdk --example hcp_shares_note`.

use std::sync::Arc;

use anyhow::ensure;
use serde::{Deserialize, Serialize};
use tessera::{
    Client, EncryptionManifest, EntityType, OwnerKind, RsaKeySize, Session, Share, Tofu,
    register_owner,
};

const ADMIN_TOKEN: &str = "example-admin-token";

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Note {
    language: String,
    title: String,
    text: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = tessera_server::ServerConfig::new("127.0.0.1:0".parse()?, ADMIN_TOKEN);
    let store = Arc::new(tessera_store::MemoryStore::new());
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
    let eve_keys = register_owner(
        &Client::new(&url),
        ADMIN_TOKEN,
        OwnerKind::Hcp,
        RsaKeySize::Bits2048,
    )
    .await?;
    let bob_id = bob_keys.owner();

    // Alice encrypts the title and the text; the language stays readable by the server (to filter on it).
    // Trust: the policy decides on a partner's first key bundle (trust on first use here; an app that compares short
    // codes uses `PinnedFingerprints` or `CallbackTrust`). What it accepts is pinned in Alice's owner state, sealed on
    // the server, so every later login and every device of Alice holds Bob to the same key, whatever policy it uses.
    let alice = Session::login(Client::new(&url), alice_keys, Tofu::new()).await?;
    let note_type = EntityType::new("Note")?;
    alice.set_manifest(
        note_type.clone(),
        EncryptionManifest::new(["title", "text"])?,
    );
    let note = Note {
        language: "en".into(),
        title: "Consultation".into(),
        text: "Allergic to penicillin; prescribed azithromycin.".into(),
    };
    let saved = alice.create(&note_type, &note).await?;
    alice.share(&saved.entity, &[Share::read(bob_id)]).await?;
    println!(
        "Alice created note {} and shared it with Bob ({bob_id})",
        saved.entity.id
    );
    let pinned = alice.pinned(bob_id);
    let [bob_pin] = pinned.as_slice() else {
        anyhow::bail!("Bob's bundle was not pinned once: {pinned:?}");
    };
    println!(
        "Alice pinned Bob's key {} (compare it with Bob out of band)",
        bob_pin.short_code()
    );

    let bob = Session::login(Client::new(&url), bob_keys, Tofu::new()).await?;
    let read = bob.get::<Note>(&saved.entity).await?;
    println!("Bob reads: {:?}", read.content);
    ensure!(read.content == note, "Bob read something else");
    // Everything Bob relies on was signed by its writer, whom the record names.
    ensure!(
        read.writer == alice.owner(),
        "the note does not say Alice wrote it"
    );

    let eve = Session::login(Client::new(&url), eve_keys, Tofu::new()).await?;
    let refused = eve.get::<Note>(&saved.entity).await;
    ensure!(
        refused.as_ref().is_err_and(tessera::Error::is_not_found),
        "Eve was not refused: {refused:?}"
    );
    println!(
        "Eve, not shared with, gets: {}",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );

    server.shutdown().await;
    println!("ok");
    Ok(())
}
