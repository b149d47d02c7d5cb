//! Bytes on the server's admin port: the HTTP request framing, then the JSON command.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_server_core::AdminCmd;
use stagebox_stage_server::admin::{Parsed, parse};

fuzz_target!(|data: &[u8]| {
    if let Parsed::Request { body, .. } = parse(data) {
        assert!(body.len() <= data.len());
        let _ = serde_json::from_slice::<AdminCmd>(&body);
    }
});
