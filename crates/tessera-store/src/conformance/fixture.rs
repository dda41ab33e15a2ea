//! Fixtures shared by the cases: a redb store in a temporary directory, owners, exchange data and entities.

use std::path::Path;
use std::sync::OnceLock;

use serde_json::Value;
use tessera_keys::test_utils::fixture_rsa;
use tessera_keys::{
    DelegationKey, EntityType, ExchangeData, ExchangeSecret, KeyBag, KeyBagEntry, Owner, OwnerId,
    OwnerKeys, OwnerKind, Tofu, TrustPolicy,
};
use tessera_sharing::{
    DecryptedEntity, DelegationTarget, EncryptedEntity, EncryptionManifest, EntityId, NewEntity,
    ParentLink, Permission, SecretId, SecretIdScope, Visibility, create,
};

use crate::RedbStore;

/// A [`RedbStore`] in a temporary directory that is removed when this is dropped.
#[derive(Debug)]
pub struct TempRedbStore {
    store: RedbStore,
    dir: tempfile::TempDir,
}

impl TempRedbStore {
    /// A new, empty store in a new temporary directory.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = RedbStore::open(dir.path().join("tessera.redb")).expect("open redb store");
        Self { store, dir }
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for TempRedbStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TempRedbStore {
    type Target = RedbStore;

    fn deref(&self) -> &RedbStore {
        &self.store
    }
}

/// Owners, opened exchange data and a manifest shared by every case (RSA key generation is slow, so once per
/// process).
pub struct Fixtures {
    /// An HCP that creates entities.
    pub doctor: OwnerKeys,
    /// An HCP the doctor shares with.
    pub colleague: OwnerKeys,
    /// Exchange data of the doctor with itself, opened: the root of the doctor's entities.
    pub own: (ExchangeData, ExchangeSecret),
    /// Exchange data from the doctor to the colleague, opened by the doctor.
    pub shared: (ExchangeData, ExchangeSecret),
    /// The type of the fixtures' entities, `Note`.
    pub entity_type: EntityType,
    /// Its manifest: `diagnosis` and `note` are sealed, the rest stays public.
    pub manifest: EncryptionManifest,
}

/// The process-wide [`Fixtures`].
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        // Derived from the fixture keys of the primitives crate: generating RSA keys is slow in debug builds.
        let derive = |fixture: &str| {
            OwnerKeys::derive(
                OwnerId::generate().unwrap(),
                fixture_rsa(fixture).unwrap(),
                1_700_000_000,
            )
            .unwrap()
        };
        let doctor = derive("rsa2048.pem");
        let colleague = derive("rsa3072.pem");
        let colleague_bundle = Tofu::new().trust(colleague.bundle().unwrap()).unwrap();
        let own = ExchangeData::create(&doctor, doctor.owner(), &[], 1_700_000_000).unwrap();
        let shared = ExchangeData::create(
            &doctor,
            colleague.owner(),
            &[&colleague_bundle],
            1_700_000_000,
        )
        .unwrap();
        Fixtures {
            doctor,
            colleague,
            own,
            shared,
            entity_type: EntityType::new("Note").unwrap(),
            manifest: EncryptionManifest::new(["diagnosis", "note"]).unwrap(),
        }
    })
}

impl Fixtures {
    /// The public owner record of `keys`.
    pub fn owner(&self, keys: &OwnerKeys) -> Owner {
        Owner {
            version: tessera_keys::FormatVersion::V2,
            id: keys.owner(),
            kind: OwnerKind::Hcp,
            parent: None,
            bundles: vec![keys.bundle().unwrap()],
        }
    }

    /// A new entity of the doctor with `document` (a JSON object), shared with the colleague (read), linked to
    /// `parents`. Returns it encrypted and opened.
    pub fn entity_with(
        &self,
        document: Value,
        parents: Vec<ParentLink>,
    ) -> (EncryptedEntity, DecryptedEntity) {
        let Value::Object(document) = document else {
            panic!("an entity document is a JSON object");
        };
        create(
            NewEntity {
                id: EntityId::generate().unwrap(),
                entity_type: self.entity_type.clone(),
                document,
                manifest: &self.manifest,
                secret_ids: vec![(SecretId::generate().unwrap(), SecretIdScope::Shared)],
                parents,
            },
            DelegationTarget {
                exchange: &self.own.1,
                visibility: Visibility::Explicit,
                permission: Permission::Write,
            },
            &[DelegationTarget {
                exchange: &self.shared.1,
                visibility: Visibility::Explicit,
                permission: Permission::Read,
            }],
            &self.doctor,
        )
        .unwrap()
    }

    /// A new entity of the doctor with `document`, without parents.
    pub fn entity(&self, document: Value) -> EncryptedEntity {
        self.entity_with(document, Vec::new()).0
    }

    /// The delegation key of the doctor's own delegations (the roots).
    pub fn root_key(&self) -> DelegationKey {
        self.own.1.delegation_key(&self.entity_type)
    }

    /// The delegation key of the delegations to the colleague.
    pub fn colleague_key(&self) -> DelegationKey {
        self.shared.1.delegation_key(&self.entity_type)
    }

    /// A new inbox message for the colleague: the shared exchange data sealed for its bundle (a fresh id each call).
    pub fn inbox_message(&self) -> tessera_keys::InboxMessage {
        let bundle = Tofu::new().trust(self.colleague.bundle().unwrap()).unwrap();
        tessera_keys::InboxMessage::seal(&self.shared.0, &bundle).unwrap()
    }

    /// A key-bag entry of the doctor for new exchange data (a fresh id each call).
    pub fn key_bag_entry(&self) -> KeyBagEntry {
        let (_, secret) =
            ExchangeData::create(&self.doctor, self.doctor.owner(), &[], 1_700_000_000).unwrap();
        KeyBag::seal_entry(&self.doctor, &secret).unwrap()
    }
}
