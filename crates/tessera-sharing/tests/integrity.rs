//! Protocol v2 integrity: clear fields bound to every delegation, versions signed by their writer, write delegations
//! signed by their delegator, fail-closed reads, rotations that re-wrap only the rotator's own verified delegations,
//! and one signature per batch.
//!
//! The attacks are built by hand, as a modified client or a hostile server would: the `forge` module computes the
//! documented encodings (docs/formats.md) from public inputs and the keys the attacker holds. Each forgery has a
//! positive control (the same code, used by an owner entitled to it, gives a record that opens), so that a refusal
//! means the check works, not that the forgery was malformed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    Spec, Who, assert_crypto, assert_no_access, create_note, note_document, note_manifest, object,
    share_into, ty, world,
};
use serde_json::json;
use tessera_keys::{
    DelegationKey, EntityType, ExchangeSecret, Fingerprint, OwnerId, OwnerKeys, TrustedBundle,
};
use tessera_sharing::attachment::{open_attachment, seal_attachment};
use tessera_sharing::{
    AccessIndex, DelegationLookup, EncryptedEntity, EntityId, Error, NewEntity, Permission, Sealed,
    VerifiedBatches, create_many, decrypt, open_keys, revise, revoke_and_rotate, rules, update,
};

use Permission::{Read, Write};
use Who::{A, B, C, P};

/// The encodings of docs/formats.md, computed from the outside.
mod forge {
    use std::collections::BTreeSet;

    use tessera_keys::{
        DelegationKey, ExchangeSecret, Fingerprint, FormatVersion, OwnerId, OwnerKeys,
    };
    use tessera_primitives::{AeadKey, Secret32, sha256};
    use tessera_sharing::{EncryptedEntity, Permission, SecureDelegation};

    fn tagged(tag: &str) -> Vec<u8> {
        let mut out = tag.as_bytes().to_vec();
        out.push(0);
        out
    }

