//! Criterion benchmarks of `tessera-primitives`, each measured beside raw `ring` doing the same work (the `ring` rows).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmarks abort on setup failure"
)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use tessera_primitives::stream::{self, StreamReader, StreamWriter};
use tessera_primitives::{
    ALG_AES_256_GCM, AeadBackend, AeadKey, NONCE_LEN, Prk, RsaKeySize, RsaPrivateKey,
    SEALED_BOX_HEADER_LEN, SEALED_BOX_OVERHEAD, SEALED_BOX_VERSION, Secret32, SigningKey, TAG_LEN,
};

/// Plaintext sizes of the sealed-box groups.
const BOX_SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1 << 10, "1KiB"),
    (64 << 10, "64KiB"),
    (1 << 20, "1MiB"),
];
/// Plaintext sizes of the stream groups.
const STREAM_SIZES: [(usize, &str); 2] = [(1 << 20, "1MiB"), (64 << 20, "64MiB")];
const KEY: [u8; 32] = [0x42; 32];
const AAD: &[u8] = b"tessera/bench/aad";
const MESSAGE_LEN: usize = 256;
const HKDF_LABEL: &str = "tessera/v1/bench";
const HKDF_CONTEXT: &[u8] = b"context";
const HKDF_SALT: &[u8] = b"salt";
const HKDF_IKM: &[u8] = &[0x17; 32];

/// Defaults for every group; command-line flags (`--warm-up-time`, `--measurement-time`, `--sample-size`) override them.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = seal, open, stream_seal, stream_open, rsa, ed25519, hkdf
}
criterion_main!(benches);

fn seal(c: &mut Criterion) {
    let reference = ring_key();
    let rng = SystemRandom::new();
    let keys = tessera_keys();
    let mut group = c.benchmark_group("seal");
    for (len, size) in BOX_SIZES {
        let plaintext = vec![0x5a; len];
        let sealed = ring_seal(&reference, &rng, AAD, &plaintext);
        assert_eq!(
            keys[0].1.open(&sealed, AAD).unwrap(),
            plaintext,
            "the reference must build a sealed box"
        );
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("ring", size), &plaintext, |b, p| {
            b.iter(|| ring_seal(&reference, &rng, AAD, black_box(p)));
        });
        for (name, key) in &keys {
            group.bench_with_input(BenchmarkId::new(*name, size), &plaintext, |b, p| {
                b.iter(|| key.seal(black_box(p), AAD).unwrap());
            });
        }
    }
    group.finish();
}

fn open(c: &mut Criterion) {
    let reference = ring_key();
    let keys = tessera_keys();
    let mut group = c.benchmark_group("open");
    for (len, size) in BOX_SIZES {
        let plaintext = vec![0x5a; len];
        let sealed = keys[0].1.seal(&plaintext, AAD).unwrap();
        assert_eq!(ring_open(&reference, AAD, &sealed), plaintext);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("ring", size), &sealed, |b, s| {
            b.iter(|| ring_open(&reference, AAD, black_box(s)));
        });
        for (name, key) in &keys {
            group.bench_with_input(BenchmarkId::new(*name, size), &sealed, |b, s| {
                b.iter(|| key.open(black_box(s), AAD).unwrap());
            });
        }
    }
    group.finish();
}

fn stream_seal(c: &mut Criterion) {
    let reference = ring_key();
    let rng = SystemRandom::new();
    let key = tessera_key(AeadBackend::Ring);
    let mut group = c.benchmark_group("stream-seal");
    for (len, size) in STREAM_SIZES {
        let plaintext = vec![0x5a; len];
        let sealed = ring_stream_seal(&reference, &rng, AAD, &plaintext);
        assert_eq!(
            stream::open_all(key.clone(), AAD, &sealed).unwrap(),
            plaintext,
            "the reference must build a stream"
        );
        let sealed_len = sealed.len();
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("ring", size), &plaintext, |b, p| {
            b.iter(|| ring_stream_seal(&reference, &rng, AAD, black_box(p)));
        });
        // The stream API takes its key by value; cloning it re-expands the key, a fixed cost of well under a microsecond.
        group.bench_with_input(
            BenchmarkId::new("tessera-seal_all", size),
            &plaintext,
            |b, p| {
                b.iter(|| stream::seal_all(key.clone(), AAD, black_box(p)).unwrap());
            },
        );
        group.bench_with_input(
            BenchmarkId::new("tessera-writer", size),
            &plaintext,
            |b, p| {
                b.iter(|| {
                    let mut writer =
                        StreamWriter::new(key.clone(), AAD, Vec::with_capacity(sealed_len))
                            .unwrap();
                    writer.write_all(black_box(p)).unwrap();
                    writer.finish().unwrap()
                });
            },
        );
    }
    group.finish();
}

