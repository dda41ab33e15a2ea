//! The end-to-end fixture: a real server on 127.0.0.1:0 over a redb file the test keeps, owners kept as key files,
//! and the inspections of raw stored bytes that the principles are checked against.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a part of the fixture"
)]

pub mod operator;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};
use tessera::stored::{DelegationKey, EncryptedEntity, ExchangeDataId};
use tessera::{
    Client, EntityId, EntityType, OwnerId, OwnerKeys, OwnerKind, RsaKeySize, SecretString, Session,
    Tofu,
};
use tessera_keys::{ExchangeSecret, KeyBag};
use tessera_server::{Server, ServerConfig};
use tessera_store::{RedbStore, Store};
use tessera_wire::Format;

/// The administrator token the test servers start with.
pub const ADMIN: &str = "end-to-end-admin-token";

/// A server on 127.0.0.1:0 with a redb database in a temporary directory. The test keeps the store, to read
/// stored records through the [`Store`] trait as the server operator could, and the file, to scan its raw bytes.
pub struct Env {
    server: Option<Server>,
    pub store: Arc<RedbStore>,
    /// The store the server runs on: `store`, with the lies the test tells it to answer.
    pub operator: Arc<operator::Operator>,
    pub url: String,
    path: PathBuf,
    _dir: tempfile::TempDir,
    /// Every owner registered through this environment, as (id, key file): the ground truth only owners hold.
    registered: std::sync::Mutex<Vec<(OwnerId, OwnerKeys)>>,
}

impl Env {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(tessera_server::serve::DATABASE_FILE);
        let store = Arc::new(RedbStore::open(&path).unwrap());
        let config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), ADMIN);
        let operator = Arc::new(operator::Operator::new(store.clone()));
        let server = Server::start(config, operator.clone()).await.unwrap();
        let url = format!("http://{}", server.local_addr());
        Self {
            server: Some(server),
            store,
            operator,
            url,
            path,
            _dir: dir,
            registered: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn remember(&self, keys: &OwnerKeys) {
        let copy =
            tessera::decode_key_file(tessera::encode_key_file(keys).unwrap().expose_secret())
                .unwrap();
        self.registered.lock().unwrap().push((keys.owner(), copy));
    }

    /// The keys of the delegations of `entity` to `delegate` (onward ones, not the root), found as only the owners
    /// can: through the exchange secrets in the key bags of every owner this environment registered. Delegations
    /// name nobody in clear (protocol v2's default), so a test finds them the way their parties do.
    pub fn delegation_keys_to(
        &self,
        entity: &EncryptedEntity,
        delegate: OwnerId,
    ) -> Vec<DelegationKey> {
        let registered = self.registered.lock().unwrap();
        let mut keys: Vec<DelegationKey> = registered
            .iter()
            .flat_map(|(owner, owner_keys)| {
                self.store
                    .key_bag(*owner)
                    .unwrap()
                    .iter()
                    .filter_map(|entry| KeyBag::open_entry(owner_keys, entry).ok())
                    .collect::<Vec<_>>()
            })
            .filter(|secret| secret.delegate() == delegate && secret.delegator() != delegate)
            .map(|secret| secret.delegation_key(&entity.entity_type))
            .filter(|key| {
                entity
                    .security_metadata
                    .delegations
                    .get(key)
                    .is_some_and(|d| !d.parents.is_empty())
            })
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    /// A top-level owner, registered with the administrator token.
    pub async fn register(&self, kind: OwnerKind) -> Owner {
        let keys = tessera::register_owner(&self.client(), ADMIN, kind, RsaKeySize::Bits2048)
            .await
            .unwrap();
        self.remember(&keys);
        Owner::new(&keys, kind)
    }

    /// An owner registered below the logged-in `parent` (an HCP registering its patient).
    pub async fn register_below(&self, parent: &Session, kind: OwnerKind) -> Owner {
        let keys = parent
            .register_owner(kind, RsaKeySize::Bits2048)
            .await
            .unwrap();
        self.remember(&keys);
        Owner::new(&keys, kind)
    }

    /// A new session of `owner`, as a device holding nothing but its key file would open it.
    pub async fn login(&self, owner: &Owner) -> Session {
        Session::login(self.client(), owner.keys(), Tofu::new())
            .await
            .unwrap()
    }

    /// Entity `id` as the store holds it.
    pub fn entity(&self, id: EntityId) -> EncryptedEntity {
        self.store.get_entity(id).unwrap().unwrap()
    }

    /// The bytes the redb backend stores for entity `id`: its bincode encoding through the wire options, which
    /// write the same bytes as the store's own (varint lengths; the limit and the trailing-bytes check only
    /// matter when decoding).
    pub fn stored_bytes(&self, id: EntityId) -> Vec<u8> {
        Format::Bincode.encode(&self.entity(id)).unwrap()
    }

    /// The database file as a thief would copy it.
    pub fn database(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    /// Shuts the server down (every acknowledged write is durable in the file), then returns the file's bytes.
    pub async fn stop(&mut self) -> Vec<u8> {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.database()
    }
}

/// An owner as its device keeps it: its key file, and its public id and kind.
pub struct Owner {
    pub id: OwnerId,
    pub kind: OwnerKind,
    pub key_file: SecretString,
}

impl Owner {
    pub fn new(keys: &OwnerKeys, kind: OwnerKind) -> Self {
        Self {
            id: keys.owner(),
            kind,
            key_file: tessera::encode_key_file(keys).unwrap(),
        }
    }

    /// Every key of the owner, re-derived from the key file.
    pub fn keys(&self) -> OwnerKeys {
        tessera::decode_key_file(self.key_file.expose_secret()).unwrap()
    }
}

/// The entries of `owner`'s key bag that hold exchange secrets: all but its owner state (protocol v2), whose id is
/// the key-bag id of the reserved all-zero exchange data id.
pub fn exchange_entries(store: &RedbStore, owner: &Owner) -> Vec<tessera::stored::KeyBagEntry> {
    let state = KeyBag::entry_id(&owner.keys(), &ExchangeDataId::from_bytes([0; 16]));
    store
        .key_bag(owner.id)
        .unwrap()
        .into_iter()
        .filter(|entry| entry.id != state)
        .collect()
}

/// `value` as a JSON object.
pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not a JSON object: {other}"),
    }
}

