//! Bytes of a request to the moderator console's interface: the HTTP framing (cookie, CSRF
//! token, origin, body length), then the JSON of a sign-in or an action.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_server_core::AdminCmd;
use stagebox_stage_server::console_api::{MAX_BODY, Parsed, parse};

fuzz_target!(|data: &[u8]| {
    if let Parsed::Head { request, missing } = parse(data) {
        assert!(request.body.len() + missing <= MAX_BODY);
        let _ = serde_json::from_slice::<AdminCmd>(&request.body);
        let _ = serde_json::from_slice::<serde_json::Value>(&request.body);
    }
});
