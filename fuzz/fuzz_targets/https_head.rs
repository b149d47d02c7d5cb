//! Response heads from an update source that may lie: any bytes, parsed for status, length,
//! range and transfer encoding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_stationd::https::parse_head;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((head, len))) = parse_head(data) {
        assert!(len <= data.len());
        let _ = head.status;
    }
});
