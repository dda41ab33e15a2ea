//! Sealed values moved between entities, delegations or fields, or altered by a byte, fail with the opaque `Error::Crypto`; so do side-map entries opened by another owner or tampered with.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{
    Spec, Who, assert_crypto, create_as, from_bincode, note_document, to_bincode, to_json, ty,
    world,
};
use tessera_keys::DelegationKey;
use tessera_sharing::{
    EncryptedEntity, EntityId, ParentLink, Permission, Sealed, SecretId, SecretIdScope,
    SecureDelegation, SideMapEntry, Visibility, decrypt,
};

use Who::{A, B, C, P};

/// A `Note` of A with two secret ids and a parent link, shared with B (read).
fn linked_note() -> EncryptedEntity {
    let w = world();
    let spec = Spec {
        secret_ids: vec![
            (SecretId::generate().unwrap(), SecretIdScope::Shared),
            (SecretId::generate().unwrap(), SecretIdScope::Shared),
        ],
        parents: vec![ParentLink {
            parent: EntityId::generate().unwrap(),
            secret_id: SecretId::generate().unwrap(),
        }],
        autos: vec![w.explicit(A, B, Permission::Read)],
        ..Spec::note()
    };
    create_as(A, spec).0
}

fn b_key() -> DelegationKey {
    world().dk(A, B, &ty("Note"))
}

fn b_delegation(entity: &mut EncryptedEntity) -> &mut SecureDelegation {
    entity
        .security_metadata
        .delegations
        .get_mut(&b_key())
        .unwrap()
}

/// B's reading of `entity`.
fn read_as_b(
    entity: &EncryptedEntity,
) -> Result<tessera_sharing::DecryptedEntity, tessera_sharing::Error> {
    decrypt(entity, &world().access(B))
}

#[test]
fn encrypted_self_does_not_move_between_entities() {
    let (x, y) = (linked_note(), linked_note());
    assert!(read_as_b(&x).is_ok());
    let mut swapped = x.clone();
    swapped.encrypted_self = y.encrypted_self.clone();
    assert_crypto(read_as_b(&swapped));
    assert_crypto(decrypt(&swapped, &world().access(A)));
}

#[test]
fn an_entity_key_does_not_move_between_entities_of_one_pair() {
    let (x, mut y) = (linked_note(), linked_note());
    // Same type, same pair: the very same delegation key on both.
    assert!(x.security_metadata.delegations.contains_key(&b_key()));
    assert!(y.security_metadata.delegations.contains_key(&b_key()));

    let mut swapped = x.clone();
    b_delegation(&mut swapped).entity_keys = b_delegation(&mut y).entity_keys.clone();
    assert_crypto(read_as_b(&swapped));

    // Even with the other entity's commitment and content: the key's seal names the entity it belongs to.
    swapped.key_commitment = y.key_commitment;
    swapped.encrypted_self = y.encrypted_self.clone();
    assert_crypto(read_as_b(&swapped));

    // The whole delegation moved over fails the same way.
    let mut moved = x.clone();
    moved.key_commitment = y.key_commitment;
    moved.encrypted_self = y.encrypted_self.clone();
    *b_delegation(&mut moved) = b_delegation(&mut y).clone();
    assert_crypto(read_as_b(&moved));
}

#[test]
fn an_entity_key_does_not_move_between_delegations() {
    let w = world();
    let mut spec = Spec::note();
    spec.autos = vec![
        w.explicit(A, B, Permission::Read),
        w.explicit(A, C, Permission::Read),
    ];
    let (entity, _) = create_as(A, spec);
    let to_c = w.dk(A, C, &ty("Note"));
    let mut swapped = entity.clone();
    let from_b = swapped.security_metadata.delegations[&b_key()].clone();
    swapped
        .security_metadata
        .delegations
        .get_mut(&to_c)
        .unwrap()
        .entity_keys = from_b.entity_keys;
    assert_crypto(decrypt(&swapped, &w.access(C)));
    assert!(decrypt(&swapped, &w.access(B)).is_ok());
}

/// An edit of B's delegation.
type Edit = fn(&mut SecureDelegation);

#[test]
fn a_sealed_value_does_not_move_between_fields() {
    let entity = linked_note();
    let moves: [(&str, Edit); 5] = [
        ("secret id → entity key", |d| {
            d.entity_keys = vec![d.secret_ids[0].clone()];
        }),
        ("owning id → entity key", |d| {
            d.entity_keys = vec![d.owning_entity_ids[0].clone()];
        }),
        ("entity key → secret id", |d| {
            d.secret_ids.push(d.entity_keys[0].clone());
        }),
        ("owning id → secret id", |d| {
            d.secret_ids.push(d.owning_entity_ids[0].clone());
        }),
        ("secret id → owning id", |d| {
            d.owning_entity_ids.push(d.secret_ids[0].clone());
        }),
    ];
    for (what, edit) in moves {
        let mut moved = entity.clone();
        edit(b_delegation(&mut moved));
        let result = read_as_b(&moved);
        assert!(
            matches!(result, Err(tessera_sharing::Error::Crypto)),
            "{what}: {result:?}"
        );
    }
}

