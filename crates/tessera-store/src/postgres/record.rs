//! The records besides entities and attachments: owners, inbox messages, key-bag entries, recovery data and the
//! side map, and the index look-ups that return entity ids.

use deadpool_postgres::GenericClient;
use tessera_keys::{
    DelegationKey, InboxMessage, InboxMessageId, KeyBagEntry, KeyBagEntryId, Owner, OwnerId,
};
use tessera_sharing::{EntityId, SideMapEntry};

use super::sql::{bytes, execute, id, query, query_opt, rev, unsigned};
use crate::codec::{decode, encode};
use crate::error::Result;
use crate::revision;
use crate::store::{RecoveryData, Revision, Versioned};

/// Stores an owner record at the revision after `expected` (create when `None`).
pub(super) async fn put_owner<C: GenericClient>(
    txn: &C,
    owner: &Owner,
    expected: Option<Revision>,
) -> Result<Revision> {
    let value = encode("owner", owner)?;
    put_versioned(
        txn,
        "owners",
        "owner",
        owner.id.as_bytes(),
        &value,
        expected,
    )
    .await
}

/// The owner record of `id`.
pub(super) async fn get_owner<C: GenericClient>(
    client: &C,
    owner: OwnerId,
) -> Result<Option<Versioned<Owner>>> {
    get_versioned(
        client,
        "SELECT rev, value FROM owners WHERE id = $1",
        "owner",
        owner.as_bytes(),
    )
    .await
}

/// Files `message` in `recipient`'s inbox: the same message again is a no-op, another message under its
/// `(recipient, id)` a conflict.
pub(super) async fn put_inbox_message<C: GenericClient>(
    txn: &C,
    recipient: OwnerId,
    message: &InboxMessage,
) -> Result<()> {
    let value = encode("inbox message", message)?;
    let (owner, id) = (
        recipient.as_bytes().as_slice(),
        message.id.as_bytes().as_slice(),
    );
    let inserted = execute(
        txn,
        "INSERT INTO inbox (recipient_id, message_id, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[&owner, &id, &value],
    )
    .await?;
    if inserted == 1 {
        return Ok(());
    }
    let row = query_opt(
        txn,
        "SELECT value FROM inbox WHERE recipient_id = $1 AND message_id = $2",
        &[&owner, &id],
    )
    .await?;
    let stored: Option<InboxMessage> = row
        .map(|row| decode("inbox message", bytes(&row, 0)?))
        .transpose()?;
    match stored {
        Some(stored) if stored == *message => Ok(()),
        _ => Err(revision::exists("inbox message", 1)),
    }
}

/// Every message in `owner`'s inbox, in id order.
pub(super) async fn inbox<C: GenericClient>(
    client: &C,
    owner: OwnerId,
) -> Result<Vec<InboxMessage>> {
    let rows = query(
        client,
        "SELECT value FROM inbox WHERE recipient_id = $1 ORDER BY message_id",
        &[&owner.as_bytes().as_slice()],
    )
    .await?;
    rows.iter()
        .map(|row| decode("inbox message", bytes(row, 0)?))
        .collect()
}

/// How many messages wait in `owner`'s inbox.
pub(super) async fn inbox_len<C: GenericClient>(client: &C, owner: OwnerId) -> Result<u64> {
    let row = query_opt(
        client,
        "SELECT count(*) FROM inbox WHERE recipient_id = $1",
        &[&owner.as_bytes().as_slice()],
    )
    .await?;
    match row {
        Some(row) => unsigned(&row, 0, "inbox length"),
        None => Ok(0),
    }
}

/// Removes message `id` from `owner`'s inbox; `true` if it was there.
pub(super) async fn delete_inbox_message<C: GenericClient>(
    txn: &C,
    owner: OwnerId,
    id: InboxMessageId,
) -> Result<bool> {
    let deleted = execute(
        txn,
        "DELETE FROM inbox WHERE recipient_id = $1 AND message_id = $2",
        &[&owner.as_bytes().as_slice(), &id.as_bytes().as_slice()],
    )
    .await?;
    Ok(deleted > 0)
}

