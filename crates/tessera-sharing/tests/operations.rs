//! The client operations end to end: create, decrypt (as each owner), share, bulk share requests, revoke, revoke-and-rotate, and no access without a delegation (P4).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::BTreeSet;

use common::{
    NOTE_SECRETS, Spec, Who, assert_crypto, assert_no_access, contains, create_as, create_note,
    from_bincode, note_document, note_manifest, object, share_into, to_bincode, to_json, ty,
    violation, world,
};
use serde_json::{Value, json};
use tessera_keys::{DelegationKey, FormatVersion, KeyBag};
use tessera_sharing::{
    AccessIndex, DecryptedEntity, EncryptedEntity, EntityId, Error, NewEntity, Permission,
    RuleViolation, ShareRequest, Visibility, create, decrypt, revoke_and_rotate, rules, share,
};

use Permission::{Read, Write};
use Who::{A, B, C, P};

/// The public part of [`note_document`] under [`note_manifest`].
fn note_public() -> serde_json::Map<String, Value> {
    object(json!({
        "address": {"city": "Brussels"},
        "contacts": [{"name": "Ann"}, {"name": "Bob"}],
        "labels": {"a": {"color": "red"}, "b": {"color": "blue"}},
        "lang": "en"
    }))
}

/// A `Note` of A shared A → B (`b`), B → C (read) and A → P (read, P anonymous).
fn shared_note(b: Permission) -> (EncryptedEntity, DecryptedEntity) {
    let w = world();
    let (mut entity, opened) = create_note(A);
    share_into(&mut entity, &opened, &[w.explicit(A, B, b)]);
    share_into(
        &mut entity,
        &opened,
        &[w.target(A, P, Visibility::AnonymousDelegate, Read)],
    );
    let by_b = decrypt(&entity, &w.access(B)).unwrap();
    share_into(&mut entity, &by_b, &[w.explicit(B, C, Read)]);
    (entity, opened)
}

fn keys_of(entity: &EncryptedEntity) -> BTreeSet<DelegationKey> {
    entity
        .security_metadata
        .delegations
        .keys()
        .copied()
        .collect()
}

#[test]
fn create_makes_a_root_and_the_auto_delegations() {
    let w = world();
    let note = ty("Note");
    let mut spec = Spec::note();
    spec.autos = vec![
        w.explicit(A, B, Read),
        w.target(A, P, Visibility::AnonymousDelegate, Read),
        // A second delegation A → A would collide with the root: it is skipped.
        w.explicit(A, A, Read),
    ];
    let (entity, opened) = create_as(A, spec);

    let root = w.dk(A, A, &note);
    assert_eq!(
        keys_of(&entity),
        BTreeSet::from([root, w.dk(A, B, &note), w.dk(A, P, &note)])
    );
    assert_eq!(rules::root(&entity.security_metadata).unwrap(), root);
    rules::validate_new_entity(&entity).unwrap();

    let delegations = &entity.security_metadata.delegations;
    let root_delegation = &delegations[&root];
    assert!(root_delegation.parents.is_empty());
    assert_eq!(root_delegation.permission, Write);
    assert_eq!(root_delegation.delegator, Some(A.id()));
    assert_eq!(root_delegation.delegate, Some(A.id()));
    assert_eq!(root_delegation.exchange_data_id, Some(w.data(A, A).id()));
    assert_eq!(root_delegation.entity_keys.len(), 1);
    let to_b = &delegations[&w.dk(A, B, &note)];
    assert_eq!(to_b.parents, BTreeSet::from([root]));
    assert_eq!(to_b.permission, Read);
    assert_eq!(
        (to_b.delegator, to_b.delegate),
        (Some(A.id()), Some(B.id()))
    );
    assert_eq!(to_b.exchange_data_id, Some(w.data(A, B).id()));
    let to_p = &delegations[&w.dk(A, P, &note)];
    assert_eq!(to_p.parents, BTreeSet::from([root]));
    assert_eq!((to_p.delegator, to_p.delegate), (Some(A.id()), None));
    assert_eq!(to_p.exchange_data_id, None);

    assert_eq!(entity.version, FormatVersion::V2);
    assert_eq!(entity.entity_type, note);
    assert_eq!(entity.rev, 0);
    assert!(entity.attachments.is_empty());
    assert!(entity.secret_foreign_keys.is_empty());
    assert_eq!(entity.public, note_public());

    assert_eq!(opened.id, entity.id);
    assert_eq!(opened.delegation_key, root);
    assert_eq!(opened.permission, Write);
    assert_eq!(opened.document, note_document());
    assert!(opened.owning_entity_ids.is_empty());
}

