//! Sharing rules as pure functions, used by clients before sending and by the server before storing
//! (DESIGN.md §6). A rule that fails changes nothing.

use std::collections::{BTreeSet, VecDeque};

use tessera_keys::DelegationKey;

use crate::error::{Error, Result, RuleViolation};
use crate::model::{EncryptedEntity, Permission, SecurityMetadata, ShareEntry};

/// The root delegation (the one without parents).
///
/// # Errors
/// [`RuleViolation::NoRoot`] or [`RuleViolation::SeveralRoots`].
pub fn root(metadata: &SecurityMetadata) -> Result<DelegationKey> {
    let mut roots = metadata
        .delegations
        .iter()
        .filter(|(_, d)| d.parents.is_empty())
        .map(|(key, _)| *key);
    match (roots.next(), roots.next()) {
        (Some(root), None) => Ok(root),
        (None, _) => Err(RuleViolation::NoRoot.into()),
        (Some(_), Some(_)) => Err(RuleViolation::SeveralRoots(2 + roots.count()).into()),
    }
}

/// Checks a whole metadata: one root that grants write, every parent present, permissions never widening along an
/// edge, and every delegation leading back to the root (no cycles, nothing detached).
///
/// # Errors
/// The first [`RuleViolation`] found.
pub fn validate_metadata(metadata: &SecurityMetadata) -> Result<()> {
    let root = root(metadata)?;
    let root_delegation = metadata
        .delegations
        .get(&root)
        .ok_or(RuleViolation::NoRoot)?;
    if root_delegation.permission != Permission::Write {
        return Err(RuleViolation::RootNotWrite.into());
    }
    for (key, delegation) in &metadata.delegations {
        for parent in &delegation.parents {
            let parent_delegation =
                metadata
                    .delegations
                    .get(parent)
                    .ok_or(RuleViolation::MissingParent {
                        child: *key,
                        parent: *parent,
                    })?;
            if delegation.permission > parent_delegation.permission {
                return Err(RuleViolation::PermissionWidened {
                    child: *key,
                    parent: *parent,
                }
                .into());
            }
        }
    }
    // Every delegation must be reachable from the root along child edges.
    let reachable = descendants(metadata, &root);
    if let Some(detached) = metadata.delegations.keys().find(|k| !reachable.contains(k)) {
        return Err(RuleViolation::Detached(*detached).into());
    }
    Ok(())
}

/// Checks a newly created entity: content version 1, key epoch 0, and valid metadata with exactly one root.
///
/// # Errors
/// The first [`RuleViolation`] found.
pub fn validate_new_entity(entity: &EncryptedEntity) -> Result<()> {
    if entity.content_version != 1 || entity.key_epoch != 0 {
        return Err(RuleViolation::InconsistentRequest(
            "a new entity starts at content version 1 and key epoch 0",
        )
        .into());
    }
    validate_metadata(&entity.security_metadata)
}

/// Checks a plain update: the id, type, key commitment, key epoch and security metadata are unchanged, and the
/// content version is the stored one plus one.
///
/// # Errors
/// [`RuleViolation::Immutable`] naming what changed.
pub fn validate_update(stored: &EncryptedEntity, update: &EncryptedEntity) -> Result<()> {
    if stored.content_version.checked_add(1) != Some(update.content_version) {
        return Err(RuleViolation::InconsistentRequest(
            "an update carries the stored content version plus one",
        )
        .into());
    }
    let unchanged = [
        (stored.key_epoch == update.key_epoch, "the key epoch"),
        (stored.id == update.id, "the id"),
        (stored.entity_type == update.entity_type, "the entity type"),
        (
            stored.key_commitment == update.key_commitment,
            "the key commitment",
        ),
        (
            stored.security_metadata == update.security_metadata,
            "the security metadata",
        ),
    ];
    match unchanged.iter().find(|(same, _)| !same) {
        Some((_, what)) => Err(RuleViolation::Immutable(what).into()),
        None => Ok(()),
    }
}

/// Checks share entries for one entity: each adds a new delegation (never overwriting, never twice), names parents
/// that exist, at least one of which the requester holds, and grants no more than any parent.
///
/// `requester_holds` says whether the requester proved access to a delegation key.
///
/// # Errors
/// The first [`RuleViolation`] found.
pub fn validate_share(
    entity: &EncryptedEntity,
    entries: &[ShareEntry],
    requester_holds: impl Fn(&DelegationKey) -> bool,
) -> Result<()> {
    let metadata = &entity.security_metadata;
    let mut added = BTreeSet::new();
    for entry in entries {
        if entry.entity_id != entity.id {
            return Err(RuleViolation::InconsistentRequest("an entry names another entity").into());
        }
        let key = entry.delegation_key;
        if metadata.delegations.contains_key(&key) || !added.insert(key) {
            return Err(RuleViolation::DelegationExists(key).into());
        }
        let delegation = &entry.delegation;
        if delegation.parents.is_empty() {
            return Err(RuleViolation::NoParent.into());
        }
        for parent in &delegation.parents {
            let parent_delegation =
                metadata
                    .delegations
                    .get(parent)
                    .ok_or(RuleViolation::MissingParent {
                        child: key,
                        parent: *parent,
                    })?;
            if delegation.permission > parent_delegation.permission {
                return Err(RuleViolation::PermissionWidened {
                    child: key,
                    parent: *parent,
                }
                .into());
            }
        }
        if !delegation.parents.iter().any(&requester_holds) {
            let parent = delegation.parents.iter().next().copied().unwrap_or(key);
            return Err(RuleViolation::ParentNotAccessible(parent).into());
        }
    }
    Ok(())
}

