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
    /// No stage for a long time (see `StationConfig::offline_after`); still trying.
    Offline,
    /// A button has been held past the stuck-button limit: PTT no longer transmits until it
    /// is released. Needs a person.
    ButtonStuck,
    /// The server refuses this station (credentials, stage), or the server answering is not
    /// the configured one (certificate pin or CA), or the sound device is gone: needs a
    /// person.
    Error,
    /// Installing an update.
    Updating,
}

impl LedState {
    /// Every state, in the order of the docs' table.
    pub const ALL: [LedState; 13] = [
        LedState::Booting,
        LedState::Connecting,
        LedState::Reconnecting,
        LedState::Offline,
        LedState::Audience,
        LedState::HandRaised,
        LedState::Invited,
        LedState::SpeakerIdle,
        LedState::Live,
        LedState::Muted,
        LedState::Error,
        LedState::ButtonStuck,
        LedState::Updating,
    ];

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
            LedState::Offline => "offline",
            LedState::ButtonStuck => "button-stuck",
            LedState::Error => "error",
            LedState::Updating => "updating",
        }
    }
}
