//! Entity operations of a session: create, read, update, delete, share, revoke, revoke-and-rotate, children.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tessera_keys::{DelegationKey, EntityType, OwnerId};
use tessera_sharing::{
    DecryptedEntity, DelegationTarget, EncryptedEntity, EntityId, EntityKeys, NewEntity,
    NewWithShares, ParentLink, Permission, SecretId, SecretIdScope, ShareRequest, attachment,
    create_many, decrypt, open_keys, revoke_and_rotate, share,
};
use tessera_wire::Revocation;

use crate::error::{Error, ErrorKind, Result};
use crate::record::{
    AttachmentInfo, EntityRef, NewRecord, Query, QueryReport, Record, Rotated, Saved, Share,
    to_object,
};
use crate::session::Session;

impl Session {
    /// Creates a record of `entity_type` from any value that serialises to a JSON object.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`] if `content` is not a JSON object; otherwise as [`Session::create_record`].
    pub async fn create<T: Serialize + ?Sized>(
        &self,
        entity_type: &EntityType,
        content: &T,
    ) -> Result<Saved> {
        self.create_record(NewRecord::new(entity_type.clone(), to_object(content)?))
            .await
    }

    /// Creates a record of `entity_type` from a JSON object.
    ///
    /// # Errors
    /// As [`Session::create_record`].
    pub async fn create_json(
        &self,
        entity_type: &EntityType,
        content: Map<String, Value>,
    ) -> Result<Saved> {
        self.create_record(NewRecord::new(entity_type.clone(), content))
            .await
    }

    /// Creates a record: its content encrypted under a new random key (the fields its type's manifest lists, or
    /// every field), its root delegation through this owner's exchange data with itself, the shares of `new` in the
    /// same request, and a new secret id so that it can be the parent of other records.
    ///
    /// # Errors
    /// [`ErrorKind::Untrusted`] if a delegate's key bundle is refused by the trust policy; [`ErrorKind::NotFound`]
    /// if the parent or a delegate does not exist; [`ErrorKind::Invalid`] for a malformed manifest or document.
    pub async fn create_record(&self, new: NewRecord) -> Result<Saved> {
        let mut saved = self.create_many(vec![new]).await?;
        saved
            .pop()
            .ok_or_else(|| Error::new(ErrorKind::Transport, "the server answered no revision"))
    }

