//! The sound device can vanish (a USB card pulled out, a HAT codec error): the audio thread
//! keeps running, says the device is gone (the network task turns that into the `error` LED
//! and the status), retries, and when the card is back audio flows again — without the
//! process or the session noticing anything else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use stagebox_stationd::audio_thread::AudioEvent;

mod common;
use common::AudioRig;

fn serve_until(rig: &mut AudioRig, what: &str, mut done: impl FnMut(&AudioRig) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(rig) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        rig.serve();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_pulled_sound_card_is_reported_and_reopened() {
    let mut rig = AudioRig::start(|| {});
    rig.serve_until(300);
    let shared = rig.shared.clone();
    assert!(!shared.device_gone.load(Ordering::SeqCst));
    // A device that opens at start is said to work (the boot health check waits for it).
    assert_eq!(
        rig.events.first(),
        Some(&AudioEvent::Device { working: true })
    );

    rig.card.set_unplugged(true);
    serve_until(&mut rig, "the device to be reported gone", |r| {
        r.events.contains(&AudioEvent::Device { working: false })
    });
    assert!(shared.device_gone.load(Ordering::SeqCst));
    assert_eq!(shared.device_faults.load(Ordering::SeqCst), 1);
    rig.events.clear();
    // While it is out, retries fail and nothing is played; the thread is alive. Frames
    // captured before the card went may still be in the queue: they are drained first.
    std::thread::sleep(Duration::from_millis(100));
    rig.serve();
    let periods = rig.periods();
    let sent = rig.sent;
    std::thread::sleep(Duration::from_millis(1500));
    rig.serve();
    assert_eq!(rig.periods(), periods, "no device, no periods");
    assert_eq!(rig.sent, sent, "no device, nothing sent");
    assert!(shared.device_gone.load(Ordering::SeqCst));

    rig.card.set_unplugged(false);
    serve_until(&mut rig, "the device to come back", |r| {
        r.events.contains(&AudioEvent::Device { working: true })
    });
    assert!(!shared.device_gone.load(Ordering::SeqCst));
    assert_eq!(shared.device_reopened.load(Ordering::SeqCst), 1);
    let (periods, sent) = (rig.periods(), rig.sent);
    rig.serve_until(periods + 300);
    assert!(rig.sent > sent + 20, "audio flows again");
    rig.stop();
}
