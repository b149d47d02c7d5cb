//! WebSocket close codes and what a station does after each.

/// What a station does after its signaling connection closed with a given code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterClose {
    /// Reconnect at once and resume the session.
    Resume,
    /// The session is gone: reconnect and identify afresh.
    Reidentify,
    /// Retrying soon will not help (bad credentials, unknown stage, unsupported version):
    /// show the error and retry at the slowest backoff, for the fault may be fixed on the
    /// server side. A station never gives up.
    Fatal,
}

/// Close codes used in the 4000–4999 private range, plus the standard ones we act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum CloseCode {
    Normal = 1000,
    GoingAway = 1001,
    UnknownError = 4000,
    UnknownOp = 4001,
    DecodeError = 4002,
    NotAuthenticated = 4003,
    AuthenticationFailed = 4004,
    AlreadyAuthenticated = 4005,
    SessionInvalid = 4006,
    SessionTimeout = 4009,
    StageNotFound = 4011,
    UnsupportedVersion = 4012,
    UnsupportedMode = 4013,
    /// The server asked the station to reconnect (see the `reconnect` op).
    Reconnect = 4015,
    /// A moderator removed this member from the stage; its session is gone.
    Removed = 4016,
    /// A moderator ended the stage; a browser's session is gone (stations stay, as audience).
    StageEnded = 4017,
}

impl CloseCode {
    pub fn from_u16(code: u16) -> Option<CloseCode> {
        use CloseCode::*;
        Some(match code {
            1000 => Normal,
            1001 => GoingAway,
            4000 => UnknownError,
            4001 => UnknownOp,
            4002 => DecodeError,
            4003 => NotAuthenticated,
            4004 => AuthenticationFailed,
            4005 => AlreadyAuthenticated,
            4006 => SessionInvalid,
            4009 => SessionTimeout,
            4011 => StageNotFound,
            4012 => UnsupportedVersion,
            4013 => UnsupportedMode,
            4015 => Reconnect,
            4016 => Removed,
            4017 => StageEnded,
            _ => return None,
        })
    }

    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// What a station does after this code.
    pub fn after_close(self) -> AfterClose {
        use CloseCode::*;
        match self {
            Normal | GoingAway | UnknownError | UnknownOp | DecodeError | SessionTimeout
            | Reconnect => AfterClose::Resume,
            NotAuthenticated | AlreadyAuthenticated | SessionInvalid | Removed | StageEnded => {
                AfterClose::Reidentify
            }
            AuthenticationFailed | StageNotFound | UnsupportedVersion | UnsupportedMode => {
                AfterClose::Fatal
            }
        }
    }
}

/// What to do after a close with a raw code (or none: the transport dropped). Unknown codes
/// and dropped transports resume: the server decides whether the session still exists.
pub fn after_close(code: Option<u16>) -> AfterClose {
    code.and_then(CloseCode::from_u16)
        .map_or(AfterClose::Resume, CloseCode::after_close)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_classify() {
        for c in 0..=u16::MAX {
            if let Some(code) = CloseCode::from_u16(c) {
                assert_eq!(code.as_u16(), c);
            }
        }
        assert_eq!(after_close(None), AfterClose::Resume);
        assert_eq!(after_close(Some(4006)), AfterClose::Reidentify);
        assert_eq!(after_close(Some(4004)), AfterClose::Fatal);
        assert_eq!(after_close(Some(4999)), AfterClose::Resume);
    }
}
