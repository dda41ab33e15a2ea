//! The whole path through the SDK against a server on loopback: create+share with a known partner, open a shared
//! record, a 16 MiB attachment up and down as whole buffers and as streams, and login with 10,000 partners in the
//! key bag. Each figure is printed next to the layer benchmark it
//! builds on (from the same `cargo xtask bench` run, see the criterion rows), so transport and SDK overhead show.
//!
//! Not a criterion benchmark (it needs a long setup once); `--list` prints nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    reason = "a benchmark aborts on setup failure and prints its results"
)]

#[path = "harness.rs"]
mod harness;

use harness::{fixture, owner_record};

use std::time::{Duration, Instant};

use serde_json::json;
use tessera::{Client, EntityType, OwnerId, OwnerKeys, Session, Share, Tofu};
use tessera_keys::{ExchangeData, InboxMessage, KeyBag, PinnedFingerprints, TrustPolicy};

const ADMIN: &str = "sdk-bench-admin";
const PARTNERS: usize = 10_000;
const ATTACHMENT_BYTES: usize = 16 << 20;

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn p99(times: &mut [Duration]) -> Duration {
    times.sort();
    times[(times.len() * 99 / 100).min(times.len() - 1)]
}

fn main() {
    harness::main_with(run());
}

async fn run() {
    let (_dir, server) = harness::start_server(ADMIN).await;
    let url = format!("http://{}", server.local_addr());
    let admin = tessera_client::Client::new(&url);

    // "Me" and one partner with real keys; 10,000 further partners share one RSA key under distinct owner ids
    // (their bundles and fingerprints differ), which keeps the setup to seconds instead of hours of RSA generation.
    let me_id = OwnerId::generate().unwrap();
    let me = || OwnerKeys::derive(me_id, fixture("rsa2048.pem"), 0).unwrap();
    let partner_id = OwnerId::generate().unwrap();
    let partner = || OwnerKeys::derive(partner_id, fixture("rsa3072.pem"), 0).unwrap();
    admin
        .register_owner_as_admin(ADMIN, &owner_record(&me()))
        .await
        .unwrap();
    admin
        .register_owner_as_admin(ADMIN, &owner_record(&partner()))
        .await
        .unwrap();

    // Create+share with a known partner, and open a shared record, through two sessions.
    let alice = Session::login(Client::new(&url), me(), Tofu::new())
        .await
        .unwrap();
    let bob = Session::login(Client::new(&url), partner(), Tofu::new())
        .await
        .unwrap();
    let note = EntityType::new("Note").unwrap();
    let content = json!({"text": "x".repeat(1000), "lang": "en"});
    let first = alice.create(&note, &content).await.unwrap();
    alice
        .share(&first.entity, &[Share::read(partner_id)])
        .await
        .unwrap(); // creates the exchange data once
    let mut create_share = Vec::new();
    let mut shared = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let saved = alice.create(&note, &content).await.unwrap();
        alice
            .share(&saved.entity, &[Share::read(partner_id)])
            .await
            .unwrap();
        create_share.push(started.elapsed());
        shared.push(saved.entity);
    }
    bob.get_json(&shared[0]).await.unwrap(); // Bob opens the pair's exchange data once
    let mut open = Vec::new();
    for entity in &shared {
        let started = Instant::now();
        bob.get_json(entity).await.unwrap();
        open.push(started.elapsed());
    }

    // A 16 MiB attachment, whole and streamed, on the record shared with Bob.
    let content: Vec<u8> = (0..ATTACHMENT_BYTES as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut rev = alice.get_json(&first.entity).await.unwrap().rev;
    let (mut put_whole, mut put_stream, mut get_whole, mut get_stream) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        let (whole_id, next) = alice
            .add_attachment(&first.entity, rev, &content)
            .await
            .unwrap();
        put_whole.push(started.elapsed());
        let source = std::io::Cursor::new(content.clone());
        let started = Instant::now();
        let (stream_id, next) = alice
            .add_attachment_stream(&first.entity, next, source, content.len() as u64)
            .await
            .unwrap();
        put_stream.push(started.elapsed());
        rev = next;

        let started = Instant::now();
        let whole = bob.attachment(&first.entity, whole_id).await.unwrap();
        get_whole.push(started.elapsed());
        assert_eq!(whole.len(), content.len());
        let started = Instant::now();
        let mut stream = bob
            .attachment_stream(&first.entity, stream_id)
            .await
            .unwrap();
        let read = tokio::io::copy(&mut stream, &mut tokio::io::sink())
            .await
            .unwrap();
        get_stream.push(started.elapsed());
        assert_eq!(read, content.len() as u64);
    }

    // 10,000 partners in my key bag: exchange data I created for each, delivered to its inbox, with its bag entry.
    let base = fixture("rsa2048.pem");
    let me_keys = me();
    let mut client = tessera_client::Client::new(&url);
    client.login(&me_keys).await.unwrap();
    let setup = Instant::now();
    for _ in 0..PARTNERS {
        let other = OwnerKeys::derive(OwnerId::generate().unwrap(), base.clone(), 0).unwrap();
        admin
            .register_owner_as_admin(ADMIN, &owner_record(&other))
            .await
            .unwrap();
        let bundle = PinnedFingerprints::new([other.fingerprint()])
            .trust(other.bundle().unwrap())
            .unwrap();
        let (data, secret) = ExchangeData::create(&me_keys, other.owner(), &[&bundle], 0).unwrap();
        client
            .deliver(other.owner(), &InboxMessage::seal(&data, &bundle).unwrap())
            .await
            .unwrap();
        client
            .put_key_bag_entry(&KeyBag::seal_entry(&me_keys, &secret).unwrap())
            .await
            .unwrap();
    }
    let setup = setup.elapsed();
    let mut logins = Vec::new();
    let mut first_reads = Vec::new();
    let mut bag = 0;
    let mut stats = None;
    for _ in 0..5 {
        let started = Instant::now();
        let session = Session::login(Client::new(&url), me(), Tofu::new())
            .await
            .unwrap();
        logins.push(started.elapsed());
        // The first read of a type registers every partner's access-control key for it and indexes every
        // partner's delegation keys, re-opening the secrets the bounded cache did not keep.
        let started = Instant::now();
        session.get_json(&first.entity).await.unwrap();
        first_reads.push(started.elapsed());
        bag = session.stats().key_bag_entries;
        assert_eq!(
            session.stats().opened_with_rsa,
            0,
            "known partners need no RSA at login"
        );
        stats = Some(session.stats());
    }
    let stats = stats.unwrap();

    println!(
        "\n## SDK end to end (loopback, one client at a time; setup of {PARTNERS} partners took {:.1} s)\n",
        setup.as_secs_f64()
    );
    println!("| operation | median | p99 | layer figure in the same `cargo xtask bench` run |");
    println!("| --- | ---: | ---: | --- |");
    println!(
        "| create + share a 1 KiB record with a known partner (2 requests) | {:.2} ms | {:.2} ms | sharing-1KiB create+encrypt and share-known-partner; POST /v1/entities under load |",
        median(&mut create_share).as_secs_f64() * 1e3,
        p99(&mut create_share).as_secs_f64() * 1e3
    );
    println!(
        "| open a shared record (1 request + decrypt) | {:.2} ms | {:.2} ms | sharing-1KiB decrypt; GET /v1/entities/{{id}} under load |",
        median(&mut open).as_secs_f64() * 1e3,
        p99(&mut open).as_secs_f64() * 1e3
    );
    let mib_per_s =
        |time: Duration| ATTACHMENT_BYTES as f64 / (1 << 20) as f64 / time.as_secs_f64();
    for (what, whole, stream) in [
        ("upload", &mut put_whole, &mut put_stream),
        ("download", &mut get_whole, &mut get_stream),
    ] {
        let (whole, stream) = (median(whole), median(stream));
        println!(
            "| 16 MiB attachment {what}, whole buffer / stream (one segment held) | {:.1} ms / {:.1} ms | {:.0} / {:.0} MiB/s | stream-seal / stream-open 64 MiB (raw ring reference); stream = {:.2}x whole |",
            whole.as_secs_f64() * 1e3,
            stream.as_secs_f64() * 1e3,
            mib_per_s(whole),
            mib_per_s(stream),
            whole.as_secs_f64() / stream.as_secs_f64()
        );
    }
    println!(
        "| login with {bag} partners in the key bag (no RSA) | {:.1} ms | {:.1} ms (max of {}) | key-bag/load-10000 (target: login ≤ 100 ms) |",
        median(&mut logins).as_secs_f64() * 1e3,
        logins.iter().max().unwrap().as_secs_f64() * 1e3,
        logins.len()
    );
    println!(
        "| then the first read of a record (registers {bag} access-control keys, indexes {bag} delegation keys) | {:.1} ms | {:.1} ms (max of {}) | {} of {} secrets kept opened, {} re-opened from the key bag (no RSA) |",
        median(&mut first_reads).as_secs_f64() * 1e3,
        first_reads.iter().max().unwrap().as_secs_f64() * 1e3,
        first_reads.len(),
        stats.opened_exchange_secrets,
        stats.exchange_secrets,
        stats.reopened_from_key_bag
    );
    server.shutdown().await;
}
