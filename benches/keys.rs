//! Benchmarks of the key layer: exchange data creation and opening, access-control key derivation, key-bag loading.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "benchmarks abort on setup failure"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tessera_keys::test_utils::fixture_rsa;
use tessera_keys::{
    EntityType, ExchangeData, KeyBag, KeyBagEntry, OwnerId, OwnerKeys, Tofu, TrustPolicy,
    TrustedBundle,
};
use tessera_primitives::RsaPrivateKey;

const CREATED: u64 = 1_700_000_000;

/// One owner with `devices` keys (bundles), all trusted by `policy`.
fn owner(devices: usize, policy: &Tofu) -> (Vec<OwnerKeys>, Vec<TrustedBundle>) {
    let id = OwnerId::generate().unwrap();
    let keys: Vec<OwnerKeys> = (0..devices)
        .map(|i| {
            let rsa = if i == 0 {
                fixture_rsa("rsa2048.pem").unwrap()
            } else {
                RsaPrivateKey::generate(Default::default()).unwrap()
            };
            OwnerKeys::derive(id, rsa, CREATED + i as u64).unwrap()
        })
        .collect();
    // Later devices are chained from the first, as a rotation would be, so that TOFU accepts them.
    let trusted = keys
        .iter()
        .map(|k| {
            let mut bundle = k.bundle().unwrap();
            if k.fingerprint() != keys[0].fingerprint() {
                keys[0].sign_successor(&mut bundle).unwrap();
            }
            policy.trust(bundle).unwrap()
        })
        .collect();
    (keys, trusted)
}

fn exchange_data(c: &mut Criterion) {
    let policy = Tofu::new();
    let mut group = c.benchmark_group("exchange-data");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(5));
    for devices in [1usize, 3] {
        let (delegator, delegator_bundles) = owner(devices, &policy);
        let (delegate, delegate_bundles) = owner(devices, &policy);
        // The delegator's own first key is wrapped automatically; its other devices and all of the delegate's are recipients.
        let recipients: Vec<&TrustedBundle> = delegator_bundles[1..]
            .iter()
            .chain(&delegate_bundles)
            .collect();
        let label = format!("{devices}+{devices}");
        group.bench_function(BenchmarkId::new("create", &label), |b| {
            b.iter(|| {
                ExchangeData::create(
                    &delegator[0],
                    delegate[0].owner(),
                    black_box(&recipients),
                    CREATED,
                )
                .unwrap()
            })
        });
        let (data, secret) =
            ExchangeData::create(&delegator[0], delegate[0].owner(), &recipients, CREATED).unwrap();
        group.bench_function(BenchmarkId::new("open-cold-rsa", &label), |b| {
            b.iter(|| {
                data.open(&delegate[0], black_box(&[&delegator_bundles[0]]))
                    .unwrap()
            })
        });
        let entry = KeyBag::seal_entry(&delegate[0], &secret).unwrap();
        group.bench_function(BenchmarkId::new("open-warm-keybag", &label), |b| {
            b.iter(|| KeyBag::open_entry(&delegate[0], black_box(&entry)).unwrap())
        });
    }
    group.finish();
}

fn access_keys(c: &mut Criterion) {
    let policy = Tofu::new();
    let (delegator, _) = owner(1, &policy);
    let (delegate, delegate_bundles) = owner(1, &policy);
    let (_, secret) = ExchangeData::create(
        &delegator[0],
        delegate[0].owner(),
        &[&delegate_bundles[0]],
        CREATED,
    )
    .unwrap();
    let contact = EntityType::new("Contact").unwrap();
    let mut group = c.benchmark_group("access-keys");
    group.bench_function("access-control-key-warm", |b| {
        b.iter(|| secret.access_control_key(black_box(&contact)))
    });
    group.bench_function("delegation-key-warm", |b| {
        b.iter(|| secret.delegation_key(black_box(&contact)))
    });
    group.finish();
}

fn key_bag(c: &mut Criterion) {
    let policy = Tofu::new();
    let (me, _) = owner(1, &policy);
    let (partner, partner_bundles) = owner(1, &policy);

    // 10,000 partners' secrets (each created once: the setup costs two RSA encryptions per entry).
    let entries: Vec<KeyBagEntry> = (0..10_000)
        .map(|_| {
            let (_, s) =
                ExchangeData::create(&me[0], partner[0].owner(), &[&partner_bundles[0]], CREATED)
                    .unwrap();
            KeyBag::seal_entry(&me[0], &s).unwrap()
        })
        .collect();
    let mut group = c.benchmark_group("key-bag");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("load-10000", |b| {
        b.iter(|| {
            let bag = KeyBag::load(&me[0], black_box(&entries)).unwrap();
            assert_eq!(bag.len(), 10_000);
            bag
        })
    });
    group.finish();
}

criterion_group!(benches, exchange_data, access_keys, key_bag);
criterion_main!(benches);
