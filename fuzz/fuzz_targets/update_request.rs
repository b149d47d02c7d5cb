//! Request heads on the server's gateway port: any bytes, routed to a page of the web app, an
//! update file (a plain name in the update directory, never a path out of it) or on to the
//! WebSocket upgrade.
#![no_main]
use libfuzzer_sys::fuzz_target;
use stagebox_stage_server::updates::{Route, route};
use stagebox_stage_server::web;

fuzz_target!(|data: &[u8]| {
    let _ = web::route(data);
    if let Route::File { name, .. } = route(data) {
        assert!(!name.contains('/') && !name.starts_with('.') && !name.is_empty());
    }
});
