//! Entities: bulk create (group-committed), point reads, updates and rotations, deletes, bulk share and revoke,
//! and queries by search tag or delegation key.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tessera_keys::DelegationKey;
use tessera_sharing::{EncryptedEntity, EntityId, SearchTag, rules};
use tessera_wire::{
    BulkWritten, Entities, EntityPage, EntityUpdate, RevokeBody, ShareBody, Written,
};

use super::{
    blocking, body, expected_rev, hide_revision, load_visible, requester, respond, visible,
    writable,
};
use crate::auth::Requester;
use crate::error::ApiError;
use crate::http::{self, Resp};
use crate::server::State;

pub(super) async fn create_entities(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let Entities { entities } = body(state, request).await?;
    if entities.is_empty() || entities.len() > state.limits.max_bulk_entities {
        return Err(ApiError::bad_request(format!(
            "send 1 to {} entities per request",
            state.limits.max_bulk_entities
        )));
    }
    for entity in &entities {
        rules::validate_new_entity(entity)?;
        // The creator proves the root with its access-control key; a clear label naming it proves nothing.
        let root = rules::root(&entity.security_metadata)?;
        if !requester.holds(&root) {
            return Err(ApiError::forbidden(
                "the creator must hold the root delegation",
            ));
        }
    }
    let ids: Vec<EntityId> = entities.iter().map(|e| e.id).collect();
    let revs = state
        .committer
        .create(entities)
        .await
        .ok_or_else(ApiError::internal)?
        .map_err(hide_revision)?;
    tracing::debug!(count = ids.len(), "entities created");
    Ok(http::respond(
        accept,
        StatusCode::CREATED,
        &BulkWritten {
            written: ids.into_iter().zip(revs).collect(),
        },
    ))
}

pub(super) async fn get_entity(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: EntityId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let entity = load_visible(state, id, &requester).await?;
    Ok(respond(request, StatusCode::OK, &entity))
}

pub(super) async fn update_entity(
    state: &Arc<State>,
    request: Request<Incoming>,
    id: EntityId,
    rotation: bool,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let update: EntityUpdate = body(state, request).await?;
    if update.entity.id != id {
        return Err(ApiError::bad_request("the body names another entity"));
    }
    let stored = load_visible(state, id, &requester).await?;
    if !writable(&stored, &requester) {
        return Err(ApiError::forbidden("write access is required"));
    }
    if stored.rev != update.expected_rev {
        return Err(tessera_store::Error::Conflict {
            what: "entity",
            expected: Some(update.expected_rev),
            actual: Some(stored.rev),
        }
        .into());
    }
    if rotation {
        rules::validate_rotation(&stored, &update.entity, |key| requester.holds(key))?;
    } else {
        rules::validate_update(&stored, &update.entity)?;
    }
    let rev = blocking(state, move |store| {
        Ok(store.update_entity(&update.entity, update.expected_rev)?)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &Written { rev }))
}

pub(super) async fn delete_entity(
    state: &Arc<State>,
    request: &Request<Incoming>,
    id: EntityId,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let rev = expected_rev(request)?;
    let stored = load_visible(state, id, &requester).await?;
    if !writable(&stored, &requester) {
        return Err(ApiError::forbidden("write access is required"));
    }
    blocking(state, move |store| Ok(store.delete_entity(id, rev)?)).await?;
    Ok(http::with_type(
        StatusCode::NO_CONTENT,
        tessera_wire::JSON,
        Bytes::new(),
    ))
}

/// Loads every entity a bulk request names (each visible to the requester), changes them, and stores them in one
/// commit naming the revisions read, so that a concurrent write makes the whole request a conflict. The answer
/// lists the entities in the order of `by_entity`, which is the request's ([`group_in_request_order`]), as
/// [`BulkWritten`] promises.
pub(super) async fn bulk_change<K, F>(
    state: &Arc<State>,
    requester: &Requester,
    by_entity: Vec<(EntityId, K)>,
    mut change: F,
) -> Result<BulkWritten, ApiError>
where
    F: FnMut(&mut EncryptedEntity, K) -> Result<(), ApiError>,
{
    if by_entity.is_empty() || by_entity.len() > state.limits.max_bulk_entities {
        return Err(ApiError::bad_request(format!(
            "name 1 to {} entities per request",
            state.limits.max_bulk_entities
        )));
    }
    let mut changed = Vec::with_capacity(by_entity.len());
    for (id, item) in by_entity {
        let mut entity = load_visible(state, id, requester).await?;
        let rev = entity.rev;
        change(&mut entity, item)?;
        changed.push((entity, rev));
    }
    let ids: Vec<EntityId> = changed.iter().map(|(e, _)| e.id).collect();
    let revs = blocking(state, move |store| Ok(store.update_entities(&changed)?)).await?;
    Ok(BulkWritten {
        written: ids.into_iter().zip(revs).collect(),
    })
}

pub(super) async fn share(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let ShareBody { request: share } = body(state, request).await?;
    let by_entity = group_in_request_order(
        share
            .entries
            .into_iter()
            .map(|entry| (entry.entity_id, entry)),
    );
    let written = bulk_change(state, &requester, by_entity, |entity, entries| {
        Ok(rules::apply_share(entity, &entries, |key| {
            requester.holds(key)
        })?)
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &written))
}

