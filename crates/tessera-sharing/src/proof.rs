//! Protocol v2 integrity (docs/formats.md, "Statements and proofs"): what a writer and a delegator state, how one
//! signature covers a whole batch of statements, and how a reader checks them without the server ever seeing a
//! signature or a signer.
//!
//! - A **version statement** covers everything a reader relies on in one version of an entity: id, type, content
//!   version, key epoch, key commitment, public part, sealed content, attachment references, search tags, the root
//!   delegation and creator, and the writer. Its writer signs it.
//! - A **delegation statement** covers one delegation: entity, delegation key, delegator, delegate, permission, key
//!   epoch, parents, root and creator, and the sealed fields. Every delegation binds its statement as associated
//!   data of its sealed entity key, so the server cannot change a clear field of it; a write delegation is also
//!   signed by its delegator, and carries (sealed) the signed chain from the root to itself, which its delegate
//!   presents when it writes.
//! - A **batch**: the statements one owner commits together are grouped per entity; each group is a leaf of a
//!   Merkle tree; the owner signs the tree's root once ([`tessera_keys::batch_message`]). A [`Proof`] is a
//!   statement's place in its group, the group, the path to the root and the signature.
//! - Proofs and chains travel only sealed (under the entity key or an exchange key), so the server sees neither
//!   signatures nor signers: a signature in clear could be matched against every public key.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};

use tessera_keys::{
    DelegationKey, EntityType, Fingerprint, FormatVersion, OwnerId, OwnerKeys, SignatureBytes,
    batch_message,
};
use tessera_primitives::{Sha256, sha256};

use crate::access::DelegationLookup;
use crate::error::{Error, Result};
use crate::model::{EncryptedEntity, EntityId, Permission, SecureDelegation};

const TAG_DELEGATION_STATEMENT: &str = "tessera/v2/delegation-statement";
const TAG_VERSION_STATEMENT: &str = "tessera/v2/version-statement";
const TAG_SEALED_FIELDS: &str = "tessera/v2/sealed-fields";
const TAG_PUBLIC: &str = "tessera/v2/public";
const TAG_ATTACHMENTS: &str = "tessera/v2/attachments";
const TAG_TAGS: &str = "tessera/v2/search-tags";

/// Longest chain of delegations from the root a reader follows.
pub(crate) const MAX_CHAIN: usize = 16;
/// Verified batch signatures a [`VerifiedBatches`] remembers before it starts over.
const MAX_REMEMBERED: usize = 1 << 16;

/// A canonical byte string under construction (the sharing layer's counterpart of the key layer's writer).
pub(crate) struct Enc(Vec<u8>);

impl Enc {
    pub(crate) fn tagged(tag: &str) -> Self {
        let mut bytes = Vec::with_capacity(256);
        bytes.extend_from_slice(tag.as_bytes());
        bytes.push(0);
        Self(bytes)
    }

    pub(crate) fn untagged() -> Self {
        Self(Vec::with_capacity(256))
    }

    pub(crate) fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub(crate) fn u16(mut self, value: u16) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u64(mut self, value: u64) -> Self {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn fixed(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }

    /// A u32 length, then the bytes.
    pub(crate) fn var(self, bytes: &[u8]) -> Result<Self> {
        let len = u32::try_from(bytes.len()).map_err(|_| Error::Malformed {
            what: "canonical field",
            reason: "longer than 4 GiB",
        })?;
        Ok(self.u32(len).fixed(bytes))
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Reads what [`Enc`] wrote. Everything read this way came out of a sealed box, so any inconsistency is a
/// [`Error::Crypto`].
pub(crate) struct Dec<'a>(&'a [u8]);

impl<'a> Dec<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(Error::Crypto);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.take(N)?.try_into().map_err(|_| Error::Crypto)
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn var(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.u32()?).map_err(|_| Error::Crypto)?;
        self.take(len)
    }

    pub(crate) fn end(&self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Crypto)
        }
    }
}

fn permission_byte(permission: Permission) -> u8 {
    match permission {
        Permission::Read => 0,
        Permission::Write => 1,
    }
}

