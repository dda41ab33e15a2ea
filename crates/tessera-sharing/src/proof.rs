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
//!   Merkle tree; the owner signs the tree's root once (`tessera_keys::batch_message`). A [`Proof`] is a
//!   statement's place in its group, the group, the path to the root and the signature.
//! - Proofs and chains travel only sealed (under the entity key or an exchange key), so the server sees neither
//!   signatures nor signers: a signature in clear could be matched against every public key.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};

use tessera_keys::{
    DelegationKey, EntityType, Fingerprint, FormatVersion, OwnerId, OwnerKeys, SignatureBytes,
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

mod codec;

pub(crate) use codec::{Dec, Enc};

/// Longest chain of delegations from the root a reader follows.
pub(crate) const MAX_CHAIN: usize = 16;
/// Verified nodes a [`VerifiedBatches`] remembers before it starts over (about 8 MiB).
const MAX_REMEMBERED: usize = 1 << 17;

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

    /// Both encodings from one pass: `(without the creator, with it)`, as [`DelegationStatement::encode`] makes
    /// them. They share everything but their last field.
    pub(crate) fn encodings(&self) -> (Vec<u8>, Vec<u8>) {
        let full = self.encode(true);
        let shared = full.len().saturating_sub(1 + 16);
        let mut bound = Vec::with_capacity(shared + 1);
        bound.extend_from_slice(full.get(..shared).unwrap_or_default());
        bound.push(0);
        (bound, full)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        let mut dec = Dec::new(bytes);
        let tag: [u8; TAG_DELEGATION_STATEMENT.len() + 1] = dec.array()?;
        let (name, separator) = tag.split_at(TAG_DELEGATION_STATEMENT.len());
        if name != TAG_DELEGATION_STATEMENT.as_bytes() || separator != [0] {
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
            let parent = DelegationKey::from_bytes(dec.array()?);
            // In the order `encode` writes them, each once: anything else is not canonical.
            if parents.last().is_some_and(|last| *last >= parent) {
                return Err(Error::Crypto);
            }
            parents.insert(parent);
        }
        let sealed_fields = dec.array()?;
        if dec.u8()? != 1 {
            return Err(Error::Crypto);
        }
        let creator = OwnerId::from_bytes(dec.array()?);
        dec.end()?;
        // Every field is fixed-size or checked above (the type name by `EntityType::new`, at most 64 bytes; the
        // parents ascending): these bytes are the one canonical encoding of the value, which the unit test
        // `decoding_accepts_only_canonical_bytes` re-checks by encoding again.
        Ok(Self {
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
        })
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
    let mut hash = tagged_hash(TAG_SEALED_FIELDS);
    for list in [&delegation.secret_ids, &delegation.owning_entity_ids] {
        hash.update(&len32(list.len())?.to_be_bytes());
        for sealed in list {
            hash.update(&len32(sealed.0.len())?.to_be_bytes());
            hash.update(&sealed.0);
        }
    }
    Ok(hash.finish())
}

/// The hash of the version statement of `entity` as written by `writer` (see the module documentation),
/// computed as one stream per part, with no intermediate copy: it runs for every record read and written.
///
/// # Errors
/// [`Error::Malformed`] if the public part does not serialise, or a part is longer than 4 GiB.
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
    let mut public_hash = tagged_hash(TAG_PUBLIC);
    public_hash.update(&len32(public.len())?.to_be_bytes());
    public_hash.update(&public);
    let self_hash = sha256(&entity.encrypted_self.0);
    let mut attachments = tagged_hash(TAG_ATTACHMENTS);
    attachments.update(&len32(entity.attachments.len())?.to_be_bytes());
    for reference in &entity.attachments {
        attachments.update(reference.id.as_bytes());
        attachments.update(&len32(reference.sealed_key.0.len())?.to_be_bytes());
        attachments.update(&reference.sealed_key.0);
        attachments.update(&reference.encrypted_len.to_be_bytes());
    }
    let mut tags = tagged_hash(TAG_TAGS);
    tags.update(&len32(entity.secret_foreign_keys.len())?.to_be_bytes());
    for tag in &entity.secret_foreign_keys {
        tags.update(tag.as_bytes());
    }
    let type_name = entity.entity_type.as_str().as_bytes();
    let mut statement = tagged_hash(TAG_VERSION_STATEMENT);
    statement.update(&[entity.version.get()]);
    statement.update(entity.id.as_bytes());
    statement.update(&len32(type_name.len())?.to_be_bytes());
    statement.update(type_name);
    statement.update(&entity.content_version.to_be_bytes());
    statement.update(&entity.key_epoch.to_be_bytes());
    statement.update(&entity.key_commitment);
    for part in [
        public_hash.finish(),
        self_hash,
        attachments.finish(),
        tags.finish(),
    ] {
        statement.update(&part);
    }
    statement.update(root.as_bytes());
    statement.update(creator.as_bytes());
    statement.update(writer.as_bytes());
    Ok(statement.finish())
}