    fn var(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&u32::try_from(bytes.len()).unwrap().to_be_bytes());
        out.extend_from_slice(bytes);
    }

    /// The hash of a delegation's sealed secret ids and owning-entity ids.
    pub(crate) fn sealed_fields(delegation: &SecureDelegation) -> [u8; 32] {
        let mut out = tagged("tessera/v2/sealed-fields");
        for list in [&delegation.secret_ids, &delegation.owning_entity_ids] {
            out.extend_from_slice(&u32::try_from(list.len()).unwrap().to_be_bytes());
            for sealed in list {
                var(&mut out, &sealed.0);
            }
        }
        sha256(&out)
    }

    /// A delegation statement.
    #[derive(Clone, Debug)]
    pub(crate) struct Statement {
        pub(crate) key: DelegationKey,
        pub(crate) delegator: OwnerId,
        pub(crate) delegate: OwnerId,
        pub(crate) permission: Permission,
        pub(crate) epoch: u32,
        pub(crate) parents: BTreeSet<DelegationKey>,
        pub(crate) root: DelegationKey,
        pub(crate) creator: OwnerId,
        pub(crate) sealed_fields: [u8; 32],
    }

    impl Statement {
        /// The statement a delegation of `entity` through `secret` makes, from its clear fields.
        pub(crate) fn of(
            entity: &EncryptedEntity,
            key: DelegationKey,
            secret: &ExchangeSecret,
            creator: OwnerId,
        ) -> Self {
            let delegation = &entity.security_metadata.delegations[&key];
            Self {
                key,
                delegator: secret.delegator(),
                delegate: secret.delegate(),
                permission: delegation.permission,
                epoch: entity.key_epoch,
                parents: delegation.parents.clone(),
                root: tessera_sharing::rules::root(&entity.security_metadata).unwrap(),
                creator,
                sealed_fields: sealed_fields(delegation),
            }
        }

        /// `DelegationStatement::encode`: with the creator, or without it (the associated data of the sealed key).
        pub(crate) fn encode(&self, entity: &EncryptedEntity, with_creator: bool) -> Vec<u8> {
            let mut out = tagged("tessera/v2/delegation-statement");
            out.push(FormatVersion::V2.get());
            out.extend_from_slice(entity.id.as_bytes());
            let type_name = entity.entity_type.as_str().as_bytes();
            out.push(u8::try_from(type_name.len()).unwrap());
            out.extend_from_slice(type_name);
            out.extend_from_slice(self.key.as_bytes());
            out.extend_from_slice(self.delegator.as_bytes());
            out.extend_from_slice(self.delegate.as_bytes());
            out.push(u8::from(self.permission == Permission::Write));
            out.extend_from_slice(&self.epoch.to_be_bytes());
            out.extend_from_slice(self.root.as_bytes());
            out.extend_from_slice(&u16::try_from(self.parents.len()).unwrap().to_be_bytes());
            for parent in &self.parents {
                out.extend_from_slice(parent.as_bytes());
            }
            out.extend_from_slice(&self.sealed_fields);
            if with_creator {
                out.push(1);
                out.extend_from_slice(self.creator.as_bytes());
            } else {
                out.push(0);
            }
            out
        }

        pub(crate) fn hash(&self, entity: &EncryptedEntity) -> [u8; 32] {
            sha256(&self.encode(entity, true))
        }
    }

    fn delegation_aad(key: &DelegationKey, field: &str, entity: &EncryptedEntity) -> Vec<u8> {
        let mut aad = tagged("tessera/v1/delegation");
        aad.extend_from_slice(key.as_bytes());
        aad.extend_from_slice(field.as_bytes());
        aad.push(0);
        aad.extend_from_slice(entity.id.as_bytes());
        aad
    }

    /// Opens a delegation's sealed entity key: `(entity key, creator, tag)`.
    pub(crate) fn open_entity_key(
        entity: &EncryptedEntity,
        key: DelegationKey,
        secret: &ExchangeSecret,
        creator: OwnerId,
    ) -> (AeadKey, OwnerId, [u8; 32]) {
        let statement = Statement::of(entity, key, secret, creator);
        let mut aad = delegation_aad(&key, "entity_keys", entity);
        aad.extend(statement.encode(entity, false));
        let sealed = &entity.security_metadata.delegations[&key].entity_keys[0];
        let payload = secret.opening_key().open(&sealed.0, &aad).unwrap();
        assert_eq!(payload.len(), 32 + 16 + 32);
        let entity_key = AeadKey::from_secret(Secret32::try_from(&payload[..32]).unwrap());
        let creator = OwnerId::from_bytes(payload[32..48].try_into().unwrap());
        (entity_key, creator, payload[48..].try_into().unwrap())
    }

    /// Seals `entity_key ‖ creator ‖ tag` as the entity key of the delegation `statement` describes.
    pub(crate) fn seal_entity_key(
        entity: &EncryptedEntity,
        statement: &Statement,
        exchange_key: &AeadKey,
        entity_key: &AeadKey,
        tag: &[u8; 32],
    ) -> Vec<u8> {
        let mut aad = delegation_aad(&statement.key, "entity_keys", entity);
        aad.extend(statement.encode(entity, false));
        let mut payload = entity_key.expose_secret().to_vec();
        payload.extend_from_slice(statement.creator.as_bytes());
        payload.extend_from_slice(tag);
        exchange_key.seal(&payload, &aad).unwrap()
    }

    /// The associated data of `encrypted_self`.
    pub(crate) fn encrypted_self_aad(entity: &EncryptedEntity) -> Vec<u8> {
        let mut aad = tagged("tessera/v1/encrypted-self");
        aad.push(FormatVersion::V2.get());
        aad.extend_from_slice(entity.entity_type.as_str().as_bytes());
        aad.push(0);
        aad.extend_from_slice(entity.id.as_bytes());
        aad
    }

    /// The associated data of `writer_proof`.
    pub(crate) fn writer_proof_aad(entity: &EncryptedEntity) -> Vec<u8> {
        let mut aad = tagged("tessera/v2/writer-proof");
        aad.extend_from_slice(entity.id.as_bytes());
        aad.extend_from_slice(entity.entity_type.as_str().as_bytes());
        aad.push(0);
        aad.extend_from_slice(&entity.content_version.to_be_bytes());
        aad.extend_from_slice(&entity.key_epoch.to_be_bytes());
        aad
    }

    /// `version_hash`: the hash of the version statement of `entity` written by `writer`.
    pub(crate) fn version_hash(
        entity: &EncryptedEntity,
        root: &DelegationKey,
        creator: OwnerId,
        writer: OwnerId,
    ) -> [u8; 32] {
        let mut public = tagged("tessera/v2/public");
        var(&mut public, &serde_json::to_vec(&entity.public).unwrap());
        let mut attachments = tagged("tessera/v2/attachments");
        attachments.extend_from_slice(
            &u32::try_from(entity.attachments.len())
                .unwrap()
                .to_be_bytes(),
        );
        for reference in &entity.attachments {
            attachments.extend_from_slice(reference.id.as_bytes());
            var(&mut attachments, &reference.sealed_key.0);
            attachments.extend_from_slice(&reference.encrypted_len.to_be_bytes());
        }
        let mut tags = tagged("tessera/v2/search-tags");
        tags.extend_from_slice(
            &u32::try_from(entity.secret_foreign_keys.len())
                .unwrap()
                .to_be_bytes(),
        );
        for tag in &entity.secret_foreign_keys {
            tags.extend_from_slice(tag.as_bytes());
        }
        let mut statement = tagged("tessera/v2/version-statement");
        statement.push(entity.version.get());
        statement.extend_from_slice(entity.id.as_bytes());
        var(&mut statement, entity.entity_type.as_str().as_bytes());
        statement.extend_from_slice(&entity.content_version.to_be_bytes());
        statement.extend_from_slice(&entity.key_epoch.to_be_bytes());
        statement.extend_from_slice(&entity.key_commitment);
        statement.extend_from_slice(&sha256(&public));
        statement.extend_from_slice(&sha256(&entity.encrypted_self.0));
        statement.extend_from_slice(&sha256(&attachments));
        statement.extend_from_slice(&sha256(&tags));
        statement.extend_from_slice(root.as_bytes());
        statement.extend_from_slice(creator.as_bytes());
        statement.extend_from_slice(writer.as_bytes());
        sha256(&statement)
    }

    /// A proof of one statement signed alone: a batch of one group of one statement, so the group leaf is
    /// `SHA-256(0x00 ‖ statement)`, the root is that leaf and the path is empty. `claimed` is the signer and
    /// fingerprint written in the proof (normally `signer`'s own).
    pub(crate) fn lone_proof(
        statement: &[u8; 32],
        signer: &OwnerKeys,
        claimed: (OwnerId, Fingerprint),
    ) -> Vec<u8> {
        let mut leaf = vec![0];
        leaf.extend_from_slice(statement);
        let root = sha256(&leaf);
        let signature = signer.sign_batch(1, &root);
        let mut out = claimed.0.as_bytes().to_vec();
        out.extend_from_slice(claimed.1.as_bytes());
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&root);
        out.extend_from_slice(&signature.0);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.push(0);
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(statement);
        out.extend_from_slice(&0u16.to_be_bytes());
        out
    }

    /// The length of the encoded proof at the start of `bytes`.
    fn proof_len(bytes: &[u8]) -> usize {
        let fixed = 16 + 32 + 4 + 32 + 64 + 4;
        let path = usize::from(bytes[fixed]);
        let group_at = fixed + 1 + 32 * path;
        let group = usize::from(u16::from_be_bytes(
            bytes[group_at..group_at + 2].try_into().unwrap(),
        ));
        group_at + 2 + 32 * group + 2
    }

    /// The encoded links of the chain of a `writer_proof` plaintext (`version ‖ proof ‖ chain`), as
    /// `(link count, the links' bytes)`.
    pub(crate) fn chain_of_writer_proof(plaintext: &[u8]) -> (u8, Vec<u8>) {
        assert_eq!(plaintext[0], FormatVersion::V2.get());
        let chain = &plaintext[1 + proof_len(&plaintext[1..])..];
        (chain[0], chain[1..].to_vec())
    }

    /// One encoded link: the statement (with its length) and its proof.
    pub(crate) fn link(statement: &[u8], proof: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        var(&mut out, statement);
        out.extend_from_slice(proof);
        out
    }

    /// A `writer_proof` plaintext: the version's proof and the chain.
    pub(crate) fn writer_proof(version_proof: &[u8], links: u8, chain: &[u8]) -> Vec<u8> {
        let mut out = vec![FormatVersion::V2.get()];
        out.extend_from_slice(version_proof);
        out.push(links);
        out.extend_from_slice(chain);
        out
    }
}

