//! Attachments of a session's records: each under its own key, sealed with the streaming AEAD in 64 KiB segments,
//! so that any byte range can be fetched and decrypted without the rest, and any size streamed in or out while
//! holding one segment.

use std::ops::Range;

use tessera_primitives::stream::{self, HEADER_LEN, SEGMENT_LEN, StreamLayout};
use tessera_sharing::{AttachmentId, AttachmentRef, EntityKeys, attachment};
use tokio::io::AsyncRead;

use crate::entity::{check_rev, check_write};
use crate::error::{Error, ErrorKind, Result};
use crate::record::{AttachmentInfo, EntityRef};
use crate::session::Session;
use crate::stream::{AttachmentStream, SealingReader, take_failure};

impl Session {
    /// Encrypts `content` as a new attachment of revision `rev` of a record and uploads it; returns the attachment's
    /// id and the record's new revision. The whole sealed stream is held in memory: for large content, or content
    /// read from a file, [`Session::add_attachment_stream`] holds one segment.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] if `rev` is stale; [`ErrorKind::Forbidden`] without write access;
    /// [`ErrorKind::Invalid`] above the server's attachment size limit. If the upload fails after the reference was
    /// added, the record keeps a reference whose content reads as [`ErrorKind::NotFound`].
    pub async fn add_attachment(
        &self,
        entity: &EntityRef,
        rev: u64,
        content: &[u8],
    ) -> Result<(AttachmentId, u64)> {
        let (attachment_id, new_rev, sealed) = self
            .add_reference(entity, rev, |opened| {
                Ok(attachment::seal_attachment(opened, content)?)
            })
            .await?;
        let (id, sealed) = (entity.id, &sealed);
        self.call(|c| async move { c.put_attachment(id, attachment_id, sealed.clone()).await })
            .await?;
        Ok((attachment_id, new_rev))
    }

    /// Encrypts `len` bytes read from `content` as a new attachment of revision `rev` of a record, uploading each
    /// 64 KiB segment as soon as it is sealed: memory holds about one segment, whatever `len`. Returns the
    /// attachment's id and the record's new revision.
    ///
    /// `content` must yield exactly `len` bytes: one that ends early, or has more (found by one extra read after the
    /// last segment's content, before that segment is sent), fails the upload, and the server keeps no content for
    /// the attachment. The upload is not retried, since `content` cannot be read twice; if the server session had
    /// expired, the session is renewed for the next call and the error returned.
    ///
    /// # Errors
    /// As [`Session::add_attachment`]; [`ErrorKind::Invalid`] also if `content` fails, ends before `len` bytes or
    /// has more; [`ErrorKind::Transport`] if the connection fails; [`ErrorKind::Unauthorized`] if the server session
    /// had expired (it is renewed: add the attachment again, with the record's new revision).
    pub async fn add_attachment_stream<R>(
        &self,
        entity: &EntityRef,
        rev: u64,
        content: R,
        len: u64,
    ) -> Result<(AttachmentId, u64)>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let (attachment_id, new_rev, sealer) = self
            .add_reference(entity, rev, |opened| {
                Ok(attachment::attachment_sealer(opened, len)?)
            })
            .await?;
        let (sealing, failure) = SealingReader::new(content, sealer, len);
        let id = entity.id;
        let uploaded = self
            .call_once(|c| async move {
                c.put_attachment_from(id, attachment_id, sealing, stream::encrypted_len(len))
                    .await
            })
            .await;
        match (uploaded, take_failure(&failure)) {
            (Ok(()), _) => Ok((attachment_id, new_rev)),
            // The client saw only that the body failed; the content's own error says why.
            (Err(_), Some(error)) | (Err(error), None) => Err(error),
        }
    }

    /// Downloads an attachment as a stream of its decrypted content, opened segment by segment as it arrives:
    /// memory holds about one segment, whatever the size. [`AttachmentStream::len`] is the content's length.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if the record or the attachment is not visible (or the attachment's content was never
    /// uploaded); [`ErrorKind::Crypto`] if the attachment's key does not open. A stream that does not open fails its
    /// reads instead (see [`AttachmentStream`]).
    pub async fn attachment_stream(
        &self,
        entity: &EntityRef,
        attachment_id: AttachmentId,
    ) -> Result<AttachmentStream> {
        let (opened, reference) = self.open_attachment_ref(entity, attachment_id).await?;
        let pending = attachment::pending_opener(&opened, &reference)?;
        let id = entity.id;
        let reader = self
            .call(|c| async move { c.attachment_reader(id, attachment_id, None).await })
            .await?;
        Ok(AttachmentStream::new(reader, pending, &reference))
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

    /// Checks that revision `rev` of a record is the stored one and that this owner may write it, adds the reference
    /// that `prepare` makes (with what the upload needs) to it, and stores the update: the step both ways of adding
    /// an attachment share. Returns the attachment's id, the record's new revision and what `prepare` made.
    async fn add_reference<T>(
        &self,
        entity: &EntityRef,
        rev: u64,
        prepare: impl FnOnce(&EntityKeys) -> Result<(AttachmentRef, T)>,
    ) -> Result<(AttachmentId, u64, T)> {
        let (stored, opened) = self.fetch_keys(entity).await?;
        check_rev(&stored, rev)?;
        check_write(&opened)?;
        let (reference, prepared) = prepare(&opened)?;
        let attachment_id = reference.id;
        // A new version, signed by this owner, that lists the attachment.
        let updated = tessera_sharing::revise(&stored, &opened, self.keys(), |updated| {
            updated.attachments.push(reference);
            Ok(())
        })?;
        let updated = &updated;
        let new_rev = self
            .call(|c| async move { c.update_entity(updated, rev).await })
            .await?;
        self.wrote(updated).await?;
        Ok((attachment_id, new_rev, prepared))
    }

    async fn open_attachment_ref(
        &self,
        entity: &EntityRef,
        attachment_id: AttachmentId,
    ) -> Result<(EntityKeys, AttachmentRef)> {
        let (stored, opened) = self.fetch_keys(entity).await?;
        let reference = stored
            .attachments
            .into_iter()
            .find(|a| a.id == attachment_id)
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
        opened: &EntityKeys,
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
