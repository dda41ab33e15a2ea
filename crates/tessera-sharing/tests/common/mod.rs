//! Shared fixtures of the sharing layer's integration tests: four owners and exchange data between every ordered pair, built once per test binary, plus entity, encoding and error helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a part of the shared fixtures"
)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tessera_keys::{
    EntityType, ExchangeData, ExchangeSecret, OwnerId, OwnerKeys, Tofu, TrustPolicy, TrustedBundle,
};
use tessera_primitives::{RsaKeySize, RsaPrivateKey};
use tessera_sharing::{
    AccessIndex, DecryptedEntity, DelegationTarget, EncryptedEntity, EncryptionManifest, EntityId,
    Error, NewEntity, ParentLink, Permission, RuleViolation, SecretId, SecretIdScope, ShareEntry,
    Visibility, create, rules, share,
};

/// Creation time of every bundle and exchange data of the world.
pub(crate) const T0: u64 = 1_700_000_000;

/// The owners of the world: three healthcare parties and a patient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Who {
    /// HCP A, the usual creator (fixture key `rsa2048.pem`).
    A,
    /// HCP B, A's usual delegate (fixture key `rsa3072.pem`).
    B,
    /// HCP C, B's delegate (fixture key `rsa4096.pem`).
    C,
    /// Patient P (a freshly generated 2048-bit key).
    P,
}

impl Who {
    /// Every owner.
    pub(crate) const ALL: [Self; 4] = [Self::A, Self::B, Self::C, Self::P];

    /// The owner's fixed id (fixed so that failures reproduce; the patient's is the ASCII `patient-owner-id`,
    /// easy to spot in a dump).
    pub(crate) fn id(self) -> OwnerId {
        OwnerId::from_bytes(match self {
            Self::A => [0xa1; 16],
            Self::B => [0xb0; 16],
            Self::C => [0xc0; 16],
            Self::P => *b"patient-owner-id",
        })
    }
}

/// An owner's keys and its bundle as the others trust it.
pub(crate) struct Party {
    /// The owner's keys.
    pub(crate) keys: OwnerKeys,
    /// Its bundle, accepted through trust on first use.
    pub(crate) bundle: TrustedBundle,
}

/// Four owners and exchange data between every ordered pair, opened by both parties.
pub(crate) struct World {
    parties: BTreeMap<Who, Party>,
    data: BTreeMap<(Who, Who), ExchangeData>,
    /// `(holder, delegator, delegate)` → the holder's opened secret.
    secrets: BTreeMap<(Who, Who, Who), ExchangeSecret>,
}

/// The world of this test binary, built on first use.
pub(crate) fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(World::build)
}

impl World {
    fn build() -> Self {
        let trust = Tofu::new();
        let parties: BTreeMap<Who, Party> = Who::ALL
            .into_iter()
            .map(|who| {
                let keys = match who {
                    Who::A => OwnerKeys::derive(who.id(), fixture_rsa("rsa2048.pem"), T0),
                    Who::B => OwnerKeys::derive(who.id(), fixture_rsa("rsa3072.pem"), T0),
                    Who::C => OwnerKeys::derive(who.id(), fixture_rsa("rsa4096.pem"), T0),
                    Who::P => OwnerKeys::generate(who.id(), RsaKeySize::Bits2048, T0),
                }
                .unwrap();
                let bundle = trust.trust(keys.bundle().unwrap()).unwrap();
                (who, Party { keys, bundle })
            })
            .collect();
        let mut data = BTreeMap::new();
        let mut secrets = BTreeMap::new();
        for from in Who::ALL {
            for to in Who::ALL {
                let delegator = &parties[&from];
                let delegate = &parties[&to];
                let recipients: Vec<&TrustedBundle> = if from == to {
                    vec![]
                } else {
                    vec![&delegate.bundle]
                };
                let (exchange, own) =
                    ExchangeData::create(&delegator.keys, to.id(), &recipients, T0).unwrap();
                if from != to {
                    let opened = exchange.open(&delegate.keys, &delegator.bundle).unwrap();
                    secrets.insert((to, from, to), opened);
                }
                secrets.insert((from, from, to), own);
                data.insert((from, to), exchange);
            }
        }
        Self {
            parties,
            data,
            secrets,
        }
    }

    /// `who`'s keys.
    pub(crate) fn keys(&self, who: Who) -> &OwnerKeys {
        &self.parties[&who].keys
    }

    /// `who`'s trusted bundle.
    pub(crate) fn bundle(&self, who: Who) -> &TrustedBundle {
        &self.parties[&who].bundle
    }

