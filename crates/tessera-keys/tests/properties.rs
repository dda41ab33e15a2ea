//! Property tests: any input is decoded or refused without a panic; entity types and owner ids parse exactly as documented.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use std::sync::OnceLock;

use common::{T0, alice, bob, exchange, from_bincode, to_bincode, trusted};
use proptest::prelude::*;
use tessera_keys::{
    EntityType, ExchangeData, ExchangeDataId, Fingerprint, FormatVersion, KeyBag, KeyBagEntry,
    KeyBagEntryId, KeyBundle, Owner, OwnerId, OwnerKind, PinnedFingerprints, TrustPolicy,
    TrustedBundle,
};

/// Valid artefacts to mutate, made once per test binary.
struct Samples {
    bundle: KeyBundle,
    data: ExchangeData,
    entry: KeyBagEntry,
    owner: Owner,
    signer: TrustedBundle,
}

fn samples() -> &'static Samples {
    static CELL: OnceLock<Samples> = OnceLock::new();
    CELL.get_or_init(|| {
        let (data, secret) = exchange(alice(), bob(), T0);
        Samples {
            bundle: alice().bundle().unwrap(),
            entry: KeyBag::seal_entry(alice(), &secret).unwrap(),
            owner: Owner {
                version: FormatVersion::V2,
                id: alice().owner(),
                kind: OwnerKind::Hcp,
                parent: None,
                bundles: vec![alice().bundle().unwrap()],
            },
            signer: trusted(alice()),
            data,
        }
    })
}

/// Decodes `bytes` as every artefact, in bincode and JSON, and exercises whatever decodes. Must never panic.
fn decode_everything(bytes: &[u8]) {
    let samples = samples();
    let bundles = [
        from_bincode::<KeyBundle>(bytes).ok(),
        serde_json::from_slice::<KeyBundle>(bytes).ok(),
    ];
    for bundle in bundles.into_iter().flatten() {
        let _ = bundle.fingerprint();
        let _ = bundle.fingerprint().short_code();
        let _ = bundle.canonical_bytes();
        let _ = bundle.verify_chain_from(&samples.bundle);
        if bundle != samples.bundle {
            // Only the (unsigned, unfingerprinted) chain may differ and still pass a pin of the original.
            let accepted = PinnedFingerprints::new([samples.bundle.fingerprint()])
                .trust(bundle.clone())
                .is_ok();
            assert!(!accepted || bundle.chain() != samples.bundle.chain());
        }
    }
    let data = [
        from_bincode::<ExchangeData>(bytes).ok(),
        serde_json::from_slice::<ExchangeData>(bytes).ok(),
    ];
    for data in data.into_iter().flatten() {
        let _ = data.canonical_bytes();
        let _ = data.wrapped_for().count();
        if data.canonical_bytes() != samples.data.canonical_bytes() {
            assert!(data.verify(&samples.signer).is_err());
        }
    }
    let entries = [
        from_bincode::<KeyBagEntry>(bytes).ok(),
        serde_json::from_slice::<KeyBagEntry>(bytes).ok(),
    ];
    for entry in entries.into_iter().flatten() {
        let opened = KeyBag::open_entry(alice(), &entry);
        assert_eq!(opened.is_ok(), entry == samples.entry);
    }
    let _ = from_bincode::<Owner>(bytes);
    let _ = serde_json::from_slice::<Owner>(bytes);
    let _ = from_bincode::<OwnerId>(bytes);
    let _ = serde_json::from_slice::<EntityType>(bytes);
}

