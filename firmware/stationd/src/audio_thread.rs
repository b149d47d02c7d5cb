//! The real-time audio thread: paced by the capture device, it reads a period, runs the
//! capture path, takes what the network task queued for playout, mixes, and writes a period.
//! It talks to the network task only through fixed-capacity lock-free queues and atomics,
//! never waits on the network, and allocates nothing once [`run`] has started its loop.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use heapless::spsc::{Consumer, Producer, Queue};
use stagebox_audio::beamform::Beamformer;
use stagebox_audio::frame::{MediaFrame, PERIOD_SAMPLES, SAMPLE_RATE};
use stagebox_audio::gate::SpurtChange;
use stagebox_audio::jitter::JitterStats;
use stagebox_audio::pipeline::{CapturePath, CaptureStats, PlayoutPath};
use stagebox_hal::{AudioCapture, AudioError, AudioErrorKind, AudioPlayback};

/// Frames in flight each way: 64 frames is over a second of 20 ms audio.
pub const QUEUE_LEN: usize = 64;

/// State shared with the network task, all lock-free.
#[derive(Debug)]
pub struct AudioShared {
    /// The clock both threads stamp media times on (see [`AudioShared::now_us`]).
    pub epoch: Instant,
    pub running: AtomicBool,
    /// The station core allows sending the mic.
    pub transmit: AtomicBool,
    pub ssrc: AtomicU32,
    /// The capture path's RTP clock (48 kHz), for keepalive timestamps.
    pub rtp_clock: AtomicU32,
    /// Priority speaker SSRC, or `u64::MAX` for none.
    pub priority: AtomicU64,
    /// Capture level of the last frame, 0–100 (for the LED meter).
    pub level_percent: AtomicU8,
    pub tx_queue_full: AtomicU64,
    pub periods: AtomicU64,
    pub device_errors: AtomicU64,
    /// Of `device_errors`, the under- and overruns (recovered at once).
    pub xruns: AtomicU64,
    /// The sound device is gone and being reopened.
    pub device_gone: AtomicBool,
    /// Times the device was lost, and reopened.
    pub device_faults: AtomicU64,
    pub device_reopened: AtomicU64,
    /// When the first captured sample reached the microphone (wall clock, ns).
    pub capture_start_unix_ns: AtomicU64,
    /// When the first played sample left for the loudspeaker (wall clock, ns).
    pub playback_start_unix_ns: AtomicU64,
    /// Loss (percent) the encoder's FEC covers: the most of the configured least and what the
    /// listeners report, or none where redundant audio covers it (the network task's media
    /// link decides).
    pub expected_loss_percent: AtomicU8,
    /// Periods left of the technician's test signal on the loudspeaker (0: none), and
    /// whether it is the sweep (else the tone).
    pub test_tone_periods: AtomicU32,
    pub test_sweep: AtomicBool,
    pub playout: PlayoutCounters,
    pub capture: CaptureCounters,
}

/// The capture side's processing figures, published every 100 ms; `i64::MIN`: not known.
#[derive(Debug)]
pub struct CaptureCounters {
    pub echo_delay_ms: AtomicI64,
    /// Echo return loss enhancement, hundredths of a dB.
    pub erle_centi_db: AtomicI64,
    /// Echo return loss, hundredths of a dB.
    pub erl_centi_db: AtomicI64,
    pub processing_errors: AtomicU64,
    /// Level of the processed microphone signal, hundredths of a dBFS.
    pub input_level_centi_db: AtomicI64,
    /// Each capture channel's level before any processing, hundredths of a dBFS (the
    /// technician's per-microphone meter); `mic_channels` of them are in use.
    pub mic_level_centi_db: [AtomicI64; MAX_CHANNELS],
    pub mic_channels: AtomicU8,
}

impl Default for CaptureCounters {
    fn default() -> Self {
        CaptureCounters {
            echo_delay_ms: AtomicI64::new(i64::MIN),
            erle_centi_db: AtomicI64::new(i64::MIN),
            erl_centi_db: AtomicI64::new(i64::MIN),
            processing_errors: AtomicU64::new(0),
            input_level_centi_db: AtomicI64::new(i64::MIN),
            mic_level_centi_db: std::array::from_fn(|_| AtomicI64::new(i64::MIN)),
            mic_channels: AtomicU8::new(0),
        }
    }
}

