//! The station as one sans-IO state machine: the signaling session, the stage view, the two
//! buttons and the media link, and what they decide — whether the mic is sent, where and how
//! its datagrams go, and what the LEDs show. The plumbing carries bytes and never decides.
//!
//! # The poll contract
//!
//! After any `handle_*` call (and after [`Station::seal_audio`]), the plumbing drains, in
//! this order:
//! 1. [`Station::poll_transmit`] until `None`: signaling messages, each for its connection;
//! 2. [`Station::poll_event`] until `None`: connections to open or close, names to resolve,
//!    the media session, transmit on/off, LEDs, loss protection, in the order they happened;
//! 3. [`Station::poll_datagram`] until `None`: keepalives, with their destination;
//! 4. [`Station::poll_timeout`]: the next deadline, at which it calls
//!    [`Station::handle_timeout`] (earlier if an input arrives).
//!
//! Events only ever follow the inputs that caused them, so draining after every input keeps
//! the station's outputs in order. Inputs about a connection or a resolution that is no longer
//! current are ignored, so late answers from the plumbing cannot disturb the present.
//!
//! What the buttons mean:
//! - audience: hand toggles raise/lower; PTT does nothing (the LEDs say "audience");
//! - invited: PTT accepts, hand declines;
//! - speaker or moderator: PTT held = live; with `ptt_latch`, a double-press latches live
//!   until the next press; a long press on hand steps down to the audience;
//! - muted by a moderator: PTT does nothing audible (the LEDs say "muted").
//!
//! A button held past `StationConfig::stuck_after` is taken for stuck (a jammed key, a
//! shorted wire, something resting on it): PTT stops transmitting, the LEDs show
//! [`LedState::ButtonStuck`] and a [`StationEvent::ButtonStuck`] is reported; all of it clears
//! when the button is released. A station that has had no stage for `offline_after` shows
//! [`LedState::Offline`] instead of "reconnecting" (it keeps trying).
//!
//! A PTT press only counts for talking if it began while the station could speak: the press
//! that accepts an invitation does not go live by itself when the role changes under it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use stagebox_proto::close::{AfterClose, CloseCode};
use stagebox_proto::media::{MAX_DATAGRAM, Opened};
use stagebox_proto::signal::{ClientMsg, FirmwareStatus, Member, Role};

use crate::button::{Button, ButtonId, ButtonTiming, Gesture, GestureKind, PerButton};
use crate::led::LedState;
use crate::media::{MediaLink, MediaOfferError, MediaStats};
use crate::media_route::{MediaRoute, ResolveFailure, ResolveId, ResolveRequest, RouteStats};
use crate::redundancy::{LossProtection, ProtectionMode};
use crate::session::{ConnId, ConnectFailure, Session, SessionConfig, SessionEvent, SessionStats};
use crate::stage::{StageEvent, StageView};

/// Everything a station core needs.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub session: SessionConfig,
    pub buttons: ButtonTiming,
    /// Whether a double-press on PTT latches live.
    pub ptt_latch: bool,
    /// A button held longer than this is stuck.
    pub stuck_after: Duration,
    /// Without a stage for this long, the LEDs say offline.
    pub offline_after: Duration,
    /// The least loss the station's FEC covers, percent, whatever the listeners report.
    pub min_expected_loss: u8,
    /// How loss is met (redundant audio where negotiated, FEC only, or nothing).
    pub protection_mode: ProtectionMode,
}

impl StationConfig {
    pub fn new(session: SessionConfig) -> StationConfig {
        StationConfig {
            session,
            buttons: ButtonTiming::default(),
            ptt_latch: true,
            stuck_after: Duration::from_secs(300),
            offline_after: Duration::from_secs(60),
            min_expected_loss: 0,
            protection_mode: ProtectionMode::default(),
        }
    }
}

