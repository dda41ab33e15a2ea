//! Streaming AEAD for attachments: AES-256-GCM over 64 KiB segments with STREAM nonces.
//!
//! Layout: `version(1) ‖ alg(1) ‖ nonce prefix(7)` then segments of `ciphertext ‖ tag(16)`, each sealing
//! [`SEGMENT_LEN`] bytes of plaintext except the last, which seals 0 to [`SEGMENT_LEN`] bytes.
//! Segment `i` uses the nonce `prefix ‖ i (u32, big-endian) ‖ last (0 or 1)` (Hoang, Reyhanitabar, Rogaway, Vizár,
//! "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", the STREAM construction), so
//! any segment opens alone (random access), while truncation, reordering, duplication and extension
//! make some segment fail to open. Every segment authenticates the caller's associated data.

use std::io::{self, Read, Write};
use std::ops::Range;

use crate::aead::{AeadKey, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::random;

/// Plaintext bytes per segment (64 KiB).
pub const SEGMENT_LEN: usize = 64 * 1024;
/// Bytes of a full encrypted segment (plaintext plus tag).
pub const ENCRYPTED_SEGMENT_LEN: usize = SEGMENT_LEN + TAG_LEN;
/// Format version byte of a stream.
pub const STREAM_VERSION: u8 = 1;
/// Algorithm byte of AES-256-GCM STREAM with 64 KiB segments.
pub const ALG_AES_256_GCM_STREAM_64K: u8 = 2;
/// Length of the random nonce prefix.
pub const NONCE_PREFIX_LEN: usize = 7;
/// Length of the stream header: version, algorithm, nonce prefix.
pub const HEADER_LEN: usize = 2 + NONCE_PREFIX_LEN;

/// Number of segments a plaintext of `plaintext_len` bytes is sealed into (an empty plaintext has one, empty, segment).
pub fn segment_count(plaintext_len: u64) -> u64 {
    plaintext_len.div_ceil(SEGMENT_LEN as u64).max(1)
}

/// Length of the sealed stream of a plaintext of `plaintext_len` bytes.
pub fn encrypted_len(plaintext_len: u64) -> u64 {
    HEADER_LEN as u64 + plaintext_len + segment_count(plaintext_len) * TAG_LEN as u64
}

/// Where each segment of a sealed stream of known total length lies, for ranged reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLayout {
    encrypted_len: u64,
    segments: u32,
}

impl StreamLayout {
    /// The layout of a sealed stream of `encrypted_len` bytes, header included.
    ///
    /// # Errors
    /// [`Error::Crypto`] if no stream sealed by this module has that length.
    pub fn from_encrypted_len(encrypted_len: u64) -> Result<Self> {
        let body = encrypted_len
            .checked_sub(HEADER_LEN as u64)
            .ok_or(Error::Crypto)?;
        let full = body / ENCRYPTED_SEGMENT_LEN as u64;
        let rest = body % ENCRYPTED_SEGMENT_LEN as u64;
        let segments = match rest {
            0 if full > 0 => full,
            0 => return Err(Error::Crypto),
            r if r < TAG_LEN as u64 => return Err(Error::Crypto),
            _ => full + 1,
        };
        let segments = u32::try_from(segments).map_err(|_| Error::Crypto)?;
        Ok(Self {
            encrypted_len,
            segments,
        })
    }

    /// Length of the plaintext the stream holds: the inverse of [`encrypted_len`].
    pub fn plaintext_len(&self) -> u64 {
        // `from_encrypted_len` admits only lengths that hold the header and one tag per segment.
        self.encrypted_len
            .saturating_sub(HEADER_LEN as u64)
            .saturating_sub(u64::from(self.segments) * TAG_LEN as u64)
    }

    /// Number of segments.
    pub fn segments(&self) -> u32 {
        self.segments
    }

    /// Whether segment `index` is the last one.
    pub fn is_last(&self, index: u32) -> bool {
        index.checked_add(1) == Some(self.segments)
    }

    /// Byte range of segment `index` within the sealed stream (header included in the offsets),
    /// or `None` past the end.
    pub fn segment_range(&self, index: u32) -> Option<Range<u64>> {
        if index >= self.segments {
            return None;
        }
        let start = HEADER_LEN as u64 + u64::from(index) * ENCRYPTED_SEGMENT_LEN as u64;
        let end = (start + ENCRYPTED_SEGMENT_LEN as u64).min(self.encrypted_len);
        Some(start..end)
    }

    /// Segment holding plaintext offset `offset`.
    pub fn segment_of_plaintext_offset(offset: u64) -> u64 {
        offset / SEGMENT_LEN as u64
    }
}

