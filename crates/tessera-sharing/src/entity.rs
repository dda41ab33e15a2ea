//! Entity operations on the client: create with a root delegation, decrypt, share, revoke, revoke-and-rotate.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use tessera_keys::{DelegationKey, EntityType, ExchangeSecret, FormatVersion};
use tessera_primitives::{AeadKey, Secret32, hmac_sha256};
use zeroize::Zeroizing;

use crate::access::DelegationLookup;
use crate::error::{Error, Result, RuleViolation};
use crate::manifest::{EncryptionManifest, merge};
use crate::model::{
    AttachmentRef, EncryptedEntity, EntityId, Permission, Sealed, SearchTag, SecureDelegation,
    SecurityMetadata, ShareEntry,
};
use crate::rules;
use crate::seal::{
    DelegationField, check_key_commitment, encrypted_self_aad, key_commitment, key_from_bytes,
    open_delegation_field, seal_delegation_field,
};

const TAG_SEARCH: &[u8] = b"tessera/v1/sfk\0";

/// A secret id: 32 random bytes attached to a parent entity (a patient) and shared with its delegates, from which
/// its children's search tags are derived.
///
/// # Security
/// Whoever knows it can find the parent's children; wiped on drop, never printed.
#[derive(Clone)]
pub struct SecretId(Secret32);

tessera_primitives::redacted_debug!(SecretId);

impl SecretId {
    /// Draws a new secret id.
    ///
    /// # Errors
    /// If the operating system's generator fails.
    pub fn generate() -> Result<Self> {
        Ok(Self(Secret32::generate()?))
    }

    /// Whether `other` is the same secret id, compared in constant time.
    ///
    /// # Security
    /// Secret ids have no `PartialEq`, so that no comparison of them can leak timing through `==`.
    pub fn ct_eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0)
    }

    /// The search tag of this parent's children of `child_type`: `HMAC-SHA-256(secret id, "tessera/v1/sfk" ‖ 0x00 ‖ type)`.
    pub fn search_tag(&self, child_type: &EntityType) -> SearchTag {
        let mut message = TAG_SEARCH.to_vec();
        message.extend_from_slice(child_type.as_str().as_bytes());
        SearchTag::from_bytes(hmac_sha256(self.0.expose_secret(), &message))
    }
}

/// Whether a secret id is shared with the delegates or kept for the creator alone (the confidential option).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretIdScope {
    /// Sealed in every delegation, so every delegate can find the children.
    Shared,
    /// Sealed only in the root delegation: children tagged with it are findable by the creator only.
    Confidential,
}

/// A link from a new child entity to its parent: the parent's id and one of its secret ids.
#[derive(Clone, Debug)]
pub struct ParentLink {
    /// The parent's id, sealed into the child's delegations (`owning_entity_ids`).
    pub parent: EntityId,
    /// A secret id of the parent, from which the child's search tag is derived.
    pub secret_id: SecretId,
}

/// Which of a delegation's parties appear in clear in the stored metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    /// Both ids in clear, and the exchange data id.
    Explicit,
    /// The delegate's id is hidden (a patient receiving data).
    AnonymousDelegate,
    /// The delegator's id is hidden (a patient sharing data).
    AnonymousDelegator,
    /// Neither id appears.
    Anonymous,
}

/// A delegation to make: through which exchange data, how visible, with which permission.
#[derive(Clone, Copy, Debug)]
pub struct DelegationTarget<'a> {
    /// Exchange data the sharer signed, from the sharer to the delegate (from the sharer to itself for a root).
    pub exchange: &'a ExchangeSecret,
    /// Which parties appear in clear.
    pub visibility: Visibility,
    /// What the delegate may do.
    pub permission: Permission,
}

/// A new entity before encryption.
#[derive(Debug)]
pub struct NewEntity<'a> {
    /// Its id.
    pub id: EntityId,
    /// Its type.
    pub entity_type: EntityType,
    /// The whole document; the manifest decides what is sealed.
    pub document: Map<String, Value>,
    /// The encryption manifest of the type.
    pub manifest: &'a EncryptionManifest,
    /// Secret ids of this entity, for linking children to it.
    pub secret_ids: Vec<(SecretId, SecretIdScope)>,
    /// Links to parents.
    pub parents: Vec<ParentLink>,
}

