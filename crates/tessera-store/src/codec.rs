//! The encoding of stored values, shared by the backends: bincode 1 with the wire's options (DESIGN.md §4).

use bincode::Options as _;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Largest encoded record; far above any request body the server accepts.
const MAX_RECORD_LEN: u64 = 64 << 20;

/// bincode 1 with varint integers, a size limit and trailing bytes refused: the wire's options, so a stored record
/// and a record in a request body are the same bytes.
fn options() -> impl bincode::Options + Copy {
    bincode::DefaultOptions::new()
        .with_limit(MAX_RECORD_LEN)
        .reject_trailing_bytes()
}

/// Encodes a record (`what` names it in the error).
pub(crate) fn encode<T: Serialize + ?Sized>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    options()
        .serialize(value)
        .map_err(|source| Error::Backend { what, source })
}

/// Decodes a stored record; bytes that do not decode are [`Error::Corrupt`] naming it.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    options()
        .deserialize(bytes)
        .map_err(|_| Error::Corrupt(what))
}
