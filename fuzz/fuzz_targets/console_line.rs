//! The console line: any bytes, at any pace. Sorted into keys and frame lines, edited,
//! parsed, reassembled and answered by the session, never a panic, never a line, packet or
//! output past its bound, a packet only when its checksum holds, and nothing run that needs
//! the PIN unless the PIN was given.
#![no_main]
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use stagebox_console::auth::PinVerifier;
use stagebox_console::command::{self, Access};
use stagebox_console::frame::{self, FrameDecoder};
use stagebox_console::input::{Input, InputSorter};
use stagebox_console::session::{Console, ConsoleConfig, ConsoleEvent, MAX_OUTPUT, Reply};

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    // The parsers on their own.
    let mut sorter = InputSorter::new();
    let mut frames = FrameDecoder::new();
    sorter.handle_bytes(start, data);
    while let Some(input) = sorter.poll() {
        if let Input::FrameLine(line) = input {
            assert!(line.len() < frame::MAX_LINE);
            if let Ok(Some(body)) = frames.handle_line(&line) {
                assert!(body.len() <= frame::MAX_BODY);
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = command::parse(text);
        let _ = command::complete(text);
    }

    // The whole session, its commands answered at once.
    let Ok(verifier) = PinVerifier::new("12345678", 1) else {
        return;
    };
    let mut console = Console::new(
        start,
        ConsoleConfig {
            station: "fuzz".into(),
            verifier: Some(verifier),
            read_without_pin: data.first().is_some_and(|b| b & 1 == 1),
            idle_logout: Duration::from_secs(600),
        },
    );
    // The first byte of each chunk says how much time passed before it.
    for (i, chunk) in data.chunks(24).enumerate() {
        let Some((&gap, bytes)) = chunk.split_first() else {
            continue;
        };
        let now = start + Duration::from_millis(i as u64 * 10 + u64::from(gap));
        if gap == 0xff {
            console.handle_line_reset();
        }
        console.handle_bytes(now, bytes);
        if let Some(t) = console.poll_timeout() {
            console.handle_timeout(t.min(now + Duration::from_millis(100)));
        }
        while let Some(event) = console.poll_event() {
            match event {
                ConsoleEvent::Run { ticket, command } => {
                    if command::spec_of(&command).access == Access::Change {
                        assert!(console.logged_in(), "{command:?} ran without the PIN");
                    }
                    console.handle_reply(ticket, Reply::Progress("x\ny".into()));
                    if gap & 2 == 0 {
                        console.handle_reply(ticket, Reply::Done(Ok("done".into())));
                    }
                }
                ConsoleEvent::Stop { ticket } => {
                    console.handle_reply(ticket, Reply::Done(Err("stopped".into())));
                }
                ConsoleEvent::Audit(_) => {}
            }
        }
        let out = console.poll_output().unwrap_or_default();
        assert!(out.len() <= MAX_OUTPUT + 2 * frame::MAX_LINE * 64, "{}", out.len());
    }
});
