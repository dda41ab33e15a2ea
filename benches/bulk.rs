//! The bulk workload against the `age` crate, measured in the same run: 1,000 records of 1 KiB, each encrypted
//! for 10 known partners, then all 1,000 opened as one of those partners.
//!
//! Tessera encrypts through the sharing layer with exchange data that already exists for every partner (no RSA in
//! the measured loop): one [`tessera_sharing::create`] per record with the creator's root delegation and 10
//! auto-delegations, and one [`tessera_sharing::decrypt`] per record through the partner's access index. `age`
//! encrypts each record as one file for 10 native X25519 recipients and decrypts it with one identity. The `age`
//! functions are the reference of the group (`cargo xtask bench` prints `× faster than reference`).
//!
//! Which stanza the `age` identity matches decides its cost: it tries the X25519 stanzas in order, one
//! Diffie-Hellman each. `age-decrypt` opens as the *first* recipient (age's best case, one Diffie-Hellman per
//! file) and `age-decrypt-last` as the tenth (its worst, ten), so the ratio to `tessera-decrypt` is a bound either
//! way; `age-decrypt-mean` opens record *i* as recipient *i* mod 10, every position equally often (what a reader
//! chosen among the ten pays on average). Tessera's partner is the first one; its lookup does not depend on the
//! position.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmarks abort on setup failure"
)]
#![allow(
    deprecated,
    reason = "age 0.13 deprecates its classic X25519 recipients in favour of post-quantum hybrids; the workload measures X25519"
)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Records per iteration.
const RECORDS: usize = 1_000;
/// Bytes of sealed content per record.
const RECORD_BYTES: usize = 1024;
/// Partners every record is encrypted for.
const PARTNERS: usize = 10;
/// The criterion group (and the value of every benchmark id in it).
const GROUP: &str = "bulk-1000x1KiB-10";

/// Every call into `tessera_sharing` and the key layer, kept here so that a change of the sharing layer's
/// signatures (`create`, `decrypt`, `DelegationTarget`) is adapted in one place.
mod tessera_side {
    use serde_json::{Map, Value, json};
    use tessera_keys::test_utils::fixture_rsa;
    use tessera_keys::{
        EntityType, ExchangeData, ExchangeSecret, OwnerId, OwnerKeys, Tofu, TrustPolicy,
    };
    use tessera_sharing::{
        AccessIndex, DecryptedEntity, DelegationTarget, EncryptedEntity, EncryptionManifest,
        EntityId, NewEntity, Permission, Visibility, create_many, decrypt,
    };

    /// A creator with its self exchange data, exchange data with every partner (created once, outside the
    /// measured loop), and the first partner's access index over the secret it opened.
    pub(crate) struct World {
        creator: OwnerKeys,
        own: ExchangeSecret,
        partners: Vec<ExchangeSecret>,
        manifest: EncryptionManifest,
        note: EntityType,
        /// The first partner's access index: the secret of creator → partner 0, opened by the partner.
        pub(crate) reader: AccessIndex,
    }

    impl World {
        /// The creator and `partners` partners. Their RSA keys are derived from the fixture key under distinct
        /// owner ids (distinct bundles and fingerprints), so the setup costs no RSA key generation; RSA is used
        /// only here, to create and open exchange data.
        pub(crate) fn build(partners: usize) -> Self {
            let trust = Tofu::new();
            let key = || fixture_rsa("rsa2048.pem").unwrap();
            let creator = OwnerKeys::derive(OwnerId::generate().unwrap(), key(), 0).unwrap();
            let creator_bundle = trust.trust(creator.bundle().unwrap()).unwrap();
            let (_, own) = ExchangeData::create(&creator, creator.owner(), &[], 0).unwrap();
            let mut secrets = Vec::new();
            let mut reader = None;
            for index in 0..partners {
                let partner = OwnerKeys::derive(OwnerId::generate().unwrap(), key(), 0).unwrap();
                let bundle = trust.trust(partner.bundle().unwrap()).unwrap();
                let (data, secret) =
                    ExchangeData::create(&creator, partner.owner(), &[&bundle], 0).unwrap();
                if index == 0 {
                    let opened = data.open(&partner, &[&creator_bundle, &bundle]).unwrap();
                    // The reader trusts the creator's bundle, to verify what the creator signed.
                    reader = Some(
                        AccessIndex::new(partner.owner(), [opened])
                            .with_signers([creator_bundle.clone()]),
                    );
                }
                secrets.push(secret);
            }
            Self {
                creator,
                own,
                partners: secrets,
                manifest: EncryptionManifest::new(["note"]).unwrap(),
                note: EntityType::new("Note").unwrap(),
                reader: reader.unwrap(),
            }
        }