/// Adds a key-bag entry: the same entry again is a no-op, another entry under its `(owner, id)` a conflict.
pub(super) async fn put_key_bag_entry<C: GenericClient>(
    txn: &C,
    entry: &KeyBagEntry,
) -> Result<()> {
    let value = encode("key-bag entry", entry)?;
    let inserted = execute(
        txn,
        "INSERT INTO key_bag (owner_id, entry_id, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        &[
            &entry.owner.as_bytes().as_slice(),
            &entry.id.as_bytes().as_slice(),
            &value,
        ],
    )
    .await?;
    if inserted == 1 {
        return Ok(());
    }
    match key_bag_entry(txn, entry.owner, entry.id).await? {
        Some(stored) if stored == *entry => Ok(()),
        _ => Err(revision::exists("key-bag entry", 1)),
    }
}

/// Replaces the key-bag entry under `entry`'s `(owner, id)` if it is `previous` (or absent, for `None`).
pub(super) async fn swap_key_bag_entry<C: GenericClient>(
    txn: &C,
    entry: &KeyBagEntry,
    previous: Option<&KeyBagEntry>,
) -> Result<()> {
    let (owner, entry_id) = (
        entry.owner.as_bytes().as_slice(),
        entry.id.as_bytes().as_slice(),
    );
    let row = query_opt(
        txn,
        "SELECT value FROM key_bag WHERE owner_id = $1 AND entry_id = $2 FOR UPDATE",
        &[&owner, &entry_id],
    )
    .await?;
    let stored: Option<KeyBagEntry> = row
        .map(|row| decode("key-bag entry", bytes(&row, 0)?))
        .transpose()?;
    if stored.as_ref() != previous {
        return Err(revision::exists("key-bag entry", 1));
    }
    let value = encode("key-bag entry", entry)?;
    let written = if stored.is_some() {
        execute(
            txn,
            "UPDATE key_bag SET value = $3 WHERE owner_id = $1 AND entry_id = $2",
            &[&owner, &entry_id, &value],
        )
        .await?
    } else {
        execute(
            txn,
            "INSERT INTO key_bag (owner_id, entry_id, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            &[&owner, &entry_id, &value],
        )
        .await?
    };
    // No row written: another writer created the entry after this one read that there was none.
    if written == 0 {
        return Err(revision::exists("key-bag entry", 1));
    }
    Ok(())
}

/// Every key-bag entry of `owner`, in entry-id order.
pub(super) async fn key_bag<C: GenericClient>(
    client: &C,
    owner: OwnerId,
) -> Result<Vec<KeyBagEntry>> {
    let rows = query(
        client,
        "SELECT value FROM key_bag WHERE owner_id = $1 ORDER BY entry_id",
        &[&owner.as_bytes().as_slice()],
    )
    .await?;
    rows.iter()
        .map(|row| decode("key-bag entry", bytes(row, 0)?))
        .collect()
}

/// One key-bag entry.
pub(super) async fn key_bag_entry<C: GenericClient>(
    client: &C,
    owner: OwnerId,
    entry: KeyBagEntryId,
) -> Result<Option<KeyBagEntry>> {
    let row = query_opt(
        client,
        "SELECT value FROM key_bag WHERE owner_id = $1 AND entry_id = $2",
        &[&owner.as_bytes().as_slice(), &entry.as_bytes().as_slice()],
    )
    .await?;
    row.map(|row| decode("key-bag entry", bytes(&row, 0)?))
        .transpose()
}

/// Stores recovery data; an existing id is a conflict.
pub(super) async fn put_recovery_data<C: GenericClient>(
    txn: &C,
    data: &RecoveryData,
) -> Result<()> {
    let value = encode("recovery data", data)?;
    let inserted = execute(
        txn,
        "INSERT INTO recovery_data (id, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&data.id.as_slice(), &value],
    )
    .await?;
    if inserted == 0 {
        return Err(revision::exists("recovery data", 1));
    }
    Ok(())
}

