//! User story: a patient records a measurement and shares it with a doctor anonymously: the stored record names
//! neither the patient nor the pair, and the doctor still finds and reads it.
//! Run with `cargo run -p tessera-sdk --example patient_shares_anonymously`.

use std::sync::Arc;

use anyhow::ensure;
use serde_json::json;
use tessera::{
    Client, EntityType, NewRecord, OwnerKind, RsaKeySize, Session, Share, Tofu, Visibility,
    register_owner,
};
use tessera_store::Store;

const ADMIN_TOKEN: &str = "example-admin-token";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = tessera_server::ServerConfig::new("127.0.0.1:0".parse()?, ADMIN_TOKEN);
    let store = Arc::new(tessera_store::MemoryStore::new());
    let server = tessera_server::Server::start(config, store.clone()).await?;
    let url = format!("http://{}", server.local_addr());

    let doctor_keys = register_owner(
        &Client::new(&url),
        ADMIN_TOKEN,
        OwnerKind::Hcp,
        RsaKeySize::Bits2048,
    )
    .await?;
    let patient_keys = register_owner(
        &Client::new(&url),
        ADMIN_TOKEN,
        OwnerKind::Patient,
        RsaKeySize::Bits2048,
    )
    .await?;
    let (doctor_id, patient_id) = (doctor_keys.owner(), patient_keys.owner());

    // A patient's session makes anonymous root delegations by default; the share hides the patient as well.
    let patient = Session::login(Client::new(&url), patient_keys, Tofu::new()).await?;
    let measurement = EntityType::new("Measurement")?;
    let content = json!({"kind": "glucose", "mmol_per_l": 5.4, "taken": "2024-11-23T08:00"});
    let serde_json::Value::Object(content) = content else {
        anyhow::bail!("not an object")
    };
    let saved = patient
        .create_record(
            NewRecord::new(measurement, content)
                .share_with(Share::read(doctor_id).with_visibility(Visibility::AnonymousDelegator)),
        )
        .await?;

    // What the server stores: delegations under opaque keys, no owner id, no exchange data id.
    let stored = store
        .get_entity(saved.entity.id)?
        .ok_or_else(|| anyhow::anyhow!("not stored"))?;
    for (key, delegation) in &stored.security_metadata.delegations {
        println!(
            "server sees delegation {key}: delegator {:?}, delegate {:?}, exchange data {:?}",
            delegation.delegator, delegation.delegate, delegation.exchange_data_id
        );
        ensure!(
            delegation.delegator.is_none(),
            "the patient appears as delegator"
        );
    }
    let raw = serde_json::to_string(&stored)?;
    ensure!(
        !raw.contains(&patient_id.to_string()),
        "the patient id appears in the stored record"
    );
    ensure!(!raw.contains("glucose"), "the content appears in clear");

    let doctor = Session::login(Client::new(&url), doctor_keys, Tofu::new()).await?;
    let read = doctor.get_json(&saved.entity).await?;
    println!(
        "the doctor reads: {}",
        serde_json::Value::Object(read.content.clone())
    );
    ensure!(
        read.content.get("mmol_per_l") == Some(&json!(5.4)),
        "the doctor read something else"
    );

    server.shutdown().await;
    println!("ok");
    Ok(())
}
