//! Opening the board's buttons and LEDs from its profile: the sim's, or real GPIO, PWM and
//! SPI through the rppal or cdev backend, wrapped in the board-agnostic drivers. Errors name
//! the pin or bus and what it is for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stagebox_board::{BoardProfile, GpioBackend};
use stagebox_core::button::PerButton;
use stagebox_hal::drivers::button::{ButtonInput, SampleButton};
use stagebox_hal::gpio::OpenError;
use stagebox_hal::indicator::AnyIndicator;
use stagebox_hal::sim::{SimButton, SimLeds};

use crate::input::Input;

/// The board's two buttons.
pub type Buttons = PerButton<Box<dyn SampleButton>>;

/// How often buttons are sampled: well inside the 20 ms debounce.
pub const BUTTON_POLL: Duration = Duration::from_millis(4);

/// Samples the buttons until `shutdown`, sending every change to the network task. A pin that
/// fails to read is reported once per failure streak.
pub fn spawn_button_poller(
    mut buttons: Buttons,
    inputs: async_channel::Sender<Input>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("buttons".into())
        .spawn(move || {
            let mut failing = PerButton::<bool>::default();
            while !shutdown.load(Ordering::Relaxed) {
                for id in stagebox_core::ButtonId::ALL {
                    match buttons[id].sample() {
                        Ok(Some(pressed)) => {
                            failing[id] = false;
                            if inputs.send_blocking(Input::Button { id, pressed }).is_err() {
                                return;
                            }
                        }
                        Ok(None) => failing[id] = false,
                        Err(e) if !failing[id] => {
                            failing[id] = true;
                            log::warn!("reading the {id:?} button failed: {e}");
                        }
                        Err(_) => {}
                    }
                }
                std::thread::sleep(BUTTON_POLL);
            }
        })
}

/// The sim board's buttons (the control socket presses them).
pub fn sim_buttons(ptt: &SimButton, hand: &SimButton) -> Buttons {
    Buttons {
        ptt: Box::new(ButtonInput::new(ptt.clone(), true)),
        hand: Box::new(ButtonInput::new(hand.clone(), true)),
    }
}

/// Opens the buttons and LEDs of a hardware board, through its GPIO backend.
pub fn open(board: &BoardProfile) -> Result<(Buttons, AnyIndicator), OpenError> {
    match board.gpio.backend {
        GpioBackend::Sim => Err(OpenError::new(
            "buttons and LEDs",
            board.name.clone(),
            "the sim board has no hardware",
        )),
        #[cfg(feature = "rppal")]
        GpioBackend::Rppal => open_with(&rppal_backend::Rppal::new()?, board),
        #[cfg(feature = "cdev")]
        GpioBackend::Cdev => open_with(&cdev_backend::Cdev::new(board)?, board),
        #[allow(unreachable_patterns)]
        other => Err(OpenError::new(
            "GPIO",
            format!("{other:?}"),
            "this build of stationd has no such backend (cargo feature)",
        )),
    }
}

/// The terminal LEDs, whatever the board (`--board sim`, or `[sim] draw_leds`).
pub fn terminal_leds(leds: SimLeds) -> AnyIndicator {
    AnyIndicator(Box::new(leds))
}

/// What a GPIO backend opens. Each backend (rppal, cdev) says how it opens a pin, a PWM
/// channel or a SPI bus; [`open_with`] turns a board profile into buttons and LEDs through any
/// of them (librespot's backend registry is the model).
#[cfg(any(feature = "rppal", feature = "cdev"))]
trait PinBackend {
    type Input: embedded_hal::digital::InputPin + Send + 'static;
    type Output: embedded_hal::digital::OutputPin<Error = Self::OutputError> + Send + 'static;
    type OutputError: std::fmt::Display;
    type HardPwm: embedded_hal::pwm::SetDutyCycle<Error = Self::PwmError> + Send + 'static;
    type SoftPwm: embedded_hal::pwm::SetDutyCycle<Error = Self::PwmError> + Send + 'static;
    type PwmError: embedded_hal::pwm::Error + std::fmt::Display;
    type Spi: embedded_hal::spi::SpiBus<Error = Self::SpiError> + Send + 'static;
    type SpiError: std::fmt::Display;

