//! RTP fixed header (RFC 3550 §5.1): parse and serialize.
//!
//! The parser trusts only the length of the buffer it is given: the CSRC count and the
//! extension length are checked against it before anything is read, so a hostile header can
//! neither read past the end nor make us allocate.

use thiserror::Error;

/// RTP version this protocol speaks.
pub const RTP_VERSION: u8 = 2;
/// Size of the fixed part of an RTP header.
pub const FIXED_HEADER_LEN: usize = 12;
/// Most CSRCs a header may carry (4-bit count).
pub const MAX_CSRC: usize = 15;

/// Why a buffer is not a valid RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    #[error("packet shorter than the {FIXED_HEADER_LEN}-byte RTP header")]
    Truncated,
    #[error("RTP version {0}, expected 2")]
    BadVersion(u8),
    #[error("CSRC list or header extension runs past the end of the packet")]
    HeaderOverrun,
    #[error("padding length {0} is zero or larger than the payload")]
    BadPadding(u8),
    #[error("output buffer too small")]
    BufferTooSmall,
}

/// The parsed RTP header. CSRCs and the extension body are not interpreted; their bytes are
/// covered by [`RtpHeader::header_len`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Whether the padding bit (P) was set. Padding is counted in the payload end offset.
    pub padding: bool,
    /// Number of CSRC entries present.
    pub csrc_count: u8,
    /// Length of the whole header in bytes: fixed part, CSRCs and extension (if any).
    pub header_len: usize,
}

impl RtpHeader {
    /// A header with no CSRCs, no extension and no padding: the only kind stagebox sends.
    pub fn new(payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32, marker: bool) -> Self {
        RtpHeader {
            marker,
            payload_type: payload_type & 0x7f,
            sequence,
            timestamp,
            ssrc,
            padding: false,
            csrc_count: 0,
            header_len: FIXED_HEADER_LEN,
        }
    }

    /// Parses the header at the start of `buf`, validating every length against `buf.len()`.
    /// Returns the header; the payload is `buf[header.header_len..]` (padding, if the P bit is
    /// set, is left to [`payload_range`]).
    pub fn parse(buf: &[u8]) -> Result<RtpHeader, RtpError> {
        let fixed: &[u8; FIXED_HEADER_LEN] = buf
            .get(..FIXED_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RtpError::Truncated)?;
        let version = fixed[0] >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let padding = fixed[0] & 0x20 != 0;
        let extension = fixed[0] & 0x10 != 0;
        let csrc_count = fixed[0] & 0x0f;
        let marker = fixed[1] & 0x80 != 0;
        let payload_type = fixed[1] & 0x7f;
        let sequence = u16::from_be_bytes([fixed[2], fixed[3]]);
        let timestamp = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let ssrc = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);

        let mut header_len = FIXED_HEADER_LEN + 4 * usize::from(csrc_count);
        if header_len > buf.len() {
            return Err(RtpError::HeaderOverrun);
        }
        if extension {
            let ext: [u8; 4] = buf
                .get(header_len..header_len + 4)
                .and_then(|e| e.try_into().ok())
                .ok_or(RtpError::HeaderOverrun)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            header_len += 4 + 4 * words;
            if header_len > buf.len() {
                return Err(RtpError::HeaderOverrun);
            }
        }
        Ok(RtpHeader {
            marker,
            payload_type,
            sequence,
            timestamp,
            ssrc,
            padding,
            csrc_count,
            header_len,
        })
    }

    /// Writes a header without CSRCs or extension into `out`; returns the bytes written.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, RtpError> {
        let dst: &mut [u8; FIXED_HEADER_LEN] = out
            .get_mut(..FIXED_HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(RtpError::BufferTooSmall)?;
        dst[0] = RTP_VERSION << 6;
        dst[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        dst[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        dst[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        dst[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        Ok(FIXED_HEADER_LEN)
    }
}

/// The byte range of the payload in a plaintext RTP packet, with padding removed.
pub fn payload_range(
    header: &RtpHeader,
    packet: &[u8],
) -> Result<core::ops::Range<usize>, RtpError> {
    let mut end = packet.len();
    if header.padding {
        let pad = *packet.last().ok_or(RtpError::Truncated)?;
        if pad == 0 || usize::from(pad) > end - header.header_len {
            return Err(RtpError::BadPadding(pad));
        }
        end -= usize::from(pad);
    }
    Ok(header.header_len..end)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_fixed_header() {
        let h = RtpHeader::new(120, 0xfffe, 0xdead_beef, 0x0102_0304, true);
        let mut buf = [0u8; 16];
        assert_eq!(h.write(&mut buf).unwrap(), 12);
        assert_eq!(
            &buf[..12],
            &[0x80, 0xf8, 0xff, 0xfe, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4]
        );
        assert_eq!(RtpHeader::parse(&buf).unwrap(), h);
    }

    #[test]
    fn rejects_truncated_and_wrong_version() {
        assert_eq!(RtpHeader::parse(&[0x80; 11]), Err(RtpError::Truncated));
        assert_eq!(RtpHeader::parse(&[]), Err(RtpError::Truncated));
        let mut buf = [0u8; 12];
        buf[0] = 0x40;
        assert_eq!(RtpHeader::parse(&buf), Err(RtpError::BadVersion(1)));
    }

    #[test]
    fn csrc_count_is_checked_against_buffer() {
        let mut buf = [0u8; 12 + 8];
        buf[0] = 0x80 | 3; // claims 3 CSRCs = 12 bytes, only 8 present
        assert_eq!(RtpHeader::parse(&buf), Err(RtpError::HeaderOverrun));
        buf[0] = 0x80 | 2;
        assert_eq!(RtpHeader::parse(&buf).unwrap().header_len, 20);
    }

    #[test]
    fn extension_length_is_checked_against_buffer() {
        let mut buf = vec![0u8; 12 + 4 + 4];
        buf[0] = 0x90;
        buf[12..16].copy_from_slice(&[0xbe, 0xde, 0x00, 0x02]); // 2 words = 8 bytes, 4 present
        assert_eq!(RtpHeader::parse(&buf), Err(RtpError::HeaderOverrun));
        buf[15] = 1;
        assert_eq!(RtpHeader::parse(&buf).unwrap().header_len, 20);
        // Extension header itself missing.
        assert_eq!(RtpHeader::parse(&buf[..14]), Err(RtpError::HeaderOverrun));
        // Maximum extension length claimed in a short packet.
        buf[14] = 0xff;
        buf[15] = 0xff;
        assert_eq!(RtpHeader::parse(&buf), Err(RtpError::HeaderOverrun));
    }

    #[test]
    fn padding_is_validated() {
        let mut buf = vec![0xa0, 120, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 9, 9, 0, 2];
        let h = RtpHeader::parse(&buf).unwrap();
        assert_eq!(payload_range(&h, &buf).unwrap(), 12..14);
        *buf.last_mut().unwrap() = 5;
        assert_eq!(payload_range(&h, &buf), Err(RtpError::BadPadding(5)));
        *buf.last_mut().unwrap() = 0;
        assert_eq!(payload_range(&h, &buf), Err(RtpError::BadPadding(0)));
    }

    #[test]
    fn write_needs_room() {
        let h = RtpHeader::new(120, 1, 2, 3, false);
        assert_eq!(h.write(&mut [0u8; 11]), Err(RtpError::BufferTooSmall));
    }
}
