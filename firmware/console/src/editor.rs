//! The human mode's line editor, as picocom, minicom or tio send keys: printable characters
//! insert at the cursor; Backspace (DEL or BS), Delete, ←/→, Home/End (and Ctrl-A/Ctrl-E),
//! Ctrl-U (erase the line), ↑/↓ (history), Tab (completion, answered by the shell), Enter (CR,
//! LF or CR LF), Ctrl-C (drop the line, stop a live view), Ctrl-D on an empty line (log out).
//! It answers with the bytes that redraw the terminal (VT100, which every serial terminal
//! speaks). Lines, history and escape sequences are bounded.

use std::collections::VecDeque;

/// The longest line a person may type.
pub const MAX_LINE: usize = 256;
/// Lines kept for ↑.
pub const HISTORY: usize = 32;
/// The longest escape sequence read (longer ones are dropped).
const MAX_ESCAPE: usize = 8;

/// What a key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Nothing for the shell (the echo is in [`LineEditor::take_echo`]).
    None,
    /// Enter: this line (already echoed with its newline).
    Line(String),
    /// Tab: the shell offers completions of the text before the cursor.
    Complete(String),
    /// Ctrl-C.
    Interrupt,
    /// Ctrl-D on an empty line.
    Logout,
}

#[derive(Debug, Default)]
pub struct LineEditor {
    line: Vec<u8>,
    cursor: usize,
    escape: Option<Vec<u8>>,
    history: VecDeque<Vec<u8>>,
    /// Where ↑/↓ is in the history (`history.len()` is the line being typed).
    browsing: usize,
    /// The line being typed, kept while browsing.
    draft: Vec<u8>,
    echo: Vec<u8>,
    /// The last key was CR: an LF right after it is the same Enter.
    after_cr: bool,
    /// Whether typed characters are shown (off while a PIN is typed).
    pub hidden: bool,
}

impl LineEditor {
    pub fn new() -> LineEditor {
        LineEditor::default()
    }

    /// One key.
    pub fn handle_key(&mut self, b: u8) -> Edit {
        let after_cr = std::mem::take(&mut self.after_cr);
        if let Some(mut seq) = self.escape.take() {
            seq.push(b);
            return self.escape_sequence(seq);
        }
        match b {
            b'\r' => {
                self.after_cr = true;
                self.enter()
            }
            b'\n' if after_cr => Edit::None,
            b'\n' => self.enter(),
            0x1b => {
                self.escape = Some(Vec::new());
                Edit::None
            }
            0x7f | 0x08 => {
                if self.cursor > 0 {
                    self.cursor -= 1;
                    self.line.remove(self.cursor);
                    self.echo.push(0x08);
                    self.redraw_tail(1);
                }
                Edit::None
            }
            0x01 => self.move_to(0),
            0x05 => self.move_to(self.line.len()),
            0x15 => {
                self.move_to(0);
                let n = self.line.len();
                self.line.clear();
                self.cursor = 0;
                self.redraw_tail(n);
                Edit::None
            }
            0x03 => {
                self.echo.extend_from_slice(b"^C\r\n");
                self.clear();
                Edit::Interrupt
            }
            0x04 if self.line.is_empty() => Edit::Logout,
            b'\t' => Edit::Complete(String::from_utf8_lossy(&self.line[..self.cursor]).into()),
            0x20..=0x7e => {
                if self.line.len() >= MAX_LINE {
                    self.echo.push(0x07);
                } else {
                    self.line.insert(self.cursor, b);
                    self.cursor += 1;
                    if self.hidden {
                        self.echo.push(b'*');
                    } else {
                        self.echo.push(b);
                    }
                    self.redraw_tail(0);
                }
                Edit::None
            }
            // Other control bytes and bytes above ASCII (line noise, a wrong baud rate).
            _ => Edit::None,
        }
    }

    fn escape_sequence(&mut self, seq: Vec<u8>) -> Edit {
        match seq.as_slice() {
            [b'['] | [b'O'] => {
                self.escape = Some(seq);
                Edit::None
            }
            [b'[' | b'O', b'D'] => self.move_to(self.cursor.saturating_sub(1)),
            [b'[' | b'O', b'C'] => self.move_to((self.cursor + 1).min(self.line.len())),
            [b'[' | b'O', b'H'] | [b'[', b'1', b'~'] => self.move_to(0),
            [b'[' | b'O', b'F'] | [b'[', b'4', b'~'] => self.move_to(self.line.len()),
            [b'[' | b'O', b'A'] => self.browse(-1),
            [b'[' | b'O', b'B'] => self.browse(1),
            [b'[', b'3', b'~'] => {
                if self.cursor < self.line.len() {
                    self.line.remove(self.cursor);
                    self.redraw_tail(1);
                }
                Edit::None
            }
            // Parameter bytes: wait for the final byte, keeping at most MAX_ESCAPE.
            [b'[', .., last] if (0x30..=0x3f).contains(last) => {
                let mut seq = seq;
                if seq.len() > MAX_ESCAPE {
                    seq.remove(1);
                }
                self.escape = Some(seq);
                Edit::None
            }
            _ => Edit::None,
        }
    }