fn note() -> EntityType {
    ty("Note")
}

fn dk(from: Who, to: Who) -> DelegationKey {
    world().dk(from, to, &note())
}

/// A `Note` of A shared with B (`b`), B → C (read, when `b` is write) or A → C (read), and A → P (read).
fn shared(b: Permission) -> (EncryptedEntity, tessera_sharing::DecryptedEntity) {
    let w = world();
    let (mut entity, opened) = create_note(A);
    share_into(
        &mut entity,
        &opened,
        &[w.explicit(A, B, b), w.explicit(A, P, Read)],
    );
    if b == Write {
        let by_b = decrypt(&entity, &w.access(B)).unwrap();
        share_into(&mut entity, &by_b, &[w.explicit(B, C, Read)]);
    } else {
        share_into(&mut entity, &opened, &[w.explicit(A, C, Read)]);
    }
    (entity, opened)
}

/// Asserts that every one of `readers` refuses `entity` with `Error::Crypto`.
#[track_caller]
fn refused_by(entity: &EncryptedEntity, readers: &[Who], what: &str) {
    for who in readers {
        let result = decrypt(entity, &world().access(*who));
        assert!(
            matches!(result, Err(Error::Crypto)),
            "{what}: {who:?} got {result:?}"
        );
    }
}

/// The entity key `who` opens `entity` with through the delegation `key` (as a modified client would).
fn entity_key_of(
    entity: &EncryptedEntity,
    key: DelegationKey,
    secret: &ExchangeSecret,
) -> tessera_primitives::AeadKey {
    forge::open_entity_key(entity, key, secret, A.id()).0
}

// (a) Clear fields of a delegation.

#[test]
fn a_flipped_clear_permission_makes_the_delegation_refused() {
    // v1 read the permission from the clear field; v2 binds it in the statement under the sealed key.
    let (entity, _) = shared(Read);
    let mut promoted = entity.clone();
    promoted
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .permission = Write;
    // The delegate and the delegator (who both hold the pair's secret) refuse the record; C, who cannot open that
    // delegation, still reads.
    refused_by(&promoted, &[A, B], "A → B promoted to write");
    assert_eq!(
        decrypt(&promoted, &world().access(C)).unwrap().document,
        note_document()
    );

    let (entity, _) = shared(Write);
    let mut demoted = entity.clone();
    demoted
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .permission = Read;
    refused_by(&demoted, &[A, B], "A → B demoted to read");
    // The root demoted: A, who holds it, refuses the record. The others cannot open the root delegation and never
    // read its clear label: they rely on the signed root statement of the writer's chain, which still grants write.
    let mut root_read = entity.clone();
    root_read
        .security_metadata
        .delegations
        .get_mut(&dk(A, A))
        .unwrap()
        .permission = Read;
    refused_by(&root_read, &[A], "root demoted");
    for who in [B, C, P] {
        let read = decrypt(&root_read, &world().access(who)).unwrap();
        assert_eq!((read.creator, read.writer), (A.id(), A.id()), "{who:?}");
    }
    // B's own write, which it proves with its signed chain, is unaffected.
    assert_eq!(
        decrypt(&root_read, &world().access(B)).unwrap().permission,
        Write
    );
}

#[test]
fn flipped_clear_parents_make_the_delegation_refused() {
    let (entity, _) = shared(Write);
    // B → C moved directly under the root.
    let mut moved = entity.clone();
    moved
        .security_metadata
        .delegations
        .get_mut(&dk(B, C))
        .unwrap()
        .parents = BTreeSet::from([dk(A, A)]);
    rules::validate_metadata(&moved.security_metadata).unwrap();
    refused_by(&moved, &[B, C], "B → C re-parented under the root");
    // A parent added.
    let mut added = entity.clone();
    added
        .security_metadata
        .delegations
        .get_mut(&dk(B, C))
        .unwrap()
        .parents
        .insert(dk(A, P));
    rules::validate_metadata(&added.security_metadata).unwrap();
    refused_by(&added, &[B, C], "B → C with a second parent");
    // A → P moved under A → B.
    let mut under = entity.clone();
    under
        .security_metadata
        .delegations
        .get_mut(&dk(A, P))
        .unwrap()
        .parents = BTreeSet::from([dk(A, B)]);
    refused_by(&under, &[A, P], "A → P re-parented");
    // Unaffected readers still read.
    assert!(decrypt(&under, &world().access(C)).is_ok());
}

