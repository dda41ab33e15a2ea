//! The entity table and its indexes, written together in one transaction.

use ::redb::{MultimapTable, ReadableTable, Table, WriteTransaction};
use tessera_sharing::{EncryptedEntity, EntityId};

use super::table::{
    Bytes, ENTITIES, ENTITIES_BY_DELEGATION_KEY, ENTITIES_BY_SEARCH_TAG, Id, Key32, backend,
    encode, get_record,
};
use crate::error::{Error, Result};
use crate::index::{self, IndexKeys};
use crate::revision;
use crate::store::Revision;

/// The entity table and its two indexes, open in one write transaction.
pub(super) struct EntityTables<'t> {
    pub(super) entities: Table<'t, Id, Bytes>,
    pub(super) by_delegation_key: MultimapTable<'t, Key32, Id>,
    pub(super) by_search_tag: MultimapTable<'t, Key32, Id>,
}

impl<'t> EntityTables<'t> {
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self> {
        Ok(Self {
            entities: txn.open_table(ENTITIES).map_err(backend)?,
            by_delegation_key: txn
                .open_multimap_table(ENTITIES_BY_DELEGATION_KEY)
                .map_err(backend)?,
            by_search_tag: txn
                .open_multimap_table(ENTITIES_BY_SEARCH_TAG)
                .map_err(backend)?,
        })
    }

    pub(super) fn get(&self, id: EntityId) -> Result<Option<EncryptedEntity>> {
        get_record(&self.entities, id.as_bytes(), "entity")
    }

    /// Creates `entity` at revision 1, unless its id is taken (also by an earlier entity of the same batch).
    pub(super) fn create(&mut self, entity: &EncryptedEntity) -> Result<Revision> {
        if let Some(stored) = self.get(entity.id)? {
            return Err(revision::exists("entity", stored.rev));
        }
        self.put(entity, 1, None)?;
        Ok(1)
    }

    /// Replaces revision `expected` of `entity`.
    pub(super) fn update(
        &mut self,
        entity: &EncryptedEntity,
        expected: Revision,
    ) -> Result<Revision> {
        let stored = self.get(entity.id)?;
        let rev = revision::next_entity(stored.as_ref().map(|e| e.rev), expected)?;
        self.put(entity, rev, stored.as_ref())?;
        Ok(rev)
    }

    /// Stores `entity` at `rev` in place of `before`, moving its index entries.
    pub(super) fn put(
        &mut self,
        entity: &EncryptedEntity,
        rev: Revision,
        before: Option<&EncryptedEntity>,
    ) -> Result<()> {
        let mut entity = entity.clone();
        entity.rev = rev;
        let bytes = encode("entity", &entity)?;
        let (removed, added) = index::changes(before, Some(&entity));
        self.unindex(entity.id, &removed)?;
        let id = entity.id.as_bytes();
        for key in &added.delegation_keys {
            self.by_delegation_key
                .insert(key.as_bytes(), id)
                .map_err(backend)?;
        }
        for tag in &added.search_tags {
            self.by_search_tag
                .insert(tag.as_bytes(), id)
                .map_err(backend)?;
        }
        self.entities
            .insert(id, bytes.as_slice())
            .map_err(backend)?;
        Ok(())
    }

    pub(super) fn unindex(&mut self, id: EntityId, keys: &IndexKeys) -> Result<()> {
        for key in &keys.delegation_keys {
            self.by_delegation_key
                .remove(key.as_bytes(), id.as_bytes())
                .map_err(backend)?;
        }
        for tag in &keys.search_tags {
            self.by_search_tag
                .remove(tag.as_bytes(), id.as_bytes())
                .map_err(backend)?;
        }
        Ok(())
    }
}

/// Fails with [`Error::NotFound`] unless entity `id` exists.
pub(super) fn entity_exists(txn: &WriteTransaction, id: EntityId) -> Result<()> {
    let entities = txn.open_table(ENTITIES).map_err(backend)?;
    match entities.get(id.as_bytes()).map_err(backend)? {
        Some(_) => Ok(()),
        None => Err(Error::NotFound("entity")),
    }
}
