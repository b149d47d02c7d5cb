//! Signaling messages: JSON text frames over WebSocket + TLS, `{"op": NAME, "d": {...}}`.
//!
//! Decoding is total: any text either becomes a message or a [`SignalError`] that names the
//! close code to answer with. Sizes are bounded before parsing and identifiers after.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::close::CloseCode;

/// Version carried in `hello`, `identify` and `resume`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest signaling frame either side accepts, in bytes.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// Longest station id, stage id, session id or token, in bytes.
pub const MAX_ID_LEN: usize = 128;
/// The `audio_formats` entry for redundant audio (RFC 2198, see [`crate::red`]).
pub const AUDIO_FORMAT_RED: &str = "red";

/// A member's role on a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// May speak, invite and move people.
    Moderator,
    /// Invited to speak.
    Speaker,
    /// Listens; may raise a hand.
    Audience,
}

impl Role {
    /// Whether this role may send audio.
    pub fn can_speak(self) -> bool {
        matches!(self, Role::Moderator | Role::Speaker)
    }
}

/// One station on a stage, as every member sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub station_id: String,
    pub role: Role,
    #[serde(default)]
    pub hand_raised: bool,
    /// Place in the hand-raise queue: raised hands sort by this, lowest first.
    #[serde(default)]
    pub hand_order: Option<u64>,
    /// A moderator invited this audience member to speak; waiting for an answer.
    #[serde(default)]
    pub invited: bool,
    /// Muted by a moderator: its audio is not forwarded.
    #[serde(default)]
    pub server_muted: bool,
    /// The SSRC its audio arrives with.
    pub ssrc: u32,
    /// Whether its signaling connection is up (a member stays listed while it may resume).
    #[serde(default)]
    pub connected: bool,
    /// The name a person in a browser gave (`join_web`); absent for a station. Untrusted
    /// text: shown as text, never as markup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The whole stage, sent after `ready`/`resumed`; later changes come as `member_update`,
/// `member_left` and `priority`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageSnapshot {
    pub stage: String,
    pub members: Vec<Member>,
    #[serde(default)]
    pub priority_ssrc: Option<u32>,
}

/// Where and how to send media, given in `ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaParams {
    /// UDP address of the voice server (IP literal or host name).
    pub host: String,
    pub port: u16,
    /// Encryption mode, see [`crate::media::MEDIA_MODE`].
    pub mode: String,
    /// SSRC the station must send with.
    pub ssrc: u32,
    /// Hex key the station seals its packets with.
    pub station_key: String,
    /// Hex key the server seals packets to this station with.
    pub server_key: String,
    /// The station may send redundant audio ([`crate::red::PT_RED`]) and will receive its
    /// stage's audio that way; false (or absent, from an older server): plain Opus only.
    #[serde(default)]
    pub red: bool,
}

/// Messages a station sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "d", rename_all = "snake_case")]
pub enum ClientMsg {
    Identify {
        v: u32,
        station_id: String,
        token: String,
        stage: String,
        /// Media modes the station supports, most preferred first.
        modes: Vec<String>,
        /// Audio payload formats the station sends and receives besides plain Opus:
        /// [`AUDIO_FORMAT_RED`]. Absent from an older station: none.
        #[serde(default)]
        audio_formats: Vec<String>,
    },
    Resume {
        v: u32,
        station_id: String,
        session_id: String,
        token: String,
    },
    Heartbeat {
        nonce: u64,
    },
    /// The station started or stopped a talk spurt.
    Speaking {
        speaking: bool,
    },
    RaiseHand {
        raised: bool,
    },
    /// Answer to an invitation to speak.
    InviteResponse {
        accept: bool,
    },
    /// A speaker goes back to the audience by itself.
    StepDown {},
    /// What the station heard since its last report: frames it expected (received and found
    /// missing) and of those, frames lost on the way (before any repair). Every few seconds
    /// while it receives audio; the server tells speakers how much their listeners lose.
    ReceptionReport {
        expected: u32,
        lost: u32,
    },
    /// The station's firmware and its update agent: after each login and whenever the
    /// update state changes. The server keeps the latest per station for its admin view.
    Firmware(FirmwareStatus),
    /// A person in a browser joins a stage with the stage's link (instead of `identify`).
    /// Its media is standard WebRTC, negotiated with `web_offer` once joined.
    JoinWeb {
        v: u32,
        stage: String,
        /// The stage's link token (from the listener link).
        link: String,
        /// What the person calls themselves, shown to the stage (at most [`MAX_NAME_LEN`]).
        name: String,
    },
    /// A browser whose connection dropped (a network change) takes its place on the stage
    /// back within the resume window (instead of `join_web`): its role, its raised hand and
    /// its media peer are kept. Answered with `resumed` and the stage; the page then sends an
    /// ICE restart as `web_offer`.
    ResumeWeb {
        v: u32,
        stage: String,
        /// The stage's link token, as for `join_web`.
        link: String,
        /// From `web_ready`.
        participant_id: String,
        /// From `web_ready`: the secret that proves the session is this browser's.
        session_id: String,
    },
    /// A joined browser's WebRTC offer (SDP, at most [`MAX_SDP_LEN`] bytes); again after a
    /// network change (an ICE restart keeps the participant).
    WebOffer {
        sdp: String,
    },
    /// How the member's link and playout are doing: every few seconds while it is on a
    /// stage, for the moderator's console.
    LinkStats(LinkStats),
}

