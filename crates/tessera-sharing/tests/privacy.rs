//! What the stored metadata reveals: delegation keys name no party, anonymous delegations hide the patient, and links carry per-type search tags instead of the parent's id (P6).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::collections::BTreeSet;

use common::{
    Spec, Who, assert_no_trace, contains, create_as, object, share_into, to_bincode, to_json, ty,
    world,
};
use serde_json::json;
use tessera_keys::EntityType;
use tessera_sharing::{
    EncryptedEntity, EncryptionManifest, ParentLink, Permission, SecretId, SecretIdScope,
    SecureDelegation, Visibility, decrypt,
};

use Permission::{Read, Write};
use Who::{A, B, C, P};

fn types() -> Vec<EntityType> {
    ["Patient", "Contact", "HealthElement", "Note"]
        .into_iter()
        .map(ty)
        .collect()
}

#[test]
fn delegation_keys_differ_for_every_pair_and_type() {
    let w = world();
    let mut seen = BTreeSet::new();
    for from in Who::ALL {
        for to in Who::ALL {
            for entity_type in types() {
                let key = w.dk(from, to, &entity_type);
                // Both parties derive it.
                assert_eq!(
                    w.secret(to, from, to).delegation_key(&entity_type),
                    key,
                    "{from:?} → {to:?} {entity_type}"
                );
                assert!(seen.insert(key), "{from:?} → {to:?} {entity_type} repeats");
                // It shows no owner id.
                for who in Who::ALL {
                    let id = hex::encode(who.id().as_bytes());
                    assert!(!key.to_string().contains(&id[..8]));
                }
            }
        }
    }
    assert_eq!(seen.len(), 4 * 4 * 4);
}

/// Checks the clear parties of a delegation against its visibility.
fn assert_visibility(delegation: &SecureDelegation, visibility: Visibility, from: Who, to: Who) {
    let (delegator, delegate) = match visibility {
        Visibility::Explicit => (Some(from.id()), Some(to.id())),
        Visibility::AnonymousDelegate => (Some(from.id()), None),
        Visibility::AnonymousDelegator => (None, Some(to.id())),
        Visibility::Anonymous => (None, None),
    };
    assert_eq!(delegation.delegator, delegator, "{visibility:?}");
    assert_eq!(delegation.delegate, delegate, "{visibility:?}");
    let exchange = world().data(from, to).id();
    if visibility == Visibility::Explicit {
        assert_eq!(delegation.exchange_data_id, Some(exchange));
    } else {
        assert_eq!(delegation.exchange_data_id, None, "{visibility:?}");
    }
}

/// Asserts that no encoding of `entity` shows the patient's id or the id of any exchange data of the patient.
fn assert_patient_hidden(entity: &EncryptedEntity) {
    let w = world();
    let id = P.id();
    assert_no_trace(entity, id.as_bytes(), &id.to_string(), "the patient's id");
    assert!(!to_json(entity).contains("patient-owner-id"));
    for other in Who::ALL {
        for (from, to) in [(P, other), (other, P)] {
            let exchange = w.data(from, to).id();
            assert_no_trace(
                entity,
                exchange.as_bytes(),
                &exchange.to_string(),
                "an exchange data id of the patient",
            );
        }
    }
}

#[test]
fn a_record_the_patient_creates_and_shares_never_names_it() {
    let w = world();
    let patient_type = ty("Patient");
    let mut spec = Spec::note();
    spec.entity_type = patient_type.clone();
    spec.root_visibility = Visibility::Anonymous;
    spec.autos = vec![w.target(P, A, Visibility::AnonymousDelegator, Write)];
    let (mut entity, _) = create_as(P, spec);
    let by_a = decrypt(&entity, &w.access(A)).unwrap();
    share_into(&mut entity, &by_a, &[w.explicit(A, B, Read)]);

    let delegations = &entity.security_metadata.delegations;
    assert_eq!(delegations.len(), 3);
    assert_visibility(
        &delegations[&w.dk(P, P, &patient_type)],
        Visibility::Anonymous,
        P,
        P,
    );
    assert_visibility(
        &delegations[&w.dk(P, A, &patient_type)],
        Visibility::AnonymousDelegator,
        P,
        A,
    );
    assert_visibility(
        &delegations[&w.dk(A, B, &patient_type)],
        Visibility::Explicit,
        A,
        B,
    );
    assert_patient_hidden(&entity);
    // Every party still finds its delegation through its access-control keys alone.
    for (who, from, to) in [(P, P, P), (A, P, A), (B, A, B)] {
        let read = decrypt(&entity, &w.access(who)).unwrap();
        assert_eq!(
            read.delegation_key,
            w.dk(from, to, &patient_type),
            "{who:?}"
        );
    }
}

