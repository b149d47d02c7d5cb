//! Finding the station's port: the one USB serial port plugged in (a USB-serial cable on the
//! UART, or the station's own USB gadget port), or a clear word when there is none or several.

use anyhow::{Result, bail};
use std::path::PathBuf;

/// The serial ports that can be a station: USB ones (built-in UARTs of the laptop are not).
pub fn candidates() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = serialport::available_ports()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| matches!(p.port_type, serialport::SerialPortType::UsbPort(_)))
        .map(|p| PathBuf::from(p.port_name))
        .collect();
    // Where the system gives no details, USB serial devices still have these names.
    if let Ok(dir) = std::fs::read_dir("/dev") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("ttyUSB") || name.starts_with("ttyACM") {
                let p = e.path();
                if !found.contains(&p) {
                    found.push(p);
                }
            }
        }
    }
    found.sort();
    found
}

pub fn the_one_station() -> Result<PathBuf> {
    let found = candidates();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!(
            "no USB serial port found: plug in the USB-serial cable (on the station's UART \
             pins) or a USB cable to the station's USB port, or name the port \
             (stagebox-diag /dev/ttyUSB0 status)"
        ),
        many => bail!(
            "{} serial ports found ({}): say which one (stagebox-diag {} status)",
            many.len(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            many[0].display()
        ),
    }
}
