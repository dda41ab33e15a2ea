//! Setup shared by the custom (non-criterion) benchmark harnesses `transport.rs` and `sdk.rs`.

use std::future::Future;
use std::sync::Arc;

use tessera_keys::{FormatVersion, Owner, OwnerKeys, OwnerKind};
use tessera_primitives::RsaPrivateKey;
use tessera_server::{Server, ServerConfig};
use tessera_store::RedbStore;

/// A fixture RSA key of tessera-primitives' tests.
pub(crate) fn fixture(name: &str) -> RsaPrivateKey {
    tessera_keys::test_utils::fixture_rsa(name).unwrap()
}

/// The public record of an HCP with one key bundle.
pub(crate) fn owner_record(keys: &OwnerKeys) -> Owner {
    Owner {
        version: FormatVersion::V2,
        id: keys.owner(),
        kind: OwnerKind::Hcp,
        parent: None,
        bundles: vec![keys.bundle().unwrap()],
    }
}

/// A server on 127.0.0.1:0 over redb in a temporary directory (kept alive by the returned guard).
pub(crate) async fn start_server(admin: &str) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("tessera.redb")).unwrap();
    let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), admin);
    let server = Server::start(config, Arc::new(store)).await.unwrap();
    (dir, server)
}

/// Runs `bench` on a two-thread runtime, unless cargo only asks for the list of benchmarks (`--list`).
pub(crate) fn main_with(bench: impl Future<Output = ()>) {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench);
}
