//! Streaming AEAD: round trips through every API, random access, and detection of truncation,
//! reordering, duplication and extension.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

use std::io::{Read, Write};

use tessera_primitives::stream::{
    self, ENCRYPTED_SEGMENT_LEN, HEADER_LEN, SEGMENT_LEN, StreamLayout, StreamOpener, StreamReader,
    StreamSealer, StreamWriter,
};
use tessera_primitives::{AeadKey, Error, Secret32};

const AAD: &[u8] = b"entity-1|attachment-7";

fn key() -> AeadKey {
    AeadKey::from_secret(Secret32::from_bytes([0x5a; 32]))
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn via_writer(plaintext: &[u8], chunk: usize) -> Vec<u8> {
    let mut writer = StreamWriter::new(key(), AAD, Vec::new()).unwrap();
    for piece in plaintext.chunks(chunk.max(1)) {
        writer.write_all(piece).unwrap();
    }
    writer.finish().unwrap()
}

fn via_reader(sealed: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut reader = StreamReader::new(key(), AAD, sealed)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out)?;
    Ok(out)
}

/// Both whole-stream openers must reject `sealed` with the opaque error.
fn assert_rejected(sealed: &[u8], what: &str) {
    assert!(
        matches!(stream::open_all(key(), AAD, sealed), Err(Error::Crypto)),
        "open_all accepted {what}"
    );
    let err = via_reader(sealed).expect_err(what);
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{what}: {err}");
    let inner = err.into_inner().and_then(|e| e.downcast::<Error>().ok());
    assert!(matches!(inner.as_deref(), Some(Error::Crypto)), "{what}");
}

const SIZES: [usize; 9] = [
    0,
    1,
    SEGMENT_LEN - 1,
    SEGMENT_LEN,
    SEGMENT_LEN + 1,
    2 * SEGMENT_LEN,
    2 * SEGMENT_LEN + 17,
    3 * SEGMENT_LEN - 1,
    1 << 20,
];

#[test]
fn every_api_round_trips_and_agrees_on_length() {
    for len in SIZES {
        let plaintext = data(len);
        for chunk in [1000, SEGMENT_LEN, 3 * SEGMENT_LEN] {
            let written = via_writer(&plaintext, chunk);
            assert_eq!(
                written.len() as u64,
                stream::encrypted_len(len as u64),
                "len {len}"
            );
            assert_eq!(via_reader(&written).unwrap(), plaintext, "len {len}");
            assert_eq!(stream::open_all(key(), AAD, &written).unwrap(), plaintext);
        }
        let sealed = stream::seal_all(key(), AAD, &plaintext).unwrap();
        assert_eq!(sealed.len() as u64, stream::encrypted_len(len as u64));
        assert_eq!(via_reader(&sealed).unwrap(), plaintext);
        let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
        assert_eq!(
            u64::from(layout.segments()),
            stream::segment_count(len as u64)
        );
        assert_eq!(layout.plaintext_len(), len as u64, "len {len}");
    }
}

#[test]
fn any_segment_opens_alone() {
    let plaintext = data(3 * SEGMENT_LEN + 1234);
    let sealed = stream::seal_all(key(), AAD, &plaintext).unwrap();
    let layout = StreamLayout::from_encrypted_len(sealed.len() as u64).unwrap();
    assert_eq!(layout.segments(), 4);
    let opener = StreamOpener::new(key(), &sealed[..HEADER_LEN], AAD).unwrap();
    for index in [2, 0, 3, 1] {
        let range = layout.segment_range(index).unwrap();
        let segment = &sealed[range.start as usize..range.end as usize];
        let opened = opener
            .open_segment(index, segment, layout.is_last(index))
            .unwrap();
        let start = index as usize * SEGMENT_LEN;
        assert_eq!(
            opened,
            plaintext[start..(start + SEGMENT_LEN).min(plaintext.len())]
        );
        // The wrong index or the wrong `last` flag fails.
        assert!(matches!(
            opener.open_segment(index + 1, segment, layout.is_last(index)),
            Err(Error::Crypto)
        ));
        assert!(matches!(
            opener.open_segment(index, segment, !layout.is_last(index)),
            Err(Error::Crypto)
        ));
    }
    assert_eq!(layout.segment_range(4), None);
    assert_eq!(
        StreamLayout::segment_of_plaintext_offset(2 * SEGMENT_LEN as u64 + 5),
        2
    );
}