/// What a delegator states about one delegation (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DelegationStatement {
    pub(crate) entity: EntityId,
    pub(crate) entity_type: EntityType,
    pub(crate) delegation_key: DelegationKey,
    pub(crate) delegator: OwnerId,
    pub(crate) delegate: OwnerId,
    pub(crate) permission: Permission,
    pub(crate) epoch: u32,
    pub(crate) parents: BTreeSet<DelegationKey>,
    pub(crate) root: DelegationKey,
    pub(crate) creator: OwnerId,
    /// [`sealed_fields_hash`] of the delegation's sealed secret ids and owning-entity ids.
    pub(crate) sealed_fields: [u8; 32],
}

impl DelegationStatement {
    /// The canonical bytes: everything, or (`with_creator` false) everything but the creator, which is what a
    /// delegation binds as associated data of its entity key (the creator travels inside that sealed key, since
    /// the delegate cannot know it before opening).
    pub(crate) fn encode(&self, with_creator: bool) -> Vec<u8> {
        let mut enc = Enc::tagged(TAG_DELEGATION_STATEMENT)
            .u8(FormatVersion::V2.get())
            .fixed(self.entity.as_bytes())
            .u8(u8::try_from(self.entity_type.as_str().len()).unwrap_or(u8::MAX))
            .fixed(self.entity_type.as_str().as_bytes())
            .fixed(self.delegation_key.as_bytes())
            .fixed(self.delegator.as_bytes())
            .fixed(self.delegate.as_bytes())
            .u8(permission_byte(self.permission))
            .u32(self.epoch)
            .fixed(self.root.as_bytes())
            .u16(u16::try_from(self.parents.len()).unwrap_or(u16::MAX));
        for parent in &self.parents {
            enc = enc.fixed(parent.as_bytes());
        }
        enc = enc.fixed(&self.sealed_fields);
        if with_creator {
            enc = enc.u8(1).fixed(self.creator.as_bytes());
        } else {
            enc = enc.u8(0);
        }
        enc.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut dec = Dec::new(bytes);
        let tag: [u8; TAG_DELEGATION_STATEMENT.len() + 1] = dec.array()?;
        if tag.get(..TAG_DELEGATION_STATEMENT.len()) != Some(TAG_DELEGATION_STATEMENT.as_bytes()) {
            return Err(Error::Crypto);
        }
        if dec.u8()? != FormatVersion::V2.get() {
            return Err(Error::Crypto);
        }
        let entity = EntityId::from_bytes(dec.array()?);
        let type_len = usize::from(dec.u8()?);
        let type_name = std::str::from_utf8(dec.take(type_len)?).map_err(|_| Error::Crypto)?;
        let entity_type = EntityType::new(type_name).map_err(|_| Error::Crypto)?;
        let delegation_key = DelegationKey::from_bytes(dec.array()?);
        let delegator = OwnerId::from_bytes(dec.array()?);
        let delegate = OwnerId::from_bytes(dec.array()?);
        let permission = match dec.u8()? {
            0 => Permission::Read,
            1 => Permission::Write,
            _ => return Err(Error::Crypto),
        };
        let epoch = dec.u32()?;
        let root = DelegationKey::from_bytes(dec.array()?);
        let parent_count = dec.u16()?;
        let mut parents = BTreeSet::new();
        for _ in 0..parent_count {
            parents.insert(DelegationKey::from_bytes(dec.array()?));
        }
        let sealed_fields = dec.array()?;
        if dec.u8()? != 1 {
            return Err(Error::Crypto);
        }
        let creator = OwnerId::from_bytes(dec.array()?);
        dec.end()?;
        let statement = Self {
            entity,
            entity_type,
            delegation_key,
            delegator,
            delegate,
            permission,
            epoch,
            parents,
            root,
            creator,
            sealed_fields,
        };
        // A canonical encoding decodes to one value only.
        if statement.encode(true) != bytes {
            return Err(Error::Crypto);
        }
        Ok(statement)
    }

    pub(crate) fn hash(&self) -> [u8; 32] {
        sha256(&self.encode(true))
    }

