//! PostgreSQL for the tests (features `test-utils` and `postgres`): a fresh database per test, on the server
//! `TESSERA_TEST_POSTGRES` names or on a throwaway cluster started for the test run.
//!
//! Without `TESSERA_TEST_POSTGRES`, the first test that needs PostgreSQL starts a cluster with the binaries of the
//! machine (`pg_config --bindir`, then the newest `/usr/lib/postgresql/*/bin`, then `PATH`): `initdb` into a
//! temporary directory, then `pg_ctl start` listening on 127.0.0.1 on a free port with its socket in that
//! directory, `fsync` off (the data is thrown away). When the tests run as root, the cluster runs as the
//! `postgres` user (`runuser`), because PostgreSQL refuses to run as root. The cluster is shared by every test
//! process of one test runner (`cargo test` or `cargo nextest run`, which starts one process per test): it is
//! keyed by the runner's process id and guarded by a file lock. A watcher process stops it (`-m immediate`) and
//! removes its directory as soon as the runner exits, so no PostgreSQL outlives the test run.
//!
//! A machine without PostgreSQL binaries fails the tests with a message saying how to install them: a test never
//! skips silently.

use std::fs::{self, File};
use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::PostgresStore;

/// Environment variable with the URL of a PostgreSQL server the tests use instead of starting their own; its user
/// needs the right to create databases (`CREATEDB`).
pub const TEST_POSTGRES_ENV: &str = "TESSERA_TEST_POSTGRES";

/// A [`PostgresStore`] on a new, empty database that is dropped with it.
#[derive(Debug)]
pub struct TempPostgresStore {
    // Declared first: the store closes its connections before the database is dropped.
    store: PostgresStore,
    database: TestDatabase,
}

impl TempPostgresStore {
    /// A store on a new database of the test server.
    pub fn new() -> Self {
        let database = TestDatabase::new();
        let store = PostgresStore::open(database.url()).expect("open the PostgreSQL store");
        Self { store, database }
    }

    /// The URL of its database.
    pub fn url(&self) -> &str {
        self.database.url()
    }
}

impl Default for TempPostgresStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TempPostgresStore {
    type Target = PostgresStore;

    fn deref(&self) -> &PostgresStore {
        &self.store
    }
}

/// A new, empty database on the test server (created by `CREATE DATABASE`), dropped when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server: String,
}

impl TestDatabase {
    /// Creates a database with a name unique to this process and call.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let server = server_url();
        let name = format!(
            "tessera_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_sql(&server, format!("CREATE DATABASE {name}")).expect("create a test database");
        let url = with_database(&server, &name);
        Self { name, url, server }
    }

    /// Its URL, for [`PostgresStore::open`] or `tessera serve --database`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Best effort: a throwaway cluster goes away anyway, a server given by the environment keeps no litter.
        let _ = run_sql(
            &self.server,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// The URL of the test server: `TESSERA_TEST_POSTGRES`, or the throwaway cluster of this test run.
///
/// # Panics
/// If neither is available, with a message that says how to install PostgreSQL.
pub fn server_url() -> String {
    static URL: OnceLock<Result<String, String>> = OnceLock::new();
    let url = URL.get_or_init(|| match std::env::var(TEST_POSTGRES_ENV) {
        Ok(url) if !url.is_empty() => Ok(url),
        _ => shared_cluster(),
    });
    match url {
        Ok(url) => url.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// Runs `statement` (one or more SQL statements) on the database at `url`, on a thread of its own, so that callers
/// may be inside an async runtime or not.
///
/// # Errors
/// The connection's or the statement's error, as text.
pub fn run_sql(url: &str, statement: String) -> Result<(), String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| format!("cannot connect to the test PostgreSQL server: {e}"))?;
            let driver = tokio::spawn(connection);
            let done = client
                .batch_execute(&statement)
                .await
                .map_err(|e| format!("{statement}: {e}"));
            drop(client);
            let _ = driver.await;
            done
        })
    })
    .join()
    .map_err(|_| "the PostgreSQL admin thread panicked".to_owned())?
}

/// `url` with its database replaced by `name` (query parameters kept).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base
        .get(authority_start..)
        .and_then(|rest| rest.find('/'))
        .map_or(base.len(), |i| authority_start + i);
    let prefix = base.get(..host_end).unwrap_or(base);
    match query {
        Some(query) => format!("{prefix}/{name}?{query}"),
        None => format!("{prefix}/{name}"),
    }
}

