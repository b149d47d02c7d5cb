//! Redundant audio (RFC 2198): one RTP payload carrying the current Opus frame (the
//! *primary*) and copies of the frames before it, so a listener who lost a packet finds its
//! frame, at full quality, in the next one or the one after.
//!
//! ```text
//! redundant block header (4 bytes):   |1| PT (7) | timestamp offset (14) | block length (10) |
//! primary block header (1 byte):      |0| PT (7) |
//! then the blocks' bytes in header order: redundant blocks oldest first, the primary last.
//! ```
//!
//! A block's timestamp is the RTP header's (the primary's) minus its offset. Every length is
//! checked against the buffer before anything is read; parsing allocates nothing.

use thiserror::Error;

/// RTP payload type of redundant audio whose blocks are all Opus.
pub const PT_RED: u8 = 122;
/// Most redundant blocks stagebox sends (frames n−1 to n−3).
pub const MAX_REDUNDANT_SENT: usize = 3;
/// Most redundant blocks a parser accepts.
pub const MAX_REDUNDANT_BLOCKS: usize = 4;
/// Largest timestamp offset a block header can say (14 bits).
pub const MAX_TIMESTAMP_OFFSET: u32 = (1 << 14) - 1;
/// Largest redundant block (10 bits).
pub const MAX_BLOCK_LEN: usize = (1 << 10) - 1;

const REDUNDANT_HEADER_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RedError {
    #[error("redundant payload ends inside a block header")]
    TruncatedHeader,
    #[error("more than {MAX_REDUNDANT_BLOCKS} redundant blocks")]
    TooManyBlocks,
    #[error("block lengths run past the end of the payload")]
    TruncatedBlock,
    #[error("a redundant block is empty, too long, or too far back")]
    BadBlock,
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// One block: its payload type, RTP timestamp and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    pub payload_type: u8,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct BlockAt {
    payload_type: u8,
    offset: u32,
    start: usize,
    len: usize,
}

/// A parsed redundant payload: borrows the bytes, holds only offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedPayload<'a> {
    bytes: &'a [u8],
    timestamp: u32,
    redundant: [BlockAt; MAX_REDUNDANT_BLOCKS],
    redundant_count: usize,
    primary: BlockAt,
}

impl<'a> RedPayload<'a> {
    /// Parses `bytes`, the payload of a packet whose RTP timestamp is `timestamp`.
    pub fn parse(bytes: &'a [u8], timestamp: u32) -> Result<RedPayload<'a>, RedError> {
        let mut redundant = [BlockAt::default(); MAX_REDUNDANT_BLOCKS];
        let mut count = 0;
        let mut pos = 0;
        loop {
            let first = *bytes.get(pos).ok_or(RedError::TruncatedHeader)?;
            if first & 0x80 == 0 {
                pos += 1;
                break;
            }
            let h: [u8; REDUNDANT_HEADER_LEN] = bytes
                .get(pos..pos + REDUNDANT_HEADER_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(RedError::TruncatedHeader)?;
            let slot = redundant.get_mut(count).ok_or(RedError::TooManyBlocks)?;
            *slot = BlockAt {
                payload_type: first & 0x7f,
                offset: (u32::from(h[1]) << 6) | (u32::from(h[2]) >> 2),
                start: 0,
                len: (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]),
            };
            count += 1;
            pos += REDUNDANT_HEADER_LEN;
        }
        let primary_type = bytes.get(pos - 1).map_or(0, |b| b & 0x7f);
        for block in redundant.iter_mut().take(count) {
            if block.len == 0 || block.offset == 0 {
                return Err(RedError::BadBlock);
            }
            block.start = pos;
            pos += block.len;
        }
        if pos > bytes.len() {
            return Err(RedError::TruncatedBlock);
        }
        Ok(RedPayload {
            bytes,
            timestamp,
            redundant,
            redundant_count: count,
            primary: BlockAt {
                payload_type: primary_type,
                offset: 0,
                start: pos,
                len: bytes.len() - pos,
            },
        })
    }

    fn block(&self, at: &BlockAt) -> Block<'a> {
        Block {
            payload_type: at.payload_type,
            timestamp: self.timestamp.wrapping_sub(at.offset),
            payload: self.bytes.get(at.start..at.start + at.len).unwrap_or(&[]),
        }
    }

