//! Strings from outside (URLs, ids, reasons a peer sent) written into logs safely: control
//! characters and quotes escaped, and cut after [`Untrusted::MAX_CHARS`] characters, so a peer
//! cannot forge log lines, hide text with terminal escapes or fill the journal.

use std::fmt;

/// Displays `self.0` escaped and truncated (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl Untrusted<'_> {
    /// Characters shown at most; a longer string ends in `…(N bytes)`.
    pub const MAX_CHARS: usize = 120;
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, c) in self.0.chars().enumerate() {
            if shown == Self::MAX_CHARS {
                return write!(f, "…({} bytes)", self.0.len());
            }
            if c.is_control() || c == '"' || c == '\\' || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_strings_cut() {
        assert_eq!(
            Untrusted("wss://a\0b\n\u{1b}[31mred\"").to_string(),
            "wss://a\\u{0}b\\n\\u{1b}[31mred\\\""
        );
        let long = "x".repeat(10 * 1024);
        let shown = Untrusted(&long).to_string();
        assert!(shown.starts_with(&"x".repeat(Untrusted::MAX_CHARS)));
        assert!(shown.ends_with("…(10240 bytes)"), "{shown}");
        assert!(shown.len() < 200);
        assert_eq!(
            Untrusted("voice.example.org").to_string(),
            "voice.example.org"
        );
    }
}