/// Seals a stream segment by segment: the building block for [`StreamWriter`] and for async code.
///
/// Every segment but the last must hold exactly [`SEGMENT_LEN`] bytes of plaintext.
#[derive(Debug)]
pub struct StreamSealer {
    key: AeadKey,
    prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
    next: u32,
    finished: bool,
}

impl StreamSealer {
    /// Starts a stream under `key` with a fresh random nonce prefix, authenticating `aad` in every segment.
    ///
    /// # Errors
    /// [`Error::Randomness`] if no prefix can be drawn.
    pub fn new(key: AeadKey, aad: &[u8]) -> Result<Self> {
        Ok(Self {
            key,
            prefix: random::array()?,
            aad: aad.to_vec(),
            next: 0,
            finished: false,
        })
    }

    /// The header that starts the sealed stream.
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[0] = STREAM_VERSION;
        header[1] = ALG_AES_256_GCM_STREAM_64K;
        header[2..].copy_from_slice(&self.prefix);
        header
    }

    /// Index the next sealed segment will have.
    pub fn next_index(&self) -> u32 {
        self.next
    }

    /// Seals `plaintext` as the next segment and returns `ciphertext ‖ tag`.
    ///
    /// # Errors
    /// See [`StreamSealer::seal_segment_in_place`].
    pub fn seal_segment(&mut self, plaintext: &[u8], last: bool) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.seal_segment_in_place(&mut buf, last)?;
        Ok(buf)
    }

    /// Encrypts the plaintext in `buf` in place as the next segment and appends its tag.
    ///
    /// # Errors
    /// [`Error::StreamState`] after the last segment, when the counter is exhausted, or for a non-last
    /// segment that is not exactly [`SEGMENT_LEN`] bytes; [`Error::Length`] for a segment over [`SEGMENT_LEN`].
    pub fn seal_segment_in_place(&mut self, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let tag = self.seal_segment_in_slice(buf, last)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Seals `plaintext` as the whole stream, header included, writing each byte once: for a sealer made for one
    /// in-memory plaintext (whose key and associated data the caller chose, [`seal_all`] being the usual way).
    ///
    /// # Errors
    /// [`Error::StreamState`] if a segment was sealed already or past 2³² segments.
    pub fn seal_whole(mut self, plaintext: &[u8]) -> Result<Vec<u8>> {
        if self.next != 0 || self.finished {
            return Err(Error::StreamState("a whole stream needs a fresh sealer"));
        }
        let total = usize::try_from(encrypted_len(plaintext.len() as u64))
            .map_err(|_| Error::StreamState("stream too long"))?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&self.header());
        let segments = segment_count(plaintext.len() as u64);
        for index in 0..segments {
            let start = (index as usize).saturating_mul(SEGMENT_LEN);
            let end = start.saturating_add(SEGMENT_LEN).min(plaintext.len());
            let chunk = plaintext.get(start..end).unwrap_or_default();
            let at = out.len();
            out.extend_from_slice(chunk);
            let segment = out.get_mut(at..).unwrap_or_default();
            let tag = self.seal_segment_in_slice(segment, index + 1 == segments)?;
            out.extend_from_slice(&tag);
        }
        Ok(out)
    }

    fn seal_segment_in_slice(&mut self, plaintext: &mut [u8], last: bool) -> Result<[u8; TAG_LEN]> {
        if self.finished {
            return Err(Error::StreamState("segment sealed after the last one"));
        }
        if plaintext.len() > SEGMENT_LEN {
            return Err(Error::Length {
                what: "stream segment",
                expected: SEGMENT_LEN,
                actual: plaintext.len(),
            });
        }
        if !last && plaintext.len() != SEGMENT_LEN {
            return Err(Error::StreamState(
                "only the last segment may be shorter than 64 KiB",
            ));
        }
        let index = self.next;
        if !last {
            self.next = index
                .checked_add(1)
                .ok_or(Error::StreamState("segment counter exhausted"))?;
        }
        self.finished = last;
        let nonce = segment_nonce(&self.prefix, index, last);
        self.key.seal_in_place(&nonce, &self.aad, plaintext)
    }
}

/// Opens segments of a sealed stream, in any order (random access).
#[derive(Debug)]
pub struct StreamOpener {
    key: AeadKey,
    prefix: [u8; NONCE_PREFIX_LEN],
    aad: Vec<u8>,
}

impl StreamOpener {
    /// Prepares to open the stream that starts with `header`, under `key` and `aad`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the header is not a stream header this module knows.
    pub fn new(key: AeadKey, header: &[u8], aad: &[u8]) -> Result<Self> {
        let [version, alg, prefix @ ..] = header else {
            return Err(Error::Crypto);
        };
        if *version != STREAM_VERSION || *alg != ALG_AES_256_GCM_STREAM_64K {
            return Err(Error::Crypto);
        }
        Ok(Self {
            key,
            prefix: prefix.try_into().map_err(|_| Error::Crypto)?,
            aad: aad.to_vec(),
        })
    }

