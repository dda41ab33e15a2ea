//! Load benchmark of the server over loopback with concurrent clients, next to references measured in the same run:
//! a bare hyper responder (for reads) and the disk's own durable-commit rate (for creates).
//!
//! Not a criterion benchmark: it measures requests per second and latency percentiles under concurrency.
//! `cargo bench -p tessera-benches --bench transport` prints a table; `--list` prints nothing.
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

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Map, Value, json};
use tessera_client::Client;
use tessera_keys::{
    EntityType, ExchangeData, ExchangeSecret, InboxMessage, OwnerId, OwnerKeys, Tofu, TrustPolicy,
};
use tessera_primitives::RsaKeySize;
use tessera_sharing::{
    AccessIndex, DelegationTarget, EncryptedEntity, EncryptionManifest, EntityId, NewEntity,
    Permission, ShareRequest, Visibility, create, share,
};

const CONCURRENCY: usize = 16;
const RUN: Duration = Duration::from_secs(3);
const ADMIN: &str = "bench-admin-token";

/// Requests per second and latency percentiles of one scenario.
struct Load {
    name: &'static str,
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies.get(index).copied().unwrap_or_default()
    }
}

/// Runs `request` from `CONCURRENCY` tasks for `RUN`, each task calling it in a loop with its own counter.
async fn load<F, Fut>(name: &'static str, request: F) -> Load
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|task| {
            let request = Arc::clone(&request);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0;
                while started.elapsed() < RUN {
                    let t = Instant::now();
                    request(task, i).await;
                    latencies.push(t.elapsed());
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Load {
        name,
        requests: latencies.len(),
        elapsed,
        latencies,
    }
}

/// A bare hyper responder answering every request with `body`: the ceiling for any server on this machine.
async fn bare_responder(body: Bytes) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// The disk's own durable-commit rate: one tiny redb write transaction per commit, from `CONCURRENCY` threads.
fn disk_commits_per_second(dir: &std::path::Path) -> f64 {
    const TABLE: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("t");
    let db = Arc::new(redb::Database::create(dir.join("reference.redb")).unwrap());
    let started = Instant::now();
    let mut count = 0u64;
    while started.elapsed() < RUN {
        let tx = db.begin_write().unwrap();
        tx.open_table(TABLE).unwrap().insert(count, count).unwrap();
        tx.commit().unwrap();
        count += 1;
    }
    count as f64 / started.elapsed().as_secs_f64()
}

struct World {
    doctor: OwnerKeys,
    own: ExchangeSecret,
    partners: Vec<ExchangeSecret>,
    manifest: EncryptionManifest,
    note: EntityType,
}

impl World {
    fn entity(&self) -> (EncryptedEntity, tessera_sharing::DecryptedEntity) {
        let Value::Object(document): Value = json!({"note": "x".repeat(1000), "lang": "en"}) else {
            unreachable!()
        };
        let document: Map<String, Value> = document;
        create(
            NewEntity {
                id: EntityId::generate().unwrap(),
                entity_type: self.note.clone(),
                document,
                manifest: &self.manifest,
                secret_ids: vec![],
                parents: vec![],
            },
            DelegationTarget {
                exchange: &self.own,
                visibility: Visibility::Explicit,
                permission: Permission::Write,
            },
            &[],
            &self.doctor,
        )
        .unwrap()
    }
}

async fn world(client: &mut Client) -> World {
    let rsa = fixture("rsa2048.pem");
    let doctor = OwnerKeys::derive(OwnerId::generate().unwrap(), rsa, 0).unwrap();
    client
        .register_owner_as_admin(ADMIN, &owner_record(&doctor))
        .await
        .unwrap();
    let trust = Tofu::new();
    let mut partners = Vec::new();
    let mut data = Vec::new();
    for _ in 0..6 {
        let partner =
            OwnerKeys::generate(OwnerId::generate().unwrap(), RsaKeySize::Bits2048, 0).unwrap();
        client
            .register_owner_as_admin(ADMIN, &owner_record(&partner))
            .await
            .unwrap();
        let bundle = trust.trust(partner.bundle().unwrap()).unwrap();
        let (exchange, secret) =
            ExchangeData::create(&doctor, partner.owner(), &[&bundle], 0).unwrap();
        data.push((
            partner.owner(),
            InboxMessage::seal(&exchange, &bundle).unwrap(),
        ));
        partners.push(secret);
    }
    client.login(&doctor).await.unwrap();
    let (_, own) = ExchangeData::create(&doctor, doctor.owner(), &[], 0).unwrap();
    for (partner, message) in &data {
        client.deliver(*partner, message).await.unwrap();
    }
    let note = EntityType::new("Note").unwrap();
    let index = AccessIndex::new(
        doctor.owner(),
        std::iter::once(own.clone()).chain(partners.iter().cloned()),
    );
    client
        .register_access_keys(&index.access_control_keys(&note))
        .await
        .unwrap();
    World {
        doctor,
        own,
        partners,
        manifest: EncryptionManifest::new(["note"]).unwrap(),
        note,
    }
}

fn main() {
    harness::main_with(run());
}

async fn run() {
    let (dir, server) = harness::start_server(ADMIN).await;
    let mut client = Client::new(format!("http://{}", server.local_addr()));
    let world = Arc::new(world(&mut client).await);
    let client = Arc::new(client);

    // Reads: 1 KiB entities by id, with the access check, against a bare responder sending the same bytes.
    let entities: Vec<EncryptedEntity> = (0..256).map(|_| world.entity().0).collect();
    client.create_entities(&entities).await.unwrap();
    let ids: Arc<Vec<EntityId>> = Arc::new(entities.iter().map(|e| e.id).collect());
    let sample = client.entity(ids[0]).await.unwrap();
    let body = Bytes::from(tessera_wire::Format::Bincode.encode(&sample).unwrap());
    let body_len = body.len();
    let bare = bare_responder(body).await;
    let hyper_client: HyperClient<_, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build_http();
    let bare_uri: hyper::Uri = format!("http://{bare}/").parse().unwrap();
    let bare_load = load("bare hyper responder (same bytes)", move |_, _| {
        let hyper_client = hyper_client.clone();
        let uri = bare_uri.clone();
        async move {
            let response = hyper_client.get(uri).await.unwrap();
            response.into_body().collect().await.unwrap();
        }
    })
    .await;
    let get_client = Arc::clone(&client);
    let get_ids = Arc::clone(&ids);
    let get_load = load("GET /v1/entities/{id}", move |task, i| {
        let client = Arc::clone(&get_client);
        let id = get_ids[(task * 31 + i) % get_ids.len()];
        async move {
            client.entity(id).await.unwrap();
        }
    })
    .await;

    // Creates: one durable commit per request, against the disk's own commit rate.
    let disk = disk_commits_per_second(dir.path());
    let create_client = Arc::clone(&client);
    let create_world = Arc::clone(&world);
    let create_load = load("POST /v1/entities (1 per request)", move |_, _| {
        let client = Arc::clone(&create_client);
        let entity = create_world.entity().0;
        async move {
            client.create_entity(&entity).await.unwrap();
        }
    })
    .await;
    let batch_client = Arc::clone(&client);
    let batch_world = Arc::clone(&world);
    let batch_load = load("POST /v1/entities (32 per request)", move |_, _| {
        let client = Arc::clone(&batch_client);
        let batch: Vec<EncryptedEntity> = (0..32).map(|_| batch_world.entity().0).collect();
        async move {
            client.create_entities(&batch).await.unwrap();
        }
    })
    .await;

    // Bulk share: 1,000 entities with a new partner per round, one request each.
    let opened: Vec<(EncryptedEntity, tessera_sharing::DecryptedEntity)> =
        (0..1000).map(|_| world.entity()).collect();
    for chunk in opened.chunks(500) {
        let batch: Vec<EncryptedEntity> = chunk.iter().map(|(e, _)| e.clone()).collect();
        client.create_entities(&batch).await.unwrap();
    }
    let mut share_times = Vec::new();
    for partner in &world.partners {
        let target = DelegationTarget {
            exchange: partner,
            visibility: Visibility::Explicit,
            permission: Permission::Read,
        };
        let started = Instant::now();
        let mut entries = Vec::with_capacity(opened.len());
        for (entity, decrypted) in &opened {
            entries.extend(share(entity, decrypted, &[target], &world.doctor).unwrap());
        }
        client.share(&ShareRequest::new(entries)).await.unwrap();
        share_times.push(started.elapsed());
        // The server now holds the new delegations; later rounds share with other partners.
    }
    share_times.sort();

    println!(
        "\n## Transport (loopback, {CONCURRENCY} concurrent clients, {} s per row, {body_len}-byte entity)\n",
        RUN.as_secs()
    );
    println!("| scenario | requests/s | p50 | p99 | ratio |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let row = |load: &Load, ratio: String| {
        println!(
            "| {} | {:.0} | {:.2} ms | {:.2} ms | {ratio} |",
            load.name,
            load.per_second(),
            load.percentile(0.5).as_secs_f64() * 1e3,
            load.percentile(0.99).as_secs_f64() * 1e3
        );
    };
    row(&bare_load, "reference".into());
    row(
        &get_load,
        format!(
            "{:.2} of bare",
            get_load.per_second() / bare_load.per_second()
        ),
    );
    println!("| disk durable commits (redb, one thread) | {disk:.0} | | | reference |");
    row(
        &create_load,
        format!("{:.2} of disk", create_load.per_second() / disk),
    );
    row(
        &batch_load,
        format!(
            "{:.2} of disk ({:.0} entities/s)",
            batch_load.per_second() * 32.0 / disk,
            batch_load.per_second() * 32.0
        ),
    );
    println!(
        "| bulk share of 1,000 entities (client sealing + one request) | {} rounds | {:.1} ms | {:.1} ms (max) | |",
        share_times.len(),
        share_times[share_times.len() / 2].as_secs_f64() * 1e3,
        share_times.last().unwrap().as_secs_f64() * 1e3
    );
    let _ = world.doctor.owner();
    server.shutdown().await;
}
