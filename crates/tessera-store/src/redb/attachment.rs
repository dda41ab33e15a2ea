//! Attachments: the length table, the chunks of finished uploads and the staged chunks of unfinished ones.

use std::ops::Range;

use ::redb::{ReadableTable, Table, WriteTransaction};
use tessera_sharing::{AttachmentId, EntityId};

use super::table::{
    ATTACHMENT_CHUNKS, ATTACHMENT_LENGTHS, ATTACHMENT_STAGING, Bytes, ChunkKey, Key32, backend,
    concat,
};
use crate::error::{Error, Result};
use crate::store::{chunk_count, chunk_of, chunk_span};

/// The attachment tables, open in one write transaction.
pub(super) struct AttachmentTables<'t> {
    pub(super) lengths: Table<'t, Key32, u64>,
    pub(super) chunks: Table<'t, ChunkKey, Bytes>,
    pub(super) staging: Table<'t, ChunkKey, Bytes>,
}

impl<'t> AttachmentTables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            lengths: txn.open_table(ATTACHMENT_LENGTHS).map_err(backend)?,
            chunks: txn.open_table(ATTACHMENT_CHUNKS).map_err(backend)?,
            staging: txn.open_table(ATTACHMENT_STAGING).map_err(backend)?,
        })
    }

    /// Stages `chunks` (already checked) at `first_chunk..` of an upload.
    pub(super) fn stage<C: AsRef<[u8]>>(
        &mut self,
        entity: EntityId,
        attachment: AttachmentId,
        first_chunk: u64,
        chunks: &[C],
    ) -> Result<()> {
        for (chunk, index) in chunks.iter().zip(first_chunk..) {
            self.staging
                .insert(chunk_key(entity, attachment, index), chunk.as_ref())
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Indexes of the staged chunks of an upload, in ascending order.
    pub(super) fn staged(&self, entity: EntityId, attachment: AttachmentId) -> Result<Vec<u64>> {
        let first = chunk_key(entity, attachment, 0);
        let last = chunk_key(entity, attachment, u64::MAX);
        let mut indexes = Vec::new();
        for row in self.staging.range(first..=last).map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            let index: [u8; 8] = concat(&[key.value().get(32..).unwrap_or_default()]);
            indexes.push(u64::from_be_bytes(index));
        }
        Ok(indexes)
    }

    /// Makes the staged upload the content of the attachment, `len` bytes long; nothing stays staged. The caller
    /// aborts the transaction on an error.
    pub(super) fn finish(
        &mut self,
        entity: EntityId,
        attachment: AttachmentId,
        len: u64,
    ) -> Result<()> {
        let key = attachment_key(entity, attachment);
        let previous = self.lengths.get(&key).map_err(backend)?.map(|v| v.value());
        let count = chunk_count(len);
        let mut moved = 0u64;
        for index in self.staged(entity, attachment)? {
            let chunk = chunk_key(entity, attachment, index);
            let staged = self
                .staging
                .remove(chunk)
                .map_err(backend)?
                .ok_or(Error::Corrupt("attachment staging"))?;
            if index >= count {
                continue;
            }
            let span = chunk_span(index, len);
            let bytes = staged.value();
            if bytes.len() as u64 != span.end - span.start {
                return Err(Error::Invalid("attachment upload"));
            }
            self.chunks.insert(chunk, bytes).map_err(backend)?;
            moved += 1;
        }
        // Indexes are distinct and below `count`, so `count` of them are exactly the chunks 0..count.
        if moved != count {
            return Err(Error::Invalid("attachment upload"));
        }
        for index in count..previous.map_or(0, chunk_count) {
            self.chunks
                .remove(chunk_key(entity, attachment, index))
                .map_err(backend)?;
        }
        self.lengths.insert(&key, len).map_err(backend)?;
        Ok(())
    }

    /// Removes the staged chunks of an upload.
    pub(super) fn discard(&mut self, entity: EntityId, attachment: AttachmentId) -> Result<()> {
        for index in self.staged(entity, attachment)? {
            self.staging
                .remove(chunk_key(entity, attachment, index))
                .map_err(backend)?;
        }
        Ok(())
    }

    /// Removes every attachment of `entity`, and its unfinished uploads.
    pub(super) fn remove_all_of(&mut self, entity: EntityId) -> Result<()> {
        let first: Key32 = concat(&[entity.as_bytes(), &[0; 16]]);
        let last: Key32 = concat(&[entity.as_bytes(), &[0xff; 16]]);
        let mut found = Vec::new();
        for row in self.lengths.range(first..=last).map_err(backend)? {
            let (key, len) = row.map_err(backend)?;
            found.push((key.value(), len.value()));
        }
        for (key, len) in found {
            for index in 0..chunk_count(len) {
                let chunk: ChunkKey = concat(&[&key, &index.to_be_bytes()]);
                self.chunks.remove(chunk).map_err(backend)?;
            }
            self.lengths.remove(&key).map_err(backend)?;
        }
        let first: ChunkKey = concat(&[entity.as_bytes(), &[0; 24]]);
        let last: ChunkKey = concat(&[entity.as_bytes(), &[0xff; 24]]);
        let mut staged = Vec::new();
        for row in self.staging.range(first..=last).map_err(backend)? {
            let (key, _) = row.map_err(backend)?;
            staged.push(key.value());
        }
        for key in staged {
            self.staging.remove(key).map_err(backend)?;
        }
        Ok(())
    }
}

/// Bytes `range` (clamped to `len`) of an attachment of length `len`, read from the chunks it overlaps.
pub(super) fn read_range(
    chunks: &impl ReadableTable<ChunkKey, Bytes>,
    entity: EntityId,
    attachment: AttachmentId,
    len: u64,
    range: Range<u64>,
) -> Result<Vec<u8>> {
    let start = range.start.min(len);
    let end = range.end.clamp(start, len);
    let mut out = Vec::with_capacity(to_usize(end - start).unwrap_or(0));
    if start == end {
        return Ok(out);
    }
    for index in chunk_of(start)..=chunk_of(end - 1) {
        let span = chunk_span(index, len);
        let chunk = chunks
            .get(chunk_key(entity, attachment, index))
            .map_err(backend)?
            .ok_or(Error::Corrupt("attachment chunk"))?;
        let bytes = chunk.value();
        if bytes.len() as u64 != span.end - span.start {
            return Err(Error::Corrupt("attachment chunk"));
        }
        // The part of this chunk inside the range, relative to the chunk's start.
        let from = start.max(span.start) - span.start;
        let to = end.min(span.end) - span.start;
        let part = to_usize(from)
            .zip(to_usize(to))
            .and_then(|(from, to)| bytes.get(from..to))
            .ok_or(Error::Corrupt("attachment chunk"))?;
        out.extend_from_slice(part);
    }
    Ok(out)
}

pub(super) fn to_usize(value: u64) -> Option<usize> {
    usize::try_from(value).ok()
}

pub(super) fn attachment_key(entity: EntityId, attachment: AttachmentId) -> Key32 {
    concat(&[entity.as_bytes(), attachment.as_bytes()])
}

pub(super) fn chunk_key(entity: EntityId, attachment: AttachmentId, index: u64) -> ChunkKey {
    concat(&[
        entity.as_bytes(),
        attachment.as_bytes(),
        &index.to_be_bytes(),
    ])
}