#[test]
fn flipped_clear_parties_make_the_delegation_refused() {
    let (entity, _) = shared(Write);
    for (who, edit) in [
        ("delegator", 0),
        ("delegate", 1),
        ("delegator", 2),
        ("delegate", 3),
    ] {
        let mut flipped = entity.clone();
        let to_b = flipped
            .security_metadata
            .delegations
            .get_mut(&dk(A, B))
            .unwrap();
        match edit {
            0 => to_b.delegator = Some(C.id()),
            1 => to_b.delegate = Some(C.id()),
            2 => to_b.delegator = Some(B.id()),
            _ => to_b.delegate = Some(A.id()),
        }
        refused_by(&flipped, &[A, B], &format!("A → B with another {who}"));
    }
    // Hiding a label the delegation shows (the server may only see less) is not a change of the statement: the
    // statement names the parties of the exchange data, not the labels. The record still opens.
    let mut hidden = entity.clone();
    let to_b = hidden
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap();
    to_b.delegate = None;
    to_b.delegator = None;
    for who in [A, B, C, P] {
        assert!(decrypt(&hidden, &world().access(who)).is_ok(), "{who:?}");
    }
}

#[test]
fn a_damaged_delegation_is_never_bypassed_through_another() {
    // v1 fell back to another accessible delegation when one did not open; v2 fails closed. A holds the root and
    // (as delegator) A → B: with A → B's sealed key damaged, A refuses the record although its root is intact.
    let (entity, _) = shared(Read);
    let mut damaged = entity.clone();
    damaged
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .entity_keys[0]
        .0[20] ^= 1;
    refused_by(&damaged, &[A, B], "A → B damaged");
    assert!(decrypt(&damaged, &world().access(P)).is_ok());
    // Two sealed keys in one delegation are refused too (exactly one is allowed).
    let mut doubled = entity.clone();
    let to_b = doubled
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap();
    to_b.entity_keys.push(to_b.entity_keys[0].clone());
    refused_by(&doubled, &[A, B], "A → B with two sealed keys");
}

// (b) A delegation injected by another owner.

#[test]
fn a_delegation_injected_by_another_owner_is_refused() {
    let w = world();
    let (entity, _) = shared(Read);
    // C makes its own record with the same id and type, its own key, commitment and content, shared with B.
    let mut spec = Spec::note();
    spec.document = object(json!({"note": "C's content", "lang": "xx"}));
    spec.autos = vec![w.explicit(C, B, Read)];
    let (fake, _) = common::create_with_id(C, entity.id, spec);
    assert_eq!(fake.id, entity.id);
    let c_to_b = fake.security_metadata.delegations[&dk(C, B)].clone();

    // Injected as is (its parent, C's root, missing), under A's root, and with C's commitment, content and proof
    // (so that its key matches the commitment).
    let mut as_is = entity.clone();
    as_is
        .security_metadata
        .delegations
        .insert(dk(C, B), c_to_b.clone());
    let mut under_root = as_is.clone();
    under_root
        .security_metadata
        .delegations
        .get_mut(&dk(C, B))
        .unwrap()
        .parents = BTreeSet::from([dk(A, A)]);
    let mut with_content = under_root.clone();
    with_content.key_commitment = fake.key_commitment;
    with_content.encrypted_self = fake.encrypted_self.clone();
    with_content.writer_proof = fake.writer_proof.clone();
    with_content.public = fake.public.clone();
    // C's root injected as well, as a second root, and as a child of A's root.
    let mut two_roots = with_content.clone();
    two_roots.security_metadata.delegations.insert(
        dk(C, C),
        fake.security_metadata.delegations[&dk(C, C)].clone(),
    );
    two_roots
        .security_metadata
        .delegations
        .get_mut(&dk(C, B))
        .unwrap()
        .parents = BTreeSet::from([dk(C, C)]);
    let mut c_root_under_a = two_roots.clone();
    c_root_under_a
        .security_metadata
        .delegations
        .get_mut(&dk(C, C))
        .unwrap()
        .parents = BTreeSet::from([dk(A, A)]);

    for (what, forged) in [
        ("as is", &as_is),
        ("under A's root", &under_root),
        ("with C's content", &with_content),
        ("with a second root", &two_roots),
        ("with C's root under A's", &c_root_under_a),
    ] {
        // B holds both A → B and C → B: it refuses the record and never shows C's content.
        let result = decrypt(forged, &w.access(B));
        assert!(matches!(result, Err(Error::Crypto)), "{what}: {result:?}");
        // A refuses it too whenever C's content replaced A's (A's own root no longer matches the commitment), and
        // C itself (which holds C → B) cannot read A's record through it.
        if !std::ptr::eq(forged, &as_is) && !std::ptr::eq(forged, &under_root) {
            refused_by(forged, &[A], what);
        }
        assert!(
            !matches!(decrypt(forged, &w.access(C)), Ok(ref read) if read.document["note"] == "C's content"),
            "{what}: C reads its injected content as A's record"
        );
    }
    // The whole record replaced by C's is C's record: whoever reads it sees C as its creator and writer.
    let read = decrypt(&fake, &w.access(B)).unwrap();
    assert_eq!((read.creator, read.writer), (C.id(), C.id()));
}

// (c) A read delegate that edits the record.

