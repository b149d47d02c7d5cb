//! The console line's bytes, sorted: a frame line (it starts with a frame marker and runs to
//! its newline) goes to the frame decoder whole; everything else is a person's keys and goes
//! to the line editor one by one, at once.
//!
//! The first byte of a marker is also a key (`0x04` is Ctrl-D, `0x06` Ctrl-F): it is held
//! until the next byte says which it is, or for [`MARKER_WAIT`] at most, so a lone Ctrl-D
//! still arrives. A frame line longer than [`MAX_LINE`] is dropped to its newline and
//! reported; nothing a peer sends grows a buffer past that.

use std::time::{Duration, Instant};

use crate::frame::{CONTINUE, MAX_LINE, START};

/// How long the first byte of a marker waits for the second.
pub const MARKER_WAIT: Duration = Duration::from_millis(50);

/// What the line carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A person's key (or part of an escape sequence).
    Key(u8),
    /// A whole frame line, marker first, without its newline.
    FrameLine(Vec<u8>),
    /// A frame line over [`MAX_LINE`] bytes was dropped.
    FrameLineTooLong,
}

#[derive(Debug)]
enum State {
    Keys,
    /// The first byte of a marker, held since then.
    Held(u8, Instant),
    Frame(Vec<u8>),
    /// Dropping an overlong frame line up to its newline.
    Discard,
}

#[derive(Debug)]
pub struct InputSorter {
    state: State,
    out: std::collections::VecDeque<Input>,
}

impl Default for InputSorter {
    fn default() -> Self {
        InputSorter {
            state: State::Keys,
            out: std::collections::VecDeque::new(),
        }
    }
}

impl InputSorter {
    pub fn new() -> InputSorter {
        InputSorter::default()
    }

    /// Bytes from the line, received at `now`. Read what they were with [`Self::poll`]
    /// before the next call.
    pub fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        self.handle_timeout(now);
        for &b in bytes {
            self.state = match std::mem::replace(&mut self.state, State::Keys) {
                State::Keys if b == START[0] || b == CONTINUE[0] => State::Held(b, now),
                State::Keys => {
                    self.out.push_back(Input::Key(b));
                    State::Keys
                }
                State::Held(first, _) if [first, b] == START || [first, b] == CONTINUE => {
                    State::Frame(vec![first, b])
                }
                State::Held(first, _) => {
                    self.out.push_back(Input::Key(first));
                    if b == START[0] || b == CONTINUE[0] {
                        State::Held(b, now)
                    } else {
                        self.out.push_back(Input::Key(b));
                        State::Keys
                    }
                }
                State::Frame(line) if b == b'\n' => {
                    self.out.push_back(Input::FrameLine(line));
                    State::Keys
                }
                State::Frame(_) | State::Discard if b == b'\n' => State::Keys,
                State::Frame(mut line) => {
                    if line.len() + 1 >= MAX_LINE {
                        self.out.push_back(Input::FrameLineTooLong);
                        State::Discard
                    } else {
                        line.push(b);
                        State::Frame(line)
                    }
                }
                State::Discard => State::Discard,
            };
        }
    }

    /// A held marker byte whose wait is over becomes a key.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let State::Held(b, since) = self.state
            && now.saturating_duration_since(since) >= MARKER_WAIT
        {
            self.out.push_back(Input::Key(b));
            self.state = State::Keys;
        }
    }

    /// When [`Self::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Held(_, since) => Some(since + MARKER_WAIT),
            _ => None,
        }
    }

    pub fn poll(&mut self) -> Option<Input> {
        self.out.pop_front()
    }

    /// The line was broken (a break, the cable pulled): a frame line in progress is
    /// dropped, a held byte is given up.
    pub fn reset(&mut self) {
        self.state = State::Keys;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort(s: &mut InputSorter, now: Instant, bytes: &[u8]) -> Vec<Input> {
        s.handle_bytes(now, bytes);
        std::iter::from_fn(|| s.poll()).collect()
    }

    #[test]
    fn keys_pass_at_once_and_a_frame_line_comes_whole_between_them() {
        let t = Instant::now();
        let mut s = InputSorter::new();
        let got = sort(&mut s, t, b"st\x06\x09QUJD\nat");
        assert_eq!(
            got,
            vec![
                Input::Key(b's'),
                Input::Key(b't'),
                Input::FrameLine(b"\x06\x09QUJD".to_vec()),
                Input::Key(b'a'),
                Input::Key(b't'),
            ]
        );
        // Split anywhere, the same.
        let mut s = InputSorter::new();
        let mut got = Vec::new();
        for b in b"\x04\x14QUJD\n" {
            got.extend(sort(&mut s, t, &[*b]));
        }
        assert_eq!(got, vec![Input::FrameLine(b"\x04\x14QUJD".to_vec())]);
    }

    #[test]
    fn a_lone_ctrl_d_arrives_after_the_wait_or_with_the_next_key() {
        let t = Instant::now();
        let mut s = InputSorter::new();
        assert_eq!(sort(&mut s, t, b"\x04"), vec![]);
        assert_eq!(s.poll_timeout(), Some(t + MARKER_WAIT));
        s.handle_timeout(t + MARKER_WAIT);
        assert_eq!(s.poll(), Some(Input::Key(0x04)));
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(
            sort(&mut s, t, b"\x04x\x06\x06\x09"),
            vec![Input::Key(0x04), Input::Key(b'x'), Input::Key(0x06)]
        );
    }

    #[test]
    fn an_endless_frame_line_is_dropped_to_its_newline() {
        let t = Instant::now();
        let mut s = InputSorter::new();
        let mut line = START.to_vec();
        line.extend(std::iter::repeat_n(b'A', 10_000));
        line.extend_from_slice(b"\nok");
        assert_eq!(
            sort(&mut s, t, &line),
            vec![Input::FrameLineTooLong, Input::Key(b'o'), Input::Key(b'k')]
        );
    }
}
