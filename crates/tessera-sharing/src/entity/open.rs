//! Opening an entity: every delegation the reader can open is opened and checked against its statement, the
//! writer's signed proof and chain are verified, and nothing falls back to another delegation (protocol v2).

use super::*;

/// Opens `entity` as the owner of `access`, through the accessible delegation granting the most, after
/// [`open_keys`] verified it.
///
/// # Errors
/// As [`open_keys`]; [`Error::Malformed`] if the sealed document is not a JSON object.
pub fn decrypt<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    access: &L,
) -> Result<DecryptedEntity> {
    let keys = open_keys(entity, access)?;
    let sensitive_json = Zeroizing::new(keys.entity_key.open(
        &entity.encrypted_self.0,
        &encrypted_self_aad(&entity.entity_type, &entity.id),
    )?);
    let sensitive: Map<String, Value> =
        serde_json::from_slice(&sensitive_json).map_err(|_| Error::Malformed {
            what: "encrypted_self",
            reason: "not a JSON object",
        })?;
    let mut document = entity.public.clone();
    merge(&mut document, sensitive);
    Ok(DecryptedEntity {
        rev: entity.rev,
        document,
        attachments: entity.attachments.clone(),
        keys,
    })
}

/// One accessible delegation, opened and checked against its statement.
pub(super) struct OpenedDelegation {
    pub(super) key: DelegationKey,
    pub(super) statement: DelegationStatement,
    pub(super) entity_key: AeadKey,
    pub(super) tag: [u8; 32],
    pub(super) secret_ids: Vec<(SecretId, SecretIdScope)>,
    pub(super) owning_entity_ids: Vec<EntityId>,
    pub(super) secret: std::sync::Arc<ExchangeSecret>,
}

/// Opens and verifies the keys of `entity` for the owner of `access`, failing closed:
///
/// - every delegation `access` can open must open, under its statement bound as associated data (so no clear
///   field of it was changed), with an entity key that matches the key commitment, and name the same creator;
/// - the current version must be signed by its writer, whose signed chain of write delegations must lead from
///   this entity's root at this key epoch;
/// - this owner's permission is the most its own delegations' statements grant.
///
/// No other delegation is ever tried instead of one that fails.
///
/// # Errors
/// [`Error::NoAccess`] if no delegation is made to this owner; [`Error::Crypto`] if anything fails to open or
/// verify; [`Error::UnknownSigner`] if a signer's bundle is not known to `access` yet.
pub fn open_keys<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    access: &L,
) -> Result<EntityKeys> {
    let me = access.owner();
    let root = rules::root(&entity.security_metadata).map_err(|_| Error::Crypto)?;
    let delegations = &entity.security_metadata.delegations;
    let mut opened = Vec::with_capacity(1);
    for (key, secret) in access.exchange_secrets(&entity.entity_type, &mut delegations.keys())? {
        let delegation = delegations.get(&key).ok_or(Error::Crypto)?;
        opened.push(open_delegation(entity, &key, delegation, secret, &root)?);
    }
    let Some(first) = opened.first() else {
        return Err(Error::NoAccess);
    };
    let creator = first.statement.creator;
    if opened.iter().any(|o| o.statement.creator != creator) {
        return Err(Error::Crypto);
    }
    let (writer, writer_chain) = verify_version(entity, &first.entity_key, &root, creator, access)?;
    let best = opened
        .into_iter()
        .filter(|o| o.statement.delegate == me)
        .max_by_key(|o| (o.statement.permission, o.statement.parents.is_empty()))
        .ok_or(Error::NoAccess)?;
    let write_chain = if best.statement.permission != Permission::Write {
        None
    } else if best.statement.is_root() {
        let root_link = writer_chain.into_iter().next().ok_or(Error::Crypto)?;
        if root_link.statement != best.statement {
            return Err(Error::Crypto);
        }
        Some(vec![root_link])
    } else {
        Some(open_write_chain(entity, &best, &root, creator, access)?)
    };
    Ok(EntityKeys {
        id: entity.id,
        entity_type: entity.entity_type.clone(),
        secret_ids: best.secret_ids,
        owning_entity_ids: best.owning_entity_ids,
        delegation_key: best.key,
        permission: best.statement.permission,
        creator,
        writer,
        content_version: entity.content_version,
        key_epoch: entity.key_epoch,
        root,
        write_chain,
        entity_key: best.entity_key,
    })
}