    fn input(&self, pin: &stagebox_board::ButtonPin, what: &str) -> Result<Self::Input, OpenError>;
    fn output(&self, pin: u32, high: bool, what: &str) -> Result<Self::Output, OpenError>;
    /// The hardware PWM channel `channel` of the sysfs chip at `chip`.
    fn hard_pwm(
        &self,
        chip: &std::path::Path,
        channel: u8,
        hz: u32,
        what: &str,
    ) -> Result<Self::HardPwm, OpenError>;
    fn soft_pwm(&self, pin: u32, hz: u32, what: &str) -> Result<Self::SoftPwm, OpenError>;
    fn spi(&self, bus: u8, chip_select: u8, hz: u32, what: &str) -> Result<Self::Spi, OpenError>;
}

/// The board's buttons and LEDs, opened through `backend`.
#[cfg(any(feature = "rppal", feature = "cdev"))]
fn open_with<B: PinBackend>(
    backend: &B,
    board: &BoardProfile,
) -> Result<(Buttons, AnyIndicator), OpenError> {
    use stagebox_board::LedProfile;
    use stagebox_hal::drivers::Led;
    use stagebox_hal::drivers::rgb::RgbLed;
    use stagebox_hal::drivers::single::{OnOffLed, PwmLed};

    let b = &board.buttons;
    let buttons = Buttons {
        ptt: Box::new(ButtonInput::new(
            backend.input(&b.ptt, "PTT button")?,
            b.ptt.active_low,
        )),
        hand: Box::new(ButtonInput::new(
            backend.input(&b.hand, "hand button")?,
            b.hand.active_low,
        )),
    };
    let leds = match &board.leds {
        LedProfile::Terminal => terminal_leds(SimLeds::new(&board.name, true)),
        LedProfile::Gpio { pin, active_low } => {
            let out = backend.output(*pin, *active_low, "LED")?;
            AnyIndicator(Box::new(Led::new(OnOffLed::new(out, *active_low))))
        }
        LedProfile::Pwm { pin, pwm_hz } => {
            let (chip, channel) = pwm_chip(board, *pin)?;
            let pwm = backend.hard_pwm(&chip, channel, *pwm_hz, "LED")?;
            AnyIndicator(Box::new(Led::new(PwmLed::new(pwm))))
        }
        LedProfile::Rgb {
            red,
            green,
            blue,
            pwm_hz,
        } => {
            let r = backend.soft_pwm(*red, *pwm_hz, "red LED")?;
            let g = backend.soft_pwm(*green, *pwm_hz, "green LED")?;
            let bl = backend.soft_pwm(*blue, *pwm_hz, "blue LED")?;
            AnyIndicator(Box::new(Led::new(RgbLed::new(r, g, bl))))
        }
        LedProfile::Apa102 {
            count,
            spi_bus,
            chip_select,
            spi_hz,
            brightness,
            power_pin,
        } => {
            let power = power_pin
                .map(|p| backend.output(p, true, "LED power"))
                .transpose()?;
            let spi = backend.spi(*spi_bus, *chip_select, *spi_hz, "LEDs")?;
            ring(spi, power, *count, *brightness)
        }
    };
    Ok((buttons, leds))
}

/// rppal: every Pi from the Zero 2 W to the Pi 5, with software PWM for RGB LEDs.
#[cfg(feature = "rppal")]
mod rppal_backend {
    use stagebox_hal::gpio::OpenError;
    use stagebox_hal::rpi;

    use super::PinBackend;

    pub struct Rppal(stagebox_hal::rpi::Gpio);

