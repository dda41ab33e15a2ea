//! The sharing rules the client and the server both apply: no widening, one root, no overwrite, parents the requester holds, metadata immutable through plain updates, rotations that only remove.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::BTreeSet;

use common::{Who, create_note, share_into, ty, violation, world};
use tessera_keys::DelegationKey;
use tessera_sharing::{
    DecryptedEntity, EncryptedEntity, EntityId, Error, Permission, RuleViolation, ShareEntry,
    decrypt, revoke_and_rotate, rules, share,
};

use Permission::{Read, Write};
use Who::{A, B, C, P};

fn dk(from: Who, to: Who) -> DelegationKey {
    world().dk(from, to, &ty("Note"))
}

/// A `Note` of A shared A → B (read) and A → P (write).
fn note() -> (EncryptedEntity, DecryptedEntity) {
    let w = world();
    let (mut entity, opened) = create_note(A);
    share_into(
        &mut entity,
        &opened,
        &[w.explicit(A, B, Read), w.explicit(A, P, Write)],
    );
    (entity, opened)
}

/// An entry A would send to share `entity` with C (read, under A's root).
fn entry_for_c(entity: &EncryptedEntity, opened: &DecryptedEntity) -> ShareEntry {
    let w = world();
    let mut entries = share(entity, opened, &[w.explicit(A, C, Read)], w.keys(A)).unwrap();
    assert_eq!(entries.len(), 1);
    entries.remove(0)
}

#[test]
fn a_client_cannot_grant_more_than_it_has() {
    let w = world();
    let (entity, _) = note();
    let by_b = decrypt(&entity, &w.access(B)).unwrap();
    assert_eq!(by_b.permission, Read);
    let result = share(&entity, &by_b, &[w.explicit(B, C, Write)], w.keys(B));
    assert_eq!(
        violation(result),
        RuleViolation::PermissionWidened {
            child: dk(B, C),
            parent: dk(A, B)
        }
    );
}

#[test]
fn the_server_refuses_a_forged_widening_entry() {
    let (entity, opened) = note();
    // An entry under B's read-only delegation that grants write.
    let mut forged = entry_for_c(&entity, &opened);
    forged.delegation.parents = BTreeSet::from([dk(A, B)]);
    forged.delegation.permission = Write;
    let b_holds = |k: &DelegationKey| *k == dk(A, B);
    assert_eq!(
        violation(rules::validate_share(&entity, &[forged.clone()], b_holds)),
        RuleViolation::PermissionWidened {
            child: dk(A, C),
            parent: dk(A, B)
        }
    );
    // One write parent among the parents is not enough: it may not exceed any of them.
    forged.delegation.parents = BTreeSet::from([dk(A, B), dk(A, P)]);
    assert_eq!(
        violation(rules::validate_share(&entity, &[forged.clone()], |_| true)),
        RuleViolation::PermissionWidened {
            child: dk(A, C),
            parent: dk(A, B)
        }
    );
    // Read under the same parents is fine.
    forged.delegation.permission = Read;
    rules::validate_share(&entity, &[forged], b_holds).unwrap();
}

#[test]
fn a_second_root_is_rejected() {
    let (entity, opened) = note();
    rules::validate_metadata(&entity.security_metadata).unwrap();
    let mut metadata = entity.security_metadata.clone();
    let mut second = metadata.delegations[&dk(A, P)].clone();
    second.parents.clear();
    metadata.delegations.insert(dk(A, C), second);
    assert_eq!(
        violation(rules::validate_metadata(&metadata)),
        RuleViolation::SeveralRoots(2)
    );
    assert_eq!(
        violation(rules::root(&metadata)),
        RuleViolation::SeveralRoots(2)
    );
    // As a share: an entry without a parent would be a second root.
    let mut entry = entry_for_c(&entity, &opened);
    entry.delegation.parents.clear();
    assert_eq!(
        violation(rules::validate_share(&entity, &[entry], |_| true)),
        RuleViolation::NoParent
    );
}

#[test]
fn metadata_needs_one_write_root_and_a_connected_tree() {
    let (entity, opened) = note();
    let root = opened.delegation_key;

    let mut no_root = entity.security_metadata.clone();
    no_root.delegations.remove(&root);
    assert_eq!(
        violation(rules::validate_metadata(&no_root)),
        RuleViolation::NoRoot
    );

    let mut read_root = entity.security_metadata.clone();
    read_root.delegations.get_mut(&root).unwrap().permission = Read;
    assert_eq!(
        violation(rules::validate_metadata(&read_root)),
        RuleViolation::RootNotWrite
    );

    let mut orphan = entity.security_metadata.clone();
    orphan.delegations.get_mut(&dk(A, B)).unwrap().parents = BTreeSet::from([dk(C, C)]);
    assert_eq!(
        violation(rules::validate_metadata(&orphan)),
        RuleViolation::MissingParent {
            child: dk(A, B),
            parent: dk(C, C)
        }
    );

    // B and P each other's parent: a cycle that never reaches the root.
    let mut cycle = entity.security_metadata.clone();
    cycle.delegations.get_mut(&dk(A, B)).unwrap().parents = BTreeSet::from([dk(A, P)]);
    cycle.delegations.get_mut(&dk(A, P)).unwrap().parents = BTreeSet::from([dk(A, B)]);
    cycle.delegations.get_mut(&dk(A, P)).unwrap().permission = Read;
    assert!(matches!(
        violation(rules::validate_metadata(&cycle)),
        RuleViolation::Detached(_)
    ));

    let mut widened = entity.security_metadata.clone();
    let mut child = widened.delegations[&dk(A, P)].clone();
    child.parents = BTreeSet::from([dk(A, B)]);
    widened.delegations.insert(dk(A, C), child);
    assert_eq!(
        violation(rules::validate_metadata(&widened)),
        RuleViolation::PermissionWidened {
            child: dk(A, C),
            parent: dk(A, B)
        }
    );
}