        /// A record whose sealed part is `len` bytes of JSON (`{"note":"xxx…"}`).
        pub(crate) fn document(len: usize) -> Map<String, Value> {
            let Value::Object(map) = json!({"note": "x".repeat(len - r#"{"note":""}"#.len())})
            else {
                unreachable!()
            };
            map
        }

        /// Encrypts `count` records of `document` for the creator (root delegation) and every partner
        /// (auto-delegations), signed together as one batch (one signature), as the SDK's `create_many` does.
        pub(crate) fn encrypt(
            &self,
            document: &Map<String, Value>,
            count: usize,
        ) -> Vec<EncryptedEntity> {
            let root = DelegationTarget {
                exchange: &self.own,
                visibility: Visibility::Explicit,
                permission: Permission::Write,
            };
            let partners: Vec<DelegationTarget<'_>> = self
                .partners
                .iter()
                .map(|exchange| DelegationTarget {
                    exchange,
                    visibility: Visibility::Explicit,
                    permission: Permission::Read,
                })
                .collect();
            let records = (0..count)
                .map(|_| {
                    let new = NewEntity {
                        id: EntityId::generate().unwrap(),
                        entity_type: self.note.clone(),
                        document: document.clone(),
                        manifest: &self.manifest,
                        secret_ids: vec![],
                        parents: vec![],
                    };
                    (new, partners.clone())
                })
                .collect();
            create_many(records, root, &self.creator).unwrap()
        }

        /// Opens every record as the first partner, from cold: the batch signature is verified again (once).
        pub(crate) fn decrypt(&self, entities: &[EncryptedEntity]) -> Vec<DecryptedEntity> {
            self.reader.verified_batches().clear();
            entities
                .iter()
                .map(|entity| decrypt(entity, &self.reader).unwrap())
                .collect()
        }
    }
}

/// One `age` file of `plaintext` for every recipient.
fn age_encrypt(recipients: &[age::x25519::Recipient], plaintext: &[u8]) -> Vec<u8> {
    let encryptor =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .unwrap();
    let mut file = Vec::with_capacity(plaintext.len() + 2048);
    let mut writer = encryptor.wrap_output(&mut file).unwrap();
    writer.write_all(plaintext).unwrap();
    writer.finish().unwrap();
    file
}

/// The plaintext of an `age` file, opened with `identity`.
fn age_decrypt(identity: &age::x25519::Identity, file: &[u8]) -> Vec<u8> {
    let decryptor = age::Decryptor::new_buffered(file).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(identity as &dyn age::Identity))
        .unwrap();
    let mut plaintext = Vec::with_capacity(file.len());
    reader.read_to_end(&mut plaintext).unwrap();
    plaintext
}

fn bulk(c: &mut Criterion) {
    let world = tessera_side::World::build(PARTNERS);
    let document = tessera_side::World::document(RECORD_BYTES);
    let identities: Vec<age::x25519::Identity> = (0..PARTNERS)
        .map(|_| age::x25519::Identity::generate())
        .collect();
    let recipients: Vec<age::x25519::Recipient> = identities
        .iter()
        .map(age::x25519::Identity::to_public)
        .collect();
    let plaintext = vec![0x78u8; RECORD_BYTES];

    // The same workload is checked before it is measured: every side opens what it sealed.
    let records = world.encrypt(&document, RECORDS);
    assert_eq!(world.decrypt(&records[..1])[0].document, document);
    let files: Vec<Vec<u8>> = (0..RECORDS)
        .map(|_| age_encrypt(&recipients, &plaintext))
        .collect();
    assert_eq!(age_decrypt(&identities[0], &files[0]), plaintext);
    assert_eq!(age_decrypt(&identities[PARTNERS - 1], &files[0]), plaintext);

    let mut group = c.benchmark_group(GROUP);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(RECORDS as u64));
    let id = |function: &str| BenchmarkId::new(function, "1000x1KiB");
    group.bench_function(id("age-encrypt"), |b| {
        b.iter(|| {
            (0..RECORDS)
                .map(|_| age_encrypt(&recipients, black_box(&plaintext)))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function(id("tessera-encrypt"), |b| {
        b.iter(|| world.encrypt(black_box(&document), RECORDS))
    });
    group.bench_function(id("age-decrypt"), |b| {
        b.iter(|| {
            files
                .iter()
                .map(|file| age_decrypt(&identities[0], black_box(file)))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function(id("age-decrypt-mean"), |b| {
        b.iter(|| {
            files
                .iter()
                .enumerate()
                .map(|(i, file)| age_decrypt(&identities[i % PARTNERS], black_box(file)))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function(id("age-decrypt-last"), |b| {
        b.iter(|| {
            files
                .iter()
                .map(|file| age_decrypt(&identities[PARTNERS - 1], black_box(file)))
                .collect::<Vec<_>>()
        })
    });
    group.bench_function(id("tessera-decrypt"), |b| {
        b.iter(|| world.decrypt(black_box(&records)))
    });
    group.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
