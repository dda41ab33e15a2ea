//! Cases on attachments: ranged reads, replacement, staged uploads and deletion with the entity.

use serde_json::json;
use tessera_primitives::stream::{ENCRYPTED_SEGMENT_LEN, HEADER_LEN, SEGMENT_LEN};
use tessera_sharing::EntityId;
use tessera_sharing::attachment::{attachment_opener, seal_attachment};

use super::{chunks_of, fixtures, pattern};
use crate::{Error, Store};

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
