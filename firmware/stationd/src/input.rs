//! Everything that wakes the network task, from the connection tasks, the control socket,
//! the keyboard and signals.

use stagebox_core::{ButtonId, ConnId, ConnectFailure};

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
    /// A button's contact opened or closed (sampled, not yet debounced).
    Button {
        id: ButtonId,
        pressed: bool,
    },
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
}
