//! The network task: plumbing around the station core and the media link. It waits for the
//! next input, datagram or deadline, feeds it to the cores, and carries out what they ask —
//! open or close a signaling connection, send a frame or a datagram, switch media keys, tell
//! the audio thread to transmit, light the LEDs. Every decision is the cores'.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::future;
use rustls::ClientConfig;
use stagebox_audio::frame::MediaFrame;
use stagebox_core::led_language::is_animated;
use stagebox_core::media::MediaLink;
use stagebox_core::redundancy::LossProtection;
use stagebox_core::{ConnId, Station, StationEvent};
use stagebox_hal::Indicator;
use stagebox_proto::media::MAX_DATAGRAM;
use stagebox_proto::red::PT_RED;
use stagebox_proto::signal::MediaParams;

use crate::audio_thread::{AudioEvent, AudioShared, NetEnds, Received};
use crate::input::{Command, Input};
use crate::report::Milestones;
use crate::ws::{self, WsOut};

/// How often the loop wakes with nothing to do (signals, LED level). Audio from the audio
/// thread wakes it at once (see `NetEnds::woken`).
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Builds the stats report on request.
pub type ReportFn = Box<dyn Fn(&Station, &MediaLink, &AudioShared, &Milestones) -> String>;

pub struct NetTask<L> {
    pub station: Station,
    pub media: MediaLink,
    /// The loss protection last applied (for the log).
    protection: Option<LossProtection>,
    pub tls: Arc<ClientConfig>,
    pub inputs: (async_channel::Sender<Input>, async_channel::Receiver<Input>),
    pub udp: async_net::UdpSocket,
    pub audio: NetEnds,
    pub shared: Arc<AudioShared>,
    pub leds: L,
    led_failing: bool,
    pub watchdog: crate::notify::Watchdog,
    pub shutdown: Arc<AtomicBool>,
    pub milestones: Milestones,
    pub report: ReportFn,
    conns: HashMap<ConnId, async_channel::Sender<WsOut>>,
    media_dest: Option<SocketAddr>,
    quit: bool,
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

impl<L: Indicator> NetTask<L> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        station: Station,
        tls: Arc<ClientConfig>,
        inputs: (async_channel::Sender<Input>, async_channel::Receiver<Input>),
        udp: async_net::UdpSocket,
        audio: NetEnds,
        shared: Arc<AudioShared>,
        leds: L,
        shutdown: Arc<AtomicBool>,
        report: ReportFn,
    ) -> Self {
        // The configured floor, until the listeners report.
        let mut media = MediaLink::new();
        media.handle_expected_loss(shared.expected_loss_percent.load(Ordering::Relaxed));
        NetTask {
            station,
            media,
            protection: None,
            tls,
            inputs,
            udp,
            audio,
            shared,
            leds,
            led_failing: false,
            watchdog: crate::notify::Watchdog::from_env(),
            shutdown,
            milestones: Milestones::default(),
            report,
            conns: HashMap::new(),
            media_dest: None,
            quit: false,
        }
    }

    pub async fn run(mut self) {
        let mut datagram = vec![0u8; 2048];
        let mut sealed = [0u8; MAX_DATAGRAM];
        let inputs = self.inputs.1.clone();
        let udp = self.udp.clone();
        let woken = match self
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
            self.station.handle_timeout(now);
            let playout = &self.shared.playout;
            self.station.handle_reception(
                now,
                playout.received.load(Ordering::Relaxed),
                playout.lost.load(Ordering::Relaxed),
            );
            self.apply_outputs(now).await;
            self.pump_audio(now, &mut sealed).await;
            self.apply_outputs(now).await;
            if self.station.led() == stagebox_core::LedState::Live {
                let level = self.shared.level_percent.load(Ordering::Relaxed);
                let r = self.leds.level(level);
                self.led_result(r);
            }
            let r = self.leds.refresh(now);
            self.led_result(r);
            self.watchdog.pet(now);
            let rtp_clock = self.shared.rtp_clock.load(Ordering::Relaxed);
            while let Some(n) = self.media.poll_keepalive(now, rtp_clock, &mut sealed) {
                self.send_datagram(&sealed[..n]).await;
            }
            if self.quit || self.shutdown.load(Ordering::Relaxed) {
                break;
            }
            // Without the wake-up socket, poll the audio queues every period instead.
            let poll = if woken.is_none() && self.media_dest.is_some() {
                Duration::from_millis(10)
            } else {
                IDLE_POLL
            };
            let deadline = [
                self.station.poll_timeout(),
                self.media.poll_timeout(),
                Some(now + poll),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + poll)
            .max(now);
            let deadline = if is_animated(self.station.led()) {
                deadline.min(now + stagebox_hal::drivers::REFRESH)
            } else {
                deadline
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
                    self.handle_datagram(from, datagram.get_mut(..n).unwrap_or(&mut []))
                }
                Wake::Audio | Wake::Tick => {}
            }
        }
        // Leave politely: the server may keep the session for a resume, which is what a
        // restart of the daemon wants.
        for (_, tx) in self.conns.drain() {
            let _ = tx.try_send(WsOut::Close(1001));
        }
        smol::Timer::after(Duration::from_millis(100)).await;
    }

    fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Connected { conn } => self.station.handle_connected(now, conn),
            Input::ConnectFailed { conn, failure } => {
                self.conns.remove(&conn);
                self.station.handle_connect_failed(now, conn, failure);
            }
            Input::Text { conn, text } => self.station.handle_text(now, conn, &text),
            Input::Closed { conn, code } => {
                self.conns.remove(&conn);
                self.station.handle_closed(now, conn, code);
            }
            Input::Button { id, pressed } => self.station.handle_button(now, id, pressed),
            Input::Command { command, reply } => {
                let answer = match command {
                    Command::Stats => {
                        (self.report)(&self.station, &self.media, &self.shared, &self.milestones)
                    }
                    Command::Quit => {
                        self.quit = true;
                        "{\"ok\":true}".to_string()
                    }
                };
                let _ = reply.try_send(answer);
            }
        }
    }

    /// LED failures are logged once per streak: the station works on without its LEDs.
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

    fn handle_datagram(&mut self, from: SocketAddr, packet: &mut [u8]) {
        if Some(from) != self.media_dest {
            return;
        }
        let Some(opened) = self.media.open(packet) else {
            return;
        };
        let payload = packet.get(opened.payload).unwrap_or(&[]);
        let h = opened.header;
        if let Some(frame) = MediaFrame::new(h.ssrc, h.sequence, h.timestamp, h.marker, payload)
            .map(|f| f.with_redundancy(h.payload_type == PT_RED))
            && self
                .audio
                .to_audio
                .enqueue(Received {
                    frame,
                    arrival_us: self.shared.now_us(),
                })
                .is_err()
        {
            log::debug!("playout queue full, frame dropped");
        }
    }

    async fn pump_audio(&mut self, now: Instant, sealed: &mut [u8; MAX_DATAGRAM]) {
        while let Some(frame) = self.audio.from_audio.dequeue() {
            if let Some(n) =
                self.media
                    .seal_audio(frame.timestamp, frame.marker, &frame.payload, sealed)
            {
                self.send_datagram(&sealed[..n]).await;
            }
        }
        while let Some(ev) = self.audio.events.dequeue() {
            match ev {
                AudioEvent::Spurt(speaking) => self.station.handle_talk_spurt(now, speaking),
                AudioEvent::Device { working } => {
                    self.station.handle_audio_device(now, working);
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

    async fn send_datagram(&self, bytes: &[u8]) {
        if let Some(dest) = self.media_dest
            && let Err(e) = self.udp.send_to(bytes, dest).await
        {
            log::debug!("UDP send to {dest}: {e}");
        }
    }

    async fn apply_outputs(&mut self, now: Instant) {
        loop {
            let mut did = false;
            while let Some((conn, msg)) = self.station.poll_transmit() {
                did = true;
                if let Some(tx) = self.conns.get(&conn) {
                    let _ = tx.try_send(WsOut::Text(msg.to_json()));
                }
            }
            while let Some(ev) = self.station.poll_event() {
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
                log::info!("connecting to {url}");
                let (tx, rx) = async_channel::unbounded();
                self.conns.insert(conn, tx);
                smol::spawn(ws::run(
                    conn,
                    url,
                    self.tls.clone(),
                    self.inputs.0.clone(),
                    rx,
                ))
                .detach();
            }
            StationEvent::Close { conn, code } => {
                if let Some(tx) = self.conns.remove(&conn) {
                    let _ = tx.try_send(WsOut::Close(code));
                }
            }
            StationEvent::Media(params) => self.use_media(now, &params).await,
            StationEvent::Transmit(on) => {
                log::info!("transmit {}", if on { "on" } else { "off" });
                self.shared.transmit.store(on, Ordering::Relaxed);
                if on && self.milestones.transmit_unix_ns == 0 {
                    self.milestones.transmit_unix_ns = unix_ns();
                }
            }
            StationEvent::Priority(ssrc) => {
                self.shared
                    .priority
                    .store(ssrc.map_or(u64::MAX, u64::from), Ordering::Relaxed);
            }
            StationEvent::Led(state) => {
                log::info!("LED {}", state.name());
                let r = self.leds.show(now, state);
                self.led_result(r);
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
            StationEvent::ExpectedLoss(percent) => {
                self.media.handle_expected_loss(percent);
                self.apply_loss_protection();
            }
            StationEvent::Speaking {
                station_id,
                speaking,
                ..
            } => {
                log::debug!(
                    "{station_id} {}",
                    if speaking { "speaking" } else { "quiet" }
                );
            }
        }
    }

    /// Gives the encoder the FEC the media link's loss protection asks for (none where
    /// redundant audio covers the loss), and says what changed.
    fn apply_loss_protection(&mut self) {
        let p = self.media.protection();
        self.shared
            .expected_loss_percent
            .store(p.fec_loss_percent, Ordering::Relaxed);
        if self.protection.replace(p) != Some(p) {
            log::info!(
                "listeners lose {} %: {} earlier frame(s) per packet, FEC for {} %",
                self.media.expected_loss(),
                p.redundancy,
                p.fec_loss_percent
            );
        }
    }

    async fn use_media(&mut self, now: Instant, params: &MediaParams) {
        if let Err(e) = self.media.handle_params(now, params, fastrand::u16(..)) {
            log::error!("media session refused: {e}");
            return;
        }
        let dest = match params.host.parse::<IpAddr>() {
            Ok(ip) => Some(SocketAddr::new(ip, params.port)),
            Err(_) => async_net::resolve((params.host.as_str(), params.port))
                .await
                .ok()
                .and_then(|a| a.into_iter().next()),
        };
        if dest.is_none() {
            log::error!("cannot resolve media server {}", params.host);
        }
        self.media_dest = match (dest, self.udp.local_addr()) {
            (Some(dest), Ok(local)) => Some(crate::udp::peer_address(local, dest)),
            (dest, _) => dest,
        };
        self.shared.ssrc.store(params.ssrc, Ordering::Relaxed);
        self.apply_loss_protection();
        if self.milestones.ready_unix_ns == 0 {
            self.milestones.ready_unix_ns = unix_ns();
        }
        log::info!(
            "media session: {}:{} ssrc {}",
            params.host,
            params.port,
            params.ssrc
        );
    }
}
