//! Cases on entities: the revision lifecycle, conflicts and the two indexes.

use std::collections::BTreeSet;

use serde_json::json;
use tessera_keys::DelegationKey;
use tessera_sharing::attachment::seal_attachment;
use tessera_sharing::{EncryptedEntity, EntityId, ParentLink, SearchTag, SecretId};

use super::{assert_conflict, fixtures, sorted};
use crate::{Error, Store};

/// Create, read, update and delete an entity, with the revision set by the store.
pub fn entity_lifecycle(store: &dyn Store) {
    let f = fixtures();
    let (mut entity, opened) = f.entity_with(
        json!({"title": "visit", "diagnosis": "flu", "tags": ["a", {"b": null}], "n": 1.5}),
        Vec::new(),
    );
    let (reference, _) = seal_attachment(&opened, b"scan").unwrap();
    entity.attachments.push(reference);
    entity.rev = 42;
    assert_eq!(store.create_entity(&entity).unwrap(), 1);
    let stored = store.get_entity(entity.id).unwrap().unwrap();
    assert_eq!(
        stored,
        EncryptedEntity {
            rev: 1,
            ..entity.clone()
        }
    );

    entity.public.insert("title".to_owned(), json!("follow-up"));
    entity.rev = 0;
    assert_eq!(store.update_entity(&entity, 1).unwrap(), 2);
    let stored = store.get_entity(entity.id).unwrap().unwrap();
    assert_eq!(
        stored,
        EncryptedEntity {
            rev: 2,
            ..entity.clone()
        }
    );
    assert_eq!(store.update_entity(&stored, 2).unwrap(), 3);

    store.delete_entity(entity.id, 3).unwrap();
    assert_eq!(store.get_entity(entity.id).unwrap(), None);
    assert!(
        store
            .entities_by_delegation_key(&f.root_key())
            .unwrap()
            .is_empty()
    );

    // The id is free again.
    assert_eq!(store.create_entity(&entity).unwrap(), 1);
}

/// A stale revision is a conflict that reports both revisions and changes nothing.
pub fn stale_revision_conflicts_and_changes_nothing(store: &dyn Store) {
    let f = fixtures();
    let mut entity = f.entity(json!({"title": "v1"}));
    store.create_entity(&entity).unwrap();
    entity.public.insert("title".to_owned(), json!("v2"));
    assert_eq!(store.update_entity(&entity, 1).unwrap(), 2);
    let current = store.get_entity(entity.id).unwrap().unwrap();

    let mut stale = entity.clone();
    stale
        .public
        .insert("title".to_owned(), json!("lost update"));
    stale.security_metadata.delegations.clear();
    assert_conflict(store.update_entity(&stale, 1), Some(1), Some(2));
    assert_conflict(store.update_entity(&stale, 3), Some(3), Some(2));
    assert_conflict(store.delete_entity(entity.id, 1), Some(1), Some(2));
    assert_eq!(store.get_entity(entity.id).unwrap(), Some(current));
    assert_eq!(
        store.entities_by_delegation_key(&f.root_key()).unwrap(),
        vec![entity.id]
    );
}

/// Creating an entity whose id exists is a conflict, whatever the stored revision.
pub fn creating_an_existing_id_conflicts(store: &dyn Store) {
    let f = fixtures();
    let entity = f.entity(json!({"title": "first"}));
    store.create_entity(&entity).unwrap();
    let mut other = f.entity(json!({"title": "second"}));
    other.id = entity.id;
    assert_conflict(store.create_entity(&other), None, Some(1));
    store.update_entity(&entity, 1).unwrap();
    assert_conflict(store.create_entity(&other), None, Some(2));
    assert_eq!(
        store.get_entity(entity.id).unwrap(),
        Some(EncryptedEntity { rev: 2, ..entity })
    );
}

