//! Attachments: their lengths, the chunks of finished uploads and the staged chunks of unfinished ones.

use std::ops::Range;

use deadpool_postgres::GenericClient;
use tessera_sharing::{AttachmentId, EntityId};

use super::sql::{bytes, execute, query, query_opt, signed, unsigned};
use crate::error::{Error, Result};
use crate::store::{chunk_count, chunk_of, chunk_span};

/// Stages `chunks` (already checked) at `first_chunk..` of an upload, replacing chunks staged there before.
pub(super) async fn stage<C: GenericClient, B: AsRef<[u8]>>(
    txn: &C,
    entity: EntityId,
    attachment: AttachmentId,
    first_chunk: u64,
    chunks: &[B],
) -> Result<()> {
    let (e, a) = (
        entity.as_bytes().as_slice(),
        attachment.as_bytes().as_slice(),
    );
    for (chunk, index) in chunks.iter().zip(first_chunk..) {
        execute(
            txn,
            "INSERT INTO attachment_staging (entity_id, attachment_id, chunk, bytes) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (entity_id, attachment_id, chunk) DO UPDATE SET bytes = EXCLUDED.bytes",
            &[&e, &a, &signed(index, "attachment chunk")?, &chunk.as_ref()],
        )
        .await?;
    }
    Ok(())
}

/// Removes the staged chunks of an upload.
pub(super) async fn discard<C: GenericClient>(
    txn: &C,
    entity: EntityId,
    attachment: AttachmentId,
) -> Result<()> {
    execute(
        txn,
        "DELETE FROM attachment_staging WHERE entity_id = $1 AND attachment_id = $2",
        &[
            &entity.as_bytes().as_slice(),
            &attachment.as_bytes().as_slice(),
        ],
    )
    .await?;
    Ok(())
}

/// Makes the staged upload the content of the attachment, `len` bytes long; nothing stays staged. The caller
/// rolls the transaction back on an error, so a refused upload stays staged and the old content readable.
pub(super) async fn finish<C: GenericClient>(
    txn: &C,
    entity: EntityId,
    attachment: AttachmentId,
    len: u64,
) -> Result<()> {
    let (e, a) = (
        entity.as_bytes().as_slice(),
        attachment.as_bytes().as_slice(),
    );
    // Locks the current length (if any) so that two finishes of the same attachment take turns.
    query_opt(
        txn,
        "SELECT len FROM attachments WHERE entity_id = $1 AND attachment_id = $2 FOR UPDATE",
        &[&e, &a],
    )
    .await?;
    let count = chunk_count(len);
    let staged = query(
        txn,
        "SELECT chunk, length(bytes) FROM attachment_staging \
         WHERE entity_id = $1 AND attachment_id = $2 ORDER BY chunk FOR UPDATE",
        &[&e, &a],
    )
    .await?;
    let mut present = 0u64;
    for row in &staged {
        let index = unsigned(row, 0, "attachment staging")?;
        if index >= count {
            continue;
        }
        let stored_len: i32 = row.try_get(1).map_err(super::sql::sql_error)?;
        let span = chunk_span(index, len);
        if u64::try_from(stored_len).ok() != Some(span.end - span.start) {
            return Err(Error::Invalid("attachment upload"));
        }
        present += 1;
    }
    // Indexes are distinct and below `count`, so `count` of them are exactly the chunks 0..count.
    if present != count {
        return Err(Error::Invalid("attachment upload"));
    }
    let count = signed(count, "attachment upload")?;
    execute(
        txn,
        "DELETE FROM attachment_chunks WHERE entity_id = $1 AND attachment_id = $2",
        &[&e, &a],
    )
    .await?;
    execute(
        txn,
        "INSERT INTO attachment_chunks (entity_id, attachment_id, chunk, bytes) \
         SELECT entity_id, attachment_id, chunk, bytes FROM attachment_staging \
         WHERE entity_id = $1 AND attachment_id = $2 AND chunk < $3",
        &[&e, &a, &count],
    )
    .await?;
    discard(txn, entity, attachment).await?;
    execute(
        txn,
        "INSERT INTO attachments (entity_id, attachment_id, len) VALUES ($1, $2, $3) \
         ON CONFLICT (entity_id, attachment_id) DO UPDATE SET len = EXCLUDED.len",
        &[&e, &a, &signed(len, "attachment upload")?],
    )
    .await?;
    Ok(())
}

/// Removes every attachment of `entity`, and its unfinished uploads.
pub(super) async fn remove_all_of<C: GenericClient>(txn: &C, entity: EntityId) -> Result<()> {
    let e = entity.as_bytes().as_slice();
    for sql in [
        "DELETE FROM attachment_chunks WHERE entity_id = $1",
        "DELETE FROM attachment_staging WHERE entity_id = $1",
        "DELETE FROM attachments WHERE entity_id = $1",
    ] {
        execute(txn, sql, &[&e]).await?;
    }
    Ok(())
}

/// The length of an attachment's sealed stream.
pub(super) async fn len<C: GenericClient>(
    client: &C,
    entity: EntityId,
    attachment: AttachmentId,
) -> Result<Option<u64>> {
    let row = query_opt(
        client,
        "SELECT len FROM attachments WHERE entity_id = $1 AND attachment_id = $2",
        &[
            &entity.as_bytes().as_slice(),
            &attachment.as_bytes().as_slice(),
        ],
    )
    .await?;
    row.map(|row| unsigned(&row, 0, "attachment length"))
        .transpose()
}

/// Bytes `range` (clamped to `len`) of an attachment of length `len`, read from the chunk rows it overlaps only.
pub(super) async fn read_range<C: GenericClient>(
    client: &C,
    entity: EntityId,
    attachment: AttachmentId,
    len: u64,
    range: Range<u64>,
) -> Result<Vec<u8>> {
    let start = range.start.min(len);
    let end = range.end.clamp(start, len);
    let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
    if start == end {
        return Ok(out);
    }
    let (first, last) = (chunk_of(start), chunk_of(end - 1));
    let rows = query(
        client,
        "SELECT chunk, bytes FROM attachment_chunks \
         WHERE entity_id = $1 AND attachment_id = $2 AND chunk >= $3 AND chunk <= $4 ORDER BY chunk",
        &[
            &entity.as_bytes().as_slice(),
            &attachment.as_bytes().as_slice(),
            &signed(first, "attachment range")?,
            &signed(last, "attachment range")?,
        ],
    )
    .await?;
    let mut expected = first;
    for row in &rows {
        let index = unsigned(row, 0, "attachment chunk")?;
        let chunk = bytes(row, 1)?;
        let span = chunk_span(index, len);
        if index != expected || chunk.len() as u64 != span.end - span.start {
            return Err(Error::Corrupt("attachment chunk"));
        }
        // The part of this chunk inside the range, relative to the chunk's start.
        let from = start.max(span.start) - span.start;
        let to = end.min(span.end) - span.start;
        let part = usize::try_from(from)
            .ok()
            .zip(usize::try_from(to).ok())
            .and_then(|(from, to)| chunk.get(from..to))
            .ok_or(Error::Corrupt("attachment chunk"))?;
        out.extend_from_slice(part);
        expected += 1;
    }
    if expected != last + 1 {
        return Err(Error::Corrupt("attachment chunk"));
    }
    Ok(out)
}
