//! A configuration mistake waits for a person (`stationd --wait-on-mistake`): instead of
//! exiting — which leaves the LEDs dark and, under systemd, looks like a daemon that cannot
//! start — the daemon shows `error` on the board's LEDs, tells systemd it is up with the
//! mistake as its status line (`systemctl status stagebox-stationd`), keeps the watchdog fed,
//! and waits to be stopped. The owner reads the mistake in `stagebox-report.txt`, fixes the
//! file and restarts the station.
//!
//! Not after an update: when the running version is on trial, the previous version ran with
//! this very file, so the mistake is the new version's and its boot has failed — the daemon
//! exits with a failure, and the start limit and the boot loader take the station back.
//!
//! Which board's LEDs: the `[board] profile` of the file, read on its own, so a typo in
//! another section still lights the right pins. A file without a usable board shows nothing
//! on the LEDs, and says so in the log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use stagebox_board::{BoardProfile, GpioBackend};
use stagebox_core::LedState;
use stagebox_hal::Indicator as _;

use crate::notify::Watchdog;

/// How often the LEDs' pattern is redrawn and the watchdog looked at.
const TICK: Duration = Duration::from_millis(20);

/// The `[board] profile` named in `text`, whatever else is wrong with the file.
pub fn board_named_in(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).ok()?;
    Some(table.get("board")?.get("profile")?.as_str()?.to_string())
}

/// The running version, if it is on trial after an update (`[update] dir` and
/// `version_file` as `text` gives them, else their defaults). The previous version ran with
/// this file, so a mistake now is the new version's: its boot has failed, and the station
/// should go back rather than wait.
pub fn version_on_trial(text: &str) -> Option<String> {
    let table: toml::Table = toml::from_str(text).unwrap_or_default();
    let update = table.get("update");
    let path = |key: &str, default: std::path::PathBuf| {
        update
            .and_then(|u| u.get(key))
            .and_then(|v| v.as_str())
            .map_or(default, std::path::PathBuf::from)
    };
    crate::updater::running_on_trial(
        &path("dir", crate::config::default_update_dir()),
        &path("version_file", crate::config::default_version_file()),
    )
}

/// Shows `error` on the LEDs of `board` and waits for SIGTERM or SIGINT.
pub fn hold(board: Option<&BoardProfile>, mistake: &str) -> std::io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let mut leds = match board {
        Some(b) if b.gpio.backend != GpioBackend::Sim => match crate::hardware::open(b) {
            Ok((_buttons, leds)) => Some(leds),
            Err(e) => {
                log::error!("the LEDs cannot show the mistake: {e}");
                None
            }
        },
        Some(b) => {
            log::info!("board {}: no LEDs to show the mistake on", b.name);
            None
        }
        None => {
            log::warn!("no usable [board] profile: the LEDs cannot show the mistake");
            None
        }
    };
    log::error!("configuration mistake, waiting to be fixed: {mistake}");
    let mut watchdog =
        Watchdog::from_env().with_status(&format!("configuration mistake: {mistake}"));
    let mut failing = false;
    let mut shown = false;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if let Some(l) = &mut leds {
            let r = if shown {
                l.refresh(now)
            } else {
                l.show(now, LedState::Error)
            };
            match r {
                Ok(()) => {
                    shown = true;
                    failing = false;
                }
                Err(e) if !failing => {
                    failing = true;
                    log::warn!("LEDs: {e}");
                }
                Err(_) => {}
            }
        }
        watchdog.pet(now);
        std::thread::sleep(TICK);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_version_on_trial_owns_the_mistake() {
        let dir = std::env::temp_dir().join(format!("stagebox-trial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = format!(
            "[station]\nid = 5\n[update]\ndir = {:?}\nversion_file = {:?}\n",
            dir.display().to_string(),
            dir.join("version").display().to_string()
        );
        std::fs::write(dir.join("version"), "1.2.0\n").unwrap();
        assert_eq!(
            version_on_trial(&text),
            None,
            "no trial: the owner's mistake"
        );
        std::fs::write(
            dir.join("trial.json"),
            r#"{"version": "1.2.0", "from": "1.1.0", "boot_id": "x"}"#,
        )
        .unwrap();
        assert_eq!(version_on_trial(&text).as_deref(), Some("1.2.0"));
        std::fs::write(dir.join("version"), "1.1.0\n").unwrap();
        assert_eq!(version_on_trial(&text), None, "back on the proven version");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_board_is_found_in_a_file_with_mistakes_elsewhere() {
        let text = "[station]\nid = 5\n[board]\nprofile = \"pi4-respeaker-2mic\"\n";
        assert_eq!(board_named_in(text).as_deref(), Some("pi4-respeaker-2mic"));
        assert_eq!(board_named_in("[board]\nprofile = 4\n"), None);
        assert_eq!(board_named_in("not toml at all ["), None);
    }
}