/// Updating, deleting or attaching to an entity that does not exist is `NotFound`; reading it is `None`.
pub fn missing_entity_is_not_found(store: &dyn Store) {
    let f = fixtures();
    let entity = f.entity(json!({"title": "never stored"}));
    let attachment = tessera_sharing::AttachmentId::generate().unwrap();
    assert!(matches!(
        store.update_entity(&entity, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.delete_entity(entity.id, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.put_attachment(entity.id, attachment, b"bytes"),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.get_entity(entity.id).unwrap(), None);
    assert_eq!(store.attachment_len(entity.id, attachment).unwrap(), None);
    assert_eq!(
        store.read_attachment(entity.id, attachment, 0..10).unwrap(),
        None
    );
}

/// The delegation-key index follows creates, updates (removed delegations are no longer found) and deletes.
pub fn delegation_key_index_follows_updates_and_deletes(store: &dyn Store) {
    let f = fixtures();
    let (root, colleague) = (f.root_key(), f.colleague_key());
    let first = f.entity(json!({"title": "first"}));
    let second = f.entity(json!({"title": "second"}));
    store.create_entity(&first).unwrap();
    store.create_entity(&second).unwrap();
    let both = sorted([first.id, second.id]);
    assert_eq!(
        sorted(store.entities_by_delegation_key(&root).unwrap()),
        both
    );
    assert_eq!(
        sorted(store.entities_by_delegation_key(&colleague).unwrap()),
        both
    );

    // Revoke the colleague from the first entity and give it a delegation under a new key.
    let mut update = first.clone();
    let delegation = update
        .security_metadata
        .delegations
        .remove(&colleague)
        .unwrap();
    let added = DelegationKey::from_bytes([7; 32]);
    update
        .security_metadata
        .delegations
        .insert(added, delegation);
    store.update_entity(&update, 1).unwrap();
    assert_eq!(
        store.entities_by_delegation_key(&colleague).unwrap(),
        vec![second.id]
    );
    assert_eq!(
        sorted(store.entities_by_delegation_key(&root).unwrap()),
        both
    );
    assert_eq!(
        store.entities_by_delegation_key(&added).unwrap(),
        vec![first.id]
    );

    store.delete_entity(first.id, 2).unwrap();
    assert_eq!(
        store.entities_by_delegation_key(&root).unwrap(),
        vec![second.id]
    );
    assert!(store.entities_by_delegation_key(&added).unwrap().is_empty());
    store.delete_entity(second.id, 1).unwrap();
    assert!(store.entities_by_delegation_key(&root).unwrap().is_empty());
    assert!(
        store
            .entities_by_delegation_key(&colleague)
            .unwrap()
            .is_empty()
    );
}

/// The search-tag index follows creates, updates and deletes.
pub fn search_tag_index_follows_updates_and_deletes(store: &dyn Store) {
    let f = fixtures();
    let parent = f.entity(json!({"title": "patient"}));
    let secret_id = SecretId::generate().unwrap();
    let tag = secret_id.search_tag(&f.entity_type);
    let link = |parent: EntityId| ParentLink {
        parent,
        secret_id: secret_id.clone(),
    };
    let (child, _) = f.entity_with(json!({"title": "contact"}), vec![link(parent.id)]);
    let (sibling, _) = f.entity_with(json!({"title": "contact 2"}), vec![link(parent.id)]);
    assert_eq!(child.secret_foreign_keys, BTreeSet::from([tag]));
    store
        .create_entities(&[parent, child.clone(), sibling.clone()])
        .unwrap();
    assert_eq!(
        sorted(store.entities_by_search_tag(&tag).unwrap()),
        sorted([child.id, sibling.id])
    );

    let moved = SearchTag::from_bytes([9; 32]);
    let mut update = child.clone();
    update.secret_foreign_keys = BTreeSet::from([moved]);
    store.update_entity(&update, 1).unwrap();
    assert_eq!(
        store.entities_by_search_tag(&tag).unwrap(),
        vec![sibling.id]
    );
    assert_eq!(
        store.entities_by_search_tag(&moved).unwrap(),
        vec![child.id]
    );

    store.delete_entity(child.id, 2).unwrap();
    assert!(store.entities_by_search_tag(&moved).unwrap().is_empty());
    store.delete_entity(sibling.id, 1).unwrap();
    assert!(store.entities_by_search_tag(&tag).unwrap().is_empty());
}
