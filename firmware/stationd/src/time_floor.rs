//! The update agent's time floor on the data partition, and the wall clock as the system
//! reports it. A Raspberry Pi has no real-time clock and the image's `/var` is a tmpfs, so
//! after a power cut the clock says 1970 (or whatever it was set to) until NTP answers; the
//! floor (`[update] dir/time-floor`) keeps the newest time the station has known — its build
//! time, the last synchronized time, the newest manifest's signing time — across boots. The
//! decisions are `stagebox_core::update`'s.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use stagebox_core::update::{TimeFloor, WallClock};

/// This build's time (see build.rs): no earlier time can be now.
pub const BUILD_UNIX: u64 = match u64::from_str_radix(env!("STAGEBOX_BUILD_UNIX"), 10) {
    Ok(t) => t,
    Err(_) => 0,
};
// A build whose time did not come through would leave the floor at 1970.
const _: () = assert!(
    BUILD_UNIX > 1_600_000_000,
    "STAGEBOX_BUILD_UNIX from build.rs"
);

/// systemd-timesyncd makes this file once the clock is synchronized.
const SYNCHRONIZED_FLAG: &str = "/run/systemd/timesync/synchronized";

/// A floor that rose by less than this since it was written is not written again (it only
/// matters across boots; the card is spared a write a minute). A manifest's signing time is
/// always written at once.
const WRITE_STEP_S: u64 = 3600;

/// The wall clock now, and whether the system says it is synchronized.
pub fn wall_clock() -> WallClock {
    WallClock {
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        synchronized: Path::new(SYNCHRONIZED_FLAG).exists(),
    }
}

/// The floor kept in a file, and what was last written there.
#[derive(Debug)]
pub struct FloorFile {
    path: PathBuf,
    written: TimeFloor,
}

impl FloorFile {
    /// The floor kept at `path` (nothing kept: none), raised to this build's time.
    pub fn load(path: PathBuf) -> (FloorFile, TimeFloor) {
        let kept = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| parse(&t))
            .unwrap_or_default();
        let floor = TimeFloor {
            floor_unix: kept.floor_unix.max(BUILD_UNIX),
            ..kept
        };
        (
            FloorFile {
                path,
                written: kept,
            },
            floor,
        )
    }

    /// Writes `floor` if a manifest moved it, or if it rose by an hour or more.
    pub fn keep(&mut self, floor: TimeFloor) {
        let newer_manifest = floor.newest_issued_unix > self.written.newest_issued_unix;
        let risen = floor.floor_unix >= self.written.floor_unix.saturating_add(WRITE_STEP_S);
        if !(newer_manifest || risen) {
            return;
        }
        let text = serde_json::json!({
            "floor_unix": floor.floor_unix,
            "newest_issued_unix": floor.newest_issued_unix,
        })
        .to_string();
        match crate::updater::write_file(&self.path, text.as_bytes()) {
            Ok(()) => self.written = floor,
            Err(e) => log::error!("{}: {e}", self.path.display()),
        }
    }
}

fn parse(text: &str) -> Option<TimeFloor> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some(TimeFloor {
        floor_unix: v["floor_unix"].as_u64()?,
        newest_issued_unix: v["newest_issued_unix"].as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_kept_across_starts_and_never_below_the_build() {
        let dir = std::env::temp_dir().join(format!("stagebox-floor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("time-floor");
        let (mut file, floor) = FloorFile::load(path.clone());
        assert_eq!(floor.floor_unix, BUILD_UNIX);
        // A manifest signed later raises it: written at once.
        let seen = TimeFloor {
            floor_unix: BUILD_UNIX + 60,
            newest_issued_unix: BUILD_UNIX + 60,
        };
        file.keep(seen);
        // A synchronized clock a minute on: not worth a write yet.
        file.keep(TimeFloor {
            floor_unix: BUILD_UNIX + 120,
            ..seen
        });
        assert_eq!(FloorFile::load(path.clone()).1, seen);
        // An hour on: written.
        let later = TimeFloor {
            floor_unix: BUILD_UNIX + 60 + WRITE_STEP_S,
            ..seen
        };
        file.keep(later);
        assert_eq!(FloorFile::load(path.clone()).1, later);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(FloorFile::load(path).1.floor_unix, BUILD_UNIX);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
