//! Everything that wakes the network task, from the connection tasks, the control socket,
//! the keyboard and signals.

use std::net::SocketAddr;

use stagebox_core::media_route::{ResolveFailure, ResolveId};
use stagebox_core::{ButtonId, ConnId, ConnectFailure};

/// Inputs waiting at most. Connection tasks wait for room, so a server flooding a stalled
/// station is held back by TCP (at most this many messages of `MAX_MESSAGE_LEN` each).
pub const CAPACITY: usize = 64;

#[derive(Debug)]
pub enum Input {
    Connected {
        conn: ConnId,
    },
    Text {
        conn: ConnId,
        text: String,
    },
    Closed {
        conn: ConnId,
        code: Option<u16>,
    },
    /// The connection could not be opened (TCP, TLS or the WebSocket upgrade failed).
    ConnectFailed {
        conn: ConnId,
        failure: ConnectFailure,
    },
    /// The server sent a frame the protocol does not allow (binary, or text that is not
    /// UTF-8).
    Malformed {
        conn: ConnId,
    },
    /// The answer about a media host name (or its timeout).
    Resolved {
        id: ResolveId,
        answer: Result<SocketAddr, ResolveFailure>,
    },
    /// A button's contact opened or closed (sampled, not yet debounced).
    Button {
        id: ButtonId,
        pressed: bool,
    },
    /// An update job finished or made progress.
    Update(crate::updater::UpdateInput),
    /// A diagnostic command; the answer goes to `reply`.
    Command {
        command: Command,
        reply: async_channel::Sender<String>,
    },
}

/// Commands of the control socket and the keyboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Station statistics as a JSON line.
    Stats,
    /// Shut down cleanly.
    Quit,
    /// Look for an update now.
    CheckUpdate,
    /// Stop the network task for this long, as a wedged loop would (sim control, for tests).
    Stall(std::time::Duration),
    /// The technician's test signal on the loudspeaker: a tone, or a sweep for the echo
    /// canceller to measure the speaker-to-microphone path on.
    Tone { sweep: bool },
    /// Every state of the LED language in turn, then back to the station's own.
    LedTour,
}