    /// The exchange data from `from` to `to`.
    pub(crate) fn data(&self, from: Who, to: Who) -> &ExchangeData {
        &self.data[&(from, to)]
    }

    /// The secret of the exchange data `from` → `to` as `holder` opened it.
    pub(crate) fn secret(&self, holder: Who, from: Who, to: Who) -> &ExchangeSecret {
        self.secrets
            .get(&(holder, from, to))
            .unwrap_or_else(|| panic!("{holder:?} holds no secret of {from:?} → {to:?}"))
    }

    /// The secret of `from` → `to` on the delegator's side (the one that seals).
    pub(crate) fn own(&self, from: Who, to: Who) -> &ExchangeSecret {
        self.secret(from, from, to)
    }

    /// Every secret `who` holds, as delegator or delegate.
    pub(crate) fn secrets_of(&self, who: Who) -> Vec<ExchangeSecret> {
        self.secrets
            .iter()
            .filter(|((holder, _, _), _)| *holder == who)
            .map(|(_, secret)| secret.clone())
            .collect()
    }

    /// `who`'s access index over every secret it holds.
    pub(crate) fn access(&self, who: Who) -> AccessIndex {
        AccessIndex::new(who.id(), self.secrets_of(who))
    }

    /// `holder`'s access index over the secrets of these pairs only.
    pub(crate) fn access_only(&self, holder: Who, pairs: &[(Who, Who)]) -> AccessIndex {
        AccessIndex::new(
            holder.id(),
            pairs
                .iter()
                .map(|(from, to)| self.secret(holder, *from, *to).clone()),
        )
    }

    /// A delegation from `from` to `to` (a root when they are the same), sealed with `from`'s side of their
    /// exchange data.
    pub(crate) fn target(
        &self,
        from: Who,
        to: Who,
        visibility: Visibility,
        permission: Permission,
    ) -> DelegationTarget<'_> {
        DelegationTarget {
            exchange: self.own(from, to),
            visibility,
            permission,
        }
    }

    /// An explicit delegation from `from` to `to`.
    pub(crate) fn explicit(
        &self,
        from: Who,
        to: Who,
        permission: Permission,
    ) -> DelegationTarget<'_> {
        self.target(from, to, Visibility::Explicit, permission)
    }

    /// The delegation key of `from` → `to` for `entity_type`.
    pub(crate) fn dk(
        &self,
        from: Who,
        to: Who,
        entity_type: &EntityType,
    ) -> tessera_keys::DelegationKey {
        self.own(from, to).delegation_key(entity_type)
    }
}

/// A fixture RSA key of the primitives crate.
pub(crate) fn fixture_rsa(name: &str) -> RsaPrivateKey {
    let path = format!(
        "{}/../tessera-primitives/tests/data/keys/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let pem = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    RsaPrivateKey::from_pkcs8_pem(&pem).unwrap()
}

/// A valid entity type.
pub(crate) fn ty(name: &str) -> EntityType {
    EntityType::new(name).unwrap()
}

/// The JSON object of a `json!` value.
pub(crate) fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

/// The manifest of the `Note` documents of these tests.
pub(crate) fn note_manifest() -> EncryptionManifest {
    EncryptionManifest::new([
        "note",
        "address.street",
        "contacts[].phone",
        "labels{}.text",
    ])
    .unwrap()
}

/// A `Note` document with sensitive fields at every kind of path.
pub(crate) fn note_document() -> Map<String, Value> {
    object(json!({
        "address": {"city": "Brussels", "street": "1 Rue Haute"},
        "contacts": [{"name": "Ann", "phone": "+32 2 123 45 67"}, {"name": "Bob"}],
        "labels": {"a": {"color": "red", "text": "oncology"}, "b": {"color": "blue"}},
        "lang": "en",
        "note": "allergic to penicillin"
    }))
}

/// Values of the note document that must never appear in clear.
pub(crate) const NOTE_SECRETS: [&str; 4] = [
    "1 Rue Haute",
    "+32 2 123 45 67",
    "oncology",
    "allergic to penicillin",
];

/// What to create: the parts of [`NewEntity`] the tests vary, with defaults.
pub(crate) struct Spec<'a> {
    /// The entity type.
    pub(crate) entity_type: EntityType,
    /// The document.
    pub(crate) document: Map<String, Value>,
    /// The manifest.
    pub(crate) manifest: EncryptionManifest,
    /// Secret ids of the new entity.
    pub(crate) secret_ids: Vec<(SecretId, SecretIdScope)>,
    /// Links to parents.
    pub(crate) parents: Vec<ParentLink>,
    /// Visibility of the root delegation.
    pub(crate) root_visibility: Visibility,
    /// Auto-delegations.
    pub(crate) autos: Vec<DelegationTarget<'a>>,
}

