//! Entity operations on the client: create with a root delegation, decrypt, share, revoke, revoke-and-rotate.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use tessera_keys::{DelegationKey, EntityType, ExchangeSecret, FormatVersion, OwnerId, OwnerKeys};
use tessera_primitives::{AeadKey, HmacSha256Key, NonceBatch, Secret32, hmac_sha256, sha256};
use zeroize::Zeroizing;

use crate::access::DelegationLookup;
use crate::error::{Error, Result, RuleViolation};
use crate::manifest::{EncryptionManifest, merge};
use crate::model::{
    AttachmentRef, EncryptedEntity, EntityId, Permission, Sealed, SearchTag, SecureDelegation,
    SecurityMetadata, ShareEntry,
};
use crate::proof::{
    BatchBuilder, Dec, DelegationStatement, Enc, Link, decode_chain, decode_writer_proof,
    encode_chain, encode_writer_proof, sealed_fields_hash, verify_chain, version_hash,
};
use crate::rules;
use crate::seal::{
    DelegationField, check_key_commitment, encrypted_self_aad, key_commitment, key_from_bytes,
    open_delegation_field, seal_delegation_field, writer_proof_aad,
};

mod open;
mod payload;
mod rotate;
mod sign;

use open::open_delegation;
pub use open::{decrypt, open_keys};
use payload::{decode_key_payload, decode_secret_id, encode_key_payload, encode_secret_id};
pub use rotate::{Rotation, revoke_and_rotate};
use sign::{ChainLink, Draft, seal_chain, sign_drafts};

const TAG_SEARCH: &[u8] = b"tessera/v1/sfk\0";
const TAG_DELEGATION_TAG: &[u8] = b"tessera/v2/delegation-tag";

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

/// What an owner's delegation of an entity holds, opened and verified: the entity key, the secret ids and the
/// parents, who created the entity and who wrote its current version, but not the content. It is what sharing,
/// updating, rotating and attachments need ([`open_keys`]), so they never decrypt a document they do not read;
/// [`DecryptedEntity`] adds the content.
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
    /// What that delegation lets this owner do (from the delegation's authenticated statement, not its clear label).
    pub permission: Permission,
    /// The owner that created the entity (its root delegation's owner).
    pub creator: OwnerId,
    /// The owner that wrote (and signed) the current version.
    pub writer: OwnerId,
    /// The current version's content version (signed by its writer).
    pub content_version: u64,
    /// The current key epoch (signed by the writer, bound into every delegation).
    pub key_epoch: u32,
    root: DelegationKey,
    /// This owner's signed chain of write delegations from the root, when it holds write.
    write_chain: Option<Vec<Link>>,
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

impl AsRef<EntityKeys> for EntityKeys {
    fn as_ref(&self) -> &EntityKeys {
        self
    }
}

impl AsRef<EntityKeys> for DecryptedEntity {
    fn as_ref(&self) -> &EntityKeys {
        &self.keys
    }
}

impl std::ops::Deref for DecryptedEntity {
    type Target = EntityKeys;

    fn deref(&self) -> &EntityKeys {
        &self.keys
    }
}

/// The key with which an owner tags the delegations it makes, so that it recognises them later (a delegate knows
/// the exchange key and could seal a look-alike; it cannot make the tag): `HMAC-SHA-256(self key,
/// "tessera/v2/delegation-tag")`.
fn tag_key(owner: &OwnerKeys) -> HmacSha256Key {
    let key = Zeroizing::new(hmac_sha256(
        owner.self_key().expose_secret(),
        TAG_DELEGATION_TAG,
    ));
    HmacSha256Key::new(key.as_slice())
}