/// A valid encoding of one of the samples, in bincode or JSON.
fn sample_encoding() -> impl Strategy<Value = Vec<u8>> {
    (0..8usize).prop_map(|which| {
        let s = samples();
        match which {
            0 => to_bincode(&s.bundle),
            1 => to_bincode(&s.data),
            2 => to_bincode(&s.entry),
            3 => to_bincode(&s.owner),
            4 => serde_json::to_vec(&s.bundle).unwrap(),
            5 => serde_json::to_vec(&s.data).unwrap(),
            6 => serde_json::to_vec(&s.entry).unwrap(),
            _ => serde_json::to_vec(&s.owner).unwrap(),
        }
    })
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Edit {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Remove(prop::sample::Index),
    Truncate(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<prop::sample::Index>().prop_map(Edit::Remove),
        1 => any::<prop::sample::Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    if bytes.is_empty() {
        return;
    }
    match edit {
        Edit::Set(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), *b),
        Edit::Remove(i) => {
            bytes.remove(i.index(bytes.len()));
        }
        Edit::Truncate(i) => bytes.truncate(i.index(bytes.len())),
    }
}

/// The documented entity-type alphabet.
fn in_alphabet(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        decode_everything(&bytes);
    }

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        decode_everything(text.as_bytes());
    }

    #[test]
    fn mutated_encodings_never_panic(
        original in sample_encoding(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let mut bytes = original;
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        decode_everything(&bytes);
    }

    #[test]
    fn entity_types_accept_exactly_the_documented_alphabet(
        name in prop_oneof![
            "[a-zA-Z0-9._-]{0,70}",
            "[a-zA-Z0-9._ /:@é\u{0}\u{7f}-]{0,70}",
            any::<String>(),
        ]
    ) {
        let valid = (1..=EntityType::MAX_LEN).contains(&name.len()) && name.chars().all(in_alphabet);
        let parsed = EntityType::new(&name);
        prop_assert_eq!(parsed.is_ok(), valid, "{:?}", name);
        if let Ok(entity_type) = parsed {
            prop_assert_eq!(entity_type.as_str(), name.as_str());
            prop_assert_eq!(entity_type.to_string(), name.clone());
            let json = serde_json::to_string(&entity_type).unwrap();
            prop_assert_eq!(serde_json::from_str::<EntityType>(&json).unwrap(), entity_type.clone());
            prop_assert_eq!(from_bincode::<EntityType>(&to_bincode(&entity_type)).unwrap(), entity_type);
        } else {
            // The same name is refused through serde too.
            prop_assert!(serde_json::from_value::<EntityType>(serde_json::json!(name)).is_err());
        }
    }

    #[test]
    fn owner_ids_round_trip_through_display_and_from_str(bytes in any::<[u8; 16]>()) {
        let id = OwnerId::from_bytes(bytes);
        let text = id.to_string();
        prop_assert_eq!(text.len(), 36);
        let groups: Vec<usize> = text.split('-').map(str::len).collect();
        prop_assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        prop_assert!(text.bytes().all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        prop_assert_eq!(text.parse::<OwnerId>().unwrap(), id);
        prop_assert_eq!(id.as_bytes(), &bytes);
        let json = serde_json::to_string(&id).unwrap();
        prop_assert_eq!(serde_json::from_str::<OwnerId>(&json).unwrap(), id);
        prop_assert_eq!(from_bincode::<OwnerId>(&to_bincode(&id)).unwrap(), id);
        // Uppercase is not the documented form.
        if text.bytes().any(|b| b.is_ascii_alphabetic()) {
            prop_assert!(text.to_uppercase().parse::<OwnerId>().is_err());
        }
    }

    #[test]
    fn owner_ids_parse_only_their_canonical_form(text in prop_oneof!["[0-9a-fA-F-]{30,40}", any::<String>()]) {
        if let Ok(id) = text.parse::<OwnerId>() {
            prop_assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn byte_ids_round_trip(short in any::<[u8; 16]>(), long in any::<[u8; 32]>()) {
        let exchange_id = ExchangeDataId::from_bytes(short);
        let fingerprint = Fingerprint::from_bytes(long);
        let entry_id = KeyBagEntryId::from_bytes(long);
        prop_assert_eq!(serde_json::from_str::<ExchangeDataId>(&serde_json::to_string(&exchange_id).unwrap()).unwrap(), exchange_id);
        prop_assert_eq!(from_bincode::<ExchangeDataId>(&to_bincode(&exchange_id)).unwrap(), exchange_id);
        prop_assert_eq!(serde_json::from_str::<Fingerprint>(&serde_json::to_string(&fingerprint).unwrap()).unwrap(), fingerprint);
        prop_assert_eq!(from_bincode::<KeyBagEntryId>(&to_bincode(&entry_id)).unwrap(), entry_id);
        prop_assert_eq!(ExchangeDataId::try_from(&short[..]).unwrap(), exchange_id);
        prop_assert!(ExchangeDataId::try_from(&long[..]).is_err());
        prop_assert!(Fingerprint::try_from(&short[..]).is_err());
        prop_assert_eq!(fingerprint.to_string(), hex::encode(long));
        prop_assert_eq!(fingerprint.short_code().len(), 24);
    }

    #[test]
    fn arbitrary_bag_entries_are_refused_cleanly(
        owner_is_alice in any::<bool>(),
        id in any::<[u8; 32]>(),
        sealed in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let entry = KeyBagEntry {
            version: FormatVersion::V2,
            owner: if owner_is_alice { alice().owner() } else { bob().owner() },
            id: KeyBagEntryId::from_bytes(id),
            sealed,
        };
        prop_assert!(KeyBag::open_entry(alice(), &entry).is_err());
    }
}
