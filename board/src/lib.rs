//! # stagebox-board — boards as data
//!
//! A board profile says which audio backend and devices a station uses, how many capture
//! channels carry microphones, where its buttons are wired and what kind of LEDs it has. The
//! daemon picks a profile by name from its configuration; the built-in profiles live in
//! `board/profiles/*.toml` and are compiled in, and a profile file can be named instead.

use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioBackend {
    Sim,
    Alsa,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ButtonBackend {
    Sim,
    Rppal,
    GpioCdev,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pull {
    Up,
    Down,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonPin {
    pub pin: u32,
    pub pull: Pull,
    pub active_low: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LedKind {
    Terminal,
    Gpio,
    Rgb,
    Apa102,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioProfile {
    pub backend: AudioBackend,
    pub capture_device: String,
    pub playback_device: String,
    pub capture_channels: u16,
    pub mic_channels: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonProfile {
    pub backend: ButtonBackend,
    pub ptt: ButtonPin,
    pub hand: ButtonPin,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedProfile {
    pub kind: LedKind,
    pub count: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardProfile {
    pub name: String,
    pub description: String,
    pub audio: AudioProfile,
    pub buttons: ButtonProfile,
    pub leds: LedProfile,
}

#[derive(Debug, Error)]
pub enum BoardError {
    #[error("unknown board {0:?}; built-in boards: {list}", list = builtin_list())]
    Unknown(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

fn builtin_list() -> String {
    BUILTIN
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

const BUILTIN: &[(&str, &str)] = &[("sim", include_str!("../profiles/sim.toml"))];

impl BoardProfile {
    /// A built-in profile by name, or a profile file if `name` is a path to one.
    pub fn load(name: &str) -> Result<BoardProfile, BoardError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) {
            return BoardProfile::parse(text, &format!("board/profiles/{name}.toml"));
        }
        let path = Path::new(name);
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(path).map_err(|e| BoardError::Invalid {
                path: name.into(),
                message: e.to_string(),
            })?;
            return BoardProfile::parse(&text, name);
        }
        Err(BoardError::Unknown(name.into()))
    }

    pub fn parse(text: &str, origin: &str) -> Result<BoardProfile, BoardError> {
        let profile: BoardProfile = toml::from_str(text).map_err(|e| BoardError::Invalid {
            path: origin.into(),
            message: e.to_string(),
        })?;
        profile.validate().map_err(|message| BoardError::Invalid {
            path: origin.into(),
            message,
        })?;
        Ok(profile)
    }

    fn validate(&self) -> Result<(), String> {
        if self.audio.capture_channels == 0 {
            return Err("audio.capture_channels must be at least 1".into());
        }
        if self.audio.mic_channels.is_empty() {
            return Err("audio.mic_channels must name at least one channel".into());
        }
        if let Some(c) = self
            .audio
            .mic_channels
            .iter()
            .find(|&&c| c >= self.audio.capture_channels)
        {
            return Err(format!(
                "audio.mic_channels names channel {c}, but there are only {} capture channels",
                self.audio.capture_channels
            ));
        }
        if self.buttons.ptt.pin == self.buttons.hand.pin {
            return Err("buttons.ptt and buttons.hand are on the same pin".into());
        }
        Ok(())
    }

    /// Names of the built-in profiles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_profile_validates() {
        for name in BoardProfile::builtin_names() {
            let p = BoardProfile::load(name).unwrap();
            assert_eq!(p.name, name);
        }
    }

    #[test]
    fn bad_profiles_are_refused_with_reasons() {
        assert!(matches!(
            BoardProfile::load("pi9"),
            Err(BoardError::Unknown(_))
        ));
        let text = include_str!("../profiles/sim.toml")
            .replace("mic_channels = [0]", "mic_channels = [3]");
        let err = BoardProfile::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("channel 3"), "{err}");
        let text =
            include_str!("../profiles/sim.toml").replace("kind = \"terminal\"", "kind = \"laser\"");
        let err = BoardProfile::parse(&text, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("laser"), "{err}");
    }
}