#[test]
fn data_shared_with_the_patient_never_names_it() {
    let w = world();
    let note = ty("Note");
    for visibility in [Visibility::AnonymousDelegate, Visibility::Anonymous] {
        let mut spec = Spec::note();
        spec.autos = vec![w.target(A, P, visibility, Read)];
        let (mut entity, opened) = create_as(A, spec);
        share_into(&mut entity, &opened, &[w.explicit(A, B, Read)]);
        assert_visibility(
            &entity.security_metadata.delegations[&w.dk(A, P, &note)],
            visibility,
            A,
            P,
        );
        assert_patient_hidden(&entity);
        let read = decrypt(&entity, &w.access(P)).unwrap();
        assert_eq!(read.delegation_key, w.dk(A, P, &note));
    }
    // The control: an explicit delegation does name the patient.
    let mut spec = Spec::note();
    spec.autos = vec![w.explicit(A, P, Read)];
    let (entity, _) = create_as(A, spec);
    assert!(contains(&to_bincode(&entity), P.id().as_bytes()));
    assert!(to_json(&entity).contains(&P.id().to_string()));
}

#[test]
fn a_hcp_hides_itself_as_delegator() {
    let w = world();
    let note = ty("Note");
    let mut spec = Spec::note();
    spec.root_visibility = Visibility::Anonymous;
    spec.autos = vec![
        w.target(C, A, Visibility::AnonymousDelegator, Read),
        w.target(C, B, Visibility::Anonymous, Read),
    ];
    let (entity, _) = create_as(C, spec);
    let delegations = &entity.security_metadata.delegations;
    assert_visibility(
        &delegations[&w.dk(C, A, &note)],
        Visibility::AnonymousDelegator,
        C,
        A,
    );
    assert_visibility(
        &delegations[&w.dk(C, B, &note)],
        Visibility::Anonymous,
        C,
        B,
    );
    let id = C.id();
    assert_no_trace(&entity, id.as_bytes(), &id.to_string(), "C's id");
    for who in [A, B, C] {
        assert!(decrypt(&entity, &w.access(who)).is_ok(), "{who:?}");
    }
}

/// A patient record of A with a shared and a confidential secret id, shared with B.
struct Family {
    patient: EncryptedEntity,
    shared: SecretId,
    confidential: SecretId,
    contact: EncryptedEntity,
    health_element: EncryptedEntity,
    private_contact: EncryptedEntity,
}

fn family() -> Family {
    let w = world();
    let shared = SecretId::generate().unwrap();
    let confidential = SecretId::generate().unwrap();
    let patient_spec = Spec {
        entity_type: ty("Patient"),
        document: object(json!({"name": "Jane Doe", "ssin": "85.07.30-033.28"})),
        manifest: EncryptionManifest::new(["name", "ssin"]).unwrap(),
        secret_ids: vec![
            (shared.clone(), SecretIdScope::Shared),
            (confidential.clone(), SecretIdScope::Confidential),
        ],
        autos: vec![w.explicit(A, B, Read)],
        ..Spec::note()
    };
    let (patient, _) = create_as(A, patient_spec);
    let child = |entity_type: &str, secret_id: &SecretId| {
        let spec = Spec {
            entity_type: ty(entity_type),
            parents: vec![ParentLink {
                parent: patient.id,
                secret_id: secret_id.clone(),
            }],
            autos: vec![w.explicit(A, B, Read)],
            ..Spec::note()
        };
        create_as(A, spec).0
    };
    Family {
        contact: child("Contact", &shared),
        health_element: child("HealthElement", &shared),
        private_contact: child("Contact", &confidential),
        patient,
        shared,
        confidential,
    }
}

#[test]
fn children_carry_per_type_tags_and_never_the_parent_id() {
    let f = family();
    let contact_tag = f.shared.search_tag(&ty("Contact"));
    let health_tag = f.shared.search_tag(&ty("HealthElement"));
    assert_ne!(contact_tag, health_tag);
    assert_eq!(f.contact.secret_foreign_keys, BTreeSet::from([contact_tag]));
    assert_eq!(
        f.health_element.secret_foreign_keys,
        BTreeSet::from([health_tag])
    );
    // Another patient's children, or the confidential id's, get other tags.
    assert_ne!(
        SecretId::generate().unwrap().search_tag(&ty("Contact")),
        contact_tag
    );
    assert_ne!(f.confidential.search_tag(&ty("Contact")), contact_tag);
    // The tag is a deterministic function of the secret id and the child type.
    assert_eq!(f.shared.clone().search_tag(&ty("Contact")), contact_tag);

    let id = f.patient.id;
    for child in [&f.contact, &f.health_element, &f.private_contact] {
        assert_no_trace(child, id.as_bytes(), &id.to_string(), "the parent's id");
    }
    // The tag itself is in clear: it is what the server searches by.
    let json = to_json(&f.contact);
    assert!(json.contains(&contact_tag.to_string()));
}

