//! P3 and P4: only granted owners retrieve a record, and only granted owners decrypt it.

use serde_json::{Map, Value};
use tessera::{EntityId, EntityRef};

use super::report::{contains, field, outcome, outcome_of, pseudo_random, yes};
use super::{Cast, Demo};

impl Demo {
    pub(super) async fn p3(&mut self, cast: &Cast, note: &EntityRef) -> anyhow::Result<()> {
        self.section(3);
        let asked = cast.charlie.get_json(note).await;
        let missing = EntityRef::new(note.entity_type.clone(), EntityId::generate()?);
        let asked_missing = cast.charlie.get_json(&missing).await;
        let without_session = tessera_client::Client::new(&self.url).entity(note.id).await;
        let stored = self.entity(note.id)?;
        let named: Vec<String> = stored
            .security_metadata
            .delegations
            .values()
            .filter_map(|d| d.delegate)
            .map(|id| self.party(Some(id)))
            .collect();
        self.columns(
            &[
                "Charlie asks the server for the note:".into(),
                format!("  -> {}", outcome(&asked)),
                "Charlie asks for an id that does not exist:".into(),
                format!("  -> {}", outcome(&asked_missing)),
                "A client without a session asks for the note:".into(),
                format!(
                    "  -> {}",
                    without_session
                        .as_ref()
                        .err()
                        .and_then(tessera_client::Error::status)
                        .map_or_else(|| "served (!)".into(), |s| format!("HTTP {s}"))
                ),
            ],
            &[
                format!("the note's delegates: {}", named.join(", ")),
                "Charlie presents no access key matching any".into(),
                "of the note's delegation keys and is no delegate:".into(),
                "404, the answer for a missing id too, so the".into(),
                "server is no oracle of what exists".into(),
                "no session token: 401 before any lookup".into(),
            ],
        );
        let not_found = |r: &tessera::Result<tessera::Record<Map<String, Value>>>| {
            r.as_ref().err().map(tessera::Error::kind) == Some(tessera::ErrorKind::NotFound)
        };
        self.check(
            3,
            "Charlie, not granted, gets 404 not found for the note",
            not_found(&asked),
        );
        self.check(
            3,
            "the answer is the same as for a record that does not exist",
            not_found(&asked_missing)
                && asked.as_ref().err().map(ToString::to_string)
                    == asked_missing.as_ref().err().map(ToString::to_string),
        );
        self.check(
            3,
            "a request without a session gets 401",
            without_session
                .as_ref()
                .is_err_and(tessera_client::Error::is_unauthorized),
        );
        Ok(())
    }

    // ---- P4 ----

    pub(super) async fn p4(&mut self, cast: &Cast, note: &EntityRef) -> anyhow::Result<()> {
        self.section(4);
        let before = self.entity(note.id)?;
        let leaked_to_charlie = cast.charlie.open_entity(&before);
        let database = self.database()?;
        let words = [
            "penicillin",
            "azithromycin",
            "Consultation 23 Nov",
            "follow-up",
        ];
        let words_found = words
            .iter()
            .any(|word| contains(&database, word.as_bytes()));
        let scan = pseudo_random(300_000);
        let scan_found = [0usize, 65_536, 150_000, 299_968]
            .iter()
            .filter_map(|&at| scan.get(at..at + 32))
            .any(|window| contains(&database, window));
        self.columns(
            &[
                "Charlie is handed the stored note (a leak):".into(),
                format!("  -> {}", outcome_of(&leaked_to_charlie)),
                format!(
                    "A thief copies tessera.redb ({} KB) and",
                    database.len() / 1024
                ),
                "searches it for the note's words and for".into(),
                "bytes of the X-ray:".into(),
                format!(
                    "  -> {}",
                    if words_found || scan_found {
                        "found (!)"
                    } else {
                        "nothing found"
                    }
                ),
            ],
            &[
                format!(
                    "encrypted_self: {} B, AES-256-GCM, key random",
                    before.encrypted_self.0.len()
                ),
                "the key exists only sealed in the delegations,".into(),
                "under exchange keys derived from secrets that".into(),
                "are RSA-OAEP-wrapped for the two parties only;".into(),
                "key-bag entries are sealed with self keys".into(),
                "derived from private keys the server never had".into(),
            ],
        );
        self.check(
            4,
            "Charlie, a legitimate owner not granted, cannot decrypt the stored note",
            leaked_to_charlie
                .as_ref()
                .is_err_and(tessera::Error::is_no_access),
        );
        self.check(
            4,
            "the database file holds none of the note's words nor any X-ray bytes in clear",
            !words_found && !scan_found,
        );

        let rotated = cast
            .alice
            .revoke_and_rotate(note, &[cast.bob.owner()])
            .await?;
        let bob_asks = cast.bob.get_json(note).await;
        let mut after = self.entity(note.id)?;
        let lines = self.entity_lines(&after);
        let new_key = after.key_commitment != before.key_commitment;
        // Dr Bob kept the note as he last saw it, with his delegation: put it beside the new ciphertext.
        after.security_metadata = before.security_metadata.clone();
        let old_key = cast.bob.open_entity(&after);
        let alice_reads = cast.alice.get_json(note).await?;
        let mut right = lines;
        right.push(format!(
            "key commitment changed: {}; X-ray re-encrypted: {}",
            yes(new_key),
            rotated.attachments
        ));
        self.columns(
            &[
                "Dr Alice revokes Dr Bob and rotates the key.".into(),
                "Dr Bob asks the server for the note:".into(),
                format!("  -> {}", outcome(&bob_asks)),
                "Dr Bob tries his old key on the new ciphertext:".into(),
                format!("  -> {}", outcome_of(&old_key)),
                "Dr Alice still reads:".into(),
                format!("  text: {}", field(&alice_reads.content, "text")),
            ],
            &right,
        );
        self.check(
            3,
            "after revocation Dr Bob gets 404 for the note",
            bob_asks.as_ref().is_err_and(tessera::Error::is_not_found),
        );
        self.check(
            4,
            "after revoke-and-rotate Dr Bob's old key opens nothing stored",
            new_key && old_key.as_ref().is_err_and(tessera::Error::is_crypto),
        );
        self.check(
            4,
            "Dr Alice, the creator, still decrypts the rotated note",
            field(&alice_reads.content, "text")
                .as_str()
                .is_some_and(|text| text.contains("follow-up")),
        );
        Ok(())
    }
}
