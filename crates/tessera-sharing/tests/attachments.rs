//! Attachments: sealed and opened whole or by segment, re-keyed after revoke-and-rotate, and bound to their entity and attachment id.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::{Spec, Who, assert_crypto, create_as, create_note, share_into, ty, world};
use tessera_primitives::stream::{self, HEADER_LEN, SEGMENT_LEN, StreamLayout};
use tessera_sharing::attachment::{
    attachment_key, attachment_opener, attachment_sealer, open_attachment, pending_opener,
    rotate_attachment, seal_attachment,
};
use tessera_sharing::{
    AttachmentRef, DecryptedEntity, EncryptedEntity, Permission, Visibility, decrypt, revise,
    revoke_and_rotate, rules,
};

use Permission::Read;
use Who::{A, B, P};

/// `len` bytes that differ from one segment to the next.
fn content(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + i / SEGMENT_LEN) % 251).unwrap())
        .collect()
}

/// A `Note` of A shared with B and (anonymously) with P.
fn shared_note() -> (EncryptedEntity, DecryptedEntity) {
    let w = world();
    let (mut entity, opened) = create_note(A);
    share_into(
        &mut entity,
        &opened,
        &[
            w.explicit(A, B, Read),
            w.target(A, P, Visibility::AnonymousDelegate, Read),
        ],
    );
    (entity, opened)
}

/// Records `reference` in A's entity through a plain update: a new content version signed by A (protocol v2:
/// the attachment references are part of the signed version).
fn add_reference(
    entity: &mut EncryptedEntity,
    opened: &DecryptedEntity,
    reference: &AttachmentRef,
) {
    let stored = entity.clone();
    let mut updated = revise(entity, opened, world().keys(A), |e| {
        e.attachments.push(reference.clone());
        Ok(())
    })
    .unwrap();
    updated.rev += 1;
    rules::validate_update(&stored, &updated).unwrap();
    *entity = updated;
}

/// Seals `data` as an attachment of A's entity and records its reference through a plain update.
fn attach(
    entity: &mut EncryptedEntity,
    opened: &DecryptedEntity,
    data: &[u8],
) -> (AttachmentRef, Vec<u8>) {
    let (reference, sealed) = seal_attachment(opened, data).unwrap();
    add_reference(entity, opened, &reference);
    (reference, sealed)
}