fn stream_open(c: &mut Criterion) {
    let reference = ring_key();
    let key = tessera_key(AeadBackend::Ring);
    let mut group = c.benchmark_group("stream-open");
    for (len, size) in STREAM_SIZES {
        let plaintext = vec![0x5a; len];
        let sealed = stream::seal_all(key.clone(), AAD, &plaintext).unwrap();
        assert_eq!(ring_stream_open(&reference, AAD, &sealed), plaintext);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("ring", size), &sealed, |b, s| {
            b.iter(|| ring_stream_open(&reference, AAD, black_box(s)));
        });
        group.bench_with_input(
            BenchmarkId::new("tessera-open_all", size),
            &sealed,
            |b, s| {
                b.iter(|| stream::open_all(key.clone(), AAD, black_box(s)).unwrap());
            },
        );
        group.bench_with_input(BenchmarkId::new("tessera-reader", size), &sealed, |b, s| {
            b.iter(|| {
                let mut reader =
                    StreamReader::new(key.clone(), AAD, black_box(s.as_slice())).unwrap();
                let mut out = Vec::with_capacity(len);
                reader.read_to_end(&mut out).unwrap();
                out
            });
        });
    }
    group.finish();
}

/// RSA-OAEP-SHA-256 has no `ring` counterpart (ring does not encrypt with RSA), so these rows have no reference.
fn rsa(c: &mut Criterion) {
    let private = RsaPrivateKey::generate(RsaKeySize::Bits2048).unwrap();
    let public = private.public_key();
    let secret = [0x33; 32];
    let label = b"exchange-data-id fingerprint";
    let wrapped = public.wrap(&secret, label).unwrap();
    let mut group = c.benchmark_group("rsa");
    group.bench_function(BenchmarkId::new("wrap", "2048"), |b| {
        b.iter(|| public.wrap(black_box(&secret), label).unwrap());
    });
    group.bench_function(BenchmarkId::new("unwrap", "2048"), |b| {
        b.iter(|| private.unwrap(black_box(&wrapped), label).unwrap());
    });
    // Key generation takes a random and long time (hundreds of milliseconds): the fewest samples criterion allows.
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("generate", "2048"), |b| {
        b.iter(|| RsaPrivateKey::generate(RsaKeySize::Bits2048).unwrap());
    });
    group.finish();
}

/// Two groups, so that each tessera row has exactly one `ring` reference of the same size.
fn ed25519(c: &mut Criterion) {
    let message = [0x61; MESSAGE_LEN];
    let size = "256B";
    let reference = Ed25519KeyPair::from_seed_unchecked(&KEY).unwrap();
    let key = SigningKey::from_seed(Secret32::from_bytes(KEY));
    let verifying = key.verifying_key();
    let signature = key.sign(&message);
    assert_eq!(reference.sign(&message).as_ref(), signature.as_bytes());

    let mut group = c.benchmark_group("ed25519-sign");
    group.throughput(Throughput::Bytes(MESSAGE_LEN as u64));
    group.bench_function(BenchmarkId::new("ring", size), |b| {
        b.iter(|| reference.sign(black_box(&message)));
    });
    group.bench_function(BenchmarkId::new("tessera", size), |b| {
        b.iter(|| key.sign(black_box(&message)));
    });
    group.finish();

    let mut group = c.benchmark_group("ed25519-verify");
    group.throughput(Throughput::Bytes(MESSAGE_LEN as u64));
    group.bench_function(BenchmarkId::new("ring", size), |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ED25519, reference.public_key().as_ref())
                .verify(black_box(&message), signature.as_bytes())
                .unwrap();
        });
    });
    group.bench_function(BenchmarkId::new("tessera", size), |b| {
        b.iter(|| verifying.verify(black_box(&message), &signature).unwrap());
    });
    group.finish();
}

/// A 32-byte labelled expansion from a ready PRK, and extract-then-expand from input keying material.
fn hkdf(c: &mut Criterion) {
    let info: [&[u8]; 3] = [HKDF_LABEL.as_bytes(), &[0], HKDF_CONTEXT];
    let prk = Prk::from_secret(Secret32::from_bytes(KEY));
    let reference = ring::hkdf::Prk::new_less_safe(HKDF_SHA256, &KEY);
    let ring_expand = |prk: &ring::hkdf::Prk| {
        let mut out = [0u8; 32];
        prk.expand(&info, HKDF_SHA256)
            .unwrap()
            .fill(&mut out)
            .unwrap();
        out
    };
    let ring_extract_expand = || ring_expand(&Salt::new(HKDF_SHA256, HKDF_SALT).extract(HKDF_IKM));
    let tessera_extract_expand =
        || Prk::extract(HKDF_SALT, HKDF_IKM).derive_secret32(HKDF_LABEL, HKDF_CONTEXT);
    assert_eq!(
        &ring_expand(&reference),
        prk.derive_secret32(HKDF_LABEL, HKDF_CONTEXT)
            .expose_secret()
    );
    assert_eq!(
        &ring_extract_expand(),
        tessera_extract_expand().expose_secret()
    );

    let mut group = c.benchmark_group("hkdf");
    group.bench_function(BenchmarkId::new("ring", "expand-32"), |b| {
        b.iter(|| ring_expand(black_box(&reference)));
    });
    group.bench_function(BenchmarkId::new("tessera", "expand-32"), |b| {
        b.iter(|| black_box(&prk).derive_secret32(HKDF_LABEL, HKDF_CONTEXT));
    });
    group.bench_function(BenchmarkId::new("ring", "extract+expand-32"), |b| {
        b.iter(ring_extract_expand);
    });
    group.bench_function(BenchmarkId::new("tessera", "extract+expand-32"), |b| {
        b.iter(tessera_extract_expand);
    });
    group.finish();
}