    fn enter(&mut self) -> Edit {
        self.echo.extend_from_slice(b"\r\n");
        let line = std::mem::take(&mut self.line);
        self.cursor = 0;
        self.draft.clear();
        if !line.is_empty() && !self.hidden && self.history.back() != Some(&line) {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        self.browsing = self.history.len();
        Edit::Line(String::from_utf8_lossy(&line).into_owned())
    }

    fn move_to(&mut self, to: usize) -> Edit {
        if to < self.cursor {
            self.echo
                .extend_from_slice(format!("\x1b[{}D", self.cursor - to).as_bytes());
        } else if to > self.cursor {
            self.echo
                .extend_from_slice(format!("\x1b[{}C", to - self.cursor).as_bytes());
        }
        self.cursor = to;
        Edit::None
    }

    /// Rewrites the line from the cursor to its end, blanks `erased` cells after it, and
    /// puts the cursor back.
    fn redraw_tail(&mut self, erased: usize) {
        let tail: Vec<u8> = if self.hidden {
            vec![b'*'; self.line.len() - self.cursor]
        } else {
            self.line[self.cursor..].to_vec()
        };
        self.echo.extend_from_slice(&tail);
        self.echo.extend(std::iter::repeat_n(b' ', erased));
        let back = tail.len() + erased;
        if back > 0 {
            self.echo
                .extend_from_slice(format!("\x1b[{back}D").as_bytes());
        }
    }

    fn browse(&mut self, step: isize) -> Edit {
        let to = self
            .browsing
            .saturating_add_signed(step)
            .min(self.history.len());
        if to == self.browsing {
            return Edit::None;
        }
        if self.browsing == self.history.len() {
            self.draft = self.line.clone();
        }
        self.browsing = to;
        let next = self
            .history
            .get(to)
            .cloned()
            .unwrap_or_else(|| self.draft.clone());
        self.replace_line(next);
        Edit::None
    }

    /// Shows `text` in place of the line, the cursor at its end (completion, history).
    pub fn replace_line(&mut self, mut text: Vec<u8>) {
        self.move_to(0);
        let old = self.line.len();
        text.truncate(MAX_LINE);
        self.line = text;
        if self.hidden {
            self.echo.extend(std::iter::repeat_n(b'*', self.line.len()));
        } else {
            self.echo.extend_from_slice(&self.line);
        }
        let erased = old.saturating_sub(self.line.len());
        if erased > 0 {
            self.echo.extend(std::iter::repeat_n(b' ', erased));
            self.echo
                .extend_from_slice(format!("\x1b[{erased}D").as_bytes());
        }
        self.cursor = self.line.len();
    }

    /// The line so far.
    pub fn line(&self) -> String {
        String::from_utf8_lossy(&self.line).into_owned()
    }

    /// Drops the line being typed (no echo).
    pub fn clear(&mut self) {
        self.line.clear();
        self.cursor = 0;
        self.escape = None;
        self.browsing = self.history.len();
    }

    /// The bytes to send back to the terminal, since the last call.
    pub fn take_echo(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.echo)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(e: &mut LineEditor, bytes: &[u8]) -> Vec<Edit> {
        bytes
            .iter()
            .map(|b| e.handle_key(*b))
            .filter(|x| *x != Edit::None)
            .collect()
    }

    #[test]
    fn typing_with_corrections_gives_the_line_that_shows() {
        let mut e = LineEditor::new();
        // "statsu", backspace twice, "us", ← twice, Delete, "t", End, Enter.
        let got = keys(&mut e, b"statsu\x7f\x7fus\x1b[D\x1b[D\x1b[3~t\x1b[F\r\n");
        assert_eq!(got, vec![Edit::Line("statts".into())]);
        let mut e = LineEditor::new();
        assert_eq!(
            keys(&mut e, b"net\x08\x08\x08status\r"),
            vec![Edit::Line("status".into())]
        );
        // CR LF is one Enter; LF alone is one too.
        assert_eq!(
            keys(&mut e, b"a\r\nb\n"),
            vec![Edit::Line("a".into()), Edit::Line("b".into())]
        );
    }

    #[test]
    fn history_recalls_and_the_draft_comes_back() {
        let mut e = LineEditor::new();
        keys(&mut e, b"status\rnet\rlog");
        keys(&mut e, b"\x1b[A\x1b[A");
        assert_eq!(e.line(), "status");
        keys(&mut e, b"\x1b[B");
        assert_eq!(e.line(), "net");
        keys(&mut e, b"\x1b[B");
        assert_eq!(e.line(), "log");
        assert_eq!(keys(&mut e, b"\x1bOA\r"), vec![Edit::Line("net".into())]);
    }

    #[test]
    fn control_keys_and_noise_do_what_a_person_expects() {
        let mut e = LineEditor::new();
        assert_eq!(keys(&mut e, b"\x04"), vec![Edit::Logout]);
        assert_eq!(keys(&mut e, b"abc\x04\x03"), vec![Edit::Interrupt]);
        assert_eq!(e.line(), "");
        assert_eq!(keys(&mut e, b"up\t"), vec![Edit::Complete("up".into())]);
        keys(&mut e, b"\x15");
        assert_eq!(e.line(), "");
        // Noise: bytes above ASCII, stray controls, an endless escape sequence.
        keys(
            &mut e,
            &[
                0xff, 0x80, 0x00, 0x1b, b'[', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9',
                b'~',
            ],
        );
        assert_eq!(keys(&mut e, b"ok\r"), vec![Edit::Line("ok".into())]);
        // An overlong line stops growing and rings.
        let long = vec![b'x'; MAX_LINE + 10];
        keys(&mut e, &long);
        assert_eq!(e.line().len(), MAX_LINE);
        assert!(e.take_echo().contains(&0x07));
    }

    #[test]
    fn a_hidden_line_shows_stars_and_stays_out_of_history() {
        let mut e = LineEditor::new();
        e.hidden = true;
        assert_eq!(keys(&mut e, b"1234\r"), vec![Edit::Line("1234".into())]);
        let echo = e.take_echo();
        assert!(!echo.windows(4).any(|w| w == b"1234"), "{echo:?}");
        e.hidden = false;
        keys(&mut e, b"\x1b[A");
        assert_eq!(e.line(), "");
    }
}