/// What the station core asks of the plumbing.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub enum StationEvent {
    /// Open a signaling connection.
    Connect { conn: ConnId, url: String },
    /// Close a signaling connection.
    Close { conn: ConnId, code: CloseCode },
    /// Resolve a host name beside the loop and answer with [`Station::handle_resolved`].
    Resolve(ResolveRequest),
    /// A new media session: audio goes out with this SSRC from now on.
    MediaStarted { ssrc: u32, red: bool },
    /// The server's media offer could not be used; the session is sought afresh.
    MediaRefused(MediaOfferError),
    /// Start or stop sending the microphone.
    Transmit(bool),
    /// The priority speaker changed (duck everyone else).
    Priority(Option<u32>),
    /// The LEDs should now show this.
    Led(LedState),
    /// A button was found stuck (`true`) or was released after that (`false`).
    ButtonStuck { button: ButtonId, stuck: bool },
    /// Someone started or stopped speaking.
    Speaking {
        station_id: String,
        ssrc: u32,
        speaking: bool,
    },
    /// Outgoing audio should now be protected so: the encoder's FEC follows
    /// [`LossProtection::fec_loss_percent`] (redundant copies are the core's own business).
    Protection(LossProtection),
}

/// A datagram the core sealed: send `len` bytes of the buffer to `dest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Datagram {
    pub dest: SocketAddr,
    pub len: usize,
}

/// How often a station that hears audio reports its reception to the server.
pub const RECEPTION_REPORT_EVERY: Duration = Duration::from_secs(2);
/// How soon a report goes out when frames start being lost after a report that said none:
/// speakers protect their audio within half a second of the loss, not two.
pub const RECEPTION_REPORT_ON_LOSS: Duration = Duration::from_millis(500);

/// What the push-to-talk asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Talk {
    Off,
    /// PTT is down and the press began while the station could speak.
    Held,
    /// Latched by a double-press, until the next press.
    Latched,
}

/// Where the station stands with the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageLink {
    Joined,
    /// Looking for the stage since `since` (start-up, or the loss). `refused`: the server (or
    /// its certificate) refused the station at the last attempt. `offline`: for
    /// `offline_after` or more.
    Seeking {
        since: Instant,
        refused: bool,
        offline: bool,
    },
}

#[derive(Debug)]
struct ButtonSlot {
    button: Button,
    /// Taken for stuck.
    stuck: bool,
}

#[derive(Debug)]
pub struct Station {
    session: Session,
    stage: StageView,
    buttons: PerButton<ButtonSlot>,
    media: MediaLink,
    route: MediaRoute,
    /// Sequence starts of media sessions (RFC 3550 §5.1), from the station's seed.
    rng: fastrand::Rng,
    ptt_latch: bool,
    stuck_after: Duration,
    offline_after: Duration,
    link: StageLink,
    talk: Talk,
    /// The sound device is gone (unplugged, failed); the daemon keeps trying to reopen it.
    audio_fault: bool,
    /// An update is being installed (or the station is about to reboot into it).
    installing: bool,
    /// What the station runs and where its update agent is, told to the server after each
    /// login and whenever it changes.
    firmware: Option<FirmwareStatus>,
    /// When the last reception report was due, and the totals then.
    reception: Option<(Instant, u64, u64)>,
    /// The last reception report said frames were lost.
    reported_loss: bool,
    link_report: crate::link_report::LinkReport,
    min_expected_loss: u8,
    protection: Option<LossProtection>,
    in_spurt: bool,
    transmit: bool,
    led: LedState,
    events: VecDeque<StationEvent>,
}

