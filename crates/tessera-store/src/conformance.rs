//! The conformance suite (feature `test-utils`): the behaviour every [`Store`] backend must have, one public function
//! per case, and [`conformance_tests!`](crate::conformance_tests) to turn them into one named test per case.
//!
//! ```rust
//! // In `tests/conformance.rs` of a backend: one test per case, each on a fresh store.
//! tessera_store::conformance_tests!(Box::new(tessera_store::MemoryStore::new()));
//! # fn main() {}
//! ```
//!
//! The cases build realistic records with the real key and sharing layers ([`fixtures`]), so a backend is tested on
//! what the server will store, not on hand-made bytes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a conformance case is a test: it fails loudly on the first broken expectation"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

use serde_json::{Value, json};
use tessera_keys::{
    DelegationKey, EntityType, ExchangeData, ExchangeDataId, ExchangeSecret, KeyBag, KeyBagEntry,
    Owner, OwnerId, OwnerKeys, OwnerKind, Tofu, TrustPolicy,
};
use tessera_primitives::RsaKeySize;
use tessera_primitives::stream::{ENCRYPTED_SEGMENT_LEN, HEADER_LEN, SEGMENT_LEN};
use tessera_sharing::attachment::{attachment_opener, seal_attachment};
use tessera_sharing::{
    DecryptedEntity, DelegationTarget, EncryptedEntity, EncryptionManifest, EntityId, NewEntity,
    ParentLink, Permission, SearchTag, SecretId, SecretIdScope, SideMapEntry, Visibility, create,
};

use crate::{Error, RecoveryData, RedbStore, Store, attachment_chunk_len};

/// Generates one `#[test]` per conformance case for the backend that `$make` builds afresh for each case.
/// `$make` is an expression whose value dereferences to a [`Store`]: `Box::new(MemoryStore::new())`,
/// [`TempRedbStore::new()`], any `Box<dyn Store>`.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            owner_revisions,
            exchange_data_is_found_for_both_participants,
            key_bag_entries_are_immutable,
            entity_lifecycle,
            stale_revision_conflicts_and_changes_nothing,
            creating_an_existing_id_conflicts,
            missing_entity_is_not_found,
            delegation_key_index_follows_updates_and_deletes,
            search_tag_index_follows_updates_and_deletes,
            attachment_ranged_reads,
            attachment_replace,
            attachment_upload_is_invisible_until_finished,
            attachment_upload_finish_replaces,
            attachment_upload_with_a_wrong_length_changes_nothing,
            attachment_upload_readers_see_one_version,
            attachment_upload_needs_the_entity,
            deleting_an_entity_removes_its_attachments,
            recovery_data_is_create_only,
            side_map_entries_are_replaced,
            group_create_is_all_or_none,
            group_update_is_all_or_none,
            concurrent_updates_have_one_winner,
        );
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let store = $make;
                $crate::conformance::$case(&*store);
            }
        )*
    };
}

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
        let generate = || {
            OwnerKeys::generate(
                OwnerId::generate().unwrap(),
                RsaKeySize::Bits2048,
                1_700_000_000,
            )
            .unwrap()
        };
        let doctor = generate();
        let colleague = generate();
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
            version: tessera_keys::FormatVersion::V1,
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

    /// A key-bag entry of the doctor for new exchange data (a fresh id each call).
    pub fn key_bag_entry(&self) -> KeyBagEntry {
        let (_, secret) =
            ExchangeData::create(&self.doctor, self.doctor.owner(), &[], 1_700_000_000).unwrap();
        KeyBag::seal_entry(&self.doctor, &secret).unwrap()
    }
}

/// Owners: create, replace with the right revision, conflicts on a stale, unexpected or missing revision.
pub fn owner_revisions(store: &dyn Store) {
    let f = fixtures();
    let mut owner = f.owner(&f.doctor);
    assert_eq!(store.get_owner(owner.id).unwrap(), None);
    assert_eq!(store.put_owner(&owner, None).unwrap(), 1);
    let stored = store.get_owner(owner.id).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.value), (1, &owner));
    assert_conflict(store.put_owner(&owner, None), None, Some(1));

    let first = owner.clone();
    owner.parent = Some(f.colleague.owner());
    assert_eq!(store.put_owner(&owner, Some(1)).unwrap(), 2);
    assert_conflict(store.put_owner(&first, Some(1)), Some(1), Some(2));
    let stored = store.get_owner(owner.id).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.value), (2, &owner));

    let other = f.owner(&f.colleague);
    assert_conflict(store.put_owner(&other, Some(1)), Some(1), None);
    assert_eq!(store.get_owner(other.id).unwrap(), None);
}