/// What an owner's delegation of an entity holds, opened: the entity key, the secret ids and the parents, but not
/// the content. It is what sharing, updating, rotating and attachments need ([`open_keys`]), so they never decrypt
/// a document they do not read; [`DecryptedEntity`] adds the content.
#[derive(Debug)]
pub struct EntityKeys {
    /// The entity's id.
    pub id: EntityId,
    /// Its type.
    pub entity_type: EntityType,
    /// Secret ids this owner's delegation holds.
    pub secret_ids: Vec<(SecretId, SecretIdScope)>,
    /// Parents this owner's delegation names.
    pub owning_entity_ids: Vec<EntityId>,
    /// The delegation this owner opened it through.
    pub delegation_key: DelegationKey,
    /// What that delegation lets this owner do.
    pub permission: Permission,
    entity_key: AeadKey,
}

impl EntityKeys {
    /// The entity key, for the content and the attachments.
    pub(crate) fn entity_key(&self) -> &AeadKey {
        &self.entity_key
    }
}

/// An entity opened by one owner: its [`EntityKeys`] (whose fields it gives through `Deref`, so that
/// `opened.delegation_key` reads as before) and its content.
///
/// Every operation that needs only the keys takes `&EntityKeys`, and a `&DecryptedEntity` coerces to it.
#[derive(Debug)]
pub struct DecryptedEntity {
    /// Its revision.
    pub rev: u64,
    /// The whole document, public and sensitive fields merged.
    pub document: Map<String, Value>,
    /// Its attachments.
    pub attachments: Vec<AttachmentRef>,
    keys: EntityKeys,
}

impl DecryptedEntity {
    /// The keys the entity was opened with.
    pub fn keys(&self) -> &EntityKeys {
        &self.keys
    }

    /// The keys, without the content.
    pub fn into_keys(self) -> EntityKeys {
        self.keys
    }
}

impl std::ops::Deref for DecryptedEntity {
    type Target = EntityKeys;

    fn deref(&self) -> &EntityKeys {
        &self.keys
    }
}

/// Creates and encrypts an entity with its root delegation (through `root`, exchange data of the creator with
/// itself) and the creator's auto-delegations.
///
/// # Errors
/// [`Error::Keys`] with `NotSignedBySelf` if an exchange data was not signed by the creator;
/// [`Error::Rule`] if `root` is not self exchange data or does not grant write; [`Error::Primitive`] on a failed
/// random draw.
pub fn create(
    new: NewEntity<'_>,
    root: DelegationTarget<'_>,
    auto_delegations: &[DelegationTarget<'_>],
) -> Result<(EncryptedEntity, DecryptedEntity)> {
    if root.exchange.delegator() != root.exchange.delegate() {
        return Err(RuleViolation::InconsistentRequest(
            "the root delegation needs exchange data of the creator with itself",
        )
        .into());
    }
    if root.permission != Permission::Write {
        return Err(RuleViolation::RootNotWrite.into());
    }
    let NewEntity {
        id,
        entity_type,
        document,
        manifest,
        secret_ids,
        parents,
    } = new;
    let entity_key = AeadKey::generate()?;
    let (public, sensitive, encrypted_self) =
        seal_document(&entity_key, &entity_type, &id, manifest, document)?;
    let mut entity = EncryptedEntity {
        version: FormatVersion::V2,
        id,
        key_commitment: key_commitment(&entity_key, &entity_type, &id),
        secret_foreign_keys: parents
            .iter()
            .map(|p| p.secret_id.search_tag(&entity_type))
            .collect(),
        entity_type,
        rev: 0,
        public,
        encrypted_self,
        security_metadata: SecurityMetadata::default(),
        attachments: Vec::new(),
    };
    let owning: Vec<EntityId> = parents.iter().map(|p| p.parent).collect();
    let contents = DelegationContents {
        entity_key: &entity_key,
        secret_ids: &secret_ids,
        owning_entity_ids: &owning,
    };
    let root_key = root.exchange.delegation_key(&entity.entity_type);
    let root_delegation = build_delegation(&entity, root, &contents, true, BTreeSet::new())?;
    entity
        .security_metadata
        .delegations
        .insert(root_key, root_delegation);
    for target in auto_delegations {
        let key = target.exchange.delegation_key(&entity.entity_type);
        if entity.security_metadata.delegations.contains_key(&key) {
            continue;
        }
        let delegation = build_delegation(
            &entity,
            *target,
            &contents,
            false,
            BTreeSet::from([root_key]),
        )?;
        entity.security_metadata.delegations.insert(key, delegation);
    }
    rules::validate_metadata(&entity.security_metadata)?;
    let opened = DecryptedEntity {
        rev: 0,
        document: {
            let mut document = entity.public.clone();
            merge(&mut document, sensitive);
            document
        },
        attachments: Vec::new(),
        keys: EntityKeys {
            id,
            entity_type: entity.entity_type.clone(),
            secret_ids,
            owning_entity_ids: owning,
            delegation_key: root_key,
            permission: Permission::Write,
            entity_key,
        },
    };
    Ok((entity, opened))
}

/// Opens `entity` as the owner of `access`, through the accessible delegation granting the most.
///
/// # Errors
/// [`Error::NoAccess`] if no delegation is accessible; [`Error::Crypto`] if a sealed value does not open or the
/// entity key does not match the commitment; [`Error::Malformed`] if the sealed document is not a JSON object.
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

/// Opens the delegation of `entity` that grants the owner of `access` the most, without decrypting the content:
/// the entity key (checked against the commitment), the secret ids and the parents. Sharing, updating, rotating
/// and attachments need no more.
///
/// # Errors
/// [`Error::NoAccess`] if no delegation is accessible; [`Error::Crypto`] if no accessible delegation opens or its
/// entity key does not match the commitment, or if `access` cannot produce a secret it holds.
pub fn open_keys<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    access: &L,
) -> Result<EntityKeys> {
    let owner = access.owner();
    let mut candidates = Vec::new();
    for (key, delegation) in &entity.security_metadata.delegations {
        if let Some(secret) = access.exchange_secret(&entity.entity_type, key)? {
            candidates.push((key, delegation, secret));
        }
    }
    if candidates.is_empty() {
        return Err(Error::NoAccess);
    }
    // Try every accessible delegation, the one granting the most first (the root before others), so that one
    // damaged delegation does not hide the others.
    candidates.sort_by_key(|(_, delegation, secret)| {
        std::cmp::Reverse((
            delegation.permission,
            delegation.parents.is_empty(),
            // A delegation made to this owner before one it made for someone else: an onward share must hang
            // under the sharer's own delegation, or revoking the other party would cut it too.
            secret.delegate() == owner,
        ))
    });
    let mut last_error = Error::Crypto;
    for (delegation_key, delegation, secret) in candidates {
        match open_through(entity, delegation_key, delegation, &secret) {
            Ok(opened) => return Ok(opened),
            Err(error) => last_error = error,
        }
    }
    Err(last_error)
}