    impl Rppal {
        pub fn new() -> Result<Rppal, OpenError> {
            rpi::gpio().map(Rppal)
        }
    }

    fn pin(p: u32, what: &str) -> Result<u8, OpenError> {
        u8::try_from(p).map_err(|_| OpenError::new(what, format!("GPIO {p}"), "no such pin"))
    }

    impl PinBackend for Rppal {
        type Input = rpi::RppalInput;
        type Output = rpi::RppalOutput;
        type OutputError = std::convert::Infallible;
        type HardPwm = rpi::HardPwm;
        type SoftPwm = rpi::SoftPwm;
        type PwmError = rpi::RppalPwmError;
        type Spi = rpi::RppalSpi;
        type SpiError = rpi::RppalSpiError;

        fn input(
            &self,
            p: &stagebox_board::ButtonPin,
            what: &str,
        ) -> Result<Self::Input, OpenError> {
            let pull = match p.pull {
                stagebox_board::Pull::Up => stagebox_hal::gpio::Pull::Up,
                stagebox_board::Pull::Down => stagebox_hal::gpio::Pull::Down,
                stagebox_board::Pull::None => stagebox_hal::gpio::Pull::None,
            };
            rpi::input(&self.0, pin(p.pin, what)?, pull, what)
        }

        fn output(&self, p: u32, high: bool, what: &str) -> Result<Self::Output, OpenError> {
            rpi::output(&self.0, pin(p, what)?, high, what)
        }

        fn hard_pwm(
            &self,
            chip: &std::path::Path,
            channel: u8,
            hz: u32,
            what: &str,
        ) -> Result<Self::HardPwm, OpenError> {
            let number = stagebox_hal::sysfs_pwm::chip_number(chip).ok_or_else(|| {
                OpenError::new(what, chip.display().to_string(), "not a pwmchipN directory")
            })?;
            rpi::hard_pwm(number, channel, hz, what)
        }

        fn soft_pwm(&self, p: u32, hz: u32, what: &str) -> Result<Self::SoftPwm, OpenError> {
            rpi::soft_pwm(&self.0, pin(p, what)?, hz, what)
        }

        fn spi(
            &self,
            bus: u8,
            chip_select: u8,
            hz: u32,
            what: &str,
        ) -> Result<Self::Spi, OpenError> {
            rpi::spi(bus, chip_select, hz, what)
        }
    }
}

/// Any Linux board: the GPIO character device, sysfs PWM and spidev. No software PWM.
#[cfg(feature = "cdev")]
mod cdev_backend {
    use stagebox_board::BoardProfile;
    use stagebox_hal::cdev;
    use stagebox_hal::gpio::OpenError;
    use stagebox_hal::sysfs_pwm::{PwmError, SysfsPwm};

    use super::PinBackend;

    /// The GPIO chip the board's pins are on.
    pub struct Cdev(String);

    impl Cdev {
        pub fn new(board: &BoardProfile) -> Result<Cdev, OpenError> {
            let label = board.gpio.chip_label.as_deref().unwrap_or("");
            cdev::find_chip(label, "buttons").map(Cdev)
        }
    }

    /// Software PWM, which this backend does not have: never made.
    pub enum NoSoftPwm {}

    impl embedded_hal::pwm::ErrorType for NoSoftPwm {
        type Error = PwmError;
    }

    impl embedded_hal::pwm::SetDutyCycle for NoSoftPwm {
        fn max_duty_cycle(&self) -> u16 {
            match *self {}
        }

        fn set_duty_cycle(&mut self, _: u16) -> Result<(), PwmError> {
            match *self {}
        }
    }

    impl PinBackend for Cdev {
        type Input = cdev::CdevPin;
        type Output = cdev::CdevPin;
        type OutputError = cdev::CdevPinError;
        type HardPwm = SysfsPwm;
        type SoftPwm = NoSoftPwm;
        type PwmError = PwmError;
        type Spi = cdev::SpidevBus;
        type SpiError = cdev::SPIError;