/// Exchange data is listed for its delegator and its delegate, once each, and replaced by revision.
pub fn exchange_data_is_found_for_both_participants(store: &dyn Store) {
    let f = fixtures();
    let (own, shared) = (&f.own.0, &f.shared.0);
    assert_eq!(store.put_exchange_data(own, None).unwrap(), 1);
    assert_eq!(store.put_exchange_data(shared, None).unwrap(), 1);
    assert_conflict(store.put_exchange_data(shared, None), None, Some(1));

    let ids_of = |owner: OwnerId| -> BTreeSet<ExchangeDataId> {
        let found = store.exchange_data_of(owner).unwrap();
        let ids: BTreeSet<_> = found.iter().map(|v| v.value.id()).collect();
        assert_eq!(ids.len(), found.len(), "each exchange data once");
        ids
    };
    assert_eq!(
        ids_of(f.doctor.owner()),
        BTreeSet::from([own.id(), shared.id()])
    );
    assert_eq!(ids_of(f.colleague.owner()), BTreeSet::from([shared.id()]));
    assert!(ids_of(OwnerId::generate().unwrap()).is_empty());

    assert_eq!(store.put_exchange_data(shared, Some(1)).unwrap(), 2);
    assert_conflict(store.put_exchange_data(shared, Some(1)), Some(1), Some(2));
    let stored = store.get_exchange_data(shared.id()).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.value), (2, shared));
    assert_eq!(ids_of(f.colleague.owner()), BTreeSet::from([shared.id()]));
    let listed = store.exchange_data_of(f.colleague.owner()).unwrap();
    assert_eq!(listed[0].rev, 2);
    assert_eq!(
        store
            .get_exchange_data(ExchangeDataId::generate().unwrap())
            .unwrap(),
        None
    );
}