/// Flips each bit 0x01 of each byte of the sealed value `pick` selects, one at a time, and expects `Error::Crypto`.
fn assert_every_flip_fails(
    entity: &EncryptedEntity,
    pick: fn(&mut EncryptedEntity) -> &mut Vec<u8>,
) -> usize {
    let mut original = entity.clone();
    let len = pick(&mut original).len();
    for index in 0..len {
        let mut flipped = entity.clone();
        pick(&mut flipped)[index] ^= 0x01;
        let result = read_as_b(&flipped);
        assert!(
            matches!(result, Err(tessera_sharing::Error::Crypto)),
            "byte {index}: {result:?}"
        );
    }
    // And cut short.
    for keep in [0, len / 2, len - 1] {
        let mut cut = entity.clone();
        pick(&mut cut).truncate(keep);
        assert_crypto(read_as_b(&cut));
    }
    len
}

fn sealed(delegation: &mut SecureDelegation, field: usize) -> &mut Vec<u8> {
    let Sealed(bytes) = match field {
        0 => &mut delegation.entity_keys[0],
        1 => &mut delegation.secret_ids[0],
        _ => &mut delegation.owning_entity_ids[0],
    };
    bytes
}

#[test]
fn every_flipped_byte_of_a_sealed_value_is_refused() {
    let entity = linked_note();
    assert_eq!(read_as_b(&entity).unwrap().document, note_document());
    let lengths = [
        assert_every_flip_fails(&entity, |e| &mut e.encrypted_self.0),
        assert_every_flip_fails(&entity, |e| sealed(b_delegation(e), 0)),
        assert_every_flip_fails(&entity, |e| sealed(b_delegation(e), 1)),
        assert_every_flip_fails(&entity, |e| sealed(b_delegation(e), 2)),
    ];
    // Sealed box: version, algorithm, 12-byte nonce, payload, 16-byte tag. The entity key's payload is
    // entity key (32) ‖ creator (16) ‖ delegator's tag (32) since protocol v2.
    assert_eq!(lengths[1..], [30 + 32 + 16 + 32, 30 + 33, 30 + 16]);
    assert!(lengths[0] > 30);

    for index in 0..32 {
        let mut flipped = entity.clone();
        flipped.key_commitment[index] ^= 0x80;
        assert_crypto(read_as_b(&flipped));
    }
}

#[test]
fn side_map_entries_open_for_their_owner_only() {
    let w = world();
    let note = ty("Note");
    // A shares with P anonymously; A keeps the exchange data id of the pair in its side map.
    let key = w.dk(A, P, &note);
    let exchange = w.data(A, P).id();
    let entry = SideMapEntry::seal(w.keys(A), key, exchange).unwrap();
    assert_eq!(entry.owner, A.id());
    assert_eq!(entry.delegation_key, key);
    assert_eq!(entry.open(w.keys(A)).unwrap(), exchange);
    // The id is not in clear.
    assert!(!to_json(&entry).contains(&exchange.to_string()));
    assert!(!common::contains(&to_bincode(&entry), exchange.as_bytes()));

    // Round trips.
    let from_json: SideMapEntry = serde_json::from_str(&to_json(&entry)).unwrap();
    assert_eq!(from_json, entry);
    let from_bin: SideMapEntry = from_bincode(&to_bincode(&entry)).unwrap();
    assert_eq!(from_bin.open(w.keys(A)).unwrap(), exchange);

    // Another owner's keys.
    for who in [B, C, P] {
        assert_crypto(entry.open(w.keys(who)));
    }
    // Relabelled for another owner, who then tries.
    let mut relabelled = entry.clone();
    relabelled.owner = B.id();
    assert_crypto(relabelled.open(w.keys(B)));
    // Moved to another delegation key.
    let mut moved = entry.clone();
    moved.delegation_key = w.dk(A, B, &note);
    assert_crypto(moved.open(w.keys(A)));
    // Another entry's box.
    let other = SideMapEntry::seal(w.keys(A), w.dk(A, C, &note), w.data(A, C).id()).unwrap();
    let mut swapped = entry.clone();
    swapped.sealed_exchange_data_id = other.sealed_exchange_data_id;
    assert_crypto(swapped.open(w.keys(A)));
    // Every flipped byte, and a box cut short.
    let len = entry.sealed_exchange_data_id.0.len();
    assert_eq!(len, 30 + 16);
    for index in 0..len {
        let mut flipped = entry.clone();
        flipped.sealed_exchange_data_id.0[index] ^= 0x01;
        assert_crypto(flipped.open(w.keys(A)));
    }
    let mut cut = entry.clone();
    cut.sealed_exchange_data_id.0.truncate(len - 1);
    assert_crypto(cut.open(w.keys(A)));
}

#[test]
fn a_side_map_resolves_an_anonymous_delegation() {
    let w = world();
    let note = ty("Note");
    let mut spec = Spec::note();
    spec.autos = vec![w.target(A, P, Visibility::AnonymousDelegate, Permission::Read)];
    let (entity, _) = create_as(A, spec);
    let key = w.dk(A, P, &note);
    let delegation = &entity.security_metadata.delegations[&key];
    assert_eq!(delegation.exchange_data_id, None);
    // A resolves the pair through its side map, and finds the secret of that exchange data.
    let entry = SideMapEntry::seal(w.keys(A), key, w.data(A, P).id()).unwrap();
    let exchange = entry.open(w.keys(A)).unwrap();
    let secret = w
        .secrets_of(A)
        .into_iter()
        .find(|s| s.id() == exchange)
        .unwrap();
    assert_eq!(secret.delegation_key(&note), key);
    assert_eq!(secret.delegate(), P.id());
}
