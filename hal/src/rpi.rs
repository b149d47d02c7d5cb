//! The Raspberry Pi backend (feature `rppal`): GPIO, hardware and software PWM and SPI
//! through rppal, which knows every Pi from the Zero 2 W to the Pi 5 (RP1). Each opener names
//! the pin or bus in its error, so a wrong profile or a missing overlay reads clearly.

use embedded_hal::pwm::{ErrorKind, ErrorType, SetDutyCycle};
use rppal::gpio::{InputPin, OutputPin};
use rppal::pwm::Pwm;
use rppal::spi::{Bus, Mode, SlaveSelect, Spi};

use crate::gpio::{OpenError, Pull};

/// The types the openers return, for code that names them.
pub use rppal::gpio::{Gpio, InputPin as RppalInput, OutputPin as RppalOutput};
pub use rppal::spi::{Error as RppalSpiError, Spi as RppalSpi};

pub fn gpio() -> Result<Gpio, OpenError> {
    Gpio::new().map_err(|e| OpenError::new("GPIO", "/dev/gpiomem", e))
}

pub fn input(gpio: &Gpio, pin: u8, pull: Pull, what: &str) -> Result<InputPin, OpenError> {
    let p = gpio
        .get(pin)
        .map_err(|e| OpenError::new(what, format!("GPIO {pin}"), e))?;
    Ok(match pull {
        Pull::Up => p.into_input_pullup(),
        Pull::Down => p.into_input_pulldown(),
        Pull::None => p.into_input(),
    })
}

pub fn output(gpio: &Gpio, pin: u8, high: bool, what: &str) -> Result<OutputPin, OpenError> {
    let p = gpio
        .get(pin)
        .map_err(|e| OpenError::new(what, format!("GPIO {pin}"), e))?;
    Ok(if high {
        p.into_output_high()
    } else {
        p.into_output_low()
    })
}

/// A hardware PWM channel as an embedded-hal [`SetDutyCycle`].
pub struct HardPwm(Pwm);

/// Duty resolution exposed to drivers.
const MAX_DUTY: u16 = 1000;

#[derive(Debug, thiserror::Error)]
#[error("PWM: {0}")]
pub struct RppalPwmError(String);

impl embedded_hal::pwm::Error for RppalPwmError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// Hardware PWM channel `channel` of `/sys/class/pwm/pwmchip{chip}` (see
/// [`crate::sysfs_pwm::find_chip`] for finding the number).
pub fn hard_pwm(chip: u8, channel: u8, hz: u32, what: &str) -> Result<HardPwm, OpenError> {
    let resource = format!("PWM channel {channel} of pwmchip{chip}");
    let pwm =
        Pwm::with_pwmchip(chip, channel).map_err(|e| OpenError::new(what, resource.clone(), e))?;
    pwm.set_frequency(f64::from(hz), 0.0)
        .and_then(|()| pwm.enable())
        .map_err(|e| OpenError::new(what, resource, e))?;
    Ok(HardPwm(pwm))
}

impl ErrorType for HardPwm {
    type Error = RppalPwmError;
}

impl SetDutyCycle for HardPwm {
    fn max_duty_cycle(&self) -> u16 {
        MAX_DUTY
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), RppalPwmError> {
        self.0
            .set_duty_cycle(f64::from(duty.min(MAX_DUTY)) / f64::from(MAX_DUTY))
            .map_err(|e| RppalPwmError(e.to_string()))
    }
}

/// Software PWM on any GPIO (rppal's timing thread), for RGB LEDs on plain pins.
pub struct SoftPwm {
    pin: OutputPin,
    hz: f64,
}

pub fn soft_pwm(gpio: &Gpio, pin: u8, hz: u32, what: &str) -> Result<SoftPwm, OpenError> {
    Ok(SoftPwm {
        pin: output(gpio, pin, false, what)?,
        hz: f64::from(hz),
    })
}

impl ErrorType for SoftPwm {
    type Error = RppalPwmError;
}

impl SetDutyCycle for SoftPwm {
    fn max_duty_cycle(&self) -> u16 {
        MAX_DUTY
    }

    fn set_duty_cycle(&mut self, duty: u16) -> Result<(), RppalPwmError> {
        let d = f64::from(duty.min(MAX_DUTY)) / f64::from(MAX_DUTY);
        self.pin
            .set_pwm_frequency(self.hz, d)
            .map_err(|e| RppalPwmError(e.to_string()))
    }
}

pub fn spi(bus: u8, chip_select: u8, hz: u32, what: &str) -> Result<Spi, OpenError> {
    let resource = format!("/dev/spidev{bus}.{chip_select}");
    let b = match bus {
        0 => Bus::Spi0,
        1 => Bus::Spi1,
        2 => Bus::Spi2,
        3 => Bus::Spi3,
        4 => Bus::Spi4,
        5 => Bus::Spi5,
        6 => Bus::Spi6,
        _ => return Err(OpenError::new(what, resource, "no such SPI bus")),
    };
    let ss = match chip_select {
        0 => SlaveSelect::Ss0,
        1 => SlaveSelect::Ss1,
        2 => SlaveSelect::Ss2,
        _ => return Err(OpenError::new(what, resource, "no such chip select")),
    };
    Spi::new(b, ss, hz, Mode::Mode0).map_err(|e| OpenError::new(what, resource, e))
}
