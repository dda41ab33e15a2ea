//! The one error type of the storage layer.

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A write named a revision that is not the stored one (or expected no record where one exists); nothing changed.
    #[error("conflict: {what} is at revision {actual:?}, the write expected {expected:?}")]
    Conflict {
        /// What conflicted.
        what: &'static str,
        /// The revision the write named (`None`: it expected no record).
        expected: Option<u64>,
        /// The stored revision (`None`: there is no record).
        actual: Option<u64>,
    },

    /// The record to update or delete does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),

    /// A write's input does not fit what it writes to (an attachment chunk longer than its place in the stream, an
    /// upload finished with a length its staged chunks do not make); nothing changed.
    #[error("invalid {0}")]
    Invalid(&'static str),

    /// Stored bytes do not decode: the database is damaged or from an incompatible version.
    #[error("stored {0} is corrupt")]
    Corrupt(&'static str),

    /// The backend failed (I/O, database engine); the engine's own error is the source.
    #[error("storage backend failed: {what}")]
    Backend {
        /// What the store was doing.
        what: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
