//! The station's statistics, as one JSON object (the `stats` command, the demo's report).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use stagebox_core::Station;
use stagebox_core::session::Phase;
use stagebox_hal::sim::LedTimeline;

use crate::audio_thread::AudioShared;

/// What the buttons did, for the technician's console.
#[derive(Debug, Clone, Copy, Default)]
pub struct ButtonsSeen {
    pub ptt_down: bool,
    pub hand_down: bool,
    /// Presses of either button since start.
    pub presses: u64,
}

/// Moments worth reporting, as wall-clock nanoseconds since the Unix epoch (0 = not yet),
/// and what the buttons do now.
#[derive(Debug, Clone, Copy, Default)]
pub struct Milestones {
    pub buttons: ButtonsSeen,
    pub start_unix_ns: u64,
    /// First media session (joined the stage).
    pub ready_unix_ns: u64,
    /// First time the mic went live.
    pub transmit_unix_ns: u64,
    /// First decoded audio reached the speaker.
    pub first_audio_unix_ns: u64,
}

/// The daemon's resident memory, KiB (from /proc/self/status), if the system says.
fn resident_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The signaling session's phase, as a word.
fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Waiting { .. } => "waiting to retry",
        Phase::Connecting { .. } => "connecting",
        Phase::AwaitHello { .. } => "waiting for the server's hello",
        Phase::Authenticating { .. } => "logging in",
        Phase::Established { .. } => "joined",
    }
}

pub fn build(
    station_id: &str,
    station: &Station,
    shared: &AudioShared,
    milestones: &Milestones,
    leds: Option<&LedTimeline>,
) -> String {
    let s = station.stats();
    let m = station.media_stats();
    let r = station.route_stats();
    let timeline: Vec<Value> = leds
        .and_then(|t| t.lock().ok().map(|t| t.clone()))
        .unwrap_or_default()
        .into_iter()
        .map(|(ms, state)| json!([ms, state.name()]))
        .collect();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let p = &shared.playout;
    let c = &shared.capture;
    let known = |v: i64, scale: f64| (v != i64::MIN).then(|| v as f64 / scale);
    json!({
        "station_id": station_id,
        "led": station.led().name(),
        "role": station.stage().role(),
        "connection": phase_name(station.session().phase()),
        "buttons": {
            "ptt": milestones.buttons.ptt_down,
            "hand": milestones.buttons.hand_down,
            "presses": milestones.buttons.presses,
        },
        "session": {
            "attempts": s.attempts,
            "established": s.established,
            "resumed": s.resumed,
            "lost": s.lost,
        },
        "media": {
            "rtp_sent": m.sent,
            "keepalives_sent": m.keepalives,
            "rtp_received": m.received,
            "dropped_unauthenticated": m.dropped_unauthenticated,
            "dropped_replayed": m.dropped_replayed,
            "dropped_malformed": m.dropped_malformed,
            "dropped_foreign": m.dropped_foreign,
            "redundant_frames_per_packet": station.protection().redundancy,
            "destination": station.media_destination().map(|d| d.to_string()),
            "resolutions": r.resolutions,
            "resolve_failures": r.resolve_failures,
            "resolve_timeouts": r.resolve_timeouts,
        },
        "playout": {
            "frames_received": load(&p.received),
            "frames_played": load(&p.played),
            "frames_recovered_fec": load(&p.recovered_fec),
            "frames_recovered_redundant": load(&p.recovered_redundant),
            "packets_malformed": load(&p.malformed),
            "frames_concealed": load(&p.concealed),
            "frames_lost": load(&p.lost),
            "frames_late": load(&p.late),
            "underruns": load(&p.underruns),
            "quiet_frames_left_out": load(&p.left_out),
            "frames_shortened": load(&p.shortened),
            "frames_lengthened": load(&p.lengthened),
            "jitter_target_delay_ms": load(&p.target_delay_us) as f64 / 1000.0,
            "jitter_current_delay_ms": load(&p.current_delay_us) as f64 / 1000.0,
            "arrival_spread_ms": load(&p.arrival_spread_us) as f64 / 1000.0,
            "sender_clock_ppm": p.sender_clock_ppm.load(Ordering::Relaxed),
        },
        "capture": {
            "fec_for_loss_percent": shared.expected_loss_percent.load(Ordering::Relaxed),
            "echo_delay_ms": known(c.echo_delay_ms.load(Ordering::Relaxed), 1.0),
            "echo_return_loss_enhancement_db": known(c.erle_centi_db.load(Ordering::Relaxed), 100.0),
            "echo_return_loss_db": known(c.erl_centi_db.load(Ordering::Relaxed), 100.0),
            "input_level_dbfs": known(c.input_level_centi_db.load(Ordering::Relaxed), 100.0),
            "mic_levels_dbfs": c.mic_level_centi_db
                .iter()
                .take(usize::from(c.mic_channels.load(Ordering::Relaxed)))
                .map(|l| known(l.load(Ordering::Relaxed), 100.0))
                .collect::<Vec<_>>(),
            "processing_errors": load(&c.processing_errors),
        },
        "process": {
            "rss_kib": resident_kib(),
        },
        "audio": {
            "device": if shared.device_gone.load(Ordering::Relaxed) { "gone, reopening" } else { "ok" },
            "device_faults": load(&shared.device_faults),
            "device_reopened": load(&shared.device_reopened),
            "periods": load(&shared.periods),
            "device_errors": load(&shared.device_errors),
            "xruns": load(&shared.xruns),
            "tx_queue_full": load(&shared.tx_queue_full),
            "capture_start_unix_ns": load(&shared.capture_start_unix_ns),
            "playback_start_unix_ns": load(&shared.playback_start_unix_ns),
        },
        "milestones": {
            "start_unix_ns": milestones.start_unix_ns,
            "ready_unix_ns": milestones.ready_unix_ns,
            "transmit_unix_ns": milestones.transmit_unix_ns,
            "first_audio_unix_ns": milestones.first_audio_unix_ns,
        },
        "led_timeline_ms": timeline,
    })
    .to_string()
}
