//! Media through the server core over a lossy network, in virtual time: A's capture path and
//! media link, the server's forwarding, B's media link and playout path, with seeded loss on
//! every datagram hop. Checks what arrives, how loss is repaired (FEC or redundant copies,
//! concealment), that the output still follows the input, and that a seed always gives the
//! same result.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use stagebox_audio::frame::{FrameDuration, MediaFrame, PERIOD_SAMPLES};
use stagebox_audio::jitter::{JitterConfig, JitterStats};
use stagebox_audio::pipeline::{CaptureConfig, CapturePath, PlayoutPath};
use stagebox_core::StationEvent;
use stagebox_core::redundancy::ProtectionMode;
use stagebox_proto::media::MAX_DATAGRAM;
use stagebox_proto::red::PT_RED;
use stagebox_tests::netsim::Net;
use stagebox_tests::{ms, origin, server_config, station_config};

/// A speech-like signal: gliding tones in syllables, with pauses.
fn voice(period: usize) -> [i16; PERIOD_SAMPLES] {
    core::array::from_fn(|i| {
        let n = period * PERIOD_SAMPLES + i;
        let t = n as f32 / 48_000.0;
        let syllable = (t * 4.0) as usize;
        if syllable % 5 == 4 || (t % 3.0) > 2.4 {
            return 0;
        }
        let f = 180.0 + 60.0 * ((syllable % 7) as f32) + 40.0 * (t * 3.0).sin();
        let env = (std::f32::consts::PI * (t * 4.0).fract()).sin();
        (7000.0 * env * (2.0 * std::f32::consts::PI * f * t).sin()) as i16
    })
}

struct Outcome {
    sent: u64,
    lost_on_links: u64,
    jitter: JitterStats,
    output: Vec<i16>,
    input: Vec<i16>,
}

/// How the sender meets the loss it is told about.
#[derive(Clone, Copy, PartialEq)]
enum Protection {
    /// The encoder's in-band FEC only (a session without redundant audio).
    Fec,
    /// What the media link decides for a session with redundant audio.
    Negotiated,
}

fn run(loss_per_hop: f64, seed: u64) -> Outcome {
    run_protected(loss_per_hop, seed, Protection::Fec)
}

fn run_protected(loss_per_hop: f64, seed: u64, protection: Protection) -> Outcome {
    let mut net = Net::new(origin(), server_config(), seed);
    net.datagram_loss = loss_per_hop;
    // The sender knows the loss (receivers report it), and protects its audio against it.
    let mut sender = station_config("mod-1", seed + 1);
    sender.min_expected_loss = (loss_per_hop * 200.0) as u8;
    if protection == Protection::Fec {
        sender.protection_mode = ProtectionMode::Fec;
    }
    let a = net.add_station(sender);
    let b = net.add_station(station_config("a-1", seed + 2));
    net.run_for(Duration::from_secs(1));
    for i in [a, b] {
        assert!(
            net.stations[i]
                .observed
                .iter()
                .any(|o| matches!(o.event, StationEvent::MediaStarted { red: true, .. })),
            "stations and server negotiate redundant audio"
        );
    }
    let ssrc_a = net.stations[a].core.ssrc().expect("a media session");
    let from_server = net.stations[b]
        .core
        .media_destination()
        .expect("the media server's address");
    let mut capture_config = CaptureConfig::new(FrameDuration::Ms20);
    capture_config.encoder.expected_loss_percent =
        net.stations[a].core.protection().fec_loss_percent;
    let mut capture = CapturePath::new(capture_config, 5000).unwrap();
    let mut playout = PlayoutPath::new(JitterConfig::default()).unwrap();
    let mut buf = [0u8; MAX_DATAGRAM];
    let (mut input, mut output) = (Vec::new(), Vec::new());
    let mut out = [0i16; PERIOD_SAMPLES];
    for period in 0..1500 {
        let pcm = voice(period);
        input.extend_from_slice(&pcm);
        if let Some(frame) = capture
            .push_period(&pcm, true, ssrc_a)
            .unwrap()
            .and_then(|o| o.frame)
            && let Some(d) = net.stations[a].core.seal_audio(
                frame.timestamp,
                frame.marker,
                &frame.payload,
                &mut buf,
            )
        {
            net.send_datagram(a, buf[..d.len].to_vec());
        }
        net.run_for(ms(10));
        let now_us = period as u64 * 10_000;
        let now = net.now;
        for mut bytes in std::mem::take(&mut net.stations[b].inbox) {
            if let Some(o) = net.stations[b]
                .core
                .handle_datagram(now, from_server, &mut bytes)
            {
                let h = o.header;
                let frame =
                    MediaFrame::new(h.ssrc, h.sequence, h.timestamp, h.marker, &bytes[o.payload])
                        .unwrap()
                        .with_redundancy(h.payload_type == PT_RED);
                playout.push(frame, now_us);
            }
        }
        playout.next_period(now_us, &mut out);
        output.extend_from_slice(&out);
    }
    Outcome {
        sent: net.stations[a].core.media_stats().sent,
        lost_on_links: net.datagrams_lost,
        jitter: playout.stats().jitter,
        output,
        input,
    }
}