    /// Opens segment `index` (`ciphertext ‖ tag`); `last` says whether the caller expects it to end the stream.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the segment is not segment `index` of this stream with that `last` flag.
    pub fn open_segment(&self, index: u32, segment: &[u8], last: bool) -> Result<Vec<u8>> {
        let mut buf = segment.to_vec();
        self.open_segment_in_place(index, &mut buf, last)?;
        Ok(buf)
    }

    /// Opens segment `index` held in `buf` in place, leaving only its plaintext.
    ///
    /// # Errors
    /// As [`StreamOpener::open_segment`]; on failure `buf` is emptied.
    pub fn open_segment_in_place(&self, index: u32, buf: &mut Vec<u8>, last: bool) -> Result<()> {
        let result = self.open_in_slice(index, buf, last);
        match result {
            Ok(len) => buf.truncate(len),
            Err(_) => buf.clear(),
        }
        result.map(|_| ())
    }

    /// Opens the segment in `segment` in place and returns its plaintext length.
    fn open_in_slice(&self, index: u32, segment: &mut [u8], last: bool) -> Result<usize> {
        let len = segment.len();
        let valid_len = if last {
            (TAG_LEN..=ENCRYPTED_SEGMENT_LEN).contains(&len)
        } else {
            len == ENCRYPTED_SEGMENT_LEN
        };
        if !valid_len {
            return Err(Error::Crypto);
        }
        let plaintext_len = len - TAG_LEN;
        let (ciphertext, tag) = segment.split_at_mut(plaintext_len);
        let tag: &[u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Crypto)?;
        let nonce = segment_nonce(&self.prefix, index, last);
        self.key.open_in_place(&nonce, &self.aad, ciphertext, tag)?;
        Ok(plaintext_len)
    }
}

/// Seals a whole in-memory plaintext as a stream, writing each byte once.
///
/// # Errors
/// [`Error::Randomness`] if no nonce prefix can be drawn; [`Error::StreamState`] past 2³² segments.
pub fn seal_all(key: AeadKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    StreamSealer::new(key, aad)?.seal_whole(plaintext)
}

/// Opens a whole in-memory sealed stream.
///
/// # Errors
/// [`Error::Crypto`] if any segment fails to open or the stream was truncated, reordered or extended.
pub fn open_all(key: AeadKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
    let layout = StreamLayout::from_encrypted_len(sealed.len() as u64)?;
    let header = sealed.get(..HEADER_LEN).ok_or(Error::Crypto)?;
    let opener = StreamOpener::new(key, header, aad)?;
    let body = sealed.get(HEADER_LEN..).ok_or(Error::Crypto)?;
    let mut out = Vec::with_capacity(body.len());
    for (index, segment) in (0..layout.segments()).zip(body.chunks(ENCRYPTED_SEGMENT_LEN)) {
        let start = out.len();
        out.extend_from_slice(segment);
        let opened = opener.open_in_slice(
            index,
            out.get_mut(start..).ok_or(Error::Crypto)?,
            layout.is_last(index),
        );
        match opened {
            Ok(len) => out.truncate(start + len),
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut out);
                return Err(e);
            }
        }
    }
    Ok(out)
}