#[test]
fn a_version_a_read_delegate_edits_is_refused_by_every_reader() {
    let w = world();
    let (entity, _) = shared(Read);
    // B opens its delegation with its exchange secret and re-seals the content under the entity key.
    let key = entity_key_of(&entity, dk(A, B), w.secret(B, A, B));
    let mut tampered = entity.clone();
    let content = serde_json::to_vec(&json!({"note": "edited by B"})).unwrap();
    tampered.encrypted_self = Sealed(
        key.seal(&content, &forge::encrypted_self_aad(&entity))
            .unwrap(),
    );
    // Same content version, old writer proof: the signed version statement covers the content.
    refused_by(&tampered, &[A, B, C, P], "re-sealed content, old proof");
    // One version up, so that the server would accept it as an update: the old proof is bound to its version.
    let mut bumped = tampered.clone();
    bumped.content_version += 1;
    rules::validate_update(&entity, &bumped).unwrap();
    refused_by(
        &bumped,
        &[A, B, C, P],
        "re-sealed content, next version, old proof",
    );
    // The public part changed alone, the same.
    let mut public = entity.clone();
    public.public.insert("lang".into(), json!("fr"));
    refused_by(&public, &[A, B, C, P], "public part changed");
}

/// Signs a new version of `entity` by hand: `version_signer` signs the version statement naming `writer`, and the
/// chain is A's root link followed by `extra` links. Returns the entity with the sealed proof.
fn signed_by_hand(
    entity: &EncryptedEntity,
    entity_key: &tessera_primitives::AeadKey,
    writer: OwnerId,
    version_signer: &OwnerKeys,
    claimed_signer: (OwnerId, Fingerprint),
    extra: &[Vec<u8>],
) -> EncryptedEntity {
    let genuine = entity_key
        .open(&entity.writer_proof.0, &forge::writer_proof_aad(entity))
        .unwrap();
    let (links, root_chain) = forge::chain_of_writer_proof(&genuine);
    assert_eq!(links, 1, "A's own versions carry its root link only");
    let mut chain = root_chain;
    for link in extra {
        chain.extend_from_slice(link);
    }
    let mut version = entity.clone();
    version.content_version += 1;
    let hash = forge::version_hash(&version, &dk(A, A), A.id(), writer);
    let proof = forge::lone_proof(&hash, version_signer, claimed_signer);
    let plaintext = forge::writer_proof(&proof, 1 + u8::try_from(extra.len()).unwrap(), &chain);
    version.writer_proof = Sealed(
        entity_key
            .seal(&plaintext, &forge::writer_proof_aad(&version))
            .unwrap(),
    );
    version
}

#[test]
fn a_read_delegate_cannot_sign_a_version_with_a_chain_it_does_not_have() {
    let w = world();
    let (entity, _) = shared(Read);
    let key = entity_key_of(&entity, dk(A, B), w.secret(B, A, B));
    let content = serde_json::to_vec(&json!({"note": "edited by B"})).unwrap();
    let mut edited = entity.clone();
    edited.encrypted_self = Sealed(
        key.seal(&content, &forge::encrypted_self_aad(&entity))
            .unwrap(),
    );

    let (a_id, b_id) = (
        (A.id(), w.keys(A).fingerprint()),
        (B.id(), w.keys(B).fingerprint()),
    );
    // Positive control: A signing the same edit by hand gives a version every reader accepts, written by A.
    let by_a = signed_by_hand(&edited, &key, A.id(), w.keys(A), a_id, &[]);
    for who in [A, B, C, P] {
        let read = decrypt(&by_a, &w.access(who)).unwrap();
        assert_eq!(read.document["note"], "edited by B", "{who:?}");
        assert_eq!(read.writer, A.id(), "{who:?}");
        assert_eq!(read.content_version, entity.content_version + 1);
    }

    // B claims a write delegation A → B under the root, which A never signed: B signs it itself.
    let root = dk(A, A);
    let mut claimed = forge::Statement::of(&entity, dk(A, B), w.secret(B, A, B), A.id());
    claimed.permission = Write;
    assert_eq!(claimed.parents, BTreeSet::from([root]));
    let claimed_bytes = claimed.encode(&entity, true);
    let claimed_hash = claimed.hash(&entity);
    let attempts: Vec<(&str, EncryptedEntity)> = vec![
        (
            "link signed by B as B",
            signed_by_hand(
                &edited,
                &key,
                B.id(),
                w.keys(B),
                b_id,
                &[forge::link(
                    &claimed_bytes,
                    &forge::lone_proof(&claimed_hash, w.keys(B), b_id),
                )],
            ),
        ),
        (
            "link signed by B, claiming A",
            signed_by_hand(
                &edited,
                &key,
                B.id(),
                w.keys(B),
                b_id,
                &[forge::link(
                    &claimed_bytes,
                    &forge::lone_proof(&claimed_hash, w.keys(B), a_id),
                )],
            ),
        ),
        (
            "version signed by B, chain of A's root only",
            signed_by_hand(&edited, &key, A.id(), w.keys(B), b_id, &[]),
        ),
        (
            "version signed by B claiming A",
            signed_by_hand(&edited, &key, A.id(), w.keys(B), a_id, &[]),
        ),
        (
            "version naming B as writer, chain of A's root only",
            signed_by_hand(&edited, &key, B.id(), w.keys(B), b_id, &[]),
        ),
    ];
    for (what, forged) in &attempts {
        refused_by(forged, &[A, B, C, P], what);
    }
    // A link claiming A with B's fingerprint names a bundle nobody trusts: refused as an unknown signer.
    let unknown = signed_by_hand(
        &edited,
        &key,
        B.id(),
        w.keys(B),
        b_id,
        &[forge::link(
            &claimed_bytes,
            &forge::lone_proof(&claimed_hash, w.keys(B), (A.id(), b_id.1)),
        )],
    );
    for who in [A, B, C, P] {
        let result = decrypt(&unknown, &w.access(who));
        assert!(
            matches!(result, Err(Error::UnknownSigner(owner)) if owner == A.id()),
            "{who:?}: {result:?}"
        );
    }

    // B's own delegation relabelled write in clear, to match: it no longer opens (a).
    let (_, mut relabelled) = attempts.into_iter().next().unwrap();
    relabelled
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .permission = Write;
    refused_by(&relabelled, &[A, B, C, P], "and the clear permission");
}

