//! Unit tests of the proofs: Merkle paths, remembered nodes, statement encodings.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use super::*;

/// The memory of verified nodes shortens later proofs of a batch but never lets a proof through that a full
/// verification would refuse: another signer, a statement outside its group, a wrong sibling.
#[cfg(feature = "test-utils")]
#[test]
fn remembered_nodes_shorten_proofs_of_their_signer_only() {
    use crate::AccessIndex;
    use crate::test_utils::Who;
    use tessera_keys::test_utils::trusted;

    let (a, b) = (Who::A.keys().unwrap(), Who::B.keys().unwrap());
    let mut batch = BatchBuilder::default();
    let statements: Vec<[u8; 32]> = (0u32..5).map(|i| sha256(&i.to_be_bytes())).collect();
    for statement in &statements {
        let group = batch.group();
        batch.push(group, *statement).unwrap();
    }
    let signed = batch.sign(&a).unwrap();
    let proof = |group: usize| signed.proof(group, 0).unwrap();
    let index = AccessIndex::new(Who::C.id(), [])
        .with_signers([trusted(&a).unwrap(), trusted(&b).unwrap()]);
    let remembered = || index.verified_batches().lock().len();

    proof(0).verify(&statements[0], &index).unwrap();
    let after_first = remembered();
    assert_eq!(
        after_first, 4,
        "leaf, two inner nodes and the root of a 5-leaf tree"
    );
    // The next leaf stops at its parent, already verified: one new node.
    proof(1).verify(&statements[1], &index).unwrap();
    assert_eq!(remembered(), after_first + 1);

    // The same nodes claimed by another signer are not remembered for it, and its key refuses the root.
    let mut other = proof(2);
    other.signer = Who::B.id();
    other.fingerprint = b.fingerprint();
    assert!(matches!(
        other.verify(&statements[2], &index),
        Err(Error::Crypto)
    ));
    // A statement that is not in its group, or a wrong sibling, fails however much is remembered.
    assert!(matches!(
        proof(2).verify(&statements[3], &index),
        Err(Error::Crypto)
    ));
    let mut wrong = proof(3);
    wrong.path[0] = [7; 32];
    assert!(matches!(
        wrong.verify(&statements[3], &index),
        Err(Error::Crypto)
    ));
    let mut shifted = proof(3);
    shifted.index = 5;
    assert!(matches!(
        shifted.verify(&statements[3], &index),
        Err(Error::Crypto)
    ));
    for (group, statement) in statements.iter().enumerate() {
        proof(group).verify(statement, &index).unwrap();
    }
}

/// A statement with fixed fields and the given parents (keys filled with the given bytes).
fn sample_statement(parents: &[u8]) -> DelegationStatement {
    DelegationStatement {
        entity: EntityId::from_bytes([1; 16]),
        entity_type: EntityType::new("Note").unwrap(),
        delegation_key: DelegationKey::from_bytes([2; 32]),
        delegator: OwnerId::from_bytes([4; 16]),
        delegate: OwnerId::from_bytes([5; 16]),
        permission: Permission::Write,
        epoch: 7,
        parents: parents
            .iter()
            .map(|b| DelegationKey::from_bytes([*b; 32]))
            .collect(),
        root: DelegationKey::from_bytes([6; 32]),
        creator: OwnerId::from_bytes([8; 16]),
        sealed_fields: [9; 32],
    }
}

#[test]
fn both_encodings_at_once_are_the_two_encodings() {
    for parents in [&[][..], &[3]] {
        let statement = sample_statement(parents);
        assert_eq!(
            statement.encodings(),
            (statement.encode(false), statement.encode(true))
        );
    }
}

#[test]
fn decoding_accepts_only_canonical_bytes() {
    let statement = sample_statement(&[3, 9]);
    let bytes = statement.encode(true);
    assert_eq!(DelegationStatement::decode(&bytes).unwrap(), statement);
    // Every byte changed, and every truncation or extension, either fails or decodes to a value whose
    // encoding is exactly the bytes given.
    let mut variants: Vec<Vec<u8>> = (0..bytes.len())
        .flat_map(|i| {
            [1u8, 0x80].map(|flip| {
                let mut changed = bytes.clone();
                changed[i] ^= flip;
                changed
            })
        })
        .collect();
    variants.extend((0..bytes.len()).map(|n| bytes[..n].to_vec()));
    variants.push([bytes.as_slice(), &[0]].concat());
    // The two parents swapped, and one parent twice.
    let parents_at = bytes.len() - 16 - 1 - 32 - 32 * 2;
    let mut swapped = bytes.clone();
    swapped[parents_at..parents_at + 32].copy_from_slice(&[9; 32]);
    swapped[parents_at + 32..parents_at + 64].copy_from_slice(&[3; 32]);
    let mut twice = bytes.clone();
    twice[parents_at + 32..parents_at + 64].copy_from_slice(&[3; 32]);
    for variant in variants.iter().chain([&swapped, &twice]) {
        if let Ok(decoded) = DelegationStatement::decode(variant) {
            assert_eq!(&decoded.encode(true), variant);
        }
    }
    assert!(DelegationStatement::decode(&swapped).is_err());
    assert!(DelegationStatement::decode(&twice).is_err());
}

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