#[test]
fn an_attachment_round_trips_for_every_delegate() {
    let w = world();
    let (mut entity, opened) = shared_note();
    let data = content(1000);
    let (reference, sealed) = attach(&mut entity, &opened, &data);
    assert_eq!(
        reference.encrypted_len,
        stream::encrypted_len(data.len() as u64)
    );
    assert_eq!(reference.encrypted_len, sealed.len() as u64);
    assert!(!common::contains(&sealed, &data[..64]));
    assert_eq!(open_attachment(&opened, &reference, &sealed).unwrap(), data);
    for who in [A, B, P] {
        let read = decrypt(&entity, &w.access(who)).unwrap();
        assert_eq!(
            read.attachments,
            std::slice::from_ref(&reference),
            "{who:?}"
        );
        assert_eq!(
            open_attachment(&read, &read.attachments[0], &sealed).unwrap(),
            data,
            "{who:?}"
        );
    }
    // An empty attachment is one empty segment.
    let (empty, sealed_empty) = seal_attachment(&opened, &[]).unwrap();
    assert_eq!(sealed_empty.len(), HEADER_LEN + 16);
    assert!(
        open_attachment(&opened, &empty, &sealed_empty)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn an_attachment_sealed_segment_by_segment_opens_like_one_sealed_whole() {
    let w = world();
    let (mut entity, opened) = shared_note();
    for len in [
        0,
        1,
        SEGMENT_LEN - 1,
        SEGMENT_LEN,
        SEGMENT_LEN + 1,
        3 * SEGMENT_LEN + 7,
    ] {
        let data = content(len);
        let (reference, mut sealer) = attachment_sealer(&opened, len as u64).unwrap();
        assert_eq!(
            reference.encrypted_len,
            stream::encrypted_len(len as u64),
            "{len}"
        );
        let mut sealed = sealer.header().to_vec();
        let segments = stream::segment_count(len as u64) as usize;
        for index in 0..segments {
            let end = ((index + 1) * SEGMENT_LEN).min(len);
            let last = index + 1 == segments;
            sealed.extend(
                sealer
                    .seal_segment(&data[index * SEGMENT_LEN..end], last)
                    .unwrap(),
            );
        }
        assert_eq!(sealed.len() as u64, reference.encrypted_len, "{len}");
        add_reference(&mut entity, &opened, &reference);

        // Opened whole by a delegate, the same bytes as the whole-buffer path gives.
        let (whole_reference, whole_sealed) = seal_attachment(&opened, &data).unwrap();
        let whole = open_attachment(&opened, &whole_reference, &whole_sealed).unwrap();
        let read = decrypt(&entity, &w.access(B)).unwrap();
        let streamed = open_attachment(&read, &reference, &sealed).unwrap();
        assert_eq!(streamed, whole, "{len}");
        assert_eq!(streamed, data, "{len}");

        // And segment by segment through a pending opener, which knows the layout before the header.
        let pending = pending_opener(&read, &reference).unwrap();
        let layout = pending.layout();
        assert_eq!(layout.segments() as usize, segments, "{len}");
        let opener = pending.into_opener(&sealed[..HEADER_LEN]).unwrap();
        let mut by_segment = Vec::new();
        for index in 0..layout.segments() {
            let range = layout.segment_range(index).unwrap();
            by_segment.extend(
                opener
                    .open_segment(
                        index,
                        &sealed[range.start as usize..range.end as usize],
                        layout.is_last(index),
                    )
                    .unwrap(),
            );
        }
        assert_eq!(by_segment, data, "{len}");
    }
    // A length no stream of 2³² segments holds is refused before anything is sealed.
    assert!(matches!(
        attachment_sealer(&opened, u64::MAX),
        Err(tessera_sharing::Error::Malformed { .. })
    ));
    // A pending opener refuses another attachment's key and an unknown header.
    let (first, first_sealed) = seal_attachment(&opened, &content(10)).unwrap();
    let (second, _) = seal_attachment(&opened, &content(10)).unwrap();
    let moved = AttachmentRef {
        sealed_key: first.sealed_key.clone(),
        ..second
    };
    assert_crypto(pending_opener(&opened, &moved).map(|_| ()));
    let mut header = first_sealed[..HEADER_LEN].to_vec();
    header[0] ^= 0x01;
    assert_crypto(
        pending_opener(&opened, &first)
            .unwrap()
            .into_opener(&header)
            .map(|_| ()),
    );
}

#[test]
fn ranged_reads_of_a_multi_segment_attachment() {
    let w = world();
    let (mut entity, opened) = shared_note();
    let data = content(3 * SEGMENT_LEN + 3392);
    let (reference, sealed) = attach(&mut entity, &opened, &data);
    let read = decrypt(&entity, &w.access(B)).unwrap();

    let (opener, layout) = attachment_opener(&read, &reference, &sealed[..HEADER_LEN]).unwrap();
    assert_eq!(layout.segments(), 4);
    assert_eq!(
        layout,
        StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap()
    );
    let mut whole = Vec::new();
    for index in 0..layout.segments() {
        let range = layout.segment_range(index).unwrap();
        let segment =
            &sealed[usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap()];
        whole.extend(
            opener
                .open_segment(index, segment, layout.is_last(index))
                .unwrap(),
        );
    }
    assert_eq!(whole, data);
    assert!(layout.segment_range(4).is_none());

    // Read plaintext bytes 150 000..150 100 only: one segment.
    let offset = 150_000u64;
    let index = u32::try_from(StreamLayout::segment_of_plaintext_offset(offset)).unwrap();
    assert_eq!(index, 2);
    let range = layout.segment_range(index).unwrap();
    let segment =
        &sealed[usize::try_from(range.start).unwrap()..usize::try_from(range.end).unwrap()];
    let plain = opener.open_segment(index, segment, false).unwrap();
    let within = usize::try_from(offset).unwrap() - 2 * SEGMENT_LEN;
    assert_eq!(
        &plain[within..within + 100],
        &data[usize::try_from(offset).unwrap()..usize::try_from(offset).unwrap() + 100]
    );
    // The wrong index or the wrong last flag does not open.
    assert_crypto(
        opener
            .open_segment(1, segment, false)
            .map_err(tessera_sharing::Error::from),
    );
    assert_crypto(
        opener
            .open_segment(index, segment, true)
            .map_err(tessera_sharing::Error::from),
    );
    // Cut after a full segment, the stream does not open whole.
    let truncated = &sealed[..usize::try_from(layout.segment_range(2).unwrap().end).unwrap()];
    assert_crypto(open_attachment(&read, &reference, truncated));
}

#[test]
fn rotate_attachments_after_revoke_and_rotate() {
    let w = world();
    let note = ty("Note");
    let (mut entity, opened) = shared_note();
    let data = content(SEGMENT_LEN + 10);
    let (reference, sealed) = attach(&mut entity, &opened, &data);
    let old_p = decrypt(&entity, &w.access(P)).unwrap();

    let mut rotation = revoke_and_rotate(
        &entity,
        &opened,
        &[w.dk(A, P, &note)],
        &w.access(A),
        w.keys(A),
    )
    .unwrap();
    rules::validate_rotation(&entity, &rotation.entity, |k| *k == opened.delegation_key).unwrap();
    let (new_reference, new_sealed) =
        rotate_attachment(&opened, &rotation.opened, &reference, &sealed).unwrap();
    assert_eq!(new_reference.id, reference.id);
    assert_ne!(new_reference.sealed_key, reference.sealed_key);
    assert_eq!(new_reference.encrypted_len, reference.encrypted_len);
    assert_ne!(new_sealed, sealed);

    // Until it is replaced, the old reference no longer opens under the new entity key.
    assert_eq!(
        rotation.entity.attachments,
        std::slice::from_ref(&reference)
    );
    assert_crypto(open_attachment(&rotation.opened, &reference, &sealed));
    // Replaced before the rotation is signed (protocol v2: the references are part of the signed version).
    rotation.entity.attachments = vec![new_reference.clone()];
    let (rotated, rotated_keys) = rotation.sign(w.keys(A)).unwrap();
    assert_eq!(
        open_attachment(&rotated_keys, &new_reference, &new_sealed).unwrap(),
        data
    );

    let by_b = decrypt(&rotated, &w.access(B)).unwrap();
    assert_eq!(by_b.attachments, std::slice::from_ref(&new_reference));
    assert_eq!(
        open_attachment(&by_b, &by_b.attachments[0], &new_sealed).unwrap(),
        data
    );
    // P, revoked, keeps its old opened entity: it does not open the new attachment key or stream.
    assert_crypto(attachment_key(&old_p, &new_reference));
    assert_crypto(open_attachment(&old_p, &new_reference, &new_sealed));
    assert_crypto(open_attachment(&old_p, &reference, &new_sealed));
    // The old entity key cannot be used to rotate again from the new stream.
    assert_crypto(rotate_attachment(
        &old_p,
        &rotated_keys,
        &new_reference,
        &new_sealed,
    ));
}

#[test]
fn attachments_do_not_move_between_entities_or_attachments() {
    let w = world();
    let (mut x, x_opened) = shared_note();
    let (mut y, y_opened) = create_as(
        A,
        Spec {
            autos: vec![w.explicit(A, B, Read)],
            ..Spec::note()
        },
    );
    let (first, first_sealed) = attach(&mut x, &x_opened, &content(500));
    let (second, second_sealed) = attach(&mut x, &x_opened, &content(700));
    let (other, other_sealed) = attach(&mut y, &y_opened, &content(500));
    let x_b = decrypt(&x, &w.access(B)).unwrap();
    let y_b = decrypt(&y, &w.access(B)).unwrap();
    assert!(open_attachment(&x_b, &first, &first_sealed).is_ok());

    // A sealed key moved to another attachment of the same entity.
    let moved_key = AttachmentRef {
        sealed_key: first.sealed_key.clone(),
        ..second.clone()
    };
    assert_crypto(attachment_key(&x_b, &moved_key));
    assert_crypto(open_attachment(&x_b, &moved_key, &first_sealed));
    // A stream moved to another attachment of the same entity.
    assert_crypto(open_attachment(&x_b, &second, &first_sealed));
    assert_crypto(open_attachment(&x_b, &first, &second_sealed));
    // A reference (key and stream) moved to another entity.
    assert_crypto(attachment_key(&y_b, &first));
    assert_crypto(open_attachment(&y_b, &first, &first_sealed));
    assert_crypto(open_attachment(&x_b, &other, &other_sealed));
    // The other entity's stream under this entity's reference.
    assert_crypto(open_attachment(&x_b, &first, &other_sealed));
    // Segment openers refuse the same way.
    assert!(attachment_opener(&x_b, &moved_key, &first_sealed[..HEADER_LEN]).is_err());
    assert!(attachment_opener(&y_b, &first, &first_sealed[..HEADER_LEN]).is_err());
    // Every flipped byte of the sealed key and of the stream.
    for index in 0..first.sealed_key.0.len() {
        let mut flipped = first.clone();
        flipped.sealed_key.0[index] ^= 0x01;
        assert_crypto(open_attachment(&x_b, &flipped, &first_sealed));
    }
    for index in 0..first_sealed.len() {
        let mut flipped = first_sealed.clone();
        flipped[index] ^= 0x01;
        assert_crypto(open_attachment(&x_b, &first, &flipped));
    }
}
