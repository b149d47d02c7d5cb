//! Signaling frames a server receives: any text decodes or errors, and what decodes
//! re-encodes to something that decodes to the same message.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_proto::signal::ClientMsg;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(msg) = ClientMsg::from_json(text) {
            assert_eq!(ClientMsg::from_json(&msg.to_json()).ok(), Some(msg));
        }
    }
});
