//! The PostgreSQL backend (feature `postgres`): the store of deployments that run several server nodes over one
//! shared database, or keep their data in an engine they already operate.
//!
//! # Driver and pool
//! The [`Store`] trait is synchronous: the server calls it from tokio's blocking pool, and answers point reads by
//! id on the request's own async worker thread. The store therefore owns a small tokio runtime of its own (two
//! worker threads, `tessera-postgres`) that drives an asynchronous driver, `tokio-postgres`, through a maintained
//! pool, `deadpool-postgres`. Each call hands its future to that runtime and waits for the answer on a plain
//! channel, which is safe from any thread: a blocking-pool thread, an async worker thread, or a thread outside
//! any runtime (tests, the CLI). The synchronous `postgres` crate was the other candidate; it runs a private
//! runtime per connection with `block_on`, which panics when called on an async worker thread, exactly where the
//! server's point reads run. One shared runtime also pipelines the connections' I/O instead of parking one
//! thread per connection. Statements are prepared once per pooled connection (`prepare_cached`), and the independent
//! statements of one write (the creates of a batch, the index entries of an entity) are sent pipelined on its
//! connection, so a batch of 1,000 creates costs about as much as on redb rather than one round trip per row.
//!
//! # Durability and transactions
//! Every write is one PostgreSQL transaction at the default isolation (`READ COMMITTED`), committed before the
//! method returns; with PostgreSQL's default `synchronous_commit = on` an acknowledged write is on disk. Revision
//! checks read the stored row with `SELECT … FOR UPDATE` inside the writing transaction, so a concurrent writer of
//! the same record waits, then sees the new revision and conflicts. Creates use `INSERT … ON CONFLICT DO NOTHING`
//! and report a taken id as a conflict. [`Store::create_entities`] and [`Store::update_entities`] run a whole
//! batch in one transaction. Reads that take several statements (an attachment's length and its chunks) run in
//! one `REPEATABLE READ` read-only transaction, so they see one snapshot.
//!
//! # Schema
//! Versioned migrations (`migrations/NNNN_*.sql`, module `schema`) run when the store opens, each in one
//! transaction, recorded in `schema_version`. The tables mirror redb's (values are the same bincode bytes, ids
//! their raw bytes, unsigned numbers non-negative `bigint`s):
//!
//! | table | primary key | other columns |
//! | --- | --- | --- |
//! | `schema_version` | `version` | |
//! | `owners` | `id` | `rev`, `value` (`Owner`) |
//! | `inbox` | `recipient_id`, `message_id` | `value` (`InboxMessage`: sealed exchange data, no sender) |
//! | `key_bag` | `owner_id`, `entry_id` | `value` (`KeyBagEntry`) |
//! | `entities` | `id` | `rev`, `value` (`EncryptedEntity` with its `rev` field set) |
//! | `entities_by_delegation_key` | `delegation_key`, `entity_id` | |
//! | `entities_by_search_tag` | `search_tag`, `entity_id` | |
//! | `attachments` | `entity_id`, `attachment_id` | `len` |
//! | `attachment_chunks` | `entity_id`, `attachment_id`, `chunk` | `bytes` |
//! | `attachment_staging` | `entity_id`, `attachment_id`, `chunk` | `bytes` |
//! | `recovery_data` | `id` | `value` (`RecoveryData`) |
//! | `side_map` | `owner_id`, `delegation_key` | `value` (`SideMapEntry`) |
//!
//! Attachments are stored one chunk per row, cut as [`crate::attachment_chunk_len`] says (the stream header, then
//! one encrypted segment per row), and a ranged read selects only the rows it overlaps. Staging and finishing an
//! upload behave as in redb. The SQL is deliberately plain (tables, primary keys, `bytea`, `bigint`,
//! transactions, `FOR UPDATE`/`FOR SHARE`, `ON CONFLICT`), so that PostgreSQL-compatible distributed engines can
//! run it; docs/deployment.md names the distribution key of each table.
//!
//! # Limits
//! Connections are plain TCP or Unix sockets: TLS to the database is not offered yet, so run the database on
//! loopback or a private network. A chunk index or a length above `i64::MAX` (no real stream reaches either) is
//! refused as [`Error::Invalid`].

