//! Helpers shared by the PostgreSQL operations: prepared statements, column conversions and the mapping of
//! driver errors onto [`Error`].

use deadpool_postgres::{GenericClient, PoolError};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::error::{Error, Result};

/// Parameters of a statement.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs `sql` (prepared once per connection) and returns the number of rows it changed.
pub(super) async fn execute<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64> {
    let statement = client.prepare_cached(sql).await.map_err(sql_error)?;
    client.execute(&statement, params).await.map_err(sql_error)
}

/// Runs query `sql` (prepared once per connection) and returns its rows.
pub(super) async fn query<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(sql_error)?;
    client.query(&statement, params).await.map_err(sql_error)
}

/// Runs query `sql`, which returns at most one row.
pub(super) async fn query_opt<C: GenericClient>(
    client: &C,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(sql_error)?;
    client
        .query_opt(&statement, params)
        .await
        .map_err(sql_error)
}

/// The `bytea` column `index` of `row`.
pub(super) fn bytes(row: &Row, index: usize) -> Result<&[u8]> {
    row.try_get(index).map_err(sql_error)
}

/// The `bigint` column `index` of `row`, which holds an unsigned number (a revision, a length, a chunk index).
pub(super) fn unsigned(row: &Row, index: usize, what: &'static str) -> Result<u64> {
    let value: i64 = row.try_get(index).map_err(sql_error)?;
    u64::try_from(value).map_err(|_| Error::Corrupt(what))
}

/// A fixed-size id read from a `bytea` column.
pub(super) fn id<const N: usize>(row: &Row, index: usize, what: &'static str) -> Result<[u8; N]> {
    bytes(row, index)?
        .try_into()
        .map_err(|_| Error::Corrupt(what))
}

/// An unsigned number as a `bigint` parameter. Revisions and lengths stay far below `i64::MAX`; a chunk index past
/// it belongs to no stream a `u64` length can describe, so it is refused as `invalid` input.
pub(super) fn signed(value: u64, what: &'static str) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Invalid(what))
}

/// A revision as a `bigint` parameter: revisions grow by one per write, so only a damaged store passes `i64::MAX`.
pub(super) fn rev(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::Corrupt("revision"))
}

/// Maps a driver error onto [`Error::Backend`] with a message that says what to do.
///
/// The source keeps PostgreSQL's SQLSTATE and message but never its `DETAIL`, which can quote key values (ids of
/// owners and entities) that must not reach log lines.
pub(super) fn sql_error(error: tokio_postgres::Error) -> Error {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let what = if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            "a concurrent PostgreSQL transaction got in the way; retry the request"
        } else if *code == SqlState::UNDEFINED_TABLE {
            "a PostgreSQL table is missing: the schema was changed outside Tessera's migrations"
        } else {
            "a PostgreSQL statement failed"
        };
        return Error::Backend {
            what,
            source: Box::new(DatabaseError {
                code: code.code().to_owned(),
                message: db.message().to_owned(),
            }),
        };
    }
    if error.is_closed() {
        return unreachable(error);
    }
    Error::Backend {
        what: "the PostgreSQL connection failed",
        source: Box::new(error),
    }
}

/// Maps a failure to get a connection from the pool.
pub(super) fn pool_error(error: PoolError) -> Error {
    match error {
        PoolError::Backend(error) if error.as_db_error().is_some() => Error::Backend {
            what: "the PostgreSQL server refused the connection: check the user, the password and the database \
                   name in the URL, and that the user may connect (pg_hba.conf)",
            source: Box::new(DatabaseError::from_db(&error)),
        },
        PoolError::Backend(error) => unreachable(error),
        PoolError::Timeout(_) => Error::Backend {
            what: "no PostgreSQL connection became free or could be opened in time: the database is \
                   unreachable or overloaded; check the URL's host and port and that the server runs",
            source: Box::new(error),
        },
        other => Error::Backend {
            what: "the PostgreSQL connection pool failed",
            source: Box::new(other),
        },
    }
}

/// The error of a database that cannot be reached.
pub(super) fn unreachable(error: tokio_postgres::Error) -> Error {
    Error::Backend {
        what: "the PostgreSQL database is unreachable: check the URL's host and port, that the server runs and \
               listens there (listen_addresses), and that no firewall is in the way",
        source: Box::new(error),
    }
}

/// An error PostgreSQL reported: its SQLSTATE and message, without the detail that may quote values.
#[derive(Debug)]
pub(super) struct DatabaseError {
    code: String,
    message: String,
}

impl DatabaseError {
    fn from_db(error: &tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => Self {
                code: db.code().code().to_owned(),
                message: db.message().to_owned(),
            },
            None => Self {
                code: String::new(),
                message: "no database error".to_owned(),
            },
        }
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PostgreSQL error {}: {}", self.code, self.message)
    }
}

impl std::error::Error for DatabaseError {}