/// Key-bag entries: storing the same entry again is a no-op, a different one under the same id a conflict.
pub fn key_bag_entries_are_immutable(store: &dyn Store) {
    let f = fixtures();
    let owner = f.doctor.owner();
    let (first, second) = (f.key_bag_entry(), f.key_bag_entry());
    store.put_key_bag_entry(&first).unwrap();
    store.put_key_bag_entry(&first).unwrap();
    store.put_key_bag_entry(&second).unwrap();

    let mut forged = first.clone();
    forged.sealed[0] ^= 1;
    assert!(matches!(
        store.put_key_bag_entry(&forged),
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        store.key_bag_entry(owner, first.id).unwrap(),
        Some(first.clone())
    );

    let mut bag = store.key_bag(owner).unwrap();
    bag.sort_by_key(|entry| entry.id);
    let mut expected = vec![first.clone(), second];
    expected.sort_by_key(|entry| entry.id);
    assert_eq!(bag, expected);

    // The same entry id in another owner's bag is another entry.
    let mut elsewhere = forged;
    elsewhere.owner = f.colleague.owner();
    store.put_key_bag_entry(&elsewhere).unwrap();
    assert_eq!(store.key_bag(f.colleague.owner()).unwrap(), vec![elsewhere]);
    assert_eq!(store.key_bag_entry(owner, first.id).unwrap(), Some(first));
    assert!(
        store
            .key_bag(OwnerId::generate().unwrap())
            .unwrap()
            .is_empty()
    );
}

/// Create, read, update and delete an entity, with the revision set by the store.
pub fn entity_lifecycle(store: &dyn Store) {
    let f = fixtures();
    let (mut entity, opened) = f.entity_with(
        json!({"title": "visit", "diagnosis": "flu", "tags": ["a", {"b": null}], "n": 1.5}),
        Vec::new(),
    );
    let (reference, _) = seal_attachment(&opened, b"scan").unwrap();
    entity.attachments.push(reference);
    entity.rev = 42;
    assert_eq!(store.create_entity(&entity).unwrap(), 1);
    let stored = store.get_entity(entity.id).unwrap().unwrap();
    assert_eq!(
        stored,
        EncryptedEntity {
            rev: 1,
            ..entity.clone()
        }
    );

    entity.public.insert("title".to_owned(), json!("follow-up"));
    entity.rev = 0;
    assert_eq!(store.update_entity(&entity, 1).unwrap(), 2);
    let stored = store.get_entity(entity.id).unwrap().unwrap();
    assert_eq!(
        stored,
        EncryptedEntity {
            rev: 2,
            ..entity.clone()
        }
    );
    assert_eq!(store.update_entity(&stored, 2).unwrap(), 3);

    store.delete_entity(entity.id, 3).unwrap();
    assert_eq!(store.get_entity(entity.id).unwrap(), None);
    assert!(
        store
            .entities_by_delegation_key(&f.root_key())
            .unwrap()
            .is_empty()
    );

    // The id is free again.
    assert_eq!(store.create_entity(&entity).unwrap(), 1);
}

/// A stale revision is a conflict that reports both revisions and changes nothing.
pub fn stale_revision_conflicts_and_changes_nothing(store: &dyn Store) {
    let f = fixtures();
    let mut entity = f.entity(json!({"title": "v1"}));
    store.create_entity(&entity).unwrap();
    entity.public.insert("title".to_owned(), json!("v2"));
    assert_eq!(store.update_entity(&entity, 1).unwrap(), 2);
    let current = store.get_entity(entity.id).unwrap().unwrap();

    let mut stale = entity.clone();
    stale
        .public
        .insert("title".to_owned(), json!("lost update"));
    stale.security_metadata.delegations.clear();
    assert_conflict(store.update_entity(&stale, 1), Some(1), Some(2));
    assert_conflict(store.update_entity(&stale, 3), Some(3), Some(2));
    assert_conflict(store.delete_entity(entity.id, 1), Some(1), Some(2));
    assert_eq!(store.get_entity(entity.id).unwrap(), Some(current));
    assert_eq!(
        store.entities_by_delegation_key(&f.root_key()).unwrap(),
        vec![entity.id]
    );
}

/// Creating an entity whose id exists is a conflict, whatever the stored revision.
pub fn creating_an_existing_id_conflicts(store: &dyn Store) {
    let f = fixtures();
    let entity = f.entity(json!({"title": "first"}));
    store.create_entity(&entity).unwrap();
    let mut other = f.entity(json!({"title": "second"}));
    other.id = entity.id;
    assert_conflict(store.create_entity(&other), None, Some(1));
    store.update_entity(&entity, 1).unwrap();
    assert_conflict(store.create_entity(&other), None, Some(2));
    assert_eq!(
        store.get_entity(entity.id).unwrap(),
        Some(EncryptedEntity { rev: 2, ..entity })
    );
}

/// Updating, deleting or attaching to an entity that does not exist is `NotFound`; reading it is `None`.
pub fn missing_entity_is_not_found(store: &dyn Store) {
    let f = fixtures();
    let entity = f.entity(json!({"title": "never stored"}));
    let attachment = tessera_sharing::AttachmentId::generate().unwrap();
    assert!(matches!(
        store.update_entity(&entity, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.delete_entity(entity.id, 1),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        store.put_attachment(entity.id, attachment, b"bytes"),
        Err(Error::NotFound(_))
    ));
    assert_eq!(store.get_entity(entity.id).unwrap(), None);
    assert_eq!(store.attachment_len(entity.id, attachment).unwrap(), None);
    assert_eq!(
        store.read_attachment(entity.id, attachment, 0..10).unwrap(),
        None
    );
}

/// The delegation-key index follows creates, updates (removed delegations are no longer found) and deletes.
pub fn delegation_key_index_follows_updates_and_deletes(store: &dyn Store) {
    let f = fixtures();
    let (root, colleague) = (f.root_key(), f.colleague_key());
    let first = f.entity(json!({"title": "first"}));
    let second = f.entity(json!({"title": "second"}));
    store.create_entity(&first).unwrap();
    store.create_entity(&second).unwrap();
    let both = sorted([first.id, second.id]);
    assert_eq!(
        sorted(store.entities_by_delegation_key(&root).unwrap()),
        both
    );
    assert_eq!(
        sorted(store.entities_by_delegation_key(&colleague).unwrap()),
        both
    );

    // Revoke the colleague from the first entity and give it a delegation under a new key.
    let mut update = first.clone();
    let delegation = update
        .security_metadata
        .delegations
        .remove(&colleague)
        .unwrap();
    let added = DelegationKey::from_bytes([7; 32]);
    update
        .security_metadata
        .delegations
        .insert(added, delegation);
    store.update_entity(&update, 1).unwrap();
    assert_eq!(
        store.entities_by_delegation_key(&colleague).unwrap(),
        vec![second.id]
    );
    assert_eq!(
        sorted(store.entities_by_delegation_key(&root).unwrap()),
        both
    );
    assert_eq!(
        store.entities_by_delegation_key(&added).unwrap(),
        vec![first.id]
    );

    store.delete_entity(first.id, 2).unwrap();
    assert_eq!(
        store.entities_by_delegation_key(&root).unwrap(),
        vec![second.id]
    );
    assert!(store.entities_by_delegation_key(&added).unwrap().is_empty());
    store.delete_entity(second.id, 1).unwrap();
    assert!(store.entities_by_delegation_key(&root).unwrap().is_empty());
    assert!(
        store
            .entities_by_delegation_key(&colleague)
            .unwrap()
            .is_empty()
    );
}

/// The search-tag index follows creates, updates and deletes.
pub fn search_tag_index_follows_updates_and_deletes(store: &dyn Store) {
    let f = fixtures();
    let parent = f.entity(json!({"title": "patient"}));
    let secret_id = SecretId::generate().unwrap();
    let tag = secret_id.search_tag(&f.entity_type);
    let link = |parent: EntityId| ParentLink {
        parent,
        secret_id: secret_id.clone(),
    };
    let (child, _) = f.entity_with(json!({"title": "contact"}), vec![link(parent.id)]);
    let (sibling, _) = f.entity_with(json!({"title": "contact 2"}), vec![link(parent.id)]);
    assert_eq!(child.secret_foreign_keys, BTreeSet::from([tag]));
    store
        .create_entities(&[parent, child.clone(), sibling.clone()])
        .unwrap();
    assert_eq!(
        sorted(store.entities_by_search_tag(&tag).unwrap()),
        sorted([child.id, sibling.id])
    );

    let moved = SearchTag::from_bytes([9; 32]);
    let mut update = child.clone();
    update.secret_foreign_keys = BTreeSet::from([moved]);
    store.update_entity(&update, 1).unwrap();
    assert_eq!(
        store.entities_by_search_tag(&tag).unwrap(),
        vec![sibling.id]
    );
    assert_eq!(
        store.entities_by_search_tag(&moved).unwrap(),
        vec![child.id]
    );

    store.delete_entity(child.id, 2).unwrap();
    assert!(store.entities_by_search_tag(&moved).unwrap().is_empty());
    store.delete_entity(sibling.id, 1).unwrap();
    assert!(store.entities_by_search_tag(&tag).unwrap().is_empty());
}

/// Ranged reads of a sealed stream: whole, header, each segment (which then opens alone), across segment
/// boundaries, past the end (clamped) and empty.
pub fn attachment_ranged_reads(store: &dyn Store) {
    let f = fixtures();
    let (entity, opened) = f.entity_with(json!({"title": "scan"}), Vec::new());
    store.create_entity(&entity).unwrap();
    let content = pattern(3 * SEGMENT_LEN + 1234);
    let (reference, sealed) = seal_attachment(&opened, &content).unwrap();
    let (e, a) = (entity.id, reference.id);
    store.put_attachment(e, a, &sealed).unwrap();
    let len = sealed.len() as u64;
    assert_eq!(store.attachment_len(e, a).unwrap(), Some(len));

    let read = |range: std::ops::Range<u64>| store.read_attachment(e, a, range).unwrap().unwrap();
    let slice = |start: u64, end: u64| sealed[start as usize..end as usize].to_vec();
    assert_eq!(read(0..len), sealed);
    assert_eq!(read(0..u64::MAX), sealed);
    let header = read(0..HEADER_LEN as u64);
    assert_eq!(header, slice(0, HEADER_LEN as u64));

    let (opener, layout) = attachment_opener(&opened, &reference, &header).unwrap();
    assert_eq!(layout.segments(), 4);
    for index in 0..layout.segments() {
        let range = layout.segment_range(index).unwrap();
        let segment = read(range.clone());
        assert_eq!(segment, slice(range.start, range.end));
        let plain = opener
            .open_segment(index, &segment, layout.is_last(index))
            .unwrap();
        let start = index as usize * SEGMENT_LEN;
        assert_eq!(plain, content[start..start + plain.len()]);
    }

    let (h, s) = (HEADER_LEN as u64, ENCRYPTED_SEGMENT_LEN as u64);
    for (start, end) in [
        (h - 1, h + 1),
        (h + s - 3, h + s + 3),
        (5, h + 2 * s + 7),
        (h + s, h + 2 * s),
        (h + s - 1, h + s),
        (len - 10, len),
    ] {
        assert_eq!(read(start..end), slice(start, end), "{start}..{end}");
    }
    assert_eq!(read(len - 10..len + 1000), slice(len - 10, len));
    assert!(read(len..len + 10).is_empty());
    assert!(read(len + 10..len + 20).is_empty());
    assert!(read(7..7).is_empty());
    #[allow(
        clippy::reversed_empty_ranges,
        reason = "an inverted range must read nothing"
    )]
    let inverted = read(20..10);
    assert!(inverted.is_empty());

    let unknown = tessera_sharing::AttachmentId::generate().unwrap();
    assert_eq!(store.attachment_len(e, unknown).unwrap(), None);
    assert_eq!(store.read_attachment(e, unknown, 0..10).unwrap(), None);
}