/// The throwaway cluster of this test run: started by the first test process, found by the others.
fn shared_cluster() -> Result<String, String> {
    let runner = std::os::unix::process::parent_id();
    let dir = std::env::temp_dir().join(format!("tessera-test-postgres-{runner}"));
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = File::create(dir.join("lock")).map_err(|e| e.to_string())?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
    let url_file = dir.join("url");
    if let Some(url) = running_cluster(&url_file) {
        return Ok(url);
    }
    let url = start_cluster(&dir, runner)?;
    fs::write(&url_file, &url).map_err(|e| e.to_string())?;
    Ok(url)
}

/// The URL of the cluster recorded in `url_file`, if it still answers.
fn running_cluster(url_file: &Path) -> Option<String> {
    let url = fs::read_to_string(url_file).ok()?;
    let port = url
        .rsplit_once(':')?
        .1
        .split('/')
        .next()?
        .parse::<u16>()
        .ok()?;
    TcpStream::connect(("127.0.0.1", port)).ok()?;
    Some(url)
}

/// Creates and starts a cluster in `dir/data`, watched so that it stops when process `runner` exits.
fn start_cluster(dir: &Path, runner: u32) -> Result<String, String> {
    let bin = postgres_bindir()?;
    let root = fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let data = dir.join("data");
    let socket = dir.join("socket");
    let _ = fs::remove_dir_all(&data);
    fs::create_dir_all(&socket).map_err(|e| e.to_string())?;
    if root {
        // PostgreSQL refuses to run as root: the cluster runs as the `postgres` user, which owns its files.
        let chown = Command::new("chown")
            .args(["-R", "postgres:"])
            .arg(dir)
            .output()
            .map_err(|e| format!("chown: {e}"))?;
        if !chown.status.success() {
            return Err(format!(
                "the tests run as root and PostgreSQL refuses root, but there is no `postgres` user to run it as \
                 (install the Debian package `postgresql`, which creates it): {}",
                String::from_utf8_lossy(&chown.stderr)
            ));
        }
    }
    let command = |program: &str| {
        let path = bin.join(program);
        if root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    };
    let initdb = command("initdb")
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
         -c full_page_writes=off -c max_connections=400",
        socket.display()
    );
    let log = dir.join("postgres.log");
    // Its own process group: a test runner that signals its group leaves the cluster to the watcher.
    let started = command("pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(&log)
        .args(["-w", "-t", "60", "-o", &options, "start"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .status()
        .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
    if !started.success() {
        let mut text = String::new();
        let _ = File::open(&log).and_then(|mut f| f.read_to_string(&mut text));
        return Err(format!("pg_ctl start failed; its log says:\n{text}"));
    }
    watch(dir, &bin, root, runner)?;
    Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
}

/// Starts a detached watcher that stops the cluster in `dir` and removes `dir` once process `runner` is gone.
fn watch(dir: &Path, bin: &Path, root: bool, runner: u32) -> Result<(), String> {
    let as_postgres = if root { "runuser -u postgres -- " } else { "" };
    let script = format!(
        "while kill -0 \"$1\" 2>/dev/null; do sleep 0.5; done; \
         {as_postgres}\"$2/pg_ctl\" -D \"$3/data\" -m immediate -w stop; rm -rf \"$3\""
    );
    Command::new("sh")
        .args(["-c", &script, "tessera-test-postgres-watch"])
        .arg(runner.to_string())
        .arg(bin)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot start the cluster's watcher: {e}"))
}

/// The directory of the PostgreSQL server binaries: `pg_config --bindir`, the newest `/usr/lib/postgresql/*/bin`,
/// or the directory of `initdb` on `PATH`.
fn postgres_bindir() -> Result<PathBuf, String> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_initdb(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| has_initdb(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|dir| has_initdb(dir)) {
        return Ok(dir);
    }
    Err(format!(
        "the PostgreSQL tests need a PostgreSQL server and found no binaries (`pg_config --bindir`, \
         /usr/lib/postgresql/*/bin, PATH): install them with `apt-get install postgresql` (or \
         `cargo xtask ci`, which does), or set {TEST_POSTGRES_ENV} to the URL of a server whose user may \
         create databases"
    ))
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn urls_get_another_database() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "t1"),
            "postgres://u@h:5/t1"
        );
        assert_eq!(
            with_database("postgres://u@h:5", "t1"),
            "postgres://u@h:5/t1"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "t2"),
            "postgresql://u:p@h/t2?sslmode=disable"
        );
    }
}