/// A member's link and playout figures (stations and browsers alike; each field optional,
/// for what a member cannot measure). Running totals count from the member's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Signaling round trip (a heartbeat to its answer; a browser: its media path's), ms,
    /// rounded up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
    /// Spread of the audio's arrival times (jitter), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u32>,
    /// What the jitter buffer holds back now, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_buffer_ms: Option<u32>,
    /// Frames played (running total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub played_frames: Option<u64>,
    /// Frames concealed: made up for a lost or late one (running total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concealed_frames: Option<u64>,
    /// Times its signaling connection was lost and came back (running total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnects: Option<u32>,
    /// A station's LED state (`audience`, `hand-raised`, `invited`, `live`, …; see
    /// docs/leds.md), at most [`MAX_LED_NAME_LEN`] lowercase letters and hyphens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub led: Option<String>,
}

/// Longest LED state name in [`LinkStats`].
pub const MAX_LED_NAME_LEN: usize = 24;

/// Longest display name a browser participant may give, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Longest SDP offer or answer carried in signaling, in bytes.
pub const MAX_SDP_LEN: usize = 32 * 1024;

/// What a station runs and where its update agent is (see docs/updates.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareStatus {
    /// The running version, `MAJOR.MINOR.PATCH`.
    pub running: String,
    /// `idle`, `checking`, `downloading`, `installing`, `awaiting_reboot`, `rebooting`.
    pub update: String,
    /// The version being fetched or installed.
    #[serde(default)]
    pub target: Option<String>,
    /// Download progress.
    #[serde(default)]
    pub percent: Option<u8>,
    /// The last refusal or failure, for a person (at most [`MAX_DETAIL_LEN`] bytes).
    #[serde(default)]
    pub last_problem: Option<String>,
    /// The station's clock is not synchronized (no NTP answer yet: a Raspberry Pi has no
    /// real-time clock); update expiry is then judged against its time floor. Absent: false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub clock_unsynchronized: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The longest `last_problem` accepted.
pub const MAX_DETAIL_LEN: usize = 240;

/// Messages a server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "d", rename_all = "snake_case")]
pub enum ServerMsg {
    Hello {
        v: u32,
        heartbeat_interval_ms: u32,
    },
    Ready {
        session_id: String,
        station_id: String,
        media: MediaParams,
        /// How long after a disconnect the session may still be resumed.
        resume_window_ms: u32,
    },
    Resumed {},
    HeartbeatAck {
        nonce: u64,
    },
    Stage(StageSnapshot),
    MemberUpdate(Member),
    MemberLeft {
        station_id: String,
    },
    Priority {
        ssrc: Option<u32>,
    },
    Speaking {
        station_id: String,
        ssrc: u32,
        speaking: bool,
    },
    /// Reconnect now and resume, to `gateway` if given (a move to another server).
    Reconnect {
        reason: String,
        #[serde(default)]
        gateway: Option<String>,
    },
    /// The most a listener of this station's audio is losing now, in percent (0–50): how
    /// much in-band FEC the station's audio should carry.
    LossFeedback {
        loss_percent: u8,
    },
    /// Answer to `join_web`: the browser is on the stage (as audience) under
    /// `participant_id`, which stands where a station id does in stage messages.
    WebReady {
        session_id: String,
        participant_id: String,
        resume_window_ms: u32,
    },
    /// The server's WebRTC answer to `web_offer` (SDP).
    WebAnswer {
        sdp: String,
    },
    /// Sent just before the server closes with `code`.
    Error {
        code: u16,
        message: String,
    },
}