/// The forms in which a 16-byte id could show up in stored bytes: its text (hyphenated and plain hex, as JSON and
/// logs write it) and its raw bytes (as bincode writes it).
pub fn id_forms(bytes: &[u8; 16]) -> Vec<Vec<u8>> {
    let hex = tessera_keys::wire::hex(bytes);
    let hyphenated = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    vec![
        hyphenated.into_bytes(),
        hex.to_ascii_uppercase().into_bytes(),
        hex.into_bytes(),
        bytes.to_vec(),
    ]
}

/// Indexes of the `needles` (each at least 8 bytes long) that occur in `haystack`, in one pass over it.
pub fn occurrences(haystack: &[u8], needles: &[Vec<u8>]) -> BTreeSet<usize> {
    let mut by_prefix: HashMap<[u8; 8], Vec<usize>> = HashMap::new();
    for (index, needle) in needles.iter().enumerate() {
        let prefix: [u8; 8] = needle[..8].try_into().unwrap();
        by_prefix.entry(prefix).or_default().push(index);
    }
    let mut found = BTreeSet::new();
    for (at, window) in haystack.windows(8).enumerate() {
        let Some(candidates) = by_prefix.get(window) else {
            continue;
        };
        for &index in candidates {
            if haystack[at..].starts_with(&needles[index]) {
                found.insert(index);
            }
        }
    }
    found
}

/// Whether `needle` (at least 8 bytes long) occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !occurrences(haystack, &[needle.to_vec()]).is_empty()
}

/// An ordered pair of owners: the delegator of an exchange data and its delegate (the same owner for the exchange
/// data behind root delegations).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pair {
    pub delegator: OwnerId,
    pub delegate: OwnerId,
}

/// What a delegation key stands for, as only the owners can tell: the exchange data, its pair and the entity type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Meaning {
    pub exchange: ExchangeDataId,
    pub pair: Pair,
    pub entity_type: EntityType,
}

/// Ground truth about the sharing graph, computed with the owners' keys (which the server never has): every
/// exchange secret in the owners' key bags (the server stores no exchange data: it travels sealed through the
/// delegate's inbox and leaves it once opened), and the delegation key of each for each entity type.
pub struct Ledger {
    pub secrets: BTreeMap<ExchangeDataId, ExchangeSecret>,
    pub meanings: HashMap<DelegationKey, Meaning>,
}

