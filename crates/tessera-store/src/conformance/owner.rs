//! Cases on owners, their inboxes and their key-bag entries.

use tessera_keys::{InboxMessageId, OwnerId};

use super::{assert_conflict, fixtures};
use crate::{Error, Store};

/// Owners: create, replace with the right revision, conflicts on a stale, unexpected or missing revision.
pub fn owner_revisions(store: &dyn Store) {
    let f = fixtures();
    let mut owner = f.owner(&f.doctor);
    assert_eq!(store.get_owner(owner.id).unwrap(), None);
    assert_eq!(store.put_owner(&owner, None).unwrap(), 1);
    let stored = store.get_owner(owner.id).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.value), (1, &owner));
    assert_conflict(store.put_owner(&owner, None), None, Some(1));

    let first = owner.clone();
    owner.parent = Some(f.colleague.owner());
    assert_eq!(store.put_owner(&owner, Some(1)).unwrap(), 2);
    assert_conflict(store.put_owner(&first, Some(1)), Some(1), Some(2));
    let stored = store.get_owner(owner.id).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.value), (2, &owner));

    let other = f.owner(&f.colleague);
    assert_conflict(store.put_owner(&other, Some(1)), Some(1), None);
    assert_eq!(store.get_owner(other.id).unwrap(), None);
}

/// Inbox messages are filed per recipient, listed in id order, immutable once stored, and deleted one by one.
pub fn inbox_messages_are_filed_per_recipient(store: &dyn Store) {
    let f = fixtures();
    let colleague = f.colleague.owner();
    let first = f.inbox_message();
    let second = f.inbox_message();
    assert!(store.inbox(colleague).unwrap().is_empty());
    assert_eq!(store.inbox_len(colleague).unwrap(), 0);
    store.put_inbox_message(colleague, &first).unwrap();
    store.put_inbox_message(colleague, &second).unwrap();
    // The same message again is a no-op; another message under a stored id is a conflict.
    store.put_inbox_message(colleague, &first).unwrap();
    let mut impostor = second.clone();
    impostor.id = first.id;
    assert_conflict(store.put_inbox_message(colleague, &impostor), None, Some(1));

    let ids = |owner: OwnerId| -> Vec<InboxMessageId> {
        store.inbox(owner).unwrap().iter().map(|m| m.id).collect()
    };
    let mut expected = vec![first.id, second.id];
    expected.sort();
    assert_eq!(ids(colleague), expected);
    assert_eq!(store.inbox_len(colleague).unwrap(), 2);
    assert_eq!(
        store
            .inbox(colleague)
            .unwrap()
            .iter()
            .find(|m| m.id == first.id),
        Some(&first)
    );
    // Nobody else's inbox holds them, not even the sender's.
    assert!(ids(f.doctor.owner()).is_empty());
    assert!(ids(OwnerId::generate().unwrap()).is_empty());

    // Deleting needs the right recipient, and happens once.
    assert!(
        !store
            .delete_inbox_message(f.doctor.owner(), first.id)
            .unwrap()
    );
    assert!(store.delete_inbox_message(colleague, first.id).unwrap());
    assert!(!store.delete_inbox_message(colleague, first.id).unwrap());
    assert_eq!(ids(colleague), vec![second.id]);
    assert_eq!(store.inbox_len(colleague).unwrap(), 1);
    // A deleted id may be filed again (a sender's retry after the recipient consumed it changes nothing else).
    store.put_inbox_message(colleague, &first).unwrap();
    assert_eq!(store.inbox_len(colleague).unwrap(), 2);
}

/// Key-bag entries: storing the same entry again is a no-op, a different one under the same id a conflict.
pub fn key_bag_entries_are_immutable(store: &dyn Store) {
    let f = fixtures();
    let owner = f.doctor.owner();
    let (first, second) = (f.key_bag_entry(), f.key_bag_entry());
    store.put_key_bag_entry(&first).unwrap();
    store.put_key_bag_entry(&first).unwrap();
    store.put_key_bag_entry(&second).unwrap();

    let mut forged = first.clone();
    forged.sealed[0] ^= 1;
    assert!(matches!(
        store.put_key_bag_entry(&forged),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store.key_bag_entry(owner, first.id).unwrap(),
        Some(first.clone())
    );

    let mut bag = store.key_bag(owner).unwrap();
    bag.sort_by_key(|entry| entry.id);
    let mut expected = vec![first.clone(), second];
    expected.sort_by_key(|entry| entry.id);
    assert_eq!(bag, expected);

    // The same entry id in another owner's bag is another entry.
    let mut elsewhere = forged;
    elsewhere.owner = f.colleague.owner();
    store.put_key_bag_entry(&elsewhere).unwrap();
    assert_eq!(store.key_bag(f.colleague.owner()).unwrap(), vec![elsewhere]);
    assert_eq!(store.key_bag_entry(owner, first.id).unwrap(), Some(first));
    assert!(
        store
            .key_bag(OwnerId::generate().unwrap())
            .unwrap()
            .is_empty()
    );
}
