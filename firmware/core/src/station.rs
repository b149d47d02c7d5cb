//! The station as one sans-IO state machine: the signaling session, the stage view and the
//! two buttons, and the two things they decide — whether the mic is sent, and what the LEDs
//! show.
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
use std::time::{Duration, Instant};

use stagebox_proto::close::AfterClose;
use stagebox_proto::signal::{ClientMsg, MediaParams, Member, Role};

use crate::button::{Button, ButtonId, ButtonTiming, Gesture, GestureKind};
use crate::led::LedState;
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
        }
    }
}

/// What the station core asks of the plumbing.
#[derive(Debug, Clone, PartialEq)]
pub enum StationEvent {
    /// Open a signaling connection.
    Connect { conn: ConnId, url: String },
    /// Close a signaling connection.
    Close { conn: ConnId, code: u16 },
    /// A new media session: use this address, SSRC and keys from now on.
    Media(MediaParams),
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
    /// The encoder's FEC should cover this much loss, percent: what the station's listeners
    /// lose, or the configured least if that is more.
    ExpectedLoss(u8),
}

/// How often a station that hears audio reports its reception to the server.
pub const RECEPTION_REPORT_EVERY: Duration = Duration::from_secs(2);
/// How soon a report goes out when frames start being lost after a report that said none:
/// speakers protect their audio within half a second of the loss, not two.
pub const RECEPTION_REPORT_ON_LOSS: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Station {
    session: Session,
    stage: StageView,
    ptt: Button,
    hand: Button,
    ptt_latch: bool,
    stuck_after: Duration,
    offline_after: Duration,
    /// Buttons currently taken for stuck.
    stuck: [bool; 2],
    /// When the stage was lost (or first sought), while it is not established.
    lost_since: Option<Instant>,
    /// Without a stage for `offline_after` or more.
    offline: bool,
    latched: bool,
    /// PTT is down and the press began while the station could speak.
    ptt_talking: bool,
    ever_established: bool,
    fatal: bool,
    /// The sound device is gone (unplugged, failed); the daemon keeps trying to reopen it.
    audio_fault: bool,
    /// When the last reception report was due, and the totals then.
    reception: Option<(Instant, u64, u64)>,
    /// The last reception report said frames were lost.
    reported_loss: bool,
    min_expected_loss: u8,
    in_spurt: bool,
    transmit: bool,
    led: LedState,
    events: VecDeque<StationEvent>,
}