pub(super) async fn revoke(
    state: &Arc<State>,
    request: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let requester = requester(state, &request)?;
    let accept = http::accepted(request.headers());
    let RevokeBody { revocations } = body(state, request).await?;
    let by_entity = group_in_request_order(
        revocations
            .into_iter()
            .map(|revocation| (revocation.entity_id, revocation.delegation_key)),
    );
    let written = bulk_change(state, &requester, by_entity, |entity, keys| {
        for key in keys {
            rules::apply_revoke(entity, &key, |held| requester.holds(held))?;
        }
        Ok(())
    })
    .await?;
    Ok(http::respond(accept, StatusCode::OK, &written))
}

pub(super) async fn query_entities(
    state: &Arc<State>,
    request: &Request<Incoming>,
) -> Result<Resp, ApiError> {
    let requester = requester(state, request)?;
    let query = request.uri().query();
    let ids = if let Some(tag) = http::query(query, "tag") {
        let tag = SearchTag::from_bytes(http::parse_hex::<32>(tag)?);
        blocking(state, move |store| Ok(store.entities_by_search_tag(&tag)?)).await?
    } else if let Some(key) = http::query(query, "delegation_key") {
        let key = DelegationKey::from_bytes(http::parse_hex::<32>(key)?);
        if !requester.holds(&key) {
            Vec::new()
        } else {
            blocking(state, move |store| {
                Ok(store.entities_by_delegation_key(&key)?)
            })
            .await?
        }
    } else {
        return Err(ApiError::bad_request(
            "query by ?tag=<hex> or ?delegation_key=<hex> (then &after=<id> for the next page)",
        ));
    };
    let after = match http::query(query, "after") {
        Some(text) => Some(
            text.parse::<EntityId>()
                .map_err(|_| ApiError::bad_request("malformed cursor: ?after=<entity id>"))?,
        ),
        None => None,
    };
    let most = state.limits.max_bulk_entities;
    let limit = match http::query(query, "limit") {
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=most).contains(limit))
            .ok_or_else(|| ApiError::bad_request(format!("?limit=<n> takes 1 to {most}")))?,
        None => most,
    };
    let (page, next) = page_of(ids, after, limit);
    let found = blocking(state, move |store| {
        page.into_iter()
            .filter_map(|id| store.get_entity(id).transpose())
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::from)
    })
    .await?;
    let entities = found
        .into_iter()
        .filter(|e| visible(e, &requester))
        .collect();
    Ok(respond(
        request,
        StatusCode::OK,
        &EntityPage { entities, next },
    ))
}

/// The ids after `after` in ascending order, at most `limit` of them, and the cursor of the next page (the last id
/// taken) when more remain.
fn page_of(
    mut ids: Vec<EntityId>,
    after: Option<EntityId>,
    limit: usize,
) -> (Vec<EntityId>, Option<EntityId>) {
    ids.sort_unstable();
    ids.dedup();
    let start = after.map_or(0, |after| ids.partition_point(|id| *id <= after));
    let rest = ids.get(start..).unwrap_or_default();
    let page: Vec<EntityId> = rest.iter().take(limit).copied().collect();
    let next = if rest.len() > limit {
        page.last().copied()
    } else {
        None
    };
    (page, next)
}

/// The items of a bulk request grouped by entity, the entities in the order they first appear in the request.
fn group_in_request_order<T>(
    items: impl IntoIterator<Item = (EntityId, T)>,
) -> Vec<(EntityId, Vec<T>)> {
    let mut groups: Vec<(EntityId, Vec<T>)> = Vec::new();
    let mut position: HashMap<EntityId, usize> = HashMap::new();
    for (id, item) in items {
        match position.get(&id).and_then(|&index| groups.get_mut(index)) {
            Some((_, group)) => group.push(item),
            None => {
                position.insert(id, groups.len());
                groups.push((id, vec![item]));
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_id_once_in_order() {
        let mut ids: Vec<EntityId> = (0..25).map(|_| EntityId::generate().unwrap()).collect();
        let shuffled = ids.clone();
        ids.sort();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = page_of(shuffled.clone(), after, 7);
            assert!(page.len() <= 7);
            seen.extend(page);
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, ids);
        // Exactly full: the last page says so.
        assert_eq!(page_of(ids[..7].to_vec(), None, 7).1, None);
        // A cursor past the end, or one that is no longer listed, still pages from its place.
        assert!(page_of(ids.clone(), ids.last().copied(), 7).0.is_empty());
        let gone = ids[3];
        let remaining: Vec<EntityId> = ids.iter().copied().filter(|id| *id != gone).collect();
        assert_eq!(page_of(remaining, Some(gone), 2).0, ids[4..6].to_vec());
    }

    #[test]
    fn groups_keep_the_request_order() {
        let ids: Vec<EntityId> = (0..3).map(|_| EntityId::generate().unwrap()).collect();
        let mut order = ids.clone();
        order.sort();
        order.reverse();
        let (high, mid, low) = (order[0], order[1], order[2]);
        let grouped = group_in_request_order([(high, 1), (low, 2), (high, 3), (mid, 4)]);
        assert_eq!(
            grouped,
            vec![(high, vec![1, 3]), (low, vec![2]), (mid, vec![4])]
        );
    }
}
