//! `tessera demo`: every principle of DESIGN.md §1 shown end to end on an in-process server with a redb database,
//! with what each party sees beside what the server stores, real checks, and a PASS/FAIL line per principle.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Map, Value, json};
use tessera::stored::EncryptedEntity;
use tessera::{
    Client, EncryptionManifest, EntityId, EntityRef, EntityType, NewRecord, OwnerId, OwnerKeys,
    OwnerKind, Permission, RsaKeySize, Session, Share, Tofu, Visibility,
};
use tessera_server::serve::DATABASE_FILE;
use tessera_server::{Server, ServerConfig};
use tessera_store::{RedbStore, Store};
use tokio::io::AsyncReadExt;

use crate::cli::DemoArgs;
use crate::ui;

/// The principles, as DESIGN.md §1 states them (shortened).
const PRINCIPLES: [&str; 6] = [
    "each owner has its own key pair; only the owner holds the private key",
    "an owner creates data, encrypts its sensitive content and shares it",
    "only owners granted access can retrieve a record from the server",
    "only granted owners can decrypt: not the server operator, not other owners",
    "the private key is the owner's only secret; everything else is derived",
    "stored entities show no patient link, no sharing graph, no visit pattern",
];

/// Width of the left column ("what a party sees").
const LEFT: usize = 48;

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temporary;
    let dir = match args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir
        }
        None => {
            temporary = tempfile::tempdir().context("cannot create a temporary directory")?;
            temporary.path().to_owned()
        }
    };
    let db_path = dir.join(DATABASE_FILE);
    let store = Arc::new(RedbStore::open(&db_path).context("cannot open the demo database")?);
    let admin_token = EntityId::generate()?.to_string();
    let config = ServerConfig::new("127.0.0.1:0".parse()?, admin_token.clone());
    let server = Server::start(config, store.clone()).await?;
    let url = format!("http://{}", server.local_addr());

    println!("Tessera demonstration: end-to-end encrypted health records, seen from both sides");
    println!(
        "server: in-process at {url}, database {}",
        db_path.display()
    );
    println!("cast:   Dr Alice and Dr Bob (healthcare parties), Charlie (a patient)");
    println!("Left column: what a party sees. Right column: what the server stores.");
    println!(
        "Names in parentheses are the narrator's: the server knows owners by random ids only."
    );

    let mut demo = Demo {
        store,
        db_path,
        url,
        names: HashMap::new(),
        results: BTreeMap::new(),
        current: 0,
    };
    let outcome = demo.play(&admin_token).await;
    server.shutdown().await;
    if let Err(error) = outcome {
        demo.fail_rest(&format!("the demonstration stopped: {error:#}"));
    }
    Ok(demo.summary())
}

struct Demo {
    store: Arc<RedbStore>,
    db_path: PathBuf,
    url: String,
    names: HashMap<OwnerId, &'static str>,
    results: BTreeMap<usize, Vec<bool>>,
    /// The principle being shown.
    current: usize,
}

/// What the demonstration keeps between sections.
struct Cast {
    alice: Session,
    bob: Session,
    charlie: Session,
    charlie_key_file: tessera::SecretString,
}

impl Demo {
    async fn play(&mut self, admin_token: &str) -> anyhow::Result<()> {
        let cast = self.p1(admin_token).await?;
        let note = self.p2(&cast).await?;
        self.p3(&cast, &note).await?;
        self.p4(&cast, &note).await?;
        let file = self.p5(cast).await?;
        self.p6(&file)?;
        Ok(())
    }

    // ---- P1 ----