    /// Creates several records in one request (one durable commit on the server: all are stored or none), each as
    /// [`Session::create_record`] would; returns them in the order given. The server caps a request (1,000 records
    /// by default).
    ///
    /// # Errors
    /// As [`Session::create_record`]; [`ErrorKind::Invalid`] if the server refuses the request's size.
    pub async fn create_many(&self, records: Vec<NewRecord>) -> Result<Vec<Saved>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let own = self.exchange_with(self.owner()).await?;
        let mut prepared = Vec::with_capacity(records.len());
        for new in records {
            prepared.push(self.prepare_new(new).await?);
        }
        let root = DelegationTarget {
            exchange: &own,
            visibility: self.root_visibility(),
            permission: Permission::Write,
        };
        let items = prepared
            .iter_mut()
            .map(|p| p.entity())
            .collect::<Result<Vec<_>>>()?;
        // One signature for every record of the request.
        let entities = create_many(items, root, self.keys())?;
        let mut types: Vec<&EntityType> = entities.iter().map(|e| &e.entity_type).collect();
        types.sort();
        types.dedup();
        // An anonymous root proves itself only through its access-control key.
        for entity_type in types {
            self.ensure_registered(entity_type).await?;
        }
        let sealed = &entities;
        let written = self
            .call(|c| async move { c.create_entities(sealed).await })
            .await?;
        let revs: HashMap<EntityId, u64> = written.written.into_iter().collect();
        entities
            .into_iter()
            .map(|entity| {
                let rev = revs.get(&entity.id).copied().ok_or_else(|| {
                    Error::new(ErrorKind::Transport, "the server answered no revision")
                })?;
                Ok(Saved {
                    entity: EntityRef::new(entity.entity_type, entity.id),
                    rev,
                })
            })
            .collect()
    }

    /// Gathers what a new record needs from the server (the exchange data of its shares, its parent's link) before
    /// it is encrypted with the others of its request.
    async fn prepare_new(&self, new: NewRecord) -> Result<Prepared> {
        let NewRecord {
            entity_type,
            content,
            parent,
            shares,
            confidential,
        } = new;
        let manifest = self.manifest_for(&entity_type, &content)?;
        let mut targets = Vec::with_capacity(shares.len());
        for share in shares.iter().filter(|s| s.delegate != self.owner()) {
            targets.push((self.exchange_with(share.delegate).await?, *share));
        }
        let parents = match parent {
            Some(parent) => vec![self.parent_link(&parent).await?],
            None => Vec::new(),
        };
        let scope = if confidential {
            SecretIdScope::Confidential
        } else {
            SecretIdScope::Shared
        };
        Ok(Prepared {
            entity_type,
            content: Some(content),
            manifest,
            targets,
            parents: Some(parents),
            scope,
        })
    }

    /// Reads and decrypts a record into `T`.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if it does not exist or was not shared with this owner; [`ErrorKind::NoAccess`] if
    /// no delegation of it opens; [`ErrorKind::Crypto`] if it was tampered with; [`ErrorKind::Invalid`] if the
    /// content does not deserialise into `T`.
    pub async fn get<T: DeserializeOwned>(&self, entity: &EntityRef) -> Result<Record<T>> {
        typed(self.get_json(entity).await?)
    }

    /// Reads and decrypts a record as a JSON object.
    ///
    /// # Errors
    /// As [`Session::get`].
    pub async fn get_json(&self, entity: &EntityRef) -> Result<Record<Map<String, Value>>> {
        let (_, opened) = self.fetch_open(entity).await?;
        Ok(to_record(opened))
    }

    /// Decrypts an encrypted entity obtained some other way (an export, a backup) with this owner's keys, without
    /// asking the server: only the exchange data the session knows (from the login or [`Session::refresh`]) is used.
    ///
    /// # Errors
    /// [`ErrorKind::NoAccess`] if no delegation of it belongs to this owner; [`ErrorKind::Crypto`] if it does not
    /// decrypt.
    pub fn open_entity(&self, entity: &EncryptedEntity) -> Result<Record<Map<String, Value>>> {
        Ok(to_record(decrypt(entity, &self.lookup())?))
    }

    /// Replaces the content of revision `rev` of a record with `content`; returns the new revision. Sharing is
    /// unchanged: every delegate reads the new content with the key it already has.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] if `rev` is not the stored revision; [`ErrorKind::Forbidden`] if this owner may only
    /// read it; as [`Session::get`].
    pub async fn update<T: Serialize + ?Sized>(
        &self,
        entity: &EntityRef,
        rev: u64,
        content: &T,
    ) -> Result<u64> {
        self.update_json(entity, rev, to_object(content)?).await
    }

    /// As [`Session::update`], with a JSON object.
    ///
    /// # Errors
    /// As [`Session::update`].
    pub async fn update_json(
        &self,
        entity: &EntityRef,
        rev: u64,
        content: Map<String, Value>,
    ) -> Result<u64> {
        let (stored, opened) = self.fetch_keys(entity).await?;
        check_rev(&stored, rev)?;
        check_write(&opened)?;
        let manifest = self.manifest_for(&stored.entity_type, &content)?;
        let updated = tessera_sharing::update(&stored, &opened, content, &manifest, self.keys())?;
        let updated = &updated;
        let new_rev = self
            .call(|c| async move { c.update_entity(updated, rev).await })
            .await?;
        self.wrote(updated).await?;
        Ok(new_rev)
    }

    /// Deletes revision `rev` of a record, with its attachments.
    ///
    /// # Errors
    /// [`ErrorKind::Conflict`] on a stale revision; [`ErrorKind::Forbidden`] without write access;
    /// [`ErrorKind::NotFound`] if it is not visible.
    pub async fn delete(&self, entity: &EntityRef, rev: u64) -> Result<()> {
        self.ensure_registered(&entity.entity_type).await?;
        let id = entity.id;
        self.call(|c| async move { c.delete_entity(id, rev).await })
            .await
    }

    /// Shares a record; returns its new revision. Exchange data with a new partner is created on the way (its key
    /// bundles trusted through the policy); with a known partner sharing costs no public-key operation. A share that
    /// already exists is left as it is.
    ///
    /// # Errors
    /// [`ErrorKind::Rule`] if a share grants more than this owner has; [`ErrorKind::Untrusted`] if a delegate's key
    /// bundle is refused; as [`Session::get`].
    pub async fn share(&self, entity: &EntityRef, shares: &[Share]) -> Result<u64> {
        let written = self
            .share_many(std::slice::from_ref(entity), shares)
            .await?;
        written
            .first()
            .map(|(_, rev)| *rev)
            .ok_or_else(|| Error::new(ErrorKind::Transport, "the server answered no revision"))
    }

    /// Shares several records with the same delegates in one request (one durable commit on the server); returns
    /// each entity's revision afterwards.
    ///
    /// # Errors
    /// As [`Session::share`]; nothing is shared if one entry is refused.
    pub async fn share_many(
        &self,
        entities: &[EntityRef],
        shares: &[Share],
    ) -> Result<Vec<(EntityId, u64)>> {
        let mut secrets = Vec::with_capacity(shares.len());
        for share in shares.iter().filter(|s| s.delegate != self.owner()) {
            secrets.push((self.exchange_with(share.delegate).await?, *share));
        }
        let mut entries = Vec::new();
        let mut unchanged = Vec::new();
        for entity in entities {
            let (stored, opened) = self.fetch_keys(entity).await?;
            let targets: Vec<DelegationTarget<'_>> = secrets
                .iter()
                .map(|(secret, share)| DelegationTarget {
                    exchange: secret,
                    visibility: share.visibility,
                    permission: share.permission,
                })
                .collect();
            let new = share(&stored, &opened, &targets, self.keys())?;
            if new.is_empty() {
                unchanged.push((stored.id, stored.rev));
            }
            entries.extend(new);
        }
        if entries.is_empty() {
            return Ok(unchanged);
        }
        let request = &ShareRequest::new(entries);
        let written = self.call(|c| async move { c.share(request).await }).await?;
        let mut result = written.written;
        result.extend(unchanged);
        Ok(result)
    }

    /// Revokes the delegations of a record to `delegates` (and everything they shared onward); returns the new
    /// revision. The server stops serving the record to them at once; they may still hold the key they read, which
    /// [`Session::revoke_and_rotate`] replaces.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] if a delegate holds no delegation of the record; [`ErrorKind::Rule`] if this owner
    /// holds neither the delegation nor one above it.
    pub async fn revoke(&self, entity: &EntityRef, delegates: &[OwnerId]) -> Result<u64> {
        let stored = self.fetch(entity).await?;
        let revocations: Vec<Revocation> = self
            .delegations_to(&stored, delegates)?
            .into_iter()
            .map(|delegation_key| Revocation {
                entity_id: stored.id,
                delegation_key,
            })
            .collect();
        let revocations = revocations.as_slice();
        let written = self
            .call(|c| async move { c.revoke(revocations).await })
            .await?;
        written
            .written
            .first()
            .map(|(_, rev)| *rev)
            .ok_or_else(|| Error::new(ErrorKind::Transport, "the server answered no revision"))
    }

    /// Revokes the delegations of a record to `delegates` and gives the record a new key: the content and every
    /// attachment are re-encrypted and the key re-wrapped for the remaining delegations this owner made, so a
    /// revoked delegate's old key opens nothing stored from now on. Only the owner of the root delegation (the
    /// creator) can rotate.
    ///
    /// # Errors
    /// [`ErrorKind::Rule`] if this owner is not the record's creator; as [`Session::revoke`].
    pub async fn revoke_and_rotate(
        &self,
        entity: &EntityRef,
        delegates: &[OwnerId],
    ) -> Result<Rotated> {
        let (stored, opened) = self.fetch_keys(entity).await?;
        let revoked = self.delegations_to(&stored, delegates)?;
        let mut rotation =
            revoke_and_rotate(&stored, &opened, &revoked, &self.lookup(), self.keys())?;
        let removed = rotation.removed.len();
        let mut streams = Vec::with_capacity(stored.attachments.len());
        for reference in &stored.attachments {
            let (id, aid) = (stored.id, reference.id);
            let sealed = self
                .call(|c| async move { c.attachment(id, aid, None).await })
                .await?;
            let (new_ref, resealed) =
                attachment::rotate_attachment(&opened, &rotation.opened, reference, &sealed)?;
            if let Some(slot) = rotation.entity.attachments.iter_mut().find(|a| a.id == aid) {
                *slot = new_ref;
            }
            streams.push((aid, resealed));
        }
        let (rotated, _) = rotation.sign(self.keys())?;
        let (rotated, expected) = (&rotated, stored.rev);
        let rev = self
            .call(|c| async move { c.rotate_entity(rotated, expected).await })
            .await?;
        self.wrote(rotated).await?;
        let attachments = streams.len();
        for (aid, resealed) in streams {
            let (id, resealed) = (stored.id, &resealed);
            self.call(|c| async move { c.put_attachment(id, aid, resealed.clone()).await })
                .await?;
        }
        Ok(Rotated {
            rev,
            removed,
            attachments,
        })
    }

    /// The records of `child_type` linked to `parent` (a patient's contacts) that this owner may see: found by the
    /// search tags derived from the parent's secret ids, so the server learns neither the parent nor the link.
    ///
    /// # Errors
    /// As [`Session::get`] for the parent; [`ErrorKind::Crypto`] if a child was tampered with.
    pub async fn children<T: DeserializeOwned>(
        &self,
        parent: &EntityRef,
        child_type: &EntityType,
    ) -> Result<Vec<Record<T>>> {
        self.children_json(parent, child_type)
            .await?
            .into_iter()
            .map(typed)
            .collect()
    }

    /// As [`Session::children`], with JSON objects.
    ///
    /// # Errors
    /// As [`Session::children`].
    pub async fn children_json(
        &self,
        parent: &EntityRef,
        child_type: &EntityType,
    ) -> Result<Vec<Record<Map<String, Value>>>> {
        let (_, opened_parent) = self.fetch_keys(parent).await?;
        self.ensure_registered(child_type).await?;
        let mut found = Found::new(child_type);
        for (secret_id, _) in &opened_parent.secret_ids {
            let tag = &secret_id.search_tag(child_type);
            let entities = self
                .call(|c| async move { c.query_by_tag(tag).await })
                .await?;
            // The link is checked on the sealed parent id, not trusted from the server's index.
            found
                .open(self, entities, |opened| {
                    opened.owning_entity_ids.contains(&parent.id)
                })
                .await?;
        }
        self.lock().stats.unreadable_records += found.unreadable.len();
        Ok(found.records)
    }

    /// The records of `entity_type` that `query` selects and this owner may read: those it created, shared with a
    /// partner, or received from a partner. Records revoked since are not returned.
    ///
    /// # Errors
    /// [`ErrorKind::Invalid`] if a record does not deserialise into `T`; as [`Session::query_json`].
    pub async fn query<T: DeserializeOwned>(
        &self,
        entity_type: &EntityType,
        query: Query,
    ) -> Result<Vec<Record<T>>> {
        self.query_json(entity_type, query)
            .await?
            .into_iter()
            .map(typed)
            .collect()
    }

    /// As [`Session::query`], with JSON objects. A partner's new exchange data is picked up first (as
    /// [`Session::refresh`]), so that records a partner shared since the login are found. Records that fail to
    /// open or verify are left out and counted in [`SessionStats::unreadable_records`](crate::SessionStats);
    /// [`Session::query_report`] lists them.
    ///
    /// # Errors
    /// [`ErrorKind::Transport`] or [`ErrorKind::Server`]; [`ErrorKind::Invalid`] if the server refuses the
    /// query (more matches than its bulk limit).
    pub async fn query_json(
        &self,
        entity_type: &EntityType,
        query: Query,
    ) -> Result<Vec<Record<Map<String, Value>>>> {
        Ok(self.query_report(entity_type, query).await?.records)
    }

    /// As [`Session::query_json`], also listing the records found that failed to open or verify (tampered with,
    /// rolled back, or signed by an owner the trust policy refuses), each with why.
    ///
    /// # Errors
    /// As [`Session::query_json`].
    pub async fn query_report(
        &self,
        entity_type: &EntityType,
        query: Query,
    ) -> Result<QueryReport<Map<String, Value>>> {
        let me = self.owner();
        let (delegator, delegate) = match query {
            Query::Created => (me, me),
            Query::SharedWith(partner) => (me, partner),
            Query::SharedBy(partner) => {
                self.refresh().await?;
                (partner, me)
            }
        };
        self.ensure_registered(entity_type).await?;
        let mut found = Found::new(entity_type);
        for key in self.delegation_keys_between(entity_type, delegator, delegate)? {
            let key = &key;
            let entities = self
                .call(|c| async move { c.query_by_delegation_key(key).await })
                .await?;
            // A record shared and then revoked no longer holds the key; the server's index is not trusted for it.
            found.open(self, entities, |_| true).await?;
        }
        self.lock().stats.unreadable_records += found.unreadable.len();
        Ok(QueryReport {
            records: found.records,
            unreadable: found.unreadable,
        })
    }

    // ---- helpers ----

    /// Remembers a version this owner just wrote as seen (so that the server cannot serve an older one, or the
    /// one before a rotation, to any device of this owner) and saves the owner's state.
    pub(crate) async fn wrote(&self, entity: &EncryptedEntity) -> Result<()> {
        self.lock()
            .owner_state
            .see(entity.id, entity.content_version, entity.key_epoch)?;
        self.save_state().await
    }

    /// Fetches an entity this owner may see, after registering its access keys for the type; if it is not found,
    /// picks up exchange data partners created since and tries once more.
    pub(crate) async fn fetch(&self, entity: &EntityRef) -> Result<EncryptedEntity> {
        self.ensure_registered(&entity.entity_type).await?;
        let id = entity.id;
        let fetched = match self.call(|c| async move { c.entity(id).await }).await {
            Err(error) if error.is_not_found() => {
                if self.refresh().await? == 0 {
                    return Err(error);
                }
                self.ensure_registered(&entity.entity_type).await?;
                self.call(|c| async move { c.entity(id).await }).await?
            }
            other => other?,
        };
        if fetched.id != entity.id {
            return Err(Error::new(
                ErrorKind::Crypto,
                "the server returned another entity than the one asked for",
            ));
        }
        if fetched.entity_type != entity.entity_type {
            return Err(Error::invalid(format!(
                "record {} is of type {}, not {}; ask for it with type {}",
                entity.id, fetched.entity_type, entity.entity_type, fetched.entity_type
            )));
        }
        Ok(fetched)
    }

    /// Fetches and decrypts an entity; on [`ErrorKind::NoAccess`], picks up new exchange data and tries once more.
    pub(crate) async fn fetch_open(
        &self,
        entity: &EntityRef,
    ) -> Result<(EncryptedEntity, DecryptedEntity)> {
        self.fetch_with(entity, |stored, session| decrypt(stored, &session.lookup()))
            .await
    }

    /// Fetches an entity and opens its keys only (the entity key, secret ids and parents of this owner's best
    /// delegation), for operations that never read the content; retries as [`Session::fetch_open`].
    pub(crate) async fn fetch_keys(
        &self,
        entity: &EntityRef,
    ) -> Result<(EncryptedEntity, EntityKeys)> {
        self.fetch_with(entity, |stored, session| {
            open_keys(stored, &session.lookup())
        })
        .await
    }

    /// Fetches an entity and opens it with `open`; on [`ErrorKind::NoAccess`], picks up new exchange data and
    /// tries once more.
    async fn fetch_with<T: AsRef<EntityKeys>>(
        &self,
        entity: &EntityRef,
        open: impl Fn(&EncryptedEntity, &Self) -> tessera_sharing::Result<T>,
    ) -> Result<(EncryptedEntity, T)> {
        let stored = self.fetch(entity).await?;
        let opened = match self.open_verified(&stored, &open).await? {
            Ok(opened) => opened,
            Err(tessera_sharing::Error::NoAccess) if self.refresh().await? > 0 => {
                self.ensure_registered(&entity.entity_type).await?;
                self.open_verified(&stored, &open).await??
            }
            Err(error) => return Err(error.into()),
        };
        self.check_fresh(opened.as_ref())?;
        Ok((stored, opened))
    }

    /// A link to `parent` for a new child: the parent's id and one of its secret ids (a shared one if it has one).
    async fn parent_link(&self, parent: &EntityRef) -> Result<ParentLink> {
        let (_, opened) = self.fetch_keys(parent).await?;
        let mut secret_ids = opened.secret_ids;
        secret_ids.sort_by_key(|(_, scope)| *scope != SecretIdScope::Shared);
        let (secret_id, _) = secret_ids.into_iter().next().ok_or_else(|| {
            Error::invalid("the parent record has no secret id to link children to")
        })?;
        Ok(ParentLink {
            parent: parent.id,
            secret_id,
        })
    }

    /// The delegation keys of `entity` that give it to each of `delegates`: those through exchange data this owner
    /// signed for the delegate, and those naming the delegate in clear.
    fn delegations_to(
        &self,
        entity: &EncryptedEntity,
        delegates: &[OwnerId],
    ) -> Result<Vec<DelegationKey>> {
        let delegations = &entity.security_metadata.delegations;
        let mut keys = Vec::new();
        for delegate in delegates {
            let mut found: Vec<DelegationKey> = self
                .secrets_signed_for(*delegate)?
                .iter()
                .map(|secret| secret.delegation_key(&entity.entity_type))
                .filter(|key| delegations.contains_key(key))
                .collect();
            found.extend(
                delegations
                    .iter()
                    .filter(|(_, d)| d.delegate == Some(*delegate) && !d.parents.is_empty())
                    .map(|(key, _)| *key),
            );
            if found.is_empty() {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("the record holds no delegation to owner {delegate}"),
                ));
            }
            keys.extend(found);
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// A new record with what it needs gathered, waiting to be encrypted with the others of its request.
struct Prepared {
    entity_type: EntityType,
    content: Option<Map<String, Value>>,
    manifest: tessera_sharing::EncryptionManifest,
    targets: Vec<(std::sync::Arc<tessera_keys::ExchangeSecret>, Share)>,
    parents: Option<Vec<ParentLink>>,
    scope: SecretIdScope,
}

