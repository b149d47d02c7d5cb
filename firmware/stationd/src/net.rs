//! The network task: plumbing around the station core. It waits for the next input, datagram
//! or deadline, feeds it to the core, and carries out what it asks — open or close a signaling
//! connection, send a frame or a datagram, resolve a name beside the loop, tell the audio
//! thread to transmit, light the LEDs. Every decision is the core's; the order in which its
//! outputs are drained is the core's poll contract (`stagebox_core::station`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use rustls::ClientConfig;
use stagebox_audio::frame::MediaFrame;
use stagebox_core::ButtonId;
use stagebox_core::LedState;
use stagebox_core::led_language::is_animated;
use stagebox_core::media_route::{RESOLVE_TIMEOUT, ResolveFailure, ResolveRequest};
use stagebox_core::{ConnId, Datagram, Station, StationEvent};
use stagebox_hal::Indicator;
use stagebox_logging::Untrusted;
use stagebox_proto::media::MAX_DATAGRAM;
use stagebox_proto::red::PT_RED;

use crate::audio_thread::{AudioEvent, AudioShared, NetEnds, Received};
use crate::input::{Command, Input};
use crate::report::Milestones;
use crate::ws;
use stagebox_ws_link::{LinkSender, Outgoing};

/// How often the loop wakes with nothing to do (signals, LED level). Audio from the audio
/// thread wakes it at once (see `NetEnds::woken`).
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Builds the stats report on request.
pub type ReportFn = Box<dyn Fn(&Station, &AudioShared, &Milestones) -> String>;

/// How long the test tone plays, in 10 ms periods.
const TONE_PERIODS: u32 = 200;
/// How long each state shows in the LED tour.
pub const LED_TOUR_STEP: Duration = Duration::from_millis(1500);

/// Resolutions running at once at most; a resolver that hangs holds a thread each.
const MAX_RESOLUTIONS_IN_FLIGHT: usize = 4;

pub struct NetTask<L> {
    /// What it was made of.
    parts: NetParts<L>,
    led_failing: bool,
    watchdog: crate::notify::Watchdog,
    milestones: Milestones,
    conns: HashMap<ConnId, LinkSender>,
    resolutions_in_flight: Arc<AtomicUsize>,
    quit: bool,
    /// The LED tour: when it started, and the step on the LEDs.
    led_tour: Option<(Instant, usize)>,
}

enum Wake {
    Input(Input),
    Datagram(usize, SocketAddr),
    /// The audio thread queued frames or events.
    Audio,
    Tick,
}

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What the network task is made of.
pub struct NetParts<L> {
    pub station: Station,
    pub tls: Arc<ClientConfig>,
    /// Both ends of the input queue (connection tasks, control socket, buttons send to it).
    pub inputs: (async_channel::Sender<Input>, async_channel::Receiver<Input>),
    pub udp: async_net::UdpSocket,
    pub audio: NetEnds,
    pub shared: Arc<AudioShared>,
    pub leds: L,
    pub shutdown: Arc<AtomicBool>,
    pub report: ReportFn,
    /// Updates and the boot health check, where the configuration has `[update]`.
    pub updater: Option<crate::updater::Updater>,
}

impl<L: Indicator> NetTask<L> {
    pub fn new(parts: NetParts<L>) -> Self {
        NetTask {
            parts,
            led_failing: false,
            watchdog: crate::notify::Watchdog::from_env(),
            milestones: Milestones::default(),
            conns: HashMap::new(),
            resolutions_in_flight: Arc::new(AtomicUsize::new(0)),
            quit: false,
            led_tour: None,
        }
    }