    async fn p1(&mut self, admin_token: &str) -> anyhow::Result<Cast> {
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

    async fn p2(&mut self, cast: &Cast) -> anyhow::Result<EntityRef> {
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

    // ---- P3 ----

    async fn p3(&mut self, cast: &Cast, note: &EntityRef) -> anyhow::Result<()> {
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

    async fn p4(&mut self, cast: &Cast, note: &EntityRef) -> anyhow::Result<()> {
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

    // ---- P5 ----

    async fn p5(&mut self, cast: Cast) -> anyhow::Result<CharlieFile> {
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

        // Dr Alice keeps Charlie's file and shares it with Charlie, who is never named in it.
        let recording = ui::spinner("Dr Alice records Charlie's file");
        let to_charlie = Share::read(charlie_id).with_visibility(Visibility::AnonymousDelegate);
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
        // Charlie shares a reading with Dr Bob without being named.
        let reading = charlie
            .create_record(
                NewRecord::new(
                    measurement,
                    object(json!({"glucose_mmol_per_l": 5.4, "taken": "2024-11-23 08:00"}))?,
                )
                .share_with(
                    Share::read(bob.owner()).with_visibility(Visibility::AnonymousDelegator),
                ),
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
        let exchange = self.store.exchange_data_of(charlie_id)?;

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
            "exchange data naming Charlie: {} (public records)",
            exchange.len()
        ));
        self.columns(&left, &right);

        let bag_json = serde_json::to_string(&bag)?;
        let names_partner = exchange.iter().any(|data| {
            bag_json.contains(&hex(data.value.id().as_bytes()))
                || [data.value.delegator(), data.value.delegate()]
                    .iter()
                    .filter(|id| **id != charlie_id)
                    .any(|id| bag_json.contains(&id.to_string()))
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
            "the stored key bag names neither exchange data nor partners",
            !names_partner && !bag.is_empty(),
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

    // ---- P6 ----

    fn p6(&mut self, file: &CharlieFile) -> anyhow::Result<()> {
        self.section(6);
        let patient = self.entity(file.patient)?;
        let contacts = file
            .contacts
            .iter()
            .map(|id| self.entity(*id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let lab = self.entity(file.lab_result)?;
        let reading = self.entity(file.reading)?;
        let dana_visit = self.entity(file.dana_visit)?;

        let mut right = Vec::new();
        for entity in
            std::iter::once(&patient)
                .chain(&contacts)
                .chain([&lab, &reading, &dana_visit])
        {
            right.push(self.summary_line(entity));
        }
        self.columns(
            &[
                "The parties know: Charlie's record has 3".into(),
                "visits and a lab result; Charlie shared a".into(),
                "reading with Dr Bob.".into(),
                "The server sees (right): records of a few".into(),
                "types; 3 Contacts share one tag, which no".into(),
                "record of Charlie carries; the parent id is".into(),
                "sealed; Charlie is never named; the last".into(),
                "Contact is another patient's (Dana).".into(),
            ],
            &right,
        );

        let charlie_forms = [file.charlie.to_string(), hex(file.charlie.as_bytes())];
        let patient_forms = [file.patient.to_string(), hex(file.patient.as_bytes())];
        let mut charlie_named = false;
        for entity in std::iter::once(&patient)
            .chain(&contacts)
            .chain([&lab, &reading])
        {
            let text = serde_json::to_string(entity)?;
            charlie_named |= charlie_forms
                .iter()
                .any(|form| text.contains(form.as_str()));
        }
        let mut parent_named = false;
        for entity in contacts.iter().chain([&lab]) {
            let text = serde_json::to_string(entity)?;
            parent_named |= patient_forms
                .iter()
                .any(|form| text.contains(form.as_str()));
        }
        self.check(
            6,
            "no stored record of Charlie's file, nor the reading, contains Charlie's owner id",
            !charlie_named,
        );
        self.check(
            6,
            "no child record holds the patient record's id in clear (the link is sealed)",
            !parent_named,
        );

        let tags = |entity: &EncryptedEntity| entity.secret_foreign_keys.clone();
        let visit_tags = contacts.first().map(tags).unwrap_or_default();
        let same_visit_tag =
            contacts.iter().all(|c| tags(c) == visit_tags) && !visit_tags.is_empty();
        let per_type = visit_tags.is_disjoint(&tags(&lab)) && !tags(&lab).is_empty();
        let per_patient = visit_tags.is_disjoint(&tags(&dana_visit));
        self.check(
            6,
            "search tags differ per child type (visits, lab results) and per patient (Charlie, Dana)",
            same_visit_tag && per_type && per_patient,
        );
        let owner_record = serde_json::to_string(
            &self
                .store
                .get_owner(file.charlie)?
                .context("Charlie's owner record")?
                .value,
        )?;
        let patient_text = serde_json::to_string(&patient)?;
        let tag_exposed = visit_tags.iter().any(|tag| {
            let tag = tag.to_string();
            owner_record.contains(&tag) || patient_text.contains(&tag)
        });
        self.check(
            6,
            "the visits' tag appears on no record of Charlie: 3 visits of someone, not whose",
            !tag_exposed,
        );
        let database = self.database()?;
        let sensitive = [
            "Charlie Martin",
            "1984-02-29",
            "sprained ankle",
            "physiotherapy",
            "HbA1c",
            "glucose",
            "Dana Smith",
            "influenza",
        ];
        let found: Vec<&str> = sensitive
            .iter()
            .copied()
            .filter(|word| contains(&database, word.as_bytes()))
            .collect();
        self.check(
            6,
            "the database file holds no name, birth date, visit reason or result in clear",
            found.is_empty(),
        );
        println!(
            "  Not hidden yet: exchange data records name their two parties (the server can tell that two owners"
        );
        println!(
            "  exchange keys), and the server sees counts, sizes and timing; DESIGN.md §10 plans to hide them."
        );
        Ok(())
    }

    // ---- narration helpers ----

    fn section(&mut self, principle: usize) {
        println!();
        println!(
            "== P{principle}  {}",
            PRINCIPLES.get(principle - 1).copied().unwrap_or_default()
        );
        self.results.entry(principle).or_default();
        self.current = principle;
    }

    fn check(&mut self, principle: usize, what: &str, ok: bool) {
        let mark = if ok { "[ok]  " } else { "[FAIL]" };
        println!("  {mark} P{principle}: {what}");
        self.results.entry(principle).or_default().push(ok);
    }

    /// After an error, every principle not fully shown fails.
    fn fail_rest(&mut self, message: &str) {
        println!();
        println!("  [FAIL] {message}");
        let current = self.current;
        for principle in 1..=PRINCIPLES.len() {
            let results = self.results.entry(principle).or_default();
            if results.is_empty() || principle == current {
                results.push(false);
            }
        }
    }

    fn summary(&self) -> ExitCode {
        println!();
        println!("Summary");
        let mut all = true;
        for (index, text) in PRINCIPLES.iter().enumerate() {
            let principle = index + 1;
            let pass = self
                .results
                .get(&principle)
                .is_some_and(|results| !results.is_empty() && results.iter().all(|ok| *ok));
            all &= pass;
            println!(
                "P{principle} {}  {text}",
                if pass { "PASS" } else { "FAIL" }
            );
        }
        if all {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Prints what a party sees (left) beside what the server stores (right).
    fn columns(&self, left: &[String], right: &[String]) {
        println!("  {}+{}", "-".repeat(LEFT + 1), "-".repeat(58));
        for index in 0..left.len().max(right.len()) {
            let left = fit(left.get(index).map_or("", String::as_str), LEFT);
            let right = right.get(index).map_or("", String::as_str);
            println!("  {left:<LEFT$} | {right}");
        }
    }

    async fn login(&self, keys: OwnerKeys) -> anyhow::Result<Session> {
        Ok(Session::login(Client::new(&self.url), keys, Tofu::new()).await?)
    }

    fn entity(&self, id: EntityId) -> anyhow::Result<EncryptedEntity> {
        self.store
            .get_entity(id)?
            .with_context(|| format!("entity {id} is not stored"))
    }

    fn database(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.db_path)
            .with_context(|| format!("cannot read {}", self.db_path.display()))
    }

    fn party(&self, id: Option<OwnerId>) -> String {
        match id {
            None => "hidden".into(),
            Some(id) => {
                let text = short(&id.to_string());
                match self.names.get(&id) {
                    Some(name) => format!("{text}({})", name.trim_start_matches("Dr ")),
                    None => text,
                }
            }
        }
    }

    /// The stored form of an entity, line by line.
    fn entity_lines(&self, entity: &EncryptedEntity) -> Vec<String> {
        let mut lines = vec![
            format!(
                "{} {}…, revision {}",
                entity.entity_type,
                short(&entity.id.to_string()),
                entity.rev
            ),
            format!("  public: {}", Value::Object(entity.public.clone())),
            format!(
                "  encrypted_self: {} B of AES-256-GCM",
                entity.encrypted_self.0.len()
            ),
            format!(
                "  {} delegation(s) under opaque keys:",
                entity.security_metadata.delegations.len()
            ),
        ];
        for (key, delegation) in &entity.security_metadata.delegations {
            lines.push(format!(
                "    {}… {} -> {}, {}{}",
                short(&key.to_string()),
                self.party(delegation.delegator),
                self.party(delegation.delegate),
                permission(delegation.permission),
                if delegation.parents.is_empty() {
                    ", root"
                } else {
                    ""
                }
            ));
        }
        for attachment in &entity.attachments {
            lines.push(format!(
                "  attachment: {} B encrypted, sealed key {} B",
                attachment.encrypted_len,
                attachment.sealed_key.0.len()
            ));
        }
        lines
    }

    /// One line per stored entity: type, tag, who its delegations name.
    fn summary_line(&self, entity: &EncryptedEntity) -> String {
        let tag = entity.secret_foreign_keys.iter().next().map_or_else(
            || "no tag".into(),
            |tag| format!("tag {}…", short(&tag.to_string())),
        );
        let parties: Vec<String> = entity
            .security_metadata
            .delegations
            .values()
            .map(|d| {
                let name = |id: Option<OwnerId>| {
                    id.and_then(|id| self.names.get(&id).copied())
                        .map_or("hidden", |name| name.trim_start_matches("Dr "))
                };
                format!("{}->{}", name(d.delegator), name(d.delegate))
            })
            .collect();
        format!(
            "{:<12}{}… {:<14} {}",
            entity.entity_type.to_string(),
            short(&entity.id.to_string()),
            tag,
            parties.join(", ")
        )
    }
}

/// Ids of the records of Charlie's file, for P6.
struct CharlieFile {
    charlie: OwnerId,
    patient: EntityId,
    contacts: Vec<EntityId>,
    lab_result: EntityId,
    reading: EntityId,
    dana_visit: EntityId,
}

fn object(value: Value) -> anyhow::Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!("not a JSON object"),
    }
}

/// Field `name` of a record's content, or `null`.
fn field<'a>(content: &'a Map<String, Value>, name: &str) -> &'a Value {
    content.get(name).unwrap_or(&Value::Null)
}

/// A JSON value as text, strings without their quotes.
fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn outcome(result: &tessera::Result<tessera::Record<Map<String, Value>>>) -> String {
    match result {
        Ok(_) => "read it (!)".into(),
        Err(error) => error.to_string(),
    }
}

fn outcome_of<T>(result: &tessera::Result<T>) -> String {
    match result {
        Ok(_) => "decrypted (!)".into(),
        Err(error) => error.to_string(),
    }
}

fn permission(permission: Permission) -> &'static str {
    match permission {
        Permission::Read => "read",
        Permission::Write => "write",
    }
}

fn yes(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// The first 8 characters of an id.
fn short(text: &str) -> String {
    text.chars().take(8).collect()
}

/// `text` cut to `width` characters.
fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Deterministic bytes without long runs (xorshift64*), standing in for an X-ray.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}