impl Station {
    pub fn new(now: Instant, cfg: StationConfig) -> Station {
        let stage = StageView::new(&cfg.session.station_id);
        let seed = cfg.session.seed;
        let mut media = MediaLink::new();
        media.set_protection_mode(cfg.protection_mode);
        media.handle_expected_loss(cfg.min_expected_loss);
        let mut station = Station {
            session: Session::new(now, cfg.session),
            stage,
            buttons: PerButton::new(|id| ButtonSlot {
                button: Button::new(id, cfg.buttons),
                stuck: false,
            }),
            media,
            route: MediaRoute::new(seed ^ 0x6d65_6469_615f_726f),
            rng: fastrand::Rng::with_seed(seed ^ 0x7365_7175_656e_6365),
            ptt_latch: cfg.ptt_latch,
            stuck_after: cfg.stuck_after,
            offline_after: cfg.offline_after,
            link: StageLink::Seeking {
                since: now,
                refused: false,
                offline: false,
            },
            talk: Talk::Off,
            audio_fault: false,
            installing: false,
            firmware: None,
            reception: None,
            reported_loss: false,
            link_report: Default::default(),
            min_expected_loss: cfg.min_expected_loss,
            protection: None,
            in_spurt: false,
            transmit: false,
            led: LedState::Booting,
            events: VecDeque::new(),
        };
        station.update(now);
        station
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    pub fn stage(&self) -> &StageView {
        &self.stage
    }

    pub fn stats(&self) -> SessionStats {
        self.session.stats()
    }

    pub fn media_stats(&self) -> MediaStats {
        self.media.stats()
    }

    pub fn route_stats(&self) -> RouteStats {
        self.route.stats()
    }

    /// How outgoing audio is protected now.
    pub fn protection(&self) -> LossProtection {
        self.media.protection()
    }

    /// The loss the listeners report (at least the configured floor), percent.
    pub fn expected_loss(&self) -> u8 {
        self.media.expected_loss()
    }

    /// Where media goes, once the offer's address is known.
    pub fn media_destination(&self) -> Option<SocketAddr> {
        self.route.destination()
    }

    /// The SSRC of the current media session.
    pub fn ssrc(&self) -> Option<u32> {
        self.media.ssrc()
    }

    pub fn led(&self) -> LedState {
        self.led
    }

    pub fn is_transmitting(&self) -> bool {
        self.transmit
    }

    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        self.session.handle_connected(now, conn);
        self.update(now);
    }

    pub fn handle_text(&mut self, now: Instant, conn: ConnId, text: &str) {
        self.session.handle_text(now, conn, text);
        self.update(now);
    }

