//! Attachments of a session's records: each under its own key, sealed with the streaming AEAD in 64 KiB segments,
//! so that any byte range can be fetched and decrypted without the rest.

use std::ops::Range;

use tessera_primitives::stream::{HEADER_LEN, SEGMENT_LEN, StreamLayout};
use tessera_sharing::{AttachmentId, AttachmentRef, DecryptedEntity, attachment};

use crate::entity::{check_rev, check_write};
use crate::error::{Error, ErrorKind, Result};
use crate::record::{AttachmentInfo, EntityRef};
use crate::session::Session;

/// Segments fetched per request by [`Session::attachment_with_progress`] (1 MiB of content).
const SEGMENTS_PER_REQUEST: u32 = 16;

impl Session {
    /// Encrypts `content` as a new attachment of revision `rev` of a record and uploads it; returns the attachment's
    /// id and the record's new revision.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] if `rev` is stale; [`ErrorKind::Forbidden`] without write access;
    /// [`ErrorKind::Invalid`] above the server's attachment size limit.
    pub async fn add_attachment(
        &self,
        entity: &EntityRef,
        rev: u64,
        content: &[u8],
    ) -> Result<(AttachmentId, u64)> {
        let (stored, opened, _) = self.fetch_open(entity).await?;
        check_rev(&stored, rev)?;
        check_write(&opened)?;
        let (reference, sealed) = attachment::seal_attachment(&opened, content)?;
        let attachment_id = reference.id;
        let mut updated = stored;
        updated.attachments.push(reference);
        let updated = &updated;
        let new_rev = self
            .call(|c| async move { c.update_entity(updated, rev).await })
            .await?;
        let (id, sealed) = (entity.id, &sealed);
        self.call(|c| async move { c.put_attachment(id, attachment_id, sealed.clone()).await })
            .await?;
        Ok((attachment_id, new_rev))
    }

    /// Downloads and decrypts a whole attachment.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if the record or the attachment is not visible; [`ErrorKind::Crypto`] if the stream
    /// was tampered with, truncated or reordered.
    pub async fn attachment(
        &self,
        entity: &EntityRef,
        attachment_id: AttachmentId,
    ) -> Result<Vec<u8>> {
        let (opened, reference) = self.open_attachment_ref(entity, attachment_id).await?;
        let id = entity.id;
        let sealed = self
            .call(|c| async move { c.attachment(id, attachment_id, None).await })
            .await?;
        Ok(attachment::open_attachment(&opened, &reference, &sealed)?)
    }

    /// Downloads and decrypts bytes `range` of an attachment's content, fetching only the segments that hold them.
    /// The range is clamped to the content's length.
    ///
    /// # Errors
    /// As [`Session::attachment`].
    pub async fn attachment_range(
        &self,
        entity: &EntityRef,
        attachment_id: AttachmentId,
        range: Range<u64>,
    ) -> Result<Vec<u8>> {
        let (opened, reference) = self.open_attachment_ref(entity, attachment_id).await?;
        let len = AttachmentInfo::from_ref(&reference).len;
        let (start, end) = (range.start.min(len), range.end.min(len));
        if start >= end {
            return Ok(Vec::new());
        }
        let segment = SEGMENT_LEN as u64;
        let first = segment_index(start / segment)?;
        let last = segment_index((end - 1) / segment)?;
        let reader = SegmentReader::new(self, entity, &opened, &reference).await?;
        let plaintext = reader.read(first, last).await?;
        let skip = usize::try_from(start - u64::from(first) * segment).map_err(|_| too_large())?;
        let take = usize::try_from(end - start).map_err(|_| too_large())?;
        Ok(plaintext.into_iter().skip(skip).take(take).collect())
    }

    /// Downloads and decrypts a whole attachment in requests of 16 segments (1 MiB), calling `progress(done, total)`
    /// with the content bytes received so far.
    ///
    /// # Errors
    /// As [`Session::attachment`].
    pub async fn attachment_with_progress(
        &self,
        entity: &EntityRef,
        attachment_id: AttachmentId,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Vec<u8>> {
        let (opened, reference) = self.open_attachment_ref(entity, attachment_id).await?;
        let total = AttachmentInfo::from_ref(&reference).len;
        let reader = SegmentReader::new(self, entity, &opened, &reference).await?;
        let segments = reader.layout.segments();
        let mut content = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
        let mut first = 0;
        progress(0, total);
        while first < segments {
            let last = first
                .saturating_add(SEGMENTS_PER_REQUEST - 1)
                .min(segments - 1);
            content.extend(reader.read(first, last).await?);
            progress(content.len() as u64, total);
            first = last + 1;
        }
        Ok(content)
    }

    async fn open_attachment_ref(
        &self,
        entity: &EntityRef,
        attachment_id: AttachmentId,
    ) -> Result<(DecryptedEntity, AttachmentRef)> {
        let (_, opened, _) = self.fetch_open(entity).await?;
        let reference = opened
            .attachments
            .iter()
            .find(|a| a.id == attachment_id)
            .cloned()
            .ok_or_else(|| Error::new(ErrorKind::NotFound, "the record has no such attachment"))?;
        Ok((opened, reference))
    }
}

/// Reads and opens runs of segments of one attachment.
struct SegmentReader<'a> {
    session: &'a Session,
    entity: &'a EntityRef,
    attachment_id: AttachmentId,
    opener: tessera_primitives::stream::StreamOpener,
    layout: StreamLayout,
}

impl<'a> SegmentReader<'a> {
    /// Fetches the stream header and prepares the opener.
    async fn new(
        session: &'a Session,
        entity: &'a EntityRef,
        opened: &DecryptedEntity,
        reference: &AttachmentRef,
    ) -> Result<Self> {
        let (id, aid) = (entity.id, reference.id);
        let header = session
            .call(|c| async move { c.attachment(id, aid, Some(0..HEADER_LEN as u64)).await })
            .await?;
        let (opener, layout) = attachment::attachment_opener(opened, reference, &header)?;
        Ok(Self {
            session,
            entity,
            attachment_id: aid,
            opener,
            layout,
        })
    }

    /// Fetches segments `first..=last` in one ranged request and opens each.
    async fn read(&self, first: u32, last: u32) -> Result<Vec<u8>> {
        let (Some(start), Some(end)) = (
            self.layout.segment_range(first),
            self.layout.segment_range(last),
        ) else {
            return Err(Error::new(ErrorKind::Crypto, "segment out of range"));
        };
        let (id, aid, range) = (self.entity.id, self.attachment_id, start.start..end.end);
        let bytes = self
            .session
            .call(|c| {
                let range = range.clone();
                async move { c.attachment(id, aid, Some(range)).await }
            })
            .await?;
        let mut plaintext = Vec::new();
        for index in first..=last {
            let segment = self
                .layout
                .segment_range(index)
                .and_then(|r| {
                    let from = usize::try_from(r.start - start.start).ok()?;
                    let to = usize::try_from(r.end - start.start).ok()?;
                    bytes.get(from..to)
                })
                .ok_or_else(|| Error::from(tessera_primitives::Error::Crypto))?;
            plaintext.extend(self.opener.open_segment(
                index,
                segment,
                self.layout.is_last(index),
            )?);
        }
        Ok(plaintext)
    }
}

fn segment_index(index: u64) -> Result<u32> {
    u32::try_from(index).map_err(|_| too_large())
}

fn too_large() -> Error {
    Error::invalid("the range lies beyond what this platform can address")
}