    /// Whether this is the root statement: no parents, the creator delegating write to itself.
    pub(crate) fn is_root(&self) -> bool {
        self.parents.is_empty()
            && self.delegator == self.creator
            && self.delegate == self.creator
            && self.permission == Permission::Write
            && self.delegation_key == self.root
    }
}

/// `SHA-256("tessera/v2/sealed-fields" ‖ 0x00 ‖ u32 n ‖ var(box)… ‖ u32 m ‖ var(box)…)` over a delegation's sealed
/// secret ids and owning-entity ids, hashed where they lie (no copy: it runs for every delegation opened).
///
/// # Errors
/// [`Error::Malformed`] for a sealed box longer than 4 GiB.
pub(crate) fn sealed_fields_hash(delegation: &SecureDelegation) -> Result<[u8; 32]> {
    let len32 = |len: usize| {
        u32::try_from(len).map_err(|_| Error::Malformed {
            what: "canonical field",
            reason: "longer than 4 GiB",
        })
    };
    let mut hash = Sha256::new();
    hash.update(TAG_SEALED_FIELDS.as_bytes());
    hash.update(&[0]);
    for list in [&delegation.secret_ids, &delegation.owning_entity_ids] {
        hash.update(&len32(list.len())?.to_be_bytes());
        for sealed in list {
            hash.update(&len32(sealed.0.len())?.to_be_bytes());
            hash.update(&sealed.0);
        }
    }
    Ok(hash.finish())
}

/// The hash of the version statement of `entity` as written by `writer` (see the module documentation).
///
/// # Errors
/// [`Error::Malformed`] if the public part does not serialise.
pub(crate) fn version_hash(
    entity: &EncryptedEntity,
    root: &DelegationKey,
    creator: OwnerId,
    writer: OwnerId,
) -> Result<[u8; 32]> {
    let public = serde_json::to_vec(&entity.public).map_err(|_| Error::Malformed {
        what: "public part",
        reason: "not serialisable as JSON",
    })?;
    let public_hash = sha256(&Enc::tagged(TAG_PUBLIC).var(&public)?.finish());
    let self_hash = sha256(&entity.encrypted_self.0);
    let mut attachments = Enc::tagged(TAG_ATTACHMENTS)
        .u32(u32::try_from(entity.attachments.len()).unwrap_or(u32::MAX));
    for reference in &entity.attachments {
        attachments = attachments
            .fixed(reference.id.as_bytes())
            .var(&reference.sealed_key.0)?
            .u64(reference.encrypted_len);
    }
    let mut tags = Enc::tagged(TAG_TAGS)
        .u32(u32::try_from(entity.secret_foreign_keys.len()).unwrap_or(u32::MAX));
    for tag in &entity.secret_foreign_keys {
        tags = tags.fixed(tag.as_bytes());
    }
    let statement = Enc::tagged(TAG_VERSION_STATEMENT)
        .u8(entity.version.get())
        .fixed(entity.id.as_bytes())
        .var(entity.entity_type.as_str().as_bytes())?
        .u64(entity.content_version)
        .u32(entity.key_epoch)
        .fixed(&entity.key_commitment)
        .fixed(&public_hash)
        .fixed(&self_hash)
        .fixed(&sha256(&attachments.finish()))
        .fixed(&sha256(&tags.finish()))
        .fixed(root.as_bytes())
        .fixed(creator.as_bytes())
        .fixed(writer.as_bytes())
        .finish();
    Ok(sha256(&statement))
}

fn group_leaf(group: &[[u8; 32]]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(&[0]);
    for statement in group {
        hash.update(statement);
    }
    hash.finish()
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(&[1]);
    hash.update(left);
    hash.update(right);
    hash.finish()
}

/// The root of the Merkle tree over `leaves` (an odd node out is carried up unchanged) and each leaf's path.
fn merkle(leaves: &[[u8; 32]]) -> ([u8; 32], Vec<Vec<[u8; 32]>>) {
    let mut paths = vec![Vec::new(); leaves.len()];
    let mut level = leaves.to_vec();
    let mut width = 1usize;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        for (pair, nodes) in level.chunks(2).enumerate() {
            match nodes {
                [left, right] => {
                    let base = pair * 2 * width;
                    for (i, path) in paths.iter_mut().enumerate().skip(base).take(2 * width) {
                        path.push(if i < base + width { *right } else { *left });
                    }
                    next.push(node(left, right));
                }
                [single] => next.push(*single),
                _ => {}
            }
        }
        level = next;
        width *= 2;
    }
    (level.first().copied().unwrap_or([0; 32]), paths)
}

