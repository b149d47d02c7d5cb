//! A board profile file: parses and validates, or gives an error; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_board::BoardProfile;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = BoardProfile::parse(text, "fuzz.toml");
    }
});
