//! The conformance suite against PostgreSQL, each case on a fresh database, and what only PostgreSQL has:
//! migrations and a database that cannot be reached. The server is `TESSERA_TEST_POSTGRES` or a throwaway
//! cluster the harness starts (`tessera_store::conformance::server_url`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use serde_json::json;
use tessera_store::conformance::{TestDatabase, fixtures, run_sql};
use tessera_store::{Error, PostgresStore, Store};

mod conformance {
    tessera_store::conformance_tests!(tessera_store::conformance::TempPostgresStore::new());
}

/// Opening a migrated database again runs no migration twice and keeps every record.
#[test]
fn reopening_keeps_the_data_and_the_schema() {
    let database = TestDatabase::new();
    let entity = fixtures().entity(json!({"title": "kept"}));
    {
        let store = PostgresStore::open(database.url()).unwrap();
        store.create_entity(&entity).unwrap();
    }
    // Two stores opening at once (two server nodes starting together) both find the schema ready.
    let (first, second) = std::thread::scope(|scope| {
        let a = scope.spawn(|| PostgresStore::open(database.url()));
        let b = scope.spawn(|| PostgresStore::open(database.url()));
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert_eq!(first.get_entity(entity.id).unwrap().unwrap().rev, 1);
    assert_eq!(
        second.get_entity(entity.id).unwrap().unwrap(),
        first.get_entity(entity.id).unwrap().unwrap()
    );
}

/// Two stores over one database see each other's writes and conflicts: the state is in the database, not in a
/// process.
#[test]
fn two_stores_share_one_database() {
    let database = TestDatabase::new();
    let a = PostgresStore::open(database.url()).unwrap();
    let b = PostgresStore::open(database.url()).unwrap();
    let mut entity = fixtures().entity(json!({"title": "shared"}));
    a.create_entity(&entity).unwrap();
    entity
        .public
        .insert("title".to_owned(), json!("edited on b"));
    assert_eq!(b.update_entity(&entity, 1).unwrap(), 2);
    assert!(matches!(
        a.update_entity(&entity, 1),
        Err(Error::Conflict {
            expected: Some(1),
            actual: Some(2),
            ..
        })
    ));
    assert_eq!(
        a.get_entity(entity.id).unwrap().unwrap().public["title"],
        json!("edited on b")
    );
}

/// A server nobody listens on is a backend error that says the database is unreachable, promptly.
#[test]
fn an_unreachable_database_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error =
        PostgresStore::open(&format!("postgres://tessera@127.0.0.1:{port}/tessera")).unwrap_err();
    let Error::Backend { what, .. } = &error else {
        panic!("expected a backend error, got {error:?}");
    };
    assert!(what.contains("unreachable"), "{what}");
    assert!(what.contains("host and port"), "{what}");
}

/// A server that answers but refuses the connection (here: no such database) says what to check, without the URL.
#[test]
fn a_refused_connection_names_what_to_check() {
    let database = TestDatabase::new();
    let (server, _) = database.url().rsplit_once('/').unwrap();
    let error = PostgresStore::open(&format!("{server}/tessera_no_such_database")).unwrap_err();
    let Error::Backend { what, source } = &error else {
        panic!("expected a backend error, got {error:?}");
    };
    assert!(what.contains("refused the connection"), "{what}");
    assert!(what.contains("database name"), "{what}");
    // The source is PostgreSQL's SQLSTATE and message (3D000: invalid catalog name).
    assert!(source.to_string().contains("3D000"), "{source}");
}

/// A URL that is not one is refused before any connection, and the message shows the expected form.
#[test]
fn a_malformed_url_is_refused() {
    let error = PostgresStore::open("postgres://[::1").unwrap_err();
    assert!(
        error
            .to_string()
            .contains("postgres://user:password@host:port/database"),
        "{error}"
    );
}

/// A database migrated by a newer build (a schema version this build does not know) is refused, not written.
#[test]
fn a_newer_schema_is_refused() {
    let database = TestDatabase::new();
    drop(PostgresStore::open(database.url()).unwrap());
    bump_schema_version(database.url());
    assert!(matches!(
        PostgresStore::open(database.url()),
        Err(Error::Corrupt(_))
    ));
}

fn bump_schema_version(url: &str) {
    run_sql(
        url,
        "INSERT INTO schema_version (version) VALUES (1000)".to_owned(),
    )
    .unwrap();
}

/// Writers on two stores (two server nodes) creating the same entity at once: one wins, every other one sees a
/// conflict naming the winner's revision, and the indexes hold the entity once.
#[test]
fn concurrent_creates_across_stores_have_one_winner() {
    let database = TestDatabase::new();
    let stores = [
        PostgresStore::open(database.url()).unwrap(),
        PostgresStore::open(database.url()).unwrap(),
    ];
    let entity = fixtures().entity(json!({"title": "contended create"}));
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (store, entity) = (&stores[i % 2], &entity);
                scope.spawn(move || store.create_entity(entity))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = results.iter().filter(|r| matches!(r, Ok(1))).count();
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(Error::Conflict {
                    expected: None,
                    actual: Some(1),
                    ..
                })
            )
        })
        .count();
    assert_eq!((winners, conflicts), (1, 7), "{results:?}");
    assert_eq!(
        stores[1]
            .entities_by_delegation_key(&fixtures().root_key())
            .unwrap(),
        vec![entity.id]
    );
}
