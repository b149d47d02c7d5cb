//! `stationd --check-board`: what can be verified of a board profile on the device itself —
//! the Pi model, the ALSA devices in the station's format, the GPIO lines, PWM and SPI, the
//! `config.txt` lines and the ALSA configuration — as a report a technician can act on.

use std::fmt;

use stagebox_board::{AudioBackend, BoardProfile, GpioBackend};
use stagebox_hal::StreamFormat;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Info,
}

#[derive(Debug, Clone)]
pub struct Line {
    pub status: Status,
    pub item: String,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub board: String,
    pub lines: Vec<Line>,
}

impl Report {
    fn push(&mut self, status: Status, item: &str, detail: impl Into<String>) {
        self.lines.push(Line {
            status,
            item: item.into(),
            detail: detail.into(),
        });
    }

    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.status != Status::Fail)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "board {}", self.board)?;
        for l in &self.lines {
            let tag = match l.status {
                Status::Ok => "ok  ",
                Status::Fail => "FAIL",
                Status::Info => "info",
            };
            writeln!(f, "  {tag}  {}: {}", l.item, l.detail)?;
        }
        let failed = self
            .lines
            .iter()
            .filter(|l| l.status == Status::Fail)
            .count();
        if failed == 0 {
            writeln!(f, "all checks passed")
        } else {
            writeln!(f, "{failed} problem(s)")
        }
    }
}

/// Runs every check of `board` against this machine.
pub fn check(board: &BoardProfile) -> Report {
    let mut r = Report {
        board: format!("{} ({})", board.name, board.description),
        lines: vec![],
    };
    check_model(board, &mut r);
    check_audio(board, &mut r);
    check_gpio(board, &mut r);
    check_system_files(board, &mut r);
    r
}

fn check_model(board: &BoardProfile, r: &mut Report) {
    let Some(soc) = &board.soc else {
        return;
    };
    match std::fs::read("/proc/device-tree/model") {
        Ok(bytes) => {
            let model = String::from_utf8_lossy(&bytes).trim_end_matches('\0').to_string();
            if model.starts_with(&soc.model) {
                r.push(Status::Ok, "model", model);
            } else {
                r.push(
                    Status::Fail,
                    "model",
                    format!("this is a {model:?}, the profile is for a {}", soc.model),
                );
            }
        }
        Err(e) => r.push(
            Status::Fail,
            "model",
            format!(
                "cannot read /proc/device-tree/model ({e}): not a Raspberry Pi; the profile is for a {}",
                soc.model
            ),
        ),
    }
}

fn check_audio(board: &BoardProfile, r: &mut Report) {
    if board.audio.backend != AudioBackend::Alsa {
        r.push(Status::Ok, "audio", "sim (WAV files)");
        return;
    }
    let capture = StreamFormat {
        channels: board.audio.capture_channels,
        ..StreamFormat::mono()
    };
    #[cfg(feature = "alsa")]
    {
        let what = format!(
            "capture {} ({} ch, 48 kHz, S16)",
            board.audio.capture_device, capture.channels
        );
        match stagebox_hal::alsa::AlsaCapture::open(&board.audio.capture_device, capture) {
            Ok(_) => r.push(Status::Ok, &what, "opens"),
            Err(e) => r.push(Status::Fail, &what, e.to_string()),
        }
        let what = format!(
            "playback {} (1 ch, 48 kHz, S16)",
            board.audio.playback_device
        );
        match stagebox_hal::alsa::AlsaPlayback::open(
            &board.audio.playback_device,
            StreamFormat::mono(),
        ) {
            Ok(_) => r.push(Status::Ok, &what, "opens"),
            Err(e) => r.push(Status::Fail, &what, e.to_string()),
        }
    }
    #[cfg(not(feature = "alsa"))]
    r.push(
        Status::Fail,
        "audio",
        format!(
            "this build has no ALSA support ({} channels wanted)",
            capture.channels
        ),
    );
}

fn check_gpio(board: &BoardProfile, r: &mut Report) {
    if board.gpio.backend == GpioBackend::Sim {
        r.push(
            Status::Ok,
            "buttons and LEDs",
            "sim (control socket, terminal)",
        );
        return;
    }
    let wiring = format!(
        "PTT GPIO {}, hand GPIO {}, {} LEDs",
        board.buttons.ptt.pin,
        board.buttons.hand.pin,
        board.leds.kind()
    );
    match crate::hardware::open(board) {
        Ok(_) => r.push(Status::Ok, "buttons and LEDs", format!("{wiring}: open")),
        Err(e) => r.push(Status::Fail, "buttons and LEDs", format!("{wiring}: {e}")),
    }
}

fn check_system_files(board: &BoardProfile, r: &mut Report) {
    if board.soc.is_some() {
        let path = ["/boot/firmware/config.txt", "/boot/config.txt"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        match path.map(|p| (p, std::fs::read_to_string(p))) {
            Some((p, Ok(text))) => {
                let missing: Vec<&String> = board
                    .system
                    .config_txt
                    .iter()
                    .filter(|l| !text.lines().any(|t| t.trim() == l.as_str()))
                    .collect();
                if missing.is_empty() {
                    r.push(Status::Ok, p, "has the board's lines");
                } else {
                    r.push(
                        Status::Fail,
                        p,
                        format!(
                            "add these lines and reboot: {}",
                            missing
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    );
                }
            }
            Some((p, Err(e))) => r.push(Status::Fail, p, e.to_string()),
            None => r.push(
                Status::Fail,
                "config.txt",
                format!(
                    "not found; the board needs: {}",
                    board.system.config_txt.join("; ")
                ),
            ),
        }
    }
    if let Some(conf) = &board.audio.asound_conf {
        let installed = std::fs::read_to_string("/etc/asound.conf").unwrap_or_default();
        let wanted = format!("pcm.{} ", board.audio.capture_device);
        if installed.contains(&wanted) {
            r.push(
                Status::Ok,
                "/etc/asound.conf",
                "defines the station's devices",
            );
        } else {
            r.push(
                Status::Fail,
                "/etc/asound.conf",
                format!(
                    "does not define {}: install /usr/share/stagebox/boards/files/{conf} there",
                    board.audio.capture_device
                ),
            );
        }
    }
    if !board.system.notes.is_empty() {
        r.push(Status::Info, "note", board.system.notes.clone());
    }
}
