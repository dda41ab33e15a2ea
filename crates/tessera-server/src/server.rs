//! The HTTP server: connection handling (HTTP/1.1 and HTTP/2), sessions, limits, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tessera_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Sessions;
use crate::challenge::Challenges;
use crate::commit::Committer;
use crate::http::UnauthenticatedBudget;
use crate::metrics::Metrics;
use crate::names::ServerNames;
use crate::routes::{self, Uploads};

/// Limits the server enforces; each answers a clear 4xx and changes nothing.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Largest request body, attachments excepted (413 above).
    pub max_body_bytes: usize,
    /// Largest attachment stream (413 above).
    pub max_attachment_bytes: usize,
    /// Most access-control keys in one request or registration (431 above).
    pub max_access_keys: usize,
    /// Most entities in one bulk request (400 above).
    pub max_bulk_entities: usize,
    /// Longest a request may take (408 after).
    pub request_timeout: Duration,
    /// Lifetime of a session token.
    pub session_lifetime: Duration,
    /// Largest body of a request whose sender has not proved who it is (a challenge or a login; 413 above).
    pub max_unauthenticated_body_bytes: usize,
    /// Most bytes held at once, in total, for the bodies of such requests beyond the first 2 KiB of each (503
    /// `busy` above, before the body is read). Small bodies are bounded by the number of connections instead.
    pub max_unauthenticated_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_attachment_bytes: 1 << 30,
            max_access_keys: 4096,
            max_bulk_entities: 1000,
            request_timeout: Duration::from_secs(30),
            session_lifetime: Duration::from_secs(15 * 60),
            max_unauthenticated_body_bytes: 16 << 10,
            max_unauthenticated_bytes: 4 << 20,
        }
    }
}

/// How to run a server.
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The administrator token that may register top-level owners. Secret: never logged.
    pub admin_token: String,
    /// Limits.
    pub limits: Limits,
    /// URLs clients reach this server at (`https://records.example`): a login is accepted only if the client
    /// signed one of these names, or, when listening on a specific address, `http://<ip>:<port>` (and
    /// `http://localhost:<port>` for loopback). Without any (listening on 0.0.0.0 or ::), the request's `Host`
    /// is trusted, which lets a relay forward logins; a warning says so at start.
    pub public_urls: Vec<String>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("admin_token", &"[redacted]")
            .field("limits", &self.limits)
            .field("public_urls", &self.public_urls)
            .finish()
    }
}

impl ServerConfig {
    /// A configuration with default limits.
    pub fn new(listen: SocketAddr, admin_token: impl Into<String>) -> Self {
        Self {
            listen,
            admin_token: admin_token.into(),
            limits: Limits::default(),
            public_urls: Vec::new(),
        }
    }

    /// Adds a URL clients reach this server at (see [`ServerConfig::public_urls`]).
    #[must_use]
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_urls.push(url.into());
        self
    }
}

/// Everything a request handler needs.
pub(crate) struct State {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) committer: Committer,
    pub(crate) sessions: Sessions,
    /// Issues and checks login challenges (stateless but for the used ones).
    pub(crate) challenges: Challenges,
    pub(crate) metrics: Metrics,
    pub(crate) limits: Limits,
    /// Attachments with an upload in progress.
    pub(crate) uploads: Uploads,
    /// The names logins must be addressed to.
    pub(crate) names: ServerNames,
    /// The memory held for the bodies of requests without a session.
    pub(crate) unauthenticated: UnauthenticatedBudget,
    admin_token_hash: [u8; 32],
}

impl State {
    /// Whether `token` is the administrator token (compared through hashes, in constant time).
    pub(crate) fn is_admin(&self, token: &str) -> bool {
        tessera_primitives::constant_time_eq(
            &tessera_primitives::sha256(token.as_bytes()),
            &self.admin_token_hash,
        )
    }
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `config.listen` and starts serving `store` on the current tokio runtime.
    ///
    /// # Errors
    /// If the address cannot be bound, a public URL is not a server URL ([`std::io::ErrorKind::InvalidInput`]), or
    /// the operating system's random generator fails.
    pub async fn start(config: ServerConfig, store: Arc<dyn Store>) -> std::io::Result<Self> {
        // Checked before binding, so that a bad URL is reported as such.
        ServerNames::new(&config.public_urls, config.listen)
            .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let names = ServerNames::new(&config.public_urls, local_addr)
            .map_err(|reason| std::io::Error::new(std::io::ErrorKind::InvalidInput, reason))?;
        if names.falls_back_to_host() {
            tracing::warn!(
                %local_addr,
                "listening on an unspecified address with no public URL: logins are checked against the \
                 request's Host header, so a relay can forward a client's login here; give the URL clients \
                 use with --public-url (or TESSERA_PUBLIC_URL)"
            );
        }
        let state = Arc::new(State {
            committer: Committer::start(Arc::clone(&store))?,
            store,
            sessions: Sessions::default(),
            challenges: Challenges::generate()?,
            metrics: Metrics::default(),
            admin_token_hash: tessera_primitives::sha256(config.admin_token.as_bytes()),
            unauthenticated: UnauthenticatedBudget::new(config.limits.max_unauthenticated_bytes),
            limits: config.limits,
            uploads: Uploads::default(),
            names,
        });
        let (shutdown, signal) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, state, signal));
        tracing::info!(%local_addr, "tessera server listening");
        Ok(Self {
            local_addr,
            shutdown,
            task,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in flight finish (up to 10 s), and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut signal: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = service_fn(move |request| routes::handle(Arc::clone(&state), request));
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(%peer, %error, "connection ended with an error");
                    }
                });
            }
            _ = signal.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10 s of graceful shutdown");
    }
}