impl Station {
    pub fn new(now: Instant, cfg: StationConfig) -> Station {
        let stage = StageView::new(&cfg.session.station_id);
        let mut station = Station {
            session: Session::new(now, cfg.session),
            stage,
            ptt: Button::new(ButtonId::Ptt, cfg.buttons),
            hand: Button::new(ButtonId::Hand, cfg.buttons),
            ptt_latch: cfg.ptt_latch,
            stuck_after: cfg.stuck_after,
            offline_after: cfg.offline_after,
            stuck: [false; 2],
            lost_since: Some(now),
            offline: false,
            latched: false,
            ptt_talking: false,
            ever_established: false,
            fatal: false,
            audio_fault: false,
            reception: None,
            reported_loss: false,
            min_expected_loss: cfg.min_expected_loss,
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

    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, code: Option<u16>) {
        self.session.handle_closed(now, conn, code);
        self.update(now);
    }

    /// Connection `conn` could not be opened (see [`ConnectFailure`]).
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnId, failure: ConnectFailure) {
        self.session.handle_connect_failed(now, conn, failure);
        self.update(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_timeout(now);
        self.ptt.handle_timeout(now);
        self.hand.handle_timeout(now);
        self.update(now);
    }

    /// A button's raw level changed (`pressed` = contact closed).
    pub fn handle_button(&mut self, now: Instant, button: ButtonId, pressed: bool) {
        match button {
            ButtonId::Ptt => self.ptt.handle_level(now, pressed),
            ButtonId::Hand => self.hand.handle_level(now, pressed),
        }
        self.update(now);
    }

    /// The sound device failed (`false`: unplugged, a codec error) or works again (`true`).
    /// While it is gone the LEDs say `error`: a person has to look at the station. The
    /// session, and its place on the stage, carry on.
    pub fn handle_audio_device(&mut self, now: Instant, working: bool) {
        self.audio_fault = !working;
        self.update(now);
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

    /// The audio path started or ended a talk spurt (voice activity while transmitting).
    pub fn handle_talk_spurt(&mut self, now: Instant, speaking: bool) {
        if speaking != self.in_spurt {
            self.in_spurt = speaking;
            self.session.send(ClientMsg::Speaking { speaking });
        }
        self.update(now);
    }

    pub fn poll_transmit(&mut self) -> Option<(ConnId, ClientMsg)> {
        self.session.poll_transmit()
    }

    pub fn poll_event(&mut self) -> Option<StationEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.session.poll_timeout(),
            self.ptt.poll_timeout(),
            self.hand.poll_timeout(),
            self.ptt
                .pressed_since()
                .filter(|_| !self.stuck[0])
                .map(|t| t + self.stuck_after),
            self.hand
                .pressed_since()
                .filter(|_| !self.stuck[1])
                .map(|t| t + self.stuck_after),
            self.lost_since
                .filter(|_| !self.session.is_established())
                .filter(|_| !self.offline)
                .map(|t| t + self.offline_after),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Drains the parts' outputs and re-derives transmit and LEDs.
    fn update(&mut self, now: Instant) {
        while let Some(ev) = self.session.poll_event() {
            self.on_session_event(ev);
        }
        loop {
            let gesture = match self.ptt.poll_gesture() {
                Some(g) => g,
                None => match self.hand.poll_gesture() {
                    Some(g) => g,
                    None => break,
                },
            };
            self.on_gesture(gesture);
        }
        self.check_stuck(now);
        if self.session.is_established() {
            self.lost_since = None;
        } else if self.lost_since.is_none() {
            self.lost_since = Some(now);
        }
        self.derive(now);
    }

    fn check_stuck(&mut self, now: Instant) {
        for (i, id) in [ButtonId::Ptt, ButtonId::Hand].into_iter().enumerate() {
            let button = match id {
                ButtonId::Ptt => &self.ptt,
                ButtonId::Hand => &self.hand,
            };
            let stuck = button
                .pressed_since()
                .is_some_and(|t| now.saturating_duration_since(t) >= self.stuck_after);
            if stuck != self.stuck[i] {
                self.stuck[i] = stuck;
                if stuck && id == ButtonId::Ptt {
                    self.ptt_talking = false;
                }
                self.events
                    .push_back(StationEvent::ButtonStuck { button: id, stuck });
            }
        }
    }

    fn on_session_event(&mut self, ev: SessionEvent) {
        match ev {
            SessionEvent::Connect { conn, url } => {
                self.events.push_back(StationEvent::Connect { conn, url })
            }
            SessionEvent::Close { conn, code } => {
                self.events.push_back(StationEvent::Close { conn, code })
            }
            SessionEvent::Established { media, .. } => {
                self.ever_established = true;
                self.fatal = false;
                if let Some(media) = media {
                    self.events.push_back(StationEvent::Media(media));
                }
                // A talk spurt in progress is announced again on the new connection.
                if self.in_spurt {
                    self.session.send(ClientMsg::Speaking { speaking: true });
                }
            }
            SessionEvent::Stage(msg) => {
                for stage_event in self.stage.handle_message(msg) {
                    self.on_stage_event(stage_event);
                }
            }
            SessionEvent::LossFeedback { loss_percent } => self.events.push_back(
                StationEvent::ExpectedLoss(loss_percent.max(self.min_expected_loss)),
            ),
            SessionEvent::Lost { after, .. } => self.fatal = after == AfterClose::Fatal,
        }
    }

    fn on_stage_event(&mut self, ev: StageEvent) {
        match ev {
            StageEvent::SelfChanged { after, .. } => {
                if !after.as_ref().is_some_and(|m| m.role.can_speak()) {
                    self.latched = false;
                    self.ptt_talking = false;
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
        // Off the stage (not joined yet, or lost), the buttons mean nothing: the LEDs say
        // "connecting", and a press must not act later on a stage the person cannot see.
        if me.is_none() || !self.session.is_established() {
            if g.kind == GestureKind::Up && g.button == ButtonId::Ptt {
                self.ptt_talking = false;
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
            (ButtonId::Ptt, GestureKind::Down) if can_speak => {
                self.latched = false;
                self.ptt_talking = true;
            }
            (ButtonId::Ptt, GestureKind::DoublePress) if can_speak && self.ptt_latch => {
                self.latched = true;
            }
            (ButtonId::Ptt, GestureKind::Up) => self.ptt_talking = false,
            // A press that was taken for stuck ends without further meaning.
            (ButtonId::Ptt, GestureKind::LongPress) if self.stuck[0] => {}
            (ButtonId::Hand, GestureKind::LongPress) if can_speak => {
                self.session.send(ClientMsg::StepDown {});
            }
            _ => {}
        }
    }

    fn derive(&mut self, now: Instant) {
        let me: Option<&Member> = self.stage.me();
        let may_speak = me.is_some_and(|m| m.role.can_speak() && !m.server_muted);
        let transmit = self.ever_established && may_speak && (self.ptt_talking || self.latched);
        if transmit != self.transmit {
            self.transmit = transmit;
            self.events.push_back(StationEvent::Transmit(transmit));
        }
        self.offline = self
            .lost_since
            .is_some_and(|t| now.saturating_duration_since(t) >= self.offline_after);
        // A lost session shows even while the microphone stays open (media may still reach a
        // voice server that is alive, see docs/protocol.md §5): the person at the podium must
        // not see `live` while nobody may be hearing them. `live` comes back by itself.
        let led = if self.fatal || self.audio_fault {
            LedState::Error
        } else if self.stuck.contains(&true) {
            LedState::ButtonStuck
        } else if !self.session.is_established() {
            if self.offline {
                LedState::Offline
            } else if self.ever_established {
                LedState::Reconnecting
            } else {
                LedState::Connecting
            }
        } else if transmit {
            LedState::Live
        } else {
            match me {
                None => LedState::Connecting,
                Some(m) if m.role == Role::Audience && m.invited => LedState::Invited,
                Some(m) if m.role == Role::Audience && m.hand_raised => LedState::HandRaised,
                Some(m) if m.role == Role::Audience => LedState::Audience,
                Some(m) if m.server_muted => LedState::Muted,
                Some(_) => LedState::SpeakerIdle,
            }
        };
        if led != self.led {
            self.led = led;
            self.events.push_back(StationEvent::Led(led));
        }
    }
}