    /// The current frame.
    pub fn primary(&self) -> Block<'a> {
        self.block(&self.primary)
    }

    /// Where the primary block lies in the parsed bytes.
    pub fn primary_range(&self) -> core::ops::Range<usize> {
        self.primary.start..self.primary.start + self.primary.len
    }

    /// How many earlier frames the payload carries.
    pub fn redundant_count(&self) -> usize {
        self.redundant_count
    }

    /// The earlier frames, oldest first.
    pub fn redundant(&self) -> impl Iterator<Item = Block<'a>> + '_ {
        self.redundant
            .iter()
            .take(self.redundant_count)
            .map(|b| self.block(b))
    }

    /// The redundant copy of the frame with RTP timestamp `timestamp`, if carried.
    pub fn find(&self, timestamp: u32) -> Option<Block<'a>> {
        self.redundant().find(|b| b.timestamp == timestamp)
    }

    /// Where the redundant copy of the frame at `timestamp` lies in the parsed bytes.
    pub fn find_range(&self, timestamp: u32) -> Option<core::ops::Range<usize>> {
        self.redundant
            .iter()
            .take(self.redundant_count)
            .find(|b| self.timestamp.wrapping_sub(b.offset) == timestamp)
            .map(|b| b.start..b.start + b.len)
    }

    /// Whether every block (redundant and primary) has payload type `pt`.
    pub fn all_of_type(&self, pt: u8) -> bool {
        self.primary.payload_type == pt && self.redundant().all(|b| b.payload_type == pt)
    }
}

/// Gives every block of the redundant payload `bytes` the payload type `pt`, in place: a
/// payload forwarded from a peer that numbers Opus differently. Nothing changes when it does
/// not parse.
pub fn retype(bytes: &mut [u8], pt: u8) -> Result<(), RedError> {
    let count = RedPayload::parse(bytes, 0)?.redundant_count();
    for i in 0..count {
        if let Some(b) = bytes.get_mut(i * REDUNDANT_HEADER_LEN) {
            *b = 0x80 | (pt & 0x7f);
        }
    }
    if let Some(b) = bytes.get_mut(count * REDUNDANT_HEADER_LEN) {
        *b = pt & 0x7f;
    }
    Ok(())
}

/// Whether a frame at `timestamp` can travel as a redundant block of a packet at `primary`.
pub fn fits_as_redundant(block: &Block<'_>, primary: u32) -> bool {
    let offset = primary.wrapping_sub(block.timestamp);
    (1..=MAX_TIMESTAMP_OFFSET).contains(&offset)
        && (1..=MAX_BLOCK_LEN).contains(&block.payload.len())
}

