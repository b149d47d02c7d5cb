//! What the LEDs show. One state per situation, in priority order; the drivers (sim terminal,
//! GPIO, RGB, APA102 ring) render each state in their own way.

/// The situation the LEDs show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LedState {
    /// Starting up.
    Booting,
    /// First connection to the stage not yet up.
    Connecting,
    /// Listening in the audience.
    Audience,
    /// Audience with the hand raised.
    HandRaised,
    /// Invited to speak: needs attention (PTT accepts, hand declines).
    Invited,
    /// Speaker (or moderator), not transmitting.
    SpeakerIdle,
    /// Transmitting: the level is shown alongside.
    Live,
    /// Speaker muted by a moderator: PTT does nothing.
    Muted,
    /// Lost the server, trying again.
    Reconnecting,
    /// The server refuses this station (credentials, stage): needs a person.
    Error,
    /// Installing an update.
    Updating,
}

impl LedState {
    /// A short name, for logs, the sim terminal and reports.
    pub fn name(self) -> &'static str {
        match self {
            LedState::Booting => "booting",
            LedState::Connecting => "connecting",
            LedState::Audience => "audience",
            LedState::HandRaised => "hand-raised",
            LedState::Invited => "invited",
            LedState::SpeakerIdle => "speaker",
            LedState::Live => "live",
            LedState::Muted => "muted",
            LedState::Reconnecting => "reconnecting",
            LedState::Error => "error",
            LedState::Updating => "updating",
        }
    }
}
