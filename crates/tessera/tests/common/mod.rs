//! A server on 127.0.0.1:0 with an in-memory store, and owners registered on it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a part of the fixture"
)]

use std::sync::Arc;
use std::time::Duration;

use tessera::{Client, OwnerKeys, OwnerKind, RsaKeySize, Session, Tofu};
use tessera_server::{Server, ServerConfig};
use tessera_store::MemoryStore;

pub const ADMIN: &str = "test-admin-token";

pub struct Fixture {
    pub server: Server,
    pub store: Arc<MemoryStore>,
    pub url: String,
}

impl Fixture {
    pub async fn start() -> Self {
        Self::with_session_lifetime(Duration::from_secs(900)).await
    }

    pub async fn with_session_lifetime(lifetime: Duration) -> Self {
        Self::configured(|config| config.limits.session_lifetime = lifetime).await
    }

    /// A server whose configuration `change` adjusted first.
    pub async fn configured(change: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), ADMIN);
        change(&mut config);
        let store = Arc::new(MemoryStore::new());
        let server = Server::start(config, store.clone()).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        Self { server, store, url }
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    pub async fn owner(&self, kind: OwnerKind) -> OwnerKeys {
        tessera::register_owner(&self.client(), ADMIN, kind, RsaKeySize::Bits2048)
            .await
            .unwrap()
    }

    pub async fn login(&self, keys: &OwnerKeys) -> Session {
        Session::login(self.client(), copy(keys), Tofu::new())
            .await
            .unwrap()
    }

    /// A registered owner and its session.
    pub async fn session(&self, kind: OwnerKind) -> (OwnerKeys, Session) {
        let keys = self.owner(kind).await;
        let session = self.login(&keys).await;
        (keys, session)
    }
}

/// The same keys again, through the key file (as a second device would load them).
pub fn copy(keys: &OwnerKeys) -> OwnerKeys {
    let text = tessera::encode_key_file(keys).unwrap();
    tessera::decode_key_file(text.expose_secret()).unwrap()
}