/// Verifies the writer's proof of the current version: returns the writer and its chain.
fn verify_version<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    entity_key: &AeadKey,
    root: &DelegationKey,
    creator: OwnerId,
    access: &L,
) -> Result<(OwnerId, Vec<Link>)> {
    let plaintext = Zeroizing::new(entity_key.open(
        &entity.writer_proof.0,
        &writer_proof_aad(
            &entity.entity_type,
            &entity.id,
            entity.content_version,
            entity.key_epoch,
        ),
    )?);
    let (proof, chain) = decode_writer_proof(&plaintext)?;
    verify_chain(&chain, entity, root, creator, access)?;
    let writer = chain.last().ok_or(Error::Crypto)?.statement.delegate;
    if proof.signer() != writer {
        return Err(Error::Crypto);
    }
    proof.verify(&version_hash(entity, root, creator, writer)?, access)?;
    Ok((writer, chain))
}

/// Opens and verifies the signed chain a write delegation carries; its last link must be that delegation.
fn open_write_chain<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    opened: &OpenedDelegation,
    root: &DelegationKey,
    creator: OwnerId,
    access: &L,
) -> Result<Vec<Link>> {
    let delegation = entity
        .security_metadata
        .delegations
        .get(&opened.key)
        .ok_or(Error::Crypto)?;
    let [sealed] = delegation.chain.as_slice() else {
        return Err(Error::Crypto);
    };
    let bytes = open_delegation_field(
        opened.secret.opening_key(),
        &opened.key,
        DelegationField::Chain,
        &entity.id,
        &[],
        sealed,
    )?;
    let mut dec = Dec::new(&bytes);
    let chain = decode_chain(&mut dec)?;
    dec.end()?;
    verify_chain(&chain, entity, root, creator, access)?;
    if chain.last().map(|link| &link.statement) != Some(&opened.statement) {
        return Err(Error::Crypto);
    }
    Ok(chain)
}

/// Opens one delegation through `secret` and checks it against the statement its clear fields and the secret's
/// parties make.
pub(super) fn open_delegation(
    entity: &EncryptedEntity,
    key: &DelegationKey,
    delegation: &SecureDelegation,
    secret: std::sync::Arc<ExchangeSecret>,
    root: &DelegationKey,
) -> Result<OpenedDelegation> {
    let [sealed_key] = delegation.entity_keys.as_slice() else {
        return Err(Error::Crypto);
    };
    let labels_agree = delegation.delegator.is_none_or(|d| d == secret.delegator())
        && delegation.delegate.is_none_or(|d| d == secret.delegate());
    if !labels_agree {
        return Err(Error::Crypto);
    }
    let mut statement = DelegationStatement {
        entity: entity.id,
        entity_type: entity.entity_type.clone(),
        delegation_key: *key,
        delegator: secret.delegator(),
        delegate: secret.delegate(),
        permission: delegation.permission,
        epoch: entity.key_epoch,
        parents: delegation.parents.clone(),
        root: *root,
        creator: secret.delegator(),
        sealed_fields: sealed_fields_hash(delegation)?,
    };
    let exchange_key = secret.opening_key();
    let payload = open_delegation_field(
        exchange_key,
        key,
        DelegationField::EntityKeys,
        &entity.id,
        &statement.encode(false),
        sealed_key,
    )?;
    let (entity_key, creator, tag) = decode_key_payload(&payload)?;
    statement.creator = creator;
    check_key_commitment(
        &entity_key,
        &entity.entity_type,
        &entity.id,
        &entity.key_commitment,
    )?;
    if (*key == *root) != statement.is_root() {
        return Err(Error::Crypto);
    }
    let open = |field, sealed: &Sealed| {
        open_delegation_field(exchange_key, key, field, &entity.id, &[], sealed)
    };
    let secret_ids = delegation
        .secret_ids
        .iter()
        .map(|sealed| decode_secret_id(&open(DelegationField::SecretIds, sealed)?))
        .collect::<Result<_>>()?;
    let owning_entity_ids = delegation
        .owning_entity_ids
        .iter()
        .map(|sealed| {
            let bytes = open(DelegationField::OwningEntityIds, sealed)?;
            let id: [u8; 16] = bytes.as_slice().try_into().map_err(|_| Error::Crypto)?;
            Ok(EntityId::from_bytes(id))
        })
        .collect::<Result<_>>()?;
    Ok(OpenedDelegation {
        key: *key,
        statement,
        entity_key,
        tag,
        secret_ids,
        owning_entity_ids,
        secret,
    })
}
