//! The canonical byte strings statements and proofs are encoded in: fixed fields, big-endian integers, u32-length
//! prefixed variable fields, after an optional tag.

use crate::error::{Error, Result};

/// A canonical byte string under construction (the sharing layer's counterpart of the key layer's writer).
pub(crate) struct Enc(Vec<u8>);

impl Enc {
    pub(crate) fn tagged(tag: &str) -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(0);
        Self(bytes)
    }

    pub(crate) fn untagged() -> Self {
        Self(Vec::with_capacity(256))
    }

    pub(crate) fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub(crate) fn u16(mut self, value: u16) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn fixed(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// A u32 length, then the bytes.
    pub(crate) fn var(self, bytes: &[u8]) -> Result<Self> {
        let len = u32::try_from(bytes.len()).map_err(|_| Error::Malformed {
            what: "canonical field",
            reason: "longer than 4 GiB",
        })?;
        Ok(self.u32(len).fixed(bytes))
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads what [`Enc`] wrote. Everything read this way came out of a sealed box, so any inconsistency is a
/// [`Error::Crypto`].
pub(crate) struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Crypto);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Error::Crypto)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// `count` hashes of 32 bytes, read into one allocation (after checking that they are all there).
    pub(super) fn hashes(&mut self, count: usize) -> Result<Vec<[u8; 32]>> {
        let bytes = self.take(count.checked_mul(32).ok_or(Error::Crypto)?)?;
        let mut hashes = Vec::with_capacity(count);
        for chunk in bytes.chunks_exact(32) {
            hashes.push(chunk.try_into().map_err(|_| Error::Crypto)?);
        }
        Ok(hashes)
    }

    pub(crate) fn var(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.u32()?).map_err(|_| Error::Crypto)?;
        self.take(len)
    }

    pub(crate) fn end(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Crypto)
        }
    }
}