/// Recovery data `id`.
pub(super) async fn get_recovery_data<C: GenericClient>(
    client: &C,
    data: &[u8; 32],
) -> Result<Option<RecoveryData>> {
    let row = query_opt(
        client,
        "SELECT value FROM recovery_data WHERE id = $1",
        &[&data.as_slice()],
    )
    .await?;
    row.map(|row| decode("recovery data", bytes(&row, 0)?))
        .transpose()
}

/// Stores a side-map entry, replacing the one for the same owner and delegation key.
pub(super) async fn put_side_map_entry<C: GenericClient>(
    txn: &C,
    entry: &SideMapEntry,
) -> Result<()> {
    let value = encode("side-map entry", entry)?;
    execute(
        txn,
        "INSERT INTO side_map (owner_id, delegation_key, value) VALUES ($1, $2, $3) \
         ON CONFLICT (owner_id, delegation_key) DO UPDATE SET value = EXCLUDED.value",
        &[
            &entry.owner.as_bytes().as_slice(),
            &entry.delegation_key.as_bytes().as_slice(),
            &value,
        ],
    )
    .await?;
    Ok(())
}

/// The side-map entry of `owner` for `key`.
pub(super) async fn side_map_entry<C: GenericClient>(
    client: &C,
    owner: OwnerId,
    key: &DelegationKey,
) -> Result<Option<SideMapEntry>> {
    let row = query_opt(
        client,
        "SELECT value FROM side_map WHERE owner_id = $1 AND delegation_key = $2",
        &[&owner.as_bytes().as_slice(), &key.as_bytes().as_slice()],
    )
    .await?;
    row.map(|row| decode("side-map entry", bytes(&row, 0)?))
        .transpose()
}

/// The entity ids an index query (`sql`, with the index key as `$1`) returns.
pub(super) async fn entity_ids<C: GenericClient>(
    client: &C,
    sql: &str,
    key: &[u8; 32],
) -> Result<Vec<EntityId>> {
    let rows = query(client, sql, &[&key.as_slice()]).await?;
    rows.iter()
        .map(|row| id(row, 0, "entity index").map(EntityId::from_bytes))
        .collect()
}

/// Writes a versioned record (`table` has columns `id`, `rev`, `value`) at the revision after `expected`: the
/// stored revision is read and locked in this transaction, so two writers naming the same revision cannot both
/// win.
async fn put_versioned<C: GenericClient>(
    txn: &C,
    table: &'static str,
    what: &'static str,
    key: &[u8],
    value: &[u8],
    expected: Option<Revision>,
) -> Result<Revision> {
    let select = format!("SELECT rev FROM {table} WHERE id = $1 FOR UPDATE");
    let stored = query_opt(txn, &select, &[&key]).await?;
    let stored = stored.map(|row| unsigned(&row, 0, what)).transpose()?;
    let next = revision::next(what, stored, expected)?;
    if stored.is_some() {
        let update = format!("UPDATE {table} SET rev = $2, value = $3 WHERE id = $1");
        execute(txn, &update, &[&key, &rev(next)?, &value]).await?;
        return Ok(next);
    }
    let insert =
        format!("INSERT INTO {table} (id, rev, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");
    if execute(txn, &insert, &[&key, &rev(next)?, &value]).await? == 0 {
        // Created by another writer after this one read that there was none; a new statement sees its revision.
        let row = query_opt(txn, &select, &[&key]).await?;
        let actual = row.map(|row| unsigned(&row, 0, what)).transpose()?;
        return Err(crate::Error::Conflict {
            what,
            expected,
            actual,
        });
    }
    Ok(next)
}

/// Reads a versioned record with `sql` (columns `rev`, `value`; the key as `$1`).
async fn get_versioned<C: GenericClient, T: serde::de::DeserializeOwned>(
    client: &C,
    sql: &str,
    what: &'static str,
    key: &[u8],
) -> Result<Option<Versioned<T>>> {
    let row = query_opt(client, sql, &[&key]).await?;
    row.map(|row| {
        Ok(Versioned {
            rev: unsigned(&row, 0, what)?,
            value: decode(what, bytes(&row, 1)?)?,
        })
    })
    .transpose()
}