impl Ledger {
    /// Opens the key bag of every owner in `owners` with its re-derived keys, checks that each entry names its
    /// owner as a party and that two bags agree on the parties of one exchange data, and derives the delegation keys of every exchange secret for every type of `types`, checking that no two (exchange data,
    /// type) share one.
    pub fn build(store: &RedbStore, owners: &[&Owner], types: &[EntityType]) -> Self {
        let mut secrets = BTreeMap::new();
        for owner in owners {
            let keys = owner.keys();
            let bag = KeyBag::load(&keys, &exchange_entries(store, owner)).unwrap();
            for secret in bag.iter() {
                assert!(
                    secret.delegator() == owner.id || secret.delegate() == owner.id,
                    "a key-bag entry of {} is for exchange data between other owners",
                    owner.id
                );
                if let Some(other) = secrets.insert(secret.id(), secret.clone()) {
                    assert_eq!(
                        (other.delegator(), other.delegate()),
                        (secret.delegator(), secret.delegate()),
                        "two key bags disagree on the parties of one exchange data"
                    );
                }
            }
        }
        let mut meanings = HashMap::new();
        for (id, secret) in &secrets {
            let pair = Pair {
                delegator: secret.delegator(),
                delegate: secret.delegate(),
            };
            for entity_type in types {
                let meaning = Meaning {
                    exchange: *id,
                    pair,
                    entity_type: entity_type.clone(),
                };
                if let Some(earlier) =
                    meanings.insert(secret.delegation_key(entity_type), meaning.clone())
                {
                    panic!("one delegation key serves {earlier:?} and {meaning:?}");
                }
            }
        }
        Self { secrets, meanings }
    }

    /// Number of exchange data per ordered pair of owners.
    pub fn exchange_per_pair(&self) -> BTreeMap<Pair, usize> {
        let mut count = BTreeMap::new();
        for secret in self.secrets.values() {
            *count
                .entry(Pair {
                    delegator: secret.delegator(),
                    delegate: secret.delegate(),
                })
                .or_default() += 1;
        }
        count
    }
}

/// A patient's file as the test built it: the patient (an owner), the record about it, and the record's children
/// by type.
pub struct PatientFile {
    pub patient: OwnerId,
    pub record: EntityId,
    pub children: BTreeMap<EntityType, Vec<EntityId>>,
}

/// What [`assert_no_links`] looked at, so that a test can check its world was not trivial.
#[derive(Debug, Default)]
pub struct LinkReport {
    pub entities: usize,
    pub delegations: usize,
    /// Delegations of a pair with a patient in it.
    pub anonymous_delegations: usize,
    /// Distinct delegation keys seen, and the (pair, type) each stands for.
    pub keys: BTreeMap<DelegationKey, (Pair, EntityType)>,
    /// Search tags checked, per patient file and child type.
    pub tags: usize,
}

impl LinkReport {
    /// The largest number of entity types one pair shares through, and of pairs one type is shared through: both
    /// must exceed one for the distinctness check to mean anything.
    pub fn spread(&self) -> (usize, usize) {
        let mut types_per_pair: BTreeMap<Pair, BTreeSet<&EntityType>> = BTreeMap::new();
        let mut pairs_per_type: BTreeMap<&EntityType, BTreeSet<Pair>> = BTreeMap::new();
        for (pair, entity_type) in self.keys.values() {
            types_per_pair.entry(*pair).or_default().insert(entity_type);
            pairs_per_type.entry(entity_type).or_default().insert(*pair);
        }
        (
            types_per_pair
                .values()
                .map(BTreeSet::len)
                .max()
                .unwrap_or(0),
            pairs_per_type
                .values()
                .map(BTreeSet::len)
                .max()
                .unwrap_or(0),
        )
    }
}