/// Writes a redundant payload: `redundant` (oldest first, each passing
/// [`fits_as_redundant`]) and then `primary`, whose timestamp the packet's RTP header
/// carries. Returns the length written.
pub fn write(
    primary: &Block<'_>,
    redundant: &[Block<'_>],
    out: &mut [u8],
) -> Result<usize, RedError> {
    if redundant.len() > MAX_REDUNDANT_BLOCKS {
        return Err(RedError::TooManyBlocks);
    }
    let headers = redundant.len() * REDUNDANT_HEADER_LEN + 1;
    let total =
        headers + redundant.iter().map(|b| b.payload.len()).sum::<usize>() + primary.payload.len();
    let out = out.get_mut(..total).ok_or(RedError::BufferTooSmall)?;
    let (head, mut body) = out.split_at_mut(headers);
    let mut h = 0;
    for b in redundant {
        if !fits_as_redundant(b, primary.timestamp) {
            return Err(RedError::BadBlock);
        }
        let offset = primary.timestamp.wrapping_sub(b.timestamp);
        let len = b.payload.len();
        let header = [
            0x80 | (b.payload_type & 0x7f),
            (offset >> 6) as u8,
            (((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8 & 0x03),
            (len & 0xff) as u8,
        ];
        head.get_mut(h..h + REDUNDANT_HEADER_LEN)
            .ok_or(RedError::BufferTooSmall)?
            .copy_from_slice(&header);
        h += REDUNDANT_HEADER_LEN;
        let (dst, rest) = body.split_at_mut(len);
        dst.copy_from_slice(b.payload);
        body = rest;
    }
    *head.get_mut(h).ok_or(RedError::BufferTooSmall)? = primary.payload_type & 0x7f;
    body.copy_from_slice(primary.payload);
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    const OPUS: u8 = 120;

    fn block(ts: u32, payload: &[u8]) -> Block<'_> {
        Block {
            payload_type: OPUS,
            timestamp: ts,
            payload,
        }
    }

    /// Frame "third" after copies of "first" and "second!", into `out`: the length.
    fn three_frames(out: &mut [u8]) -> usize {
        write(
            &block(2880, b"third"),
            &[block(960, b"first"), block(1920, b"second!")],
            out,
        )
        .unwrap()
    }

    #[test]
    fn round_trips_primary_and_two_earlier_frames() {
        let mut out = [0u8; 64];
        let n = three_frames(&mut out);
        assert_eq!(n, 4 + 4 + 1 + 5 + 7 + 5);
        let red = RedPayload::parse(&out[..n], 2880).unwrap();
        assert_eq!(red.primary(), block(2880, b"third"));
        assert_eq!(red.redundant_count(), 2);
        let earlier: Vec<_> = red.redundant().collect();
        assert_eq!(earlier, vec![block(960, b"first"), block(1920, b"second!")]);
        assert_eq!(red.find(1920), Some(block(1920, b"second!")));
        assert_eq!(red.find(0), None);
        assert_eq!(&out[red.find_range(960).unwrap()], b"first");
        assert!(red.all_of_type(OPUS));
        assert_eq!(&out[red.primary_range()], b"third");
    }

    #[test]
    fn matches_the_rfc_2198_layout() {
        // RFC 2198 §3 example shape: one redundant block, offset 960, 3 bytes, PT 120.
        let mut out = [0u8; 16];
        let n = write(&block(10_000, b"P"), &[block(9_040, b"abc")], &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[0x80 | 120, 15, 0, 3, 120, b'a', b'b', b'c', b'P']
        );
        // No redundancy at all: one header byte, then the primary.
        let n = write(&block(5, b"xy"), &[], &mut out).unwrap();
        assert_eq!(&out[..n], &[120, b'x', b'y']);
        let red = RedPayload::parse(&out[..n], 5).unwrap();
        assert_eq!(
            (red.redundant_count(), red.primary().payload),
            (0, &b"xy"[..])
        );
    }

    #[test]
    fn retyping_changes_every_block_type_and_nothing_else() {
        let mut out = [0u8; 64];
        let n = three_frames(&mut out);
        retype(&mut out[..n], 111).unwrap();
        let red = RedPayload::parse(&out[..n], 2880).unwrap();
        assert!(red.all_of_type(111));
        assert_eq!(red.primary().payload, b"third");
        let earlier: Vec<_> = red.redundant().map(|b| (b.timestamp, b.payload)).collect();
        assert_eq!(earlier, vec![(960, &b"first"[..]), (1920, &b"second!"[..])]);
        let mut garbage = [0x80u8, 1, 2];
        assert!(retype(&mut garbage, 111).is_err());
        assert_eq!(garbage, [0x80, 1, 2], "left as it was");
    }

    #[test]
    fn timestamps_wrap() {
        let mut out = [0u8; 16];
        let n = write(
            &block(100, b"p"),
            &[block(100u32.wrapping_sub(960), b"r")],
            &mut out,
        )
        .unwrap();
        let red = RedPayload::parse(&out[..n], 100).unwrap();
        assert_eq!(
            red.redundant().next().unwrap().timestamp,
            100u32.wrapping_sub(960)
        );
    }

    #[test]
    fn refuses_what_does_not_fit_the_headers() {
        let mut out = [0u8; 2048];
        let too_far = block(0, b"r");
        assert_eq!(
            write(&block(20_000, b"p"), &[too_far], &mut out),
            Err(RedError::BadBlock)
        );
        let big = [0u8; MAX_BLOCK_LEN + 1];
        assert_eq!(
            write(&block(960, b"p"), &[block(0, &big)], &mut out),
            Err(RedError::BadBlock)
        );
        assert_eq!(
            write(&block(960, b"p"), &[block(960, b"r")], &mut out),
            Err(RedError::BadBlock)
        );
        assert_eq!(
            write(&block(960, b"p"), &[block(0, b"r")], &mut out[..3]),
            Err(RedError::BufferTooSmall)
        );
    }

    #[test]
    fn hostile_payloads_are_refused_without_reading_past_the_end() {
        for (bytes, err) in [
            (&[][..], RedError::TruncatedHeader),
            (&[0x80, 1, 2][..], RedError::TruncatedHeader),
            (
                &[0x80 | 120, 15, 0, 9, 120, 1, 2][..],
                RedError::TruncatedBlock,
            ),
            (&[0x80 | 120, 0, 0, 1, 120, 1][..], RedError::BadBlock),
            (&[0x80 | 120, 15, 0, 0, 120][..], RedError::BadBlock),
            (&[0xff; 40][..], RedError::TooManyBlocks),
        ] {
            assert_eq!(RedPayload::parse(bytes, 0), Err(err), "{bytes:?}");
        }
        // A primary of another payload type parses, but is not all Opus.
        let red = RedPayload::parse(&[0x80 | 120, 15, 0, 1, 7, 1, 2], 0).unwrap();
        assert!(!red.all_of_type(OPUS));
    }
}
