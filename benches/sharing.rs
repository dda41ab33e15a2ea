//! Benchmarks of the sharing layer, each next to a bare `ring` seal of the same bytes measured in the same run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmarks abort on setup failure"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::{Map, Value, json};
use tessera_keys::test_utils::fixture_rsa;
use tessera_keys::{
    EntityType, ExchangeData, ExchangeSecret, OwnerId, OwnerKeys, Tofu, TrustPolicy, TrustedBundle,
};
use tessera_primitives::RsaKeySize;
use tessera_sharing::{
    AccessIndex, DelegationTarget, EncryptionManifest, EntityId, NewEntity, Permission, Visibility,
    create, decrypt, open_keys, revoke_and_rotate, rules, share,
};

/// Everything the benchmarks share: a doctor (who signs what it writes) with its trusted bundle, its self
/// exchange data and ten partners' exchange data.
struct World {
    doctor: OwnerKeys,
    doctor_bundle: TrustedBundle,
    own: ExchangeSecret,
    partners: Vec<ExchangeSecret>,
    manifest: EncryptionManifest,
    note: EntityType,
}

fn world() -> World {
    let trust = Tofu::new();
    let doctor = OwnerKeys::derive(
        OwnerId::generate().unwrap(),
        fixture_rsa("rsa2048.pem").unwrap(),
        0,
    )
    .unwrap();
    let doctor_bundle = trust.trust(doctor.bundle().unwrap()).unwrap();
    let (_, own) = ExchangeData::create(&doctor, doctor.owner(), &[], 0).unwrap();
    let partners = (0..10)
        .map(|_| {
            let partner =
                OwnerKeys::generate(OwnerId::generate().unwrap(), RsaKeySize::Bits2048, 0).unwrap();
            let bundle = trust.trust(partner.bundle().unwrap()).unwrap();
            ExchangeData::create(&doctor, partner.owner(), &[&bundle], 0)
                .unwrap()
                .1
        })
        .collect();
    World {
        doctor,
        doctor_bundle,
        own,
        partners,
        manifest: EncryptionManifest::new(["note", "vitals"]).unwrap(),
        note: EntityType::new("Note").unwrap(),
    }
}

/// A document whose sealed part is about `size` bytes of JSON.
fn document(size: usize) -> Map<String, Value> {
    let Value::Object(map) = json!({"note": "x".repeat(size.saturating_sub(40)), "vitals": {"bp": "120/80"}, "lang": "en"})
    else {
        unreachable!()
    };
    map
}

fn new_entity<'a>(world: &'a World, size: usize) -> NewEntity<'a> {
    NewEntity {
        id: EntityId::generate().unwrap(),
        entity_type: world.note.clone(),
        document: document(size),
        manifest: &world.manifest,
        secret_ids: vec![],
        parents: vec![],
    }
}

fn root(world: &World) -> DelegationTarget<'_> {
    DelegationTarget {
        exchange: &world.own,
        visibility: Visibility::Explicit,
        permission: Permission::Write,
    }
}

/// The reference: one bare ring AES-256-GCM seal (random nonce) of `len` bytes.
fn ring_seal(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, len: usize) {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7; 32]).unwrap());
    let rng = SystemRandom::new();
    let data = vec![0x61u8; len];
    c.bench_function(BenchmarkId::new("ring-seal", len), |b| {
        b.iter(|| {
            let mut nonce = [0u8; 12];
            rng.fill(&mut nonce).unwrap();
            let mut buf = Vec::with_capacity(len + 30);
            buf.extend_from_slice(&data);
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(nonce),
                    Aad::from(b"aad"),
                    &mut buf,
                )
                .unwrap();
            buf.extend_from_slice(tag.as_ref());
            buf
        })
    });
}

fn entity_operations(c: &mut Criterion) {
    let world = world();
    let mut group = c.benchmark_group("sharing-1KiB");
    ring_seal(&mut group, 1024);
    let doctor = &world.doctor;
    group.bench_function(BenchmarkId::new("create+encrypt", 1024), |b| {
        b.iter(|| create(new_entity(&world, 1024), root(&world), &[], doctor).unwrap())
    });
    let (entity, opened) = create(new_entity(&world, 1024), root(&world), &[], doctor).unwrap();
    let partner = DelegationTarget {
        exchange: &world.partners[0],
        visibility: Visibility::Explicit,
        permission: Permission::Read,
    };
    group.bench_function(BenchmarkId::new("share-known-partner", 1024), |b| {
        b.iter(|| share(black_box(&entity), &opened, &[partner], doctor).unwrap())
    });
    let access = AccessIndex::new(world.doctor.owner(), [world.own.clone()])
        .with_signers([world.doctor_bundle.clone()]);
    // Warm: the batch signature was verified once, as a session has done after the first record of a batch.
    decrypt(&entity, &access).unwrap();
    group.bench_function(BenchmarkId::new("decrypt", 1024), |b| {
        b.iter(|| decrypt(black_box(&entity), &access).unwrap())
    });
    // Cold: every decrypt verifies the batch signature again.
    group.bench_function(BenchmarkId::new("decrypt-cold", 1024), |b| {
        b.iter(|| {
            access.verified_batches().clear();
            decrypt(black_box(&entity), &access).unwrap()
        })
    });
    // What sharing, updating, rotating and attachments open: the keys, not the content (warm, as above).
    decrypt(&entity, &access).unwrap();
    group.bench_function(BenchmarkId::new("open-keys", 1024), |b| {
        b.iter(|| open_keys(black_box(&entity), &access).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("sharing-1MiB");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    ring_seal(&mut group, 1 << 20);
    let (mut big, big_opened) =
        create(new_entity(&world, 1 << 20), root(&world), &[], doctor).unwrap();
    let targets: Vec<DelegationTarget<'_>> = world
        .partners
        .iter()
        .map(|exchange| DelegationTarget {
            exchange,
            visibility: Visibility::Explicit,
            permission: Permission::Read,
        })
        .collect();
    let entries = share(&big, &big_opened, &targets, doctor).unwrap();
    rules::apply_share(&mut big, &entries, |_| true).unwrap();
    let revoked = [entries[0].delegation_key];
    let all = AccessIndex::new(
        world.doctor.owner(),
        std::iter::once(world.own.clone()).chain(world.partners.iter().cloned()),
    )
    .with_signers([world.doctor_bundle.clone()]);
    // The rotated entity is complete once signed: the measure covers the rotation and its one signature.
    group.bench_function(
        BenchmarkId::new("revoke-and-rotate-10-delegations", 1 << 20),
        |b| {
            b.iter(|| {
                revoke_and_rotate(black_box(&big), &big_opened, &revoked, &all, doctor)
                    .unwrap()
                    .sign(doctor)
                    .unwrap()
            })
        },
    );
    group.finish();
}

criterion_group!(benches, entity_operations);
criterion_main!(benches);