    pub async fn run(mut self) {
        let mut datagram = vec![0u8; 2048];
        let mut sealed = [0u8; MAX_DATAGRAM];
        let inputs = self.parts.inputs.1.clone();
        let udp = self.parts.udp.clone();
        let woken = match self
            .parts
            .audio
            .woken
            .try_clone()
            .map(async_net::unix::UnixDatagram::try_from)
        {
            Ok(Ok(w)) => Some(w),
            _ => {
                log::error!("cannot watch the audio thread's wake-ups; polling it instead");
                None
            }
        };
        let mut wake_bytes = [0u8; 64];
        self.milestones.start_unix_ns = unix_ns();
        loop {
            let now = Instant::now();
            self.parts.station.handle_timeout(now);
            if let Some(updater) = &mut self.parts.updater {
                updater.tick(now, &mut self.parts.station);
            }
            let playout = &self.parts.shared.playout;
            self.parts.station.handle_reception(
                now,
                playout.received.load(Ordering::Relaxed),
                playout.lost.load(Ordering::Relaxed),
            );
            self.parts.station.handle_playout_figures(
                now,
                stagebox_core::link_report::PlayoutFigures {
                    arrival_spread_us: playout.arrival_spread_us.load(Ordering::Relaxed),
                    current_delay_us: playout.current_delay_us.load(Ordering::Relaxed),
                    played: playout.played.load(Ordering::Relaxed),
                    concealed: playout.concealed.load(Ordering::Relaxed),
                },
            );
            self.apply_outputs(now).await;
            self.pump_audio(now, &mut sealed).await;
            self.apply_outputs(now).await;
            self.tour_leds(now);
            if self.led_tour.is_none() && self.parts.station.led() == stagebox_core::LedState::Live
            {
                let level = self.parts.shared.level_percent.load(Ordering::Relaxed);
                let r = self.parts.leds.level(level);
                self.led_result(r);
            }
            let r = self.parts.leds.refresh(now);
            self.led_result(r);
            self.watchdog.pet(now);
            let rtp_clock = self.parts.shared.rtp_clock.load(Ordering::Relaxed);
            while let Some(d) = self
                .parts
                .station
                .poll_datagram(now, rtp_clock, &mut sealed)
            {
                self.send_datagram(d, &sealed).await;
            }
            if self.quit || self.parts.shutdown.load(Ordering::Relaxed) {
                break;
            }
            // Without the wake-up socket, poll the audio queues every period instead.
            let poll = if woken.is_none() && self.parts.station.media_destination().is_some() {
                Duration::from_millis(10)
            } else {
                IDLE_POLL
            };
            let deadline = [
                self.parts.station.poll_timeout(),
                self.parts
                    .updater
                    .as_ref()
                    .and_then(crate::updater::Updater::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .fold(now + poll, Instant::min)
            .max(now);
            let deadline = if is_animated(self.parts.station.led()) {
                deadline.min(now + stagebox_hal::drivers::REFRESH)
            } else {
                deadline
            };
            let deadline = match self.led_tour {
                Some((since, step)) => deadline.min(since + LED_TOUR_STEP * (step as u32 + 1)),
                None => deadline,
            };
            let deadline = self.watchdog.next(deadline);
            let wake = future::or(
                async { inputs.recv().await.map_or(Wake::Tick, Wake::Input) },
                future::or(
                    async {
                        match udp.recv_from(&mut datagram).await {
                            Ok((n, from)) => Wake::Datagram(n, from),
                            Err(_) => Wake::Tick,
                        }
                    },
                    future::or(
                        async {
                            match &woken {
                                Some(w) => {
                                    let _ = w.recv(&mut wake_bytes).await;
                                    Wake::Audio
                                }
                                None => future::pending().await,
                            }
                        },
                        async {
                            smol::Timer::at(deadline).await;
                            Wake::Tick
                        },
                    ),
                ),
            )
            .await;
            let now = Instant::now();
            match wake {
                Wake::Input(input) => self.handle_input(now, input),
                Wake::Datagram(n, from) => {
                    self.handle_datagram(now, from, datagram.get_mut(..n).unwrap_or(&mut []))
                }
                Wake::Audio | Wake::Tick => {}
            }
        }
        // Leave politely: the core closes as going away, so the server keeps the session for
        // the resume a restart of the daemon wants.
        let now = Instant::now();
        self.parts.station.handle_shutdown(now);
        self.apply_outputs(now).await;
        smol::Timer::after(Duration::from_millis(100)).await;
    }

    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connected { conn } => self.parts.station.handle_connected(now, conn),
            Input::ConnectFailed { conn, failure } => {
                self.conns.remove(&conn);
                self.parts.station.handle_connect_failed(now, conn, failure);
            }
            Input::Text { conn, text } => self.parts.station.handle_text(now, conn, &text),
            Input::Resolved { id, answer } => self.parts.station.handle_resolved(now, id, answer),
            Input::Malformed { conn } => self.parts.station.handle_malformed(now, conn),
            Input::Closed { conn, code } => {
                self.conns.remove(&conn);
                self.parts.station.handle_closed(now, conn, code);
            }
            Input::Button { id, pressed } => {
                let seen = &mut self.milestones.buttons;
                match id {
                    ButtonId::Ptt => seen.ptt_down = pressed,
                    ButtonId::Hand => seen.hand_down = pressed,
                }
                seen.presses += u64::from(pressed);
                self.parts.station.handle_button(now, id, pressed)
            }
            Input::Update(u) => {
                if let Some(updater) = &mut self.parts.updater {
                    updater.handle_input(now, u);
                }
            }
            Input::Command { command, reply } => {
                let answer = match command {
                    Command::Stats => (self.parts.report)(
                        &self.parts.station,
                        &self.parts.shared,
                        &self.milestones,
                    ),
                    Command::CheckUpdate => match &mut self.parts.updater {
                        Some(updater) => {
                            updater.check_now(now);
                            "{\"ok\":true}".to_string()
                        }
                        None => "{\"ok\":false,\"error\":\"no [update] section\"}".to_string(),
                    },
                    Command::Quit => {
                        self.quit = true;
                        "{\"ok\":true}".to_string()
                    }
                    Command::Tone { sweep } => {
                        let shared = &self.parts.shared;
                        shared.test_sweep.store(sweep, Ordering::Relaxed);
                        shared
                            .test_tone_periods
                            .store(TONE_PERIODS, Ordering::Relaxed);
                        let what = if sweep { "sweep" } else { "tone" };
                        log::info!("test {what} on the loudspeaker (console)");
                        serde_json::json!({
                            "ok": true,
                            "signal": what,
                            "hz": if sweep { serde_json::json!([300, 4000]) } else { serde_json::json!(1000) },
                            "dbfs": -12,
                            "seconds": TONE_PERIODS / 100,
                        })
                        .to_string()
                    }
                    Command::LedTour => {
                        log::info!("LED tour (console)");
                        self.led_tour = Some((now, usize::MAX));
                        let names: Vec<&str> = LedState::ALL.iter().map(|s| s.name()).collect();
                        serde_json::json!({
                            "ok": true,
                            "states": names,
                            "step_ms": LED_TOUR_STEP.as_millis() as u64,
                        })
                        .to_string()
                    }
                    Command::Stall(d) => {
                        log::warn!("network task stalled for {} ms on request", d.as_millis());
                        // Blocks this task on purpose: connection tasks run on, and meet the
                        // bounded input queue.
                        std::thread::sleep(d);
                        "{\"ok\":true}".to_string()
                    }
                };
                let _ = reply.try_send(answer);
            }
        }
    }

