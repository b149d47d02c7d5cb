//! The generic Linux backend (feature `cdev`): GPIO lines through the character device
//! (`/dev/gpiochipN`, gpio-cdev via linux-embedded-hal) and SPI through spidev, for any Linux
//! board; PWM goes through [`crate::sysfs_pwm`]. Pulls are set by the device tree on such
//! boards (on a Pi, `gpio=17=ip,pu` in config.txt), which the board profile lists.

use gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::spidev::{SpiModeFlags, SpidevOptions};

use crate::gpio::OpenError;

/// The types the openers return, for code that names them.
pub use linux_embedded_hal::{CdevPin, CdevPinError, SPIError, SpidevBus};

fn line(
    chip: &str,
    offset: u32,
    flags: LineRequestFlags,
    value: u8,
    what: &str,
) -> Result<CdevPin, OpenError> {
    let resource = format!("GPIO {offset} on {chip}");
    let mut c = Chip::new(chip).map_err(|e| OpenError::new(what, resource.clone(), e))?;
    let l = c
        .get_line(offset)
        .map_err(|e| OpenError::new(what, resource.clone(), e))?;
    let handle = l
        .request(flags, value, "stationd")
        .map_err(|e| OpenError::new(what, resource.clone(), e))?;
    CdevPin::new(handle).map_err(|e| OpenError::new(what, resource, e))
}

/// The path of the GPIO chip labelled `label` (e.g. `pinctrl-bcm2711`).
pub fn find_chip(label: &str, what: &str) -> Result<String, OpenError> {
    let chips = gpio_cdev::chips().map_err(|e| OpenError::new(what, "/dev/gpiochip*", e))?;
    for chip in chips.flatten() {
        if chip.label() == label {
            return Ok(chip.path().display().to_string());
        }
    }
    Err(OpenError::new(
        what,
        format!("GPIO chip {label:?}"),
        "no /dev/gpiochip* has this label (`gpiodetect` lists them)",
    ))
}

pub fn input(chip: &str, offset: u32, what: &str) -> Result<CdevPin, OpenError> {
    line(chip, offset, LineRequestFlags::INPUT, 0, what)
}

pub fn output(chip: &str, offset: u32, high: bool, what: &str) -> Result<CdevPin, OpenError> {
    line(chip, offset, LineRequestFlags::OUTPUT, u8::from(high), what)
}

pub fn spi(bus: u8, chip_select: u8, hz: u32, what: &str) -> Result<SpidevBus, OpenError> {
    let path = format!("/dev/spidev{bus}.{chip_select}");
    let mut spi = SpidevBus::open(&path).map_err(|e| OpenError::new(what, path.clone(), e))?;
    let options = SpidevOptions::new()
        .bits_per_word(8)
        .max_speed_hz(hz)
        .mode(SpiModeFlags::SPI_MODE_0)
        .build();
    spi.configure(&options)
        .map_err(|e| OpenError::new(what, path, e))?;
    Ok(spi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_gpio_names_the_pin_and_the_chip() {
        let err = input("/dev/gpiochip97", 17, "PTT button")
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("PTT button (GPIO 17 on /dev/gpiochip97): "),
            "{err}"
        );
        let err = spi(9, 0, 1_000_000, "LED ring").err().unwrap().to_string();
        assert!(err.starts_with("LED ring (/dev/spidev9.0): "), "{err}");
        let err = find_chip("pinctrl-nothing", "buttons")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("buttons (GPIO chip \"pinctrl-nothing\"): "),
            "{err}"
        );
    }
}
