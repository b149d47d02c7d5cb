//! The station's console PIN: made once, at first boot, for its label (ETSI EN 303 645 5.1-1:
//! unique per device, no default). Only its verifier stays on the station; the PIN itself is
//! written once, for the label, where the maker or owner prints it from.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::{Context, Result};
use stagebox_console::auth::{self, PinVerifier};

/// Makes a PIN unless `pin_file` exists; its verifier goes to `pin_file` and the PIN to
/// `label` (both readable by root alone). Returns whether a PIN was made.
pub fn make_if_missing(pin_file: &Path, label: &Path) -> Result<bool> {
    if pin_file.exists() {
        return Ok(false);
    }
    let pin = auth::new_pin().context("making the PIN")?;
    let verifier = PinVerifier::new(&pin, auth::ITERATIONS).context("the PIN's verifier")?;
    write_private(
        label,
        &format!(
            "stagebox console PIN for this station: {pin}\n\
             (serial console: 115200 8N1 on the UART or the USB port; `login` asks for it)\n"
        ),
    )?;
    // The verifier last: if the label could not be written, the next boot tries again.
    write_private(pin_file, &format!("{}\n", verifier.to_text()))?;
    Ok(true)
}

/// The verifier, if the station has one. A file that is there but unreadable or damaged is an
/// error (the console then lets nothing that needs the PIN run, and says why).
pub fn load(pin_file: &Path) -> Result<Option<PinVerifier>> {
    match fs::read_to_string(pin_file) {
        Ok(text) => PinVerifier::parse(text.trim())
            .map(Some)
            .with_context(|| format!("{}", pin_file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}", pin_file.display())),
    }
}

/// Writes `text` to `path` through a temporary file beside it, mode 0600.
fn write_private(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    }
    let tmp = path.with_extension("new");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("{}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_made_once_and_its_verifier_takes_it() {
        let dir = std::env::temp_dir().join(format!("stagebox-pin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let (pin_file, label) = (dir.join("pin"), dir.join("label.txt"));
        assert!(load(&pin_file).unwrap().is_none());
        assert!(make_if_missing(&pin_file, &label).unwrap());
        let text = fs::read_to_string(&label).unwrap();
        let pin: String = text
            .split(": ")
            .nth(1)
            .unwrap()
            .chars()
            .take(auth::PIN_DIGITS)
            .collect();
        let verifier = load(&pin_file).unwrap().unwrap();
        assert!(verifier.verify(&pin));
        assert!(!fs::read_to_string(&pin_file).unwrap().contains(&pin));
        // A second boot keeps the first PIN.
        assert!(!make_if_missing(&pin_file, &label).unwrap());
        assert!(load(&pin_file).unwrap().unwrap().verify(&pin));
        fs::write(&pin_file, "garbage").unwrap();
        assert!(load(&pin_file).is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
