//! Update manifests from a source that may lie: any bytes, checked against a trusted key.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_core::update::{TimeFloor, Version, check_manifest};

fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let floor = TimeFloor {
        floor_unix: 1_700_000_000,
        newest_issued_unix: 1_750_000_000,
    };
    let _ = check_manifest(data, &[key], "qemu", Version(1, 0, 0), floor, 1_800_000_000);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Version::parse(text);
    }
});
