//! Hand-written canonical encodings: the exact bytes that are signed, MAC'd or fingerprinted.
//!
//! Never a serializer's output: `docs/formats.md` specifies every byte so that another implementation
//! computes the same signatures and fingerprints. Every encoding starts with a domain tag
//! `tessera/v1/<what>` and a zero byte, so bytes signed for one purpose never verify for another.

use crate::error::{Error, Result};

/// Builds a canonical byte string.
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    /// Starts an encoding with its domain tag and the separating zero byte.
    pub(crate) fn new(tag: &str) -> Self {
        let mut bytes = Vec::with_capacity(128);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(0);
        Self(bytes)
    }

    /// Starts an untagged encoding (for payloads that are sealed rather than signed).
    pub(crate) fn untagged() -> Self {
        Self(Vec::with_capacity(128))
    }

    pub(crate) fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Fixed-length field: its length is implied by the format.
    pub(crate) fn fixed(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// Variable-length field: a u32 big-endian length, then the bytes.
    pub(crate) fn var(mut self, bytes: &[u8]) -> Result<Self> {
        let len = u32::try_from(bytes.len()).map_err(|_| Error::Malformed {
            what: "canonical field",
            reason: "longer than 4 GiB",
        })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
        Ok(self)
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads a canonical byte string field by field (only for sealed payloads this layer also writes: key-bag entries
/// and the exchange data inside inbox messages).
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Self { rest: bytes, what }
    }

    pub(crate) fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, tail) = self.rest.split_at_checked(N).ok_or(Error::Malformed {
            what: self.what,
            reason: "too short",
        })?;
        self.rest = tail;
        head.try_into().map_err(|_| Error::Malformed {
            what: self.what,
            reason: "too short",
        })
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        let [byte] = self.fixed::<1>()?;
        Ok(byte)
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.fixed()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(self.fixed()?))
    }

    /// A variable-length field as [`Writer::var`] writes it.
    pub(crate) fn var(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.u32()?).map_err(|_| self.short())?;
        let (head, tail) = self
            .rest
            .split_at_checked(len)
            .ok_or_else(|| self.short())?;
        self.rest = tail;
        Ok(head)
    }

    fn short(&self) -> Error {
        Error::Malformed {
            what: self.what,
            reason: "too short",
        }
    }

    pub(crate) fn end(self) -> Result<()> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::Malformed {
                what: self.what,
                reason: "trailing bytes",
            })
        }
    }
}