/// Storing an attachment again replaces it, longer or shorter; attachments of one entity are independent.
pub fn attachment_replace(store: &dyn Store) {
    let f = fixtures();
    let (entity, opened) = f.entity_with(json!({"title": "scan"}), Vec::new());
    store.create_entity(&entity).unwrap();
    let (reference, long) = seal_attachment(&opened, &pattern(2 * SEGMENT_LEN + 5)).unwrap();
    let (_, short) = seal_attachment(&opened, b"short").unwrap();
    let (other, other_sealed) = seal_attachment(&opened, &pattern(SEGMENT_LEN)).unwrap();
    let (e, a) = (entity.id, reference.id);
    store.put_attachment(e, other.id, &other_sealed).unwrap();

    store.put_attachment(e, a, &long).unwrap();
    store.put_attachment(e, a, &short).unwrap();
    assert_eq!(
        store.attachment_len(e, a).unwrap(),
        Some(short.len() as u64)
    );
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(short.clone())
    );
    assert_eq!(
        store.read_attachment(e, a, 0..long.len() as u64).unwrap(),
        Some(short)
    );

    store.put_attachment(e, a, &long).unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(long)
    );
    store.put_attachment(e, a, &[]).unwrap();
    assert_eq!(store.attachment_len(e, a).unwrap(), Some(0));
    assert_eq!(
        store.read_attachment(e, a, 0..10).unwrap(),
        Some(Vec::new())
    );
    assert_eq!(
        store.read_attachment(e, other.id, 0..u64::MAX).unwrap(),
        Some(other_sealed)
    );
}

/// `sealed` cut into the chunks [`Store::put_attachment_chunks`] takes.
pub fn chunks_of(sealed: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = sealed;
    while !rest.is_empty() {
        let (chunk, tail) =
            rest.split_at(attachment_chunk_len(chunks.len() as u64).min(rest.len()));
        chunks.push(chunk.to_vec());
        rest = tail;
    }
    chunks
}