/// Recomputes the root from a leaf, its index among `leaves` leaves, and its path.
fn merkle_root(leaf: [u8; 32], index: u32, leaves: u32, path: &[[u8; 32]]) -> Option<[u8; 32]> {
    if index >= leaves {
        return None;
    }
    let (mut index, mut len, mut hash) = (index, leaves, leaf);
    let mut siblings = path.iter();
    while len > 1 {
        if index % 2 == 1 {
            hash = node(siblings.next()?, &hash);
        } else if index + 1 < len {
            hash = node(&hash, siblings.next()?);
        }
        index /= 2;
        len = len.div_ceil(2);
    }
    siblings.next().is_none().then_some(hash)
}

/// A statement's proof: its group, its place in it, the group's path to the batch root, and the batch signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proof {
    signer: OwnerId,
    fingerprint: Fingerprint,
    leaves: u32,
    root: [u8; 32],
    signature: [u8; 64],
    index: u32,
    path: Vec<[u8; 32]>,
    group: Vec<[u8; 32]>,
    position: u16,
}

impl Proof {
    /// The owner that signed.
    pub(crate) fn signer(&self) -> OwnerId {
        self.signer
    }

    fn encode(&self, enc: Enc) -> Enc {
        let mut enc = enc
            .fixed(self.signer.as_bytes())
            .fixed(self.fingerprint.as_bytes())
            .u32(self.leaves)
            .fixed(&self.root)
            .fixed(&self.signature)
            .u32(self.index)
            .u8(u8::try_from(self.path.len()).unwrap_or(u8::MAX));
        for hash in &self.path {
            enc = enc.fixed(hash);
        }
        enc = enc.u16(u16::try_from(self.group.len()).unwrap_or(u16::MAX));
        for hash in &self.group {
            enc = enc.fixed(hash);
        }
        enc.u16(self.position)
    }

    fn decode(dec: &mut Dec<'_>) -> Result<Self> {
        let signer = OwnerId::from_bytes(dec.array()?);
        let fingerprint = Fingerprint::from_bytes(dec.array()?);
        let leaves = dec.u32()?;
        let root = dec.array()?;
        let signature = dec.array()?;
        let index = dec.u32()?;
        let path_len = dec.u8()?;
        let path = (0..path_len)
            .map(|_| dec.array())
            .collect::<Result<Vec<_>>>()?;
        let group_len = dec.u16()?;
        let group = (0..group_len)
            .map(|_| dec.array())
            .collect::<Result<Vec<_>>>()?;
        let position = dec.u16()?;
        Ok(Self {
            signer,
            fingerprint,
            leaves,
            root,
            signature,
            index,
            path,
            group,
            position,
        })
    }

    /// Checks that `statement` (a statement hash) is signed by this proof's signer: its place in the group, the
    /// group's path to the root, and the batch signature (verified once per batch and remembered).
    ///
    /// # Errors
    /// [`Error::Crypto`] if any check fails; [`Error::UnknownSigner`] if `access` knows no trusted bundle of the
    /// signer with the signing fingerprint yet.
    pub(crate) fn verify<L: DelegationLookup + ?Sized>(
        &self,
        statement: &[u8; 32],
        access: &L,
    ) -> Result<()> {
        if self.group.get(usize::from(self.position)) != Some(statement) {
            return Err(Error::Crypto);
        }
        let root = merkle_root(group_leaf(&self.group), self.index, self.leaves, &self.path)
            .ok_or(Error::Crypto)?;
        if root != self.root {
            return Err(Error::Crypto);
        }
        let mut message = batch_message(self.signer, self.fingerprint, self.leaves, &self.root);
        message.extend_from_slice(&self.signature);
        let remembered = sha256(&message);
        let cache = access.verified_batches();
        if cache.is_some_and(|cache| cache.contains(&remembered)) {
            return Ok(());
        }
        let bundle = access
            .signer(self.signer, self.fingerprint)?
            .ok_or(Error::UnknownSigner(self.signer))?;
        if bundle.owner() != self.signer || bundle.fingerprint() != self.fingerprint {
            return Err(Error::Crypto);
        }
        bundle.verify_batch(self.leaves, &self.root, &SignatureBytes(self.signature))?;
        if let Some(cache) = cache {
            cache.insert(remembered);
        }
        Ok(())
    }
}