#[test]
fn the_public_part_never_holds_a_manifest_field() {
    let (entity, _) = create_note(A);
    let public = Value::Object(entity.public.clone());
    assert!(public.get("note").is_none());
    assert!(public["address"].get("street").is_none());
    for contact in public["contacts"].as_array().unwrap() {
        assert!(contact.get("phone").is_none(), "{contact}");
    }
    for label in public["labels"].as_object().unwrap().values() {
        assert!(label.get("text").is_none(), "{label}");
    }
    let json = to_json(&entity);
    let bin = to_bincode(&entity);
    for secret in NOTE_SECRETS {
        assert!(!json.contains(secret), "{secret} in JSON");
        assert!(!contains(&bin, secret.as_bytes()), "{secret} in bincode");
    }
    // The public fields are there in clear, as they should be.
    assert!(json.contains("Brussels"));
    assert_eq!(note_manifest().paths().len(), 4);
}

#[test]
fn create_refuses_a_bad_root_or_a_foreign_exchange_data() {
    let w = world();
    let manifest = note_manifest();
    let new = || NewEntity {
        id: EntityId::generate().unwrap(),
        entity_type: ty("Note"),
        document: note_document(),
        manifest: &manifest,
        secret_ids: vec![],
        parents: vec![],
    };
    // The root must be exchange data of the creator with itself.
    let result = create(new(), w.explicit(A, B, Write), &[], w.keys(A));
    assert!(matches!(
        violation(result),
        RuleViolation::InconsistentRequest(_)
    ));
    // The root must grant write.
    let result = create(new(), w.explicit(A, A, Read), &[], w.keys(A));
    assert_eq!(violation(result), RuleViolation::RootNotWrite);
    // A's side of B → A was signed by B: A cannot seal new data with it.
    let foreign = tessera_sharing::DelegationTarget {
        exchange: w.secret(A, B, A),
        visibility: Visibility::Explicit,
        permission: Read,
    };
    let result = create(new(), w.explicit(A, A, Write), &[foreign], w.keys(A));
    assert!(
        matches!(
            result,
            Err(Error::Keys(tessera_keys::Error::NotSignedBySelf))
        ),
        "{result:?}"
    );
}

#[test]
fn a_delegate_decrypts_the_whole_document() {
    let w = world();
    let mut spec = Spec::note();
    spec.autos = vec![w.explicit(A, B, Read)];
    let (entity, _) = create_as(A, spec);
    let read = decrypt(&entity, &w.access(B)).unwrap();
    assert_eq!(read.id, entity.id);
    assert_eq!(read.entity_type, ty("Note"));
    assert_eq!(read.rev, entity.rev);
    assert_eq!(read.document, note_document());
    assert_eq!(read.delegation_key, w.dk(A, B, &ty("Note")));
    assert_eq!(read.permission, Read);
    assert!(read.secret_ids.is_empty());
    assert!(read.owning_entity_ids.is_empty());
}

