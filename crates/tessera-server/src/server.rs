//! The HTTP server: connection handling (HTTP/1.1 and HTTP/2), sessions, limits, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tessera_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::Sessions;
use crate::challenge::Challenges;
use crate::commit::Committer;
use crate::connection;
use crate::http::UnauthenticatedBudget;
use crate::metrics::Metrics;
use crate::names::ServerNames;
use crate::routes::Uploads;

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
    /// Longest a request may take (408 after), attachment uploads excepted (see `progress_timeout`).
    pub request_timeout: Duration,
    /// Longest an attachment upload may go without a byte of its body arriving (408 after): an upload is bounded
    /// by its progress, not by its total time.
    pub progress_timeout: Duration,
    /// Lifetime of a session token.
    pub session_lifetime: Duration,
    /// Largest body of a request whose sender has not proved who it is (a challenge or a login; 413 above).
    pub max_unauthenticated_body_bytes: usize,
    /// Most bytes held at once, in total, for the bodies of such requests beyond the first 2 KiB of each (503
    /// `busy` above, before the body is read). Small bodies are bounded by the connection limit instead.
    pub max_unauthenticated_bytes: usize,
    /// Longest a client may take to send a request's headers (HTTP/1.1; the connection is closed after). On a
    /// kept-alive connection the time runs from the previous answer.
    pub header_read_timeout: Duration,
    /// Longest a connection may stay open without a request in progress (closed after, gracefully).
    pub idle_timeout: Duration,
    /// Most connections served at once; keep it below the process's file-descriptor limit. Beyond it, a few more
    /// (a sixteenth, at least 8) are accepted to answer the health check, and everything else on them with 503
    /// `busy`; connections beyond those are closed at once.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_attachment_bytes: 1 << 30,
            max_access_keys: 4096,
            max_bulk_entities: 1000,
            request_timeout: Duration::from_secs(30),
            progress_timeout: Duration::from_secs(30),
            session_lifetime: Duration::from_secs(15 * 60),
            max_unauthenticated_body_bytes: 16 << 10,
            max_unauthenticated_bytes: 4 << 20,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
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
        let task = tokio::spawn(connection::accept_loop(listener, state, signal));
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