/// Validates share entries for `entity` and adds them.
///
/// # Errors
/// As [`validate_share`]; on error the entity is unchanged.
pub fn apply_share(
    entity: &mut EncryptedEntity,
    entries: &[ShareEntry],
    requester_holds: impl Fn(&DelegationKey) -> bool,
) -> Result<()> {
    validate_share(entity, entries, requester_holds)?;
    for entry in entries {
        entity
            .security_metadata
            .delegations
            .insert(entry.delegation_key, entry.delegation.clone());
    }
    Ok(())
}

/// The delegations a revocation of `target` removes: `target` and all its descendants.
///
/// # Errors
/// [`RuleViolation::UnknownDelegation`] or [`RuleViolation::RevokeRoot`].
pub fn revocation_set(
    metadata: &SecurityMetadata,
    target: &DelegationKey,
) -> Result<BTreeSet<DelegationKey>> {
    let delegation = metadata
        .delegations
        .get(target)
        .ok_or(RuleViolation::UnknownDelegation(*target))?;
    if delegation.parents.is_empty() {
        return Err(RuleViolation::RevokeRoot.into());
    }
    Ok(descendants(metadata, target))
}

/// Checks that the requester may revoke `target`: it holds `target` itself or one of its ancestors.
///
/// # Errors
/// As [`revocation_set`], or [`RuleViolation::NotAnAncestor`].
pub fn validate_revoke(
    metadata: &SecurityMetadata,
    target: &DelegationKey,
    requester_holds: impl Fn(&DelegationKey) -> bool,
) -> Result<BTreeSet<DelegationKey>> {
    let removed = revocation_set(metadata, target)?;
    if !ancestors(metadata, target).iter().any(&requester_holds) {
        return Err(RuleViolation::NotAnAncestor(*target).into());
    }
    Ok(removed)
}

/// Revokes `target` and its descendants from `entity` after checking the requester may.
///
/// # Errors
/// As [`validate_revoke`]; on error the entity is unchanged.
pub fn apply_revoke(
    entity: &mut EncryptedEntity,
    target: &DelegationKey,
    requester_holds: impl Fn(&DelegationKey) -> bool,
) -> Result<BTreeSet<DelegationKey>> {
    let removed = validate_revoke(&entity.security_metadata, target, requester_holds)?;
    entity
        .security_metadata
        .delegations
        .retain(|key, _| !removed.contains(key));
    Ok(removed)
}

/// Checks a rotation (revoke-and-rotate) against the stored entity: same id and type, the requester holds the root,
/// the remaining delegations are a subset of the stored ones with the same parties, parents and permissions, and
/// the resulting metadata is valid.
///
/// # Errors
/// The first [`RuleViolation`] found.
pub fn validate_rotation(
    stored: &EncryptedEntity,
    rotated: &EncryptedEntity,
    requester_holds: impl Fn(&DelegationKey) -> bool,
) -> Result<()> {
    if stored.id != rotated.id {
        return Err(RuleViolation::Immutable("the id").into());
    }
    if stored.entity_type != rotated.entity_type {
        return Err(RuleViolation::Immutable("the entity type").into());
    }
    let root = root(&stored.security_metadata)?;
    if !requester_holds(&root) {
        return Err(RuleViolation::WriteRequired.into());
    }
    if stored.key_epoch.checked_add(1) != Some(rotated.key_epoch)
        || stored.content_version.checked_add(1) != Some(rotated.content_version)
    {
        return Err(RuleViolation::InconsistentRequest(
            "a rotation carries the stored key epoch and content version plus one",
        )
        .into());
    }
    for (key, delegation) in &rotated.security_metadata.delegations {
        let before = stored.security_metadata.delegations.get(key).ok_or(
            RuleViolation::InconsistentRequest("a rotation cannot add delegations"),
        )?;
        let same_shape = before.delegator == delegation.delegator
            && before.delegate == delegation.delegate
            && before.exchange_data_id == delegation.exchange_data_id
            && before.parents == delegation.parents
            && before.permission == delegation.permission;
        if !same_shape {
            return Err(RuleViolation::InconsistentRequest(
                "a rotation cannot change who a delegation is for or what it grants",
            )
            .into());
        }
    }
    validate_metadata(&rotated.security_metadata)
}

/// `start` and every delegation below it.
pub fn descendants(metadata: &SecurityMetadata, start: &DelegationKey) -> BTreeSet<DelegationKey> {
    let mut found = BTreeSet::from([*start]);
    let mut queue = VecDeque::from([*start]);
    while let Some(current) = queue.pop_front() {
        for (key, delegation) in &metadata.delegations {
            if delegation.parents.contains(&current) && found.insert(*key) {
                queue.push_back(*key);
            }
        }
    }
    found
}

/// `start` and every delegation above it.
pub fn ancestors(metadata: &SecurityMetadata, start: &DelegationKey) -> BTreeSet<DelegationKey> {
    let mut found = BTreeSet::from([*start]);
    let mut queue = VecDeque::from([*start]);
    while let Some(current) = queue.pop_front() {
        if let Some(delegation) = metadata.delegations.get(&current) {
            for parent in &delegation.parents {
                if found.insert(*parent) {
                    queue.push_back(*parent);
                }
            }
        }
    }
    found
}

/// Whether `error` is a rule violation (a 4xx for the server) rather than a cryptographic or internal failure.
pub fn is_rule_violation(error: &Error) -> bool {
    matches!(error, Error::Rule(_))
}
