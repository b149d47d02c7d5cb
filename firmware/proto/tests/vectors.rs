//! Checks the test vectors printed in docs/protocol.md against this implementation, both
//! ways: sealing the inputs gives the printed bytes, opening the printed bytes gives the inputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use stagebox_proto::media::{MediaKey, Opener, Sealer};
use stagebox_proto::rtp::RtpHeader;

const SPEC: &str = include_str!("../../../docs/protocol.md");

struct Vector {
    key: MediaKey,
    header: Vec<u8>,
    payload: Vec<u8>,
    counter: u32,
    sealed: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    for block in SPEC.split("```vector").skip(1) {
        let body = block.split("```").next().unwrap();
        let field = |name: &str| -> String {
            body.lines()
                .find_map(|l| {
                    let mut parts = l.split_whitespace();
                    (parts.next() == Some(name)).then(|| parts.next().unwrap_or("").to_string())
                })
                .unwrap_or_else(|| panic!("vector lacks {name}"))
        };
        out.push(Vector {
            key: MediaKey::from_hex(&field("key")).unwrap(),
            header: hex::decode(field("header")).unwrap(),
            payload: hex::decode(field("payload")).unwrap(),
            counter: field("counter").parse().unwrap(),
            sealed: hex::decode(field("sealed")).unwrap(),
        });
    }
    out
}

#[test]
fn spec_has_vectors() {
    assert_eq!(vectors().len(), 2);
}

#[test]
fn sealing_gives_the_printed_bytes() {
    for v in vectors() {
        let header = RtpHeader::parse(&v.header).unwrap();
        let mut sealer = Sealer::starting_at(&v.key, v.counter);
        let mut out = [0u8; 256];
        let n = sealer.seal(&header, &v.payload, &mut out).unwrap();
        assert_eq!(hex::encode(&out[..n]), hex::encode(&v.sealed));
    }
}

/// §6.4's example: writing the blocks gives the printed payload, parsing it gives the blocks.
#[test]
fn redundant_audio_example() {
    use stagebox_proto::red::{Block, RedPayload, write};
    let body = SPEC
        .split("```red")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let field = |name: &str| -> Vec<&str> {
        body.lines()
            .find_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next() == Some(name)).then(|| parts.collect())
            })
            .unwrap_or_else(|| panic!("example lacks {name}"))
    };
    let timestamp: u32 = field("timestamp")[0].parse().unwrap();
    let blocks: Vec<(u32, Vec<u8>)> = field("blocks")
        .iter()
        .map(|b| {
            let (ts, bytes) = b.split_once(':').unwrap();
            (ts.parse().unwrap(), hex::decode(bytes).unwrap())
        })
        .collect();
    let payload = hex::decode(field("payload")[0]).unwrap();
    fn block((ts, bytes): &(u32, Vec<u8>)) -> Block<'_> {
        Block {
            payload_type: stagebox_proto::PT_OPUS,
            timestamp: *ts,
            payload: bytes,
        }
    }
    let (primary, earlier) = blocks.split_last().unwrap();
    let earlier: Vec<Block> = earlier.iter().map(block).collect();
    let mut out = [0u8; 64];
    let n = write(&block(primary), &earlier, &mut out).unwrap();
    assert_eq!(hex::encode(&out[..n]), hex::encode(&payload));
    let parsed = RedPayload::parse(&payload, timestamp).unwrap();
    assert_eq!(parsed.primary(), block(primary));
    assert!(parsed.redundant().eq(earlier.into_iter()));
}

#[test]
fn opening_gives_the_inputs() {
    for v in vectors() {
        let mut packet = v.sealed.clone();
        let opened = Opener::new(&v.key).open(&mut packet).unwrap();
        assert_eq!(opened.counter, v.counter);
        assert_eq!(&packet[..opened.header.header_len], &v.header[..]);
        assert_eq!(&packet[opened.payload], &v.payload[..]);
    }
}