/// An entity with a sealed attachment stored whole, and a second, longer sealed stream for the same attachment.
/// Returns the entity id, the attachment id, the stored stream and the next one.
fn entity_with_attachment(
    store: &dyn Store,
) -> (EntityId, tessera_sharing::AttachmentId, Vec<u8>, Vec<u8>) {
    let f = fixtures();
    let (entity, opened) = f.entity_with(json!({"title": "scan"}), Vec::new());
    store.create_entity(&entity).unwrap();
    let (reference, old) = seal_attachment(&opened, &pattern(2 * SEGMENT_LEN + 7)).unwrap();
    let (_, new) = seal_attachment(&opened, &pattern(4 * SEGMENT_LEN + 100)).unwrap();
    store.put_attachment(entity.id, reference.id, &old).unwrap();
    (entity.id, reference.id, old, new)
}

/// Staged chunks are invisible, whether the attachment has a previous content or not, until the upload finishes;
/// afterwards nothing is staged.
pub fn attachment_upload_is_invisible_until_finished(store: &dyn Store) {
    let (e, a, old, new) = entity_with_attachment(store);
    let chunks = chunks_of(&new);
    assert_eq!(chunks.len(), 6);
    assert_eq!(
        (chunks[0].len(), chunks[1].len()),
        (HEADER_LEN, ENCRYPTED_SEGMENT_LEN)
    );
    let unseen = tessera_sharing::AttachmentId::generate().unwrap();
    for (first, batch) in [(0, &chunks[..2]), (2, &chunks[2..5]), (5, &chunks[5..])] {
        store.put_attachment_chunks(e, a, first, batch).unwrap();
        store
            .put_attachment_chunks(e, unseen, first, batch)
            .unwrap();
        assert_eq!(store.attachment_len(e, a).unwrap(), Some(old.len() as u64));
        assert_eq!(
            store.read_attachment(e, a, 0..u64::MAX).unwrap(),
            Some(old.clone())
        );
        assert_eq!(store.attachment_len(e, unseen).unwrap(), None);
        assert_eq!(store.read_attachment(e, unseen, 0..10).unwrap(), None);
    }
    store.finish_attachment(e, a, new.len() as u64).unwrap();
    assert_eq!(store.attachment_len(e, a).unwrap(), Some(new.len() as u64));
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(new.clone())
    );
    store
        .finish_attachment(e, unseen, new.len() as u64)
        .unwrap();
    assert_eq!(
        store.read_attachment(e, unseen, 0..u64::MAX).unwrap(),
        Some(new.clone())
    );

    // Nothing stays staged: finishing again has nothing to finish, and an abort has nothing to discard.
    assert!(matches!(
        store.finish_attachment(e, a, new.len() as u64),
        Err(Error::Invalid(_))
    ));
    store.abort_attachment(e, a).unwrap();
    assert_eq!(store.read_attachment(e, a, 0..u64::MAX).unwrap(), Some(new));

    // An aborted upload leaves the content as it was and nothing to finish.
    store
        .put_attachment_chunks(e, a, 0, &chunks_of(&old))
        .unwrap();
    store.abort_attachment(e, a).unwrap();
    assert!(matches!(
        store.finish_attachment(e, a, old.len() as u64),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        store.attachment_len(e, unseen).unwrap(),
        Some(chunks.iter().map(|c| c.len() as u64).sum())
    );
}

/// Finishing replaces the content, longer or shorter; chunks staged again replace earlier ones, and staged chunks
/// past the finished length (left by a longer upload that was given up) are dropped.
pub fn attachment_upload_finish_replaces(store: &dyn Store) {
    let (e, a, old, new) = entity_with_attachment(store);
    store
        .put_attachment_chunks(e, a, 0, &chunks_of(&new))
        .unwrap();
    // A shorter stream staged over the longer one: its 4 chunks replace the first 4 of 6.
    store
        .put_attachment_chunks(e, a, 0, &chunks_of(&old))
        .unwrap();
    store.finish_attachment(e, a, old.len() as u64).unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(old.clone())
    );
    assert!(matches!(
        store.finish_attachment(e, a, new.len() as u64),
        Err(Error::Invalid(_))
    ));

    // Longer, then shorter again, then empty.
    store
        .put_attachment_chunks(e, a, 0, &chunks_of(&new))
        .unwrap();
    store.finish_attachment(e, a, new.len() as u64).unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(new.clone())
    );
    let (h, s) = (HEADER_LEN as u64, ENCRYPTED_SEGMENT_LEN as u64);
    assert_eq!(
        store.read_attachment(e, a, h + s - 2..h + s + 2).unwrap(),
        Some(new[(h + s - 2) as usize..(h + s + 2) as usize].to_vec())
    );
    store
        .put_attachment_chunks(e, a, 0, &chunks_of(&old))
        .unwrap();
    store.finish_attachment(e, a, old.len() as u64).unwrap();
    assert_eq!(store.attachment_len(e, a).unwrap(), Some(old.len() as u64));
    assert_eq!(store.read_attachment(e, a, 0..u64::MAX).unwrap(), Some(old));
    store.finish_attachment(e, a, 0).unwrap();
    assert_eq!(store.attachment_len(e, a).unwrap(), Some(0));

    // put_attachment replaces the content and discards an upload in progress.
    store
        .put_attachment_chunks(e, a, 0, &chunks_of(&new))
        .unwrap();
    store.put_attachment(e, a, b"whole").unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..100).unwrap(),
        Some(b"whole".to_vec())
    );
    assert!(matches!(
        store.finish_attachment(e, a, new.len() as u64),
        Err(Error::Invalid(_))
    ));
}

