//! # stagebox-core — the station's logic, sans-IO
//!
//! Every decision a station makes, with no clock, no socket and no device: time comes in as
//! `now: Instant`, inputs through `handle_*`, outputs out of `poll_*` (messages to send,
//! events for the plumbing, the next deadline). The async plumbing in `stationd` only moves
//! bytes and calls these; the tests drive them in virtual time. Clippy's
//! `disallowed-methods` (see this crate's `clippy.toml`) keeps clocks and I/O out.
//!
//! - [`gateway`]: gateway URLs, checked before the station dials one a server named.
//! - [`session`]: the signaling session (hello, identify/resume, heartbeats) and its
//!   reconnect policy, built on [`backoff`] (exponential, full jitter, seeded).
//! - [`stage`]: the stage as this station sees it (role, hand, invitation, mute, priority).
//! - [`button`]: debounce and gestures (down, up, double-press, long-press).
//! - [`led`]: the states the LEDs show; [`led_language`]: how each looks on each LED kind
//!   (both from `stagebox-leds`, which the hal's drivers use without this crate).
//! - [`media`]: the station's end of the media channel: the offer checked into types,
//!   sealing, opening, keepalives.
//! - [`media_route`]: where datagrams go — the offer's address, or its name resolved beside
//!   the loop with a timeout and retries.
//! - [`redundancy`]: how loss is met (redundant earlier frames, or the encoder's FEC) and
//!   the sending half of redundant audio.
//! - [`update`]: the update agent — signed manifests checked against rollback, freeze,
//!   mix-and-match and endless data; download, install, and a reboot only when the stage
//!   allows it (and a maintenance window, if one is set).
//! - [`link_report`]: the link statistics a station reports for the moderator's console.
//! - [`health`]: the boot health check — when the running slot is marked good, and when a
//!   new slot that does not work is given up on.
//! - [`station`]: all of the above composed in one machine (see its poll contract): buttons
//!   and stage decide whether the mic is sent and what the LEDs show; the media link seals and
//!   opens the datagrams and says where they go.

pub mod backoff;
pub mod button;
pub mod gateway;
pub mod health;
pub mod link_report;
pub mod media;
pub mod media_route;
pub mod redundancy;
pub mod session;
pub mod stage;
pub mod station;
pub mod update;

/// The LED language lives below the core (the drivers render it without the core).
pub use stagebox_leds::{led, led_language};

pub use button::{ButtonId, ButtonTiming};
pub use led::LedState;
pub use session::{ConnId, ConnectFailure, Session, SessionConfig, SessionEvent};
pub use station::{Datagram, Station, StationConfig, StationEvent};