/// Why a signaling frame was refused, and with which close code to answer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignalError {
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_LEN}-byte limit")]
    TooLarge(usize),
    #[error("unknown op {0:?}")]
    UnknownOp(String),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("field {0} is empty or longer than {MAX_ID_LEN} bytes")]
    BadField(&'static str),
}

impl SignalError {
    /// The close code a peer answers this error with.
    pub fn close_code(&self) -> CloseCode {
        match self {
            SignalError::UnknownOp(_) => CloseCode::UnknownOp,
            SignalError::TooLarge(_) | SignalError::Malformed(_) | SignalError::BadField(_) => {
                CloseCode::DecodeError
            }
        }
    }
}

const CLIENT_OPS: &[&str] = &[
    "identify",
    "resume",
    "heartbeat",
    "speaking",
    "raise_hand",
    "invite_response",
    "firmware",
    "step_down",
    "reception_report",
    "join_web",
    "resume_web",
    "web_offer",
    "link_stats",
];
const SERVER_OPS: &[&str] = &[
    "hello",
    "ready",
    "resumed",
    "heartbeat_ack",
    "stage",
    "member_update",
    "member_left",
    "priority",
    "speaking",
    "reconnect",
    "loss_feedback",
    "web_ready",
    "web_answer",
    "error",
];

