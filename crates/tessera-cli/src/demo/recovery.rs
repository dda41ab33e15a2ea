//! P5: the private key is the owner's only secret; everything else is derived from it.

use serde_json::{Value, json};
use tessera::{EntityType, NewRecord, Share};
use tessera_store::Store;

use super::report::{field, hex, object, plain, short};
use super::{Cast, CharlieFile, Demo};
use crate::ui;

impl Demo {
    pub(super) async fn p5(&mut self, cast: Cast) -> anyhow::Result<CharlieFile> {
        self.section(5);
        let Cast {
            alice,
            bob,
            charlie,
            charlie_key_file,
        } = cast;
        let charlie_id = charlie.owner();
        let patient_type = EntityType::new("Patient")?;
        let contact = EntityType::new("Contact")?;
        let lab = EntityType::new("LabResult")?;
        let measurement = EntityType::new("Measurement")?;

        // Dr Alice keeps Charlie's file and shares it with Charlie; neither is named in it (the default).
        let recording = ui::spinner("Dr Alice records Charlie's file");
        let to_charlie = Share::read(charlie_id);
        let patient = alice
            .create_record(
                NewRecord::new(
                    patient_type.clone(),
                    object(json!({"name": "Charlie Martin", "birth_date": "1984-02-29"}))?,
                )
                .share_with(to_charlie),
            )
            .await?
            .entity;
        let reasons = ["sprained ankle", "ankle follow-up", "physiotherapy review"];
        let mut contacts = Vec::new();
        for (day, reason) in reasons.iter().enumerate() {
            let visit =
                object(json!({"reason": reason, "date": format!("2024-11-{:02}", 4 + 7 * day)}))?;
            contacts.push(
                alice
                    .create_record(
                        NewRecord::new(contact.clone(), visit)
                            .child_of(patient.clone())
                            .share_with(to_charlie),
                    )
                    .await?
                    .entity
                    .id,
            );
        }
        let lab_result = alice
            .create_record(
                NewRecord::new(
                    lab.clone(),
                    object(json!({"test": "HbA1c", "value": "6.1 %"}))?,
                )
                .child_of(patient.clone())
                .share_with(to_charlie),
            )
            .await?
            .entity
            .id;
        // Another patient of Dr Alice's, with one visit, to compare tags.
        let dana = alice
            .create_json(&patient_type, object(json!({"name": "Dana Smith"}))?)
            .await?
            .entity;
        let dana_visit = alice
            .create_record(
                NewRecord::new(contact.clone(), object(json!({"reason": "influenza"}))?)
                    .child_of(dana),
            )
            .await?
            .entity
            .id;
        // Charlie shares a reading with Dr Bob; nobody is named.
        let reading = charlie
            .create_record(
                NewRecord::new(
                    measurement,
                    object(json!({"glucose_mmol_per_l": 5.4, "taken": "2024-11-23 08:00"}))?,
                )
                .share_with(Share::read(bob.owner())),
            )
            .await?
            .entity;
        let bob_reads = bob.get_json(&reading).await?;
        recording.finish_and_clear();
        self.columns(
            &[
                "Dr Alice records Charlie's file: a patient".into(),
                "record, 3 visits and a lab result, shared".into(),
                "with Charlie. Charlie shares a glucose".into(),
                "reading with Dr Bob, who reads:".into(),
                format!(
                    "  glucose: {}",
                    field(&bob_reads.content, "glucose_mmol_per_l")
                ),
            ],
            &[
                "6 records for Dr Alice's patients, 1 reading:".into(),
                "ciphertext and opaque delegation keys (P6)".into(),
            ],
        );
        self.check(
            2,
            "Dr Bob reads the reading Charlie shared without being named",
            field(&bob_reads.content, "glucose_mmol_per_l") == &json!(5.4),
        );
        drop(charlie);

        // Charlie's phone is lost: a new device has nothing but the key file.
        let device = self
            .login(tessera::decode_key_file(charlie_key_file.expose_secret())?)
            .await?;
        let first = device.stats();
        let record = device.get_json(&patient).await?;
        let visits = device.children_json(&patient, &contact).await?;
        let labs = device.children_json(&patient, &lab).await?;
        let own = device.get_json(&reading).await?;
        let again = self
            .login(tessera::decode_key_file(charlie_key_file.expose_secret())?)
            .await?;
        let second = again.stats();
        let again_visits = again.children_json(&patient, &contact).await?.len();
        let bag = self.store.key_bag(charlie_id)?;
        let inbox = self.store.inbox(charlie_id)?;

        let mut reasons_read: Vec<String> = visits
            .iter()
            .filter_map(|v| {
                v.content
                    .get("reason")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
        reasons_read.sort();
        let mut left = vec![
            "Charlie's phone is lost. A new device holds".into(),
            format!(
                "only Charlie's key file ({} B) and reads:",
                charlie_key_file.expose_secret().len()
            ),
            format!("  record: {}", plain(field(&record.content, "name"))),
            format!("  visits: {}", reasons_read.join(", ")),
            format!(
                "  lab results: {}",
                labs.iter()
                    .map(|l| format!(
                        "{} {}",
                        plain(field(&l.content, "test")),
                        plain(field(&l.content, "value"))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "  own reading: glucose {}",
                field(&own.content, "glucose_mmol_per_l")
            ),
            format!(
                "login: {} secrets from the key bag (AES-GCM),",
                first.key_bag_entries
            ),
            format!(
                "  {} exchange data opened with the RSA key",
                first.opened_with_rsa
            ),
            format!(
                "a second new device: {} from the key bag,",
                second.key_bag_entries
            ),
            format!("  {} RSA operations", second.opened_with_rsa),
        ];
        left.truncate(10);
        let mut right = vec![format!("Charlie's key bag: {} entries", bag.len())];
        right.extend(bag.iter().map(|entry| {
            format!(
                "  entry {}…: {} B sealed",
                short(&entry.id.to_string()),
                entry.sealed.len()
            )
        }));
        right.push("ids: HMACs under a key derived from Charlie's".into());
        right.push("private key; the partner is not named".into());
        right.push(format!(
            "Charlie's inbox: {} messages (opened ones leave it)",
            inbox.len()
        ));
        self.columns(&left, &right);

        let bag_json = serde_json::to_string(&bag)?;
        // Every other owner the demonstration registered, by id and in the hex form the bag's JSON would use.
        let names_partner =
            self.names.keys().filter(|id| **id != charlie_id).any(|id| {
                bag_json.contains(&id.to_string()) || bag_json.contains(&hex(id.as_bytes()))
            });
        self.check(
            5,
            "from the key file alone, a new device reads Charlie's record, 3 visits, the lab result and the reading",
            field(&record.content, "name") == "Charlie Martin"
                && visits.len() == 3
                && labs.len() == 1
                && field(&own.content, "glucose_mmol_per_l") == &json!(5.4),
        );
        self.check(
            5,
            "a second new device opens every secret from the key bag, with no RSA operation",
            second.opened_with_rsa == 0
                && second.key_bag_entries == first.key_bag_entries + first.opened_with_rsa
                && again_visits == 3,
        );
        self.check(
            5,
            "the stored key bag names no partner, and Charlie's inbox is empty once opened",
            !names_partner && !bag.is_empty() && inbox.is_empty(),
        );
        Ok(CharlieFile {
            charlie: charlie_id,
            patient: patient.id,
            contacts,
            lab_result,
            reading: reading.id,
            dana_visit,
        })
    }
}