    /// The server sent a frame the protocol does not allow (binary, or text that is not
    /// UTF-8): closed with 4002 like any malformed message.
    pub fn handle_malformed(&mut self, now: Instant, conn: ConnId) {
        self.session.handle_malformed(now, conn);
        self.update(now);
    }

    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, code: Option<u16>) {
        self.session.handle_closed(now, conn, code);
        self.update(now);
    }

    /// Connection `conn` could not be opened (see [`ConnectFailure`]).
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, failure: ConnectFailure) {
        self.session.handle_connect_failed(now, conn, failure);
        self.update(now);
    }

    /// The answer to a [`StationEvent::Resolve`].
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        answer: Result<SocketAddr, ResolveFailure>,
    ) {
        self.route.handle_resolved(now, id, answer);
        self.update(now);
    }

    /// The station is shutting down: the connection is closed as going away, so the server
    /// keeps the session for the resume a restart wants.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.session.handle_shutdown(now);
        self.update(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.buttons.ptt.button.handle_timeout(now);
        self.buttons.hand.button.handle_timeout(now);
        self.route.handle_timeout(now);
        self.update(now);
    }

    /// A button's raw level changed (`pressed` = contact closed).
    pub fn handle_button(&mut self, now: Instant, button: ButtonId, pressed: bool) {
        self.buttons[button].button.handle_level(now, pressed);
        self.update(now);
    }

    /// The sound device failed (`false`: unplugged, a codec error) or works again (`true`).
    /// While it is gone the LEDs say `error`: a person has to look at the station. The
    /// session, and its place on the stage, carry on.
    pub fn handle_audio_device(&mut self, now: Instant, working: bool) {
        self.audio_fault = !working;
        self.update(now);
    }

    /// A datagram arrived from `from`. Authentic audio from the media server is opened in
    /// place and returned (its payload is `packet[opened.payload]`); anything else —
    /// another source, a forgery, a replay, not audio — is counted and dropped.
    pub fn handle_datagram(
        &mut self,
        _now: Instant,
        from: SocketAddr,
        packet: &mut [u8],
    ) -> Option<Opened> {
        let dest = self.route.destination()?;
        let canonical = |a: SocketAddr| (a.ip().to_canonical(), a.port());
        if canonical(from) != canonical(dest) {
            self.media.count_foreign();
            return None;
        }
        self.media.open(packet)
    }

    /// Seals one Opus frame for the media server into `out`: `None` while there is no media
    /// session or its destination is not known.
    pub fn seal_audio(
        &mut self,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
        out: &mut [u8; MAX_DATAGRAM],
    ) -> Option<Datagram> {
        let dest = self.route.destination()?;
        let len = self.media.seal_audio(timestamp, marker, payload, out)?;
        Some(Datagram { dest, len })
    }

    /// A keepalive due now, sealed into `out`. `rtp_clock` is the audio clock's RTP timestamp.
    pub fn poll_datagram(
        &mut self,
        now: Instant,
        rtp_clock: u32,
        out: &mut [u8; MAX_DATAGRAM],
    ) -> Option<Datagram> {
        let dest = self.route.destination()?;
        let len = self.media.poll_keepalive(now, rtp_clock, out)?;
        Some(Datagram { dest, len })
    }

    /// An update is being installed, or the station is about to reboot into it (the update
    /// agent's `is_updating`): the LEDs say `updating` ("do not unplug") unless the station
    /// is live, which the person at the podium must always see.
    pub fn handle_updating(&mut self, now: Instant, installing: bool) {
        self.installing = installing;
        self.update(now);
    }

    /// What the station runs and where its update agent is: told to the server now if it
    /// changed, and after every login.
    pub fn handle_firmware(&mut self, now: Instant, status: FirmwareStatus) {
        if self.firmware.as_ref() == Some(&status) {
            return;
        }
        if self.session.is_established() {
            self.session.send(ClientMsg::Firmware(status.clone()));
        }
        self.firmware = Some(status);
        self.update(now);
    }

    /// On a stage now (the health check's "joined").
    pub fn is_joined(&self) -> bool {
        self.link == StageLink::Joined
    }

    /// Whether a reboot would cut nobody off: the station is neither live nor invited to
    /// speak (the update agent waits for this).
    pub fn may_reboot(&self) -> bool {
        !self.transmit && !self.stage.me().is_some_and(|m| m.invited)
    }

    /// What the playout path has received and found lost so far (running totals). Every
    /// [`RECEPTION_REPORT_EVERY`] while the session is up, the station tells the server
    /// what it expected and lost since the last report, if it heard anything; and
    /// [`RECEPTION_REPORT_ON_LOSS`] after the last report when loss starts.
    pub fn handle_reception(&mut self, now: Instant, received: u64, lost: u64) {
        if !self.session.is_established() {
            return;
        }
        let Some((at, last_received, last_lost)) = self.reception else {
            self.reception = Some((now, received, lost));
            return;
        };
        let elapsed = now.saturating_duration_since(at);
        let loss_began = !self.reported_loss && lost > last_lost;
        if elapsed < RECEPTION_REPORT_EVERY && !(loss_began && elapsed >= RECEPTION_REPORT_ON_LOSS)
        {
            return;
        }
        self.reception = Some((now, received, lost));
        let (got, lost) = (
            received.saturating_sub(last_received),
            lost.saturating_sub(last_lost),
        );
        self.reported_loss = lost > 0;
        if got + lost > 0 {
            self.session.send(ClientMsg::ReceptionReport {
                expected: u32::try_from(got + lost).unwrap_or(u32::MAX),
                lost: u32::try_from(lost).unwrap_or(u32::MAX),
            });
        }
    }

    /// What the playout path measures now: every [`crate::link_report::LINK_STATS_EVERY`]
    /// while the session is up, the station reports it with its signaling round trip, how
    /// often its session came back, and its LED state (`link_stats`, for the console).
    pub fn handle_playout_figures(
        &mut self,
        now: Instant,
        figures: crate::link_report::PlayoutFigures,
    ) {
        if !self.session.is_established() {
            return;
        }
        let reconnects = self.session.stats().established.saturating_sub(1);
        let round_trip = self.session.round_trip();
        let led = self.led.name();
        if let Some(report) = self
            .link_report
            .due(now, figures, round_trip, reconnects, led)
        {
            self.session.send(ClientMsg::LinkStats(report));
        }
    }

    /// The audio path started or ended a talk spurt (voice activity while transmitting).
    pub fn handle_talk_spurt(&mut self, now: Instant, speaking: bool) {
        if speaking != self.in_spurt {
            self.in_spurt = speaking;
            self.session.send(ClientMsg::Speaking { speaking });
        }
        self.update(now);
    }

    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(ConnId, ClientMsg)> {
        self.session.poll_transmit()
    }

    #[must_use]
    pub fn poll_event(&mut self) -> Option<StationEvent> {
        self.events.pop_front()
    }

    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let stuck_deadline = |slot: &ButtonSlot| {
            slot.button
                .pressed_since()
                .filter(|_| !slot.stuck)
                .map(|t| t + self.stuck_after)
        };
        let offline_deadline = match self.link {
            StageLink::Seeking {
                since,
                offline: false,
                ..
            } => Some(since + self.offline_after),
            _ => None,
        };
        [
            self.session.poll_timeout(),
            self.buttons.ptt.button.poll_timeout(),
            self.buttons.hand.button.poll_timeout(),
            stuck_deadline(&self.buttons.ptt),
            stuck_deadline(&self.buttons.hand),
            offline_deadline,
            self.route.poll_timeout(),
            self.route
                .destination()
                .and_then(|_| self.media.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drains the parts' outputs and re-derives transmit and LEDs.
    fn update(&mut self, now: Instant) {
        while let Some(ev) = self.session.poll_event() {
            self.on_session_event(now, ev);
        }
        loop {
            let gesture = match self.buttons.ptt.button.poll_gesture() {
                Some(g) => g,
                None => match self.buttons.hand.button.poll_gesture() {
                    Some(g) => g,
                    None => break,
                },
            };
            self.on_gesture(gesture);
        }
        while let Some(request) = self.route.poll_resolve() {
            self.events.push_back(StationEvent::Resolve(request));
        }
        self.check_stuck(now);
        self.link = match self.link {
            _ if self.session.is_established() => StageLink::Joined,
            StageLink::Joined => StageLink::Seeking {
                since: now,
                refused: false,
                offline: false,
            },
            StageLink::Seeking { since, refused, .. } => StageLink::Seeking {
                since,
                refused,
                offline: now.saturating_duration_since(since) >= self.offline_after,
            },
        };
        let protection = self.media.protection();
        if self.protection.replace(protection) != Some(protection) {
            self.events.push_back(StationEvent::Protection(protection));
        }
        self.derive();
    }

    fn check_stuck(&mut self, now: Instant) {
        for id in ButtonId::ALL {
            let slot = &mut self.buttons[id];
            let stuck = slot
                .button
                .pressed_since()
                .is_some_and(|t| now.saturating_duration_since(t) >= self.stuck_after);
            if stuck != slot.stuck {
                slot.stuck = stuck;
                if stuck && id == ButtonId::Ptt && self.talk == Talk::Held {
                    self.talk = Talk::Off;
                }
                self.events
                    .push_back(StationEvent::ButtonStuck { button: id, stuck });
            }
        }
    }

    fn on_session_event(&mut self, now: Instant, ev: SessionEvent) {
        match ev {
            SessionEvent::Connect { conn, url } => {
                self.events.push_back(StationEvent::Connect { conn, url })
            }
            SessionEvent::Close { conn, code } => {
                self.events.push_back(StationEvent::Close { conn, code })
            }
            SessionEvent::Established { media, .. } => {
                self.link = StageLink::Joined;
                if let Some(offer) = media {
                    self.media.handle_offer(now, &offer, self.rng.u16(..));
                    self.route.handle_offer(now, &offer.host, offer.port);
                    self.events.push_back(StationEvent::MediaStarted {
                        ssrc: offer.ssrc,
                        red: offer.red,
                    });
                }
                // A talk spurt in progress is announced again on the new connection.
                if self.in_spurt {
                    self.session.send(ClientMsg::Speaking { speaking: true });
                }
                if let Some(f) = &self.firmware {
                    self.session.send(ClientMsg::Firmware(f.clone()));
                }
            }
            SessionEvent::MediaRefused(e) => self.events.push_back(StationEvent::MediaRefused(e)),
            SessionEvent::Stage(msg) => {
                for stage_event in self.stage.handle_message(msg) {
                    self.on_stage_event(stage_event);
                }
            }
            SessionEvent::LossFeedback { loss_percent } => self
                .media
                .handle_expected_loss(loss_percent.max(self.min_expected_loss)),
            SessionEvent::Lost { after, .. } => {
                let since = match self.link {
                    StageLink::Seeking { since, .. } => since,
                    StageLink::Joined => now,
                };
                self.link = StageLink::Seeking {
                    since,
                    refused: after == AfterClose::Fatal,
                    offline: false,
                };
            }
        }
    }

    fn ever_joined(&self) -> bool {
        self.session.stats().established > 0
    }

    fn on_stage_event(&mut self, ev: StageEvent) {
        match ev {
            StageEvent::SelfChanged { after, .. } => {
                if !after.as_ref().is_some_and(|m| m.role.can_speak()) {
                    self.talk = Talk::Off;
                }
            }
            StageEvent::Priority(ssrc) => self.events.push_back(StationEvent::Priority(ssrc)),
            StageEvent::Speaking {
                station_id,
                ssrc,
                speaking,
            } => self.events.push_back(StationEvent::Speaking {
                station_id,
                ssrc,
                speaking,
            }),
            StageEvent::Roster => {}
        }
    }

    fn on_gesture(&mut self, g: Gesture) {
        let me = self.stage.me().cloned();
        let ptt_up = g.kind == GestureKind::Up && g.button == ButtonId::Ptt;
        // Off the stage (not joined yet, or lost), the buttons mean nothing: the LEDs say
        // "connecting", and a press must not act later on a stage the person cannot see.
        if me.is_none() || !self.session.is_established() {
            if ptt_up && self.talk == Talk::Held {
                self.talk = Talk::Off;
            }
            return;
        }
        let invited = me
            .as_ref()
            .is_some_and(|m| m.invited && m.role == Role::Audience);
        let can_speak = me.as_ref().is_some_and(|m| m.role.can_speak());
        match (g.button, g.kind) {
            (ButtonId::Ptt, GestureKind::Down) if invited => {
                self.session
                    .send(ClientMsg::InviteResponse { accept: true });
            }
            (ButtonId::Hand, GestureKind::Down) if invited => {
                self.session
                    .send(ClientMsg::InviteResponse { accept: false });
            }
            (ButtonId::Hand, GestureKind::Down) if !can_speak => {
                let raised = me.as_ref().is_some_and(|m| m.hand_raised);
                self.session.send(ClientMsg::RaiseHand { raised: !raised });
            }
            (ButtonId::Ptt, GestureKind::Down) if can_speak => self.talk = Talk::Held,
            (ButtonId::Ptt, GestureKind::DoublePress) if can_speak && self.ptt_latch => {
                self.talk = Talk::Latched;
            }
            (ButtonId::Ptt, GestureKind::Up) if self.talk == Talk::Held => self.talk = Talk::Off,
            (ButtonId::Hand, GestureKind::LongPress) if can_speak => {
                self.session.send(ClientMsg::StepDown {});
            }
            // A press that was taken for stuck ends without further meaning.
            _ => {}
        }
    }

    fn derive(&mut self) {
        let me: Option<&Member> = self.stage.me();
        let may_speak = me.is_some_and(|m| m.role.can_speak() && !m.server_muted);
        let transmit = self.ever_joined() && may_speak && self.talk != Talk::Off;
        if transmit != self.transmit {
            self.transmit = transmit;
            self.events.push_back(StationEvent::Transmit(transmit));
        }
        let stuck = self.buttons.iter().any(|(_, slot)| slot.stuck);
        // A lost session shows even while the microphone stays open (media may still reach a
        // voice server that is alive, see docs/protocol.md §5): the person at the podium must
        // not see `live` while nobody may be hearing them. So does media without a known
        // destination (its name not resolved yet). `live` comes back by itself.
        let media_down = self.route.is_unresolved();
        let led = match self.link {
            StageLink::Seeking { refused: true, .. } => LedState::Error,
            _ if self.audio_fault => LedState::Error,
            _ if stuck => LedState::ButtonStuck,
            _ if self.installing && !transmit => LedState::Updating,
            StageLink::Seeking { offline: true, .. } => LedState::Offline,
            StageLink::Seeking { .. } if self.ever_joined() => LedState::Reconnecting,
            StageLink::Seeking { .. } => LedState::Connecting,
            // Joined, but the media server's name is not resolved yet: still looking.
            StageLink::Joined if media_down => LedState::Connecting,
            StageLink::Joined if transmit => LedState::Live,
            StageLink::Joined => match me {
                None => LedState::Connecting,
                Some(m) if m.role == Role::Audience && m.invited => LedState::Invited,
                Some(m) if m.role == Role::Audience && m.hand_raised => LedState::HandRaised,
                Some(m) if m.role == Role::Audience => LedState::Audience,
                Some(m) if m.server_muted => LedState::Muted,
                Some(_) => LedState::SpeakerIdle,
            },
        };
        if led != self.led {
            self.led = led;
            self.events.push_back(StationEvent::Led(led));
        }
    }
}
