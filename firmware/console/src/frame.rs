//! Machine frames on the console line, after MCUmgr's SMP over a serial console: a packet
//! (a two-byte big-endian length, the body, a CRC-16/XMODEM of the body) is written in
//! base64, cut into newline-terminated lines of at most [`MAX_LINE`] bytes; the first line
//! starts with [`START`], the next ones with [`CONTINUE`]. Neither marker is text a person
//! types or a log prints, so one line carries the human shell and the host tool's frames,
//! and neither is confused by the other.
//!
//! ```text
//! 06 09 base64(len_hi len_lo body… crc_hi crc_lo)[..121] \n
//! 04 14 base64(…)[121..] \n
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use thiserror::Error;

/// The first line of a packet starts with these two bytes.
pub const START: [u8; 2] = [0x06, 0x09];
/// Every further line of a packet starts with these two bytes.
pub const CONTINUE: [u8; 2] = [0x04, 0x14];
/// A frame line's longest, with its marker and newline.
pub const MAX_LINE: usize = 127;
/// Base64 characters on one line: what fits, in whole 4-character groups.
const LINE_B64: usize = (MAX_LINE - 3) / 4 * 4;
/// The longest body a packet carries (a bundle travels in many packets).
pub const MAX_BODY: usize = 4096;

const CRC: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The CRC-16/XMODEM of `bytes` (the check value of `123456789` is `0x31c3`).
pub fn crc16(bytes: &[u8]) -> u16 {
    CRC.checksum(bytes)
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("a frame body of {0} bytes is over the {MAX_BODY}-byte limit")]
    TooLong(usize),
    #[error("a frame line is not base64")]
    NotBase64,
    #[error("a continuation line came without a first line")]
    NoStart,
    #[error("a frame says it is {0} bytes long: too short to hold its checksum")]
    TooShort(usize),
    #[error("a frame's checksum does not match (sent {sent:04x}, computed {computed:04x})")]
    Checksum { sent: u16, computed: u16 },
    #[error("a frame ran past the length it announced")]
    Overrun,
    #[error("a frame line is over {MAX_LINE} bytes")]
    LineTooLong,
}

/// The lines that carry `body` (at most [`MAX_BODY`] bytes), appended to `out`.
pub fn encode(body: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    if body.len() > MAX_BODY {
        return Err(FrameError::TooLong(body.len()));
    }
    let len = u16::try_from(body.len() + 2).map_err(|_| FrameError::TooLong(body.len()))?;
    let mut packet = Vec::with_capacity(body.len() + 4);
    packet.extend_from_slice(&len.to_be_bytes());
    packet.extend_from_slice(body);
    packet.extend_from_slice(&crc16(body).to_be_bytes());
    let text = STANDARD.encode(&packet);
    for (i, chunk) in text.as_bytes().chunks(LINE_B64).enumerate() {
        out.extend_from_slice(if i == 0 { &START } else { &CONTINUE });
        out.extend_from_slice(chunk);
        out.push(b'\n');
    }
    Ok(())
}

