//! Unit tests of the redb backend: chunk layout, staging, corrupt values and key layouts.

use tessera_primitives::stream::{ENCRYPTED_SEGMENT_LEN, HEADER_LEN};

use super::attachment::*;
use super::table::*;
use super::*;
use crate::store::{chunk_count, chunk_of, chunk_span, cut_chunks};

const H: u64 = HEADER_LEN as u64;
const S: u64 = ENCRYPTED_SEGMENT_LEN as u64;

#[test]
fn chunks_follow_the_stream_segments() {
    assert_eq!((H, S), (9, 65_552));
    assert_eq!(chunk_of(0), 0);
    assert_eq!(chunk_of(H - 1), 0);
    assert_eq!(chunk_of(H), 1);
    assert_eq!(chunk_of(H + S - 1), 1);
    assert_eq!(chunk_of(H + S), 2);
    assert_eq!(chunk_span(0, 1_000_000), 0..H);
    assert_eq!(chunk_span(2, 1_000_000), H + S..H + 2 * S);
    assert_eq!(chunk_span(2, H + S + 10), H + S..H + S + 10);
    for (len, count) in [
        (0, 0),
        (1, 1),
        (H, 1),
        (H + 1, 2),
        (H + S, 2),
        (H + S + 1, 3),
    ] {
        assert_eq!(chunk_count(len), count, "{len}");
    }
}

/// A store in a temporary directory, with the directory.
fn temp_store() -> (RedbStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("tessera.redb")).unwrap();
    (store, dir)
}

fn rows(store: &RedbStore, table: TableDefinition<'_, ChunkKey, Bytes>) -> u64 {
    store
        .read(|txn| {
            let chunks = txn.open_table(table).map_err(backend)?;
            ::redb::ReadableTableMetadata::len(&chunks).map_err(backend)
        })
        .unwrap()
}

fn chunk_rows(store: &RedbStore) -> u64 {
    rows(store, ATTACHMENT_CHUNKS)
}

fn staged_rows(store: &RedbStore) -> u64 {
    rows(store, ATTACHMENT_STAGING)
}

/// Stores `sealed` as `put_attachment` does, without an entity.
fn put(store: &RedbStore, entity: EntityId, attachment: AttachmentId, sealed: &[u8]) {
    store
        .write(|txn| {
            let mut tables = AttachmentTables::open(txn)?;
            tables.stage(entity, attachment, 0, &cut_chunks(sealed))?;
            tables.finish(entity, attachment, sealed.len() as u64)
        })
        .unwrap();
}

/// Staged chunks are not visible through the trait either: an unfinished upload, a finish that leaves chunks
/// past the length, a refused finish and a deletion must leave no staged rows behind.
#[test]
fn staged_chunks_are_moved_or_removed() {
    let (store, _dir) = temp_store();
    let (entity, attachment) = (
        EntityId::from_bytes([1; 16]),
        AttachmentId::from_bytes([2; 16]),
    );
    let long = vec![0xcd; (H + 3 * S + 1) as usize];
    let chunks = cut_chunks(&long);
    let stage = |first: u64, chunks: &[&[u8]]| {
        store
            .write(|txn| AttachmentTables::open(txn)?.stage(entity, attachment, first, chunks))
            .unwrap();
    };
    let finish =
        |len: u64| store.write(|txn| AttachmentTables::open(txn)?.finish(entity, attachment, len));
    stage(0, &chunks);
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (0, 5));
    // Finishing with fewer bytes than staged: the chunks past the end are dropped, the last one must fit.
    assert!(matches!(finish(H + 5), Err(Error::Invalid(_))));
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (0, 5));
    finish(H + 2 * S).unwrap();
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (3, 0));
    // A missing chunk is refused and changes nothing.
    stage(1, &chunks[1..]);
    assert!(matches!(finish(long.len() as u64), Err(Error::Invalid(_))));
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (3, 4));
    stage(0, &chunks[..1]);
    finish(long.len() as u64).unwrap();
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (5, 0));
    stage(2, &[&long[..10]]);
    store
        .write(|txn| AttachmentTables::open(txn)?.discard(entity, attachment))
        .unwrap();
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (5, 0));
    stage(0, &chunks);
    store
        .write(|txn| AttachmentTables::open(txn)?.remove_all_of(entity))
        .unwrap();
    assert_eq!((chunk_rows(&store), staged_rows(&store)), (0, 0));
}

/// Chunks are not visible through the trait once the length shrinks, so only a row count shows a leak.
#[test]
fn shorter_content_and_deletion_leave_no_chunk_rows() {
    let (store, _dir) = temp_store();
    let (entity, attachment) = (
        EntityId::from_bytes([1; 16]),
        AttachmentId::from_bytes([2; 16]),
    );
    let long = vec![0xab; (H + 3 * S + 1) as usize];
    put(&store, entity, attachment, &long);
    assert_eq!(chunk_rows(&store), 5);
    put(&store, entity, attachment, &long[..(H + 5) as usize]);
    assert_eq!(chunk_rows(&store), 2);
    put(&store, entity, AttachmentId::from_bytes([3; 16]), &long);
    assert_eq!(chunk_rows(&store), 7);
    store
        .write(|txn| AttachmentTables::open(txn)?.remove_all_of(entity))
        .unwrap();
    assert_eq!(chunk_rows(&store), 0);
}

