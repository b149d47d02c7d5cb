//! Signaling frames a station receives.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_proto::signal::ServerMsg;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(msg) = ServerMsg::from_json(text) {
            assert_eq!(ServerMsg::from_json(&msg.to_json()).ok(), Some(msg));
        }
    }
});
