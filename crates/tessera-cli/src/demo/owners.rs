//! P1 and P2: owners with their own key pairs, and an owner who creates, encrypts and shares a record.

use anyhow::Context;
use serde_json::json;
use tessera::{
    Client, EncryptionManifest, EntityRef, EntityType, NewRecord, OwnerKind, RsaKeySize, Share,
};
use tessera_store::Store;
use tokio::io::AsyncReadExt;

use super::report::{contains, field, object, pseudo_random, short};
use super::{Cast, Demo};
use crate::ui;

impl Demo {
    pub(super) async fn p1(&mut self, admin_token: &str) -> anyhow::Result<Cast> {
        self.section(1);
        let generating =
            ui::spinner("generating RSA-2048 key pairs for Dr Alice, Dr Bob and Charlie");
        let mut owners = Vec::new();
        for (name, kind) in [
            ("Dr Alice", OwnerKind::Hcp),
            ("Dr Bob", OwnerKind::Hcp),
            ("Charlie", OwnerKind::Patient),
        ] {
            let keys = tessera::register_owner(
                &Client::new(&self.url),
                admin_token,
                kind,
                RsaKeySize::Bits2048,
            )
            .await?;
            self.names.insert(keys.owner(), name);
            owners.push((name, keys));
        }
        generating.finish_and_clear();

        let mut primes = Vec::new();
        let mut distinct = std::collections::BTreeSet::new();
        let mut bundles_ok = true;
        for (name, keys) in &owners {
            let stored = self
                .store
                .get_owner(keys.owner())?
                .context("owner not stored")?
                .value;
            let bundle = stored.bundles.first().context("no key bundle stored")?;
            bundles_ok &= bundle.verify_self_signature().is_ok()
                && bundle.fingerprint() == keys.fingerprint();
            distinct.insert(keys.fingerprint());
            let spki = bundle.rsa_public_key().to_spki_der()?.len();
            let pkcs8 = keys.rsa_private_key().to_pkcs8_der()?.len();
            // The canonical private bytes end with the smaller prime: a secret no stored byte may contain.
            let canonical = keys.rsa_private_key().to_canonical_bytes()?;
            let bytes = canonical.expose_secret();
            primes.push(
                bytes
                    .get(bytes.len().saturating_sub(64)..)
                    .unwrap_or_default()
                    .to_vec(),
            );
            self.columns(
                &[
                    format!("{name} keeps a private key"),
                    format!("  RSA-2048, PKCS#8 {pkcs8} B, never sent"),
                    format!("  fingerprint {}", keys.fingerprint().short_code()),
                ],
                &[
                    format!("owner {} ({name})", short(&keys.owner().to_string())),
                    format!(
                        "  kind {:?}, {} key bundle",
                        stored.kind,
                        stored.bundles.len()
                    ),
                    format!("  RSA public key {spki} B + Ed25519 32 B, self-signed"),
                ],
            );
        }
        let database = self.database()?;
        let leaked = primes.iter().any(|prime| contains(&database, prime));
        self.check(
            1,
            "three owners, three distinct key pairs",
            distinct.len() == 3,
        );
        self.check(
            1,
            "each stored key bundle is self-signed and matches its owner's key",
            bundles_ok,
        );
        self.check(
            1,
            "the database file holds no byte of any private key (no secret prime found in it)",
            !leaked,
        );

        let mut owners = owners.into_iter().map(|(_, keys)| keys);
        let (Some(alice), Some(bob), Some(charlie)) = (owners.next(), owners.next(), owners.next())
        else {
            anyhow::bail!("three owners were registered");
        };
        let charlie_key_file = tessera::encode_key_file(&charlie)?;
        Ok(Cast {
            alice: self.login(alice).await?,
            bob: self.login(bob).await?,
            charlie: self.login(charlie).await?,
            charlie_key_file,
        })
    }

    // ---- P2 ----

    pub(super) async fn p2(&mut self, cast: &Cast) -> anyhow::Result<EntityRef> {
        self.section(2);
        let Cast { alice, bob, .. } = cast;
        let note_type = EntityType::new("Note")?;
        alice.set_manifest(
            note_type.clone(),
            EncryptionManifest::new(["title", "text"])?,
        );
        let content = object(json!({
            "language": "en",
            "title": "Consultation 23 Nov",
            "text": "Charlie is allergic to penicillin; prescribed azithromycin.",
        }))?;
        let saved = alice
            .create_record(NewRecord::new(note_type, content.clone()))
            .await?;
        let note = &saved.entity;
        let stored = self.entity(note.id)?;
        self.columns(
            &[
                "Dr Alice writes a note:".into(),
                format!("  title: {}", field(&content, "title")),
                format!("  text: {}", field(&content, "text")),
                "  language: \"en\"".into(),
            ],
            &self.entity_lines(&stored),
        );

        alice.share(note, &[Share::read(bob.owner())]).await?;
        let scan = pseudo_random(300_000);
        let uploading = ui::spinner("Dr Alice encrypts and uploads an X-ray (300 KB)");
        let rev = alice.get_json(note).await?.rev;
        let (attachment, _) = alice.add_attachment(note, rev, &scan).await?;
        uploading.finish_and_clear();
        let read = bob.get_json(note).await?;
        let stream = bob.attachment_stream(note, attachment).await?;
        let bar = ui::bytes("Dr Bob downloads and decrypts the X-ray", stream.len());
        let mut downloaded = Vec::new();
        bar.wrap_async_read(stream)
            .read_to_end(&mut downloaded)
            .await?;
        bar.finish_and_clear();
        let stored = self.entity(note.id)?;
        self.columns(
            &[
                "Dr Alice shares it with Dr Bob (read) and".into(),
                "attaches an X-ray. Dr Bob reads:".into(),
                format!("  text: {}", field(&read.content, "text")),
                format!(
                    "  X-ray: {} B, decrypted segment by segment",
                    downloaded.len()
                ),
            ],
            &self.entity_lines(&stored),
        );

        let mut updated = content.clone();
        updated.insert(
            "text".into(),
            json!("Charlie is allergic to penicillin; azithromycin; follow-up in 2 weeks."),
        );
        alice.update_json(note, stored.rev, updated.clone()).await?;
        let reread = bob.get_json(note).await?;
        self.columns(
            &[
                "Dr Alice updates the text; Dr Bob reads it".into(),
                "with the key he already has:".into(),
                format!("  text: {}", field(&reread.content, "text")),
            ],
            &[
                format!("revision {}: new ciphertext, same delegations", reread.rev),
                "(a plain update cannot touch the sharing)".into(),
            ],
        );

        let stored = self.entity(note.id)?;
        let clear = serde_json::to_string(&stored)?;
        self.check(
            2,
            "the stored note shows only `language` in clear, no title or text",
            stored.public.keys().eq(["language"]) && !clear.contains("penicillin"),
        );
        self.check(
            2,
            "Dr Bob decrypts exactly what Dr Alice wrote, then her update",
            read.content == content && reread.content == updated,
        );
        self.check(
            2,
            "Dr Bob's X-ray is byte-identical to Dr Alice's",
            downloaded == scan,
        );
        Ok(saved.entity)
    }
}