/// Seals everything written to it into `inner` as a stream; call [`StreamWriter::finish`] at the end.
///
/// A writer dropped without `finish` leaves a stream without its last segment, which readers reject.
#[derive(Debug)]
pub struct StreamWriter<W: Write> {
    sealer: StreamSealer,
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> StreamWriter<W> {
    /// Writes the stream header to `inner` and returns the writer.
    ///
    /// # Errors
    /// [`Error::Randomness`] if no nonce prefix can be drawn; [`Error::Io`] if the header cannot be written.
    pub fn new(key: AeadKey, aad: &[u8], mut inner: W) -> Result<Self> {
        let sealer = StreamSealer::new(key, aad)?;
        inner.write_all(&sealer.header())?;
        Ok(Self {
            sealer,
            inner,
            buf: Vec::with_capacity(ENCRYPTED_SEGMENT_LEN),
        })
    }

    /// Seals the buffered rest as the last segment, flushes, and returns the inner writer.
    ///
    /// # Errors
    /// [`Error::Io`] if writing fails; [`Error::StreamState`] if the counter is exhausted.
    pub fn finish(mut self) -> Result<W> {
        self.sealer.seal_segment_in_place(&mut self.buf, true)?;
        self.inner.write_all(&self.buf)?;
        self.inner.flush()?;
        Ok(self.inner)
    }

    fn seal_full_buffer(&mut self) -> io::Result<()> {
        self.sealer
            .seal_segment_in_place(&mut self.buf, false)
            .map_err(io::Error::other)?;
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl<W: Write> Write for StreamWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        // A full buffer is sealed only once more data arrives, so that `finish` can mark the true last segment.
        if self.buf.len() == SEGMENT_LEN {
            self.seal_full_buffer()?;
        }
        let take = (SEGMENT_LEN - self.buf.len()).min(data.len());
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads and opens a stream sealed by [`StreamWriter`] or [`seal_all`], segment by segment.
///
/// Any failure, including truncation or extension of the stream, is an [`io::Error`] of kind
/// [`io::ErrorKind::InvalidData`] wrapping [`Error::Crypto`]; no plaintext of a failed segment is returned.
#[derive(Debug)]
pub struct StreamReader<R: Read> {
    opener: StreamOpener,
    inner: R,
    index: u32,
    /// One encrypted segment plus one look-ahead byte, allocated once.
    raw: Vec<u8>,
    /// Whether `raw[ENCRYPTED_SEGMENT_LEN]` holds the first byte of the next segment.
    carried: bool,
    plaintext_pos: usize,
    plaintext_len: usize,
    done: bool,
}

impl<R: Read> StreamReader<R> {
    /// Reads the header from `inner` and prepares to open the stream under `key` and `aad`.
    ///
    /// # Errors
    /// [`Error::Crypto`] if the header is missing or unknown; [`Error::Io`] if reading fails.
    pub fn new(key: AeadKey, aad: &[u8], mut inner: R) -> Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        if read_up_to(&mut inner, &mut header)? != HEADER_LEN {
            return Err(Error::Crypto);
        }
        Ok(Self {
            opener: StreamOpener::new(key, &header, aad)?,
            inner,
            index: 0,
            raw: vec![0; ENCRYPTED_SEGMENT_LEN + 1],
            carried: false,
            plaintext_pos: 0,
            plaintext_len: 0,
            done: false,
        })
    }

    /// Reads and opens the next segment into `raw[..plaintext_len]`.
    fn next_segment(&mut self) -> Result<()> {
        // Read one byte beyond a full segment: if it exists, this segment is not the last.
        let start = if self.carried {
            self.raw.copy_within(ENCRYPTED_SEGMENT_LEN.., 0);
            1
        } else {
            0
        };
        let read = read_up_to(
            &mut self.inner,
            self.raw.get_mut(start..).unwrap_or_default(),
        )?;
        let available = start + read;
        let last = available <= ENCRYPTED_SEGMENT_LEN;
        let segment_len = available.min(ENCRYPTED_SEGMENT_LEN);
        let segment = self.raw.get_mut(..segment_len).ok_or(Error::Crypto)?;
        let opened = self.opener.open_in_slice(self.index, segment, last);
        let plaintext_len = opened.inspect_err(|_| {
            zeroize::Zeroize::zeroize(&mut self.raw);
            self.done = true;
        })?;
        self.carried = !last;
        self.plaintext_len = plaintext_len;
        self.plaintext_pos = 0;
        self.done = last;
        if !last {
            self.index = self.index.checked_add(1).ok_or(Error::Crypto)?;
        }
        Ok(())
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> StreamReader<R> {
    fn next_segment_io(&mut self) -> io::Result<()> {
        self.next_segment().map_err(|e| match e {
            Error::Io(io) => io,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        })
    }
}

impl<R: Read> Read for StreamReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.plaintext_pos == self.plaintext_len {
            if self.done {
                return Ok(0);
            }
            self.next_segment_io()?;
        }
        let available = self
            .raw
            .get(self.plaintext_pos..self.plaintext_len)
            .unwrap_or_default();
        let n = available.len().min(out.len());
        out.get_mut(..n)
            .unwrap_or_default()
            .copy_from_slice(available.get(..n).unwrap_or_default());
        self.plaintext_pos += n;
        Ok(n)
    }

    /// Appends whole opened segments, skipping the zero-filled scratch space of the default implementation.
    fn read_to_end(&mut self, out: &mut Vec<u8>) -> io::Result<usize> {
        let start = out.len();
        loop {
            let available = self
                .raw
                .get(self.plaintext_pos..self.plaintext_len)
                .unwrap_or_default();
            out.extend_from_slice(available);
            self.plaintext_pos = self.plaintext_len;
            if self.done {
                return Ok(out.len() - start);
            }
            self.next_segment_io()?;
        }
    }
}

fn segment_nonce(prefix: &[u8; NONCE_PREFIX_LEN], index: u32, last: bool) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
    nonce[NONCE_PREFIX_LEN..NONCE_LEN - 1].copy_from_slice(&index.to_be_bytes());
    nonce[NONCE_LEN - 1] = u8::from(last);
    nonce
}

/// Reads until `buf` is full or the reader is exhausted; returns the number of bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match reader.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