#[test]
fn each_owner_decrypts_through_its_own_delegation() {
    let w = world();
    let note = ty("Note");
    let (entity, _) = shared_note(Write);
    let expected = [
        (A, w.dk(A, A, &note), Write),
        (B, w.dk(A, B, &note), Write),
        (C, w.dk(B, C, &note), Read),
        (P, w.dk(A, P, &note), Read),
    ];
    for (who, key, permission) in expected {
        let read = decrypt(&entity, &w.access(who)).unwrap();
        assert_eq!(read.delegation_key, key, "{who:?}");
        assert_eq!(read.permission, permission, "{who:?}");
        assert_eq!(read.document, note_document(), "{who:?}");
    }
    // A also holds the secret of A → B, but that delegation is B's: protocol v2 reads only through a delegation
    // made to the reader (v1 let A read through A → B), so with nothing else A has no access.
    let only_to_b = w.access_only(A, &[(A, B)]);
    assert_no_access(decrypt(&entity, &only_to_b));
}

#[test]
fn decrypt_through_a_key_bag() {
    let w = world();
    let (entity, _) = shared_note(Read);
    let keys = w.keys(C);
    let entries: Vec<_> = w
        .secrets_of(C)
        .iter()
        .map(|secret| KeyBag::seal_entry(keys, secret).unwrap())
        .collect();
    let bag = KeyBag::load(keys, &entries).unwrap();
    let access = AccessIndex::from_key_bag(&bag);
    assert_eq!(access.owner(), C.id());
    assert_eq!(access.len(), w.secrets_of(C).len());
    // Protocol v2: a key bag holds secrets, not trusted bundles; without the writer's bundle the signature cannot be
    // verified yet.
    assert!(
        matches!(decrypt(&entity, &access), Err(Error::UnknownSigner(owner)) if owner == A.id()),
        "the writer's bundle is needed"
    );
    let access = AccessIndex::from_key_bag(&bag).with_signers([w.bundle(A).clone()]);
    let read = decrypt(&entity, &access).unwrap();
    assert_eq!(read.delegation_key, w.dk(B, C, &ty("Note")));
    assert_eq!(read.document, note_document());
}

#[test]
fn share_with_one_then_many_delegates() {
    let w = world();
    let note = ty("Note");
    let (mut entity, opened) = create_note(A);
    let root = opened.delegation_key;

    let one = share(&entity, &opened, &[w.explicit(A, B, Read)], w.keys(A)).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].entity_id, entity.id);
    assert_eq!(one[0].delegation_key, w.dk(A, B, &note));
    assert_eq!(one[0].delegation.parents, BTreeSet::from([root]));
    assert_eq!(one[0].delegation.permission, Read);
    rules::apply_share(&mut entity, &one, |k| *k == root).unwrap();
    assert_eq!(
        decrypt(&entity, &w.access(B)).unwrap().document,
        note_document()
    );

    // Several at once; a target named twice and a target that already has its delegation give nothing more.
    let many = share(
        &entity,
        &opened,
        &[
            w.explicit(A, C, Write),
            w.target(A, P, Visibility::AnonymousDelegate, Read),
            w.explicit(A, C, Write),
            w.explicit(A, B, Write),
        ],
        w.keys(A),
    )
    .unwrap();
    let keys: Vec<_> = many.iter().map(|e| e.delegation_key).collect();
    assert_eq!(keys, [w.dk(A, C, &note), w.dk(A, P, &note)]);
    rules::apply_share(&mut entity, &many, |k| *k == root).unwrap();
    assert_eq!(entity.security_metadata.delegations.len(), 4);
    // The existing delegation of B was not overwritten (still read-only).
    assert_eq!(
        entity.security_metadata.delegations[&w.dk(A, B, &note)].permission,
        Read
    );
    for who in [B, C, P] {
        assert_eq!(
            decrypt(&entity, &w.access(who)).unwrap().document,
            note_document(),
            "{who:?}"
        );
    }
    rules::validate_metadata(&entity.security_metadata).unwrap();
}

