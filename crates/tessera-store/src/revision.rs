//! Revision checks shared by every backend, so that they all answer a stale write the same way.

use crate::error::{Error, Result};
use crate::store::Revision;

/// The revision a write of a versioned record (owner, exchange data) gives, or the conflict it causes.
///
/// `expected = None` asks for a new record; `Some(rev)` asks to replace revision `rev`. A missing record that
/// the write expected to exist is a conflict too (`actual: None`), as the trait documents for these records.
pub(crate) fn next(
    what: &'static str,
    stored: Option<Revision>,
    expected: Option<Revision>,
) -> Result<Revision> {
    match (stored, expected) {
        (None, None) => Ok(1),
        (Some(actual), Some(wanted)) if actual == wanted => successor(actual),
        (actual, expected) => Err(Error::Conflict {
            what,
            expected,
            actual,
        }),
    }
}

/// The revision an update or delete of the entity stored at `stored` gives, when it names revision `expected`.
///
/// # Errors
/// [`Error::NotFound`] if there is no such entity, [`Error::Conflict`] if `expected` is stale.
pub(crate) fn next_entity(stored: Option<Revision>, expected: Revision) -> Result<Revision> {
    let Some(actual) = stored else {
        return Err(Error::NotFound("entity"));
    };
    if actual != expected {
        return Err(Error::Conflict {
            what: "entity",
            expected: Some(expected),
            actual: Some(actual),
        });
    }
    successor(actual)
}

/// The conflict of a create whose id is taken (by a stored record at `actual`, or earlier in the same batch).
pub(crate) fn exists(what: &'static str, actual: Revision) -> Error {
    Error::Conflict {
        what,
        expected: None,
        actual: Some(actual),
    }
}

/// `rev + 1`. Revisions start at 1 and grow by one per write, so only a damaged store reaches `u64::MAX`.
fn successor(rev: Revision) -> Result<Revision> {
    rev.checked_add(1).ok_or(Error::Corrupt("revision"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_records() {
        assert_eq!(next("owner", None, None).ok(), Some(1));
        assert_eq!(next("owner", Some(3), Some(3)).ok(), Some(4));
        for (stored, expected) in [(Some(3), Some(2)), (Some(3), None), (None, Some(1))] {
            let Err(Error::Conflict {
                what,
                expected: e,
                actual,
            }) = next("owner", stored, expected)
            else {
                panic!("{stored:?} {expected:?} must conflict");
            };
            assert_eq!((what, e, actual), ("owner", expected, stored));
        }
        assert!(matches!(
            next("owner", Some(u64::MAX), Some(u64::MAX)),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn entities() {
        assert_eq!(next_entity(Some(1), 1).ok(), Some(2));
        assert!(matches!(
            next_entity(None, 1),
            Err(Error::NotFound("entity"))
        ));
        assert!(matches!(
            next_entity(Some(2), 1),
            Err(Error::Conflict {
                expected: Some(1),
                actual: Some(2),
                ..
            })
        ));
    }
}