// (d) Versions re-served out of their place.

#[test]
fn a_writer_proof_is_bound_to_its_content_version_and_key_epoch() {
    let w = world();
    let (v1, opened) = shared(Read);
    let mut document = note_document();
    document.insert("note".into(), json!("second version"));
    let v2 = update(&v1, &opened, document, &note_manifest(), w.keys(A)).unwrap();
    assert_eq!(v2.content_version, v1.content_version + 1);
    rules::validate_update(&v1, &v2).unwrap();
    for who in [A, B, C, P] {
        assert_eq!(
            decrypt(&v2, &w.access(who)).unwrap().document["note"],
            "second version"
        );
        // Each version, whole, is a valid version (seen versions are tracked above this layer).
        assert!(decrypt(&v1, &w.access(who)).is_ok());
    }
    // The new content under the old proof, the old content under the new proof.
    let mut swapped = v2.clone();
    swapped.writer_proof = v1.writer_proof.clone();
    refused_by(&swapped, &[A, B, C, P], "v2 with v1's proof");
    let mut swapped = v1.clone();
    swapped.writer_proof = v2.writer_proof.clone();
    refused_by(&swapped, &[A, B, C, P], "v1 with v2's proof");
    // The old version relabelled with the new content version, and the new one with the old.
    let mut relabelled = v1.clone();
    relabelled.content_version = v2.content_version;
    refused_by(&relabelled, &[A, B, C, P], "v1 relabelled v2");
    let mut relabelled = v2.clone();
    relabelled.content_version = v1.content_version;
    refused_by(&relabelled, &[A, B, C, P], "v2 relabelled v1");

    // Across a rotation: the key epoch.
    let rotation = revoke_and_rotate(&v2, &opened, &[dk(A, P)], &w.access(A), w.keys(A)).unwrap();
    let (v3, _) = rotation.sign(w.keys(A)).unwrap();
    assert_eq!(
        (v3.key_epoch, v3.content_version),
        (v2.key_epoch + 1, v2.content_version + 1)
    );
    for (epoch, version) in [(0, 0), (1, 0), (0, 1)] {
        let mut stale = v3.clone();
        stale.key_epoch = v2.key_epoch + epoch;
        stale.content_version = v2.content_version + version;
        refused_by(
            &stale,
            &[A, B, C],
            &format!("epoch +{epoch}, version +{version}"),
        );
    }
    let mut stale = v3.clone();
    stale.writer_proof = v2.writer_proof.clone();
    refused_by(&stale, &[A, B, C], "rotated with the old proof");
    // The old epoch's content under the new epoch's delegations.
    let mut mixed = v3.clone();
    mixed.encrypted_self = v2.encrypted_self.clone();
    mixed.key_commitment = v2.key_commitment;
    refused_by(
        &mixed,
        &[A, B, C],
        "old content and commitment, new delegations",
    );
}

// (e) Rotation re-wraps only what the rotator verifies as its own.

#[test]
fn a_revoked_delegation_put_back_is_not_re_wrapped_by_the_next_rotation() {
    let w = world();
    let (stored, opened) = shared(Read);
    let rotation =
        revoke_and_rotate(&stored, &opened, &[dk(A, P)], &w.access(A), w.keys(A)).unwrap();
    let (rotated, keys) = rotation.sign(w.keys(A)).unwrap();
    assert_no_access(decrypt(&rotated, &w.access(P)));

    // The server puts P's old delegation back.
    let mut reinserted = rotated.clone();
    reinserted.security_metadata.delegations.insert(
        dk(A, P),
        stored.security_metadata.delegations[&dk(A, P)].clone(),
    );
    // It binds the old key epoch: P and A (who both hold the pair's secret) refuse the record.
    refused_by(&reinserted, &[A, P], "the old A → P put back");
    assert!(decrypt(&reinserted, &w.access(B)).is_ok());

    // A rotates again with the keys of its last rotation: the old delegation is removed, not re-wrapped.
    let again = revoke_and_rotate(&reinserted, &keys, &[], &w.access(A), w.keys(A)).unwrap();
    assert!(again.removed.contains(&dk(A, P)), "{:?}", again.removed);
    let (next, _) = again.sign(w.keys(A)).unwrap();
    assert!(!next.security_metadata.delegations.contains_key(&dk(A, P)));
    assert_no_access(decrypt(&next, &w.access(P)));
    for who in [A, B, C] {
        assert_eq!(
            decrypt(&next, &w.access(who)).unwrap().document,
            note_document()
        );
    }
}