/// A SHA-256 stream started with `tag ‖ 0x00`, as [`Enc::tagged`] starts a canonical string.
fn tagged_hash(tag: &str) -> Sha256 {
    let mut hash = Sha256::new();
    hash.update(tag.as_bytes());
    hash.update(&[0]);
    hash
}

/// A length as the u32 of a canonical string.
fn len32(len: usize) -> Result<u32> {
    u32::try_from(len).map_err(|_| Error::Malformed {
        what: "canonical field",
        reason: "longer than 4 GiB",
    })
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

/// Recomputes the root from a leaf, its index among `leaves` leaves, and its path (what [`Proof::verify`] does
/// when it meets no verified node on the way).
#[cfg(test)]
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
        let path_len = usize::from(dec.u8()?);
        let path = dec.hashes(path_len)?;
        let group_len = usize::from(dec.u16()?);
        let group = dec.hashes(group_len)?;
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
    /// group's path to the root, and the batch signature.
    ///
    /// What is verified is remembered ([`VerifiedBatches`]): every node of a verified path, for its signer. The
    /// next proof of the same batch climbs its own path only until it meets a node already verified, so the
    /// thousand records of one batch cost one signature verification and about two node hashes each. Stopping at
    /// a verified node is sound: node and leaf hashes are domain-separated and collision-resistant, so a value
    /// that climbs to a node of a signed tree is a leaf of that tree, whatever index and size the proof claims.
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
        let signer = (self.signer, self.fingerprint);
        let cache = access.verified_batches();
        let mut climbed = Vec::with_capacity(self.path.len() + 1);
        let mut met = false;
        {
            let known = cache.map(VerifiedBatches::lock);
            let is_known =
                |hash: &[u8; 32]| known.as_ref().is_some_and(|k| k.contains(&(*hash, signer)));
            let mut hash = group_leaf(&self.group);
            let (mut index, mut len) = (self.index, self.leaves);
            if index >= len {
                return Err(Error::Crypto);
            }
            let mut siblings = self.path.iter();
            loop {
                if is_known(&hash) {
                    met = true;
                    break;
                }
                climbed.push(hash);
                if len <= 1 {
                    break;
                }
                if index % 2 == 1 {
                    hash = node(siblings.next().ok_or(Error::Crypto)?, &hash);
                } else if index + 1 < len {
                    hash = node(&hash, siblings.next().ok_or(Error::Crypto)?);
                }
                index /= 2;
                len = len.div_ceil(2);
            }
            if !met && (siblings.next().is_some() || climbed.last() != Some(&self.root)) {
                return Err(Error::Crypto);
            }
        }
        if !met {
            let bundle = access
                .signer(self.signer, self.fingerprint)?
                .ok_or(Error::UnknownSigner(self.signer))?;
            if bundle.owner() != self.signer || bundle.fingerprint() != self.fingerprint {
                return Err(Error::Crypto);
            }
            bundle.verify_batch(self.leaves, &self.root, &SignatureBytes(self.signature))?;
        }
        if let Some(cache) = cache {
            cache.remember(climbed, signer);
        }
        Ok(())
    }
}

/// The verified nodes of one signer's batches: a node hash and who signed the tree it belongs to.
type VerifiedNode = ([u8; 32], (OwnerId, Fingerprint));

/// Nodes of signed batch trees already verified, with their signer (docs/formats.md, "Statements and proofs"), so
/// that the thousand records of one batch cost one signature verification. Shared between threads; bounded (it
/// starts over when full).
#[derive(Debug, Default)]
pub struct VerifiedBatches(Mutex<HashSet<VerifiedNode>>);

impl VerifiedBatches {
    /// An empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<VerifiedNode>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remember(&self, nodes: Vec<[u8; 32]>, signer: (OwnerId, Fingerprint)) {
        let mut set = self.lock();
        if set.len() + nodes.len() > MAX_REMEMBERED {
            set.clear();
        }
        set.extend(nodes.into_iter().map(|node| (node, signer)));
    }

    /// Forgets everything (for a benchmark of cold reads).
    pub fn clear(&self) {
        self.lock().clear();
    }
}

/// One signed link of a chain of write delegations: the statement, its hash and its proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) statement: DelegationStatement,
    pub(crate) proof: Proof,
    /// [`DelegationStatement::hash`] of `statement`, computed once (from the bytes it was decoded from).
    hash: [u8; 32],
}

impl Link {
    /// A link of `statement`, signed as `proof` says.
    pub(crate) fn new(statement: DelegationStatement, proof: Proof) -> Self {
        let hash = statement.hash();
        Self {
            statement,
            proof,
            hash,
        }
    }
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
            let bytes = dec.var()?;
            let statement = DelegationStatement::decode(bytes)?;
            let proof = Proof::decode(dec)?;
            Ok(Link {
                statement,
                proof,
                // The bytes are the statement's canonical encoding: `decode` accepts no other.
                hash: sha256(bytes),
            })
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
        link.proof.verify(&link.hash, access)?;
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
mod tests;