/// Reassembles packets from frame lines (each without its newline, marker first).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    /// The packet so far (length, body, checksum), or `None` between packets.
    packet: Option<Vec<u8>>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// One frame line. A whole packet gives its body; a line that breaks the packet drops
    /// it (the host sends it again) and says why.
    pub fn handle_line(&mut self, line: &[u8]) -> Result<Option<Vec<u8>>, FrameError> {
        let (first, text) = match line {
            [a, b, rest @ ..] if [*a, *b] == START => (true, rest),
            [a, b, rest @ ..] if [*a, *b] == CONTINUE => (false, rest),
            _ => return Err(FrameError::NoStart),
        };
        let mut packet = match (first, self.packet.take()) {
            (true, _) => Vec::new(),
            (false, Some(p)) => p,
            (false, None) => return Err(FrameError::NoStart),
        };
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.len() > LINE_B64 {
            return Err(FrameError::LineTooLong);
        }
        STANDARD
            .decode_vec(text, &mut packet)
            .map_err(|_| FrameError::NotBase64)?;
        let Some(len) = packet
            .get(..2)
            .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
        else {
            self.packet = Some(packet);
            return Ok(None);
        };
        if len < 2 {
            return Err(FrameError::TooShort(len));
        }
        if len - 2 > MAX_BODY {
            return Err(FrameError::TooLong(len - 2));
        }
        match (packet.len() - 2).cmp(&len) {
            std::cmp::Ordering::Less => {
                self.packet = Some(packet);
                Ok(None)
            }
            std::cmp::Ordering::Greater => Err(FrameError::Overrun),
            std::cmp::Ordering::Equal => {
                let crc_at = packet.len() - 2;
                let sent = u16::from_be_bytes([packet[crc_at], packet[crc_at + 1]]);
                packet.truncate(crc_at);
                packet.drain(..2);
                let computed = crc16(&packet);
                if sent != computed {
                    return Err(FrameError::Checksum { sent, computed });
                }
                Ok(Some(packet))
            }
        }
    }

    /// Forgets a packet half received (the line broke, the cable was pulled).
    pub fn reset(&mut self) {
        self.packet = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(bytes: &[u8]) -> Vec<&[u8]> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn the_checksum_is_crc16_xmodem() {
        assert_eq!(crc16(b"123456789"), 0x31c3);
    }

    #[test]
    fn the_documented_vector_holds() {
        // docs/console.md
        let body = br#"{"id":1,"line":"status"}"#;
        assert_eq!(crc16(body), 0x9d34);
        let mut out = Vec::new();
        encode(body, &mut out).unwrap();
        assert_eq!(out, b"\x06\x09ABp7ImlkIjoxLCJsaW5lIjoic3RhdHVzIn2dNA==\n");
    }

    #[test]
    fn a_known_packet_is_written_as_mcumgr_writes_it() {
        let mut out = Vec::new();
        encode(b"hi", &mut out).unwrap();
        // len 0x0004, "hi", crc16("hi")
        let crc = crc16(b"hi").to_be_bytes();
        let expected = STANDARD.encode([0, 4, b'h', b'i', crc[0], crc[1]]);
        assert_eq!(out, [&START[..], expected.as_bytes(), b"\n"].concat());
    }

    #[test]
    fn every_size_goes_and_comes_back_in_lines_no_longer_than_the_limit() {
        for size in [0, 1, 2, 3, 90, 91, 92, 93, 500, MAX_BODY] {
            let body: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
            let mut out = Vec::new();
            encode(&body, &mut out).unwrap();
            let mut decoder = FrameDecoder::new();
            let mut got = None;
            let all = lines(&out);
            for (i, line) in all.iter().enumerate() {
                assert!(line.len() < MAX_LINE, "{size}: {} bytes", line.len());
                let marker = if i == 0 { START } else { CONTINUE };
                assert_eq!(line[..2], marker);
                let r = decoder.handle_line(line).unwrap();
                assert_eq!(r.is_some(), i == all.len() - 1, "{size}: line {i}");
                got = got.or(r);
            }
            assert_eq!(got.unwrap(), body, "{size}");
        }
        assert_eq!(
            encode(&vec![0; MAX_BODY + 1], &mut Vec::new()),
            Err(FrameError::TooLong(MAX_BODY + 1))
        );
    }

    #[test]
    fn a_flipped_bit_a_lost_line_or_a_stray_continuation_is_refused() {
        let body: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        encode(&body, &mut out).unwrap();
        let all: Vec<Vec<u8>> = lines(&out).iter().map(|l| l.to_vec()).collect();
        assert!(all.len() >= 4);

        let mut d = FrameDecoder::new();
        let mut bad = all.clone();
        bad[2][10] = if bad[2][10] == b'A' { b'B' } else { b'A' };
        let mut last = Ok(None);
        for l in &bad {
            last = d.handle_line(l);
        }
        assert!(matches!(last, Err(FrameError::Checksum { .. })), "{last:?}");

        // A lost middle line: the packet comes up short, then a new one starts cleanly.
        let mut d = FrameDecoder::new();
        for (i, l) in all.iter().enumerate() {
            if i != 1 {
                assert_eq!(d.handle_line(l), Ok(None), "line {i}");
            }
        }
        for l in &all {
            last = d.handle_line(l);
        }
        assert_eq!(last, Ok(Some(body)));

        let mut d = FrameDecoder::new();
        assert_eq!(d.handle_line(&all[1]), Err(FrameError::NoStart));
        assert_eq!(d.handle_line(b"\x06\x09!!!!"), Err(FrameError::NotBase64));
        assert_eq!(d.handle_line(b"hello"), Err(FrameError::NoStart));
        // A length that cannot hold a checksum, and one over the limit.
        let short = STANDARD.encode([0u8, 1, 0, 0]);
        assert_eq!(
            d.handle_line(&[&START[..], short.as_bytes()].concat()),
            Err(FrameError::TooShort(1))
        );
        let long = STANDARD.encode([0xffu8, 0xff, 0, 0]);
        assert_eq!(
            d.handle_line(&[&START[..], long.as_bytes()].concat()),
            Err(FrameError::TooLong(0xffff - 2))
        );
    }
}