impl Prepared {
    /// The sharing layer's view of it (its content and parents move out: call once).
    fn entity(&mut self) -> Result<NewWithShares<'_>> {
        let new = NewEntity {
            id: EntityId::generate()?,
            entity_type: self.entity_type.clone(),
            document: self.content.take().unwrap_or_default(),
            manifest: &self.manifest,
            secret_ids: vec![(SecretId::generate()?, self.scope)],
            parents: self.parents.take().unwrap_or_default(),
        };
        let targets = self
            .targets
            .iter()
            .map(|(secret, share)| DelegationTarget {
                exchange: secret,
                visibility: share.visibility,
                permission: share.permission,
            })
            .collect();
        Ok((new, targets))
    }
}

/// Records found by a query, each opened once, in the order found.
struct Found<'t> {
    entity_type: &'t EntityType,
    seen: HashSet<EntityId>,
    records: Vec<Record<Map<String, Value>>>,
    unreadable: Vec<(EntityRef, Error)>,
}

impl<'t> Found<'t> {
    fn new(entity_type: &'t EntityType) -> Self {
        Self {
            entity_type,
            seen: HashSet::new(),
            records: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    /// Opens those of `entities` of the wanted type not seen yet that this owner can open and `keep` accepts;
    /// entities it holds no delegation for are skipped, and those that fail to open or verify are set aside in
    /// `unreadable` (one bad record never hides the others). Only the session's own failures (the server cannot be
    /// reached to fetch a signer's bundles) end the query.
    async fn open(
        &mut self,
        session: &Session,
        entities: Vec<EncryptedEntity>,
        keep: impl Fn(&DecryptedEntity) -> bool,
    ) -> Result<()> {
        for entity in entities {
            if entity.entity_type != *self.entity_type || !self.seen.insert(entity.id) {
                continue;
            }
            let opened = match session
                .open_verified(&entity, |stored, session| {
                    decrypt(stored, &session.lookup())
                })
                .await
            {
                Ok(opened) => opened.map_err(Error::from),
                Err(error) if matches!(error.kind(), ErrorKind::Transport | ErrorKind::Server) => {
                    return Err(error);
                }
                Err(error) => Err(error),
            };
            match opened.and_then(|opened| session.check_fresh(&opened).map(|()| opened)) {
                Ok(opened) if keep(&opened) => self.records.push(to_record(opened)),
                Ok(_) => {}
                Err(error) if error.kind() == ErrorKind::NoAccess => {}
                Err(error) => {
                    self.unreadable
                        .push((EntityRef::new(entity.entity_type.clone(), entity.id), error));
                }
            }
        }
        Ok(())
    }
}

/// A JSON record deserialised into `T`.
fn typed<T: DeserializeOwned>(record: Record<Map<String, Value>>) -> Result<Record<T>> {
    Ok(Record {
        content: serde_json::from_value(Value::Object(record.content))?,
        entity: record.entity,
        rev: record.rev,
        permission: record.permission,
        parents: record.parents,
        attachments: record.attachments,
        writer: record.writer,
        creator: record.creator,
    })
}

fn to_record(mut opened: DecryptedEntity) -> Record<Map<String, Value>> {
    let content = std::mem::take(&mut opened.document);
    let attachments = opened
        .attachments
        .iter()
        .map(AttachmentInfo::from_ref)
        .collect();
    let rev = opened.rev;
    let keys = opened.into_keys();
    Record {
        writer: keys.writer,
        creator: keys.creator,
        entity: EntityRef::new(keys.entity_type, keys.id),
        rev,
        content,
        permission: keys.permission,
        parents: keys.owning_entity_ids,
        attachments,
    }
}

pub(crate) fn check_rev(stored: &EncryptedEntity, rev: u64) -> Result<()> {
    if stored.rev == rev {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "the record is at revision {}, not {rev}: it was changed since; read it again and retry with \
                 its current revision",
                stored.rev
            ),
        ))
    }
}

pub(crate) fn check_write(opened: &EntityKeys) -> Result<()> {
    if opened.permission == Permission::Write {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Forbidden,
            "this owner's delegation grants read access only",
        ))
    }
}