        fn input(
            &self,
            p: &stagebox_board::ButtonPin,
            what: &str,
        ) -> Result<Self::Input, OpenError> {
            cdev::input(&self.0, p.pin, what)
        }

        fn output(&self, pin: u32, high: bool, what: &str) -> Result<Self::Output, OpenError> {
            cdev::output(&self.0, pin, high, what)
        }

        fn hard_pwm(
            &self,
            chip: &std::path::Path,
            channel: u8,
            hz: u32,
            what: &str,
        ) -> Result<Self::HardPwm, OpenError> {
            SysfsPwm::open(chip, channel.into(), hz)
                .map_err(|e| OpenError::new(what, chip.display().to_string(), e))
        }

        fn soft_pwm(&self, _: u32, _: u32, what: &str) -> Result<Self::SoftPwm, OpenError> {
            Err(OpenError::new(
                what,
                "RGB on GPIO",
                "software PWM needs the rppal backend",
            ))
        }

        fn spi(
            &self,
            bus: u8,
            chip_select: u8,
            hz: u32,
            what: &str,
        ) -> Result<Self::Spi, OpenError> {
            cdev::spi(bus, chip_select, hz, what)
        }
    }
}

/// The sysfs PWM chip and channel of an LED pin on this board's SoC. The chip is found by the
/// controller's device-tree name: its `pwmchipN` number differs between kernels (on a Pi 5,
/// pwmchip2 on older kernels, pwmchip0 on newer ones, and the fan's controller may take
/// either), so neither a fixed number nor rppal's per-model guess is trusted.
#[cfg(any(feature = "rppal", feature = "cdev"))]
fn pwm_chip(board: &BoardProfile, pin: u32) -> Result<(std::path::PathBuf, u8), OpenError> {
    let resource = format!("GPIO {pin}");
    let soc = board
        .soc
        .as_ref()
        .ok_or_else(|| OpenError::new("LED", resource.clone(), "no SoC, no hardware PWM"))?;
    let channel = soc
        .pwm_channel(pin)
        .ok_or_else(|| OpenError::new("LED", resource.clone(), "no hardware PWM"))?;
    let chip =
        stagebox_hal::sysfs_pwm::find_chip(std::path::Path::new("/sys/class/pwm"), &soc.pwm_device)
            .map_err(|e| OpenError::new("LED", resource, e))?;
    Ok((chip, channel))
}

/// An APA102 string on `spi`, with the pin that powers it (if any).
#[cfg(any(feature = "rppal", feature = "cdev"))]
fn ring<S, P>(spi: S, power: Option<P>, count: u16, brightness: u8) -> AnyIndicator
where
    S: embedded_hal::spi::SpiBus + Send + 'static,
    S::Error: std::fmt::Display,
    P: Send + 'static,
{
    use stagebox_hal::drivers::Led;
    use stagebox_hal::drivers::apa102::Apa102;
    let leds = Led::new(Apa102::new(spi, usize::from(count), brightness));
    AnyIndicator(Box::new(Powered {
        leds,
        _power: power,
    }))
}

/// LEDs with the pin that powers them, held for as long as the LEDs are.
#[cfg(any(feature = "rppal", feature = "cdev"))]
struct Powered<L, P> {
    leds: L,
    _power: Option<P>,
}

#[cfg(any(feature = "rppal", feature = "cdev"))]
impl<L: stagebox_hal::Indicator, P> stagebox_hal::Indicator for Powered<L, P> {
    type Error = L::Error;

    fn show(
        &mut self,
        now: std::time::Instant,
        state: stagebox_core::LedState,
    ) -> Result<(), L::Error> {
        self.leds.show(now, state)
    }

    fn level(&mut self, percent: u8) -> Result<(), L::Error> {
        self.leds.level(percent)
    }

    fn refresh(&mut self, now: std::time::Instant) -> Result<(), L::Error> {
        self.leds.refresh(now)
    }
}
