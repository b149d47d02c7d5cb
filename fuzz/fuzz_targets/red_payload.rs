//! Redundant audio payloads (RFC 2198) as a listener or the server receives them: parsing
//! must never read past the end or panic, every block it finds lies inside the bytes, and
//! what parses writes back to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_proto::red::{RedPayload, write};

fuzz_target!(|data: &[u8]| {
    let Some((ts_bytes, payload)) = data.split_first_chunk::<4>() else {
        return;
    };
    let ts = u32::from_le_bytes(*ts_bytes);
    let Ok(red) = RedPayload::parse(payload, ts) else {
        return;
    };
    let range = red.primary_range();
    assert!(range.start <= range.end && range.end <= payload.len());
    let earlier: Vec<_> = red.redundant().collect();
    for b in &earlier {
        let r = red.find_range(b.timestamp).expect("a block's own timestamp finds a block");
        assert!(r.end <= range.start);
    }
    let mut out = vec![0u8; payload.len()];
    if let Ok(n) = write(&red.primary(), &earlier, &mut out) {
        assert_eq!(n, payload.len());
        let again = RedPayload::parse(&out[..n], ts).expect("what was written parses");
        assert_eq!(again.primary(), red.primary());
        assert!(again.redundant().eq(red.redundant()));
    }
});
