//! Revoke-and-rotate: a new key and key epoch, re-wrapped only for delegations the creator verifies as its own.

use super::*;

/// What revoke-and-rotate produced, before its signature: re-seal the attachments into `entity` (with
/// [`crate::attachment::rotate_attachment`] and `opened`'s new key), then [`Rotation::sign`].
pub struct Rotation {
    /// The entity with its new key, re-sealed content and the remaining delegations.
    pub entity: EncryptedEntity,
    /// The keys of the entity under its new key (through the root delegation).
    pub opened: EntityKeys,
    /// Delegations removed: the revoked ones, their descendants, and those the caller could not re-wrap or
    /// verify as its own (their delegates must be shared with again).
    pub removed: BTreeSet<DelegationKey>,
    draft: Draft,
    batch: BatchBuilder,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("entity", &self.entity)
            .field("removed", &self.removed)
            .finish_non_exhaustive()
    }
}

impl Rotation {
    /// Signs the rotated entity (its version, the root delegation and the write delegations re-made at the new
    /// key epoch) with one signature; returns it and its keys.
    ///
    /// # Errors
    /// [`Error::Rule`] if `signer` is not the owner that rotated; [`Error::Primitive`] on a failed random draw.
    pub fn sign(self, signer: &OwnerKeys) -> Result<(EncryptedEntity, EntityKeys)> {
        let _nonces = NonceBatch::begin();
        let Self {
            entity,
            mut opened,
            draft,
            batch,
            ..
        } = self;
        if signer.owner() != draft.writer {
            return Err(RuleViolation::InconsistentRequest(
                "the rotation is signed by the owner that rotated",
            )
            .into());
        }
        let mut draft = draft;
        draft.entity.attachments = entity.attachments;
        let (entity, chain, _) = sign_drafts(vec![draft], batch, signer)?
            .pop()
            .ok_or(Error::Crypto)?;
        opened.write_chain = Some(chain);
        Ok((entity, opened))
    }
}