/// A finish whose length the staged chunks do not make (too short, too long, a chunk missing or cut short) is
/// refused and changes nothing: the previous content stays readable, the staged chunks stay staged. Chunks that
/// cannot be part of any stream are refused when staged.
pub fn attachment_upload_with_a_wrong_length_changes_nothing(store: &dyn Store) {
    let (e, a, old, new) = entity_with_attachment(store);
    let chunks = chunks_of(&new);
    let len = new.len() as u64;
    store.put_attachment_chunks(e, a, 0, &chunks).unwrap();
    let unchanged = || {
        assert_eq!(store.attachment_len(e, a).unwrap(), Some(old.len() as u64));
        assert_eq!(
            store.read_attachment(e, a, 0..u64::MAX).unwrap(),
            Some(old.clone())
        );
    };
    let refused = |len: u64| {
        assert!(
            matches!(store.finish_attachment(e, a, len), Err(Error::Invalid(_))),
            "{len}"
        );
        unchanged();
    };
    // One byte short or long, one segment short or long, the header and a byte. (A length that ends on a chunk
    // boundary before the staged chunks end is a shorter stream, which finishing accepts.)
    let segment = ENCRYPTED_SEGMENT_LEN as u64;
    for wrong in [
        len - 1,
        len + 1,
        len - segment,
        len + segment,
        HEADER_LEN as u64 + 1,
    ] {
        refused(wrong);
    }
    // The staged chunks survived the refusals.
    store.finish_attachment(e, a, len).unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(new.clone())
    );
    store.put_attachment(e, a, &old).unwrap();

    // A chunk missing in the middle.
    store.put_attachment_chunks(e, a, 0, &chunks[..2]).unwrap();
    store.put_attachment_chunks(e, a, 3, &chunks[3..]).unwrap();
    refused(len);
    // A middle chunk cut short: no length fits, not even the total of the staged bytes.
    let mut short = chunks[2].clone();
    short.pop();
    store.put_attachment_chunks(e, a, 2, &[short]).unwrap();
    refused(len);
    refused(len - 1);
    store.put_attachment_chunks(e, a, 2, &chunks[2..3]).unwrap();
    store.finish_attachment(e, a, len).unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(new.clone())
    );
    store.put_attachment(e, a, &old).unwrap();

    // Chunks longer than their place, and empty chunks, are refused and not staged.
    for (first, bad) in [
        (0, vec![vec![1; HEADER_LEN + 1]]),
        (1, vec![vec![1; ENCRYPTED_SEGMENT_LEN + 1]]),
        (0, vec![Vec::new()]),
        (0, vec![chunks[0].clone(), chunks[1].clone(), Vec::new()]),
        (u64::MAX, vec![chunks[1].clone(), chunks[1].clone()]),
    ] {
        assert!(matches!(
            store.put_attachment_chunks(e, a, first, &bad),
            Err(Error::Invalid(_))
        ));
    }
    assert!(matches!(
        store.finish_attachment(e, a, HEADER_LEN as u64),
        Err(Error::Invalid(_))
    ));
    unchanged();
}

/// While an upload is staged in several commits and finished, a reader of the attachment sees the previous
/// content or the new one, whole, at every read.
pub fn attachment_upload_readers_see_one_version(store: &dyn Store) {
    let (e, a, old, new) = entity_with_attachment(store);
    let chunks = chunks_of(&new);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0u32;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let read = store.read_attachment(e, a, 0..u64::MAX).unwrap().unwrap();
                let len = store.attachment_len(e, a).unwrap().unwrap();
                assert!(read == old || read == new, "a mix of two versions");
                assert!(len == old.len() as u64 || len == new.len() as u64);
                reads += 1;
                if finished {
                    assert_eq!(read, new);
                    return reads;
                }
            }
        });
        for (index, chunk) in chunks.iter().enumerate() {
            store
                .put_attachment_chunks(e, a, index as u64, std::slice::from_ref(chunk))
                .unwrap();
        }
        store.finish_attachment(e, a, new.len() as u64).unwrap();
        done.store(true, std::sync::atomic::Ordering::Release);
        assert!(reader.join().unwrap() >= 1);
    });
}