#[derive(Deserialize)]
struct OpOnly {
    op: String,
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str, known: &[&str]) -> Result<T, SignalError> {
    if text.len() > MAX_MESSAGE_LEN {
        return Err(SignalError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| match serde_json::from_str::<OpOnly>(text) {
        Ok(o) if !known.contains(&o.op.as_str()) => {
            SignalError::UnknownOp(o.op.chars().take(32).collect())
        }
        _ => SignalError::Malformed(e.to_string()),
    })
}

fn check_id(field: &'static str, value: &str) -> Result<(), SignalError> {
    if value.is_empty() || value.len() > MAX_ID_LEN {
        return Err(SignalError::BadField(field));
    }
    Ok(())
}

fn encode<T: Serialize>(msg: &T) -> String {
    // Our message types hold only strings, numbers, bools and sequences of them, which
    // serde_json always serializes.
    serde_json::to_string(msg).unwrap_or_default()
}

impl ClientMsg {
    pub fn from_json(text: &str) -> Result<ClientMsg, SignalError> {
        let msg: ClientMsg = decode(text, CLIENT_OPS)?;
        match &msg {
            ClientMsg::Identify {
                station_id,
                token,
                stage,
                modes,
                audio_formats,
                ..
            } => {
                check_id("station_id", station_id)?;
                check_id("token", token)?;
                check_id("stage", stage)?;
                if modes.len() > 16 {
                    return Err(SignalError::BadField("modes"));
                }
                if audio_formats.len() > 16 || audio_formats.iter().any(|f| f.len() > 32) {
                    return Err(SignalError::BadField("audio_formats"));
                }
            }
            ClientMsg::Resume {
                station_id,
                session_id,
                token,
                ..
            } => {
                check_id("station_id", station_id)?;
                check_id("session_id", session_id)?;
                check_id("token", token)?;
            }
            ClientMsg::JoinWeb {
                stage, link, name, ..
            } => {
                check_id("stage", stage)?;
                check_id("link", link)?;
                if name.trim().is_empty()
                    || name.len() > MAX_NAME_LEN
                    || name.chars().any(char::is_control)
                {
                    return Err(SignalError::BadField("name"));
                }
            }
            ClientMsg::ResumeWeb {
                stage,
                link,
                participant_id,
                session_id,
                ..
            } => {
                check_id("stage", stage)?;
                check_id("link", link)?;
                check_id("participant_id", participant_id)?;
                check_id("session_id", session_id)?;
            }
            ClientMsg::WebOffer { sdp } if sdp.is_empty() || sdp.len() > MAX_SDP_LEN => {
                return Err(SignalError::BadField("sdp"));
            }
            ClientMsg::LinkStats(LinkStats { led: Some(led), .. })
                if led.is_empty()
                    || led.len() > MAX_LED_NAME_LEN
                    || !led.chars().all(|c| c.is_ascii_lowercase() || c == '-') =>
            {
                return Err(SignalError::BadField("led"));
            }
            ClientMsg::Firmware(f) => {
                check_id("running", &f.running)?;
                check_id("update", &f.update)?;
                if let Some(t) = &f.target {
                    check_id("target", t)?;
                }
                if f.percent.is_some_and(|p| p > 100) {
                    return Err(SignalError::BadField("percent"));
                }
                if f.last_problem
                    .as_ref()
                    .is_some_and(|d| d.len() > MAX_DETAIL_LEN)
                {
                    return Err(SignalError::BadField("last_problem"));
                }
            }
            _ => {}
        }
        Ok(msg)
    }

    pub fn to_json(&self) -> String {
        encode(self)
    }
}

impl ServerMsg {
    pub fn from_json(text: &str) -> Result<ServerMsg, SignalError> {
        let msg: ServerMsg = decode(text, SERVER_OPS)?;
        if let ServerMsg::Ready {
            session_id,
            station_id,
            ..
        } = &msg
        {
            check_id("session_id", session_id)?;
            check_id("station_id", station_id)?;
        }
        Ok(msg)
    }

    pub fn to_json(&self) -> String {
        encode(self)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_takes_its_place_back_with_the_link_and_its_session() {
        let text = |participant: &str| {
            format!(
                r#"{{"op":"resume_web","d":{{"v":1,"stage":"townhall","link":"l-1","participant_id":"{participant}","session_id":"00ff"}}}}"#
            )
        };
        let msg = ClientMsg::from_json(&text("web-0a1b2c3d")).unwrap();
        assert_eq!(
            msg,
            ClientMsg::ResumeWeb {
                v: 1,
                stage: "townhall".into(),
                link: "l-1".into(),
                participant_id: "web-0a1b2c3d".into(),
                session_id: "00ff".into(),
            }
        );
        assert_eq!(ClientMsg::from_json(&msg.to_json()).unwrap(), msg);
        assert!(matches!(
            ClientMsg::from_json(&text("")),
            Err(SignalError::BadField("participant_id"))
        ));
    }

    #[test]
    fn a_firmware_report_round_trips_and_is_bounded() {
        let text = r#"{"op":"firmware","d":{"running":"1.2.0","update":"downloading","target":"1.3.0","percent":40}}"#;
        let m = ClientMsg::from_json(text).unwrap();
        let ClientMsg::Firmware(f) = &m else {
            panic!("{m:?}")
        };
        assert_eq!((f.percent, f.last_problem.as_deref()), (Some(40), None));
        assert_eq!(ClientMsg::from_json(&m.to_json()).unwrap(), m);
        for bad in [
            text.replace("40", "101"),
            text.replace("\"1.2.0\"", "\"\""),
            text.replace(
                "\"percent\":40",
                &format!("\"last_problem\":\"{}\"", "x".repeat(241)),
            ),
        ] {
            assert!(ClientMsg::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_wire_form_is_stable() {
        let m = ClientMsg::RaiseHand { raised: true };
        assert_eq!(m.to_json(), r#"{"op":"raise_hand","d":{"raised":true}}"#);
        assert_eq!(
            ClientMsg::StepDown {}.to_json(),
            r#"{"op":"step_down","d":{}}"#
        );
        let id = ClientMsg::Identify {
            v: 1,
            station_id: "podium-1".into(),
            token: "t0k3n".into(),
            stage: "townhall".into(),
            modes: vec!["chacha20_poly1305_rtpsize".into()],
            audio_formats: vec!["red".into()],
        };
        assert_eq!(ClientMsg::from_json(&id.to_json()).unwrap(), id);
    }

    #[test]
    fn server_round_trip() {
        let msgs = [
            ServerMsg::Hello {
                v: 1,
                heartbeat_interval_ms: 2000,
            },
            ServerMsg::Stage(StageSnapshot {
                stage: "s".into(),
                members: vec![Member {
                    station_id: "a".into(),
                    role: Role::Audience,
                    hand_raised: true,
                    hand_order: Some(1),
                    invited: false,
                    server_muted: false,
                    ssrc: 5,
                    connected: true,
                    name: None,
                }],
                priority_ssrc: None,
            }),
            ServerMsg::Reconnect {
                reason: "moving".into(),
                gateway: Some("wss://x:1".into()),
            },
            ServerMsg::Priority { ssrc: Some(3) },
        ];
        for m in msgs {
            assert_eq!(ServerMsg::from_json(&m.to_json()).unwrap(), m);
        }
        assert_eq!(
            ServerMsg::from_json(r#"{"op":"resumed","d":{}}"#).unwrap(),
            ServerMsg::Resumed {}
        );
    }

    #[test]
    fn rejects_bad_input_with_the_right_close_code() {
        let cases: &[(&str, CloseCode)] = &[
            ("", CloseCode::DecodeError),
            ("{", CloseCode::DecodeError),
            ("[1,2]", CloseCode::DecodeError),
            (r#"{"op":"fly","d":{}}"#, CloseCode::UnknownOp),
            (
                r#"{"op":"raise_hand","d":{"raised":"yes"}}"#,
                CloseCode::DecodeError,
            ),
            (r#"{"op":"heartbeat"}"#, CloseCode::DecodeError),
            (
                r#"{"op":"identify","d":{"v":1,"station_id":"","token":"t","stage":"s","modes":[]}}"#,
                CloseCode::DecodeError,
            ),
        ];
        for (text, code) in cases {
            let err = ClientMsg::from_json(text).unwrap_err();
            assert_eq!(err.close_code(), *code, "{text}: {err}");
        }
    }

    #[test]
    fn oversized_is_refused_before_parsing() {
        let big = format!(
            r#"{{"op":"heartbeat","d":{{"nonce":1,"pad":"{}"}}}}"#,
            "x".repeat(MAX_MESSAGE_LEN)
        );
        assert!(matches!(
            ClientMsg::from_json(&big),
            Err(SignalError::TooLarge(_))
        ));
        let long_id = "x".repeat(MAX_ID_LEN + 1);
        let m = ClientMsg::Resume {
            v: 1,
            station_id: long_id,
            session_id: "s".into(),
            token: "t".into(),
        };
        assert_eq!(
            ClientMsg::from_json(&m.to_json()),
            Err(SignalError::BadField("station_id"))
        );
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let m =
            ClientMsg::from_json(r#"{"op":"speaking","d":{"speaking":true,"future":1}}"#).unwrap();
        assert_eq!(m, ClientMsg::Speaking { speaking: true });
    }

    #[test]
    fn reception_reports_and_loss_feedback_round_trip() {
        let report =
            ClientMsg::from_json(r#"{"op":"reception_report","d":{"expected":50,"lost":6}}"#)
                .unwrap();
        assert_eq!(
            report,
            ClientMsg::ReceptionReport {
                expected: 50,
                lost: 6
            }
        );
        let feedback = ServerMsg::LossFeedback { loss_percent: 12 };
        assert_eq!(
            feedback.to_json(),
            r#"{"op":"loss_feedback","d":{"loss_percent":12}}"#
        );
        assert_eq!(ServerMsg::from_json(&feedback.to_json()).unwrap(), feedback);
    }

    #[test]
    fn link_stats_round_trip_with_what_a_member_measures_and_are_bounded() {
        let text = r#"{"op":"link_stats","d":{"rtt_ms":12,"jitter_ms":3,"jitter_buffer_ms":60,"played_frames":5000,"concealed_frames":4,"reconnects":1,"led":"hand-raised"}}"#;
        let m = ClientMsg::from_json(text).unwrap();
        let ClientMsg::LinkStats(l) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(
            (l.rtt_ms, l.led.as_deref()),
            (Some(12), Some("hand-raised"))
        );
        assert_eq!(m.to_json(), text, "the wire form is stable");
        // A browser measures less: absent fields stay absent.
        let browser = ClientMsg::from_json(r#"{"op":"link_stats","d":{"jitter_ms":2}}"#).unwrap();
        assert_eq!(
            browser.to_json(),
            r#"{"op":"link_stats","d":{"jitter_ms":2}}"#
        );
        for bad in [
            text.replace("hand-raised", "<b>"),
            text.replace("hand-raised", ""),
            text.replace("hand-raised", &"x".repeat(MAX_LED_NAME_LEN + 1)),
            text.replace("12", "-1"),
        ] {
            assert!(ClientMsg::from_json(&bad).is_err(), "{bad}");
        }
    }
}