/// Revokes `revoked` (and their descendants) and gives the entity a new key and key epoch: content is re-sealed
/// and the key re-wrapped for every remaining delegation the caller made itself and can verify as its own (its
/// tag and the current epoch): a delegation the server re-inserted after a revocation, or one a delegate sealed,
/// is removed instead. Attachments keep their place but need new keys: re-seal them, then [`Rotation::sign`].
///
/// Only the creator (the owner of the root delegation) can rotate, so that the root never loses the key.
///
/// # Errors
/// [`Error::Rule`] if a revoked delegation is unknown or the root, or the caller does not hold the root;
/// [`Error::Crypto`] if the current content does not open.
pub fn revoke_and_rotate<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    revoked: &[DelegationKey],
    access: &L,
    signer: &OwnerKeys,
) -> Result<Rotation> {
    let _nonces = NonceBatch::begin();
    let me = signer.owner();
    let metadata = &entity.security_metadata;
    let root = rules::root(metadata)?;
    if opened.delegation_key != root || opened.creator != me || opened.id != entity.id {
        return Err(RuleViolation::InconsistentRequest(
            "only the owner of the root delegation can rotate the entity key",
        )
        .into());
    }
    let mut removed = BTreeSet::new();
    for key in revoked {
        removed.extend(rules::revocation_set(metadata, key)?);
    }
    let tag = tag_key(signer);
    let new_key = AeadKey::generate()?;
    let aad = encrypted_self_aad(&entity.entity_type, &entity.id);
    let sensitive_json = Zeroizing::new(opened.entity_key.open(&entity.encrypted_self.0, &aad)?);
    let mut rotated = entity.clone();
    rotated.encrypted_self = Sealed(new_key.seal(&sensitive_json, &aad)?);
    rotated.key_commitment = key_commitment(&new_key, &entity.entity_type, &entity.id);
    rotated.key_epoch = entity.key_epoch.checked_add(1).ok_or(Error::Malformed {
        what: "rotation",
        reason: "the key epoch is exhausted",
    })?;
    rotated.content_version = entity
        .content_version
        .checked_add(1)
        .ok_or(Error::Malformed {
            what: "rotation",
            reason: "the content version is exhausted",
        })?;

    // Keep only what this owner can verify as its own, then re-make it at the new epoch.
    let mut kept = Vec::new();
    for (key, delegation) in &metadata.delegations {
        if removed.contains(key) {
            continue;
        }
        let verified = match access.exchange_secret(&entity.entity_type, key)? {
            Some(secret) if secret.is_self_signed() && secret.delegator() == me => {
                open_delegation(entity, key, delegation, secret, &root)
                    .ok()
                    .filter(|o| {
                        o.statement.delegator == me
                            && o.statement.creator == me
                            && tessera_primitives::constant_time_eq(
                                &o.tag,
                                &owner_tag(&tag, &o.statement),
                            )
                    })
            }
            _ => None,
        };
        match verified {
            Some(opened) => kept.push((delegation, opened)),
            None if *key == root => return Err(Error::Crypto),
            None => {
                // Never the root, so its revocation set exists.
                removed.extend(rules::revocation_set(metadata, key)?);
            }
        }
    }
    let mut batch = BatchBuilder::default();
    let group = batch.group();
    let mut delegations = std::collections::BTreeMap::new();
    let mut write_chains = Vec::new();
    let mut root_link = None;
    let mut pending = Vec::new();
    for (delegation, old) in kept {
        if removed.contains(&old.key) {
            continue;
        }
        let mut statement = old.statement.clone();
        statement.epoch = rotated.key_epoch;
        let exchange_key = old.secret.sealing_key()?;
        let mut remade = delegation.clone();
        remade.entity_keys = vec![seal_delegation_field(
            exchange_key,
            &old.key,
            DelegationField::EntityKeys,
            &entity.id,
            &statement.encode(false),
            &encode_key_payload(&new_key, me, &owner_tag(&tag, &statement)),
        )?];
        remade.chain = Vec::new();
        if statement.permission == Permission::Write {
            // A write delegation below another than the root cannot get a chain from this owner alone: it goes
            // before anything is signed for it.
            if !statement.is_root() && statement.parents != BTreeSet::from([root]) {
                removed.insert(old.key);
                continue;
            }
            let position = batch.push(group, statement.hash())?;
            if statement.is_root() {
                root_link = Some(ChainLink::New(statement.clone(), position));
            } else {
                pending.push((old.key, exchange_key.clone(), statement.clone(), position));
            }
        }
        delegations.insert(old.key, remade);
    }
    let root_link = root_link.ok_or(Error::Crypto)?;
    for (key, exchange_key, statement, position) in pending {
        write_chains.push((
            key,
            exchange_key,
            vec![root_link.clone(), ChainLink::New(statement, position)],
        ));
    }
    // A delegation whose parent went is detached: remove it with its descendants.
    rotated.security_metadata.delegations = delegations;
    let reachable = rules::descendants(&rotated.security_metadata, &root);
    let detached: Vec<DelegationKey> = rotated
        .security_metadata
        .delegations
        .keys()
        .filter(|k| !reachable.contains(k))
        .copied()
        .collect();
    for key in detached {
        rotated.security_metadata.delegations.remove(&key);
        removed.insert(key);
    }
    rules::validate_metadata(&rotated.security_metadata)?;
    let opened = EntityKeys {
        id: entity.id,
        entity_type: entity.entity_type.clone(),
        secret_ids: opened.secret_ids.clone(),
        owning_entity_ids: opened.owning_entity_ids.clone(),
        delegation_key: root,
        permission: Permission::Write,
        creator: me,
        writer: me,
        content_version: rotated.content_version,
        key_epoch: rotated.key_epoch,
        root,
        write_chain: None,
        entity_key: new_key.clone(),
    };
    let draft = Draft {
        entity: rotated.clone(),
        entity_key: new_key,
        group,
        root,
        creator: me,
        writer: me,
        writer_chain: vec![root_link],
        write_chains,
    };
    Ok(Rotation {
        entity: rotated,
        opened,
        removed,
        draft,
        batch,
    })
}