impl CaptureCounters {
    fn publish(&self, c: &CaptureStats, level_db: f32) {
        let centi = |v: Option<f64>| v.map_or(i64::MIN, |v| (v * 100.0) as i64);
        self.echo_delay_ms.store(
            c.echo_delay_ms.map_or(i64::MIN, i64::from),
            Ordering::Relaxed,
        );
        self.erle_centi_db
            .store(centi(c.echo_return_loss_enhancement_db), Ordering::Relaxed);
        self.erl_centi_db
            .store(centi(c.echo_return_loss_db), Ordering::Relaxed);
        self.processing_errors
            .store(c.processing_errors, Ordering::Relaxed);
        self.input_level_centi_db
            .store((level_db * 100.0) as i64, Ordering::Relaxed);
    }

    /// Each channel's level from its summed squares over `samples` samples per channel.
    fn publish_mics(&self, energy: &[f64], samples: usize) {
        for (slot, e) in self.mic_level_centi_db.iter().zip(energy) {
            let mean = e / samples.max(1) as f64 / (32768.0 * 32768.0);
            let dbfs = if mean > 0.0 {
                (10.0 * mean.log10()).max(-120.0)
            } else {
                -120.0
            };
            slot.store((dbfs * 100.0) as i64, Ordering::Relaxed);
        }
        self.mic_channels
            .store(energy.len() as u8, Ordering::Relaxed);
    }
}

/// The playout side's figures, published by the audio thread every 100 ms.
#[derive(Debug, Default)]
pub struct PlayoutCounters {
    pub received: AtomicU64,
    pub played: AtomicU64,
    pub recovered_fec: AtomicU64,
    pub recovered_redundant: AtomicU64,
    pub malformed: AtomicU64,
    pub concealed: AtomicU64,
    pub lost: AtomicU64,
    pub late: AtomicU64,
    pub underruns: AtomicU64,
    pub left_out: AtomicU64,
    pub shortened: AtomicU64,
    pub lengthened: AtomicU64,
    pub target_delay_us: AtomicU64,
    pub current_delay_us: AtomicU64,
    pub arrival_spread_us: AtomicU64,
    pub sender_clock_ppm: AtomicI64,
}

impl PlayoutCounters {
    fn publish(&self, j: &JitterStats) {
        for (a, v) in [
            (&self.received, j.received),
            (&self.played, j.played),
            (&self.recovered_fec, j.recovered_fec),
            (&self.recovered_redundant, j.recovered_redundant),
            (&self.malformed, j.malformed),
            (&self.concealed, j.concealed),
            (&self.lost, j.lost),
            (&self.late, j.late),
            (&self.underruns, j.underruns),
            (&self.left_out, j.left_out),
            (&self.shortened, j.shortened),
            (&self.lengthened, j.lengthened),
            (&self.target_delay_us, j.target_delay_us),
            (&self.current_delay_us, j.current_delay_us),
            (&self.arrival_spread_us, j.arrival_spread_us),
        ] {
            a.store(v, Ordering::Relaxed);
        }
        self.sender_clock_ppm
            .store(j.sender_clock_ppm, Ordering::Relaxed);
    }
}

impl AudioShared {
    /// µs since [`AudioShared::epoch`]: arrival stamps (network task) and playout times
    /// (audio thread) on one monotonic clock.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }
}

impl Default for AudioShared {
    fn default() -> Self {
        AudioShared {
            epoch: Instant::now(),
            running: AtomicBool::new(true),
            transmit: AtomicBool::new(false),
            ssrc: AtomicU32::new(0),
            rtp_clock: AtomicU32::new(0),
            priority: AtomicU64::new(u64::MAX),
            level_percent: AtomicU8::new(0),
            tx_queue_full: AtomicU64::new(0),
            periods: AtomicU64::new(0),
            device_errors: AtomicU64::new(0),
            xruns: AtomicU64::new(0),
            device_gone: AtomicBool::new(false),
            device_faults: AtomicU64::new(0),
            device_reopened: AtomicU64::new(0),
            capture_start_unix_ns: AtomicU64::new(0),
            playback_start_unix_ns: AtomicU64::new(0),
            expected_loss_percent: AtomicU8::new(0),
            test_tone_periods: AtomicU32::new(0),
            test_sweep: AtomicBool::new(false),
            playout: PlayoutCounters::default(),
            capture: CaptureCounters::default(),
        }
    }
}