#[test]
fn a_share_request_for_many_entities_round_trips_and_applies_per_entity() {
    let w = world();
    let mut entities: Vec<(EncryptedEntity, DecryptedEntity)> = vec![
        create_note(A),
        create_note(A),
        create_as(
            A,
            Spec {
                entity_type: ty("Contact"),
                ..Spec::note()
            },
        ),
    ];
    let targets = [
        w.explicit(A, B, Read),
        w.target(A, P, Visibility::AnonymousDelegate, Read),
    ];
    let entries: Vec<_> = entities
        .iter()
        .flat_map(|(entity, opened)| share(entity, opened, &targets, w.keys(A)).unwrap())
        .collect();
    assert_eq!(entries.len(), 6);
    let request = ShareRequest::new(entries);
    assert_eq!(request.version, FormatVersion::V2);

    let from_json: ShareRequest = serde_json::from_str(&to_json(&request)).unwrap();
    assert_eq!(from_json, request);
    let from_bin: ShareRequest = from_bincode(&to_bincode(&request)).unwrap();
    assert_eq!(from_bin, request);

    // The server applies the received request entity by entity.
    for (entity, opened) in &mut entities {
        let mine: Vec<_> = from_bin
            .entries
            .iter()
            .filter(|e| e.entity_id == entity.id)
            .cloned()
            .collect();
        assert_eq!(mine.len(), 2);
        let root = opened.delegation_key;
        rules::apply_share(entity, &mine, |k| *k == root).unwrap();
    }
    for (entity, _) in &entities {
        for who in [B, P] {
            let read = decrypt(entity, &w.access(who)).unwrap();
            assert_eq!(read.id, entity.id);
            assert_eq!(read.document, note_document());
        }
        assert_no_access(decrypt(entity, &w.access(C)));
    }
    // Entries of one entity are refused for another.
    let first = entities[0].0.id;
    let mut second = entities[1].0.clone();
    let root = entities[1].1.delegation_key;
    let foreign: Vec<_> = from_bin
        .entries
        .iter()
        .filter(|e| e.entity_id == first)
        .cloned()
        .collect();
    assert!(matches!(
        violation(rules::apply_share(&mut second, &foreign, |k| *k == root)),
        RuleViolation::InconsistentRequest(_)
    ));
    assert_eq!(second, entities[1].0);
}

#[test]
fn revoke_removes_the_target_and_its_descendants() {
    let w = world();
    let note = ty("Note");
    let (mut entity, opened) = shared_note(Write);
    let root = opened.delegation_key;
    let removed = rules::apply_revoke(&mut entity, &w.dk(A, B, &note), |k| *k == root).unwrap();
    assert_eq!(
        removed,
        BTreeSet::from([w.dk(A, B, &note), w.dk(B, C, &note)])
    );
    assert_eq!(keys_of(&entity), BTreeSet::from([root, w.dk(A, P, &note)]));
    rules::validate_metadata(&entity.security_metadata).unwrap();
    assert_no_access(decrypt(&entity, &w.access(B)));
    assert_no_access(decrypt(&entity, &w.access(C)));
    assert_eq!(
        decrypt(&entity, &w.access(P)).unwrap().document,
        note_document()
    );
}

#[test]
fn revoke_needs_the_target_or_an_ancestor() {
    let w = world();
    let note = ty("Note");
    let (stored, _) = shared_note(Write);
    let holds = |who: Who| {
        let keys: BTreeSet<_> = w.access(who).delegation_keys(&note).into_iter().collect();
        move |k: &DelegationKey| keys.contains(k)
    };

    // C holds only B → C: it cannot revoke A → P (not an ancestor) nor A → B (its parent).
    for target in [w.dk(A, P, &note), w.dk(A, B, &note)] {
        let mut entity = stored.clone();
        let result = rules::apply_revoke(&mut entity, &target, holds(C));
        assert_eq!(violation(result), RuleViolation::NotAnAncestor(target));
        assert_eq!(entity, stored, "a refused revocation changes nothing");
    }
    // P cannot revoke B → C, in another branch.
    let mut entity = stored.clone();
    let target = w.dk(B, C, &note);
    assert_eq!(
        violation(rules::apply_revoke(&mut entity, &target, holds(P))),
        RuleViolation::NotAnAncestor(target)
    );
    // C may give up its own delegation; B may revoke its child's.
    for who in [C, B] {
        let mut entity = stored.clone();
        let removed = rules::apply_revoke(&mut entity, &target, holds(who)).unwrap();
        assert_eq!(removed, BTreeSet::from([target]), "{who:?}");
        assert_no_access(decrypt(&entity, &w.access(C)));
    }
}

