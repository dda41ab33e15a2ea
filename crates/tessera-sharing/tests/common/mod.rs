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

use std::sync::OnceLock;

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use tessera_keys::{EntityType, ExchangeData, ExchangeSecret, OwnerId, OwnerKeys, TrustedBundle};
use tessera_sharing::test_utils;
use tessera_sharing::{
    AccessIndex, DecryptedEntity, DelegationTarget, EncryptedEntity, EncryptionManifest, EntityId,
    EntityKeys, Error, NewEntity, ParentLink, Permission, RuleViolation, SecretId, SecretIdScope,
    ShareEntry, Visibility, create, rules, share,
};

#[allow(
    unused_imports,
    reason = "each test binary uses a part of the shared fixtures"
)]
pub(crate) use tessera_sharing::test_utils::{T0, Who};

/// The shared four-owner world, with the lookups the tests use unwrapped and the sharing helpers below.
pub(crate) struct World(test_utils::World);

/// The world of this test binary, built on first use.
pub(crate) fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World(test_utils::World::build().unwrap()))
}

impl World {
    /// `who`'s keys.
    pub(crate) fn keys(&self, who: Who) -> &OwnerKeys {
        self.0.keys(who).unwrap()
    }

    /// `who`'s trusted bundle.
    pub(crate) fn bundle(&self, who: Who) -> &TrustedBundle {
        self.0.bundle(who).unwrap()
    }

    /// The exchange data from `from` to `to`.
    pub(crate) fn data(&self, from: Who, to: Who) -> &ExchangeData {
        self.0.data(from, to).unwrap()
    }

    /// The secret of the exchange data `from` → `to` as `holder` opened it.
    pub(crate) fn secret(&self, holder: Who, from: Who, to: Who) -> &ExchangeSecret {
        self.0
            .secret(holder, from, to)
            .unwrap_or_else(|| panic!("{holder:?} holds no secret of {from:?} → {to:?}"))
    }

    /// The secret of `from` → `to` on the delegator's side (the one that seals).
    pub(crate) fn own(&self, from: Who, to: Who) -> &ExchangeSecret {
        self.secret(from, from, to)
    }

    /// Every secret `who` holds, as delegator or delegate.
    pub(crate) fn secrets_of(&self, who: Who) -> Vec<ExchangeSecret> {
        self.0.secrets_of(who)
    }

    /// `who`'s access index over every secret it holds.
    pub(crate) fn access(&self, who: Who) -> AccessIndex {
        self.0.access(who)
    }

    /// `holder`'s access index over the secrets of these pairs only.
    pub(crate) fn access_only(&self, holder: Who, pairs: &[(Who, Who)]) -> AccessIndex {
        AccessIndex::new(
            holder.id(),
            pairs
                .iter()
                .map(|(from, to)| self.secret(holder, *from, *to).clone()),
        )
        .with_signers(Who::ALL.map(|who| self.bundle(who).clone()))
    }

    /// The keys of the world owner with id `owner`.
    pub(crate) fn keys_of_id(&self, owner: OwnerId) -> &OwnerKeys {
        let who = Who::ALL
            .into_iter()
            .find(|who| who.id() == owner)
            .unwrap_or_else(|| panic!("{owner} is no owner of the world"));
        self.keys(who)
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
        w.keys(creator),
    )
    .unwrap()
}

/// `creator` creates a `Note` with only its root delegation.
pub(crate) fn create_note(creator: Who) -> (EncryptedEntity, DecryptedEntity) {
    create_as(creator, Spec::note())
}

/// Shares `opened` with `targets` and applies the entries as the server would, the sharer holding the delegation
/// it opened the entity through. The sharer (the delegator of the targets' exchange data) signs. Returns the
/// entries.
pub(crate) fn share_into(
    entity: &mut EncryptedEntity,
    opened: &EntityKeys,
    targets: &[DelegationTarget<'_>],
) -> Vec<ShareEntry> {
    let sharer = targets.first().expect("a target").exchange.delegator();
    let entries = share(entity, opened, targets, world().keys_of_id(sharer)).unwrap();
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