/// How well B's output follows A's input (piecewise aligned, see `stagebox-judge`).
fn best_correlation(input: &[i16], output: &[i16]) -> f64 {
    let f = |x: &[i16]| x.iter().map(|&s| f64::from(s)).collect::<Vec<_>>();
    stagebox_judge::align(&f(input), &f(output), 0..=9600).map_or(0.0, |a| a.correlation)
}

#[test]
fn without_loss_every_frame_plays() {
    let o = run(0.0, 1);
    assert!(o.sent > 500, "sent {}", o.sent);
    assert_eq!(o.lost_on_links, 0);
    assert_eq!(o.jitter.received, o.sent);
    assert_eq!(o.jitter.played, o.sent);
    assert_eq!(o.jitter.recovered_fec, 0);
    // Talk spurts start and end cleanly: nothing is late, lost or concealed.
    assert_eq!(
        (
            o.jitter.late,
            o.jitter.lost,
            o.jitter.concealed,
            o.jitter.underruns
        ),
        (0, 0, 0, 0),
        "{:?}",
        o.jitter
    );
    let c = best_correlation(&o.input, &o.output);
    assert!(c > 0.9, "correlation {c}");
}

#[test]
fn ten_percent_loss_per_hop_is_repaired_and_stays_intelligible() {
    let o = run(0.10, 2);
    let missing = o.sent - o.jitter.received;
    assert!(o.lost_on_links > 0 && missing > 0);
    assert!(
        o.jitter.recovered_fec > 0,
        "FEC recovered nothing: {:?}",
        o.jitter
    );
    assert!(o.jitter.concealed > 0, "nothing concealed: {:?}", o.jitter);
    // Every lost frame inside a talk spurt is either recovered or concealed.
    assert!(
        o.jitter.recovered_fec + o.jitter.concealed >= missing / 2,
        "{missing} missing, {:?}",
        o.jitter
    );
    let c = best_correlation(&o.input, &o.output);
    let clean_run = run(0.0, 2);
    let clean = best_correlation(&clean_run.input, &clean_run.output);
    println!(
        "10 %/hop: {} sent, {} lost end to end, {} FEC, {} concealed; correlation {c:.3} (clean {clean:.3})",
        o.sent, missing, o.jitter.recovered_fec, o.jitter.concealed
    );
    assert!(c > 0.8, "correlation {c}");
    assert!(c < clean, "loss should cost something");
}

#[test]
fn redundant_audio_repairs_what_fec_cannot() {
    let fec = run_protected(0.10, 5, Protection::Fec);
    let red = run_protected(0.10, 5, Protection::Negotiated);
    let f = |o: &Outcome| best_correlation(&o.input, &o.output);
    println!(
        "10 %/hop, FEC: {} FEC, {} concealed, correlation {:.3}; redundant: {} copies, {} FEC, \
         {} concealed, correlation {:.3}",
        fec.jitter.recovered_fec,
        fec.jitter.concealed,
        f(&fec),
        red.jitter.recovered_redundant,
        red.jitter.recovered_fec,
        red.jitter.concealed,
        f(&red)
    );
    assert_eq!(fec.jitter.recovered_redundant, 0);
    assert!(red.jitter.recovered_redundant > 0, "{:?}", red.jitter);
    // With two copies per packet, only three losses in a row (or a lost first packet of a
    // spurt) leave a frame to conceal.
    assert!(
        red.jitter.concealed * 4 < fec.jitter.concealed + fec.jitter.recovered_fec,
        "redundant {:?}\nFEC {:?}",
        red.jitter,
        fec.jitter
    );
    assert!(
        f(&red) > f(&fec),
        "redundant audio should sound closer to the input"
    );
}

#[test]
fn same_seed_same_result() {
    let (x, y) = (run(0.10, 3), run(0.10, 3));
    assert_eq!(x.output, y.output);
    assert_eq!(x.jitter, y.jitter);
    assert_ne!(run(0.10, 4).jitter, x.jitter);
}
