//! Cases on recovery data and the side map.

use tessera_sharing::SideMapEntry;

use super::{assert_conflict, fixtures};
use crate::{RecoveryData, Store};

/// Recovery data is stored once and never overwritten.
pub fn recovery_data_is_create_only(store: &dyn Store) {
    let data = RecoveryData {
        id: [3; 32],
        sealed: vec![1, 2, 3, 4],
        expires: 1_800_000_000,
    };
    store.put_recovery_data(&data).unwrap();
    assert_eq!(
        store.get_recovery_data(&data.id).unwrap(),
        Some(data.clone())
    );
    let replacement = RecoveryData {
        sealed: vec![9; 40],
        ..data.clone()
    };
    assert_conflict(store.put_recovery_data(&replacement), None, Some(1));
    assert_eq!(store.get_recovery_data(&data.id).unwrap(), Some(data));
    assert_eq!(store.get_recovery_data(&[4; 32]).unwrap(), None);
}

/// A side-map entry replaces the previous one of the same owner and delegation key.
pub fn side_map_entries_are_replaced(store: &dyn Store) {
    let f = fixtures();
    let key = f.colleague_key();
    let first = SideMapEntry::seal(&f.doctor, key, f.shared.0.id()).unwrap();
    store.put_side_map_entry(&first).unwrap();
    assert_eq!(
        store.side_map_entry(f.doctor.owner(), &key).unwrap(),
        Some(first)
    );
    let second = SideMapEntry::seal(&f.doctor, key, f.own.0.id()).unwrap();
    store.put_side_map_entry(&second).unwrap();
    let stored = store
        .side_map_entry(f.doctor.owner(), &key)
        .unwrap()
        .unwrap();
    assert_eq!(stored, second);
    assert_eq!(stored.open(&f.doctor).unwrap(), f.own.0.id());
    assert_eq!(
        store.side_map_entry(f.colleague.owner(), &key).unwrap(),
        None
    );
    assert_eq!(
        store
            .side_map_entry(f.doctor.owner(), &f.root_key())
            .unwrap(),
        None
    );
}
