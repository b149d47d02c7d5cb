//! UDP datagrams either side receives: RTP parsing, padding, and opening with a key. Nothing
//! may panic, and a forged packet must never authenticate.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_proto::media::{MediaKey, Opener, peek};
use stagebox_proto::rtp::{RtpHeader, payload_range};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = RtpHeader::parse(data) {
        assert!(h.header_len <= data.len());
        if let Ok(r) = payload_range(&h, data) {
            assert!(r.start <= r.end && r.end <= data.len());
        }
    }
    let _ = peek(data);
    let mut packet = data.to_vec();
    let mut opener = Opener::new(&MediaKey([7; 32]));
    assert!(opener.open(&mut packet).is_err(), "forged packet authenticated");
});
