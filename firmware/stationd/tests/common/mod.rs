//! The audio thread on sim devices, unpaced, with a stand-in for the network task: what the
//! station sends comes back as speaker 100 (as if forwarded) and a second speaker 200 talks
//! too, so the whole chain runs — capture processing and encoding, two streams decoded and
//! mixed with ducking.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

use stagebox_audio::frame::{FrameDuration, PERIOD_SAMPLES};
use stagebox_audio::jitter::JitterConfig;
use stagebox_audio::pipeline::{CaptureConfig, CapturePath, PlayoutPath};
use stagebox_hal::StreamFormat;
use stagebox_hal::sim::{MicControl, SimCapture, SimError, SimPlayback};
use stagebox_stationd::audio_thread::{self, AudioEvent, AudioShared, NetEnds, Received};

/// Speech-like test signal: 300 Hz bursts, 700 ms on, 300 ms off.
pub fn bursts(seconds: usize) -> Vec<i16> {
    (0..seconds * 48_000)
        .map(|i| {
            if i % 48_000 < 33_600 {
                (6000.0 * (2.0 * std::f32::consts::PI * 300.0 * i as f32 / 48_000.0).sin()) as i16
            } else {
                0
            }
        })
        .collect()
}

pub struct AudioRig {
    pub shared: Arc<AudioShared>,
    pub net: NetEnds,
    thread: Option<JoinHandle<()>>,
    /// The sim sound card: pull it out, plug it back in.
    pub card: MicControl,
    other: CapturePath,
    other_signal: Vec<i16>,
    seq_a: u16,
    seq_b: u16,
    period: usize,
    /// Frames the station sent that came back.
    pub sent: u64,
    /// What the audio thread told the network task.
    pub events: Vec<AudioEvent>,
}

impl AudioRig {
    /// Starts the audio thread with the full capture chain; `on_started` runs on it just
    /// before its loop.
    pub fn start(on_started: impl FnOnce() + Send + 'static) -> AudioRig {
        let card = MicControl::default();
        let signal = bursts(60);
        let thread_card = card.clone();
        let open = move || -> Result<(SimCapture, SimPlayback), SimError> {
            if thread_card.is_unplugged() {
                return Err(SimError::Unplugged);
            }
            let capture = SimCapture::new(StreamFormat::mono(), signal.clone(), false)
                .with_control(thread_card.clone())
                .autoplay();
            Ok((capture, SimPlayback::discard(StreamFormat::mono())))
        };
        // The whole chain: beamforming, echo cancellation, noise suppression, gain control.
        let mut capture_config = CaptureConfig::new(FrameDuration::Ms20);
        capture_config.processing = Some(stagebox_audio::ApmConfig::default());
        let mut capture_path = CapturePath::new(capture_config, 0).unwrap();
        let mut playout = PlayoutPath::new(JitterConfig::default()).unwrap();
        let (mut audio_ends, net) = audio_thread::queues().unwrap();
        let shared = Arc::new(AudioShared::default());
        shared.transmit.store(true, Ordering::SeqCst);
        shared.ssrc.store(7, Ordering::SeqCst);
        shared.priority.store(100, Ordering::SeqCst);
        let thread_shared = shared.clone();
        let thread = std::thread::spawn(move || {
            audio_thread::run(
                open,
                &[0],
                &[],
                &mut capture_path,
                &mut playout,
                &mut audio_ends,
                &thread_shared,
                on_started,
            )
        });
        AudioRig {
            shared,
            net,
            thread: Some(thread),
            card,
            other: CapturePath::new(CaptureConfig::new(FrameDuration::Ms10), 0).unwrap(),
            other_signal: bursts(1),
            seq_a: 0,
            seq_b: 0,
            period: 0,
            sent: 0,
            events: Vec::new(),
        }
    }

    pub fn periods(&self) -> u64 {
        self.shared.periods.load(Ordering::SeqCst)
    }

    /// One turn of the stand-in network task.
    pub fn serve(&mut self) {
        while let Some(mut frame) = self.net.from_audio.dequeue() {
            frame.ssrc = 100;
            frame.sequence = self.seq_a;
            self.seq_a = self.seq_a.wrapping_add(1);
            self.sent += 1;
            let arrival_us = self.shared.now_us();
            let _ = self.net.to_audio.enqueue(Received { frame, arrival_us });
        }
        if self.net.to_audio.len() < 8 {
            let len = self.other_signal.len() - PERIOD_SAMPLES;
            let start = (self.period * PERIOD_SAMPLES) % len;
            if let Some(out) = self
                .other
                .push_period(&self.other_signal[start..start + PERIOD_SAMPLES], true, 200)
                .unwrap()
                && let Some(mut frame) = out.frame
            {
                frame.sequence = self.seq_b;
                self.seq_b = self.seq_b.wrapping_add(1);
                let arrival_us = self.shared.now_us();
                let _ = self.net.to_audio.enqueue(Received { frame, arrival_us });
            }
            self.period += 1;
        }
        while let Some(event) = self.net.events.dequeue() {
            self.events.push(event);
        }
        std::thread::yield_now();
    }

    /// Serves until the audio thread has run `periods` periods in all.
    pub fn serve_until(&mut self, periods: u64) {
        while self.periods() < periods {
            self.serve();
        }
    }

    /// Stops the audio thread.
    pub fn stop(mut self) {
        self.shared.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}