#[test]
fn a_share_never_overwrites_a_delegation() {
    let w = world();
    let (entity, opened) = note();
    let root = opened.delegation_key;
    // The client skips a delegate that already has a delegation.
    assert!(
        share(&entity, &opened, &[w.explicit(A, B, Write)], w.keys(A))
            .unwrap()
            .is_empty()
    );
    // The server refuses an entry for an existing key, even one granting more.
    let mut overwrite = entry_for_c(&entity, &opened);
    overwrite.delegation_key = dk(A, B);
    overwrite.delegation.permission = Write;
    assert_eq!(
        violation(rules::validate_share(&entity, &[overwrite], |k| *k == root)),
        RuleViolation::DelegationExists(dk(A, B))
    );
    // And the same key twice in one request.
    let entry = entry_for_c(&entity, &opened);
    let mut stored = entity.clone();
    assert_eq!(
        violation(rules::apply_share(
            &mut stored,
            &[entry.clone(), entry],
            |k| *k == root
        )),
        RuleViolation::DelegationExists(dk(A, C))
    );
    assert_eq!(stored, entity, "a refused share changes nothing");
}

#[test]
fn a_parent_the_requester_does_not_hold_is_rejected() {
    let (entity, opened) = note();
    let entry = entry_for_c(&entity, &opened);
    // B asks to add a delegation under A's root, which B does not hold.
    let b_holds = |k: &DelegationKey| *k == dk(A, B);
    let mut stored = entity.clone();
    assert_eq!(
        violation(rules::apply_share(
            &mut stored,
            std::slice::from_ref(&entry),
            b_holds
        )),
        RuleViolation::ParentNotAccessible(opened.delegation_key)
    );
    assert_eq!(stored, entity);
    // A parent that does not exist at all.
    let mut dangling = entry.clone();
    dangling.delegation.parents = BTreeSet::from([dk(C, C)]);
    assert_eq!(
        violation(rules::validate_share(&entity, &[dangling], |_| true)),
        RuleViolation::MissingParent {
            child: dk(A, C),
            parent: dk(C, C)
        }
    );
    // An entry naming another entity.
    let mut elsewhere = entry;
    elsewhere.entity_id = EntityId::generate().unwrap();
    assert!(matches!(
        violation(rules::validate_share(&entity, &[elsewhere], |_| true)),
        RuleViolation::InconsistentRequest(_)
    ));
}

#[test]
fn a_plain_update_cannot_touch_security_metadata() {
    let (stored, opened) = note();
    // Content changes are what a plain update is for; protocol v2: with the stored content version plus one.
    let mut update = stored.clone();
    update.rev += 1;
    update.content_version += 1;
    update
        .public
        .insert("lang".into(), serde_json::Value::from("fr"));
    rules::validate_update(&stored, &update).unwrap();
    // The same content version, or one skipped ahead, is refused.
    for content_version in [stored.content_version, stored.content_version + 2] {
        let mut stale = update.clone();
        stale.content_version = content_version;
        assert!(matches!(
            violation(rules::validate_update(&stored, &stale)),
            RuleViolation::InconsistentRequest(_)
        ));
    }

    // Every edit below carries a correct content version, so that the immutable field is what is refused.
    let mut stored_next = stored.clone();
    stored_next.content_version += 1;
    let stored_next = stored_next;
    let mut edits: Vec<(&str, EncryptedEntity)> = Vec::new();
    let mut rekeyed_epoch = stored_next.clone();
    rekeyed_epoch.key_epoch += 1;
    edits.push(("the key epoch", rekeyed_epoch));
    let mut added = stored_next.clone();
    share_into(&mut added, &opened, &[world().explicit(A, C, Read)]);
    edits.push(("the security metadata", added));
    let mut removed = stored_next.clone();
    removed.security_metadata.delegations.remove(&dk(A, B));
    edits.push(("the security metadata", removed));
    let mut promoted = stored_next.clone();
    promoted
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .permission = Write;
    edits.push(("the security metadata", promoted));
    let mut rekeyed = stored_next.clone();
    rekeyed
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .entity_keys
        .clear();
    edits.push(("the security metadata", rekeyed));
    let mut renamed = stored_next.clone();
    renamed.id = EntityId::generate().unwrap();
    edits.push(("the id", renamed));
    let mut retyped = stored_next.clone();
    retyped.entity_type = ty("Contact");
    edits.push(("the entity type", retyped));
    let mut recommitted = stored_next.clone();
    recommitted.key_commitment[0] ^= 1;
    edits.push(("the key commitment", recommitted));

    for (what, update) in edits {
        assert_eq!(
            violation(rules::validate_update(&stored, &update)),
            RuleViolation::Immutable(what),
            "{what}"
        );
    }
}