fn ring_key() -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).unwrap())
}

fn tessera_key(backend: AeadBackend) -> AeadKey {
    AeadKey::with_backend(Secret32::from_bytes(KEY), backend)
}

/// The two backends under the function ids of their rows.
fn tessera_keys() -> [(&'static str, AeadKey); 2] {
    [
        ("tessera-ring", tessera_key(AeadBackend::Ring)),
        ("tessera-pure-rust", tessera_key(AeadBackend::PureRust)),
    ]
}

/// A sealed box built with raw `ring`: exactly the allocation, copies and randomness of `AeadKey::seal`.
fn ring_seal(key: &LessSafeKey, rng: &SystemRandom, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).unwrap();
    let mut out = Vec::with_capacity(plaintext.len() + SEALED_BOX_OVERHEAD);
    out.extend_from_slice(&[SEALED_BOX_VERSION, ALG_AES_256_GCM]);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let body = out.get_mut(SEALED_BOX_HEADER_LEN..).unwrap();
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
        .unwrap();
    out.extend_from_slice(tag.as_ref());
    out
}

/// Opens a sealed box with raw `ring`: one copy of the body, then decryption in place.
fn ring_open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let nonce =
        Nonce::try_assume_unique_for_key(sealed.get(2..SEALED_BOX_HEADER_LEN).unwrap()).unwrap();
    let mut buf = sealed.get(SEALED_BOX_HEADER_LEN..).unwrap().to_vec();
    let len = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .unwrap()
        .len();
    buf.truncate(len);
    buf
}

/// A stream sealed with raw `ring`, segment by segment into one output allocated once, as `stream::seal_all` does.
fn ring_stream_seal(
    key: &LessSafeKey,
    rng: &SystemRandom,
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut prefix = [0u8; stream::NONCE_PREFIX_LEN];
    rng.fill(&mut prefix).unwrap();
    let segments = plaintext.len().div_ceil(stream::SEGMENT_LEN).max(1);
    let mut out = Vec::with_capacity(stream::HEADER_LEN + plaintext.len() + segments * TAG_LEN);
    out.extend_from_slice(&[stream::STREAM_VERSION, stream::ALG_AES_256_GCM_STREAM_64K]);
    out.extend_from_slice(&prefix);
    for (index, chunk) in plaintext.chunks(stream::SEGMENT_LEN).enumerate() {
        let at = out.len();
        out.extend_from_slice(chunk);
        let nonce = segment_nonce(&prefix, index, index + 1 == segments);
        let tag = key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), out.get_mut(at..).unwrap())
            .unwrap();
        out.extend_from_slice(tag.as_ref());
    }
    out
}

/// Opens a stream with raw `ring`, segment by segment into one output allocated once, as `stream::open_all` does.
fn ring_stream_open(key: &LessSafeKey, aad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let (header, body) = sealed.split_at(stream::HEADER_LEN);
    let prefix: [u8; stream::NONCE_PREFIX_LEN] = header.get(2..).unwrap().try_into().unwrap();
    let segments = body.len().div_ceil(stream::ENCRYPTED_SEGMENT_LEN);
    let mut out = Vec::with_capacity(body.len());
    for (index, segment) in body.chunks(stream::ENCRYPTED_SEGMENT_LEN).enumerate() {
        let at = out.len();
        out.extend_from_slice(segment);
        let nonce = segment_nonce(&prefix, index, index + 1 == segments);
        let len = key
            .open_in_place(nonce, Aad::from(aad), out.get_mut(at..).unwrap())
            .unwrap()
            .len();
        out.truncate(at + len);
    }
    out
}

/// The STREAM nonce of `tessera_primitives::stream`: `prefix(7) ‖ index (u32, big-endian) ‖ last`.
fn segment_nonce(prefix: &[u8; stream::NONCE_PREFIX_LEN], index: usize, last: bool) -> Nonce {
    let index = u32::try_from(index).unwrap();
    let mut nonce = [0u8; NONCE_LEN];
    let (head, tail) = nonce.split_at_mut(stream::NONCE_PREFIX_LEN);
    head.copy_from_slice(prefix);
    let (counter, flag) = tail.split_at_mut(4);
    counter.copy_from_slice(&index.to_be_bytes());
    flag.copy_from_slice(&[u8::from(last)]);
    Nonce::assume_unique_for_key(nonce)
}