#[test]
fn the_root_cannot_be_revoked() {
    let w = world();
    let (stored, opened) = shared_note(Write);
    let root = opened.delegation_key;
    let mut entity = stored.clone();
    assert_eq!(
        violation(rules::apply_revoke(&mut entity, &root, |_| true)),
        RuleViolation::RevokeRoot
    );
    let unknown = w.dk(C, P, &ty("Note"));
    assert_eq!(
        violation(rules::apply_revoke(&mut entity, &unknown, |_| true)),
        RuleViolation::UnknownDelegation(unknown)
    );
    assert_eq!(entity, stored);
}

#[test]
fn revoke_and_rotate_locks_the_revoked_owner_out() {
    let w = world();
    let note = ty("Note");
    let (stored, opened) = shared_note(Write);
    let root = opened.delegation_key;
    let old_p = decrypt(&stored, &w.access(P)).unwrap();
    let to_p = w.dk(A, P, &note);

    let rotation = revoke_and_rotate(&stored, &opened, &[to_p], &w.access(A), w.keys(A)).unwrap();
    // B → C was made by B: A cannot re-wrap it, so it goes too and is reported.
    assert_eq!(rotation.removed, BTreeSet::from([to_p, w.dk(B, C, &note)]));
    assert_eq!(rotation.opened.delegation_key, root);
    let (rotated, rotated_keys) = rotation.sign(w.keys(A)).unwrap();
    let rotated = &rotated;
    assert_eq!(rotated_keys.delegation_key, root);
    assert_eq!(keys_of(rotated), BTreeSet::from([root, w.dk(A, B, &note)]));
    rules::validate_rotation(&stored, rotated, |k| *k == root).unwrap();
    assert_eq!(rotated.key_epoch, stored.key_epoch + 1);
    assert_eq!(rotated.content_version, stored.content_version + 1);
    assert_ne!(rotated.key_commitment, stored.key_commitment);
    assert_ne!(rotated.encrypted_self, stored.encrypted_self);
    assert_eq!((rotated.id, rotated.rev), (stored.id, stored.rev));
    assert_eq!(rotated.public, stored.public);
    // The rotation gives keys only; the rotator reads the re-sealed content as before.
    assert_eq!(
        decrypt(rotated, &w.access(A)).unwrap().document,
        note_document()
    );

    // The remaining delegate reads the new content; the revoked ones have no delegation any more.
    let by_b = decrypt(rotated, &w.access(B)).unwrap();
    assert_eq!(by_b.document, note_document());
    assert_eq!(decrypt(rotated, &w.access(A)).unwrap().delegation_key, root);
    assert_no_access(decrypt(rotated, &w.access(P)));
    assert_no_access(decrypt(rotated, &w.access(C)));

    // P kept its old delegation and its exchange secret: put back, it no longer opens (its sealed key binds the
    // old key epoch), and it would unwrap only the old key, which fails the new commitment...
    let mut forged = rotated.clone();
    forged
        .security_metadata
        .delegations
        .insert(to_p, stored.security_metadata.delegations[&to_p].clone());
    assert_crypto(decrypt(&forged, &w.access(P)));
    // ... and with the old commitment too, the old key does not open the new content.
    forged.key_commitment = stored.key_commitment;
    assert_crypto(decrypt(&forged, &w.access(P)));
    // What P read before stays readable (it cannot be taken back), but it is the old content only.
    assert_eq!(old_p.document, note_document());
}