/// Opens the keys of `entity` through one delegation.
fn open_through(
    entity: &EncryptedEntity,
    delegation_key: &DelegationKey,
    delegation: &SecureDelegation,
    secret: &ExchangeSecret,
) -> Result<EntityKeys> {
    let exchange_key = secret.opening_key();
    let open = |field, sealed: &Sealed| {
        open_delegation_field(exchange_key, delegation_key, field, &entity.id, sealed)
    };

    let entity_key = delegation
        .entity_keys
        .iter()
        .filter_map(|sealed| open(DelegationField::EntityKeys, sealed).ok())
        .filter_map(|bytes| key_from_bytes(&bytes).ok())
        .find(|key| {
            check_key_commitment(key, &entity.entity_type, &entity.id, &entity.key_commitment)
                .is_ok()
        })
        .ok_or(Error::Crypto)?;
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
    Ok(EntityKeys {
        id: entity.id,
        entity_type: entity.entity_type.clone(),
        secret_ids,
        owning_entity_ids,
        delegation_key: *delegation_key,
        permission: delegation.permission,
        entity_key,
    })
}

/// Builds the delegations that share `opened` with each target, as children of the sharer's own delegation.
/// A target whose delegation already exists is skipped (a share never overwrites). Confidential secret ids stay out.
///
/// # Errors
/// [`Error::Rule`] if a target would get more than the sharer has; [`Error::Keys`] (`NotSignedBySelf`) if the
/// sharer did not sign a target's exchange data.
pub fn share(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    targets: &[DelegationTarget<'_>],
) -> Result<Vec<ShareEntry>> {
    let shared_ids: Vec<(SecretId, SecretIdScope)> = opened
        .secret_ids
        .iter()
        .filter(|(_, scope)| *scope == SecretIdScope::Shared)
        .cloned()
        .collect();
    let contents = DelegationContents {
        entity_key: &opened.entity_key,
        secret_ids: &shared_ids,
        owning_entity_ids: &opened.owning_entity_ids,
    };
    let mut entries = Vec::with_capacity(targets.len());
    let mut seen = BTreeSet::new();
    for target in targets {
        let delegation_key = target.exchange.delegation_key(&entity.entity_type);
        if entity
            .security_metadata
            .delegations
            .contains_key(&delegation_key)
            || !seen.insert(delegation_key)
        {
            continue;
        }
        if target.permission > opened.permission {
            return Err(RuleViolation::PermissionWidened {
                child: delegation_key,
                parent: opened.delegation_key,
            }
            .into());
        }
        let delegation = build_delegation(
            entity,
            *target,
            &contents,
            false,
            BTreeSet::from([opened.delegation_key]),
        )?;
        entries.push(ShareEntry {
            entity_id: entity.id,
            delegation_key,
            delegation,
        });
    }
    Ok(entries)
}

/// `entity` with `document` as its new content: split by `manifest` and sealed under the entity's current key, so
/// that the key commitment, the delegations and every delegate's access stay as they are. Send it as a plain update
/// naming the revision it replaces.
///
/// # Errors
/// [`Error::Malformed`] if `opened` is another entity or the document cannot be serialised; [`Error::Crypto`] if
/// `opened` holds an old key (the entity was rotated since it was opened).
pub fn update(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    document: Map<String, Value>,
    manifest: &EncryptionManifest,
) -> Result<EncryptedEntity> {
    if opened.id != entity.id || opened.entity_type != entity.entity_type {
        return Err(Error::Malformed {
            what: "update",
            reason: "the opened entity is another one",
        });
    }
    check_key_commitment(
        &opened.entity_key,
        &entity.entity_type,
        &entity.id,
        &entity.key_commitment,
    )?;
    let (public, _, encrypted_self) = seal_document(
        &opened.entity_key,
        &entity.entity_type,
        &entity.id,
        manifest,
        document,
    )?;
    let mut updated = entity.clone();
    updated.public = public;
    updated.encrypted_self = encrypted_self;
    Ok(updated)
}

/// What revoke-and-rotate produced.
#[derive(Debug)]
pub struct Rotation {
    /// The entity with its new key, re-sealed content and the remaining delegations.
    pub entity: EncryptedEntity,
    /// The keys of the entity under its new key (through the root delegation).
    pub opened: EntityKeys,
    /// Delegations removed: the revoked ones, their descendants, and those the caller could not re-wrap
    /// (their delegates must be shared with again).
    pub removed: BTreeSet<DelegationKey>,
}

/// Revokes `revoked` (and their descendants) and gives the entity a new key: content is re-sealed and the key is
/// re-wrapped for every remaining delegation whose exchange data the caller signed. Attachments keep their place
/// but need new keys: re-seal them with [`crate::attachment::rotate_attachment`].
///
/// Only the owner of the root delegation can rotate, so that the root never loses the key.
///
/// # Errors
/// [`Error::Rule`] if a revoked delegation is unknown or the root, or the caller does not hold the root;
/// [`Error::Crypto`] if the current content does not open.
pub fn revoke_and_rotate<L: DelegationLookup + ?Sized>(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    revoked: &[DelegationKey],
    access: &L,
) -> Result<Rotation> {
    let metadata = &entity.security_metadata;
    let root = rules::root(metadata)?;
    if opened.delegation_key != root {
        return Err(RuleViolation::InconsistentRequest(
            "only the owner of the root delegation can rotate the entity key",
        )
        .into());
    }
    // The root must receive the new key, or its owner would lose the entity.
    let root_reachable = access
        .exchange_secret(&entity.entity_type, &root)?
        .is_some_and(|secret| secret.sealing_key().is_ok());
    if !root_reachable {
        return Err(Error::NoAccess);
    }
    let mut removed = BTreeSet::new();
    for key in revoked {
        removed.extend(rules::revocation_set(metadata, key)?);
    }
    let new_key = AeadKey::generate()?;
    let aad = encrypted_self_aad(&entity.entity_type, &entity.id);
    let sensitive_json = Zeroizing::new(opened.entity_key.open(&entity.encrypted_self.0, &aad)?);
    let mut rotated = entity.clone();
    rotated.encrypted_self = Sealed(new_key.seal(&sensitive_json, &aad)?);
    rotated.key_commitment = key_commitment(&new_key, &entity.entity_type, &entity.id);

    let mut delegations = metadata.delegations.clone();
    delegations.retain(|key, _| !removed.contains(key));
    let mut unreachable = Vec::new();
    for (key, delegation) in &mut delegations {
        let secret = access.exchange_secret(&entity.entity_type, key)?;
        match secret.as_deref().and_then(|s| s.sealing_key().ok()) {
            Some(exchange_key) => {
                delegation.entity_keys = vec![seal_delegation_field(
                    exchange_key,
                    key,
                    DelegationField::EntityKeys,
                    &entity.id,
                    new_key.expose_secret(),
                )?];
            }
            None => unreachable.push(*key),
        }
    }
    rotated.security_metadata.delegations = delegations;
    for key in unreachable {
        if !rotated.security_metadata.delegations.contains_key(&key) {
            // Already removed below an unreachable parent.
            continue;
        }
        // Never the root (checked above), so the revocation set exists.
        let unreachable_set = rules::revocation_set(&rotated.security_metadata, &key)?;
        rotated
            .security_metadata
            .delegations
            .retain(|k, _| !unreachable_set.contains(k));
        removed.extend(unreachable_set);
    }
    rules::validate_metadata(&rotated.security_metadata)?;
    let opened = EntityKeys {
        id: entity.id,
        entity_type: entity.entity_type.clone(),
        secret_ids: opened.secret_ids.clone(),
        owning_entity_ids: opened.owning_entity_ids.clone(),
        delegation_key: root,
        permission: Permission::Write,
        entity_key: new_key,
    };
    Ok(Rotation {
        entity: rotated,
        opened,
        removed,
    })
}

/// A document split by its manifest: the public part, the sensitive part, and the sensitive part sealed.
type SealedDocument = (Map<String, Value>, Map<String, Value>, Sealed);

/// Splits `document` by `manifest` and seals the sensitive part under `key`: `(public, sensitive, encrypted_self)`.
fn seal_document(
    key: &AeadKey,
    entity_type: &EntityType,
    id: &EntityId,
    manifest: &EncryptionManifest,
    document: Map<String, Value>,
) -> Result<SealedDocument> {
    let (public, sensitive) = manifest.split(document);
    let json = Zeroizing::new(
        serde_json::to_vec(&sensitive).map_err(|_| Error::Malformed {
            what: "document",
            reason: "not serialisable as JSON",
        })?,
    );
    let sealed = Sealed(key.seal(&json, &encrypted_self_aad(entity_type, id))?);
    Ok((public, sensitive, sealed))
}

/// The values every new delegation of an entity seals.
struct DelegationContents<'a> {
    entity_key: &'a AeadKey,
    secret_ids: &'a [(SecretId, SecretIdScope)],
    owning_entity_ids: &'a [EntityId],
}