/// What the audio thread tells the network task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioEvent {
    /// A talk spurt started (true) or ended (false).
    Spurt(bool),
    /// The first decoded audio reached the speaker.
    FirstAudio { unix_ns: u64 },
    /// The sound device failed for good (`false`) or works again (`true`).
    Device { working: bool },
}

/// A frame from the network and when it arrived ([`AudioShared::now_us`]).
#[derive(Debug, Clone)]
pub struct Received {
    pub frame: MediaFrame,
    pub arrival_us: u64,
}

/// The audio thread's ends of the queues.
pub struct AudioEnds {
    pub to_net: Producer<'static, MediaFrame>,
    pub from_net: Consumer<'static, Received>,
    pub events: Producer<'static, AudioEvent>,
    /// Wakes the network task when something was queued for it (a datagram of one byte; the
    /// socket is non-blocking, and a full socket means a wake-up is pending anyway).
    pub wake: UnixDatagram,
}

/// The network task's ends of the queues.
pub struct NetEnds {
    pub from_audio: Consumer<'static, MediaFrame>,
    pub to_audio: Producer<'static, Received>,
    pub events: Consumer<'static, AudioEvent>,
    /// Readable when the audio thread queued something.
    pub woken: UnixDatagram,
}

/// Makes the queues. They live for the rest of the process (leaked once at start-up).
pub fn queues() -> std::io::Result<(AudioEnds, NetEnds)> {
    let up: &'static mut Queue<MediaFrame, QUEUE_LEN> = Box::leak(Box::new(Queue::new()));
    let down: &'static mut Queue<Received, QUEUE_LEN> = Box::leak(Box::new(Queue::new()));
    let events: &'static mut Queue<AudioEvent, QUEUE_LEN> = Box::leak(Box::new(Queue::new()));
    let (up_p, up_c) = up.split();
    let (down_p, down_c) = down.split();
    let (ev_p, ev_c) = events.split();
    let (wake, woken) = UnixDatagram::pair()?;
    wake.set_nonblocking(true)?;
    woken.set_nonblocking(true)?;
    Ok((
        AudioEnds {
            to_net: up_p,
            from_net: down_c,
            events: ev_p,
            wake,
        },
        NetEnds {
            from_audio: up_c,
            to_audio: down_p,
            events: ev_c,
            woken,
        },
    ))
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Capture or playback errors in a row (xruns aside) after which the sound device is taken
/// for gone: 50 ms.
const GONE_AFTER_ERRORS: u32 = 5;
/// How often a gone sound device is tried again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);
/// Most interleaved channels a device may deliver.
pub const MAX_CHANNELS: usize = 8;
const PERIOD: Duration = Duration::from_millis(10);

/// The open devices and what depends on their format.
struct Devices<C, P> {
    capture: C,
    playback: P,
    in_samples: usize,
    in_channels: usize,
    out_channels: usize,
    beamformer: Beamformer,
}

fn open_devices<C: AudioCapture, P: AudioPlayback, E: std::fmt::Display>(
    open: &mut impl FnMut() -> Result<(C, P), E>,
    mics: &[u16],
    mic_geometry_mm: &[[f32; 3]],
) -> Result<Devices<C, P>, String> {
    let (capture, playback) = open().map_err(|e| e.to_string())?;
    let (in_format, out_format) = (capture.format(), playback.format());
    if in_format.period != PERIOD_SAMPLES || out_format.period != PERIOD_SAMPLES {
        return Err(format!(
            "audio devices must run 10 ms periods ({PERIOD_SAMPLES} frames), got {} / {}",
            in_format.period, out_format.period
        ));
    }
    let (in_channels, out_channels) = (
        usize::from(in_format.channels.max(1)),
        usize::from(out_format.channels.max(1)),
    );
    if in_channels > MAX_CHANNELS || out_channels > MAX_CHANNELS {
        return Err(format!(
            "audio devices may have at most {MAX_CHANNELS} channels, got {in_channels} / {out_channels}"
        ));
    }
    Ok(Devices {
        capture,
        playback,
        in_samples: in_channels * PERIOD_SAMPLES,
        in_channels,
        out_channels,
        beamformer: Beamformer::new(in_channels, mics, mic_geometry_mm),
    })
}

/// The thread's running state between periods.
struct Pace {
    consecutive_errors: u32,
    first_period: bool,
    expected_loss: u8,
    level_db: f32,
    input: [i16; MAX_CHANNELS * PERIOD_SAMPLES],
    output: [i16; MAX_CHANNELS * PERIOD_SAMPLES],
    mono: [i16; PERIOD_SAMPLES],
    mixed: [i16; PERIOD_SAMPLES],
    /// The test signal's phase, radians, and its samples so far.
    tone_phase: f32,
    tone_position: usize,
    /// Each capture channel's summed squares since the last publication, and over how many
    /// samples per channel.
    mic_energy: [f64; MAX_CHANNELS],
    mic_samples: usize,
}

/// The test signals, at −12 dBFS: a 1 kHz tone, or a sweep from 300 Hz to 4 kHz each second
/// (for the echo canceller to measure the speaker-to-microphone path on).
const TONE_HZ: f32 = 1000.0;
const SWEEP_HZ: (f32, f32) = (300.0, 4000.0);
const TONE_AMPLITUDE: f32 = 8192.0;

/// Adds the test signal to a period of the loudspeaker's signal: the tone, or the sweep at
/// `sweep_at` samples from its start.
fn add_test_signal(samples: &mut [i16], phase: &mut f32, sweep_at: Option<usize>) {
    let rate = SAMPLE_RATE as usize;
    for (i, s) in samples.iter_mut().enumerate() {
        let hz = match sweep_at {
            None => TONE_HZ,
            Some(start) => {
                let t = ((start + i) % rate) as f32 / rate as f32;
                SWEEP_HZ.0 + (SWEEP_HZ.1 - SWEEP_HZ.0) * t
            }
        };
        *s = s.saturating_add((phase.sin() * TONE_AMPLITUDE) as i16);
        *phase = (*phase + std::f32::consts::TAU * hz / SAMPLE_RATE as f32) % std::f32::consts::TAU;
    }
}

/// A device error: counted, and after [`GONE_AFTER_ERRORS`] in a row the device is gone.
fn device_error(consecutive: &mut u32, shared: &AudioShared, kind: AudioErrorKind) -> bool {
    shared.device_errors.fetch_add(1, Ordering::Relaxed);
    if kind == AudioErrorKind::Xrun {
        shared.xruns.fetch_add(1, Ordering::Relaxed);
        return false;
    }
    *consecutive += 1;
    *consecutive >= GONE_AFTER_ERRORS
}

/// One period: read, process and send the microphone, mix and play what came in. `Err`:
/// the device is gone (what it said).
#[allow(clippy::too_many_arguments)]
fn one_period<C: AudioCapture, P: AudioPlayback>(
    dev: &mut Devices<C, P>,
    pace: &mut Pace,
    capture_path: &mut CapturePath,
    playout: &mut PlayoutPath,
    ends: &mut AudioEnds,
    shared: &AudioShared,
) -> Result<(), String> {
    let input = &mut pace.input[..dev.in_samples];
    match dev.capture.read(input) {
        Ok(()) => pace.consecutive_errors = 0,
        Err(e) => {
            input.fill(0);
            if device_error(&mut pace.consecutive_errors, shared, e.kind()) {
                return Err(format!("capture: {e}"));
            }
        }
    }
    // The period just read began one period ago: that is when its first sample reached the
    // microphone (the card's own buffering aside).
    let now_us = shared.now_us();
    if pace.first_period {
        let period_ns = PERIOD_SAMPLES as u64 * 1_000_000_000 / u64::from(SAMPLE_RATE);
        shared
            .capture_start_unix_ns
            .store(unix_ns().saturating_sub(period_ns), Ordering::Relaxed);
    }
    for (i, s) in input.iter().enumerate() {
        pace.mic_energy[i % dev.in_channels] += f64::from(*s) * f64::from(*s);
    }
    pace.mic_samples += PERIOD_SAMPLES;
    let period = shared.periods.fetch_add(1, Ordering::Relaxed);
    if period % 10 == 0 {
        shared.playout.publish(&playout.stats().jitter);
        shared.capture.publish(&capture_path.stats(), pace.level_db);
        shared
            .capture
            .publish_mics(&pace.mic_energy[..dev.in_channels], pace.mic_samples);
        pace.mic_energy = [0.0; MAX_CHANNELS];
        pace.mic_samples = 0;
    }
    let wanted_loss = shared.expected_loss_percent.load(Ordering::Relaxed);
    if wanted_loss != pace.expected_loss && capture_path.set_expected_loss(wanted_loss).is_ok() {
        pace.expected_loss = wanted_loss;
    }

    dev.beamformer.process(input, &mut pace.mono);
    let allowed = shared.transmit.load(Ordering::Relaxed);
    let ssrc = shared.ssrc.load(Ordering::Relaxed);
    let mut woke_net = false;
    match capture_path.push_period(&pace.mono, allowed && ssrc != 0, ssrc) {
        Ok(Some(out)) => {
            pace.level_db = out.level_db;
            let percent = ((out.level_db + 60.0).clamp(0.0, 60.0) * 100.0 / 60.0) as u8;
            shared.level_percent.store(percent, Ordering::Relaxed);
            if let Some(frame) = out.frame {
                woke_net = true;
                if ends.to_net.enqueue(frame).is_err() {
                    shared.tx_queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(change) = out.spurt {
                woke_net = true;
                let _ = ends
                    .events
                    .enqueue(AudioEvent::Spurt(change == SpurtChange::Started));
            }
        }
        Ok(None) => {}
        Err(_) => {
            shared.device_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    shared
        .rtp_clock
        .store(capture_path.rtp_clock(), Ordering::Relaxed);
    while let Some(r) = ends.from_net.dequeue() {
        playout.push(r.frame, r.arrival_us);
    }
    let priority = shared.priority.load(Ordering::Relaxed);
    playout.set_priority(u32::try_from(priority).ok());
    playout.next_period(now_us, &mut pace.mixed);
    let tone = shared.test_tone_periods.load(Ordering::Relaxed);
    if tone > 0 {
        shared.test_tone_periods.store(tone - 1, Ordering::Relaxed);
        let sweep = shared
            .test_sweep
            .load(Ordering::Relaxed)
            .then_some(pace.tone_position);
        add_test_signal(&mut pace.mixed, &mut pace.tone_phase, sweep);
        pace.tone_position += PERIOD_SAMPLES;
    } else {
        pace.tone_position = 0;
    }
    // What the loudspeaker plays is what the echo canceller listens for.
    capture_path.push_reference(&pace.mixed);
    if playout.take_first_audio() {
        woke_net = true;
        let _ = ends
            .events
            .enqueue(AudioEvent::FirstAudio { unix_ns: unix_ns() });
    }
    if woke_net {
        // Non-blocking; a full socket means the network task has a wake-up pending.
        let _ = ends.wake.send(&[1]);
    }
    let output = &mut pace.output[..dev.out_channels * PERIOD_SAMPLES];
    for (frame, &s) in output
        .chunks_exact_mut(dev.out_channels)
        .zip(pace.mixed.iter())
    {
        frame.fill(s);
    }
    if pace.first_period {
        // With no buffering on the card, the first period starts playing now.
        shared
            .playback_start_unix_ns
            .store(unix_ns(), Ordering::Relaxed);
        pace.first_period = false;
    }
    if let Err(e) = dev.playback.write(output)
        && device_error(&mut pace.consecutive_errors, shared, e.kind())
    {
        return Err(format!("playback: {e}"));
    }
    Ok(())
}

/// Tells the network task (and the status) whether the sound device works.
fn device_state(shared: &AudioShared, ends: &mut AudioEnds, working: bool) {
    shared.device_gone.store(!working, Ordering::Relaxed);
    let _ = ends.events.enqueue(AudioEvent::Device { working });
    let _ = ends.wake.send(&[1]);
}

/// Runs until `shared.running` is cleared. `open` opens the sound devices (on this thread:
/// ALSA handles stay on the thread that opened them). A device that fails for good
/// (unplugged, a codec error) is closed and reopened every second until it works again;
/// meanwhile the thread keeps its 10 ms pace, drops what arrives for playout, and the
/// station carries on without audio. `on_started` runs on this thread just before the loop
/// (tests use it to start counting allocations): nothing is allocated after it while the
/// devices work (reopening a device does allocate).
#[allow(clippy::too_many_arguments)]
pub fn run<C: AudioCapture, P: AudioPlayback, E: std::fmt::Display>(
    mut open: impl FnMut() -> Result<(C, P), E>,
    mics: &[u16],
    mic_geometry_mm: &[[f32; 3]],
    capture_path: &mut CapturePath,
    playout: &mut PlayoutPath,
    ends: &mut AudioEnds,
    shared: &AudioShared,
    on_started: impl FnOnce(),
) {
    let mut devices = match open_devices(&mut open, mics, mic_geometry_mm) {
        Ok(d) => {
            // Said once at start too: the boot health check waits for a working device.
            device_state(shared, ends, true);
            Some(d)
        }
        Err(e) => {
            log::error!("sound device: {e}; trying again every second");
            device_state(shared, ends, false);
            None
        }
    };
    let mut retry_at = Instant::now() + REOPEN_EVERY;
    let mut pace = Pace {
        consecutive_errors: 0,
        first_period: true,
        expected_loss: 0,
        level_db: -100.0,
        input: [0; MAX_CHANNELS * PERIOD_SAMPLES],
        output: [0; MAX_CHANNELS * PERIOD_SAMPLES],
        mono: [0; PERIOD_SAMPLES],
        mixed: [0; PERIOD_SAMPLES],
        tone_phase: 0.0,
        tone_position: 0,
        mic_energy: [0.0; MAX_CHANNELS],
        mic_samples: 0,
    };
    shared
        .rtp_clock
        .store(capture_path.rtp_clock(), Ordering::Relaxed);
    on_started();
    while shared.running.load(Ordering::Relaxed) {
        if let Some(dev) = devices.as_mut() {
            if let Err(e) = one_period(dev, &mut pace, capture_path, playout, ends, shared) {
                log::error!("sound device gone ({e}); trying to reopen it every second");
                devices = None;
                shared.device_faults.fetch_add(1, Ordering::Relaxed);
                device_state(shared, ends, false);
                retry_at = Instant::now() + REOPEN_EVERY;
            }
            continue;
        }
        // No device: keep the pace, drop what comes in, try again now and then.
        while ends.from_net.dequeue().is_some() {}
        std::thread::sleep(PERIOD);
        if Instant::now() >= retry_at {
            retry_at = Instant::now() + REOPEN_EVERY;
            if let Ok(d) = open_devices(&mut open, mics, mic_geometry_mm) {
                log::info!("sound device back");
                devices = Some(d);
                pace.consecutive_errors = 0;
                shared.device_reopened.fetch_add(1, Ordering::Relaxed);
                device_state(shared, ends, true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_tone_is_a_kilohertz_at_minus_twelve_dbfs() {
        let mut period = [0i16; PERIOD_SAMPLES];
        let mut phase = 0.0;
        add_test_signal(&mut period, &mut phase, None);
        let peak = period.iter().map(|s| s.unsigned_abs()).max().unwrap();
        assert!((8100..=8192).contains(&peak), "peak {peak}");
        // 1 kHz in 10 ms: ten cycles, about twenty sign changes.
        let crossings = period
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((19..=21).contains(&crossings), "{crossings} crossings");
        // Added to what plays, it saturates rather than wrapping over.
        let mut loud = [i16::MAX; PERIOD_SAMPLES];
        add_test_signal(&mut loud, &mut phase, None);
        assert!(loud.iter().all(|s| *s >= i16::MAX - 8192));
    }

    #[test]
    fn the_sweep_rises_from_300_hz_to_4_khz() {
        let crossings = |at: usize| {
            let mut period = [0i16; PERIOD_SAMPLES];
            let mut phase = 0.0;
            add_test_signal(&mut period, &mut phase, Some(at));
            period
                .windows(2)
                .filter(|w| (w[0] < 0) != (w[1] < 0))
                .count()
        };
        // 10 ms at about 300 Hz: six sign changes; near the end of the second, about 80.
        assert!((4..=8).contains(&crossings(0)), "{}", crossings(0));
        let late = crossings(47_000);
        assert!((70..=82).contains(&late), "{late}");
    }

    #[test]
    fn each_microphone_has_its_own_level() {
        let counters = CaptureCounters::default();
        // Channel 0 a full-scale square wave (0 dBFS), channel 1 at a tenth (-20 dBFS),
        // channel 2 silent.
        let energy = [32768.0 * 32768.0 * 480.0, 3276.8 * 3276.8 * 480.0, 0.0];
        counters.publish_mics(&energy, 480);
        let level = |i: usize| counters.mic_level_centi_db[i].load(Ordering::Relaxed);
        assert_eq!(level(0), 0);
        assert!((-2001..=-1999).contains(&level(1)), "{}", level(1));
        assert_eq!(level(2), -12000);
        assert_eq!(counters.mic_channels.load(Ordering::Relaxed), 3);
    }
}