/// Checks principle P6 on the raw stored form of `entities` (read through the [`Store`] trait, then encoded as the
/// backend stores them, and as JSON):
/// - every delegation key stands for exactly one (ordered pair, entity type), per the owners' ground truth, and for
///   the entity's own type; explicit parties and exchange data ids agree with it;
/// - a delegation of a pair that involves a patient names no patient and no exchange data, in any form;
/// - no entity holds a patient's owner id, nor the id of any other entity (a child never names its parent);
/// - the search tags of a patient file differ per child type and per patient, and appear on no other record.
pub fn assert_no_links(
    env: &Env,
    ledger: &Ledger,
    entities: &[EntityId],
    patients: &BTreeSet<OwnerId>,
    files: &[PatientFile],
) -> LinkReport {
    let mut report = LinkReport::default();
    let patient_forms: Vec<(OwnerId, Vec<u8>)> = patients
        .iter()
        .flat_map(|id| id_forms(id.as_bytes()).into_iter().map(|form| (*id, form)))
        .collect();
    let entity_forms: Vec<(EntityId, Vec<u8>)> = entities
        .iter()
        .flat_map(|id| id_forms(id.as_bytes()).into_iter().map(|form| (*id, form)))
        .collect();
    let needles: Vec<Vec<u8>> = patient_forms
        .iter()
        .map(|(_, form)| form.clone())
        .chain(entity_forms.iter().map(|(_, form)| form.clone()))
        .collect();
    let mut tags_of: HashMap<EntityId, BTreeSet<tessera::stored::SearchTag>> = HashMap::new();

    for &id in entities {
        let entity = env.entity(id);
        let mut raw = Format::Bincode.encode(&entity).unwrap();
        raw.extend(serde_json::to_vec(&entity).unwrap());
        for index in occurrences(&raw, &needles) {
            match index.checked_sub(patient_forms.len()) {
                None => panic!(
                    "entity {id} ({}) names patient {}",
                    entity.entity_type, patient_forms[index].0
                ),
                Some(other) if entity_forms[other].0 != id => panic!(
                    "entity {id} ({}) names entity {}",
                    entity.entity_type, entity_forms[other].0
                ),
                Some(_) => {}
            }
        }
        report.entities += 1;
        tags_of.insert(id, entity.secret_foreign_keys.clone());

        for (key, delegation) in &entity.security_metadata.delegations {
            report.delegations += 1;
            let meaning = ledger.meanings.get(key).unwrap_or_else(|| {
                panic!("entity {id} holds delegation key {key}, which no exchange data explains")
            });
            assert_eq!(
                meaning.entity_type, entity.entity_type,
                "entity {id} holds a delegation key of another type"
            );
            let seen = (meaning.pair, meaning.entity_type.clone());
            if let Some(earlier) = report.keys.insert(*key, seen.clone()) {
                assert_eq!(
                    earlier, seen,
                    "delegation key {key} serves two (pair, type)"
                );
            }
            if let Some(delegator) = delegation.delegator {
                assert_eq!(delegator, meaning.pair.delegator);
            }
            if let Some(delegate) = delegation.delegate {
                assert_eq!(delegate, meaning.pair.delegate);
            }
            if let Some(exchange) = delegation.exchange_data_id {
                assert_eq!(exchange, meaning.exchange);
            }
            let hidden: Vec<OwnerId> = [meaning.pair.delegator, meaning.pair.delegate]
                .into_iter()
                .filter(|owner| patients.contains(owner))
                .collect();
            if hidden.is_empty() {
                continue;
            }
            report.anonymous_delegations += 1;
            assert_eq!(
                delegation.exchange_data_id, None,
                "a delegation of a patient's pair names its exchange data"
            );
            for patient in &hidden {
                assert_ne!(delegation.delegator, Some(*patient));
                assert_ne!(delegation.delegate, Some(*patient));
            }
            let mut raw = Format::Bincode.encode(delegation).unwrap();
            raw.extend(serde_json::to_vec(delegation).unwrap());
            let forms: Vec<Vec<u8>> = hidden
                .iter()
                .flat_map(|patient| id_forms(patient.as_bytes()))
                .collect();
            assert!(
                occurrences(&raw, &forms).is_empty(),
                "a delegation of entity {id} names a patient of its pair"
            );
            let exchange_forms = id_forms(meaning.exchange.as_bytes());
            assert!(
                occurrences(&raw, &exchange_forms).is_empty(),
                "a delegation of entity {id} names its exchange data"
            );
        }
    }

    // Search tags: one set per (patient file, child type), pairwise disjoint, and on no record outside it.
    let mut owner_of_tag: HashMap<tessera::stored::SearchTag, (EntityId, EntityType)> =
        HashMap::new();
    for file in files {
        assert!(
            tags_of[&file.record].is_empty(),
            "a patient record carries a search tag"
        );
        for (child_type, children) in &file.children {
            for child in children {
                let tags = &tags_of[child];
                assert!(!tags.is_empty(), "child {child} carries no search tag");
                for tag in tags {
                    report.tags += 1;
                    let this = (file.record, child_type.clone());
                    if let Some(earlier) = owner_of_tag.insert(*tag, this.clone()) {
                        assert_eq!(
                            earlier, this,
                            "a search tag is shared by two patients or two child types"
                        );
                    }
                }
            }
        }
    }
    let children: HashSet<EntityId> = files
        .iter()
        .flat_map(|file| file.children.values().flatten().copied())
        .collect();
    for (id, tags) in &tags_of {
        if !children.contains(id) {
            assert!(
                tags.iter().all(|tag| !owner_of_tag.contains_key(tag)),
                "entity {id} carries a patient file's search tag"
            );
        }
    }
    report
}