#[test]
fn a_delegation_the_delegate_sealed_itself_is_not_re_wrapped() {
    let w = world();
    let (entity, opened) = shared(Read);
    // B re-seals its own delegation under the pair's exchange key, promoted to write, with a tag it made up.
    let secret = w.secret(B, A, B);
    let (key, creator, tag) = forge::open_entity_key(&entity, dk(A, B), secret, A.id());
    assert_eq!(creator, A.id());
    let mut statement = forge::Statement::of(&entity, dk(A, B), secret, A.id());
    statement.permission = Write;
    let mut forged = entity.clone();
    {
        let to_b = forged
            .security_metadata
            .delegations
            .get_mut(&dk(A, B))
            .unwrap();
        to_b.permission = Write;
        to_b.entity_keys = vec![Sealed(forge::seal_entity_key(
            &entity,
            &statement,
            secret.opening_key(),
            &key,
            &[0x42; 32],
        ))];
    }
    assert_ne!(tag, [0x42; 32]);
    // The sealed key opens under its statement (it is well formed) ...
    assert!(decrypt(&forged, &w.access(A)).is_ok());
    assert!(decrypt(&forged, &w.access(C)).is_ok());
    // ... but B holds no signed chain for it, so B cannot use it (its own read fails closed) ...
    assert_crypto(decrypt(&forged, &w.access(B)));
    // ... and A's next rotation does not re-wrap it: it is not tagged by A.
    let a_keys = open_keys(&forged, &w.access(A)).unwrap();
    assert_eq!(a_keys.delegation_key, opened.delegation_key);
    let rotation = revoke_and_rotate(&forged, &a_keys, &[], &w.access(A), w.keys(A)).unwrap();
    assert!(
        rotation.removed.contains(&dk(A, B)),
        "{:?}",
        rotation.removed
    );
    let (rotated, _) = rotation.sign(w.keys(A)).unwrap();
    assert_no_access(decrypt(&rotated, &w.access(B)));
    for who in [A, C, P] {
        assert!(decrypt(&rotated, &w.access(who)).is_ok(), "{who:?}");
    }

    // Positive control: the same re-seal with A's real tag (which only A can compute) is kept.
    let mut genuine = entity.clone();
    genuine
        .security_metadata
        .delegations
        .get_mut(&dk(A, B))
        .unwrap()
        .entity_keys = vec![Sealed(forge::seal_entity_key(
        &entity,
        &forge::Statement::of(&entity, dk(A, B), secret, A.id()),
        secret.opening_key(),
        &key,
        &tag,
    ))];
    let rotation = revoke_and_rotate(&genuine, &opened, &[], &w.access(A), w.keys(A)).unwrap();
    assert!(
        !rotation.removed.contains(&dk(A, B)),
        "{:?}",
        rotation.removed
    );
}

// (f) The writer.

#[test]
fn the_writer_is_the_creator_then_the_write_delegate_that_updated() {
    let w = world();
    let (entity, opened) = shared(Write);
    assert_eq!((opened.creator, opened.writer), (A.id(), A.id()));
    assert_eq!((opened.content_version, opened.key_epoch), (1, 0));
    for who in [A, B, C, P] {
        let read = decrypt(&entity, &w.access(who)).unwrap();
        assert_eq!((read.creator, read.writer), (A.id(), A.id()), "{who:?}");
    }
    let by_b = decrypt(&entity, &w.access(B)).unwrap();
    assert_eq!(by_b.permission, Write);
    let mut document = note_document();
    document.insert("note".into(), json!("written by B"));
    let updated = update(&entity, &by_b, document, &note_manifest(), w.keys(B)).unwrap();
    rules::validate_update(&entity, &updated).unwrap();
    for who in [A, B, C, P] {
        let read = decrypt(&updated, &w.access(who)).unwrap();
        assert_eq!((read.creator, read.writer), (A.id(), B.id()), "{who:?}");
        assert_eq!(read.content_version, 2);
        assert_eq!(read.document["note"], "written by B");
    }
    // C, read only, cannot update; B cannot sign with another owner's keys.
    let by_c = decrypt(&entity, &w.access(C)).unwrap();
    assert_eq!(
        common::violation(update(
            &entity,
            &by_c,
            note_document(),
            &note_manifest(),
            w.keys(C)
        )),
        tessera_sharing::RuleViolation::WriteRequired
    );
    assert_eq!(
        common::violation(update(
            &entity,
            &by_b,
            note_document(),
            &note_manifest(),
            w.keys(C)
        )),
        tessera_sharing::RuleViolation::WriteRequired
    );
    // Then A again.
    let again = update(
        &updated,
        &opened,
        note_document(),
        &note_manifest(),
        w.keys(A),
    )
    .unwrap();
    let read = decrypt(&again, &w.access(C)).unwrap();
    assert_eq!((read.writer, read.content_version), (A.id(), 3));
}

// (g) Attachment references.

/// An edit of a stored entity.
type Edit = fn(&mut EncryptedEntity);

#[test]
fn attachment_references_are_part_of_the_signed_version() {
    let w = world();
    let (entity, opened) = shared(Read);
    let (first, first_sealed) = seal_attachment(&opened, b"first attachment").unwrap();
    let (second, _) = seal_attachment(&opened, b"second attachment, longer").unwrap();
    let with = revise(&entity, &opened, w.keys(A), |e| {
        e.attachments = vec![first.clone(), second.clone()];
        Ok(())
    })
    .unwrap();
    let read = decrypt(&with, &w.access(B)).unwrap();
    assert_eq!(read.attachments, [first.clone(), second.clone()]);
    assert_eq!(
        open_attachment(&read, &read.attachments[0], &first_sealed).unwrap(),
        b"first attachment"
    );

    let edits: [(&str, Edit); 7] = [
        ("truncated", |e| e.attachments.truncate(1)),
        ("emptied", |e| e.attachments.clear()),
        ("reordered", |e| e.attachments.reverse()),
        ("sealed keys swapped", |e| {
            let key = e.attachments[0].sealed_key.clone();
            e.attachments[0].sealed_key = e.attachments[1].sealed_key.clone();
            e.attachments[1].sealed_key = key;
        }),
        ("a sealed key flipped", |e| {
            e.attachments[0].sealed_key.0[25] ^= 1
        }),
        ("a length changed", |e| e.attachments[0].encrypted_len += 1),
        ("duplicated", |e| {
            let first = e.attachments[0].clone();
            e.attachments.push(first);
        }),
    ];
    for (what, edit) in edits {
        let mut edited = with.clone();
        edit(&mut edited);
        refused_by(&edited, &[A, B, C, P], what);
    }
    // The references of another version of the same entity.
    let mut older = with.clone();
    older.attachments = entity.attachments.clone();
    refused_by(&older, &[A, B, C, P], "the previous version's references");
}

// (h) A writer proof moved to another entity.

