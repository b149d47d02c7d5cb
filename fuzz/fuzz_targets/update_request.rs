//! Request heads on the server's gateway port: any bytes, routed to an update file (a plain
//! name in the update directory, never a path out of it) or on to the WebSocket upgrade.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_stage_server::updates::{Route, route};

fuzz_target!(|data: &[u8]| {
    if let Route::File { name, .. } = route(data) {
        assert!(!name.contains('/') && !name.starts_with('.') && !name.is_empty());
    }
});