/// Batch signatures already verified, remembered by the hash of what was verified (the signed message and the
/// signature), so that the thousand records of one batch cost one verification. Shared between threads.
#[derive(Debug, Default)]
pub struct VerifiedBatches(Mutex<HashSet<[u8; 32]>>);

impl VerifiedBatches {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(key)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if set.len() >= MAX_REMEMBERED {
            set.clear();
        }
        set.insert(key);
    }

    /// Forgets everything (for a benchmark of cold reads).
    pub fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// One signed link of a chain of write delegations: the statement and its proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) statement: DelegationStatement,
    pub(crate) proof: Proof,
}

/// Encodes a chain (root first), after a prefix.
pub(crate) fn encode_chain(enc: Enc, chain: &[Link]) -> Result<Enc> {
    let mut enc = enc.u8(u8::try_from(chain.len()).map_err(|_| Error::Malformed {
        what: "delegation chain",
        reason: "longer than 255 links",
    })?);
    for link in chain {
        enc = link.proof.encode(enc.var(&link.statement.encode(true))?);
    }
    Ok(enc)
}

/// Decodes a chain written by [`encode_chain`].
pub(crate) fn decode_chain(dec: &mut Dec<'_>) -> Result<Vec<Link>> {
    let len = usize::from(dec.u8()?);
    if len == 0 || len > MAX_CHAIN {
        return Err(Error::Crypto);
    }
    (0..len)
        .map(|_| {
            let statement = DelegationStatement::decode(dec.var()?)?;
            let proof = Proof::decode(dec)?;
            Ok(Link { statement, proof })
        })
        .collect()
}

/// Encodes the proof of a version and its writer's chain, the plaintext of `writer_proof`.
pub(crate) fn encode_writer_proof(version: &Proof, chain: &[Link]) -> Result<Vec<u8>> {
    let enc = version.encode(Enc::untagged().u8(FormatVersion::V2.get()));
    Ok(encode_chain(enc, chain)?.finish())
}

/// Decodes what [`encode_writer_proof`] wrote.
pub(crate) fn decode_writer_proof(bytes: &[u8]) -> Result<(Proof, Vec<Link>)> {
    let mut dec = Dec::new(bytes);
    if dec.u8()? != FormatVersion::V2.get() {
        return Err(Error::Crypto);
    }
    let proof = Proof::decode(&mut dec)?;
    let chain = decode_chain(&mut dec)?;
    dec.end()?;
    Ok((proof, chain))
}

/// Checks a chain of write delegations of `entity` from its root: each link signed by its delegator, the first
/// the creator's root delegation (equal to `root` and `creator`), each next one delegated by the previous one's
/// delegate under it, write all along, every statement of this entity at its current key epoch.
///
/// # Errors
/// [`Error::Crypto`] if anything does not hold; [`Error::UnknownSigner`] as [`Proof::verify`].
pub(crate) fn verify_chain<L: DelegationLookup + ?Sized>(
    chain: &[Link],
    entity: &EncryptedEntity,
    root: &DelegationKey,
    creator: OwnerId,
    access: &L,
) -> Result<()> {
    let first = chain.first().ok_or(Error::Crypto)?;
    if chain.len() > MAX_CHAIN
        || !first.statement.is_root()
        || first.statement.delegation_key != *root
        || first.statement.creator != creator
    {
        return Err(Error::Crypto);
    }
    let mut previous: Option<&DelegationStatement> = None;
    for link in chain {
        let statement = &link.statement;
        let consistent = statement.entity == entity.id
            && statement.entity_type == entity.entity_type
            && statement.epoch == entity.key_epoch
            && statement.root == *root
            && statement.creator == creator
            && statement.permission == Permission::Write
            && link.proof.signer() == statement.delegator
            && previous.is_none_or(|parent| {
                statement.parents.contains(&parent.delegation_key)
                    && statement.delegator == parent.delegate
            });
        if !consistent {
            return Err(Error::Crypto);
        }
        link.proof.verify(&statement.hash(), access)?;
        previous = Some(statement);
    }
    Ok(())
}

