//! The server entry point a binary wraps: a listen address, a database (redb in a data directory, or PostgreSQL),
//! and the administrator token from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tessera_store::{PostgresStore, RedbStore, Store};

use crate::server::{Server, ServerConfig};

/// Environment variable holding the administrator token.
pub const ADMIN_TOKEN_ENV: &str = "TESSERA_ADMIN_TOKEN";
/// Environment variable holding the URLs clients reach the server at (comma-separated), as `--public-url`.
pub const PUBLIC_URL_ENV: &str = "TESSERA_PUBLIC_URL";
/// Environment variable holding the URL of a PostgreSQL database, as `--database`.
pub const DATABASE_ENV: &str = "TESSERA_DATABASE";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tessera-data";
/// File name of the redb database inside the data directory.
pub const DATABASE_FILE: &str = "tessera.redb";

/// How to run `tessera serve`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory holding the redb database (created if missing); unused with [`ServeOptions::database`].
    pub data_dir: PathBuf,
    /// URL of a PostgreSQL database (`postgres://user:password@host:port/database`) to use instead of redb in
    /// `data_dir`; its schema is migrated at start.
    pub database: Option<String>,
    /// URLs clients reach the server at; logins signed for other names are refused
    /// ([`ServerConfig::public_urls`]).
    pub public_urls: Vec<String>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The administrator token is missing from the environment.
    #[error("set the administrator token in the {ADMIN_TOKEN_ENV} environment variable")]
    MissingAdminToken,
    /// The administrator token is shorter than [`MIN_ADMIN_TOKEN_CHARS`].
    #[error(
        "{ADMIN_TOKEN_ENV} is {0} characters long; an administrator token needs at least \
         {MIN_ADMIN_TOKEN_CHARS} (for example the output of `openssl rand -hex 16`)"
    )]
    ShortAdminToken(usize),
    /// The data directory or the database could not be opened.
    #[error("cannot open the database in {path}: {reason}")]
    Database {
        /// The data directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The PostgreSQL database could not be opened (the reason never repeats the URL, which may hold a password).
    #[error("cannot open the PostgreSQL database: {0}")]
    Postgres(String),
    /// A public URL is not a server URL.
    #[error("{0}")]
    PublicUrl(String),
    /// The address could not be bound.
    #[error("cannot listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

/// The shortest administrator token the server accepts: anyone who guesses it can register owners.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// The administrator token from [`ADMIN_TOKEN_ENV`], checked: present, and at least [`MIN_ADMIN_TOKEN_CHARS`]
/// characters long. Both server binaries refuse to start without one.
///
/// # Errors
/// [`ServeError::MissingAdminToken`] or [`ServeError::ShortAdminToken`].
pub fn admin_token_from_env() -> Result<String, ServeError> {
    let token = std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or(ServeError::MissingAdminToken)?;
    let chars = token.chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        return Err(ServeError::ShortAdminToken(chars));
    }
    Ok(token)
}

/// Opens the store (PostgreSQL at `options.database`, or redb in `options.data_dir`) and starts a server with the
/// administrator token from the environment.
///
/// # Errors
/// [`ServeError`] naming what is missing.
pub async fn start(options: &ServeOptions) -> Result<Server, ServeError> {
    let token = admin_token_from_env()?;
    let store: Arc<dyn Store> = match &options.database {
        Some(url) => Arc::new(open_postgres(url.clone()).await?),
        None => Arc::new(open_redb(&options.data_dir)?),
    };
    let mut config = ServerConfig::new(options.listen, token);
    config.public_urls.clone_from(&options.public_urls);
    Server::start(config, store)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidInput => ServeError::PublicUrl(e.to_string()),
            _ => ServeError::Bind(options.listen, e),
        })
}

/// Opens the redb database in `data_dir`, creating the directory if needed.
fn open_redb(data_dir: &std::path::Path) -> Result<RedbStore, ServeError> {
    let database_error = |reason: String| ServeError::Database {
        path: data_dir.to_owned(),
        reason,
    };
    std::fs::create_dir_all(data_dir).map_err(|e| database_error(e.to_string()))?;
    RedbStore::open(data_dir.join(DATABASE_FILE)).map_err(|e| database_error(e.to_string()))
}

/// Connects to the PostgreSQL database at `url` and migrates its schema, on a blocking thread (connecting waits
/// on the network).
async fn open_postgres(url: String) -> Result<PostgresStore, ServeError> {
    let opened = tokio::task::spawn_blocking(move || PostgresStore::open(&url))
        .await
        .map_err(|e| ServeError::Postgres(e.to_string()))?;
    opened.map_err(|error| {
        // The store's message says what to check; its sources say what the driver saw (never the URL).
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        ServeError::Postgres(reason)
    })
}