#[test]
fn a_writer_proof_does_not_move_between_entities() {
    let w = world();
    let (x, _) = shared(Read);
    let (y, _) = shared(Read);
    let mut moved = x.clone();
    moved.writer_proof = y.writer_proof.clone();
    refused_by(&moved, &[A, B, C, P], "y's proof on x");
    // Nor between two records of one batch (same signature, other statement).
    let manifest = note_manifest();
    let records: Vec<_> = (0..2)
        .map(|_| {
            (
                NewEntity {
                    id: EntityId::generate().unwrap(),
                    entity_type: note(),
                    document: note_document(),
                    manifest: &manifest,
                    secret_ids: vec![],
                    parents: vec![],
                },
                vec![w.explicit(A, B, Read)],
            )
        })
        .collect();
    let batch = create_many(records, w.explicit(A, A, Write), w.keys(A)).unwrap();
    let mut moved = batch[0].clone();
    moved.writer_proof = batch[1].writer_proof.clone();
    refused_by(&moved, &[A, B], "a batch sibling's proof");
    // Nor is it empty or cut short.
    let mut empty = x.clone();
    empty.writer_proof = Sealed(Vec::new());
    refused_by(&empty, &[A, B, C, P], "no proof");
    let mut cut = x.clone();
    cut.writer_proof.0.truncate(x.writer_proof.0.len() - 1);
    refused_by(&cut, &[A, B, C, P], "a proof cut short");
}

// (i) One signature per batch.

/// A lookup that counts the signer look-ups (one per batch signature verified) and may forget verified batches.
struct Counting {
    inner: AccessIndex,
    remember: bool,
    lookups: AtomicUsize,
}

impl DelegationLookup for Counting {
    fn owner(&self) -> OwnerId {
        self.inner.owner()
    }

    fn exchange_secret(
        &self,
        entity_type: &EntityType,
        delegation_key: &DelegationKey,
    ) -> tessera_sharing::Result<Option<Arc<ExchangeSecret>>> {
        self.inner.exchange_secret(entity_type, delegation_key)
    }

    fn signer(
        &self,
        owner: OwnerId,
        fingerprint: Fingerprint,
    ) -> tessera_sharing::Result<Option<TrustedBundle>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        DelegationLookup::signer(&self.inner, owner, fingerprint)
    }

    fn verified_batches(&self) -> Option<&VerifiedBatches> {
        self.remember.then(|| self.inner.verified_batches())
    }
}

#[test]
fn fifty_records_created_together_cost_one_signature() {
    let w = world();
    let manifest = note_manifest();
    let records: Vec<_> = (0..50)
        .map(|i| {
            let mut document = note_document();
            document.insert("n".into(), json!(i));
            (
                NewEntity {
                    id: EntityId::generate().unwrap(),
                    entity_type: note(),
                    document,
                    manifest: &manifest,
                    secret_ids: vec![],
                    parents: vec![],
                },
                vec![w.explicit(A, B, Read), w.explicit(A, C, Write)],
            )
        })
        .collect();
    let entities = create_many(records, w.explicit(A, A, Write), w.keys(A)).unwrap();
    assert_eq!(entities.len(), 50);

    for (who, reads_per_record) in [(A, 2), (B, 2), (C, 2)] {
        let counting = Counting {
            inner: w.access(who),
            remember: true,
            lookups: AtomicUsize::new(0),
        };
        for (i, entity) in entities.iter().enumerate() {
            rules::validate_new_entity(entity).unwrap();
            let read = decrypt(entity, &counting).unwrap();
            assert_eq!(read.document["n"], json!(i), "{who:?}");
            assert_eq!((read.creator, read.writer), (A.id(), A.id()));
        }
        // One batch, one signature: verified once, then remembered.
        assert_eq!(counting.lookups.load(Ordering::Relaxed), 1, "{who:?}");
        // Without the memory, every proof is verified: the version's and the root link's of each record, and for
        // C (write) its own chain's too.
        let forgetful = Counting {
            inner: w.access(who),
            remember: false,
            lookups: AtomicUsize::new(0),
        };
        for entity in &entities {
            decrypt(entity, &forgetful).unwrap();
        }
        let expected = if who == C {
            50 * 4
        } else {
            50 * reads_per_record
        };
        assert_eq!(
            forgetful.lookups.load(Ordering::Relaxed),
            expected,
            "{who:?}"
        );
    }
    // The memory is the index's own: a fresh index verifies again, once; cleared, once more.
    let index = w.access(B);
    decrypt(&entities[0], &index).unwrap();
    index.verified_batches().clear();
    let counting = Counting {
        inner: index,
        remember: true,
        lookups: AtomicUsize::new(0),
    };
    for entity in &entities {
        decrypt(entity, &counting).unwrap();
    }
    assert_eq!(counting.lookups.load(Ordering::Relaxed), 1);
}

#[test]
fn an_unknown_signer_is_reported_not_trusted() {
    let w = world();
    let (entity, _) = shared(Read);
    // B's index without any trusted bundle: it cannot verify A's signature yet.
    let untrusted = AccessIndex::new(B.id(), w.secrets_of(B));
    let result = decrypt(&entity, &untrusted);
    assert!(
        matches!(result, Err(Error::UnknownSigner(owner)) if owner == A.id()),
        "{result:?}"
    );
    // Trusting A's bundle only is enough.
    let trusted = AccessIndex::new(B.id(), w.secrets_of(B)).with_signers([w.bundle(A).clone()]);
    assert!(decrypt(&entity, &trusted).is_ok());
    // A bundle of another owner does not stand in for A's.
    let wrong = AccessIndex::new(B.id(), w.secrets_of(B)).with_signers([w.bundle(C).clone()]);
    let result = decrypt(&entity, &wrong);
    assert!(
        matches!(result, Err(Error::UnknownSigner(owner)) if owner == A.id()),
        "{result:?}"
    );
}
