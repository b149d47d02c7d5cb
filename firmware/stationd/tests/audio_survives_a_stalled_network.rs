//! The audio thread never waits on the network: while the network task is stalled for 2 s of
//! audio (it neither takes what the station captured nor gives it anything to play), the
//! audio thread keeps its pace, drops what it cannot queue and plays on; when the network
//! comes back, audio flows again both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

mod common;
use common::AudioRig;

#[test]
fn audio_keeps_flowing_while_the_network_task_is_stalled() {
    let mut rig = AudioRig::start(|| {});
    rig.serve_until(500);
    let shared = rig.shared.clone();
    let played_before = shared.playout.played.load(Ordering::SeqCst);
    assert!(played_before > 0, "nothing played before the stall");

    // The stall: nobody serves the queues for 200 periods (2 s of audio). The thread is
    // unpaced, so if it waited on the network it would stop counting periods.
    let (start, at) = (rig.periods(), Instant::now());
    while rig.periods() < start + 200 {
        assert!(
            at.elapsed() < Duration::from_secs(30),
            "the audio thread stopped while the network was stalled"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let dropped = shared.tx_queue_full.load(Ordering::SeqCst);
    assert!(
        dropped > 0,
        "a stalled network should cost captured frames, not time"
    );

    // The network is back: the station's frames come back and play again.
    let sent_before = rig.sent;
    let resumed = rig.periods();
    rig.serve_until(resumed + 500);
    assert!(rig.sent > sent_before + 50, "sending did not resume");
    let played_after = shared.playout.played.load(Ordering::SeqCst);
    assert!(played_after > played_before + 50, "playout did not resume");
    assert_eq!(
        shared.device_errors.load(Ordering::SeqCst),
        0,
        "no device errors"
    );
    rig.stop();
}
