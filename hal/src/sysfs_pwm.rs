//! A PWM channel through the kernel's sysfs interface (`/sys/class/pwm/pwmchipN/pwmM`), as an
//! embedded-hal [`SetDutyCycle`]. Works on any Linux board whose device tree enables the PWM
//! (on a Raspberry Pi: `dtoverlay=pwm,pin=18,func=2`), with no library and no root once udev
//! has handed the files to the `gpio` group (see board/files/udev).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use embedded_hal::pwm::{ErrorKind, ErrorType, SetDutyCycle};

/// Duty resolution exposed to drivers.
pub const MAX_DUTY: u16 = 1000;

#[derive(Debug, thiserror::Error)]
#[error("PWM {path}: {source}")]
pub struct PwmError {
    pub path: String,
    #[source]
    pub source: io::Error,
}

impl embedded_hal::pwm::Error for PwmError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

#[derive(Debug)]
pub struct SysfsPwm {
    channel: PathBuf,
    period_ns: u64,
}

fn write(path: &Path, value: &str) -> Result<(), PwmError> {
    fs::write(path, value).map_err(|source| PwmError {
        path: path.display().to_string(),
        source,
    })
}

impl SysfsPwm {
    /// Exports channel `channel` of the PWM chip at `chip` (e.g. `/sys/class/pwm/pwmchip0`)
    /// if needed, sets its period (from `frequency_hz`), a duty of zero, and enables it.
    pub fn open(chip: &Path, channel: u32, frequency_hz: u32) -> Result<SysfsPwm, PwmError> {
        if !chip.is_dir() {
            return Err(PwmError {
                path: chip.display().to_string(),
                source: io::Error::new(
                    io::ErrorKind::NotFound,
                    "no such PWM chip (is the PWM overlay in config.txt?)",
                ),
            });
        }
        let dir = chip.join(format!("pwm{channel}"));
        if !dir.is_dir() {
            write(&chip.join("export"), &channel.to_string())?;
        }
        let period_ns = 1_000_000_000 / u64::from(frequency_hz.max(1));
        let pwm = SysfsPwm {
            channel: dir,
            period_ns,
        };
        // The duty must never exceed the period, whatever was there before.
        write(&pwm.channel.join("duty_cycle"), "0")?;
        write(&pwm.channel.join("period"), &period_ns.to_string())?;
        write(&pwm.channel.join("enable"), "1")?;
        Ok(pwm)
    }
}

/// The `pwmchipN` directory under `class_dir` (normally `/sys/class/pwm`) whose `device` is
/// the controller named `device` in the device tree (`fe20c000.pwm`, `1f00098000.pwm`): the
/// number N depends on the kernel and on what else has a PWM (fans, displays).
pub fn find_chip(class_dir: &Path, device: &str) -> Result<PathBuf, PwmError> {
    let not_found = |detail: String| PwmError {
        path: class_dir.display().to_string(),
        source: io::Error::new(io::ErrorKind::NotFound, detail),
    };
    let entries = fs::read_dir(class_dir).map_err(|source| PwmError {
        path: class_dir.display().to_string(),
        source,
    })?;
    let mut seen = Vec::new();
    for entry in entries.flatten() {
        let chip = entry.path();
        let owner = fs::read_link(chip.join("device"))
            .ok()
            .and_then(|link| link.file_name().map(|n| n.to_string_lossy().into_owned()));
        match owner {
            Some(name) if name == device => return Ok(chip),
            Some(name) => seen.push(format!("{} is {name}", entry.file_name().to_string_lossy())),
            None => {}
        }
    }
    seen.sort();
    let found = if seen.is_empty() {
        "no PWM chips".to_string()
    } else {
        seen.join(", ")
    };
    Err(not_found(format!(
        "no PWM chip belongs to {device} ({found}; is the PWM overlay in config.txt?)"
    )))
}

/// N of a `…/pwmchipN` path.
pub fn chip_number(chip: &Path) -> Option<u8> {
    chip.file_name()?
        .to_str()?
        .strip_prefix("pwmchip")?
        .parse()
        .ok()
}

impl ErrorType for SysfsPwm {
    type Error = PwmError;
}

impl SetDutyCycle for SysfsPwm {
    fn max_duty_cycle(&self) -> u16 {
        MAX_DUTY
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), PwmError> {
        let ns = self.period_ns * u64::from(duty.min(MAX_DUTY)) / u64::from(MAX_DUTY);
        write(&self.channel.join("duty_cycle"), &ns.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory shaped like a PWM chip in sysfs, where `export` creates the channel (as the
    /// kernel does).
    fn fake_chip(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stagebox-pwm-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("pwm0")).unwrap();
        fs::write(dir.join("export"), "").unwrap();
        dir
    }

    #[test]
    fn opens_sets_period_and_writes_duty_in_nanoseconds() {
        let chip = fake_chip("ok");
        fs::write(chip.join("pwm0/duty_cycle"), "999999999").unwrap();
        let mut pwm = SysfsPwm::open(&chip, 0, 1000).unwrap();
        let read = |f: &str| fs::read_to_string(chip.join("pwm0").join(f)).unwrap();
        assert_eq!(
            (read("period"), read("enable"), read("duty_cycle")),
            ("1000000".into(), "1".into(), "0".into())
        );
        pwm.set_duty_cycle(250).unwrap();
        assert_eq!(read("duty_cycle"), "250000");
        pwm.set_duty_cycle(5000).unwrap();
        assert_eq!(read("duty_cycle"), "1000000");
        let _ = fs::remove_dir_all(&chip);
    }

    /// `/sys/class/pwm` as on a Pi 5 where the fan's controller took `pwmchip0`.
    fn fake_class(name: &str) -> PathBuf {
        use std::os::unix::fs::symlink;
        let root =
            std::env::temp_dir().join(format!("stagebox-pwmclass-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let devices = root.join("devices");
        let class = root.join("class");
        for (chip, device) in [
            ("pwmchip0", "1f0009c000.pwm"),
            ("pwmchip2", "1f00098000.pwm"),
        ] {
            fs::create_dir_all(devices.join(device)).unwrap();
            fs::create_dir_all(class.join(chip)).unwrap();
            symlink(devices.join(device), class.join(chip).join("device")).unwrap();
        }
        root
    }

    #[test]
    fn finds_the_chip_by_its_device_not_its_number() {
        let root = fake_class("find");
        let class = root.join("class");
        let chip = find_chip(&class, "1f00098000.pwm").unwrap();
        assert_eq!(chip, class.join("pwmchip2"));
        assert_eq!(chip_number(&chip), Some(2));
        assert_eq!(chip_number(Path::new("/sys/class/pwm/pwm2")), None);
        let err = find_chip(&class, "fe20c000.pwm").unwrap_err().to_string();
        assert!(
            err.contains("fe20c000.pwm")
                && err.contains("pwmchip0 is 1f0009c000.pwm, pwmchip2 is 1f00098000.pwm")
                && err.contains("overlay"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn no_pwm_class_is_a_clear_error() {
        let err = find_chip(Path::new("/nonexistent/class/pwm"), "fe20c000.pwm")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/class/pwm"), "{err}");
    }

    #[test]
    fn a_missing_chip_names_itself() {
        let err = SysfsPwm::open(Path::new("/sys/class/pwm/pwmchip9"), 0, 1000).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("pwmchip9") && text.contains("overlay"),
            "{text}"
        );
    }
}
