//! Cases on batches of writes and concurrent writers.

use serde_json::json;
use tessera_sharing::EncryptedEntity;

use super::{assert_conflict, fixtures};
use crate::{Error, Store};

/// A batch of creates is stored whole, or not at all when one id is taken (in the store or in the batch).
pub fn group_create_is_all_or_none(store: &dyn Store) {
    let f = fixtures();
    let batch: Vec<_> = (0..3).map(|i| f.entity(json!({ "n": i }))).collect();
    assert_eq!(store.create_entities(&batch).unwrap(), vec![1, 1, 1]);
    for entity in &batch {
        assert_eq!(store.get_entity(entity.id).unwrap().unwrap().rev, 1);
    }
    assert_eq!(
        store
            .entities_by_delegation_key(&f.root_key())
            .unwrap()
            .len(),
        3
    );
    assert_eq!(store.create_entities(&[]).unwrap(), Vec::<u64>::new());

    let (fresh, later) = (f.entity(json!({"n": "a"})), f.entity(json!({"n": "b"})));
    let taken = [fresh.clone(), batch[1].clone(), later.clone()];
    assert_conflict(store.create_entities(&taken), None, Some(1));
    let twice = [fresh.clone(), later.clone(), fresh.clone()];
    assert_conflict(store.create_entities(&twice), None, Some(1));
    for entity in [&fresh, &later] {
        assert_eq!(store.get_entity(entity.id).unwrap(), None);
    }
    assert_eq!(
        store
            .entities_by_delegation_key(&f.root_key())
            .unwrap()
            .len(),
        3
    );
}

/// A batch of updates is stored whole, or not at all when one revision is stale or one entity missing.
pub fn group_update_is_all_or_none(store: &dyn Store) {
    let f = fixtures();
    let batch: Vec<_> = (0..3).map(|i| f.entity(json!({ "n": i }))).collect();
    store.create_entities(&batch).unwrap();
    let edit = |entity: &EncryptedEntity, n: i32| {
        let mut entity = entity.clone();
        entity.public.insert("n".to_owned(), json!(n));
        entity
    };
    let updates: Vec<_> = batch.iter().map(|e| (edit(e, 10), 1)).collect();
    assert_eq!(store.update_entities(&updates).unwrap(), vec![2, 2, 2]);
    let before: Vec<_> = batch
        .iter()
        .map(|e| store.get_entity(e.id).unwrap().unwrap())
        .collect();

    let mut revoked = edit(&batch[0], 20);
    revoked
        .security_metadata
        .delegations
        .remove(&f.colleague_key());
    let stale = [
        (revoked.clone(), 2),
        (edit(&batch[1], 20), 1),
        (edit(&batch[2], 20), 2),
    ];
    assert_conflict(store.update_entities(&stale), Some(1), Some(2));
    let missing = [(revoked, 2), (f.entity(json!({"n": 0})), 1)];
    assert!(matches!(
        store.update_entities(&missing),
        Err(Error::NotFound(_))
    ));
    for entity in &before {
        assert_eq!(store.get_entity(entity.id).unwrap().as_ref(), Some(entity));
    }
    assert_eq!(
        store
            .entities_by_delegation_key(&f.colleague_key())
            .unwrap()
            .len(),
        3
    );

    // A batch applies in order: one entity may be updated twice.
    let twice = [(edit(&batch[0], 30), 2), (edit(&batch[0], 31), 3)];
    assert_eq!(store.update_entities(&twice).unwrap(), vec![3, 4]);
    let stored = store.get_entity(batch[0].id).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.public["n"]), (4, &json!(31)));
    assert_eq!(store.update_entities(&[]).unwrap(), Vec::<u64>::new());
}

/// Of several writers that update the same revision at once, exactly one wins; the others see a conflict.
pub fn concurrent_updates_have_one_winner(store: &dyn Store) {
    let f = fixtures();
    let entity = f.entity(json!({"title": "contended"}));
    store.create_entity(&entity).unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let mut update = entity.clone();
                update.public.insert("writer".to_owned(), json!(i));
                scope.spawn(move || store.update_entity(&update, 1))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = results.iter().filter(|r| matches!(r, Ok(2))).count();
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(Error::Conflict {
                    actual: Some(2),
                    ..
                })
            )
        })
        .count();
    assert_eq!((winners, conflicts), (1, 5), "{results:?}");
    assert_eq!(store.get_entity(entity.id).unwrap().unwrap().rev, 2);
}
