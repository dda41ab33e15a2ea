//! The one error type of the storage layer.

/// What can go wrong in a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A write named a revision that is not the stored one (or expected no record where one exists); nothing changed.
    #[error(
        "{what} is at {}, the write expected {}",
        revision(*.actual),
        revision(*.expected)
    )]
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

/// A revision as a person reads it: `revision 8`, or `no revision` for a record that does not exist.
fn revision(revision: Option<u64>) -> String {
    revision.map_or_else(|| "no revision".to_owned(), |rev| format!("revision {rev}"))
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_name_revisions_as_numbers() {
        let error = Error::Conflict {
            what: "entity",
            expected: Some(7),
            actual: Some(8),
        };
        assert_eq!(
            error.to_string(),
            "entity is at revision 8, the write expected revision 7"
        );
        let error = Error::Conflict {
            what: "owner",
            expected: None,
            actual: Some(1),
        };
        assert_eq!(
            error.to_string(),
            "owner is at revision 1, the write expected no revision"
        );
    }
}