/// Statements of one signer waiting for their signature, grouped per entity.
#[derive(Default)]
pub(crate) struct BatchBuilder {
    groups: Vec<Vec<[u8; 32]>>,
}

impl BatchBuilder {
    /// Opens a new group (one per entity) and returns its index.
    pub(crate) fn group(&mut self) -> usize {
        self.groups.push(Vec::new());
        self.groups.len() - 1
    }

    /// Adds a statement hash to group `group`; returns its position.
    pub(crate) fn push(&mut self, group: usize, statement: [u8; 32]) -> Result<u16> {
        let members = self.groups.get_mut(group).ok_or(Error::Malformed {
            what: "batch",
            reason: "no such group",
        })?;
        let position = u16::try_from(members.len()).map_err(|_| Error::Malformed {
            what: "batch",
            reason: "more than 65,535 statements for one entity",
        })?;
        members.push(statement);
        Ok(position)
    }

    /// Signs the batch once.
    ///
    /// # Errors
    /// [`Error::Malformed`] for more than 2³² groups.
    pub(crate) fn sign(self, signer: &OwnerKeys) -> Result<SignedBatch> {
        let leaves: Vec<[u8; 32]> = self.groups.iter().map(|g| group_leaf(g)).collect();
        let count = u32::try_from(leaves.len()).map_err(|_| Error::Malformed {
            what: "batch",
            reason: "too many entities in one batch",
        })?;
        let (root, paths) = merkle(&leaves);
        let signature = signer.sign_batch(count, &root).0;
        Ok(SignedBatch {
            signer: signer.owner(),
            fingerprint: signer.fingerprint(),
            leaves: count,
            root,
            signature,
            paths,
            groups: self.groups,
        })
    }
}

/// A signed batch, from which every statement's [`Proof`] is cut.
pub(crate) struct SignedBatch {
    signer: OwnerId,
    fingerprint: Fingerprint,
    leaves: u32,
    root: [u8; 32],
    signature: [u8; 64],
    paths: Vec<Vec<[u8; 32]>>,
    groups: Vec<Vec<[u8; 32]>>,
}

impl SignedBatch {
    /// The proof of the statement at `position` of group `group`.
    pub(crate) fn proof(&self, group: usize, position: u16) -> Result<Proof> {
        let missing = || Error::Malformed {
            what: "batch",
            reason: "no such statement",
        };
        Ok(Proof {
            signer: self.signer,
            fingerprint: self.fingerprint,
            leaves: self.leaves,
            root: self.root,
            signature: self.signature,
            index: u32::try_from(group).map_err(|_| missing())?,
            path: self.paths.get(group).ok_or_else(missing)?.clone(),
            group: self.groups.get(group).ok_or_else(missing)?.clone(),
            position,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn every_leaf_of_every_tree_size_proves_its_root_and_nothing_else() {
        for n in 1u32..=33 {
            let leaves: Vec<[u8; 32]> = (0..n).map(|i| sha256(&i.to_be_bytes())).collect();
            let (root, paths) = merkle(&leaves);
            for (i, (leaf, path)) in leaves.iter().zip(&paths).enumerate() {
                let i = u32::try_from(i).unwrap();
                assert_eq!(merkle_root(*leaf, i, n, path), Some(root), "n={n} i={i}");
                if n > 1 {
                    assert_ne!(merkle_root(*leaf, (i + 1) % n, n, path), Some(root));
                    assert_ne!(merkle_root(sha256(b"other"), i, n, path), Some(root));
                }
                let mut longer = path.clone();
                longer.push([0; 32]);
                assert_eq!(merkle_root(*leaf, i, n, &longer), None);
            }
            assert_eq!(merkle_root(leaves[0], n, n, &paths[0]), None);
        }
    }
}
