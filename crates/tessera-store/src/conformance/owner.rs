//! Cases on owners, their exchange data and their key-bag entries.

use std::collections::BTreeSet;

use tessera_keys::{ExchangeDataId, OwnerId};

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

/// Exchange data is listed for its delegator and its delegate, once each, and replaced by revision.
pub fn exchange_data_is_found_for_both_participants(store: &dyn Store) {
    let f = fixtures();
    let (own, shared) = (&f.own.0, &f.shared.0);
    assert_eq!(store.put_exchange_data(own, None).unwrap(), 1);
    assert_eq!(store.put_exchange_data(shared, None).unwrap(), 1);
    assert_conflict(store.put_exchange_data(shared, None), None, Some(1));

    let ids_of = |owner: OwnerId| -> BTreeSet<ExchangeDataId> {
        let found = store.exchange_data_of(owner).unwrap();
        let ids: BTreeSet<_> = found.iter().map(|v| v.value.id()).collect();
        assert_eq!(ids.len(), found.len(), "each exchange data once");
        ids
    };
    assert_eq!(
        ids_of(f.doctor.owner()),
        BTreeSet::from([own.id(), shared.id()])
    );
    assert_eq!(ids_of(f.colleague.owner()), BTreeSet::from([shared.id()]));
    assert!(ids_of(OwnerId::generate().unwrap()).is_empty());

    assert_eq!(store.put_exchange_data(shared, Some(1)).unwrap(), 2);
    assert_conflict(store.put_exchange_data(shared, Some(1)), Some(1), Some(2));
    let stored = store.get_exchange_data(shared.id()).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.value), (2, shared));
    assert_eq!(ids_of(f.colleague.owner()), BTreeSet::from([shared.id()]));
    let listed = store.exchange_data_of(f.colleague.owner()).unwrap();
    assert_eq!(listed[0].rev, 2);
    assert_eq!(
        store
            .get_exchange_data(ExchangeDataId::generate().unwrap())
            .unwrap(),
        None
    );
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