mod attachment;
mod entity;
mod record;
mod schema;
mod sql;

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::future::try_join_all;
use tessera_keys::{
    DelegationKey, InboxMessage, InboxMessageId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_sharing::{AttachmentId, EncryptedEntity, EntityId, SearchTag, SideMapEntry};
use tokio_postgres::NoTls;
use tokio_postgres::config::Config;

use self::sql::{pool_error, sql_error};
use crate::error::{Error, Result};
use crate::store::{RecoveryData, Revision, Store, Versioned, check_chunks, cut_chunks};

/// Connections the pool opens at most.
const POOL_SIZE: usize = 16;
/// How long opening one connection may take (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call waits for a free connection before it fails.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A [`Store`] in a PostgreSQL database (feature `postgres`), shared by any number of server nodes.
///
/// Every write is one transaction committed before the method returns; batches are one transaction; revision
/// checks lock the row they read. The schema is migrated when the store opens. Values are the same bincode bytes
/// as in [`crate::RedbStore`]; an attachment is stored one encrypted segment per row.
pub struct PostgresStore {
    pool: Pool,
    /// The runtime that drives the connections; `None` only while the store is dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or the key-value form
    /// `host=… user=… dbname=…`), and brings its schema up to date.
    ///
    /// # Errors
    /// [`Error::Backend`] if the URL does not parse or the database cannot be reached (the message says what to
    /// check), [`Error::Corrupt`] if the schema was migrated by a newer build.
    pub fn open(url: &str) -> Result<Self> {
        let config: Config = url.parse().map_err(|source| Error::Backend {
            what: "the PostgreSQL URL does not parse (expected postgres://user:password@host:port/database)",
            source: Box::new(source),
        })?;
        Self::with_config(config)
    }

    fn with_config(mut config: Config) -> Result<Self> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-postgres")
            .enable_all()
            .build()
            .map_err(|source| Error::Backend {
                what: "cannot start the PostgreSQL driver's threads",
                source: Box::new(source),
            })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|source| Error::Backend {
                what: "cannot build the PostgreSQL connection pool",
                source: Box::new(source),
            })?;
        let store = Self {
            pool,
            runtime: Some(runtime),
        };
        let ran = store.run(|pool| async move {
            let mut client = connection(&pool).await?;
            schema::migrate(&mut client).await
        })?;
        if ran > 0 {
            tracing::info!(
                migrations = ran,
                version = schema::VERSION,
                "PostgreSQL schema migrated"
            );
        }
        Ok(store)
    }

    /// Runs the future `op` builds on the store's runtime and waits for its result, from any thread.
    fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Pool) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let Some(runtime) = self.runtime.as_ref() else {
            return Err(stopped());
        };
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let future = op(self.pool.clone());
        runtime.spawn(async move {
            // The caller may be gone (its thread panicked); then nobody needs the answer.
            let _ = sender.send(future.await);
        });
        receiver.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.pool.close();
        // Dropping a runtime blocks until its tasks end, which tokio refuses on an async thread; the store may be
        // dropped there, so its threads are told to stop without waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection settings hold the password: not printed.
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .finish_non_exhaustive()
    }
}

/// A pooled connection.
async fn connection(pool: &Pool) -> Result<Client> {
    pool.get().await.map_err(pool_error)
}

/// The error of a call made while the store shuts down.
fn stopped() -> Error {
    Error::Backend {
        what: "the PostgreSQL driver stopped",
        source: "the store's runtime is shut down".into(),
    }
}

/// Runs `$body` in one transaction on a pooled connection of `$pool`, bound to `$txn`, and commits it if the body
/// succeeds. On an error the transaction is dropped, which rolls it back: a failed write changes nothing.
macro_rules! transaction {
    ($pool:expr, |$txn:ident| $body:expr) => {{
        let mut client = connection(&$pool).await?;
        let $txn = client.transaction().await.map_err(sql_error)?;
        let value = $body;
        $txn.commit().await.map_err(sql_error)?;
        Ok(value)
    }};
}