#[test]
fn a_rotation_may_only_remove_delegations() {
    let w = world();
    let (stored, opened) = note();
    let root = opened.delegation_key;
    let holds_root = |k: &DelegationKey| *k == root;
    let rotation =
        revoke_and_rotate(&stored, &opened, &[dk(A, P)], &w.access(A), w.keys(A)).unwrap();
    rules::validate_rotation(&stored, &rotation.entity, holds_root).unwrap();
    // Protocol v2: the key epoch and the content version each move exactly one up.
    for (epoch, version) in [(0, 1), (1, 0), (2, 1), (1, 2)] {
        let mut stale = rotation.entity.clone();
        stale.key_epoch = stored.key_epoch + epoch;
        stale.content_version = stored.content_version + version;
        assert!(matches!(
            violation(rules::validate_rotation(&stored, &stale, holds_root)),
            RuleViolation::InconsistentRequest(_)
        ));
    }

    // Only the root's holder.
    assert_eq!(
        violation(rules::validate_rotation(
            &stored,
            &rotation.entity,
            |k: &DelegationKey| *k == dk(A, B)
        )),
        RuleViolation::WriteRequired
    );
    // Adding a delegation.
    let mut added = rotation.entity.clone();
    added.security_metadata.delegations.insert(
        dk(A, C),
        stored.security_metadata.delegations[&dk(A, B)].clone(),
    );
    assert!(matches!(
        violation(rules::validate_rotation(&stored, &added, holds_root)),
        RuleViolation::InconsistentRequest(_)
    ));
    // Changing what a remaining delegation grants or who it is for.
    let mut promoted = rotation.entity.clone();
    let to_b = promoted
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap();
    to_b.permission = Write;
    assert!(matches!(
        violation(rules::validate_rotation(&stored, &promoted, holds_root)),
        RuleViolation::InconsistentRequest(_)
    ));
    let mut renamed = rotation.entity.clone();
    let to_b = renamed
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap();
    to_b.delegate = Some(C.id());
    assert!(matches!(
        violation(rules::validate_rotation(&stored, &renamed, holds_root)),
        RuleViolation::InconsistentRequest(_)
    ));
    // Another entity, or another type.
    let mut moved = rotation.entity.clone();
    moved.id = EntityId::generate().unwrap();
    assert_eq!(
        violation(rules::validate_rotation(&stored, &moved, holds_root)),
        RuleViolation::Immutable("the id")
    );
    let mut retyped = rotation.entity.clone();
    retyped.entity_type = ty("Contact");
    assert_eq!(
        violation(rules::validate_rotation(&stored, &retyped, holds_root)),
        RuleViolation::Immutable("the entity type")
    );
    // Dropping the root.
    let mut rootless = rotation.entity.clone();
    rootless.security_metadata.delegations.remove(&root);
    assert_eq!(
        violation(rules::validate_rotation(&stored, &rootless, holds_root)),
        RuleViolation::NoRoot
    );
}

#[test]
fn descendants_ancestors_and_error_kinds() {
    let w = world();
    let (mut entity, opened) = note();
    let by_p = decrypt(&entity, &w.access(P)).unwrap();
    share_into(&mut entity, &by_p, &[w.explicit(P, C, Read)]);
    let metadata = &entity.security_metadata;
    let root = opened.delegation_key;
    assert_eq!(
        rules::descendants(metadata, &dk(A, P)),
        BTreeSet::from([dk(A, P), dk(P, C)])
    );
    assert_eq!(
        rules::descendants(metadata, &root),
        BTreeSet::from([root, dk(A, B), dk(A, P), dk(P, C)])
    );
    assert_eq!(
        rules::ancestors(metadata, &dk(P, C)),
        BTreeSet::from([dk(P, C), dk(A, P), root])
    );
    assert_eq!(
        rules::revocation_set(metadata, &dk(A, P)).unwrap(),
        BTreeSet::from([dk(A, P), dk(P, C)])
    );
    let rule = rules::validate_metadata(&Default::default()).unwrap_err();
    assert!(rules::is_rule_violation(&rule));
    assert!(!rules::is_rule_violation(&Error::Crypto));
    assert!(!rules::is_rule_violation(&Error::NoAccess));
}