impl Spec<'_> {
    /// A `Note` with the note document and manifest, an explicit root and nothing else.
    pub(crate) fn note() -> Self {
        Self {
            entity_type: ty("Note"),
            document: note_document(),
            manifest: note_manifest(),
            secret_ids: vec![],
            parents: vec![],
            root_visibility: Visibility::Explicit,
            autos: vec![],
        }
    }
}

/// `creator` creates an entity as `spec` says, with a fresh id.
pub(crate) fn create_as(creator: Who, spec: Spec<'_>) -> (EncryptedEntity, DecryptedEntity) {
    create_with_id(creator, EntityId::generate().unwrap(), spec)
}

/// `creator` creates an entity with id `id` as `spec` says.
pub(crate) fn create_with_id(
    creator: Who,
    id: EntityId,
    spec: Spec<'_>,
) -> (EncryptedEntity, DecryptedEntity) {
    let w = world();
    create(
        NewEntity {
            id,
            entity_type: spec.entity_type,
            document: spec.document,
            manifest: &spec.manifest,
            secret_ids: spec.secret_ids,
            parents: spec.parents,
        },
        w.target(creator, creator, spec.root_visibility, Permission::Write),
        &spec.autos,
    )
    .unwrap()
}

/// `creator` creates a `Note` with only its root delegation.
pub(crate) fn create_note(creator: Who) -> (EncryptedEntity, DecryptedEntity) {
    create_as(creator, Spec::note())
}

/// Shares `opened` with `targets` and applies the entries as the server would, the sharer holding the delegation
/// it opened the entity through. Returns the entries.
pub(crate) fn share_into(
    entity: &mut EncryptedEntity,
    opened: &DecryptedEntity,
    targets: &[DelegationTarget<'_>],
) -> Vec<ShareEntry> {
    let entries = share(entity, opened, targets).unwrap();
    rules::apply_share(entity, &entries, |key| *key == opened.delegation_key).unwrap();
    entries
}

/// The wire options of DESIGN.md §4: bincode 1 with a size limit and trailing-bytes rejection.
pub(crate) fn bincode_options() -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_limit(1 << 20)
        .reject_trailing_bytes()
}

/// Encodes `value` with [`bincode_options`].
pub(crate) fn to_bincode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode_options().serialize(value).unwrap()
}

/// Decodes `bytes` with [`bincode_options`].
pub(crate) fn from_bincode<T: DeserializeOwned>(bytes: &[u8]) -> bincode::Result<T> {
    bincode_options().deserialize(bytes)
}

/// Encodes `value` as JSON text.
pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that neither encoding of `entity` shows `bytes` (a 16-byte id) in any form: its hyphenated string, its
/// plain hex, its raw bytes, or its raw bytes read as text.
pub(crate) fn assert_no_trace(
    entity: &EncryptedEntity,
    bytes: &[u8; 16],
    display: &str,
    what: &str,
) {
    let json = to_json(entity);
    let bin = to_bincode(entity);
    let plain_hex = hex::encode(bytes);
    for needle in [display, plain_hex.as_str()] {
        assert!(
            !json.to_lowercase().contains(needle),
            "{what} `{needle}` in JSON"
        );
        assert!(
            !contains(&bin, needle.as_bytes()),
            "{what} `{needle}` in bincode"
        );
    }
    assert!(!contains(json.as_bytes(), bytes), "{what} bytes in JSON");
    assert!(!contains(&bin, bytes), "{what} bytes in bincode");
}

/// The rule violation of a failed operation.
#[track_caller]
pub(crate) fn violation<T: std::fmt::Debug>(result: Result<T, Error>) -> RuleViolation {
    match result {
        Err(Error::Rule(violation)) => violation,
        other => panic!("expected a rule violation, got {other:?}"),
    }
}

/// Asserts the opaque cryptographic error.
#[track_caller]
pub(crate) fn assert_crypto<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(result, Err(Error::Crypto)),
        "expected Error::Crypto, got {result:?}"
    );
}

/// Asserts that the owner holds no accessible delegation.
#[track_caller]
pub(crate) fn assert_no_access<T: std::fmt::Debug>(result: Result<T, Error>) {
    assert!(
        matches!(result, Err(Error::NoAccess)),
        "expected Error::NoAccess, got {result:?}"
    );
}