/// Deleted attachments leave free pages that only compaction gives back: the file shrinks, and what is left reads
/// the same.
#[test]
fn compaction_shrinks_the_file_after_deletes_and_keeps_the_rest() {
    let (mut store, _dir) = temp_store();
    let kept = (
        EntityId::from_bytes([9; 16]),
        AttachmentId::from_bytes([9; 16]),
    );
    let small = vec![0x5a; (H + S + 7) as usize];
    put(&store, kept.0, kept.1, &small);
    let big = vec![0xab; (H + 256 * S) as usize];
    for i in 0..4u8 {
        put(
            &store,
            EntityId::from_bytes([i; 16]),
            AttachmentId::from_bytes([i; 16]),
            &big,
        );
    }
    for i in 0..4u8 {
        store
            .write(|txn| AttachmentTables::open(txn)?.remove_all_of(EntityId::from_bytes([i; 16])))
            .unwrap();
    }
    let grown = std::fs::metadata(store.path()).unwrap().len();
    assert!(
        grown > 4 * big.len() as u64 / 2,
        "the deletes left the file large: {grown}"
    );
    let compaction = store.compact().unwrap();
    assert_eq!(compaction.before_bytes, grown);
    assert!(
        compaction.after_bytes * 4 < compaction.before_bytes,
        "{compaction:?}"
    );
    assert_eq!(
        std::fs::metadata(store.path()).unwrap().len(),
        compaction.after_bytes
    );
    let read = store
        .read(|txn| {
            let chunks = txn.open_table(ATTACHMENT_CHUNKS).map_err(backend)?;
            read_range(
                &chunks,
                kept.0,
                kept.1,
                small.len() as u64,
                0..small.len() as u64,
            )
        })
        .unwrap();
    assert_eq!(read, small);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Any range of any stream reads what slicing the stream would, clamped to its length.
    #[test]
    fn ranged_reads_match_slicing(
        len in 0..(H + 3 * S) as usize,
        start in 0..(H + 4 * S),
        width in proptest::prop_oneof![0..64u64, 0..(2 * S), proptest::prelude::Just(u64::MAX)],
    ) {
        let (store, _dir) = temp_store();
        let (entity, attachment) = (EntityId::from_bytes([1; 16]), AttachmentId::from_bytes([2; 16]));
        let sealed: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        put(&store, entity, attachment, &sealed);
        let end = start.saturating_add(width);
        let read = store
            .read(|txn| {
                let chunks = txn.open_table(ATTACHMENT_CHUNKS).map_err(backend)?;
                read_range(&chunks, entity, attachment, len as u64, start..end)
            })
            .unwrap();
        let clamp = |offset: u64| offset.min(len as u64) as usize;
        proptest::prop_assert_eq!(read, sealed[clamp(start)..clamp(end)].to_vec());
    }
}

#[test]
fn undecodable_values_and_unknown_layouts_are_corrupt() {
    let (store, dir) = temp_store();
    let id = EntityId::from_bytes([4; 16]);
    store
        .write(|txn| {
            let mut entities = txn.open_table(ENTITIES).map_err(backend)?;
            entities
                .insert(id.as_bytes(), &[1u8, 2, 3][..])
                .map_err(backend)?;
            Ok(())
        })
        .unwrap();
    assert!(matches!(
        store.get_entity(id),
        Err(Error::Corrupt("entity"))
    ));
    assert!(matches!(
        store.update_entity(&dummy_entity(id), 1),
        Err(Error::Corrupt("entity"))
    ));

    store
        .write(|txn| {
            let mut meta = txn.open_table(META).map_err(backend)?;
            meta.insert("format", FORMAT + 1).map_err(backend)?;
            Ok(())
        })
        .unwrap();
    drop(store);
    assert!(matches!(
        RedbStore::open(dir.path().join("tessera.redb")),
        Err(Error::Corrupt("store layout version"))
    ));
}

fn dummy_entity(id: EntityId) -> EncryptedEntity {
    EncryptedEntity {
        version: tessera_keys::FormatVersion::V2,
        id,
        entity_type: tessera_keys::EntityType::new("Note").unwrap(),
        rev: 0,
        content_version: 1,
        key_epoch: 0,
        public: serde_json::Map::new(),
        encrypted_self: tessera_sharing::Sealed(vec![0; 40]),
        key_commitment: [0; 32],
        secret_foreign_keys: Default::default(),
        security_metadata: Default::default(),
        attachments: Vec::new(),
        writer_proof: tessera_sharing::Sealed(vec![0; 40]),
    }
}

#[test]
fn keys_are_fully_written() {
    let entity = EntityId::from_bytes([1; 16]);
    let attachment = AttachmentId::from_bytes([2; 16]);
    let key = chunk_key(entity, attachment, 0x0304);
    assert_eq!(key[..16], [1; 16]);
    assert_eq!(key[16..32], [2; 16]);
    assert_eq!(key[32..], [0, 0, 0, 0, 0, 0, 3, 4]);
    let bag: OwnerKey48 = concat(&[&[5; 16], &[6; 32]]);
    assert_eq!((bag[15], bag[16], bag[47]), (5, 6, 6));
}