/// Uploads need their entity: staging or finishing for a missing entity is not found, and deleting the entity
/// discards its unfinished uploads.
pub fn attachment_upload_needs_the_entity(store: &dyn Store) {
    let f = fixtures();
    let (entity, opened) = f.entity_with(json!({"title": "scan"}), Vec::new());
    let (reference, sealed) = seal_attachment(&opened, &pattern(SEGMENT_LEN + 3)).unwrap();
    let (e, a) = (entity.id, reference.id);
    let chunks = chunks_of(&sealed);
    let len = sealed.len() as u64;
    assert!(matches!(
        store.put_attachment_chunks(e, a, 0, &chunks),
        Err(Error::NotFound("entity"))
    ));
    assert!(matches!(
        store.finish_attachment(e, a, len),
        Err(Error::NotFound("entity"))
    ));
    assert!(matches!(
        store.put_attachment(e, a, &sealed),
        Err(Error::NotFound("entity"))
    ));

    store.create_entity(&entity).unwrap();
    store.put_attachment_chunks(e, a, 0, &chunks).unwrap();
    store.delete_entity(e, 1).unwrap();
    assert!(matches!(
        store.finish_attachment(e, a, len),
        Err(Error::NotFound("entity"))
    ));
    store.create_entity(&entity).unwrap();
    assert!(matches!(
        store.finish_attachment(e, a, len),
        Err(Error::Invalid(_))
    ));
    assert_eq!(store.attachment_len(e, a).unwrap(), None);
    store.put_attachment_chunks(e, a, 0, &chunks).unwrap();
    store.finish_attachment(e, a, len).unwrap();
    assert_eq!(
        store.read_attachment(e, a, 0..u64::MAX).unwrap(),
        Some(sealed)
    );
}