#[test]
fn revoke_and_rotate_is_for_the_root_owner_only() {
    let w = world();
    let note = ty("Note");
    let (stored, opened) = shared_note(Write);
    let by_b = decrypt(&stored, &w.access(B)).unwrap();
    assert_eq!(by_b.permission, Write);
    let result = revoke_and_rotate(
        &stored,
        &by_b,
        &[w.dk(B, C, &note)],
        &w.access(B),
        w.keys(B),
    );
    assert!(matches!(
        violation(result),
        RuleViolation::InconsistentRequest(_)
    ));
    let root = opened.delegation_key;
    assert_eq!(
        violation(revoke_and_rotate(
            &stored,
            &opened,
            &[root],
            &w.access(A),
            w.keys(A)
        )),
        RuleViolation::RevokeRoot
    );
    let unknown = w.dk(C, A, &note);
    assert_eq!(
        violation(revoke_and_rotate(
            &stored,
            &opened,
            &[unknown],
            &w.access(A),
            w.keys(A),
        )),
        RuleViolation::UnknownDelegation(unknown)
    );
    // Rotating without revoking anything keeps every delegation A can re-wrap.
    let rotation = revoke_and_rotate(&stored, &opened, &[], &w.access(A), w.keys(A)).unwrap();
    assert_eq!(rotation.removed, BTreeSet::from([w.dk(B, C, &note)]));
    // Only the owner that rotated signs the rotation.
    let rotation = match rotation.sign(w.keys(B)) {
        Err(Error::Rule(RuleViolation::InconsistentRequest(_))) => {
            revoke_and_rotate(&stored, &opened, &[], &w.access(A), w.keys(A)).unwrap()
        }
        other => panic!("a rotation signed by another owner: {other:?}"),
    };
    let (rotated, _) = rotation.sign(w.keys(A)).unwrap();
    for who in [A, B, P] {
        assert_eq!(
            decrypt(&rotated, &w.access(who)).unwrap().document,
            note_document()
        );
    }
}

#[test]
fn revoke_and_rotate_without_the_root_secret_does_not_leave_a_stale_root() {
    let w = world();
    let note = ty("Note");
    let (stored, opened) = shared_note(Write);
    // A's index without A → A (a key bag missing that entry, say).
    let partial = w.access_only(A, &[(A, B), (A, P)]);
    match revoke_and_rotate(&stored, &opened, &[w.dk(A, P, &note)], &partial, w.keys(A))
        .and_then(|rotation| rotation.sign(w.keys(A)))
    {
        Err(_) => {}
        Ok((rotated, _)) => {
            let read = decrypt(&rotated, &w.access(A))
                .expect("the root owner can open the rotated entity");
            assert_eq!(read.delegation_key, opened.delegation_key);
            assert_eq!(read.document, note_document());
        }
    }
}

#[test]
fn without_a_delegation_there_is_no_access() {
    let w = world();
    let mut spec = Spec::note();
    spec.autos = vec![w.explicit(A, B, Read)];
    let (entity, _) = create_as(A, spec);
    // C and P hold secrets with A and B, but not for a pair that has a delegation here.
    assert_no_access(decrypt(&entity, &w.access(C)));
    assert_no_access(decrypt(&entity, &w.access(P)));
    // B with its side of B → A (the reverse pair) only.
    assert_no_access(decrypt(&entity, &w.access_only(B, &[(B, A), (B, B)])));
    // Nobody at all.
    assert_no_access(decrypt(&entity, &AccessIndex::new(C.id(), [])));
    // Delegation keys depend on the type: the same entity relabelled is out of reach even for B.
    let mut relabelled = entity.clone();
    relabelled.entity_type = ty("Contact");
    assert_no_access(decrypt(&relabelled, &w.access(B)));
    // B can, through the delegation it was given.
    assert!(decrypt(&entity, &w.access(B)).is_ok());
}
