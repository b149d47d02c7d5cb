//! The station's wrong-PIN count, kept beside the PIN's verifier (on the image, the data
//! partition) so that every console line shares it — the UART's and the USB gadget's are
//! separate services — and a restart or a power cycle does not wipe it.
//!
//! The file holds `{"misses": N, "boot_id": "…", "not_before_ms": T}`, `T` on the kernel's
//! boot-time clock (shared by every process, counting from this boot). In a later boot the
//! wait a run of misses earned starts afresh: a power cycle never shortens it. Every use holds
//! an exclusive lock on the file, so two lines cannot both spend the same try.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{FlockOperation, flock};
use stagebox_console::auth::PinTries;

/// Where the count is kept for the PIN verifier at `pin_file`.
pub fn path_for(pin_file: &Path) -> PathBuf {
    let mut name = pin_file.file_name().unwrap_or_default().to_os_string();
    name.push("-tries");
    pin_file.with_file_name(name)
}

/// The count, locked for one use: read with [`Self::tries`], written back with
/// [`Self::store`]; the lock goes with the value.
pub struct LockedTries {
    file: File,
    tries: PinTries,
}

/// What the kernel says about now: this boot's id and the boot-time clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootClock {
    pub boot_id: String,
    pub since_boot: Duration,
}

impl BootClock {
    pub fn read() -> BootClock {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        BootClock {
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            since_boot: Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            ),
        }
    }
}

impl LockedTries {
    /// Opens (or makes, readable by root alone) and locks the count at `path`, and reads it
    /// as it stands at `clock`. A damaged file counts as three misses with their wait: a
    /// garbled count must not hand out fresh tries.
    pub fn open(path: &Path, clock: &BootClock) -> std::io::Result<LockedTries> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        flock(&file, FlockOperation::LockExclusive)?;
        let mut text = String::new();
        std::io::Read::by_ref(&mut file)
            .take(4096)
            .read_to_string(&mut text)
            .unwrap_or(0);
        let tries = parse(&text, clock).unwrap_or_else(PinTries::unreadable);
        Ok(LockedTries { file, tries })
    }

    pub fn tries(&self) -> PinTries {
        self.tries
    }

    /// Writes `tries` (as they stand at `clock`) if they differ from what was read, and lets
    /// the lock go.
    pub fn store(mut self, tries: PinTries, clock: &BootClock) -> std::io::Result<()> {
        if tries == self.tries {
            return Ok(());
        }
        let text = render(tries, clock);
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_all()
    }
}

fn render(tries: PinTries, clock: &BootClock) -> String {
    let not_before = clock.since_boot + tries.wait_left;
    serde_json::json!({
        "misses": tries.misses,
        "boot_id": clock.boot_id,
        "not_before_ms": u64::try_from(not_before.as_millis()).unwrap_or(u64::MAX),
    })
    .to_string()
        + "\n"
}

/// The count in `text` as it stands at `clock`; `None` if it is damaged. An empty file (none
/// kept yet) is no misses.
fn parse(text: &str, clock: &BootClock) -> Option<PinTries> {
    if text.trim().is_empty() {
        return Some(PinTries::default());
    }
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let misses = u32::try_from(v["misses"].as_u64()?).ok()?;
    let boot_id = v["boot_id"].as_str()?;
    let not_before = Duration::from_millis(v["not_before_ms"].as_u64()?);
    if boot_id == clock.boot_id && !clock.boot_id.is_empty() {
        let wait_left = not_before.saturating_sub(clock.since_boot);
        Some(PinTries { misses, wait_left })
    } else {
        Some(PinTries::from_an_earlier_boot(misses))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(boot: &str, secs: u64) -> BootClock {
        BootClock {
            boot_id: boot.into(),
            since_boot: Duration::from_secs(secs),
        }
    }

    #[test]
    fn the_count_is_kept_across_opens_and_a_new_boot_starts_the_wait_afresh() {
        let dir = std::env::temp_dir().join(format!("stagebox-tries-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = path_for(&dir.join("pin"));
        assert_eq!(path, dir.join("pin-tries"));
        let kept = LockedTries::open(&path, &at("boot-1", 100)).unwrap();
        assert_eq!(kept.tries(), PinTries::default());
        let four = PinTries {
            misses: 4,
            wait_left: Duration::from_secs(60),
        };
        kept.store(four, &at("boot-1", 100)).unwrap();
        // The same boot, 20 s on: 40 s left, whichever line asks.
        let kept = LockedTries::open(&path, &at("boot-1", 120)).unwrap();
        assert_eq!(
            kept.tries(),
            PinTries {
                misses: 4,
                wait_left: Duration::from_secs(40)
            }
        );
        drop(kept);
        // A power cycle: the whole wait again, not what was left of it.
        let kept = LockedTries::open(&path, &at("boot-2", 3)).unwrap();
        assert_eq!(kept.tries(), four);
        drop(kept);
        // A damaged count hands out no fresh tries.
        std::fs::write(&path, "{garbage").unwrap();
        let kept = LockedTries::open(&path, &at("boot-2", 3)).unwrap();
        assert_eq!(kept.tries().misses, stagebox_console::auth::FREE_TRIES);
        assert!(!kept.tries().wait_left.is_zero());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