/// Deleting an entity deletes its attachments, and only its own.
pub fn deleting_an_entity_removes_its_attachments(store: &dyn Store) {
    let f = fixtures();
    let (doomed, opened) = f.entity_with(json!({"title": "doomed"}), Vec::new());
    let (kept, kept_opened) = f.entity_with(json!({"title": "kept"}), Vec::new());
    store
        .create_entities(&[doomed.clone(), kept.clone()])
        .unwrap();
    let (first, first_sealed) = seal_attachment(&opened, &pattern(SEGMENT_LEN + 1)).unwrap();
    let (second, second_sealed) = seal_attachment(&opened, b"x").unwrap();
    let (third, third_sealed) = seal_attachment(&kept_opened, b"kept").unwrap();
    store
        .put_attachment(doomed.id, first.id, &first_sealed)
        .unwrap();
    store
        .put_attachment(doomed.id, second.id, &second_sealed)
        .unwrap();
    store
        .put_attachment(kept.id, third.id, &third_sealed)
        .unwrap();

    store.delete_entity(doomed.id, 1).unwrap();
    for reference in [&first, &second] {
        assert_eq!(store.attachment_len(doomed.id, reference.id).unwrap(), None);
        assert_eq!(
            store
                .read_attachment(doomed.id, reference.id, 0..10)
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store.read_attachment(kept.id, third.id, 0..100).unwrap(),
        Some(third_sealed)
    );

    // An entity created again under the same id starts without attachments.
    store.create_entity(&doomed).unwrap();
    assert_eq!(store.attachment_len(doomed.id, first.id).unwrap(), None);
}

/// Recovery data is stored once and never overwritten.
pub fn recovery_data_is_create_only(store: &dyn Store) {
    let data = RecoveryData {
        id: [3; 32],
        sealed: vec![1, 2, 3, 4],
        expires: 1_800_000_000,
    };
    store.put_recovery_data(&data).unwrap();
    assert_eq!(
        store.get_recovery_data(&data.id).unwrap(),
        Some(data.clone())
    );
    let replacement = RecoveryData {
        sealed: vec![9; 40],
        ..data.clone()
    };
    assert_conflict(store.put_recovery_data(&replacement), None, Some(1));
    assert_eq!(store.get_recovery_data(&data.id).unwrap(), Some(data));
    assert_eq!(store.get_recovery_data(&[4; 32]).unwrap(), None);
}

/// A side-map entry replaces the previous one of the same owner and delegation key.
pub fn side_map_entries_are_replaced(store: &dyn Store) {
    let f = fixtures();
    let key = f.colleague_key();
    let first = SideMapEntry::seal(&f.doctor, key, f.shared.0.id()).unwrap();
    store.put_side_map_entry(&first).unwrap();
    assert_eq!(
        store.side_map_entry(f.doctor.owner(), &key).unwrap(),
        Some(first)
    );
    let second = SideMapEntry::seal(&f.doctor, key, f.own.0.id()).unwrap();
    store.put_side_map_entry(&second).unwrap();
    let stored = store
        .side_map_entry(f.doctor.owner(), &key)
        .unwrap()
        .unwrap();
    assert_eq!(stored, second);
    assert_eq!(stored.open(&f.doctor).unwrap(), f.own.0.id());
    assert_eq!(
        store.side_map_entry(f.colleague.owner(), &key).unwrap(),
        None
    );
    assert_eq!(
        store
            .side_map_entry(f.doctor.owner(), &f.root_key())
            .unwrap(),
        None
    );
}

/// A batch of creates is stored whole, or not at all when one id is taken (in the store or in the batch).
pub fn group_create_is_all_or_none(store: &dyn Store) {
    let f = fixtures();
    let batch: Vec<_> = (0..3).map(|i| f.entity(json!({ "n": i }))).collect();
    assert_eq!(store.create_entities(&batch).unwrap(), vec![1, 1, 1]);
    for entity in &batch {
        assert_eq!(store.get_entity(entity.id).unwrap().unwrap().rev, 1);
    }
    assert_eq!(
        store
            .entities_by_delegation_key(&f.root_key())
            .unwrap()
            .len(),
        3
    );
    assert_eq!(store.create_entities(&[]).unwrap(), Vec::<u64>::new());

    let (fresh, later) = (f.entity(json!({"n": "a"})), f.entity(json!({"n": "b"})));
    let taken = [fresh.clone(), batch[1].clone(), later.clone()];
    assert_conflict(store.create_entities(&taken), None, Some(1));
    let twice = [fresh.clone(), later.clone(), fresh.clone()];
    assert_conflict(store.create_entities(&twice), None, Some(1));
    for entity in [&fresh, &later] {
        assert_eq!(store.get_entity(entity.id).unwrap(), None);
    }
    assert_eq!(
        store
            .entities_by_delegation_key(&f.root_key())
            .unwrap()
            .len(),
        3
    );
}

/// A batch of updates is stored whole, or not at all when one revision is stale or one entity missing.
pub fn group_update_is_all_or_none(store: &dyn Store) {
    let f = fixtures();
    let batch: Vec<_> = (0..3).map(|i| f.entity(json!({ "n": i }))).collect();
    store.create_entities(&batch).unwrap();
    let edit = |entity: &EncryptedEntity, n: i32| {
        let mut entity = entity.clone();
        entity.public.insert("n".to_owned(), json!(n));
        entity
    };
    let updates: Vec<_> = batch.iter().map(|e| (edit(e, 10), 1)).collect();
    assert_eq!(store.update_entities(&updates).unwrap(), vec![2, 2, 2]);
    let before: Vec<_> = batch
        .iter()
        .map(|e| store.get_entity(e.id).unwrap().unwrap())
        .collect();

    let mut revoked = edit(&batch[0], 20);
    revoked
        .security_metadata
        .delegations
        .remove(&f.colleague_key());
    let stale = [
        (revoked.clone(), 2),
        (edit(&batch[1], 20), 1),
        (edit(&batch[2], 20), 2),
    ];
    assert_conflict(store.update_entities(&stale), Some(1), Some(2));
    let missing = [(revoked, 2), (f.entity(json!({"n": 0})), 1)];
    assert!(matches!(
        store.update_entities(&missing),
        Err(Error::NotFound(_))
    ));
    for entity in &before {
        assert_eq!(store.get_entity(entity.id).unwrap().as_ref(), Some(entity));
    }
    assert_eq!(
        store
            .entities_by_delegation_key(&f.colleague_key())
            .unwrap()
            .len(),
        3
    );

    // A batch applies in order: one entity may be updated twice.
    let twice = [(edit(&batch[0], 30), 2), (edit(&batch[0], 31), 3)];
    assert_eq!(store.update_entities(&twice).unwrap(), vec![3, 4]);
    let stored = store.get_entity(batch[0].id).unwrap().unwrap();
    assert_eq!((stored.rev, &stored.public["n"]), (4, &json!(31)));
    assert_eq!(store.update_entities(&[]).unwrap(), Vec::<u64>::new());
}

/// Of several writers that update the same revision at once, exactly one wins; the others see a conflict.
pub fn concurrent_updates_have_one_winner(store: &dyn Store) {
    let f = fixtures();
    let entity = f.entity(json!({"title": "contended"}));
    store.create_entity(&entity).unwrap();
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|i| {
                let mut update = entity.clone();
                update.public.insert("writer".to_owned(), json!(i));
                scope.spawn(move || store.update_entity(&update, 1))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners = results.iter().filter(|r| matches!(r, Ok(2))).count();
    let conflicts = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(Error::Conflict {
                    actual: Some(2),
                    ..
                })
            )
        })
        .count();
    assert_eq!((winners, conflicts), (1, 5), "{results:?}");
    assert_eq!(store.get_entity(entity.id).unwrap().unwrap().rev, 2);
}

/// Asserts that `result` is a conflict naming these revisions.
#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(
    result: crate::Result<T>,
    expected: Option<u64>,
    actual: Option<u64>,
) {
    match result {
        Err(Error::Conflict {
            expected: e,
            actual: a,
            ..
        }) => assert_eq!((e, a), (expected, actual), "conflict revisions"),
        other => panic!("expected a conflict ({expected:?} vs {actual:?}), got {other:?}"),
    }
}

fn sorted(ids: impl IntoIterator<Item = EntityId>) -> Vec<EntityId> {
    let mut ids: Vec<_> = ids.into_iter().collect();
    ids.sort();
    ids
}

/// `len` bytes of a recognisable, non-repeating-per-segment pattern.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
