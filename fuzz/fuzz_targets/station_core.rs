//! A whole station core fed by a hostile server: any signaling frames (one per line) on an
//! open connection, then any datagram from the media address. Media offers, stage snapshots
//! and deltas all pass through the core's own checks; nothing may panic, and its tables stay
//! bounded.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use stagebox_core::stage::MAX_MEMBERS;
use stagebox_core::{SessionConfig, Station, StationConfig, StationEvent};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let cfg = StationConfig::new(SessionConfig::new("a-1", "token", "hall", "wss://127.0.0.1:8443/s"));
    let mut station = Station::new(now, cfg);
    station.handle_timeout(now);
    let mut conn = None;
    while let Some(ev) = station.poll_event() {
        if let StationEvent::Connect { conn: c, .. } = ev {
            conn = Some(c);
        }
    }
    let Some(conn) = conn else { return };
    station.handle_connected(now, conn);
    let (frames, datagram) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    for line in frames.split(|&b| b == b'\n') {
        now += Duration::from_millis(7);
        match std::str::from_utf8(line) {
            Ok(text) => station.handle_text(now, conn, text),
            Err(_) => station.handle_malformed(now, conn),
        }
        while station.poll_transmit().is_some() {}
        while station.poll_event().is_some() {}
    }
    assert!(station.stage().members().count() <= MAX_MEMBERS);
    if let Some(from) = station.media_destination() {
        let mut packet = datagram.to_vec();
        let _ = station.handle_datagram(now, from, &mut packet);
    }
});