/// Creates and encrypts an entity with its root delegation (through `root`, exchange data of the creator with
/// itself) and the creator's auto-delegations, signed by the creator.
///
/// # Errors
/// [`Error::Keys`] with `NotSignedBySelf` if an exchange data was not signed by the creator;
/// [`Error::Rule`] if `root` is not self exchange data or does not grant write; [`Error::Primitive`] on a failed
/// random draw.
pub fn create(
    new: NewEntity<'_>,
    root: DelegationTarget<'_>,
    auto_delegations: &[DelegationTarget<'_>],
    signer: &OwnerKeys,
) -> Result<(EncryptedEntity, DecryptedEntity)> {
    let _nonces = NonceBatch::begin();
    let mut batch = BatchBuilder::default();
    let tag = tag_key(signer);
    let (draft, sensitive, secret_ids, owning) = draft_new(
        new,
        root,
        auto_delegations,
        signer,
        &tag,
        &mut KeyMemo::default(),
        &mut batch,
    )?;
    let root_key = draft.root;
    let (entity, chain, entity_key) = sign_drafts(vec![draft], batch, signer)?
        .pop()
        .ok_or(Error::Crypto)?;
    let mut document = entity.public.clone();
    merge(&mut document, sensitive);
    let opened = DecryptedEntity {
        rev: 0,
        document,
        attachments: Vec::new(),
        keys: EntityKeys {
            id: entity.id,
            entity_type: entity.entity_type.clone(),
            secret_ids,
            owning_entity_ids: owning,
            delegation_key: root_key,
            permission: Permission::Write,
            creator: signer.owner(),
            writer: signer.owner(),
            content_version: entity.content_version,
            key_epoch: entity.key_epoch,
            root: root_key,
            write_chain: Some(chain),
            entity_key,
        },
    };
    Ok((entity, opened))
}

/// One record of [`create_many`]: the entity and its auto-delegations.
pub type NewWithShares<'a> = (NewEntity<'a>, Vec<DelegationTarget<'a>>);

/// Creates and encrypts several entities as [`create`] does, signed together with one signature.
///
/// # Errors
/// As [`create`].
pub fn create_many(
    entities: Vec<NewWithShares<'_>>,
    root: DelegationTarget<'_>,
    signer: &OwnerKeys,
) -> Result<Vec<EncryptedEntity>> {
    let _nonces = NonceBatch::begin();
    let mut batch = BatchBuilder::default();
    let tag = tag_key(signer);
    let mut drafts = Vec::with_capacity(entities.len());
    let mut keys = KeyMemo::default();
    for (new, autos) in entities {
        drafts.push(draft_new(new, root, &autos, signer, &tag, &mut keys, &mut batch)?.0);
    }
    Ok(sign_drafts(drafts, batch, signer)?
        .into_iter()
        .map(|(entity, _, _)| entity)
        .collect())
}

/// The draft of a new entity, with its sensitive part, secret ids and parents.
type NewDraft = (
    Draft,
    Map<String, Value>,
    Vec<(SecretId, SecretIdScope)>,
    Vec<EntityId>,
);

/// The delegation keys of the exchange data an operation delegates through, for one entity type at a time: a
/// thousand records created for the same partners derive each partner's key once, not once per record.
#[derive(Default)]
struct KeyMemo {
    entity_type: Option<EntityType>,
    keys: std::collections::HashMap<tessera_keys::ExchangeDataId, DelegationKey>,
}

impl KeyMemo {
    fn delegation_key(
        &mut self,
        exchange: &ExchangeSecret,
        entity_type: &EntityType,
    ) -> DelegationKey {
        if self.entity_type.as_ref() != Some(entity_type) {
            self.entity_type = Some(entity_type.clone());
            self.keys.clear();
        }
        *self
            .keys
            .entry(exchange.id())
            .or_insert_with(|| exchange.delegation_key(entity_type))
    }
}

fn draft_new(
    new: NewEntity<'_>,
    root: DelegationTarget<'_>,
    auto_delegations: &[DelegationTarget<'_>],
    signer: &OwnerKeys,
    tag: &HmacSha256Key,
    keys: &mut KeyMemo,
    batch: &mut BatchBuilder,
) -> Result<NewDraft> {
    let me = signer.owner();
    if root.exchange.delegator() != me || root.exchange.delegate() != me {
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
        content_version: 1,
        key_epoch: 0,
        public,
        encrypted_self,
        security_metadata: SecurityMetadata::default(),
        attachments: Vec::new(),
        writer_proof: Sealed(Vec::new()),
    };
    let owning: Vec<EntityId> = parents.iter().map(|p| p.parent).collect();
    let root_key = keys.delegation_key(root.exchange, &entity.entity_type);
    let contents = DelegationContents {
        entity_key: &entity_key,
        secret_ids: &secret_ids,
        owning_entity_ids: &owning,
        root: root_key,
        creator: me,
        tag,
    };
    let group = batch.group();
    let built = build_delegation(&entity, root, root_key, &contents, BTreeSet::new())?;
    let root_link = ChainLink::New(
        built.statement.clone(),
        batch.push(group, built.statement_hash())?,
    );
    entity
        .security_metadata
        .delegations
        .insert(root_key, built.delegation);
    let mut write_chains = Vec::new();
    for target in auto_delegations {
        let key = keys.delegation_key(target.exchange, &entity.entity_type);
        if entity.security_metadata.delegations.contains_key(&key) {
            continue;
        }
        let built = build_delegation(&entity, *target, key, &contents, BTreeSet::from([root_key]))?;
        if built.statement.permission == Permission::Write {
            let position = batch.push(group, built.statement_hash())?;
            write_chains.push((
                key,
                target.exchange.sealing_key()?.clone(),
                vec![root_link.clone(), ChainLink::New(built.statement, position)],
            ));
        }
        entity
            .security_metadata
            .delegations
            .insert(key, built.delegation);
    }
    // Valid by construction (one root, every other delegation its child, none wider than write); the server and
    // every reader check it again.
    debug_assert!(rules::validate_metadata(&entity.security_metadata).is_ok());
    let draft = Draft {
        entity,
        entity_key,
        group,
        root: root_key,
        creator: me,
        writer: me,
        writer_chain: vec![root_link],
        write_chains,
    };
    Ok((draft, sensitive, secret_ids, owning))
}

/// Builds the delegations that share `opened` with each target, as children of the sharer's own delegation.
/// A target whose delegation already exists is skipped (a share never overwrites). Confidential secret ids stay out.
/// Write delegations are signed by the sharer (one signature for all of them) and carry the sharer's chain.
///
/// # Errors
/// [`Error::Rule`] if a target would get more than the sharer has; [`Error::Keys`] (`NotSignedBySelf`) if the
/// sharer did not sign a target's exchange data; [`Error::Rule`] if `signer` is not the owner `opened` was
/// opened for.
pub fn share(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    targets: &[DelegationTarget<'_>],
    signer: &OwnerKeys,
) -> Result<Vec<ShareEntry>> {
    let _nonces = NonceBatch::begin();
    let shared_ids: Vec<(SecretId, SecretIdScope)> = opened
        .secret_ids
        .iter()
        .filter(|(_, scope)| *scope == SecretIdScope::Shared)
        .cloned()
        .collect();
    let tag = tag_key(signer);
    let contents = DelegationContents {
        entity_key: &opened.entity_key,
        secret_ids: &shared_ids,
        owning_entity_ids: &opened.owning_entity_ids,
        root: opened.root,
        creator: opened.creator,
        tag: &tag,
    };
    let mut entries = Vec::with_capacity(targets.len());
    let mut seen = BTreeSet::new();
    let mut batch = BatchBuilder::default();
    let group = batch.group();
    let mut write_chains = Vec::new();
    for target in targets {
        if target.exchange.delegator() != signer.owner() {
            return Err(RuleViolation::InconsistentRequest(
                "a share goes through exchange data the sharer signed",
            )
            .into());
        }
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
        let built = build_delegation(
            entity,
            *target,
            delegation_key,
            &contents,
            BTreeSet::from([opened.delegation_key]),
        )?;
        if built.statement.permission == Permission::Write {
            let chain = opened.write_chain.clone().ok_or(Error::Crypto)?;
            let position = batch.push(group, built.statement_hash())?;
            write_chains.push((
                entries.len(),
                target.exchange.sealing_key()?.clone(),
                chain,
                built.statement,
                position,
            ));
        }
        entries.push(ShareEntry {
            entity_id: entity.id,
            delegation_key,
            delegation: built.delegation,
        });
    }
    if !write_chains.is_empty() {
        let signed = batch.sign(signer)?;
        for (index, exchange_key, mut chain, statement, position) in write_chains {
            chain.push(Link::new(statement, signed.proof(group, position)?));
            if let Some(entry) = entries.get_mut(index) {
                entry.delegation.chain = vec![seal_chain(
                    &exchange_key,
                    &entry.delegation_key,
                    &entity.id,
                    &chain,
                )?];
            }
        }
    }
    Ok(entries)
}

/// `entity` with `document` as its new content: split by `manifest` and sealed under the entity's current key, so
/// that the key commitment, the delegations and every delegate's access stay as they are; a new content version
/// signed by this owner. Send it as a plain update naming the revision it replaces.
///
/// # Errors
/// As [`revise`]; [`Error::Malformed`] if the document cannot be serialised.
pub fn update(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    document: Map<String, Value>,
    manifest: &EncryptionManifest,
    signer: &OwnerKeys,
) -> Result<EncryptedEntity> {
    revise(entity, opened, signer, |updated| {
        let (public, _, encrypted_self) = seal_document(
            &opened.entity_key,
            &entity.entity_type,
            &entity.id,
            manifest,
            document,
        )?;
        updated.public = public;
        updated.encrypted_self = encrypted_self;
        Ok(())
    })
}

/// A new version of `entity` written by `signer`: `change` edits a copy (its content, its attachment references),
/// the content version moves one up, and the version is signed with the writer's chain.
///
/// # Errors
/// [`Error::Malformed`] if `opened` is another entity; [`Error::Crypto`] if `opened` holds an old key (the entity
/// was rotated since it was opened); [`Error::Rule`] if `opened` does not grant write or belongs to another owner;
/// what `change` returns.
pub fn revise(
    entity: &EncryptedEntity,
    opened: &EntityKeys,
    signer: &OwnerKeys,
    change: impl FnOnce(&mut EncryptedEntity) -> Result<()>,
) -> Result<EncryptedEntity> {
    let _nonces = NonceBatch::begin();
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
    let chain = match &opened.write_chain {
        Some(chain)
            if chain
                .last()
                .is_some_and(|l| l.statement.delegate == signer.owner()) =>
        {
            chain.clone()
        }
        _ => return Err(RuleViolation::WriteRequired.into()),
    };
    let mut updated = entity.clone();
    change(&mut updated)?;
    updated.id = entity.id;
    updated.entity_type = entity.entity_type.clone();
    updated.key_commitment = entity.key_commitment;
    updated.key_epoch = entity.key_epoch;
    updated.content_version = entity
        .content_version
        .checked_add(1)
        .ok_or(Error::Malformed {
            what: "update",
            reason: "the content version is exhausted",
        })?;
    let mut batch = BatchBuilder::default();
    let group = batch.group();
    let draft = Draft {
        entity: updated,
        entity_key: opened.entity_key.clone(),
        group,
        root: opened.root,
        creator: opened.creator,
        writer: signer.owner(),
        writer_chain: chain.into_iter().map(ChainLink::Signed).collect(),
        write_chains: Vec::new(),
    };
    let (updated, _, _) = sign_drafts(vec![draft], batch, signer)?
        .pop()
        .ok_or(Error::Crypto)?;
    Ok(updated)
}

/// The tag an owner puts on a delegation it makes: `HMAC-SHA-256(tag key, statement)`.
fn owner_tag(tag_key: &HmacSha256Key, statement: &DelegationStatement) -> [u8; 32] {
    tag_key.sign(&statement.encode(true))
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
    let mut json =
        Zeroizing::new(
            serde_json::to_vec(&sensitive).map_err(|_| Error::Malformed {
                what: "document",
                reason: "not serialisable as JSON",
            })?,
        );
    // Padded so that the stored size tells only a size class (PADME), not the content's length.
    crate::seal::pad_json(&mut json);
    let sealed = Sealed(key.seal(&json, &encrypted_self_aad(entity_type, id))?);
    Ok((public, sensitive, sealed))
}

/// The values every new delegation of an entity seals, and what its statement names.
struct DelegationContents<'a> {
    entity_key: &'a AeadKey,
    secret_ids: &'a [(SecretId, SecretIdScope)],
    owning_entity_ids: &'a [EntityId],
    root: DelegationKey,
    creator: OwnerId,
    tag: &'a HmacSha256Key,
}

/// Builds one delegation through `target`: its sealed fields, its statement (bound to its sealed entity key) and
/// the sharer's tag. `delegation_key` is the target's delegation key for the entity's type (its caller has it
/// already).
fn build_delegation(
    entity: &EncryptedEntity,
    target: DelegationTarget<'_>,
    delegation_key: DelegationKey,
    contents: &DelegationContents<'_>,
    parents: BTreeSet<DelegationKey>,
) -> Result<Built> {
    let exchange = target.exchange;
    let key = exchange.sealing_key()?;
    let is_root = parents.is_empty();
    let seal = |field, value: &[u8]| {
        seal_delegation_field(key, &delegation_key, field, &entity.id, &[], value)
    };
    let (delegator, delegate) = match target.visibility {
        Visibility::Explicit => (Some(exchange.delegator()), Some(exchange.delegate())),
        Visibility::AnonymousDelegate => (Some(exchange.delegator()), None),
        Visibility::AnonymousDelegator => (None, Some(exchange.delegate())),
        Visibility::Anonymous => (None, None),
    };
    let secret_ids: Vec<Sealed> = contents
        .secret_ids
        .iter()
        .filter(|(_, scope)| is_root || *scope == SecretIdScope::Shared)
        .map(|(id, scope)| seal(DelegationField::SecretIds, &encode_secret_id(id, *scope)))
        .collect::<Result<_>>()?;
    let owning_entity_ids: Vec<Sealed> = contents
        .owning_entity_ids
        .iter()
        .map(|id| seal(DelegationField::OwningEntityIds, id.as_bytes()))
        .collect::<Result<_>>()?;
    let mut delegation = SecureDelegation {
        delegator,
        delegate,
        exchange_data_id: (delegator.is_some() && delegate.is_some()).then(|| exchange.id()),
        entity_keys: Vec::new(),
        secret_ids,
        owning_entity_ids,
        parents,
        permission: target.permission,
        chain: Vec::new(),
    };
    let statement = DelegationStatement {
        entity: entity.id,
        entity_type: entity.entity_type.clone(),
        delegation_key,
        delegator: exchange.delegator(),
        delegate: exchange.delegate(),
        permission: target.permission,
        epoch: entity.key_epoch,
        parents: delegation.parents.clone(),
        root: contents.root,
        creator: contents.creator,
        sealed_fields: sealed_fields_hash(&delegation)?,
    };
    let (bound, full) = statement.encodings();
    delegation.entity_keys = vec![seal_delegation_field(
        key,
        &delegation_key,
        DelegationField::EntityKeys,
        &entity.id,
        &bound,
        &encode_key_payload(
            contents.entity_key,
            contents.creator,
            &contents.tag.sign(&full),
        ),
    )?];
    Ok(Built {
        delegation,
        statement,
        encoded: full,
    })
}

/// A delegation [`build_delegation`] made, with its statement and the statement's canonical bytes (hashed into a
/// batch when the delegation is signed).
struct Built {
    delegation: SecureDelegation,
    statement: DelegationStatement,
    encoded: Vec<u8>,
}

impl Built {
    /// The statement's hash, for the batch.
    fn statement_hash(&self) -> [u8; 32] {
        sha256(&self.encoded)
    }
}