#[test]
fn segment_api_can_be_driven_by_hand() {
    let plaintext = data(SEGMENT_LEN + 10);
    let mut sealer = StreamSealer::new(key(), AAD).unwrap();
    let mut sealed = sealer.header().to_vec();
    sealed.extend(
        sealer
            .seal_segment(&plaintext[..SEGMENT_LEN], false)
            .unwrap(),
    );
    assert_eq!(sealer.next_index(), 1);
    let mut last = plaintext[SEGMENT_LEN..].to_vec();
    sealer.seal_segment_in_place(&mut last, true).unwrap();
    sealed.extend(last);
    assert_eq!(stream::open_all(key(), AAD, &sealed).unwrap(), plaintext);

    // Misuse is refused: short non-last segments, oversized segments, anything after the last.
    let mut sealer = StreamSealer::new(key(), AAD).unwrap();
    assert!(matches!(
        sealer.seal_segment(&[0; 10], false),
        Err(Error::StreamState(_))
    ));
    assert!(matches!(
        sealer.seal_segment(&vec![0; SEGMENT_LEN + 1], true),
        Err(Error::Length { .. })
    ));
    sealer.seal_segment(b"end", true).unwrap();
    assert!(matches!(
        sealer.seal_segment(b"more", true),
        Err(Error::StreamState(_))
    ));
    assert!(matches!(
        sealer.seal_whole(b"again"),
        Err(Error::StreamState(_))
    ));

    // A fresh sealer seals a whole plaintext as the segment API does, under its own header.
    let sealer = StreamSealer::new(key(), AAD).unwrap();
    let header = sealer.header();
    let whole = sealer.seal_whole(&plaintext).unwrap();
    assert_eq!(whole[..HEADER_LEN], header);
    assert_eq!(stream::open_all(key(), AAD, &whole).unwrap(), plaintext);
    let mut started = StreamSealer::new(key(), AAD).unwrap();
    started
        .seal_segment(&plaintext[..SEGMENT_LEN], false)
        .unwrap();
    assert!(matches!(
        started.seal_whole(&plaintext),
        Err(Error::StreamState(_))
    ));
}

#[test]
fn wrong_key_or_aad_fails() {
    let sealed = stream::seal_all(key(), AAD, &data(100)).unwrap();
    assert!(matches!(
        stream::open_all(AeadKey::generate().unwrap(), AAD, &sealed),
        Err(Error::Crypto)
    ));
    assert!(matches!(
        stream::open_all(key(), b"other attachment", &sealed),
        Err(Error::Crypto)
    ));
}

#[test]
fn truncation_is_detected() {
    let sealed = stream::seal_all(key(), AAD, &data(3 * SEGMENT_LEN + 100)).unwrap();
    let boundaries = [
        HEADER_LEN + ENCRYPTED_SEGMENT_LEN,
        HEADER_LEN + 2 * ENCRYPTED_SEGMENT_LEN,
        HEADER_LEN + 3 * ENCRYPTED_SEGMENT_LEN,
    ];
    for cut in boundaries.into_iter().chain([
        0,
        1,
        HEADER_LEN,
        HEADER_LEN + 15,
        HEADER_LEN + 16,
        100_000,
        sealed.len() - 1,
    ]) {
        assert_rejected(&sealed[..cut], &format!("stream cut at {cut}"));
    }
    // A stream whose length is an exact number of full segments: dropping the last one leaves a stream
    // that ends on a segment sealed as "not last".
    let exact = stream::seal_all(key(), AAD, &data(2 * SEGMENT_LEN)).unwrap();
    assert_rejected(
        &exact[..HEADER_LEN + ENCRYPTED_SEGMENT_LEN],
        "exact stream minus its last segment",
    );
}

fn segments(sealed: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let header = sealed[..HEADER_LEN].to_vec();
    let segs = sealed[HEADER_LEN..]
        .chunks(ENCRYPTED_SEGMENT_LEN)
        .map(<[u8]>::to_vec)
        .collect();
    (header, segs)
}

#[test]
fn reordering_duplication_and_extension_are_detected() {
    let sealed = stream::seal_all(key(), AAD, &data(3 * SEGMENT_LEN)).unwrap();
    let (header, segs) = segments(&sealed);
    let build = |order: &[usize]| -> Vec<u8> {
        let mut out = header.clone();
        for i in order {
            out.extend_from_slice(&segs[*i]);
        }
        out
    };
    assert_eq!(
        stream::open_all(key(), AAD, &build(&[0, 1, 2])).unwrap(),
        data(3 * SEGMENT_LEN)
    );
    for order in [
        &[1, 0, 2][..],
        &[0, 2, 1],
        &[0, 0, 1, 2],
        &[0, 1, 1, 2],
        &[0, 1, 2, 2],
        &[0, 1, 2, 0],
        &[0, 2],
    ] {
        assert_rejected(&build(order), &format!("segments in order {order:?}"));
    }
    // Extending with bytes or with a segment of another stream under the same key fails too.
    let mut extended = sealed.clone();
    extended.extend_from_slice(&[0; 20]);
    assert_rejected(&extended, "stream with trailing bytes");
    let other = stream::seal_all(key(), AAD, &data(10)).unwrap();
    let mut spliced = sealed.clone();
    spliced.extend_from_slice(&other[HEADER_LEN..]);
    assert_rejected(&spliced, "stream with another stream's segment appended");
    // A header from another stream under the same key does not fit these segments.
    let mut other_header = other[..HEADER_LEN].to_vec();
    other_header.extend_from_slice(&sealed[HEADER_LEN..]);
    assert_rejected(&other_header, "stream with another stream's header");
}

#[test]
fn reader_returns_no_plaintext_of_a_failed_segment() {
    let plaintext = data(2 * SEGMENT_LEN + 5);
    let mut sealed = stream::seal_all(key(), AAD, &plaintext).unwrap();
    let target = HEADER_LEN + ENCRYPTED_SEGMENT_LEN + 7;
    sealed[target] ^= 1;
    let mut reader = StreamReader::new(key(), AAD, &sealed[..]).unwrap();
    let mut out = vec![0; SEGMENT_LEN];
    reader.read_exact(&mut out).unwrap();
    assert_eq!(out, plaintext[..SEGMENT_LEN]);
    let mut rest = Vec::new();
    assert!(reader.read_to_end(&mut rest).is_err());
    assert!(rest.is_empty());
}
