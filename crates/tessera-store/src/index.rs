//! The secondary indexes of entities: which delegation keys and search tags an entity is found under, and what
//! an update adds to and removes from them. Shared by every backend so that they keep the same indexes.

use std::collections::BTreeSet;

use tessera_keys::DelegationKey;
use tessera_sharing::{EncryptedEntity, SearchTag};

/// The index keys of one entity.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IndexKeys {
    /// Keys of its delegations.
    pub(crate) delegation_keys: BTreeSet<DelegationKey>,
    /// Its search tags.
    pub(crate) search_tags: BTreeSet<SearchTag>,
}

impl IndexKeys {
    /// The index keys of `entity` (none for `None`, a missing entity).
    pub(crate) fn of(entity: Option<&EncryptedEntity>) -> Self {
        let Some(entity) = entity else {
            return Self::default();
        };
        Self {
            delegation_keys: entity
                .security_metadata
                .delegations
                .keys()
                .copied()
                .collect(),
            search_tags: entity.secret_foreign_keys.clone(),
        }
    }

    /// The keys in `self` but not in `other`: what to remove when `self` is replaced by `other`, or what to add
    /// when `other` is replaced by `self`.
    pub(crate) fn minus(&self, other: &Self) -> Self {
        Self {
            delegation_keys: self
                .delegation_keys
                .difference(&other.delegation_keys)
                .copied()
                .collect(),
            search_tags: self
                .search_tags
                .difference(&other.search_tags)
                .copied()
                .collect(),
        }
    }
}

/// The index entries a write that replaces `before` by `after` removes and adds, as `(removed, added)`.
/// A create has no `before`, a delete no `after`.
pub(crate) fn changes(
    before: Option<&EncryptedEntity>,
    after: Option<&EncryptedEntity>,
) -> (IndexKeys, IndexKeys) {
    let before = IndexKeys::of(before);
    let after = IndexKeys::of(after);
    (before.minus(&after), after.minus(&before))
}