#[test]
fn a_delegate_of_the_parent_finds_and_opens_its_children() {
    let w = world();
    let f = family();
    let by_b = decrypt(&f.patient, &w.access(B)).unwrap();
    // B got the shared secret id only.
    assert_same_ids(
        &by_b.secret_ids,
        &[(f.shared.clone(), SecretIdScope::Shared)],
    );
    let by_a = decrypt(&f.patient, &w.access(A)).unwrap();
    assert_same_ids(
        &by_a.secret_ids,
        &[
            (f.shared.clone(), SecretIdScope::Shared),
            (f.confidential.clone(), SecretIdScope::Confidential),
        ],
    );

    // The server holds these entities; B searches by the tags it computes.
    let unrelated = create_as(A, Spec::note()).0;
    let stored = [
        &unrelated,
        &f.contact,
        &f.health_element,
        &f.private_contact,
    ];
    let find = |secret_ids: &[(SecretId, SecretIdScope)], child_type: &str| -> Vec<_> {
        let tags: BTreeSet<_> = secret_ids
            .iter()
            .map(|(id, _)| id.search_tag(&ty(child_type)))
            .collect();
        stored
            .iter()
            .filter(|e| !e.secret_foreign_keys.is_disjoint(&tags))
            .map(|e| e.id)
            .collect()
    };
    assert_eq!(find(&by_b.secret_ids, "Contact"), [f.contact.id]);
    assert_eq!(
        find(&by_b.secret_ids, "HealthElement"),
        [f.health_element.id]
    );
    // The creator also finds the child tagged with its confidential id.
    let mut mine = find(&by_a.secret_ids, "Contact");
    mine.sort();
    let mut expected = vec![f.contact.id, f.private_contact.id];
    expected.sort();
    assert_eq!(mine, expected);

    for child in [&f.contact, &f.health_element] {
        let read = decrypt(child, &w.access(B)).unwrap();
        assert_eq!(read.owning_entity_ids, [f.patient.id]);
        assert!(read.secret_ids.is_empty());
    }
}

#[test]
fn confidential_secret_ids_are_never_shared() {
    let w = world();
    let f = family();
    let by_a = decrypt(&f.patient, &w.access(A)).unwrap();
    // Sealed in the root only: two there, one in B's auto-delegation.
    let delegations = &f.patient.security_metadata.delegations;
    assert_eq!(delegations[&by_a.delegation_key].secret_ids.len(), 2);
    assert_eq!(delegations[&w.dk(A, B, &ty("Patient"))].secret_ids.len(), 1);

    // Shared later, by A then on by C, still without it.
    let mut patient = f.patient.clone();
    share_into(&mut patient, &by_a, &[w.explicit(A, C, Write)]);
    let by_c = decrypt(&patient, &w.access(C)).unwrap();
    assert_same_ids(
        &by_c.secret_ids,
        &[(f.shared.clone(), SecretIdScope::Shared)],
    );
    share_into(&mut patient, &by_c, &[w.explicit(C, P, Read)]);
    let by_p = decrypt(&patient, &w.access(P)).unwrap();
    assert_same_ids(
        &by_p.secret_ids,
        &[(f.shared.clone(), SecretIdScope::Shared)],
    );
    for who in [B, C, P] {
        let read = decrypt(&patient, &w.access(who)).unwrap();
        assert!(
            read.secret_ids
                .iter()
                .all(|(id, scope)| *scope == SecretIdScope::Shared && !id.ct_eq(&f.confidential)),
            "{who:?}"
        );
    }
}

/// Asserts that two lists of secret ids are the same, comparing the ids in constant time (they have no `==`).
fn assert_same_ids(got: &[(SecretId, SecretIdScope)], expected: &[(SecretId, SecretIdScope)]) {
    assert_eq!(got.len(), expected.len());
    for ((a, a_scope), (b, b_scope)) in got.iter().zip(expected) {
        assert!(a.ct_eq(b) && a_scope == b_scope);
    }
}

#[test]
fn sealed_documents_are_padded_to_a_size_class() {
    // Documents of 2 to 400 bytes of text: the stored size is the PADME class of the sealed JSON, never its length,
    // and every short document looks the same.
    let mut sizes = BTreeSet::new();
    for len in [2usize, 20, 60, 100] {
        let mut spec = Spec::note();
        spec.manifest = EncryptionManifest::new(["text"]).unwrap();
        spec.document = object(json!({ "text": "x".repeat(len) }));
        let (entity, opened) = create_as(A, spec);
        let sealed_json = serde_json::to_vec(&json!({ "text": "x".repeat(len) })).unwrap();
        assert_eq!(
            entity.encrypted_self.0.len(),
            tessera_sharing::padded_len(sealed_json.len()) + 30
        );
        // The padding is invisible to the reader.
        assert_eq!(opened.document["text"], json!("x".repeat(len)));
        let read = decrypt(&entity, &world().access(A)).unwrap();
        assert_eq!(read.document, opened.document);
        sizes.insert(entity.encrypted_self.0.len());
    }
    assert_eq!(sizes.len(), 1, "{sizes:?}");
    // A longer one lands in a class of its own, at most 12 % above its length.
    assert_eq!(tessera_sharing::padded_len(1000), 1024);
}