    /// LED failures are logged once per streak: the station works on without its LEDs.
    /// The LED tour's next step, and the station's own state back at its end.
    fn tour_leds(&mut self, now: Instant) {
        let Some((since, shown)) = self.led_tour else {
            return;
        };
        let step =
            (now.saturating_duration_since(since).as_millis() / LED_TOUR_STEP.as_millis()) as usize;
        if step == shown {
            return;
        }
        let state = match LedState::ALL.get(step) {
            Some(s) => {
                self.led_tour = Some((since, step));
                *s
            }
            None => {
                self.led_tour = None;
                self.parts.station.led()
            }
        };
        let r = self.parts.leds.show(now, state);
        self.led_result(r);
    }

    fn led_result<E: std::fmt::Display>(&mut self, r: Result<(), E>) {
        match r {
            Ok(()) => self.led_failing = false,
            Err(e) if !self.led_failing => {
                self.led_failing = true;
                log::warn!("LEDs: {e}");
            }
            Err(_) => {}
        }
    }

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, packet: &mut [u8]) {
        let Some(opened) = self.parts.station.handle_datagram(now, from, packet) else {
            return;
        };
        let payload = packet.get(opened.payload).unwrap_or(&[]);
        let h = opened.header;
        if let Some(frame) = MediaFrame::new(h.ssrc, h.sequence, h.timestamp, h.marker, payload)
            .map(|f| f.with_redundancy(h.payload_type == PT_RED))
            && self
                .parts
                .audio
                .to_audio
                .enqueue(Received {
                    frame,
                    arrival_us: self.parts.shared.now_us(),
                })
                .is_err()
        {
            log::debug!("playout queue full, frame dropped");
        }
    }

    async fn pump_audio(&mut self, now: Instant, sealed: &mut [u8; MAX_DATAGRAM]) {
        while let Some(frame) = self.parts.audio.from_audio.dequeue() {
            if let Some(d) =
                self.parts
                    .station
                    .seal_audio(frame.timestamp, frame.marker, &frame.payload, sealed)
            {
                self.send_datagram(d, sealed).await;
            }
        }
        while let Some(ev) = self.parts.audio.events.dequeue() {
            match ev {
                AudioEvent::Spurt(speaking) => self.parts.station.handle_talk_spurt(now, speaking),
                AudioEvent::Device { working } => {
                    self.parts.station.handle_audio_device(now, working);
                    if let (true, Some(updater)) = (working, &mut self.parts.updater) {
                        updater.handle_audio_open(now);
                    }
                }
                AudioEvent::FirstAudio { unix_ns } => {
                    if self.milestones.first_audio_unix_ns == 0 {
                        self.milestones.first_audio_unix_ns = unix_ns;
                        log::info!("first audio played");
                    }
                }
            }
        }
    }

    /// Sends what the core sealed, to where it says (v4-mapped from a dual-stack socket).
    async fn send_datagram(&self, d: Datagram, sealed: &[u8; MAX_DATAGRAM]) {
        let dest = match self.parts.udp.local_addr() {
            Ok(local) => crate::udp::peer_address(local, d.dest),
            Err(_) => d.dest,
        };
        let bytes = sealed.get(..d.len).unwrap_or(&[]);
        if let Err(e) = self.parts.udp.send_to(bytes, dest).await {
            log::debug!("UDP send to {dest}: {e}");
        }
    }

    async fn apply_outputs(&mut self, now: Instant) {
        loop {
            let mut did = false;
            while let Some((conn, msg)) = self.parts.station.poll_transmit() {
                did = true;
                if let Some(tx) = self.conns.get(&conn)
                    && tx.send(Outgoing::Text(msg.to_json())).is_err()
                {
                    log::warn!("the server is not reading; message dropped");
                }
            }
            while let Some(ev) = self.parts.station.poll_event() {
                did = true;
                self.apply_event(now, ev).await;
            }
            if !did {
                break;
            }
        }
    }

    async fn apply_event(&mut self, now: Instant, ev: StationEvent) {
        match ev {
            StationEvent::Connect { conn, url } => {
                log::info!("connecting to {}", Untrusted(&url));
                let (tx, rx) = stagebox_ws_link::link(ws::SEND_QUEUE);
                self.conns.insert(conn, tx);
                smol::spawn(ws::run(
                    conn,
                    url,
                    self.parts.tls.clone(),
                    self.parts.inputs.0.clone(),
                    rx,
                ))
                .detach();
            }
            StationEvent::Close { conn, code } => {
                if let Some(tx) = self.conns.remove(&conn)
                    && tx.send(Outgoing::Close(code.as_u16())).is_err()
                {
                    tx.hang_up();
                }
            }
            StationEvent::Resolve(request) => self.resolve(request),
            StationEvent::MediaStarted { ssrc, red } => {
                self.parts.shared.ssrc.store(ssrc, Ordering::Relaxed);
                if self.milestones.ready_unix_ns == 0 {
                    self.milestones.ready_unix_ns = unix_ns();
                }
                let dest = self
                    .parts
                    .station
                    .media_destination()
                    .map_or_else(|| "(resolving)".to_string(), |d| d.to_string());
                log::info!(
                    "media session: {dest} ssrc {ssrc}{}",
                    if red { ", redundant audio" } else { "" }
                );
            }
            StationEvent::MediaRefused(e) => {
                log::error!("media session refused: {e}; joining afresh");
            }
            StationEvent::Transmit(on) => {
                log::info!("transmit {}", if on { "on" } else { "off" });
                self.parts.shared.transmit.store(on, Ordering::Relaxed);
                if on && self.milestones.transmit_unix_ns == 0 {
                    self.milestones.transmit_unix_ns = unix_ns();
                }
            }
            StationEvent::Priority(ssrc) => {
                self.parts
                    .shared
                    .priority
                    .store(ssrc.map_or(u64::MAX, u64::from), Ordering::Relaxed);
            }
            StationEvent::Led(state) => {
                log::info!("LED {}", state.name());
                // During the LED tour the station's state waits for its end.
                if self.led_tour.is_none() {
                    let r = self.parts.leds.show(now, state);
                    self.led_result(r);
                }
            }
            StationEvent::ButtonStuck { button, stuck } => {
                if stuck {
                    log::warn!(
                        "{button:?} button held too long: taken for stuck, not transmitting"
                    );
                } else {
                    log::info!("{button:?} button released after being stuck");
                }
            }
            StationEvent::Protection(p) => {
                self.parts
                    .shared
                    .expected_loss_percent
                    .store(p.fec_loss_percent, Ordering::Relaxed);
                log::info!(
                    "listeners lose {} %: {} earlier frame(s) per packet, FEC for {} %",
                    self.parts.station.expected_loss(),
                    p.redundancy,
                    p.fec_loss_percent
                );
            }
            StationEvent::Speaking {
                station_id,
                speaking,
                ..
            } => {
                log::debug!(
                    "{} {}",
                    Untrusted(&station_id),
                    if speaking { "speaking" } else { "quiet" }
                );
            }
        }
    }

    /// Resolves a media host name beside the loop: the answer comes back as an input, a
    /// resolver that does not answer in time is given up (the core retries with backoff).
    fn resolve(&mut self, request: ResolveRequest) {
        let in_flight = self.resolutions_in_flight.clone();
        let inputs = self.parts.inputs.0.clone();
        let ResolveRequest { id, host, port } = request;
        if in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_RESOLUTIONS_IN_FLIGHT {
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let answer = Err(ResolveFailure::Failed("too many resolutions hang".into()));
            let _ = inputs.try_send(Input::Resolved { id, answer });
            return;
        }
        log::info!("resolving media server {}", Untrusted(&host));
        // The lookup runs to its end on its own (a hung resolver holds its thread, counted in
        // `in_flight`); the answer is awaited only until the timeout.
        let (found_tx, found_rx) = async_channel::bounded(1);
        let lookup_host = host.clone();
        smol::spawn(async move {
            let answer = match async_net::resolve((lookup_host.as_str(), port)).await {
                Ok(addrs) => addrs.into_iter().next().ok_or(ResolveFailure::NoAddress),
                Err(e) => Err(ResolveFailure::Failed(e.to_string())),
            };
            in_flight.fetch_sub(1, Ordering::Relaxed);
            let _ = found_tx.try_send(answer);
        })
        .detach();
        smol::spawn(async move {
            let found = async {
                found_rx
                    .recv()
                    .await
                    .unwrap_or(Err(ResolveFailure::NoAddress))
            };
            let timeout = async {
                smol::Timer::after(RESOLVE_TIMEOUT).await;
                Err(ResolveFailure::TimedOut)
            };
            let answer = future::or(found, timeout).await;
            match &answer {
                Ok(addr) => log::info!("media server {} is {addr}", Untrusted(&host)),
                Err(e) => log::warn!("cannot resolve media server {}: {e:?}", Untrusted(&host)),
            }
            let _ = inputs.send(Input::Resolved { id, answer }).await;
        })
        .detach();
    }
}