fn build_delegation(
    entity: &EncryptedEntity,
    target: DelegationTarget<'_>,
    contents: &DelegationContents<'_>,
    is_root: bool,
    parents: BTreeSet<DelegationKey>,
) -> Result<SecureDelegation> {
    let exchange = target.exchange;
    let key = exchange.sealing_key()?;
    let delegation_key = exchange.delegation_key(&entity.entity_type);
    let seal =
        |field, value: &[u8]| seal_delegation_field(key, &delegation_key, field, &entity.id, value);
    let (delegator, delegate) = match target.visibility {
        Visibility::Explicit => (Some(exchange.delegator()), Some(exchange.delegate())),
        Visibility::AnonymousDelegate => (Some(exchange.delegator()), None),
        Visibility::AnonymousDelegator => (None, Some(exchange.delegate())),
        Visibility::Anonymous => (None, None),
    };
    let secret_ids = contents
        .secret_ids
        .iter()
        .filter(|(_, scope)| is_root || *scope == SecretIdScope::Shared)
        .map(|(id, scope)| seal(DelegationField::SecretIds, &encode_secret_id(id, *scope)))
        .collect::<Result<_>>()?;
    let owning_entity_ids = contents
        .owning_entity_ids
        .iter()
        .map(|id| seal(DelegationField::OwningEntityIds, id.as_bytes()))
        .collect::<Result<_>>()?;
    Ok(SecureDelegation {
        delegator,
        delegate,
        exchange_data_id: (delegator.is_some() && delegate.is_some()).then(|| exchange.id()),
        entity_keys: vec![seal(
            DelegationField::EntityKeys,
            contents.entity_key.expose_secret(),
        )?],
        secret_ids,
        owning_entity_ids,
        parents,
        permission: target.permission,
    })
}

/// A sealed secret id: `scope (0 shared, 1 confidential) ‖ 32 bytes`.
fn encode_secret_id(id: &SecretId, scope: SecretIdScope) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(33));
    bytes.push(u8::from(scope == SecretIdScope::Confidential));
    bytes.extend_from_slice(id.0.expose_secret());
    bytes
}

fn decode_secret_id(bytes: &[u8]) -> Result<(SecretId, SecretIdScope)> {
    let [flag, rest @ ..] = bytes else {
        return Err(Error::Crypto);
    };
    let scope = match flag {
        0 => SecretIdScope::Shared,
        1 => SecretIdScope::Confidential,
        _ => return Err(Error::Crypto),
    };
    Ok((
        SecretId(Secret32::try_from(rest).map_err(|_| Error::Crypto)?),
        scope,
    ))
}
