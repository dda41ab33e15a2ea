//! Entities and their two index tables, written together in one transaction.

use deadpool_postgres::GenericClient;
use futures_util::future::try_join_all;
use tessera_sharing::{EncryptedEntity, EntityId};
use tokio_postgres::types::ToSql;

use super::sql::{bytes, execute, query_opt, rev};
use crate::codec::{decode, encode};
use crate::error::Result;
use crate::index::{self, IndexKeys};
use crate::revision;
use crate::store::Revision;

/// Creates `entity` at revision 1, unless its id is taken (also by an earlier entity of the same batch).
pub(super) async fn create<C: GenericClient>(
    txn: &C,
    entity: &EncryptedEntity,
) -> Result<Revision> {
    let mut entity = entity.clone();
    entity.rev = 1;
    let value = encode("entity", &entity)?;
    let id = entity.id.as_bytes().as_slice();
    // `ON CONFLICT DO NOTHING` waits for a concurrent creator of the same id, then reports no row inserted.
    let inserted = execute(
        txn,
        "INSERT INTO entities (id, rev, value) VALUES ($1, 1, $2) ON CONFLICT (id) DO NOTHING",
        &[&id, &value],
    )
    .await?;
    if inserted == 0 {
        let actual = get_for_update(txn, entity.id).await?.map_or(1, |e| e.rev);
        return Err(revision::exists("entity", actual));
    }
    add_index(txn, entity.id, &IndexKeys::of(Some(&entity))).await?;
    Ok(1)
}

/// Replaces revision `expected` of `entity`, moving its index entries.
pub(super) async fn update<C: GenericClient>(
    txn: &C,
    entity: &EncryptedEntity,
    expected: Revision,
) -> Result<Revision> {
    let stored = get_for_update(txn, entity.id).await?;
    let next = revision::next_entity(stored.as_ref().map(|e| e.rev), expected)?;
    let mut entity = entity.clone();
    entity.rev = next;
    let value = encode("entity", &entity)?;
    execute(
        txn,
        "UPDATE entities SET rev = $2, value = $3 WHERE id = $1",
        &[&entity.id.as_bytes().as_slice(), &rev(next)?, &value],
    )
    .await?;
    let (removed, added) = index::changes(stored.as_ref(), Some(&entity));
    remove_index(txn, entity.id, &removed).await?;
    add_index(txn, entity.id, &added).await?;
    Ok(next)
}

/// Deletes revision `expected` of entity `id` with its index entries (its attachments are the caller's).
pub(super) async fn delete<C: GenericClient>(
    txn: &C,
    id: EntityId,
    expected: Revision,
) -> Result<()> {
    let stored = get_for_update(txn, id).await?;
    revision::next_entity(stored.as_ref().map(|e| e.rev), expected)?;
    remove_index(txn, id, &IndexKeys::of(stored.as_ref())).await?;
    execute(
        txn,
        "DELETE FROM entities WHERE id = $1",
        &[&id.as_bytes().as_slice()],
    )
    .await?;
    Ok(())
}

/// Entity `id`, read without a lock.
pub(super) async fn get<C: GenericClient>(
    client: &C,
    id: EntityId,
) -> Result<Option<EncryptedEntity>> {
    let row = query_opt(
        client,
        "SELECT value FROM entities WHERE id = $1",
        &[&id.as_bytes().as_slice()],
    )
    .await?;
    row.map(|row| decode("entity", bytes(&row, 0)?)).transpose()
}

/// Entity `id`, locked until the transaction ends: a concurrent writer of the same entity waits, then reads the
/// revision this transaction wrote (so of two writers naming the same revision, one wins and one conflicts).
pub(super) async fn get_for_update<C: GenericClient>(
    txn: &C,
    id: EntityId,
) -> Result<Option<EncryptedEntity>> {
    let row = query_opt(
        txn,
        "SELECT value FROM entities WHERE id = $1 FOR UPDATE",
        &[&id.as_bytes().as_slice()],
    )
    .await?;
    row.map(|row| decode("entity", bytes(&row, 0)?)).transpose()
}

/// Fails with [`crate::Error::NotFound`] unless entity `id` exists, and keeps it from being deleted until the
/// transaction ends (so no attachment outlives its entity).
pub(super) async fn lock_existing<C: GenericClient>(txn: &C, id: EntityId) -> Result<()> {
    let row = query_opt(
        txn,
        "SELECT 1 FROM entities WHERE id = $1 FOR SHARE",
        &[&id.as_bytes().as_slice()],
    )
    .await?;
    row.map(|_| ()).ok_or(crate::Error::NotFound("entity"))
}

/// Adds the index entries `keys` of entity `id`.
async fn add_index<C: GenericClient>(txn: &C, id: EntityId, keys: &IndexKeys) -> Result<()> {
    let statements = [
        "INSERT INTO entities_by_delegation_key (delegation_key, entity_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
        "INSERT INTO entities_by_search_tag (search_tag, entity_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    ];
    each_index_key(txn, id, keys, statements).await
}

/// Removes the index entries `keys` of entity `id`.
async fn remove_index<C: GenericClient>(txn: &C, id: EntityId, keys: &IndexKeys) -> Result<()> {
    let statements = [
        "DELETE FROM entities_by_delegation_key WHERE delegation_key = $1 AND entity_id = $2",
        "DELETE FROM entities_by_search_tag WHERE search_tag = $1 AND entity_id = $2",
    ];
    each_index_key(txn, id, keys, statements).await
}

/// Runs `statements[0]` for each delegation key and `statements[1]` for each search tag of `keys`, with the key as
/// `$1` and entity `id` as `$2`. The statements travel pipelined on the one connection: one round trip in all.
async fn each_index_key<C: GenericClient>(
    txn: &C,
    id: EntityId,
    keys: &IndexKeys,
    [by_key, by_tag]: [&str; 2],
) -> Result<()> {
    let id = id.as_bytes().as_slice();
    let rows: Vec<(&str, &[u8])> = keys
        .delegation_keys
        .iter()
        .map(|key| (by_key, key.as_bytes().as_slice()))
        .chain(
            keys.search_tags
                .iter()
                .map(|tag| (by_tag, tag.as_bytes().as_slice())),
        )
        .collect();
    let params: Vec<[&(dyn ToSql + Sync); 2]> =
        rows.iter().map(|(_, key)| [key as _, &id as _]).collect();
    try_join_all(
        rows.iter()
            .zip(&params)
            .map(|((sql, _), params)| execute(txn, sql, params)),
    )
    .await?;
    Ok(())
}