/// Runs `$body` in one read-only `REPEATABLE READ` transaction: every statement of it sees the same snapshot.
macro_rules! snapshot {
    ($pool:expr, |$txn:ident| $body:expr) => {{
        let mut client = connection(&$pool).await?;
        let $txn = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(sql_error)?;
        let value = $body;
        $txn.commit().await.map_err(sql_error)?;
        Ok(value)
    }};
}

impl Store for PostgresStore {
    fn put_owner(&self, owner: &Owner, expected: Option<Revision>) -> Result<Revision> {
        let owner = owner.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| record::put_owner(&txn, &owner, expected)
                .await?)
        })
    }

    fn get_owner(&self, id: OwnerId) -> Result<Option<Versioned<Owner>>> {
        self.run(move |pool| async move { record::get_owner(&connection(&pool).await?, id).await })
    }

    fn put_inbox_message(&self, recipient: OwnerId, message: &InboxMessage) -> Result<()> {
        let message = message.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                record::put_inbox_message(&txn, recipient, &message).await?
            })
        })
    }

    fn inbox(&self, owner: OwnerId) -> Result<Vec<InboxMessage>> {
        self.run(move |pool| async move { record::inbox(&connection(&pool).await?, owner).await })
    }

    fn inbox_len(&self, owner: OwnerId) -> Result<u64> {
        self.run(
            move |pool| async move { record::inbox_len(&connection(&pool).await?, owner).await },
        )
    }

    fn delete_inbox_message(&self, owner: OwnerId, id: InboxMessageId) -> Result<bool> {
        self.run(move |pool| async move {
            transaction!(pool, |txn| record::delete_inbox_message(&txn, owner, id)
                .await?)
        })
    }

    fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()> {
        let entry = entry.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| record::put_key_bag_entry(&txn, &entry).await?)
        })
    }

    fn swap_key_bag_entry(
        &self,
        entry: &KeyBagEntry,
        previous: Option<&KeyBagEntry>,
    ) -> Result<()> {
        let (entry, previous) = (entry.clone(), previous.cloned());
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                record::swap_key_bag_entry(&txn, &entry, previous.as_ref()).await?
            })
        })
    }

    fn key_bag(&self, owner: OwnerId) -> Result<Vec<KeyBagEntry>> {
        self.run(move |pool| async move { record::key_bag(&connection(&pool).await?, owner).await })
    }

    fn key_bag_entry(&self, owner: OwnerId, id: KeyBagEntryId) -> Result<Option<KeyBagEntry>> {
        self.run(move |pool| async move {
            record::key_bag_entry(&connection(&pool).await?, owner, id).await
        })
    }

    fn create_entity(&self, entity: &EncryptedEntity) -> Result<Revision> {
        let entity = entity.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| entity::create(&txn, &entity).await?)
        })
    }

    fn update_entity(&self, entity: &EncryptedEntity, expected: Revision) -> Result<Revision> {
        let entity = entity.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| entity::update(&txn, &entity, expected).await?)
        })
    }

    fn create_entities(&self, entities: &[EncryptedEntity]) -> Result<Vec<Revision>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let entities = entities.to_vec();
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                // The creates travel pipelined on the one connection, in batch order (so a repeated id conflicts
                // with its first occurrence, as in redb); the first error ends the batch and rolls it back.
                let creates = entities.iter().map(|entity| entity::create(&txn, entity));
                try_join_all(creates).await?
            })
        })
    }

    fn update_entities(&self, entities: &[(EncryptedEntity, Revision)]) -> Result<Vec<Revision>> {
        if entities.is_empty() {
            return Ok(Vec::new());
        }
        let entities = entities.to_vec();
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                // Locking the rows in id order first keeps two batches over the same entities from deadlocking.
                let mut ids: Vec<EntityId> = entities.iter().map(|(e, _)| e.id).collect();
                ids.sort();
                ids.dedup();
                try_join_all(ids.into_iter().map(|id| entity::get_for_update(&txn, id))).await?;
                let mut revisions = Vec::with_capacity(entities.len());
                for (entity, expected) in &entities {
                    revisions.push(entity::update(&txn, entity, *expected).await?);
                }
                revisions
            })
        })
    }

    fn get_entity(&self, id: EntityId) -> Result<Option<EncryptedEntity>> {
        self.run(move |pool| async move { entity::get(&connection(&pool).await?, id).await })
    }

    fn delete_entity(&self, id: EntityId, expected: Revision) -> Result<()> {
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                entity::delete(&txn, id, expected).await?;
                attachment::remove_all_of(&txn, id).await?
            })
        })
    }

    fn entities_by_delegation_key(&self, key: &DelegationKey) -> Result<Vec<EntityId>> {
        let key = *key.as_bytes();
        self.run(move |pool| async move {
            record::entity_ids(
                &connection(&pool).await?,
                "SELECT entity_id FROM entities_by_delegation_key WHERE delegation_key = $1 ORDER BY entity_id",
                &key,
            )
            .await
        })
    }

    fn entities_by_search_tag(&self, tag: &SearchTag) -> Result<Vec<EntityId>> {
        let tag = *tag.as_bytes();
        self.run(move |pool| async move {
            record::entity_ids(
                &connection(&pool).await?,
                "SELECT entity_id FROM entities_by_search_tag WHERE search_tag = $1 ORDER BY entity_id",
                &tag,
            )
            .await
        })
    }

    fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: &[u8],
    ) -> Result<()> {
        check_chunks(0, &cut_chunks(sealed))?;
        let sealed = sealed.to_vec();
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                entity::lock_existing(&txn, entity).await?;
                attachment::discard(&txn, entity, attachment).await?;
                attachment::stage(&txn, entity, attachment, 0, &cut_chunks(&sealed)).await?;
                attachment::finish(&txn, entity, attachment, sealed.len() as u64).await?
            })
        })
    }

    fn put_attachment_chunks(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[Vec<u8>],
    ) -> Result<()> {
        check_chunks(first_chunk, chunks)?;
        let chunks = chunks.to_vec();
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                entity::lock_existing(&txn, entity).await?;
                attachment::stage(&txn, entity, attachment, first_chunk, &chunks).await?
            })
        })
    }

    fn finish_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        len: u64,
    ) -> Result<()> {
        self.run(move |pool| async move {
            transaction!(pool, |txn| {
                entity::lock_existing(&txn, entity).await?;
                attachment::finish(&txn, entity, attachment, len).await?
            })
        })
    }

    fn abort_attachment(&self, entity: EntityId, attachment: AttachmentId) -> Result<()> {
        self.run(move |pool| async move {
            transaction!(pool, |txn| attachment::discard(&txn, entity, attachment)
                .await?)
        })
    }

    fn attachment_len(&self, entity: EntityId, attachment: AttachmentId) -> Result<Option<u64>> {
        self.run(move |pool| async move {
            attachment::len(&connection(&pool).await?, entity, attachment).await
        })
    }

    fn read_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Range<u64>,
    ) -> Result<Option<Vec<u8>>> {
        self.run(move |pool| async move {
            snapshot!(pool, |txn| {
                match attachment::len(&txn, entity, attachment).await? {
                    None => None,
                    Some(len) => {
                        Some(attachment::read_range(&txn, entity, attachment, len, range).await?)
                    }
                }
            })
        })
    }

    fn put_recovery_data(&self, data: &RecoveryData) -> Result<()> {
        let data = data.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| record::put_recovery_data(&txn, &data).await?)
        })
    }

    fn get_recovery_data(&self, id: &[u8; 32]) -> Result<Option<RecoveryData>> {
        let id = *id;
        self.run(move |pool| async move {
            record::get_recovery_data(&connection(&pool).await?, &id).await
        })
    }

    fn put_side_map_entry(&self, entry: &SideMapEntry) -> Result<()> {
        let entry = entry.clone();
        self.run(move |pool| async move {
            transaction!(pool, |txn| record::put_side_map_entry(&txn, &entry).await?)
        })
    }

    fn side_map_entry(&self, owner: OwnerId, key: &DelegationKey) -> Result<Option<SideMapEntry>> {
        let key = *key;
        self.run(move |pool| async move {
            record::side_map_entry(&connection(&pool).await?, owner, &key).await
        })
    }
}
