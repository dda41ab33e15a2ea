//! Versioned schema migrations, applied when a [`PostgresStore`](super::PostgresStore) opens.
//!
//! `schema_version` holds one row per applied migration. Migration `N` runs in one transaction that first inserts
//! row `N`: a second server starting at the same moment blocks on that row until the first commits, then finds it
//! and skips the migration, so a migration runs once however many nodes start together. Migrations are only ever
//! added, never edited: a database migrated by an older build is brought up to date by a newer one, and a database
//! with a version this build does not know is refused (it belongs to a newer build).

use deadpool_postgres::Client;

use super::sql::{execute, query, sql_error};
use crate::error::{Error, Result};

/// The migrations, in order: entry `i` is migration `i + 1`.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_initial.sql")];

/// The schema version this build writes: the number of its migrations.
pub(super) const VERSION: u64 = MIGRATIONS.len() as u64;

/// Brings the schema up to [`VERSION`], migration by migration; returns how many migrations ran.
pub(super) async fn migrate(client: &mut Client) -> Result<u64> {
    // Two nodes creating the table at once can collide in PostgreSQL's catalog; the loser finds it made.
    let create = "CREATE TABLE IF NOT EXISTS schema_version (version bigint PRIMARY KEY)";
    if client.batch_execute(create).await.is_err() {
        client.batch_execute(create).await.map_err(sql_error)?;
    }
    let newest = query(&*client, "SELECT max(version) FROM schema_version", &[]).await?;
    let newest = match newest.first().map(|row| row.try_get::<_, Option<i64>>(0)) {
        Some(Ok(Some(version))) => {
            u64::try_from(version).map_err(|_| Error::Corrupt("schema version"))?
        }
        Some(Ok(None)) | None => 0,
        Some(Err(error)) => return Err(sql_error(error)),
    };
    if newest > VERSION {
        return Err(Error::Corrupt(
            "schema version (the database was migrated by a newer Tessera)",
        ));
    }
    let mut ran = 0;
    for (version, sql) in (1_u64..).zip(MIGRATIONS) {
        if version <= newest {
            continue;
        }
        let version = i64::try_from(version).map_err(|_| Error::Corrupt("schema version"))?;
        let txn = client.transaction().await.map_err(sql_error)?;
        let claimed = execute(
            &txn,
            "INSERT INTO schema_version (version) VALUES ($1) ON CONFLICT (version) DO NOTHING",
            &[&version],
        )
        .await?;
        if claimed == 0 {
            // Another node applied it while this one waited.
            continue;
        }
        txn.batch_execute(sql).await.map_err(sql_error)?;
        txn.commit().await.map_err(sql_error)?;
        ran += 1;
    }
    Ok(ran)
}
